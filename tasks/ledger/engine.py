"""The ledger's ground floor: engines per dialect, riding an outage, transactions and locks.

Every room of the store (``store``, ``cap``, ``retention``, ``pseudonyms``) stands on
``LedgerEngine``: it opens the database, retries an operation while the database is away (up to
the outage bound, then ``LedgerUnavailable`` in one line), and offers the write transaction, the
campaign lock and the one-chunk write they all use. The ledger's two defaults live here and only
here: ``DEFAULT_OUTAGE`` (how long an outage is ridden) and ``DEFAULT_LEASE`` (how long a claim
on another machine is trusted).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import and_, bindparam, create_engine, event, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from tasks.dburl import engine_url, mask
from tasks.ledger.model import ChunkRow, LedgerUnavailable, chunk_from_row
from tasks.ledger.schema import add_missing_columns, campaigns, cap_lock, chunks, metadata

# Its own generator: the global one is other code's (a property-based test's state).
_JITTER = random.Random()

log = logging.getLogger("survey.ledger")

DEFAULT_OUTAGE = 120.0  # seconds an unreachable ledger is retried before a run stops
DEFAULT_LEASE = timedelta(minutes=5)  # how long a claim by another machine is trusted

# Statements of the fan-out's hot path, built once: SQLAlchemy then reuses their compiled form
# instead of rebuilding and re-hashing them for every chunk.
THIS_CHUNK = and_(
    chunks.c.campaign_id == bindparam("cid"), chunks.c.chunk_index == bindparam("idx")
)
SELECT_CHUNK = select(chunks).where(THIS_CHUNK)
UPDATE_CHUNK = update(chunks).where(THIS_CHUNK)
UPDATE_CHUNK_RETURNING = UPDATE_CHUNK.returning(*chunks.c)
LOCK_CAMPAIGN = select(campaigns.c.halt_reason).where(campaigns.c.campaign_id == bindparam("cid"))
LOCK_CAP = select(cap_lock.c.id).where(cap_lock.c.id == 1)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def system_now() -> datetime:
    return datetime.now(UTC)


def ridden(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Retry a ledger operation, or one of a store in its database (an object with a ``ledger``),
    through a short outage (see ``LedgerEngine._ride``)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        ledger = args[0] if isinstance(args[0], LedgerEngine) else getattr(args[0], "ledger", None)
        assert isinstance(ledger, LedgerEngine)
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
    said = str(exc.orig if isinstance(exc, DBAPIError) else exc).lower()
    return not any(mark in said for mark in _NOT_AN_OUTAGE)


class Outage:
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


class LedgerEngine:
    """One ledger database: its engine, outage riding, transactions and cross-machine locks."""

    def __init__(
        self,
        url: str,
        *,
        outage: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
    ) -> None:
        self.url = url
        self.outage = outage
        self.now = clock
        self._sleep = sleep
        self._outage = Outage()
        self.engine = make_engine(url)
        self._local_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self._update_returning = bool(self.engine.dialect.update_returning)
        self._ride(self._set_up)

    def _set_up(self) -> None:
        """Tables, columns and the cap's lock row. Several workers may open a new ledger at the
        same moment: what another one created meanwhile is not an error."""
        for attempt in range(5):
            try:
                metadata.create_all(self.engine)
                add_missing_columns(self.engine)
                with self._write() as conn:
                    if conn.execute(LOCK_CAP).first() is None:
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
                self._sleep(delay * _JITTER.uniform(0.5, 1.0))  # jitter
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
            stmt = LOCK_CAMPAIGN
            if self.engine.dialect.name != "sqlite":  # SQLite's BEGIN IMMEDIATE already locks
                stmt = stmt.with_for_update()
            halt = conn.execute(stmt, {"cid": campaign_id}).scalar()
            yield conn, halt

    def _update(self, conn: Connection, key: dict[str, Any], values: dict[str, Any]) -> ChunkRow:
        """Write ``values`` to one chunk and return the row as written."""
        params = {**key, **values}
        if self._update_returning:
            return chunk_from_row(conn.execute(UPDATE_CHUNK_RETURNING, params).one())
        conn.execute(UPDATE_CHUNK, params)
        return chunk_from_row(conn.execute(SELECT_CHUNK, key).one())

    @contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """One holder at a time of ``name`` among every process of every machine that shares
        this ledger: a database lock (PostgreSQL advisory lock, MariaDB/MySQL ``GET_LOCK``),
        released by the database if the holder dies. SQLite is one machine's file: a file lock
        beside it."""
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            with file_lock(self.url, digest.hex()):
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


def update_unchanged(conn: Connection, c: ChunkRow, values: dict[str, Any]) -> bool:
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


_memory_lock = threading.Lock()


@contextmanager
def file_lock(url: str, name: str) -> Iterator[None]:
    """A lock file beside a SQLite ledger (an in-memory one: this process only)."""
    import fcntl  # POSIX only: imported where used, so the package imports anywhere

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


def make_engine(given: str) -> Engine:
    """An engine for the ledger's URL. ``hide_parameters``: a failed statement's message never
    echoes its parameters (the chunks' phone numbers) into a log or an operator's line."""
    parsed = engine_url(given)
    url = parsed.render_as_string(hide_password=False)
    if url.startswith("sqlite:///"):
        return _sqlite_engine(url)
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        # InnoDB's default (repeatable read) would read the frequency cap's reservations from a
        # snapshot taken before the cap lock was held: read what is committed, as PostgreSQL does.
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            isolation_level="READ COMMITTED",
            hide_parameters=True,
        )
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
    )


def _sqlite_engine(url: str) -> Engine:
    path = url[len("sqlite:///") :]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        pool_size=8,
        hide_parameters=True,
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
