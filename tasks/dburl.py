"""Database URLs with their credentials kept apart.

Prefect stores and shows a flow run's parameters, so a URL that reaches one must carry no
secret: neither in its user part (``postgresql://user:PASSWORD@host/db``) nor in its query string
(``?password=...``, ``?sslpassword=...``). ``split`` takes them out; ``join`` puts them back
inside the task that connects. SQLAlchemy 2's ``URL.set(password=None)`` keeps the password
(``None`` means "unchanged" there), hence ``_replace``.

One rule says what may be stored (``PUBLIC_URL_PATTERN``, ``is_public``): the form's JSON-schema
pattern, which the Prefect server applies before it stores a run, and the flow's own check are
that same regular expression. It is an allow-list, so that no spelling slips through: a password
holding ``/``, ``#``, ``?`` or ``@``, a percent-encoded query key (``?pass%77ord=``), a key in
another case (``?PWD=``) or a driver's option nobody listed are all refused, because a URL passes
only when

- it reads ``dialect://[user@]host[:port][/database][?key=value&...]``, without line breaks;
- its user part (before the one ``@`` it may hold) has no ``:``, so no password, whatever it
  holds (SQLAlchemy reads a password after any ``:`` that comes before an ``@``);
- every query key is one of ``SAFE_QUERY_KEYS``, spelled exactly: usual connection options that
  hold no secret (``sslmode``, ``charset``, ``connect_timeout``, ...). ``sslkey``/``ssl_key`` name a
  key *file*, not a secret.

A command line may name any option: ``split`` takes out the password and every query key that is
not safe, and they travel through the process only (``Credentials``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url

from tasks.errors import OperatorError

# Query keys that hold no secret in the drivers we ship (libpq through psycopg, PyMySQL, SQLite):
# the only ones a URL stored by Prefect may carry. Anything else (password, passwd, pwd,
# sslpassword, pass, secret, token, api_key, odbc_connect, a percent-encoded or upper-case
# spelling of one of those...) is taken out by ``split`` and refused by the form.
SAFE_QUERY_KEYS = frozenset(
    {
        # PostgreSQL (libpq parameters)
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "fallback_application_name",
        "gssencmode",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "options",
        "port",
        "require_auth",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslmode",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        # MySQL / MariaDB (PyMySQL)
        "binary_prefix",
        "charset",
        "client_flag",
        "local_infile",
        "program_name",
        "read_timeout",
        "ssl_ca",
        "ssl_capath",
        "ssl_cert",
        "ssl_check_hostname",
        "ssl_cipher",
        "ssl_disabled",
        "ssl_key",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "unix_socket",
        "write_timeout",
        # SQLite
        "cache",
        "check_same_thread",
        "immutable",
        "mode",
        "nolock",
        "timeout",
        "uri",
    }
)

# Characters no part of a stored URL may hold: control characters (line breaks, tabs), "#" (a
# fragment to some readers) and "@" (only the one ending the user part).
_PLAIN = r"\x00-\x1f\x7f#@"
_PAIR = "(?:" + "|".join(sorted(SAFE_QUERY_KEYS)) + f")(?:=[^&{_PLAIN}]*)?"
# Python's re (the Prefect server's jsonschema) and JavaScript read it alike. Blank passes (no URL).
PUBLIC_URL_PATTERN = (
    "^(?:\\s*| *[A-Za-z0-9_+]+://"
    f"(?:[^:/?{_PLAIN}]*@)?"  # user, without ":" (no password)
    f"[^?{_PLAIN}]*"  # host, port, /database
    f"(?:\\?(?:{_PAIR})?(?:&(?:{_PAIR})?)*)?"  # ?key=value&... with safe keys only
    " *)$"
)
_PUBLIC_URL = re.compile(PUBLIC_URL_PATTERN)

# What the form says when it refuses a URL: Prefect's answer quotes this, never the URL.
PUBLIC_URL_EXPECTED = (
    "une adresse de base de données sans mot de passe, par exemple "
    "postgresql://lecteur@serveur/crm (ni utilisateur:motdepasse@, ni ?password=, seulement les "
    "options habituelles comme ?sslmode=) ; le mot de passe se range dans un secret Prefect "
    "(menu Blocks) ou dans SURVEY_DB_PASSWORD sur le serveur d'envoi"
)


def is_public(url: str) -> bool:
    """Whether Prefect may store this URL: the form's pattern, applied as the server does."""
    return _PUBLIC_URL.search(url) is not None


class DbUrlError(OperatorError, ValueError):
    """A database URL that cannot be read: str() is one line without any secret in it."""


@dataclass(frozen=True)
class Credentials:
    password: str | None = None
    query: dict[str, str | list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.password or self.query)

    def to_json(self) -> str:
        return json.dumps({"password": self.password, "query": self.query})

    @classmethod
    def from_json(cls, text: str) -> Credentials:
        try:
            data = json.loads(text)
            return cls(password=data.get("password"), query=dict(data.get("query") or {}))
        except (ValueError, TypeError, AttributeError):
            return cls()


def parse(url: str) -> URL:
    """The URL, or DbUrlError saying what is wrong without echoing the URL (it may hold a
    password)."""
    text = str(url or "").strip()
    if not text:
        raise DbUrlError("the database URL is empty")
    if any(c in text for c in "\r\n\t"):
        raise DbUrlError("the database URL holds a line break or a tab")
    try:
        parsed = make_url(text)
    except Exception:  # SQLAlchemy raises several kinds; the message may echo it
        raise DbUrlError(
            f"the database URL {mask(text)} cannot be read: expected "
            "dialect://user@host[:port]/database, e.g. postgresql://reader@db.example/crm"
        ) from None
    if postgres := re.match(r"postgres(\+\w+)?$", parsed.drivername):
        # Heroku-style postgres:// is what many tools print; SQLAlchemy only knows postgresql.
        parsed = parsed.set(drivername=f"postgresql{postgres.group(1) or ''}")
    return parsed


# The drivers this project ships (requirements.lock), for URLs that name none.
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def with_driver(url: URL) -> URL:
    """The URL with the shipped driver when it names none (``postgresql://`` -> psycopg 3,
    ``mysql://`` -> PyMySQL): the ledger and the recipients connect the same way."""
    driver = _DRIVERS.get(url.drivername.lower())
    return url.set(drivername=driver) if driver else url


def engine_url(url: str) -> URL:
    """What ``create_engine`` takes for ``url``: parsed (``postgres://`` read as PostgreSQL),
    with the shipped driver. DbUrlError when it cannot be read."""
    return with_driver(parse(url))


def split(url: str) -> tuple[str, Credentials]:
    """(the URL without any secret, the secrets taken out): the password and every query key
    that is not in ``SAFE_QUERY_KEYS``. The first always passes ``is_public``; DbUrlError (one
    line, no secret) when the URL cannot be read or cannot be made public."""
    parsed = parse(url)
    if "@" in (parsed.host or ""):
        # SQLAlchemy reads "u:p@ss@host" as the password "p" on the host "ss@host".
        raise DbUrlError(
            "the database URL has more than one '@' before its host: write an '@' inside the "
            "user name or the password as %40"
        )
    secrets: dict[str, str | list[str]] = {
        k: v if isinstance(v, str) else list(v)
        for k, v in parsed.query.items()
        if k not in SAFE_QUERY_KEYS
    }
    public = parsed._replace(password=None)
    if secrets:
        public = public.difference_update_query(list(secrets))
    password = None if parsed.password is None else str(parsed.password)
    text = public.render_as_string(hide_password=False)
    if not is_public(text):
        raise DbUrlError(
            f"the database URL {mask(url)} cannot be read: expected "
            "dialect://user@host[:port]/database, e.g. postgresql://reader@db.example/crm"
        )
    return text, Credentials(password, secrets)


def join(url: str, credentials: Credentials) -> str:
    """The URL with the secrets put back (a secret already in the URL wins)."""
    parsed = parse(url)
    if credentials.password and parsed.password is None:
        parsed = parsed._replace(password=credentials.password)
    missing = {k: v for k, v in credentials.query.items() if k not in parsed.query}
    if missing:
        parsed = parsed.update_query_dict(missing)
    return parsed.render_as_string(hide_password=False)


def has_secret(url: str) -> bool:
    try:
        return bool(split(url)[1])
    except DbUrlError:
        return False


def mask(url: str) -> str:
    """The URL with every secret shown as ``***``, never raising: the password (everything
    between the user's ``:`` and the last ``@``, whatever it holds) and the value of every query
    key that is not safe (a bare one entirely). Text only, and a character any reading could
    take for part of a secret is hidden: the query is read from the first ``?`` and from the
    first one after the last ``@`` (a password may hold a ``?``, a query value an ``@``)."""
    text = str(url)
    scheme = re.match(r"[^:/?#]*://", text)
    if scheme is None:
        return text
    start = scheme.end()
    hidden = [False] * len(text)
    at = text.rfind("@", start)
    colon = text.find(":", start, at) if at >= 0 else -1
    if colon >= 0:
        hidden[colon + 1 : at] = [True] * (at - colon - 1)
    for question in {text.find("?", start), text.find("?", max(at, start))}:
        if question < 0:
            continue
        position = question + 1
        for pair in text[position:].split("&"):
            key, equals, _ = pair.partition("=")
            if pair and key not in SAFE_QUERY_KEYS:
                first = position + len(key) + 1 if equals else position
                hidden[first : position + len(pair)] = [True] * (position + len(pair) - first)
            position += len(pair) + 1
    shown, previous = [], False
    for char, hide in zip(text, hidden, strict=True):
        if not hide:
            shown.append(char)
        elif not previous:
            shown.append("***")
        previous = hide
    return "".join(shown)
