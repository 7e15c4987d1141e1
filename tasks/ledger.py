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
- budget checks happen inside the same claim transaction, so concurrent sends cannot overspend.

SQLite (the default, a file under ``data/``), PostgreSQL and MariaDB/MySQL (``mysql://``, through
PyMySQL) are tested; any SQLAlchemy URL should work.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
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
    event,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

DEFAULT_LEDGER_URL = "sqlite:///data/state/ledger.sqlite"

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
IN_DOUBT = "in_doubt"
CANCELLED = "cancelled"
STATES = (PENDING, SENDING, SENT, FAILED, IN_DOUBT, CANCELLED)

metadata = MetaData()

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("survey_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set when the gateway says credits are gone: later chunks are not even tried.
    Column("halt_reason", String(64)),
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


# Statements of the fan-out's hot path, built once: SQLAlchemy then reuses their compiled form
# instead of rebuilding and re-hashing them for every chunk.
_THIS_CHUNK = and_(
    chunks.c.campaign_id == bindparam("cid"), chunks.c.chunk_index == bindparam("idx")
)
_SELECT_CHUNK = select(chunks).where(_THIS_CHUNK)
_SELECT_NUMBERS = select(chunks.c.numbers).where(_THIS_CHUNK)
_UPDATE_CHUNK = update(chunks).where(_THIS_CHUNK)
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
        claimed_at=bindparam("at"),
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
_PRICED = and_(chunks.c.state == SENT, chunks.c.cost.is_not(None))
_BUDGET = select(
    func.coalesce(func.sum(_COMMITTED), 0.0),
    func.coalesce(
        func.sum(case((chunks.c.owner == bindparam("owner"), _COMMITTED), else_=0.0)), 0.0
    ),
    func.sum(case((_PRICED, chunks.c.cost), else_=None)),
    func.sum(case((_PRICED, chunks.c.size), else_=None)),
).where(and_(chunks.c.campaign_id == bindparam("cid"), chunks.c.state.in_((SENDING, SENT))))


def chunk_tag(campaign_id: str, chunk_index: int) -> str:
    """Gateway tag of a chunk: <= 20 chars, lowercase, no spaces, unique across campaigns."""
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:12]
    return f"{digest}-{chunk_index:06d}"


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

    @property
    def size(self) -> int:
        return len(self.numbers)


@dataclass(frozen=True)
class Claim:
    """What claim() decided for one chunk."""

    chunk: ChunkRow
    # "send"; "reconcile" (an earlier claim may have landed); "skip" (final, or refused by the
    # budget); "busy" (another live run holds it: wait and ask again)
    action: str


def _row(r: Any) -> ChunkRow:
    return ChunkRow(
        campaign_id=r.campaign_id,
        chunk_index=r.chunk_index,
        tag=r.tag,
        territory=r.territory,
        slot=r.slot,
        numbers=tuple(n for n in (r.numbers or "").split(",") if n),
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
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; we only store UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Ledger:
    """One database of campaigns, chunks and texted numbers."""

    def __init__(self, url: str = DEFAULT_LEDGER_URL, *, lease: timedelta = timedelta(minutes=5)):
        self.url = url
        self.lease = lease
        self.engine = _make_engine(url)
        self._local_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self._update_returning = bool(self.engine.dialect.update_returning)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

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

    # -- plan -------------------------------------------------------------------------------

    def campaign_exists(self, campaign_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(campaigns.c.campaign_id).where(campaigns.c.campaign_id == campaign_id)
            ).first()
        return found is not None

    def create_plan(self, campaign_id: str, survey_id: str, plan: Sequence[ChunkPlan]) -> bool:
        """Write a campaign's chunks; False when another run created the campaign first."""
        now = _now()
        try:
            with self._write() as conn:
                conn.execute(
                    insert(campaigns).values(
                        campaign_id=campaign_id, survey_id=survey_id, created_at=now
                    )
                )
                self._insert_chunks(conn, campaign_id, plan, now)
        except IntegrityError:
            return False
        return True

    def extend_plan(self, campaign_id: str, plan: Sequence[ChunkPlan]) -> None:
        """Add chunks for numbers a rerun found that no earlier run planned."""
        if plan:
            with self._campaign_lock(campaign_id) as (conn, _):
                self._insert_chunks(conn, campaign_id, plan, _now())

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
                "state": PENDING,
                "attempts": 0,
                "updated_at": now,
            }
            for c in plan
        ]
        for start in range(0, len(rows), 1000):
            conn.execute(insert(chunks), rows[start : start + 1000])

    def chunks(self, campaign_id: str) -> list[ChunkRow]:
        with self.engine.connect() as conn:
            result = conn.execute(
                select(chunks)
                .where(chunks.c.campaign_id == campaign_id)
                .order_by(chunks.c.chunk_index)
            )
            return [_row(r) for r in result]

    def chunk(self, campaign_id: str, chunk_index: int) -> ChunkRow:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(chunks).where(
                    and_(chunks.c.campaign_id == campaign_id, chunks.c.chunk_index == chunk_index)
                )
            ).one()
        return _row(r)

    def halt(self, campaign_id: str, reason: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(halt_reason=reason)
            )

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
    ) -> Claim:
        """Take a chunk for sending, or say why not (already sent, held, over budget).

        ``credits`` is what the account had when *this run* started: only this run's own
        commitments count against it, since earlier runs' sends were already taken from it.
        """
        now = _now()
        key = {"cid": campaign_id, "idx": chunk_index}
        if max_cost is None and credits is None:
            fresh = self._claim_fresh(key, owner, cost_per_recipient, now)
            if fresh is not None:
                return Claim(fresh, "send")
        with self._campaign_lock(campaign_id) as (conn, halt):
            found = conn.execute(_SELECT_CHUNK, key).one()
            row = _row(found)
            if row.state in (SENT, CANCELLED):
                return Claim(row, "skip")
            if row.state == SENDING and row.owner != owner:
                claimed_at = _aware(found.claimed_at)
                alive = not _owner_is_dead(row.owner) and (
                    claimed_at is not None and now - claimed_at < self.lease
                )
                if alive:
                    return Claim(row, "busy")
            may_have_landed = row.state in (SENDING, IN_DOUBT)
            values: dict[str, Any]
            if halt and not may_have_landed:
                values = {"state": FAILED, "reason": halt, "detail": "campaign halted"}
                conn.execute(_UPDATE_CHUNK, {**key, "updated_at": now, **values})
                return Claim(_replace(row, **values), "skip")
            checked = not may_have_landed and (max_cost is not None or credits is not None)
            spent, mine, per_recipient = (
                _budget(conn, campaign_id, owner) if checked else (0.0, 0.0, None)
            )
            # The estimate holds until the gateway's own answers tell the real price.
            reserve = row.size * (per_recipient or cost_per_recipient)
            if checked:
                refusal = None
                if max_cost is not None and spent + reserve > max_cost + 1e-9:
                    refusal = (
                        "budget_exceeded",
                        f"projected cost {spent + reserve:.2f} > max_cost {max_cost:.2f}",
                    )
                elif credits is not None and mine + reserve > credits + 1e-9:
                    refusal = (
                        "insufficient_credits",
                        f"projected cost {mine + reserve:.2f} > credits {credits:.2f}",
                    )
                if refusal:
                    values = {"state": FAILED, "reason": refusal[0], "detail": refusal[1]}
                    conn.execute(_UPDATE_CHUNK, {**key, "updated_at": now, **values})
                    return Claim(_replace(row, **values), "skip")
            values = {
                "state": SENDING,
                "owner": owner,
                "claimed_at": now,
                "reserved_cost": reserve,
                "attempts": row.attempts + 1,
                "updated_at": now,
                "reason": None,
                "detail": None,
            }
            conn.execute(_UPDATE_CHUNK, {**key, **values})
            claimed = _replace(row, state=SENDING, owner=owner, attempts=row.attempts + 1)
            return Claim(claimed, "reconcile" if may_have_landed else "send")

    def _claim_fresh(
        self, key: dict[str, Any], owner: str, per_recipient: float, now: datetime
    ) -> ChunkRow | None:
        """The common claim, of a chunk never tried or failed, in one conditional update: the
        database's row lock decides between two runs. None when the chunk is in any other state
        or the campaign is halted: the locked path then decides."""
        values = {**key, "new_owner": owner, "at": now, "per_recipient": per_recipient}
        with self._write() as conn:
            if self._update_returning:
                row = conn.execute(_CLAIM_FRESH_RETURNING, values).first()
            elif conn.execute(_CLAIM_FRESH, values).rowcount == 1:
                row = conn.execute(_SELECT_CHUNK, key).one()
            else:
                row = None
        return None if row is None else _row(row)

    def update_chunk(self, campaign_id: str, chunk_index: int, **values: Any) -> None:
        """Record anything about a chunk (slot, numbers after refusals, state)."""
        if "numbers" in values and not isinstance(values["numbers"], str):
            values["size"] = len(values["numbers"])
            values["numbers"] = ",".join(values["numbers"])
        if "refused" in values and not isinstance(values["refused"], str):
            values["refused"] = json.dumps(values["refused"]) if values["refused"] else None
        values["updated_at"] = _now()
        with self._write() as conn:
            conn.execute(_UPDATE_CHUNK, {"cid": campaign_id, "idx": chunk_index, **values})

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
    ) -> None:
        """The outcome and the per-recipient record, in one transaction.

        ``numbers`` are the chunk's numbers as last recorded, when the caller has them at hand.
        """
        key = {"cid": campaign_id, "idx": chunk_index}
        values = {
            **key,
            "state": SENT,
            "message_id": message_id,
            "nb_sms": nb_sms,
            "cost": cost,
            "currency": currency,
            "reason": None,
            "detail": detail,
            "updated_at": _now(),
        }
        with self._write() as conn:
            if numbers is None:
                numbers = (conn.execute(_SELECT_NUMBERS, key).scalar() or "").split(",")
            conn.execute(_UPDATE_CHUNK, values)
            _record_texted(conn, campaign_id, [n for n in numbers if n], texted_at)

    def mark(
        self, campaign_id: str, chunk_index: int, state: str, reason: str | None, detail: str | None
    ) -> None:
        self.update_chunk(campaign_id, chunk_index, state=state, reason=reason, detail=detail)

    def release(self, campaign_id: str, chunk_index: int) -> None:
        """Give a claim back untouched (nothing was sent), e.g. on an invalid key."""
        self.update_chunk(campaign_id, chunk_index, state=PENDING, owner=None, reserved_cost=None)

    # -- frequency cap ----------------------------------------------------------------------

    def recently_texted(
        self, numbers: Iterable[str], *, since: datetime, exclude_campaign: str
    ) -> set[str]:
        """Numbers texted by another campaign at or after ``since``."""
        since = since.astimezone(UTC)
        wanted = list(dict.fromkeys(numbers))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 5000):
                part = wanted[start : start + 5000]
                found.update(
                    r[0]
                    for r in conn.execute(
                        select(texted.c.e164).where(
                            and_(
                                texted.c.e164.in_(part),
                                texted.c.texted_at >= since,
                                texted.c.campaign_id != exclude_campaign,
                            )
                        )
                    )
                )
        return found

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

    # -- cancellation -----------------------------------------------------------------------

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
        between is left alone (it is being sent; cancel it once it is). A chunk that
        was sent leaves the frequency cap's record too: its recipients were never texted.
        """
        now = _now()
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
            if row.state == SENT:
                numbers = [n for n in (row.numbers or "").split(",") if n]
                for start in range(0, len(numbers), 500):
                    conn.execute(
                        texted.delete().where(
                            and_(
                                texted.c.campaign_id == campaign_id,
                                texted.c.e164.in_(numbers[start : start + 500]),
                            )
                        )
                    )
        return True


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


def _replace(row: ChunkRow, **values: Any) -> ChunkRow:
    fields = {k: v for k, v in values.items() if k in ChunkRow.__dataclass_fields__}
    return ChunkRow(**{**row.__dict__, **fields})


def _budget(conn: Connection, campaign_id: str, owner: str) -> tuple[float, float, float | None]:
    """(cost sent or reserved by the campaign, the same for one owner, observed cost per
    recipient of the chunks sent so far or None), in one pass over an index."""
    row = conn.execute(_BUDGET, {"cid": campaign_id, "owner": owner}).one()
    per_recipient = float(row[2]) / int(row[3]) if row[3] else None
    return float(row[0]), float(row[1]), per_recipient


def _make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith(("mysql://", "mariadb://")):
        url = "mysql+pymysql://" + url.split("://", 1)[1]
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
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
