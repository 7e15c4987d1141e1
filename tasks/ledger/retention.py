"""Retention and erasure: numbers replaced by their pseudonyms once they may no longer be kept.

The retention purge (``purge_scan``, ``purge_campaign``) pseudonymises the campaigns finished
before a cutoff; an erasure (``erase_number``) one person everywhere; ``compact`` then rewrites
the database so replaced values do not linger in free pages. Each write is conditional on the
state read, so a chunk claimed meanwhile wins and the purge is tried again later.

The files of the data folder that hold the same people are rewritten by ``tasks.privacy``; the
never-text store (which outlives every purge) is ``tasks.nevertext``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from tasks.ledger.engine import ridden, update_unchanged
from tasks.ledger.model import ERASED, ChunkRow, PurgeScan, aware, chunk_from_row
from tasks.ledger.pseudonyms import Pseudonyms, pseudonym
from tasks.ledger.schema import campaigns, chunks, texted, witness_sends
from tasks.outcomes import ChunkState

_FINAL = (ChunkState.sent, ChunkState.failed, ChunkState.cancelled)


class _Reclaimed(Exception):
    """A chunk changed state under a purge (a rerun claimed it): the purge is rolled back."""


class Retention(Pseudonyms):
    """The purge of old campaigns and the erasure of one person, in the ledger's database."""

    @ridden
    def purge_scan(self, cutoff: datetime) -> PurgeScan:
        """Which campaigns the retention purge concerns, by their last activity: ``due`` (every
        chunk final, no activity since ``cutoff``, not purged since its last change),
        ``unfinished`` (as old, but a chunk may still be sent or settled: kept), ``purged``
        (done before), ``recent``."""
        open_chunks = func.sum(case((chunks.c.state.in_(_FINAL), 0), else_=1))
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
                last = max(d for d in (aware(created), aware(updated)) if d is not None)
                purged_at = aware(purged)
                if last >= cutoff:
                    scan.recent.append(cid)
                elif still_open:
                    scan.unfinished.append(cid)
                elif purged_at is None or purged_at < last:
                    scan.due.append(cid)
                else:
                    scan.purged.append(cid)
        return scan

    @ridden
    def campaign_numbers(self, campaign_id: str) -> set[str]:
        """Every full number the ledger holds for a campaign (numbers, refused, set aside)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(chunks).where(chunks.c.campaign_id == campaign_id))
            rows = [chunk_from_row(r) for r in found]
        numbers: set[str] = set()
        for c in rows:
            numbers.update(n for n in (*c.numbers, *c.refused, *c.held) if n.startswith("+"))
        return numbers

    @ridden
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
                chunk_from_row(r)
                for r in conn.execute(select(chunks).where(chunks.c.campaign_id == campaign_id))
            ]
            last = max(d for d in (aware(created), *(c.updated_at for c in found)) if d is not None)
            if last >= cutoff or any(c.state not in _FINAL for c in found):
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
                values = _purged_values(c, alias, scrub)
                if values is None:
                    continue
                if not update_unchanged(conn, c, values):
                    raise _Reclaimed
                changed += 1
            texted_rows = self._pseudonymise_texted(conn, campaign_id, key, replaced)
            _pseudonymise_witnesses(conn, key, campaign_id=campaign_id)
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
        """The campaign's frequency-cap rows under pseudonyms, with their times and surveys kept
        (the contact-pressure rules of one survey still count them)."""
        found = conn.execute(
            select(texted.c.e164, texted.c.texted_at, texted.c.survey_id).where(
                texted.c.campaign_id == campaign_id, texted.c.e164.like("+%")
            )
        ).all()
        for start in range(0, len(found), 500):
            part = found[start : start + 500]
            conn.execute(
                delete(texted).where(
                    texted.c.campaign_id == campaign_id,
                    texted.c.e164.in_([e164 for e164, _, _ in part]),
                )
            )
            conn.execute(
                insert(texted),
                [
                    {
                        "e164": pseudonym(e164, key),
                        "campaign_id": campaign_id,
                        "texted_at": at,
                        "survey_id": survey,
                    }
                    for e164, at, survey in part
                ],
            )
        replaced.update(e164 for e164, _, _ in found)
        return len(found)

    @ridden
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
            alias = pseudonym(e164, self._adopt_key(conn))
            touched, changed = self._erase_from_chunks(conn, e164, alias, scrub)
            rows = _erase_from_texted(conn, e164, alias)
            _pseudonymise_witnesses(conn, self._adopt_key(conn), e164=e164)
            touched.update(rows)
            if touched:
                conn.execute(
                    update(campaigns)
                    .where(campaigns.c.campaign_id.in_(sorted(touched)))
                    .values(pseudonymised_at=func.coalesce(campaigns.c.pseudonymised_at, now))
                )
        return {"chunks": changed, "campaigns": len(touched), "texted": len(rows)}

    def _erase_from_chunks(
        self, conn: Connection, e164: str, alias: str, scrub: Callable[[str], str]
    ) -> tuple[set[str], int]:
        """The person out of every chunk that may hold them; (campaigns touched, chunks)."""
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
        for c in (chunk_from_row(r) for r in candidates):
            values = _erased_values(c, e164, alias, scrub)
            if values is None:
                continue
            self._update(conn, {"cid": c.campaign_id, "idx": c.chunk_index}, values)
            touched.add(c.campaign_id)
            changed += 1
        return touched, changed

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


def _purged_values(
    c: ChunkRow, alias: Callable[[str], str], scrub: Callable[[str], str]
) -> dict[str, Any] | None:
    """What the purge writes to one chunk (numbers as pseudonyms, free texts scrubbed); None
    when it holds nothing to replace. A ``failed`` chunk becomes ``cancelled``: a rerun could
    send it, and its numbers are gone."""
    values: dict[str, Any] = {
        "numbers": ",".join(alias(n) for n in c.numbers),
        "refused": json.dumps({alias(n): scrub(m) for n, m in c.refused.items()})
        if c.refused
        else None,
        "held": json.dumps({alias(n): o for n, o in c.held.items()}) if c.held else None,
        "detail": scrub(c.detail) if c.detail else c.detail,
    }
    if c.state == ChunkState.failed:
        values["state"] = ChunkState.cancelled
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
        return None
    return values


def _erased_values(
    c: ChunkRow, e164: str, alias: str, scrub: Callable[[str], str]
) -> dict[str, Any] | None:
    """What an erasure writes to one chunk; None when the chunk holds nothing of the person.
    A chunk that was sent or cancelled keeps the pseudonym where the number was; from one that
    could still be sent the number leaves for ``refused`` (``erased on request``)."""
    numbers = list(c.numbers)
    refused = {n: scrub(m) for n, m in c.refused.items()}
    if e164 in refused:
        refused[alias] = refused.pop(e164)
    if e164 in numbers:
        if c.state in (ChunkState.sent, ChunkState.cancelled):
            numbers = [alias if n == e164 else n for n in numbers]
        else:
            numbers = [n for n in numbers if n != e164]
            refused[alias] = ERASED
    held = {(alias if n == e164 else n): o for n, o in c.held.items()}
    detail = scrub(c.detail) if c.detail else c.detail
    if (numbers, refused, held, detail) == (list(c.numbers), c.refused, c.held, c.detail):
        return None
    return {
        "numbers": ",".join(numbers),
        "size": len(numbers),
        "refused": json.dumps(refused) if refused else None,
        "held": json.dumps(held) if held else None,
        "detail": detail,
    }


def _pseudonymise_witnesses(
    conn: Connection, key: bytes, *, campaign_id: str | None = None, e164: str | None = None
) -> int:
    """A campaign's witness sends (or one person's, erased) under pseudonyms: what was sent
    stays recorded, never the staff member's number."""
    mine: ColumnElement[bool] = witness_sends.c.e164.like("+%")
    if campaign_id is not None:
        mine = and_(mine, witness_sends.c.campaign_id == campaign_id)
    if e164 is not None:
        mine = and_(mine, witness_sends.c.e164 == e164)
    found = conn.execute(
        select(
            witness_sends.c.campaign_id,
            witness_sends.c.survey_id,
            witness_sends.c.mode,
            witness_sends.c.e164,
        ).where(mine)
    ).all()
    for cid, survey, mode, number in found:
        conn.execute(
            update(witness_sends)
            .where(
                witness_sends.c.campaign_id == cid,
                witness_sends.c.survey_id == survey,
                witness_sends.c.mode == mode,
                witness_sends.c.e164 == number,
            )
            .values(e164=pseudonym(number, key))
        )
    return len(found)


def _erase_from_texted(conn: Connection, e164: str, alias: str) -> list[str]:
    """The person's frequency-cap rows under the pseudonym (a row the pseudonym already has for
    that campaign wins); the campaigns they were in."""
    rows = conn.execute(select(texted.c.campaign_id).where(texted.c.e164 == e164)).all()
    for (cid,) in rows:
        twin = and_(texted.c.e164 == alias, texted.c.campaign_id == cid)
        mine = and_(texted.c.e164 == e164, texted.c.campaign_id == cid)
        if conn.execute(select(texted.c.e164).where(twin)).first() is None:
            conn.execute(update(texted).where(mine).values(e164=alias))
        else:
            conn.execute(delete(texted).where(mine))
    return [cid for (cid,) in rows]
