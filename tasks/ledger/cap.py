"""The frequency cap's SQL: who was texted (or reserved) by which campaign, and when.

A claim records its chunk's numbers for its campaign (``texted``) in the claim's transaction,
under one lock shared by every campaign (``cap_lock``), after setting aside the numbers another
campaign holds within the cap: two campaigns started at the same moment on overlapping lists
text a shared person once. A chunk that certainly did not land gives its numbers back.

The lookups and inserts are written per dialect: SQLite reads a list from one JSON array and
PostgreSQL from one array parameter, where SQLAlchemy would bind thousands of values one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Connection

from tasks.ledger.engine import LOCK_CAP, ridden
from tasks.ledger.model import ChunkRow
from tasks.ledger.pseudonyms import Pseudonyms
from tasks.ledger.schema import texted


class FrequencyCap(Pseudonyms):
    """The ledger's side of the frequency cap: reservations at claim time, and lookups."""

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
                conn.execute(LOCK_CAP.with_for_update())
            since = now - timedelta(days=cap_days)
            aliases = self._aliases(conn, numbers)
            held = held_elsewhere(conn, row.campaign_id, numbers, since, aliases)
            if held:
                numbers = [n for n in numbers if n not in held]
                values = {
                    "numbers": ",".join(numbers),
                    "size": len(numbers),
                    "held": json.dumps({**row.held, **held}),
                    "updated_at": now,
                }
                row = self._update(conn, {"cid": row.campaign_id, "idx": row.chunk_index}, values)
        record_texted(conn, row.campaign_id, numbers, at)
        return row

    @ridden
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
                found.update(held_elsewhere(conn, exclude_campaign, part, since, aliases))
        return found

    @ridden
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


def held_elsewhere(
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
    # record_texted writes them): SQLAlchemy renders an IN of thousands of values one bound
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


def record_texted(
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


def forget_texted(conn: Connection, campaign_id: str, numbers: Sequence[str]) -> None:
    """The numbers leave the campaign's record: nothing of theirs landed."""
    for start in range(0, len(numbers), 500):
        conn.execute(
            delete(texted).where(
                and_(
                    texted.c.campaign_id == campaign_id,
                    texted.c.e164.in_(list(numbers[start : start + 500])),
                )
            )
        )


def retime_texted(
    conn: Connection, campaign_id: str, numbers: Sequence[str], texted_at: datetime
) -> None:
    """The numbers count from ``texted_at`` (a chunk rescheduled after its claim reserved it)."""
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
