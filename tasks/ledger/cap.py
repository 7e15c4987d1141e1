"""The contact-pressure rules' SQL (the frequency cap is one of them): who was texted (or
reserved) by which campaign, with which survey, and when.

A claim records its chunk's numbers for its campaign (``texted``) in the claim's transaction,
under one lock shared by every campaign (``cap_lock``), after setting aside the numbers for whom
a rule's limit is reached by other campaigns (``tasks.pressure`` judges, from what is read here):
two campaigns started at the same moment on overlapping lists never take a shared person past a
limit. A chunk that certainly did not land gives its numbers back.

The lookups and inserts are written per dialect: SQLite reads a list from one JSON array and
PostgreSQL from one array parameter, where SQLAlchemy would bind thousands of values one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection

from tasks.ledger.engine import LOCK_CAP, ridden
from tasks.ledger.model import ChunkRow, aware
from tasks.ledger.pseudonyms import Pseudonyms
from tasks.ledger.schema import campaigns, texted
from tasks.pressure import PressureRule, Text, held_value, holder


class FrequencyCap(Pseudonyms):
    """The ledger's side of the contact-pressure rules: reservations at claim time, lookups."""

    def _reserve(
        self, conn: Connection, row: ChunkRow, rules: Sequence[PressureRule], now: datetime
    ) -> ChunkRow:
        """Record the chunk's numbers for the pressure rules, in the claim's transaction, after
        setting aside those for whom a rule's limit is reached by other campaigns' texts or
        reservations (``held``: number -> ``held_value(rule, campaign)``)."""
        numbers = list(row.numbers)
        if not numbers:
            return row
        at = now
        if row.slot and datetime.fromisoformat(row.slot) > now:
            at = datetime.fromisoformat(row.slot).astimezone(UTC)
        if rules:
            if self.engine.dialect.name != "sqlite":  # SQLite's BEGIN IMMEDIATE already locks
                conn.execute(LOCK_CAP.with_for_update())
            survey = row.survey_id
            if survey is None and any(r.this_survey for r in rules):
                survey = _campaign_survey(conn, row.campaign_id)
            since = min(r.since(now) for r in rules)
            aliases = self._aliases(conn, numbers)
            held: dict[str, str] = {}
            for number, texts in texts_elsewhere(
                conn, row.campaign_id, numbers, since, aliases
            ).items():
                found = holder(texts, rules, now, survey)
                if found is not None:
                    held[number] = held_value(*found)
            if held:
                numbers = [n for n in numbers if n not in held]
                values = {
                    "numbers": ",".join(numbers),
                    "size": len(numbers),
                    "held": json.dumps({**row.held, **held}),
                    "updated_at": now,
                }
                row = self._update(conn, {"cid": row.campaign_id, "idx": row.chunk_index}, values)
        record_texted(conn, row.campaign_id, numbers, at, row.survey_id)
        return row

    @ridden
    def recently_texted(
        self, numbers: Iterable[str], *, since: datetime, exclude_campaign: str
    ) -> set[str]:
        """Numbers texted (or reserved) by another campaign at or after ``since``."""
        return set(self._texted_counts(numbers, since, exclude_campaign, None))

    @ridden
    def texted_counts(
        self,
        numbers: Iterable[str],
        *,
        since: datetime,
        exclude_campaign: str,
        survey_id: str | None = None,
    ) -> dict[str, int]:
        """{number: how many distinct other campaigns texted (or reserved) it at or after
        ``since``}, only texts of ``survey_id`` when given; numbers at 0 are left out."""
        return self._texted_counts(numbers, since, exclude_campaign, survey_id)

    def _texted_counts(
        self,
        numbers: Iterable[str],
        since: datetime,
        exclude_campaign: str,
        survey_id: str | None,
    ) -> dict[str, int]:
        since = since.astimezone(UTC)
        wanted = list(dict.fromkeys(numbers))
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 5000):
                part = wanted[start : start + 5000]
                aliases = self._aliases(conn, part, fresh=start == 0)
                for e164, n in counts_elsewhere(
                    conn, exclude_campaign, [*part, *aliases], since, survey_id
                ):
                    # A campaign's rows are all under the number or all under its pseudonym
                    # (a purge or an erasure replaces them together): the two counts add up.
                    number = aliases.get(e164, e164)
                    counts[number] = counts.get(number, 0) + int(n)
        return counts

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


def _campaign_survey(conn: Connection, campaign_id: str) -> str | None:
    return conn.execute(
        select(campaigns.c.survey_id).where(campaigns.c.campaign_id == campaign_id)
    ).scalar()


def counts_elsewhere(
    conn: Connection,
    campaign_id: str,
    wanted: Sequence[str],
    since: datetime,
    survey_id: str | None,
) -> Iterable[tuple[str, int]]:
    """(value, how many other campaigns texted or reserved it at or after ``since``) for the
    values of ``wanted`` (numbers or pseudonyms) found, of ``survey_id`` only when given: the
    database counts (a million numbers of weekly campaigns would be as many rows to Python)."""
    if not wanted:
        return []
    dialect = conn.dialect
    process = texted.c.texted_at.type.dialect_impl(dialect).bind_processor(dialect)
    when = process(since.astimezone(UTC)) if process else since.astimezone(UTC)
    scoped = survey_id is not None
    if dialect.name in ("sqlite", "postgresql"):
        mark = "?" if dialect.name == "sqlite" else "%s"
        among = (
            "t.e164 IN (SELECT value FROM json_each(?))"
            if dialect.name == "sqlite"
            else "t.e164 = ANY(%s::text[])"
        )
        join = " LEFT JOIN campaigns c ON c.campaign_id = t.campaign_id" if scoped else ""
        survey = f" AND COALESCE(t.survey_id, c.survey_id) = {mark}" if scoped else ""
        values = json.dumps(list(wanted)) if dialect.name == "sqlite" else list(wanted)
        return conn.exec_driver_sql(
            f"SELECT t.e164, COUNT(DISTINCT t.campaign_id) FROM texted t{join} WHERE {among} "
            f"AND t.texted_at >= {mark} AND t.campaign_id != {mark}{survey} GROUP BY t.e164",
            (values, when, campaign_id, *((survey_id,) if scoped else ())),
        ).all()
    query = (
        select(texted.c.e164, func.count(func.distinct(texted.c.campaign_id)))
        .select_from(texted.outerjoin(campaigns, campaigns.c.campaign_id == texted.c.campaign_id))
        .where(
            texted.c.e164.in_(list(wanted)),
            texted.c.texted_at >= since.astimezone(UTC),
            texted.c.campaign_id != campaign_id,
        )
        .group_by(texted.c.e164)
    )
    if scoped:
        query = query.where(func.coalesce(texted.c.survey_id, campaigns.c.survey_id) == survey_id)
    return [(e164, int(n)) for e164, n in conn.execute(query)]


def texts_elsewhere(
    conn: Connection,
    campaign_id: str,
    numbers: Sequence[str],
    since: datetime,
    aliases: dict[str, str] | None = None,
) -> dict[str, list[Text]]:
    """{number: its texts} by other campaigns (sent or reserved) at or after ``since``, found
    under the number's own E.164 or under a pseudonym (``aliases``: {pseudonym: number}), each
    with the survey sent (a row without one: its campaign's survey)."""
    if not numbers:
        return {}
    aliases = aliases or {}
    wanted = [*numbers, *aliases]
    since = since.astimezone(UTC)
    dialect = conn.dialect
    # SQLite reads the list from one JSON array and PostgreSQL from one array parameter (as
    # record_texted writes them): SQLAlchemy renders an IN of thousands of values one bound
    # parameter at a time, which costs more than the lookup (seconds at a million numbers).
    kind = texted.c.texted_at.type.dialect_impl(dialect)
    process = kind.bind_processor(dialect)
    when = process(since) if process else since
    columns = (
        "SELECT t.e164, t.campaign_id, t.texted_at, COALESCE(t.survey_id, c.survey_id) "
        "FROM texted t LEFT JOIN campaigns c ON c.campaign_id = t.campaign_id WHERE"
    )
    if dialect.name == "sqlite":
        found = conn.exec_driver_sql(
            f"{columns} t.e164 IN (SELECT value FROM json_each(?)) AND t.texted_at >= ? "
            "AND t.campaign_id != ?",
            (json.dumps(wanted), when, campaign_id),
        )
        read = kind.result_processor(dialect, None)
    elif dialect.name == "postgresql":
        found = conn.exec_driver_sql(
            f"{columns} t.e164 = ANY(%s::text[]) AND t.texted_at >= %s AND t.campaign_id != %s",
            (wanted, when, campaign_id),
        )
        read = kind.result_processor(dialect, None)
    else:
        found = conn.execute(
            select(
                texted.c.e164,
                texted.c.campaign_id,
                texted.c.texted_at,
                func.coalesce(texted.c.survey_id, campaigns.c.survey_id),
            )
            .select_from(
                texted.outerjoin(campaigns, campaigns.c.campaign_id == texted.c.campaign_id)
            )
            .where(
                and_(
                    texted.c.e164.in_(wanted),
                    texted.c.texted_at >= since,
                    texted.c.campaign_id != campaign_id,
                )
            )
        )
        read = None
    texts: dict[str, list[Text]] = {}
    for e164, other, at, survey in found:
        moment = aware(read(at) if read else at)
        assert moment is not None  # texted_at is NOT NULL
        texts.setdefault(aliases.get(e164, e164), []).append(Text(other, moment, survey))
    return texts


def record_texted(
    conn: Connection,
    campaign_id: str,
    numbers: list[str],
    texted_at: datetime,
    survey_id: str | None = None,
) -> None:
    """One row per recipient texted, in one statement where the database can take a list.

    This runs once per chunk on the fan-out's hot path, inside the write transaction that every
    other worker waits for: SQLite expands a JSON array and PostgreSQL an array parameter, in a
    single statement, where executemany would bind and step 500 rows one by one. A chunk
    reconciled by a rerun may be recorded again: rows already there are ignored.
    ``survey_id``: the survey sent, None for the campaign's own (read back through its row).
    """
    if not numbers:
        return
    texted_at = texted_at.astimezone(UTC)  # SQLite keeps wall time only: always store UTC
    dialect = conn.dialect
    process = texted.c.texted_at.type.dialect_impl(dialect).bind_processor(dialect)
    when = process(texted_at) if process else texted_at
    columns = "INSERT INTO texted (e164, campaign_id, texted_at, survey_id)"
    if dialect.name == "sqlite":
        conn.exec_driver_sql(
            # WHERE true: SQLite needs it to read ON CONFLICT after an INSERT ... SELECT
            f"{columns} SELECT value, ?, ?, ? FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
            (campaign_id, when, survey_id, json.dumps(numbers)),
        )
    elif dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"{columns} SELECT unnest(%s::text[]), %s, %s, %s::text ON CONFLICT DO NOTHING",
            (numbers, campaign_id, when, survey_id),
        )
    else:  # MySQL/MariaDB drivers turn an executemany of one INSERT into multi-row statements
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"{columns.replace('INTO', 'IGNORE INTO')} VALUES ({mark}, {mark}, {mark}, {mark})",
            [(n, campaign_id, when, survey_id) for n in numbers],
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
