"""The never-text store: everybody who must never be texted again, in the ledger's database.

Every source lands here, with its source, reason and date: the gateway's STOP list as read at
each run, STOP replies the follow-up finds, opt-out lists imported (a run's named list, the
``flows.never_text import`` command, the clear-text ``suppression.csv`` of earlier versions,
migrated once), people erased on request, numbers added by hand, and numbers retired as
undeliverable (``tasks/retire.py``: "Not delivered" in successive campaigns). Every campaign of
every worker reads it before planning and again before a resumed chunk is sent; nothing a run is
given can remove or bypass what it holds. Only an ``undeliverable`` entry has an end: past it,
it no longer blocks, and a later "Delivered" releases it (no other entry is ever released).

The follow-up's delivery history (``record_deliveries``) lives beside it, under the same keyed
values: what it decides is the store's, and it must never hold a number either.

As the CNIL asks of an opposition list (*liste repoussoir*), it keeps only what recognises a
number: a keyed one-way value of 80 bits, never the number. Without the key nobody can test a
number against it, and nobody can ever read a number back from it (see ``digests``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import ColumnElement, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tasks import ledger as lg
from tasks import retire as rt
from tasks.ledger.model import aware
from tasks.ledger.schema import campaigns, delivery_history
from tasks.numbers import mask_numbers_in_text
from tasks.outcomes import NOT_DELIVERED

_BATCH = 2000


class Origin(StrEnum):
    """Who said this person must never be texted."""

    gateway = "gateway_stop"  # the gateway's STOP list, read at a run
    reply = "stop_reply"  # a STOP reply the follow-up found
    imported = "import"  # an opt-out list imported (a run's list, the import command)
    erasure = "erasure"  # erased on request
    manual = "manual"  # added by hand
    undeliverable = "undeliverable"  # "Not delivered" in successive campaigns, for a time


@dataclass(frozen=True)
class Entry:
    """One row of the store, as an audit export shows it: never a number."""

    digest: str
    source: str
    reason: str | None
    campaign_id: str | None
    added_at: datetime
    expires_at: datetime | None = None  # None: for good (every source but undeliverable)


_BLOCK = 16  # an E.164 number is at most 16 characters: one AES block
_KEPT = 10  # bytes of each block kept: 80 bits, never enough to decrypt


def digests(numbers: Sequence[str] | np.ndarray, key: bytes) -> np.ndarray:
    """The store's value of each E.164 number under ``key``, as rows of 10 bytes (pure).

    AES-256, used as a pseudorandom function: each number, zero-padded to one block, is
    enciphered under a key derived from the pseudonym key (so its values are unrelated to the
    ledger's pseudonyms), and only the first 80 of the 128 bits are kept. Like a keyed hash,
    it cannot be computed without the key and cannot be reversed (the cut bits are gone; with
    the key one could only try numbers one by one). Unlike HMAC-SHA256 in a Python loop
    (1.8 s), a million numbers take one call in C (0.2 s): the planning budget of a large
    campaign allows no more. Each block is enciphered on its own, which is what ECB mode does.
    """
    try:  # one byte more than a block: a longer text shows there, instead of being cut
        wide = np.array(numbers, dtype=f"S{_BLOCK + 1}").view(np.uint8).reshape(-1, _BLOCK + 1)
    except UnicodeEncodeError:
        raise ValueError("an E.164 number is ASCII") from None
    if wide[:, _BLOCK].any():
        raise ValueError("an E.164 number has at most 16 characters")
    own = hashlib.blake2b(key, digest_size=32, person=b"never-text-key").digest()
    blocks = wide[:, :_BLOCK].tobytes()
    encryptor = Cipher(algorithms.AES(own), modes.ECB()).encryptor()  # noqa: S305 - a PRF
    out = encryptor.update(blocks) + encryptor.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, _BLOCK)[:, :_KEPT]


def _is_e164(value: object) -> bool:
    return isinstance(value, str) and value.startswith("+") and len(value) <= 16 and value.isascii()


def digester(key: bytes) -> Callable[[str], str]:
    """The store's value of one number, in hex (20 characters), as the table keeps it (pure)."""

    def digest(e164: str) -> str:
        return bytes(digests([e164], key)[0]).hex()

    return digest


class NeverText:
    """The store, in a ledger's database (it needs the ledger's pseudonym key)."""

    def __init__(self, ledger: lg.Ledger) -> None:
        self.ledger = ledger
        self._key_checked = False

    def _key(self, *, adopt: bool) -> bytes:
        """The ledger's key, checked against the one the ledger recorded (another key would
        recognise nobody: refused in one line), and recorded as the ledger's when ``adopt``."""
        if not self._key_checked:
            self._key_checked = self.ledger.store_key_checked(adopt=adopt)
        return self.ledger._key()

    @lg.ridden
    def add(
        self,
        numbers: Iterable[str],
        source: Origin,
        reason: str | None = None,
        campaign_id: str | None = None,
    ) -> int:
        """Record E.164 numbers from ``source``; how many the store did not hold before (from any
        source). A number already recorded from that source keeps its first date."""
        given = sorted({n for n in numbers if _is_e164(n)})
        if not given:
            return 0  # nothing to record: no key needed yet
        wanted = sorted({bytes(d).hex() for d in digests(given, self._key(adopt=True))})
        table = lg.never_text
        # A reason typed by a person may hold a number: the store never keeps one.
        note = mask_numbers_in_text(reason or "")[:200] or None
        new = 0
        for start in range(0, len(wanted), _BATCH):
            part = wanted[start : start + _BATCH]
            for attempt in range(3):  # another worker may record the same numbers meanwhile
                try:
                    with self.ledger._write() as conn:
                        rows = conn.execute(
                            select(table.c.digest, table.c.source).where(table.c.digest.in_(part))
                        ).all()
                        known = {d for d, _ in rows}
                        mine = {d for d, s in rows if s == source}
                        missing = [d for d in part if d not in mine]
                        if missing:
                            conn.execute(
                                insert(table),
                                [
                                    {
                                        "digest": d,
                                        "source": str(source),
                                        "reason": note,
                                        "campaign_id": campaign_id,
                                        "added_at": self.ledger.now(),
                                    }
                                    for d in missing
                                ],
                            )
                    new += sum(1 for d in part if d not in known)
                    break
                except IntegrityError:
                    if attempt == 2:
                        raise
        return new

    def _in_force(self) -> ColumnElement[bool]:
        """The rows that block now: every row without an end, and those not past it."""
        ends = lg.never_text.c.expires_at
        return or_(ends.is_(None), ends > self.ledger.now().astimezone(UTC))

    @lg.ridden
    def among(self, numbers: Sequence[str] | np.ndarray) -> set[str]:
        """The numbers of ``numbers`` (E.164; a column of a million is looked up in one pass)
        that the store holds now (an expired ``undeliverable`` entry no longer counts)."""
        table = lg.never_text
        with self.ledger.engine.connect() as conn:
            query = select(table.c.digest).where(self._in_force()).distinct()
            held = set(conn.execute(query).scalars())
        return self._matching(numbers, held)

    @lg.ridden
    def undeliverable_among(self, numbers: Sequence[str] | np.ndarray) -> set[str]:
        """The numbers of ``numbers`` that the store holds now *only* as undeliverable: someone
        who also opted out, or was erased, is told apart as such (a subset of ``among``)."""
        table = lg.never_text
        retired = select(table.c.digest).where(
            table.c.source == Origin.undeliverable, self._in_force()
        )
        with self.ledger.engine.connect() as conn:
            held = set(conn.execute(retired).scalars())
            if not held:
                return set()
            also = select(table.c.digest).where(
                table.c.source != Origin.undeliverable,
                self._in_force(),
                table.c.digest.in_(retired),
            )
            held -= set(conn.execute(also).scalars())
        return self._matching(numbers, held)

    def _matching(self, numbers: Sequence[str] | np.ndarray, held: set[str]) -> set[str]:
        """The numbers whose value is in ``held``."""
        if not held:
            return set()
        key = self._key(adopt=False)
        wanted = np.asarray(numbers, dtype=object)
        try:
            found = digests(wanted, key)
        except (ValueError, TypeError):  # not only E.164 numbers (a pseudonym...): those alone
            wanted = np.array([n for n in wanted if _is_e164(n)], dtype=object)
            found = digests(wanted, key)
        if not len(wanted):
            return set()
        # First the leading 64 bits of every value against the store's, sorted (vectorised),
        # then the whole 80 bits of the few that match.
        lead = found[:, :8].copy().view(">u8").ravel()
        known = np.sort(np.array([int(d[:16], 16) for d in held], dtype=np.uint64))
        at = np.minimum(np.searchsorted(known, lead), len(known) - 1)
        maybe = np.flatnonzero(known[at] == lead)
        return {wanted[i] for i in maybe if bytes(found[i]).hex() in held}

    @lg.ridden
    def entries_of(self, e164: str) -> list[Entry]:
        """What the store holds now for one number (an operator's or a DPO's question)."""
        mine = digester(self._key(adopt=False))(e164)
        table = lg.never_text
        with self.ledger.engine.connect() as conn:
            query = select(table).where(table.c.digest == mine, self._in_force())
            found = conn.execute(query).all()
        return [Entry(*r) for r in found]

    def entries(self) -> Iterator[Entry]:
        """Every row, oldest first (the audit export), expired ones included."""
        table = lg.never_text
        with self.ledger.engine.connect() as conn:
            query = select(table).order_by(table.c.added_at, table.c.digest, table.c.source)
            for row in conn.execution_options(yield_per=5000).execute(query):
                yield Entry(*row)

    @lg.ridden
    def counts(self) -> dict[str, int]:
        """Rows in force per source, and ``people``: distinct numbers blocked now."""
        table = lg.never_text
        with self.ledger.engine.connect() as conn:
            per: dict[str, int] = dict(
                conn.execute(
                    select(table.c.source, func.count())
                    .where(self._in_force())
                    .group_by(table.c.source)
                ).all()
            )
            people = conn.execute(
                select(func.count(table.c.digest.distinct())).where(self._in_force())
            ).scalar()
        return {**{str(k): int(v) for k, v in per.items()}, "people": int(people or 0)}

    # -- the follow-up's delivery history, and the numbers it retires ------------------------

    @lg.ridden
    def record_deliveries(
        self,
        campaign_id: str,
        statuses: Iterable[tuple[str, str]],
        *,
        after: int = rt.RETIRE_AFTER,
        days: int = rt.RETIRE_DAYS,
    ) -> dict[str, int]:
        """Keep each number's delivery status for the campaign (``(e164, bucket)`` pairs; a
        later reading of the same campaign replaces an earlier one), then retire or release
        those whose history says so (``tasks.retire.verdict``). How many statuses were new or
        changed (``recorded``), how many numbers were ``retired`` and ``released``.

        Each batch is one transaction and writes the same rows again when run again, so a
        batch whose commit was lost (an outage ridden through) is simply done once more."""
        latest = {n: str(s) for n, s in statuses if _is_e164(n)}
        counts = {"recorded": 0, "retired": 0, "released": 0}
        if not latest:
            return counts
        numbers = sorted(latest)
        values = _hex_rows(digests(numbers, self._key(adopt=True)))
        by_digest = {d: latest[n] for d, n in zip(values, numbers, strict=True)}
        now = self.ledger.now().astimezone(UTC)
        with self.ledger.engine.connect() as conn:
            created = conn.execute(
                select(campaigns.c.created_at).where(campaigns.c.campaign_id == campaign_id)
            ).scalar()
        campaign_at = (aware(created) or now).astimezone(UTC)
        wanted = sorted(by_digest)
        for start in range(0, len(wanted), _BATCH):
            part = {d: by_digest[d] for d in wanted[start : start + _BATCH]}
            for attempt in range(3):  # another follow-up may record the same people meanwhile
                try:
                    with self.ledger._write() as conn:
                        done = _record_part(
                            conn, campaign_id, part, campaign_at, now, after=after, days=days
                        )
                    break
                except IntegrityError:
                    if attempt == 2:
                        raise
            for name, n in done.items():
                counts[name] += n
        return counts

    @lg.ridden
    def forget_history(self, numbers: Iterable[str]) -> int:
        """An erasure: the delivery history of these people goes (how many rows)."""
        given = sorted({n for n in numbers if _is_e164(n)})
        if not given:
            return 0
        wanted = _hex_rows(digests(given, self._key(adopt=True)))
        with self.ledger._write() as conn:
            done = conn.execute(
                delete(delivery_history).where(delivery_history.c.digest.in_(wanted))
            )
        return int(done.rowcount or 0)

    @lg.ridden
    def purge_history(self, before: datetime) -> dict[str, int]:
        """The retention purge: the delivery history of campaigns created before ``before``, and
        the undeliverable entries that stopped blocking before it (their streak is gone with
        that history)."""
        before = before.astimezone(UTC)
        table = lg.never_text
        with self.ledger._write() as conn:
            history = conn.execute(
                delete(delivery_history).where(delivery_history.c.campaign_at < before)
            )
            expired = conn.execute(
                delete(table).where(
                    table.c.source == Origin.undeliverable, table.c.expires_at < before
                )
            )
        return {"history": int(history.rowcount or 0), "expired": int(expired.rowcount or 0)}

    @lg.ridden
    def forget_import(self, reason: str) -> int:
        """Undo an import made by mistake: its rows (source ``import`` with that exact reason)
        go; a person another source also holds stays in the store. Never touches STOP
        replies, the gateway's list or erasures."""
        table = lg.never_text
        with self.ledger._write() as conn:
            done = conn.execute(
                delete(table).where(table.c.source == Origin.imported, table.c.reason == reason)
            )
        return int(done.rowcount or 0)


def _hex_rows(values: np.ndarray) -> list[str]:
    """Each row of ``digests`` in hex, as the tables keep it."""
    width = 2 * values.shape[1] if values.ndim == 2 else 0
    flat = np.ascontiguousarray(values).tobytes().hex()
    return [flat[i : i + width] for i in range(0, len(flat), width)] if width else []


def _record_part(
    conn: Connection,
    campaign_id: str,
    part: dict[str, str],
    campaign_at: datetime,
    now: datetime,
    *,
    after: int,
    days: int,
) -> dict[str, int]:
    """One batch of ``record_deliveries``, in one transaction: {digest: status} written for the
    campaign, then the verdict of each number that read a definite status now."""
    history, table = delivery_history, lg.never_text
    digests_ = list(part)
    known = dict(
        conn.execute(
            select(history.c.digest, history.c.status).where(
                history.c.campaign_id == campaign_id, history.c.digest.in_(digests_)
            )
        ).all()
    )
    fresh = [d for d in digests_ if d not in known]
    if fresh:
        conn.execute(
            insert(history),
            [
                {
                    "digest": d,
                    "campaign_id": campaign_id,
                    "status": part[d],
                    "campaign_at": campaign_at,
                    "read_at": now,
                }
                for d in fresh
            ],
        )
    changed: dict[str, list[str]] = defaultdict(list)
    for d, status in known.items():
        if status != part[d]:
            changed[part[d]].append(d)
    for status, ds in changed.items():
        conn.execute(
            update(history)
            .where(history.c.campaign_id == campaign_id, history.c.digest.in_(ds))
            .values(status=status, read_at=now)
        )
    counts = {"recorded": len(fresh) + sum(map(len, changed.values())), "retired": 0, "released": 0}
    said = [d for d in digests_ if part[d] in rt.DEFINITE]
    if not said:
        return counts
    held = {
        d: rt.Held(c, aware(e))
        for d, c, e in conn.execute(
            select(table.c.digest, table.c.campaign_id, table.c.expires_at).where(
                table.c.source == Origin.undeliverable, table.c.digest.in_(said)
            )
        )
    }
    # A delivered number without an entry has nothing to release: its history is not read.
    look = [d for d in said if part[d] == NOT_DELIVERED or d in held]
    readings: dict[str, list[rt.Reading]] = defaultdict(list)
    if look:
        query = select(
            history.c.digest, history.c.campaign_id, history.c.status, history.c.campaign_at
        ).where(history.c.digest.in_(look))
        for d, cid, status, at in conn.execute(query):
            readings[d].append(rt.Reading(cid, aware(at) or campaign_at, status))
    retire: dict[str, str] = {}  # digest -> the campaign whose status ended the streak
    release: list[str] = []
    for d in look:
        verdict = rt.verdict(readings[d], held.get(d), after=after, now=now)
        if verdict == rt.Verdict.retire:
            retire[d] = rt.definite(readings[d])[-1].campaign_id
        elif verdict == rt.Verdict.release:
            release.append(d)
    gone = [*retire, *release]
    if gone:
        conn.execute(
            delete(table).where(table.c.source == Origin.undeliverable, table.c.digest.in_(gone))
        )
    if retire:
        conn.execute(
            insert(table),
            [
                {
                    "digest": d,
                    "source": str(Origin.undeliverable),
                    "reason": rt.reason(after),
                    "campaign_id": cid,
                    "added_at": now,
                    "expires_at": rt.expiry(now, days),
                }
                for d, cid in retire.items()
            ],
        )
    counts["retired"], counts["released"] = len(retire), len(release)
    return counts


__all__ = ["Entry", "NeverText", "Origin", "digester"]
