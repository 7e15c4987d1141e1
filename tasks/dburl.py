"""Database URLs with their credentials kept apart.

Prefect stores and shows a flow run's parameters, so a URL that reaches one must carry no
secret: neither in its user part (``postgresql://user:PASSWORD@host/db``) nor in its query string
(``?password=...``, ``?sslpassword=...``). ``split`` takes them out; ``join`` puts them back
inside the task that connects. SQLAlchemy 2's ``URL.set(password=None)`` keeps the password
(``None`` means "unchanged" there), hence ``_replace``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url

# Query keys that hold a secret in the drivers we use (libpq, psycopg, PyMySQL, pyodbc).
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "pass", "secret"})


class DbUrlError(ValueError):
    """A database URL that cannot be read: str() is one line without any secret in it."""


@dataclass(frozen=True)
class Credentials:
    password: str | None = None
    query: dict[str, str] = field(default_factory=dict)

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
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several kinds; the message may echo it
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
    """(the URL without any secret, the secrets taken out)."""
    parsed = parse(url)
    secrets = {k: str(v) for k, v in parsed.query.items() if k.lower() in SECRET_QUERY_KEYS}
    public = parsed._replace(password=None)
    if secrets:
        public = public.difference_update_query(list(secrets))
    password = None if parsed.password is None else str(parsed.password)
    return public.render_as_string(hide_password=False), Credentials(password, secrets)


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
    """The URL with every secret shown as ``***``; never raises."""
    try:
        parsed = make_url(str(url))
        hidden = [k for k in parsed.query if k.lower() in SECRET_QUERY_KEYS]
        if hidden:
            parsed = parsed.update_query_dict(dict.fromkeys(hidden, "***"))
        return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: hide what looks like one
        text = re.sub(r"^([^:/?#]*://[^:/@?#]*:)[^@]*@", r"\1***@", str(url))
        keys = "|".join(sorted(SECRET_QUERY_KEYS))
        return re.sub(rf"(?i)([?&;](?:{keys})=)[^&;#]*", r"\1***", text)
