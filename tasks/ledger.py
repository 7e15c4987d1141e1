"""The send ledger: what every chunk of every campaign became, kept in a database.

It is what makes a campaign exactly-once across retries, crashes and concurrent runs:

- the plan (chunks, their numbers, tags and slots) is written once per campaign, in one
  transaction, so a rerun with the same campaign id sends the same chunks, never new ones;
- a chunk is *claimed* (state ``sending``) before the gateway is called, and its outcome is
  written after; the claim is an update conditional on the chunk's state (or, when a budget is
  checked or another holder judged, a transaction that serialises on the campaign row), so two
  runs of one campaign can never both hold a chunk;
- a ``sending`` chunk whose owner died (same host, dead pid) or whose lease ran out is handed
  over as in doubt, for the caller to reconcile with the gateway (status by tag) before resending;
- budget checks happen inside the same claim transaction, so concurrent sends cannot overspend;
- the frequency cap is a reservation taken in the claim transaction: the chunk's numbers are
  recorded for this campaign (``texted``) under one lock shared by every campaign, after the
  numbers another campaign holds within the cap were set aside, so two campaigns started at the
  same moment on overlapping lists text a shared person once; a chunk that certainly did not
  land gives its reservations back;
- a ledger that cannot be reached (a restart, a failover) is ridden through: every operation is
  retried with backoff for up to ``outage`` seconds, then ``LedgerUnavailable`` says so in one
  line. A claim carries a token, so a claim whose commit was lost with the connection is
  recognised as ours when retried.

SQLite (the default, a file under ``data/``), PostgreSQL and MariaDB/MySQL (``mysql://``, through
PyMySQL) are tested; any SQLAlchemy URL should work.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from tasks.errors import SurveyError
from tasks.outcomes import ALREADY_PLANNED, BUDGET_EXCEEDED, INSUFFICIENT_CREDITS, ChunkState

log = logging.getLogger("survey.ledger")

DEFAULT_LEDGER_URL = "sqlite:///data/state/ledger.sqlite"

PENDING = ChunkState.pending
SENDING = ChunkState.sending
SENT = ChunkState.sent
FAILED = ChunkState.failed
IN_DOUBT = ChunkState.in_doubt
CANCELLED = ChunkState.cancelled

metadata = MetaData()

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("survey_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set when the gateway says credits are gone: later chunks are not even tried.
    Column("halt_reason", String(64)),
    # The account's balance before the campaign's first run: the report covers every run.
    Column("credits_before", Float),
    # What the campaign is bound to: a rerun with another input is refused unless asked for.
    Column("input_fingerprint", String(64)),
    # Set when some of its numbers were replaced by pseudonyms (purge, erasure): a rerun's new
    # chunks are then checked against them (see ``extend_plan``).
    Column("pseudonymised_at", DateTime(timezone=True)),
    Column("purged_at", DateTime(timezone=True)),  # the retention purge's last pass
)

chunks = Table(
    "chunks",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
    Column("tag", String(20), nullable=False, unique=True),
    Column("territory", String(16), nullable=False),
    Column("slot", String(40)),  # ISO 8601 with offset; NULL means "at once"
    Column("numbers", Text, nullable=False),  # comma-joined E.164, what the gateway gets
    Column("refused", Text),  # JSON {e164: gateway message} for numbers refused with code 9
    Column("size", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", String(64)),
    Column("detail", Text),
    Column("owner", String(200)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("reserved_cost", Float),
    Column("message_id", BigInteger),
    Column("nb_sms", Integer),
    Column("cost", Float),
    Column("currency", String(8)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True)),
    # When the latest send that may have landed ended (or will have ended, at the latest, for a
    # send under way); NULL when none is outstanding. "Not found" counts only a settle time later.
    Column("doubt_from", DateTime(timezone=True)),
    Column("claim_token", String(32)),  # recognises our own claim when a lost commit is retried
    Column("cost_estimated", Boolean),  # confirmed by status, priced by this campaign's answers
    Column("held", Text),  # JSON {e164: campaign} set aside: another campaign holds them (cap)
    # Covers the budget query, so a claim never reads the chunks' number lists.
    Index("ix_chunks_budget", "campaign_id", "state", "owner", "cost", "reserved_cost", "size"),
)

texted = Table(
    "texted",
    metadata,
    Column("e164", String(20), primary_key=True),
    Column("campaign_id", String(120), primary_key=True),
    # The primary key (e164 first) serves the frequency cap's lookups; a second index would
    # only slow the 500-row insert each chunk makes.
    Column("texted_at", DateTime(timezone=True), nullable=False),
)

# One row: claims that reserve numbers under the frequency cap serialise on it, across campaigns.
cap_lock = Table("cap_lock", metadata, Column("id", Integer, primary_key=True, autoincrement=False))

# The never-text store (``tasks/nevertext.py``): everybody who must never be texted again, by a
# keyed hash of the number only, one row per source that said so. It outlives every purge.
never_text = Table(
    "never_text",
    metadata,
    Column("digest", String(40), primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("reason", String(200)),
    Column("campaign_id", String(120)),
    Column("added_at", DateTime(timezone=True), nullable=False),
)

# The id of the key that made the ledger's pseudonyms (one row, written by the first purge or
# erasure): a process with another key would silently stop recognising those people.
pseudonym_keys = Table(
    "pseudonym_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


# Statements of the fan-out's hot path, built once: SQLAlchemy then reuses their compiled form
# instead of rebuilding and re-hashing them for every chunk.
_THIS_CHUNK = and_(
    chunks.c.campaign_id == bindparam("cid"), chunks.c.chunk_index == bindparam("idx")
)
_SELECT_CHUNK = select(chunks).where(_THIS_CHUNK)
_UPDATE_CHUNK = update(chunks).where(_THIS_CHUNK)
_UPDATE_CHUNK_RETURNING = _UPDATE_CHUNK.returning(*chunks.c)
# A fresh claim in one statement: the chunk is taken only if it is still to send and the campaign
# is not halted. Claims that need more (budget, a holder to judge, a halt to record) take the
# campaign lock instead.
_CLAIM_FRESH = (
    update(chunks)
    .where(
        _THIS_CHUNK,
        chunks.c.state.in_((PENDING, FAILED)),
        ~exists().where(
            campaigns.c.campaign_id == bindparam("cid"), campaigns.c.halt_reason.is_not(None)
        ),
    )
    .values(
        state=SENDING,
        owner=bindparam("new_owner"),
        claim_token=bindparam("token"),
        claimed_at=bindparam("at"),
        doubt_from=bindparam("doubt_from"),
        reserved_cost=chunks.c.size * bindparam("per_recipient"),
        attempts=chunks.c.attempts + 1,
        updated_at=bindparam("at"),
        reason=None,
        detail=None,
    )
)
_CLAIM_FRESH_RETURNING = _CLAIM_FRESH.returning(*chunks.c)
_LOCK_CAMPAIGN = select(campaigns.c.halt_reason).where(campaigns.c.campaign_id == bindparam("cid"))
_COMMITTED = func.coalesce(chunks.c.cost, chunks.c.reserved_cost, 0.0)
# Prices observed in the gateway's own answers (chunks confirmed by status are estimates).
_PRICED = and_(
    chunks.c.state == SENT,
    chunks.c.cost.is_not(None),
    chunks.c.size > 0,
    func.coalesce(chunks.c.cost_estimated, False).is_(False),
)
_BUDGET = select(
    func.coalesce(func.sum(_COMMITTED), 0.0),
    func.coalesce(
        func.sum(case((chunks.c.owner == bindparam("owner"), _COMMITTED), else_=0.0)), 0.0
    ),
    func.sum(case((_PRICED, chunks.c.cost), else_=None)),
    func.sum(case((_PRICED, chunks.c.size), else_=None)),
).where(and_(chunks.c.campaign_id == bindparam("cid"), chunks.c.state.in_((SENDING, SENT))))
_OBSERVED = select(
    func.sum(chunks.c.cost), func.sum(chunks.c.nb_sms), func.sum(chunks.c.size)
).where(and_(chunks.c.campaign_id == bindparam("cid"), _PRICED))
# Chunks confirmed at the gateway without an answer naming their price.
_ESTIMATED = select(chunks.c.chunk_index, chunks.c.size, chunks.c.cost, chunks.c.nb_sms).where(
    and_(
        chunks.c.campaign_id == bindparam("cid"),
        chunks.c.state == SENT,
        chunks.c.cost_estimated.is_(True),
    )
)
_REPRICE = (
    update(chunks)
    .where(and_(chunks.c.campaign_id == bindparam("cid"), chunks.c.chunk_index == bindparam("at")))
    .values(cost=bindparam("new_cost"), nb_sms=bindparam("new_sms"))
)
_LOCK_CAP = select(cap_lock.c.id).where(cap_lock.c.id == 1)
# Whether pseudonyms stand for numbers anywhere (a purge or an erasure marks its campaigns).
_ANY_PSEUDONYMISED = (
    select(campaigns.c.campaign_id).where(campaigns.c.pseudonymised_at.is_not(None)).limit(1)
)


class LedgerUnavailable(SurveyError):
    """The ledger could not be reached within the outage bound: str() is one line."""


class _Reclaimed(Exception):
    """A chunk changed state under a purge (a rerun claimed it): the purge is rolled back."""


class ClaimAction(StrEnum):
    SEND = "send"  # nothing of this chunk is outstanding: send it
    RECONCILE = "reconcile"  # an earlier send may have landed: settle it before sending
    SKIP = "skip"  # final (sent, cancelled), or refused now (budget, halted campaign)
    BUSY = "busy"  # another live run holds it: wait and ask again


def decide_claim(state: str, *, same_claim: bool, holder_alive: bool, halted: bool) -> ClaimAction:
    """What a claim of one chunk does, from the chunk's state and its holder (pure).

    ``same_claim``: the chunk is held under this very claim's token (our commit was lost with
    the connection and the claim is retried). ``holder_alive``: its holder's process still runs
    and its lease has not run out. A halted campaign takes no new chunk, but a chunk that may have
    landed is still reconciled.
    """
    if state in (SENT, CANCELLED):
        return ClaimAction.SKIP
    if state == SENDING:
        if same_claim:
            return ClaimAction.SEND
        return ClaimAction.BUSY if holder_alive else ClaimAction.RECONCILE
    if state == IN_DOUBT:
        return ClaimAction.RECONCILE
    return ClaimAction.SKIP if halted else ClaimAction.SEND


def budget_refusal(
    *,
    spent: float,
    mine: float,
    reserve: float,
    max_cost: float | None,
    credits: float | None,
) -> tuple[str, str] | None:
    """(reason, detail) when sending ``reserve`` more would pass the cap or the credits (pure).

    ``credits`` is what the account had when this run started: only this run's own commitments
    (``mine``) count against it, since earlier runs' sends were already taken from it.
    """
    if max_cost is not None and spent + reserve > max_cost + 1e-9:
        return BUDGET_EXCEEDED, f"projected cost {spent + reserve:.2f} > max_cost {max_cost:.2f}"
    if credits is not None and mine + reserve > credits + 1e-9:
        return INSUFFICIENT_CREDITS, f"projected cost {mine + reserve:.2f} > credits {credits:.2f}"
    return None


def chunk_tag(campaign_id: str, chunk_index: int) -> str:
    """Gateway tag of a chunk: <= 20 chars, lowercase, no spaces, unique across campaigns."""
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:12]
    return f"{digest}-{chunk_index:06d}"


# -- pseudonyms ---------------------------------------------------------------------------------
# After the retention period (or an erasure request) the ledger keeps a keyed hash instead of a
# number: still the same person for exactly-once and the frequency cap, no longer a phone number.
# Short enough for ``texted.e164`` (String(20)); 76 bits, so two people of any realistic ledger
# never share one; never starts with "+", so it is never taken for a number.

PSEUDONYM_KEY_ENV = "SURVEY_PSEUDONYM_KEY"
PSEUDONYM_KEY_PATH = Path("data/state/pseudonym.key")
_PSEUDONYM_HEX = 19
ERASED = "erased on request"  # what a chunk that was not sent keeps for an erased number
# What an unsent chunk keeps for a number taken out before its send (see ``withdraw``).
OPTED_OUT_SINCE = "in the never-text store since it was planned"
NOT_IN_INPUT = "not in the input the campaign was resumed on"
WITHDRAWN = (ERASED, OPTED_OUT_SINCE)  # rows of the input that say opted_out in the report


class PseudonymKeyError(LedgerUnavailable):
    """The pseudonym key is missing, malformed or not the ledger's: str() is one line. A kind of
    LedgerUnavailable, so a run stops on it in one line as it does on an outage."""


def pseudonym(e164: str, key: bytes) -> str:
    """The keyed hash that stands for a number once it may no longer be kept (pure)."""
    digest = hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()
    return "h" + digest[:_PSEUDONYM_HEX]


def is_pseudonym(value: str) -> bool:
    return (
        len(value) == _PSEUDONYM_HEX + 1
        and value[0] == "h"
        and all(c in "0123456789abcdef" for c in value[1:])
    )


def key_id(key: bytes) -> str:
    """Names a key without revealing it, to tell whether the ledger's pseudonyms are ours."""
    return hmac.new(key, b"survey-pseudonym-key-id", hashlib.sha256).hexdigest()[:16]


def load_pseudonym_key(path: Path = PSEUDONYM_KEY_PATH, given: str = "") -> bytes:
    """The key: ``given`` (``SURVEY_PSEUDONYM_KEY``, read by ``tasks.runtime``: the same on every
    worker that shares a ledger), else the file ``path``, created on first use (32 random bytes
    in hex, mode 0600)."""
    raw = given.strip()
    if not raw:
        try:
            raw = _key_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise PseudonymKeyError(
                f"cannot write or read the pseudonym key {path} ({why}); set "
                f"{PSEUDONYM_KEY_ENV}, or make its folder writable"
            ) from None
    if len(raw) < 32:
        where = PSEUDONYM_KEY_ENV if given.strip() else str(path)
        raise PseudonymKeyError(f"the pseudonym key in {where} is too short (32 characters min)")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        return raw.encode()


def _key_file(path: Path) -> str:
    """The key in ``path``, made there first (32 random bytes in hex, mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    raw = os.urandom(32).hex()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(raw + "\n")
    return raw


def owner_token(run_id: str) -> str:
    """Who holds a claim: host and pid let a rerun on the same host see that a claimant died."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def _owner_is_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only the lease can tell
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class ChunkPlan:
    chunk_index: int
    territory: str
    slot: str | None
    numbers: tuple[str, ...]


@dataclass(frozen=True)
class ChunkRow:
    campaign_id: str
    chunk_index: int
    tag: str
    territory: str
    slot: str | None
    numbers: tuple[str, ...]
    refused: dict[str, str]
    state: str
    reason: str | None
    detail: str | None
    owner: str | None
    message_id: int | None
    nb_sms: int | None
    cost: float | None
    currency: str | None
    attempts: int
    doubt_from: datetime | None = None
    cost_estimated: bool = False
    held: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def size(self) -> int:
        return len(self.numbers)


@dataclass
class PurgeScan:
    """The campaigns of a ledger as the retention purge sees them (see ``Ledger.purge_scan``)."""

    due: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    """What claim() decided for one chunk, with the chunk as the claim left it."""

    chunk: ChunkRow
    action: ClaimAction
    reserved: bool = False  # the chunk's numbers were recorded for the frequency cap


def _row(r: Any) -> ChunkRow:
    return ChunkRow(
        campaign_id=r.campaign_id,
        chunk_index=r.chunk_index,
        tag=r.tag,
        territory=r.territory,
        slot=r.slot,
        numbers=tuple(filter(None, (r.numbers or "").split(","))),
        refused=json.loads(r.refused) if r.refused else {},
        state=r.state,
        reason=r.reason,
        detail=r.detail,
        owner=r.owner,
        message_id=r.message_id,
        nb_sms=r.nb_sms,
        cost=r.cost,
        currency=r.currency,
        attempts=r.attempts or 0,
        doubt_from=_aware(r.doubt_from),
        cost_estimated=bool(r.cost_estimated),
        held=json.loads(r.held) if r.held else {},
        updated_at=_aware(r.updated_at),
    )


def _system_now() -> datetime:
    return datetime.now(UTC)


def _not_before(moment: datetime) -> datetime:
    """``moment`` rounded up to the second: MariaDB keeps whole seconds, and a doubt must never
    be recorded as starting earlier than it did."""
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; we only store UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _ridden(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Retry a ledger operation, or one of a store in its database (an object with a ``ledger``),
    through a short outage (see ``Ledger._ride``)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        ledger = args[0] if isinstance(args[0], Ledger) else getattr(args[0], "ledger", None)
        assert isinstance(ledger, Ledger)
        return ledger._ride(lambda: method(*args, **kwargs))

    return wrapper


# Errors of a ledger that is not there for now (and may be back): everything else is final.
_NOT_AN_OUTAGE = ("readonly", "read-only", "no such table", "malformed", "not a database")


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means "unreachable for now" (retry) rather than "wrong" (pure)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    text = str(exc.orig if isinstance(exc, DBAPIError) else exc).lower()
    return not any(mark in text for mark in _NOT_AN_OUTAGE)


class _Outage:
    """One log line when the ledger goes away and one when it is back, whatever the threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None

    def down(self, url: str, bound: float, exc: BaseException) -> float:
        with self.lock:
            if self.since is None:
                self.since = time.monotonic()
                log.warning(
                    "the ledger (%s) is unreachable (%s); retrying for up to %g s",
                    url,
                    type(getattr(exc, "orig", exc)).__name__,
                    bound,
                )
            return self.since

    def up(self) -> None:
        with self.lock:
            if self.since is not None:
                log.warning(
                    "the ledger is reachable again after %.1f s", time.monotonic() - self.since
                )
                self.since = None


class Ledger:
    """One database of campaigns, chunks and texted numbers."""

    def __init__(
        self,
        url: str = DEFAULT_LEDGER_URL,
        *,
        lease: timedelta = timedelta(minutes=5),
        outage: float = 120.0,
        clock: Callable[[], datetime] = _system_now,
        sleep: Callable[[float], None] = time.sleep,
        pseudonym_key: bytes | None = None,
    ):
        self.url = url
        self._pseudonym_key = pseudonym_key  # None: ``load_pseudonym_key()`` when first needed
        self._pseudonyms_seen = False  # the ledger holds pseudonyms made with our key
        self._pseudonyms_looked = -math.inf  # when we last found it held none
        self.lease = lease
        self.outage = outage
        self.now = clock
        self._sleep = sleep
        self._outage = _Outage()
        self.engine = _make_engine(url)
        self._local_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self._update_returning = bool(self.engine.dialect.update_returning)
        self._ride(self._set_up)

    def _set_up(self) -> None:
        """Tables, columns and the cap's lock row. Several workers may open a new ledger at the
        same moment: what another one created meanwhile is not an error."""
        for attempt in range(5):
            try:
                metadata.create_all(self.engine)
                _add_missing_columns(self.engine)
                with self._write() as conn:
                    if conn.execute(_LOCK_CAP).first() is None:
                        conn.execute(insert(cap_lock).values(id=1))
                return
            except (IntegrityError, ProgrammingError):
                if attempt == 4:
                    raise
                self._sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    @property
    def shown_url(self) -> str:
        """The URL with any password masked, for messages."""
        from tasks.dburl import mask

        return mask(self.url)  # the query string's secrets too (?password=...)

    def _ride(self, op: Callable[[], _R]) -> _R:
        """Run ``op``, retrying with backoff while the ledger is unreachable, up to the bound."""
        delay = 0.2
        since: float | None = None
        while True:
            try:
                result = op()
            except (OperationalError, InterfaceError, DBAPIError) as exc:
                if not is_outage(exc):
                    raise
                since = self._outage.down(self.shown_url, self.outage, exc)
                if time.monotonic() - since > self.outage:
                    raise LedgerUnavailable(
                        f"the ledger ({self.shown_url}) has been unreachable for more than "
                        f"{self.outage:g} s; run the campaign again with the same id once it "
                        "is back: nobody is texted twice"
                    ) from None
                self._sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                delay = min(delay * 2, 5.0)
                continue
            if since is not None:
                self._outage.up()
            return result

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction. SQLite has one writer at a time: queue this process's threads on
        a lock instead of letting them spin in SQLite's busy handler."""
        if self._local_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._local_lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _campaign_lock(self, campaign_id: str) -> Iterator[tuple[Connection, str | None]]:
        """A transaction that holds the campaign row (claims and budget checks serialise here),
        with the campaign's halt reason."""
        with self._write() as conn:
            stmt = _LOCK_CAMPAIGN
            if self.engine.dialect.name != "sqlite":  # SQLite's BEGIN IMMEDIATE already locks
                stmt = stmt.with_for_update()
            halt = conn.execute(stmt, {"cid": campaign_id}).scalar()
            yield conn, halt

    def _update(self, conn: Connection, key: dict[str, Any], values: dict[str, Any]) -> ChunkRow:
        """Write ``values`` to one chunk and return the row as written."""
        params = {**key, **values}
        if self._update_returning:
            return _row(conn.execute(_UPDATE_CHUNK_RETURNING, params).one())
        conn.execute(_UPDATE_CHUNK, params)
        return _row(conn.execute(_SELECT_CHUNK, key).one())

    # -- plan -------------------------------------------------------------------------------

    @_ridden
    def campaign_exists(self, campaign_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(campaigns.c.campaign_id).where(campaigns.c.campaign_id == campaign_id)
            ).first()
        return found is not None

    @_ridden
    def credits_before(self, campaign_id: str) -> float | None:
        """The balance recorded before the campaign's first run."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(campaigns.c.credits_before).where(campaigns.c.campaign_id == campaign_id)
            ).scalar()

    @_ridden
    def binding(self, campaign_id: str) -> tuple[str, str | None] | None:
        """(survey id, input fingerprint) the campaign was started with; None if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(campaigns.c.survey_id, campaigns.c.input_fingerprint).where(
                    campaigns.c.campaign_id == campaign_id
                )
            ).first()
        return None if row is None else (str(row[0]), row[1])

    @_ridden
    def bind_input(self, campaign_id: str, fingerprint: str) -> None:
        """A rerun allowed to change the input binds the campaign to its new input."""
        with self._write() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(input_fingerprint=fingerprint)
            )

    @_ridden
    def create_plan(
        self,
        campaign_id: str,
        survey_id: str,
        plan: Sequence[ChunkPlan],
        *,
        credits_before: float | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        """Write a campaign's chunks; False when another run created the campaign first."""
        now = self.now()
        try:
            with self._write() as conn:
                conn.execute(
                    insert(campaigns).values(
                        campaign_id=campaign_id,
                        survey_id=survey_id,
                        created_at=now,
                        credits_before=credits_before,
                        input_fingerprint=fingerprint,
                    )
                )
                self._insert_chunks(conn, campaign_id, plan, now)
        except IntegrityError:
            return False
        return True

    @_ridden
    def extend_plan(self, campaign_id: str, plan: Sequence[ChunkPlan]) -> None:
        """Add chunks for numbers a rerun found that no earlier run planned.

        Once a campaign's numbers were pseudonymised (purge, erasure), a caller that did not
        ``reidentify`` its chunks takes those people for new ones: the numbers the campaign
        already planned are left out here, and a chunk left empty is recorded ``cancelled``
        (``already_planned``), so nobody is texted twice whatever the caller did.
        """
        if plan:
            with self._campaign_lock(campaign_id) as (conn, _):
                marked = conn.execute(
                    select(campaigns.c.pseudonymised_at).where(
                        campaigns.c.campaign_id == campaign_id
                    )
                ).scalar()
                if marked is not None:
                    plan = self._not_yet_planned(conn, campaign_id, plan)
                self._insert_chunks(conn, campaign_id, plan, self.now())

    def _not_yet_planned(
        self, conn: Connection, campaign_id: str, plan: Sequence[ChunkPlan]
    ) -> list[ChunkPlan]:
        planned: set[str] = set()
        found = conn.execute(
            select(chunks.c.numbers, chunks.c.refused).where(chunks.c.campaign_id == campaign_id)
        )
        for numbers, refused in found:
            planned.update((numbers or "").split(","))
            planned.update(json.loads(refused) if refused else {})
        key = self._key()
        return [
            replace(
                c,
                numbers=tuple(
                    n for n in c.numbers if n not in planned and pseudonym(n, key) not in planned
                ),
            )
            for c in plan
        ]

    @staticmethod
    def _insert_chunks(
        conn: Connection, campaign_id: str, plan: Sequence[ChunkPlan], now: datetime
    ) -> None:
        rows = [
            {
                "campaign_id": campaign_id,
                "chunk_index": c.chunk_index,
                "tag": chunk_tag(campaign_id, c.chunk_index),
                "territory": c.territory,
                "slot": c.slot,
                "numbers": ",".join(c.numbers),
                "size": len(c.numbers),
                # Only ``extend_plan`` makes empty chunks: numbers planned before, nothing to send.
                "state": PENDING if c.numbers else CANCELLED,
                "reason": None if c.numbers else ALREADY_PLANNED,
                "attempts": 0,
                "updated_at": now,
            }
            for c in plan
        ]
        for start in range(0, len(rows), 1000):
            conn.execute(insert(chunks), rows[start : start + 1000])

    @_ridden
    def chunks(self, campaign_id: str, *, states: Sequence[str] = ()) -> list[ChunkRow]:
        query = select(chunks).where(chunks.c.campaign_id == campaign_id)
        if states:
            query = query.where(chunks.c.state.in_(list(states)))
        with self.engine.connect() as conn:
            result = conn.execute(query.order_by(chunks.c.chunk_index))
            return [_row(r) for r in result]

    @_ridden
    def chunk(self, campaign_id: str, chunk_index: int) -> ChunkRow:
        with self.engine.connect() as conn:
            r = conn.execute(_SELECT_CHUNK, {"cid": campaign_id, "idx": chunk_index}).one()
        return _row(r)

    @_ridden
    def halt(self, campaign_id: str, reason: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(halt_reason=reason)
            )

    @_ridden
    def clear_halt(self, campaign_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(halt_reason=None)
            )

    # -- claims -----------------------------------------------------------------------------

    def claim(
        self,
        campaign_id: str,
        chunk_index: int,
        owner: str,
        *,
        cost_per_recipient: float,
        max_cost: float | None = None,
        credits: float | None = None,
        cap_days: int = 0,
        attempt_ends_within: timedelta = timedelta(minutes=2),
    ) -> Claim:
        """Take a chunk for sending, or say why not (already sent, held, over budget).

        A chunk taken to send is recorded as possibly landing until ``attempt_ends_within``
        from now (the longest a send can take), so a run that dies mid-call leaves the chunk to
        be reconciled from that moment. Its numbers are reserved for the frequency cap
        (``cap_days``; 0 records them without checking other campaigns' reservations).
        """
        token = uuid.uuid4().hex
        return self._ride(
            lambda: self._claim(
                campaign_id,
                chunk_index,
                owner,
                token,
                cost_per_recipient=cost_per_recipient,
                max_cost=max_cost,
                credits=credits,
                cap_days=cap_days,
                ends_within=attempt_ends_within,
            )
        )

    def _claim(
        self,
        campaign_id: str,
        chunk_index: int,
        owner: str,
        token: str,
        *,
        cost_per_recipient: float,
        max_cost: float | None,
        credits: float | None,
        cap_days: int,
        ends_within: timedelta,
    ) -> Claim:
        now = self.now()
        key = {"cid": campaign_id, "idx": chunk_index}
        if max_cost is None and credits is None:
            values = {
                **key,
                "new_owner": owner,
                "token": token,
                "at": now,
                "doubt_from": _not_before(now + ends_within),
                "per_recipient": cost_per_recipient,
            }
            with self._write() as conn:
                if self._update_returning:
                    found = conn.execute(_CLAIM_FRESH_RETURNING, values).first()
                elif conn.execute(_CLAIM_FRESH, values).rowcount == 1:
                    found = conn.execute(_SELECT_CHUNK, key).one()
                else:
                    found = None
                if found is not None:
                    row = self._reserve(conn, _row(found), cap_days, now)
                    return Claim(row, ClaimAction.SEND, reserved=True)
        with self._campaign_lock(campaign_id) as (conn, halt):
            found = conn.execute(_SELECT_CHUNK, key).one()
            row = _row(found)
            claimed_at = _aware(found.claimed_at)
            alive = (  # another run holds it and still runs (ours: whatever we did may have landed)
                row.owner is not None
                and row.owner != owner
                and not _owner_is_dead(row.owner)
                and claimed_at is not None
                and now - claimed_at < self.lease
            )
            action = decide_claim(
                row.state,
                same_claim=found.claim_token == token,
                holder_alive=alive,
                halted=halt is not None,
            )
            if action is ClaimAction.BUSY:
                return Claim(row, action)
            if action is ClaimAction.SKIP:
                if row.state in (PENDING, FAILED):  # a halted campaign: this chunk fails too
                    failed = {"state": FAILED, "reason": halt, "detail": "campaign halted"}
                    return Claim(self._update(conn, key, {**failed, "updated_at": now}), action)
                return Claim(row, action)
            if action is ClaimAction.SEND and found.claim_token == token:
                return Claim(row, action, reserved=True)  # our own claim, committed before
            reserve = row.size * cost_per_recipient
            if action is ClaimAction.SEND and (max_cost is not None or credits is not None):
                spent, mine, observed = _budget(conn, campaign_id, owner)
                # The estimate holds until the gateway's own answers tell the real price.
                reserve = row.size * (observed or cost_per_recipient)
                refusal = budget_refusal(
                    spent=spent, mine=mine, reserve=reserve, max_cost=max_cost, credits=credits
                )
                if refusal:
                    failed = {"state": FAILED, "reason": refusal[0], "detail": refusal[1]}
                    refused = self._update(conn, key, {**failed, "updated_at": now})
                    return Claim(refused, ClaimAction.SKIP)
            doubt_from = _not_before(now + ends_within)
            if action is ClaimAction.RECONCILE:
                # A send of an earlier claim may have landed: it ended when recorded, or at the
                # latest when its holder would have given up; the oldest rows lack the column.
                fallback = (claimed_at + ends_within) if claimed_at else row.updated_at or now
                doubt_from = row.doubt_from or fallback
            values = {
                "state": SENDING,
                "owner": owner,
                "claim_token": token,
                "claimed_at": now,
                "doubt_from": doubt_from,
                "reserved_cost": reserve,
                "attempts": row.attempts + 1,
                "updated_at": now,
                "reason": None,
                "detail": None,
            }
            claimed = self._update(conn, key, values)
            if action is ClaimAction.SEND:
                return Claim(self._reserve(conn, claimed, cap_days, now), action, reserved=True)
            return Claim(claimed, action)

    def _reserve(self, conn: Connection, row: ChunkRow, cap_days: int, now: datetime) -> ChunkRow:
        """Record the chunk's numbers for the frequency cap, in the claim's transaction, after
        setting aside those another campaign holds within ``cap_days``."""
        numbers = list(row.numbers)
        if not numbers:
            return row
        at = now
        if row.slot and datetime.fromisoformat(row.slot) > now:
            at = datetime.fromisoformat(row.slot).astimezone(UTC)
        if cap_days > 0:
            if self.engine.dialect.name != "sqlite":  # SQLite's BEGIN IMMEDIATE already locks
                conn.execute(_LOCK_CAP.with_for_update())
            held = _held_elsewhere(
                conn,
                row.campaign_id,
                numbers,
                now - timedelta(days=cap_days),
                self._aliases(conn, numbers),
            )
            if held:
                numbers = [n for n in numbers if n not in held]
                values = {
                    "numbers": ",".join(numbers),
                    "size": len(numbers),
                    "held": json.dumps({**row.held, **held}),
                    "updated_at": now,
                }
                row = self._update(conn, {"cid": row.campaign_id, "idx": row.chunk_index}, values)
        _record_texted(conn, row.campaign_id, numbers, at)
        return row

    # -- outcomes ---------------------------------------------------------------------------

    @_ridden
    def update_chunk(self, campaign_id: str, chunk_index: int, **values: Any) -> ChunkRow:
        """Record anything about a chunk (slot, numbers after refusals, state); the row back."""
        if "numbers" in values and not isinstance(values["numbers"], str):
            values["size"] = len(values["numbers"])
            values["numbers"] = ",".join(values["numbers"])
        if "refused" in values and not isinstance(values["refused"], str):
            values["refused"] = json.dumps(values["refused"]) if values["refused"] else None
        if values.get("doubt_from") is not None:
            values["doubt_from"] = _not_before(values["doubt_from"])
        values["updated_at"] = self.now()
        with self._write() as conn:
            return self._update(conn, {"cid": campaign_id, "idx": chunk_index}, values)

    @_ridden
    def mark_sent(
        self,
        campaign_id: str,
        chunk_index: int,
        *,
        message_id: int | None,
        nb_sms: int,
        cost: float,
        currency: str,
        texted_at: datetime,
        detail: str | None = None,
        numbers: Sequence[str] | None = None,
        estimated: bool = False,
        reserved: bool = False,
    ) -> ChunkRow:
        """The outcome and the per-recipient record, in one transaction.

        ``numbers`` are the chunk's numbers as last recorded, when the caller has them at hand;
        ``reserved`` says the claim already recorded them for the frequency cap. ``estimated``:
        no answer named the chunk's price (it was confirmed through the status endpoint); its
        cost and SMS count are then the campaign's learnt price as soon as one is known, here
        or later (see ``_reprice``), ``cost`` and ``nb_sms`` being only the fallback.
        """
        key = {"cid": campaign_id, "idx": chunk_index}
        values = {
            "state": SENT,
            "message_id": message_id,
            "nb_sms": nb_sms,
            "cost": cost,
            "currency": currency,
            "cost_estimated": estimated,
            "doubt_from": None,
            "reason": None,
            "detail": detail,
            "updated_at": self.now(),
        }
        # The campaign lock orders the prices: whichever of an estimated chunk and the first
        # priced one commits second sees the other.
        with self._campaign_lock(campaign_id) as (conn, _halt):
            row = self._update(conn, key, values)
            wanted = [n for n in (row.numbers if numbers is None else numbers) if n]
            if not reserved:
                _record_texted(conn, campaign_id, wanted, texted_at)
            elif row.slot is not None and wanted:
                # Rescheduled after the claim reserved it: the cap counts from the delivery.
                _retime_texted(conn, campaign_id, wanted, texted_at)
            if chunk_index in _reprice(conn, campaign_id):
                row = _row(conn.execute(_SELECT_CHUNK, key).one())
        return row

    @_ridden
    def mark_in_doubt(
        self, campaign_id: str, chunk_index: int, *, doubt_from: datetime | None, detail: str
    ) -> ChunkRow:
        """The chunk may have landed; ``doubt_from`` (None: keep the recorded one) is when the
        attempt ended. The claim is let go so any later run can settle it."""
        values: dict[str, Any] = {
            "state": IN_DOUBT,
            "reason": IN_DOUBT,
            "detail": detail[:500],
            "owner": None,
            "claim_token": None,
            "updated_at": self.now(),
        }
        if doubt_from is not None:
            values["doubt_from"] = _not_before(doubt_from)
        with self._write() as conn:
            return self._update(conn, {"cid": campaign_id, "idx": chunk_index}, values)

    @_ridden
    def mark_failed(
        self, campaign_id: str, chunk_index: int, reason: str, detail: str | None
    ) -> ChunkRow:
        """Nothing of the chunk landed: it fails, and its numbers leave the frequency cap."""
        detail = (detail or "")[:500] or None
        return self._give_back(campaign_id, chunk_index, state=FAILED, reason=reason, detail=detail)

    @_ridden
    def set_aside(self, campaign_id: str, chunk_index: int, refused: dict[str, str]) -> ChunkRow:
        """Numbers the gateway refused leave the chunk (kept with its message) and the cap."""
        with self._write() as conn:
            key = {"cid": campaign_id, "idx": chunk_index}
            row = _row(conn.execute(_SELECT_CHUNK, key).one())
            numbers = [n for n in row.numbers if n not in refused]
            values = {
                "numbers": ",".join(numbers),
                "size": len(numbers),
                "refused": json.dumps({**row.refused, **refused}),
                "updated_at": self.now(),
            }
            row = self._update(conn, key, values)
            _forget_texted(conn, campaign_id, list(refused))
        return row

    @_ridden
    def release(self, campaign_id: str, chunk_index: int) -> ChunkRow:
        """Give a claim back untouched (nothing was sent), e.g. on an invalid key."""
        return self._give_back(campaign_id, chunk_index, state=PENDING, reserved_cost=None)

    def _give_back(self, campaign_id: str, chunk_index: int, **values: Any) -> ChunkRow:
        """Nothing of the chunk landed: let the claim go and the numbers leave the cap."""
        values.update(doubt_from=None, owner=None, claim_token=None, updated_at=self.now())
        with self._write() as conn:
            row = self._update(conn, {"cid": campaign_id, "idx": chunk_index}, values)
            _forget_texted(conn, campaign_id, row.numbers)
        return row

    @_ridden
    def observed_prices(self, campaign_id: str) -> tuple[float | None, float | None]:
        """(cost, SMS) per recipient in the gateway's own answers to this campaign, or None."""
        with self.engine.connect() as conn:
            cost, nb_sms, size = conn.execute(_OBSERVED, {"cid": campaign_id}).one()
        if not size:
            return None, None
        return float(cost) / int(size), (float(nb_sms) / int(size) if nb_sms else None)

    # -- frequency cap ----------------------------------------------------------------------

    @_ridden
    def recently_texted(
        self, numbers: Iterable[str], *, since: datetime, exclude_campaign: str
    ) -> set[str]:
        """Numbers texted (or reserved) by another campaign at or after ``since``."""
        since = since.astimezone(UTC)
        wanted = list(dict.fromkeys(numbers))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 5000):
                part = wanted[start : start + 5000]
                aliases = self._aliases(conn, part, fresh=start == 0)
                found.update(_held_elsewhere(conn, exclude_campaign, part, since, aliases))
        return found

    @_ridden
    def campaigns_texted_since(self, since: datetime) -> list[str]:
        """Campaigns that texted someone at or after ``since`` (for the daily follow-up)."""
        since = since.astimezone(UTC)
        with self.engine.connect() as conn:
            result = conn.execute(
                select(texted.c.campaign_id)
                .where(texted.c.texted_at >= since)
                .distinct()
                .order_by(texted.c.campaign_id)
            )
            return [r[0] for r in result]

    @_ridden
    def withdraw(self, campaign_id: str, why: dict[str, str]) -> int:
        """Take numbers out of the campaign's chunks that no send can have reached yet
        (``pending``, ``failed``): each leaves the list for ``refused`` with its reason, so no
        later send carries it. A chunk being sent or in doubt keeps its numbers (its send may
        have landed). How many numbers were taken out."""
        if not why:
            return 0
        taken = 0
        with self._campaign_lock(campaign_id) as (conn, _):
            found = conn.execute(
                select(chunks).where(
                    chunks.c.campaign_id == campaign_id, chunks.c.state.in_((PENDING, FAILED))
                )
            )
            for c in [_row(r) for r in found]:
                out = [n for n in c.numbers if n in why]
                if not out:
                    continue
                numbers = [n for n in c.numbers if n not in why]
                refused = {**c.refused, **{n: why[n] for n in out}}
                values = {
                    "numbers": ",".join(numbers),
                    "size": len(numbers),
                    "refused": json.dumps(refused),
                }
                taken += len(out) if _update_unchanged(conn, c, values) else 0
        return taken

    @contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """One holder at a time of ``name`` among every process of every machine that shares
        this ledger: a database lock (PostgreSQL advisory lock, MariaDB/MySQL ``GET_LOCK``),
        released by the database if the holder dies. SQLite is one machine's file: a file lock
        beside it."""
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            with _file_lock(self.url, digest.hex()):
                yield
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if dialect == "postgresql":
                key = int.from_bytes(digest, "big", signed=True)
                params: dict[str, Any] = {"k": key}
                conn.execute(text("SELECT pg_advisory_lock(:k)"), params)
                release = text("SELECT pg_advisory_unlock(:k)")
            else:
                params = {"n": "survey-" + digest.hex(), "t": timeout}
                got = conn.execute(text("SELECT GET_LOCK(:n, :t)"), params).scalar()
                if got != 1:
                    raise LedgerUnavailable(f"could not take the lock {name!r} in {timeout:g} s")
                release = text("SELECT RELEASE_LOCK(:n)")
            try:
                yield
            finally:
                conn.execute(release, params)

    # -- cancellation -----------------------------------------------------------------------

    @_ridden
    def mark_cancelled(
        self,
        campaign_id: str,
        chunk_index: int,
        *,
        from_states: Sequence[str],
        reason: str,
        detail: str | None = None,
    ) -> bool:
        """Set a chunk ``cancelled`` if it is still in one of ``from_states``; False otherwise.

        The write is conditional on the state, so a chunk that a concurrent run claimed in
        between is left alone (it is being sent; cancel it once it is). Its recipients leave the
        frequency cap's record: they were never texted.
        """
        now = self.now()
        with self._campaign_lock(campaign_id) as (conn, _):
            cond = and_(
                chunks.c.campaign_id == campaign_id,
                chunks.c.chunk_index == chunk_index,
                chunks.c.state.in_(list(from_states)),
            )
            row = conn.execute(select(chunks.c.state, chunks.c.numbers).where(cond)).first()
            if row is None:
                return False
            done = conn.execute(
                update(chunks)
                .where(cond)
                .values(state=CANCELLED, reason=reason, detail=detail, owner=None, updated_at=now)
            )
            if done.rowcount != 1:  # claimed in between by a run that does not take this lock
                return False
            _forget_texted(conn, campaign_id, [n for n in (row.numbers or "").split(",") if n])
        return True

    # -- pseudonyms: the frequency cap, reruns, the retention purge and erasure ----------------

    def _key(self) -> bytes:
        if self._pseudonym_key is None:
            from tasks.runtime import pseudonym_key  # the environment is read there only

            self._pseudonym_key = pseudonym_key()
        return self._pseudonym_key

    def _aliases(
        self, conn: Connection, numbers: Sequence[str], *, fresh: bool = False
    ) -> dict[str, str]:
        """{pseudonym: number} for ``numbers`` when the ledger holds pseudonyms, else {}.

        Whether it does is looked up again at most once a minute (``fresh``: now); once it does,
        it always will. So a ledger that never purged needs no key and the claims pay nothing.
        """
        if not self._pseudonyms_seen:
            if not fresh and time.monotonic() - self._pseudonyms_looked < 60:
                return {}
            self._pseudonyms_looked = time.monotonic()
            if conn.execute(_ANY_PSEUDONYMISED).first() is None:
                return {}
            self._check_key(set(conn.execute(select(pseudonym_keys.c.key_id)).scalars()))
            self._pseudonyms_seen = True
        key = self._key()
        return {pseudonym(n, key): n for n in numbers if n.startswith("+")}

    def _check_key(self, ids: set[str]) -> None:
        if ids and key_id(self._key()) not in ids:
            raise PseudonymKeyError(
                f"the pseudonym key of this machine is not the one the ledger's pseudonyms were "
                f"made with (set {PSEUDONYM_KEY_ENV} to the same key on every worker of the "
                f"ledger): people already purged or erased would not be recognised"
            )

    def _adopt_key(self, conn: Connection, *, pseudonyms: bool = True) -> bytes:
        """The key, checked against the ledger's and recorded as its key, before writing any
        keyed value: pseudonyms (purge, erasure), or the never-text store's (``pseudonyms``
        False: the chunks and the frequency cap still hold none, and pay nothing for it)."""
        key = self._key()
        ids = set(conn.execute(select(pseudonym_keys.c.key_id)).scalars())
        self._check_key(ids)
        if not ids:
            conn.execute(insert(pseudonym_keys).values(key_id=key_id(key), created_at=self.now()))
        self._pseudonyms_seen = self._pseudonyms_seen or pseudonyms
        return key

    def reidentify(self, rows: Sequence[ChunkRow], numbers: Iterable[str]) -> list[ChunkRow]:
        """The chunks with each pseudonym of one of ``numbers`` (the input at hand, E.164) put
        back as that number, so a rerun of a purged campaign matches its people to the chunks
        that already planned them. Chunks without pseudonyms come back as they are."""
        rows = list(rows)
        # A campaign never purged nor erased from holds no pseudonym: skip walking every number
        # of every chunk (a million at a large campaign's report).
        ids = sorted({c.campaign_id for c in rows})
        with self.engine.connect() as conn:
            marked = conn.execute(
                _ANY_PSEUDONYMISED.where(campaigns.c.campaign_id.in_(ids))
            ).first()
        if marked is None:
            return rows
        if not any(is_pseudonym(n) for c in rows for n in (*c.numbers, *c.refused, *c.held)):
            return rows
        key = self._key()
        back = {pseudonym(n, key): n for n in set(numbers) if isinstance(n, str) and n}
        return [
            replace(
                c,
                numbers=tuple(back.get(n, n) for n in c.numbers),
                refused={back.get(n, n): m for n, m in c.refused.items()},
                held={back.get(n, n): o for n, o in c.held.items()},
            )
            for c in rows
        ]

    @_ridden
    def purge_scan(self, cutoff: datetime) -> PurgeScan:
        """Which campaigns the retention purge concerns, by their last activity: ``due`` (every
        chunk final, no activity since ``cutoff``, not purged since its last change),
        ``unfinished`` (as old, but a chunk may still be sent or settled: kept), ``purged``
        (done before), ``recent``."""
        open_chunks = func.sum(case((chunks.c.state.in_((SENT, FAILED, CANCELLED)), 0), else_=1))
        query = (
            select(
                campaigns.c.campaign_id,
                campaigns.c.created_at,
                campaigns.c.purged_at,
                func.max(chunks.c.updated_at),
                open_chunks,
            )
            .select_from(
                campaigns.outerjoin(chunks, chunks.c.campaign_id == campaigns.c.campaign_id)
            )
            .group_by(campaigns.c.campaign_id, campaigns.c.created_at, campaigns.c.purged_at)
            .order_by(campaigns.c.campaign_id)
        )
        scan = PurgeScan()
        with self.engine.connect() as conn:
            for cid, created, purged, updated, still_open in conn.execute(query):
                last = max(d for d in (_aware(created), _aware(updated)) if d is not None)
                purged_at = _aware(purged)
                if last >= cutoff:
                    scan.recent.append(cid)
                elif still_open:
                    scan.unfinished.append(cid)
                elif purged_at is None or purged_at < last:
                    scan.due.append(cid)
                else:
                    scan.purged.append(cid)
        return scan

    @_ridden
    def campaign_numbers(self, campaign_id: str) -> set[str]:
        """Every full number the ledger holds for a campaign (numbers, refused, set aside)."""
        found: set[str] = set()
        for c in self.chunks(campaign_id):
            found.update(n for n in (*c.numbers, *c.refused, *c.held) if n.startswith("+"))
        return found

    @_ridden
    def purge_campaign(
        self, campaign_id: str, cutoff: datetime, scrub: Callable[[str], str]
    ) -> dict[str, int] | None:
        """Replace every number of a finished campaign by its pseudonym; None when it is not
        (or no longer) purgeable: a chunk not final, or activity since ``cutoff``.

        Chunks keep their state, tag, counts and costs, with one exception: a ``failed`` chunk
        could be sent again by a rerun, and its numbers are gone, so it becomes ``cancelled``
        (its reason kept, its detail saying why). ``scrub`` masks numbers in free texts (the
        gateway's messages, details). Each write is conditional on the state read, so a chunk
        claimed meanwhile rolls the campaign back for a later purge.
        """
        try:
            return self._purge_campaign(campaign_id, cutoff, scrub)
        except _Reclaimed:
            return None

    def _purge_campaign(
        self, campaign_id: str, cutoff: datetime, scrub: Callable[[str], str]
    ) -> dict[str, int] | None:
        now = self.now()
        with self._campaign_lock(campaign_id) as (conn, _):
            created = conn.execute(
                select(campaigns.c.created_at).where(campaigns.c.campaign_id == campaign_id)
            ).scalar()
            found = [
                _row(r)
                for r in conn.execute(select(chunks).where(chunks.c.campaign_id == campaign_id))
            ]
            last = max(
                d for d in (_aware(created), *(c.updated_at for c in found)) if d is not None
            )
            if last >= cutoff or any(c.state not in (SENT, FAILED, CANCELLED) for c in found):
                return None
            key = self._adopt_key(conn)
            replaced: set[str] = set()

            def alias(n: str) -> str:
                if not n.startswith("+"):
                    return n
                replaced.add(n)
                return pseudonym(n, key)

            changed = 0
            for c in found:
                values: dict[str, Any] = {
                    "numbers": ",".join(alias(n) for n in c.numbers),
                    "refused": json.dumps({alias(n): scrub(m) for n, m in c.refused.items()})
                    if c.refused
                    else None,
                    "held": json.dumps({alias(n): o for n, o in c.held.items()})
                    if c.held
                    else None,
                    "detail": scrub(c.detail) if c.detail else c.detail,
                }
                if c.state == FAILED:
                    values["state"] = CANCELLED
                    values["detail"] = (
                        f"failed ({c.reason or 'unknown'}) and purged after the retention "
                        "period: its numbers are pseudonymised, a rerun cannot send it"
                    )
                if (
                    values["numbers"] == ",".join(c.numbers)
                    and values["detail"] == c.detail
                    and "state" not in values
                    and (values["refused"] is None) == (not c.refused)
                    and not any(n.startswith("+") for n in (*c.refused, *c.held))
                ):
                    continue
                if not _update_unchanged(conn, c, values):
                    raise _Reclaimed
                changed += 1
            texted_rows = self._pseudonymise_texted(conn, campaign_id, key, replaced)
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(
                    purged_at=now,
                    pseudonymised_at=func.coalesce(campaigns.c.pseudonymised_at, now),
                )
            )
        return {"chunks": changed, "numbers": len(replaced), "texted": texted_rows}

    def _pseudonymise_texted(
        self, conn: Connection, campaign_id: str, key: bytes, replaced: set[str]
    ) -> int:
        """The campaign's frequency-cap rows under pseudonyms, with their times kept."""
        found = conn.execute(
            select(texted.c.e164, texted.c.texted_at).where(
                texted.c.campaign_id == campaign_id, texted.c.e164.like("+%")
            )
        ).all()
        for start in range(0, len(found), 500):
            part = found[start : start + 500]
            conn.execute(
                delete(texted).where(
                    texted.c.campaign_id == campaign_id,
                    texted.c.e164.in_([e164 for e164, _ in part]),
                )
            )
            conn.execute(
                insert(texted),
                [
                    {"e164": pseudonym(e164, key), "campaign_id": campaign_id, "texted_at": at}
                    for e164, at in part
                ],
            )
        replaced.update(e164 for e164, _ in found)
        return len(found)

    @_ridden
    def erase_number(self, e164: str, scrub: Callable[[str], str]) -> dict[str, int]:
        """Replace one person's number by its pseudonym everywhere in the ledger.

        In a sent or cancelled chunk the pseudonym stands where the number was (what the gateway
        got, the cost and counts stay); from a chunk that could still be sent (pending, failed,
        in doubt, being sent) the number leaves the list for ``refused`` (``erased on
        request``), so no send ever carries it. Set-aside and refused entries and the frequency
        cap's rows take the pseudonym; ``scrub`` masks the person in free texts.
        """
        now = self.now()
        with self._write() as conn:
            key = self._adopt_key(conn)
            alias = pseudonym(e164, key)
            candidates = conn.execute(
                select(chunks).where(
                    or_(
                        chunks.c.numbers.like(f"%{e164}%"),
                        chunks.c.held.like(f"%{e164}%"),
                        chunks.c.refused.is_not(None),
                        chunks.c.detail.is_not(None),
                    )
                )
            )
            touched: set[str] = set()
            changed = 0
            for c in (_row(r) for r in candidates):
                numbers = list(c.numbers)
                refused = {n: scrub(m) for n, m in c.refused.items()}
                if e164 in refused:
                    refused[alias] = refused.pop(e164)
                if e164 in numbers:
                    if c.state in (SENT, CANCELLED):
                        numbers = [alias if n == e164 else n for n in numbers]
                    else:
                        numbers = [n for n in numbers if n != e164]
                        refused[alias] = ERASED
                held = {(alias if n == e164 else n): o for n, o in c.held.items()}
                detail = scrub(c.detail) if c.detail else c.detail
                if (numbers, refused, held, detail) == (
                    list(c.numbers),
                    c.refused,
                    c.held,
                    c.detail,
                ):
                    continue
                self._update(
                    conn,
                    {"cid": c.campaign_id, "idx": c.chunk_index},
                    {
                        "numbers": ",".join(numbers),
                        "size": len(numbers),
                        "refused": json.dumps(refused) if refused else None,
                        "held": json.dumps(held) if held else None,
                        "detail": detail,
                    },
                )
                touched.add(c.campaign_id)
                changed += 1
            rows = conn.execute(select(texted.c.campaign_id).where(texted.c.e164 == e164)).all()
            for (cid,) in rows:
                twin = and_(texted.c.e164 == alias, texted.c.campaign_id == cid)
                mine = and_(texted.c.e164 == e164, texted.c.campaign_id == cid)
                if conn.execute(select(texted.c.e164).where(twin)).first() is None:
                    conn.execute(update(texted).where(mine).values(e164=alias))
                else:
                    conn.execute(delete(texted).where(mine))
                touched.add(cid)
            if touched:
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.campaign_id.in_(sorted(touched)))
                    .values(pseudonymised_at=func.coalesce(campaigns.c.pseudonymised_at, now))
                )
        return {"chunks": changed, "campaigns": len(touched), "texted": len(rows)}

    def compact(self) -> bool:
        """Rewrite the database so that replaced values do not linger in free pages or the
        write-ahead log (SQLite: VACUUM and a truncating checkpoint; PostgreSQL: VACUUM, which
        frees dead rows for reuse without zeroing them). False when it could not be done now."""
        dialect = self.engine.dialect.name
        try:
            if dialect == "sqlite":
                raw = self.engine.raw_connection()
                try:
                    sqlite = raw.driver_connection
                    assert sqlite is not None
                    sqlite.execute("VACUUM")
                    busy = sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    raw.close()
                return bool(busy) and busy[0] == 0
            if dialect == "postgresql":
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("VACUUM chunks")
                    c.exec_driver_sql("VACUUM texted")
                return True
        except (OperationalError, DBAPIError):
            return False
        return False


def _held_elsewhere(
    conn: Connection,
    campaign_id: str,
    numbers: Sequence[str],
    since: datetime,
    aliases: dict[str, str] | None = None,
) -> dict[str, str]:
    """{number: campaign} for the numbers another campaign texted or reserved since ``since``,
    under their own E.164 or under a pseudonym (``aliases``: {pseudonym: number})."""
    if not numbers:
        return {}
    aliases = aliases or {}
    wanted = [*numbers, *aliases]
    since = since.astimezone(UTC)
    dialect = conn.dialect
    # SQLite reads the list from one JSON array and PostgreSQL from one array parameter (as
    # _record_texted writes them): SQLAlchemy renders an IN of thousands of values one bound
    # parameter at a time, which costs more than the lookup (seconds at a million numbers).
    process = texted.c.texted_at.type.dialect_impl(dialect).bind_processor(dialect)
    when = process(since) if process else since
    columns = "SELECT e164, campaign_id FROM texted WHERE"
    if dialect.name == "sqlite":
        found = conn.exec_driver_sql(
            f"{columns} e164 IN (SELECT value FROM json_each(?)) AND texted_at >= ? "
            "AND campaign_id != ?",
            (json.dumps(wanted), when, campaign_id),
        )
    elif dialect.name == "postgresql":
        found = conn.exec_driver_sql(
            f"{columns} e164 = ANY(%s::text[]) AND texted_at >= %s AND campaign_id != %s",
            (wanted, when, campaign_id),
        )
    else:
        found = conn.execute(
            select(texted.c.e164, texted.c.campaign_id).where(
                and_(
                    texted.c.e164.in_(wanted),
                    texted.c.texted_at >= since,
                    texted.c.campaign_id != campaign_id,
                )
            )
        )
    return {aliases.get(e164, e164): other for e164, other in found}


def _forget_texted(conn: Connection, campaign_id: str, numbers: Sequence[str]) -> None:
    for start in range(0, len(numbers), 500):
        conn.execute(
            delete(texted).where(
                and_(
                    texted.c.campaign_id == campaign_id,
                    texted.c.e164.in_(list(numbers[start : start + 500])),
                )
            )
        )


def _retime_texted(
    conn: Connection, campaign_id: str, numbers: Sequence[str], texted_at: datetime
) -> None:
    for start in range(0, len(numbers), 500):
        conn.execute(
            update(texted)
            .where(
                and_(
                    texted.c.campaign_id == campaign_id,
                    texted.c.e164.in_(list(numbers[start : start + 500])),
                )
            )
            .values(texted_at=texted_at.astimezone(UTC))
        )


def _update_unchanged(conn: Connection, c: ChunkRow, values: dict[str, Any]) -> bool:
    """Write ``values`` to chunk ``c`` if it is still in the state it was read in (a claim
    meanwhile wins); whether it was written."""
    done = conn.execute(
        update(chunks)
        .where(
            chunks.c.campaign_id == c.campaign_id,
            chunks.c.chunk_index == c.chunk_index,
            chunks.c.state == c.state,
        )
        .values(**values)
    )
    return done.rowcount == 1


@contextmanager
def _file_lock(url: str, name: str) -> Iterator[None]:
    """A lock file beside a SQLite ledger (an in-memory one: this process only)."""
    import fcntl

    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:" or path == url:
        with _memory_lock:
            yield
        return
    folder = Path(path).parent / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_memory_lock = threading.Lock()


def _add_missing_columns(engine: Engine) -> None:
    """Ledgers written by earlier versions lack the newer columns: add them (all nullable)."""
    found = inspect(engine)
    for table in (campaigns, chunks):
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


def _record_texted(
    conn: Connection, campaign_id: str, numbers: list[str], texted_at: datetime
) -> None:
    """One row per recipient texted, in one statement where the database can take a list.

    This runs once per chunk on the fan-out's hot path, inside the write transaction that every
    other worker waits for: SQLite expands a JSON array and PostgreSQL an array parameter, in a
    single statement, where executemany would bind and step 500 rows one by one. A chunk
    reconciled by a rerun may be recorded again: rows already there are ignored.
    """
    if not numbers:
        return
    texted_at = texted_at.astimezone(UTC)  # SQLite keeps wall time only: always store UTC
    dialect = conn.dialect
    process = texted.c.texted_at.type.dialect_impl(dialect).bind_processor(dialect)
    when = process(texted_at) if process else texted_at
    columns = "INSERT INTO texted (e164, campaign_id, texted_at)"
    if dialect.name == "sqlite":
        conn.exec_driver_sql(
            # WHERE true: SQLite needs it to read ON CONFLICT after an INSERT ... SELECT
            f"{columns} SELECT value, ?, ? FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
            (campaign_id, when, json.dumps(numbers)),
        )
    elif dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"{columns} SELECT unnest(%s::text[]), %s, %s ON CONFLICT DO NOTHING",
            (numbers, campaign_id, when),
        )
    else:  # MySQL/MariaDB drivers turn an executemany of one INSERT into multi-row statements
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"{columns.replace('INTO', 'IGNORE INTO')} VALUES ({mark}, {mark}, {mark})",
            [(n, campaign_id, when) for n in numbers],
        )


def _reprice(conn: Connection, campaign_id: str) -> set[int]:
    """Price the campaign's estimated chunks at what the gateway's answers to it charged, once
    any did; the indexes of the chunks changed.

    A chunk confirmed through the status endpoint has no price of its own. Priced when it was
    confirmed, it could keep the configured estimate for good: after a crash, the resumed run
    confirms what the dead one sent before any answer of its own tells the price.
    """
    cost, nb_sms, size = conn.execute(_OBSERVED, {"cid": campaign_id}).one()
    if not size:
        return set()
    per_recipient = float(cost) / int(size)
    sms_each = float(nb_sms) / int(size) if nb_sms else None
    changes = []
    for row in conn.execute(_ESTIMATED, {"cid": campaign_id}).all():
        new_cost = round(int(row.size) * per_recipient, 6)
        new_sms = round(int(row.size) * sms_each) if sms_each is not None else row.nb_sms
        if row.cost is None or abs(float(row.cost) - new_cost) > 1e-9 or new_sms != row.nb_sms:
            changes.append(
                {
                    "cid": campaign_id,
                    "at": row.chunk_index,
                    "new_cost": new_cost,
                    "new_sms": new_sms,
                }
            )
    if changes:
        conn.execute(_REPRICE, changes)
    return {int(c["at"]) for c in changes}


def _budget(conn: Connection, campaign_id: str, owner: str) -> tuple[float, float, float | None]:
    """(cost sent or reserved by the campaign, the same for one owner, observed cost per
    recipient of the chunks sent so far or None), in one pass over an index."""
    row = conn.execute(_BUDGET, {"cid": campaign_id, "owner": owner}).one()
    per_recipient = float(row[2]) / int(row[3]) if row[3] else None
    return float(row[0]), float(row[1]), per_recipient


def _make_engine(given: str) -> Engine:
    from tasks.dburl import engine_url

    parsed = engine_url(given)
    url = parsed.render_as_string(hide_password=False)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=8
        )

        # pysqlite's own transaction handling defers BEGIN; take the write lock up front so a
        # claim's read-check-write cannot interleave with another process's.
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (the crash case we promise); a power cut
            # may lose the last commits. Use PostgreSQL where that matters.
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA busy_timeout=60000")

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        # InnoDB's default (repeatable read) would read the frequency cap's reservations from a
        # snapshot taken before the cap lock was held: read what is committed, as PostgreSQL does.
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, isolation_level="READ COMMITTED"
        )
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
