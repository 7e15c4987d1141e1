"""The one reader of the process environment and of Prefect Secret blocks, and the one owner
of live resources (pooled gateway clients, ledger engines) for ``flows/`` and ``tasks/``.

Everything else takes plain values: a URL, a key, a path. Settings a deployment may choose (the
key's Secret block, the database password's block) come in as parameters; the variables below
are the worker's fallbacks.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

from smspartner import SMSPartnerClient
from smspartner.models import CONNECT_TIMEOUT
from tasks import dburl
from tasks import ledger as lg
from tasks.errors import OperatorError
from tasks.nevertext import NeverText, Origin

API_KEY_ENV = "SMSPARTNER_API_KEY"
BASE_URL_ENV = "SMSPARTNER_BASE_URL"
LEDGER_URL_ENV = "SURVEY_LEDGER_URL"
SUPPRESSION_ENV = "SURVEY_SUPPRESSION_LIST"
DATA_DIR_ENV = "SURVEY_DATA_DIR"
DB_PASSWORD_ENV = "SURVEY_DB_PASSWORD"  # noqa: S105 - a variable name, not a password
# Secrets a command-line run took out of --db-url, for its own process only (never a parameter).
DB_SECRETS_ENV = "SURVEY_DB_URL_SECRETS"  # a variable name
SECRET_BLOCK = "smspartner-api-key"  # noqa: S105 - a block name, not a secret
# The data folder when SURVEY_DATA_DIR is unset: ``data/`` of the working directory, relative on
# purpose (a deployment runs at its clone's root; a test or an operator in a folder of their own).
DEFAULT_DATA_DIR = Path("data")
# The bundled samples, found from this file whatever the working directory (a run on them may
# not reach the real gateway: tasks/steps/prepare.py).
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"


def data_dir() -> Path:
    """Where every campaign file lives (``SURVEY_DATA_DIR``, default ``data/`` of the working
    directory): on several machines, one shared folder, so a follow-up, a purge or an erasure
    on any worker sees what every other worker wrote."""
    return Path(os.environ.get(DATA_DIR_ENV, "").strip() or DEFAULT_DATA_DIR)


def form_roots() -> list[Path]:
    """Where a file typed into a deployment's form may be: the clone's ``data/`` (the samples,
    the operator's lists) and the data folder, when elsewhere."""
    return list(dict.fromkeys([DEFAULT_DATA_DIR, data_dir()]))


def from_deployment() -> bool:
    """Whether this flow run was started from a deployment (its form), not a command line."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()  # the run's own record: no call to the API
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def state_dir() -> Path:
    return data_dir() / "state"


def reports_dir() -> Path:
    return data_dir() / "reports"


def legacy_suppression_file() -> Path:
    """The clear-text list earlier versions kept (STOP replies, erasures): imported into the
    never-text store once, then removed."""
    return state_dir() / "suppression.csv"


class CampaignStopped(OperatorError):
    """The campaign cannot go on (invalid key): str() is one line for the operator."""


def ledger_url() -> str:
    return os.environ.get(LEDGER_URL_ENV) or f"sqlite:///{state_dir() / 'ledger.sqlite'}"


def opt_out_lists(named: str | None = None) -> list[str]:
    """The opt-out lists a run imports into the never-text store (they add to it, never replace
    it): the worker's ``SURVEY_SUPPRESSION_LIST`` and the one the run names, each of which must
    exist."""
    chosen = [os.environ.get(SUPPRESSION_ENV, "").strip(), (named or "").strip()]
    return list(dict.fromkeys(c for c in chosen if c))


WITNESSES_ENV = "SURVEY_WITNESSES_FILE"


def witnesses_file(named: str | None = None) -> str | None:
    """The witness phones' list of a run: the file the run names, else the worker's
    ``SURVEY_WITNESSES_FILE``, else None (no witnesses). A named file wins rather than adds: a
    team testing its own staff list must not also text the worker's."""
    chosen = (named or "").strip() or os.environ.get(WITNESSES_ENV, "").strip()
    return chosen or None


def db_url_with_secrets(url: str, block: str | None) -> str:
    """The recipients database's URL with its secrets put back (``db_credentials``): they are
    never a flow parameter."""
    secrets = db_credentials(block)
    return dburl.join(url, secrets)


def db_credentials(block: str | None) -> dburl.Credentials:
    """The recipients database's secrets: the Secret block a deployment names, else those this
    process took out of its --db-url, else the worker's ``SURVEY_DB_PASSWORD``."""
    if block:
        from prefect.blocks.system import Secret

        try:
            password = str(Secret.load(block).get())  # type: ignore[union-attr]
        except Exception as exc:  # any failure means "no password", said plainly
            raise ValueError(
                f"cannot read the Secret block {block!r} ({type(exc).__name__})"
            ) from None
        return dburl.Credentials(password=password)
    # A password typed in --db-url (this process's own) wins over the worker's variable.
    own = dburl.Credentials.from_json(os.environ.get(DB_SECRETS_ENV, "{}"))
    return dburl.Credentials(
        password=own.password or os.environ.get(DB_PASSWORD_ENV), query=own.query
    )


def pseudonym_key(path: Path | None = None) -> bytes:
    """The ledger's pseudonym key: ``SURVEY_PSEUDONYM_KEY`` (the same on every worker of a
    ledger), else its file under the data folder (made on first use)."""
    given = os.environ.get(lg.PSEUDONYM_KEY_ENV, "")
    return lg.load_pseudonym_key(path or state_dir() / "pseudonym.key", given)


def keep_db_credentials(credentials: dburl.Credentials) -> None:
    """A command-line run's --db-url secrets, for this process only (never a flow parameter)."""
    if credentials:
        os.environ[DB_SECRETS_ENV] = credentials.to_json()


def get_api_key(secret_block: str | None = None) -> str:
    """The gateway key: the named Secret block when a deployment names one (an agency may run
    several accounts from one worker); else the environment, else the default block."""
    key = "" if secret_block else os.environ.get(API_KEY_ENV, "").strip()
    if key:
        return key
    block = secret_block or SECRET_BLOCK
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(block).get()  # type: ignore[union-attr]
    except Exception as exc:  # any failure means "no key", said plainly
        where = f"the Prefect Secret block {block!r}"
        if not secret_block:
            where = f"{API_KEY_ENV} or {where}"
        raise CampaignStopped(f"no API key: cannot read {where} ({type(exc).__name__})") from None
    return str(value)


def gateway_url() -> str:
    return os.environ.get(BASE_URL_ENV, "").strip() or SMSPartnerClient.DEFAULT_BASE_URL


_local = threading.local()


def thread_client(base_url: str, timeout: float, key_block: str | None = None) -> SMSPartnerClient:
    """One client (one Session, one connection pool) per worker thread, reused across chunks."""
    # The env key is part of the cache key so a changed key is picked up; a Secret block is
    # read once per thread rather than once per chunk.
    key = (base_url, timeout, key_block or os.environ.get(API_KEY_ENV, ""))
    cache: dict[tuple[str, float, str], SMSPartnerClient] = getattr(_local, "clients", {})
    _local.clients = cache
    if key not in cache:
        cache[key] = SMSPartnerClient(
            get_api_key(key_block), base_url, timeout=(CONNECT_TIMEOUT, timeout), max_retries=3
        )
    return cache[key]


_ledgers: dict[tuple[str, timedelta, float], lg.Ledger] = {}
_ledgers_lock = threading.Lock()


def open_ledger(
    url: str, *, lease: timedelta = lg.DEFAULT_LEASE, outage: float = lg.DEFAULT_OUTAGE
) -> lg.Ledger:
    """A ledger handed this worker's pseudonym key, read when first needed (a ledger that never
    purged needs none): the store never reaches for its own configuration."""
    return lg.Ledger(url, lease=lease, outage=outage, pseudonym_key=pseudonym_key)


def shared_ledger(
    url: str, lease: timedelta = lg.DEFAULT_LEASE, outage: float = lg.DEFAULT_OUTAGE
) -> lg.Ledger:
    """One engine (one connection pool) per ledger URL in this process. A ledger that cannot
    be opened at all (a URL that does not parse, a file that is not a database, a folder that
    cannot be written) is ``LedgerUnavailable`` too, said in one line."""
    with _ledgers_lock:
        if (url, lease, outage) not in _ledgers:
            try:
                _ledgers[(url, lease, outage)] = open_ledger(url, lease=lease, outage=outage)
            except lg.LedgerUnavailable:
                raise
            except Exception as exc:  # whatever broke, the run stops in one line
                raise lg.LedgerUnavailable(ledger_problem(url, exc)) from None
        return _ledgers[(url, lease, outage)]


def unusable_ledger(url: str) -> str | None:
    """Why the ledger cannot be used (None: it can), said in one line, before a flow starts."""
    try:
        shared_ledger(url)
    except lg.LedgerUnavailable as exc:
        return str(exc)
    return None


def ledger_problem(url: str, exc: BaseException) -> str:
    """One line on a ledger that cannot be opened, without its password."""
    from tasks.dburl import mask

    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    # SQLAlchemy's messages may quote the URL it was given: never echo its secrets.
    first = first.replace(url, mask(url))
    return (
        f"the ledger {mask(url)} cannot be opened ({type(exc).__name__}: {first}); check "
        "SURVEY_LEDGER_URL (a SQLAlchemy URL such as sqlite:///data/state/ledger.sqlite or "
        "postgresql://user@host/db) and that the file is a ledger this tool wrote"
    )


_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def never_text_store(ledger: lg.Ledger) -> NeverText:
    """The never-text store of ``ledger``. The clear-text list of earlier versions, when it is
    still in the data folder, is imported into it once and then removed (it held full numbers,
    erased people's included); a list that cannot be read stops everything in one line rather
    than be skipped."""
    store = NeverText(ledger)
    legacy = legacy_suppression_file()
    with _migrate_lock:
        if str(legacy) in _migrated or not legacy.exists():
            return store
        from tasks.recipients import RecipientsError, load_suppression_list

        try:
            if not any(c.isdigit() for c in legacy.read_text("utf-8", errors="replace")):
                legacy.unlink()  # a header alone: nothing to keep
                _migrated.add(str(legacy))
                return store
            listed = load_suppression_list(legacy)
        except RecipientsError as exc:
            raise lg.LedgerUnavailable(
                f"the opt-out list of an earlier version ({legacy}) cannot be imported into the "
                f"never-text store: {exc}; fix it (one number per line) and run again"
            ) from None
        store.add(listed.numbers, Origin.imported, f"migrated from {legacy.name}")
        legacy.unlink(missing_ok=True)
        _migrated.add(str(legacy))
    return store
