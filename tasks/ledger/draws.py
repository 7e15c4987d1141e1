"""A campaign's sample, kept in the ledger's database so that a resumed campaign keeps its draw.

The first run of a campaign draws its sample (``tasks.sample.draw``) and saves it here; every
later run (a resume, a rerun on another worker, a concurrent first run that lost the race)
loads it and texts only the people it drew. What is kept:

- the draw's record (population, eligible, drawn, the seed, counts per quota value): JSON,
  no number in it, shown again by the report;
- who was drawn, as a keyed one-way value of each number (80 bits, as the never-text store keeps
  them, but under a key derived for draws only: the two tables cannot be joined), never the
  number. Without the ledger's pseudonym key nobody can tell whether a number was drawn.

How a save can end, decided by ``save_ending`` alone:

======================================  ==========================================================
what happened                           what it means, what ``save`` does
======================================  ==========================================================
committed                               our draw is the campaign's: True
the campaign already has a draw         another run saved first (or our own commit landed and
(IntegrityError on the key)             its answer was lost, then retried): False; the caller
                                        loads the stored draw and uses it, whoever wrote it
unreachable, lost connection, timeout   may have happened: ridden (retried up to the outage
(an outage)                             bound, then ``LedgerUnavailable`` in one line); a retry
                                        that finds the row ends as above
any other database error                a bug or a broken database: raised as it is
======================================  ==========================================================

Header and drawn people are written in one transaction: a reader sees the whole draw or none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from tasks import ledger as lg
from tasks.errors import OperatorError
from tasks.ledger.engine import is_outage
from tasks.ledger.schema import sample_drawn, sample_draws
from tasks.nevertext import digests

_BATCH = 2000


class DrawUnreadable(OperatorError):
    """The ledger holds a draw for the campaign that cannot be read back: str() is one line."""


class SaveEnding(StrEnum):
    saved = "saved"  # our draw is the campaign's
    taken = "taken"  # the campaign has a draw already: load it
    retry = "retry"  # the ledger is away; the write may have happened
    fail = "fail"  # not an outage: raised as it is


def save_ending(error: BaseException | None) -> SaveEnding:
    """How a save ended, from the error it raised (None: committed) (pure)."""
    if error is None:
        return SaveEnding.saved
    if isinstance(error, IntegrityError):
        return SaveEnding.taken
    if is_outage(error):
        return SaveEnding.retry
    return SaveEnding.fail


def _is_e164(value: object) -> bool:
    return isinstance(value, str) and value.startswith("+") and len(value) <= 16 and value.isascii()


def draw_key(key: bytes) -> bytes:
    """The key of the draws' values, derived from the ledger's pseudonym key (pure)."""
    return hashlib.blake2b(key, digest_size=32, person=b"sample-draw-key").digest()


def draw_digests(numbers: Sequence[str], key: bytes) -> list[str]:
    """Each E.164 number's value in the draws' table, in hex (pure; ``key``: ``draw_key``)."""
    if not numbers:
        return []
    return [bytes(d).hex() for d in digests(list(numbers), key)]


@dataclass(frozen=True)
class DrawnSet:
    """Who a campaign's sample drew: ``e164 in drawn``, or ``members(numbers)`` for a column."""

    found: frozenset[str]
    key: bytes | None = field(default=None, repr=False)  # draw_key; None when nobody was drawn
    purged: bool = False  # the drawn people were dropped by the retention purge

    def __len__(self) -> int:
        return len(self.found)

    def __contains__(self, e164: object) -> bool:
        return isinstance(e164, str) and bool(self.members([e164]))

    def members(self, numbers: Iterable[str]) -> set[str]:
        """The numbers among ``numbers`` that the sample drew (anything not E.164: none)."""
        if not self.found or self.key is None:
            return set()
        wanted = sorted({n for n in numbers if _is_e164(n)})
        return {
            n
            for n, d in zip(wanted, draw_digests(wanted, self.key), strict=True)
            if d in self.found
        }


class Draws:
    """The campaigns' samples, in a ledger's database (it needs the ledger's pseudonym key)."""

    def __init__(self, ledger: lg.Ledger) -> None:
        self.ledger = ledger
        self._key_checked = False

    def _key(self, *, adopt: bool) -> bytes:
        """The ledger's key, checked against the one it recorded (another key would recognise
        nobody: refused in one line), recorded as the ledger's when ``adopt``."""
        if not self._key_checked:
            self._key_checked = self.ledger.store_key_checked(adopt=adopt)
        return draw_key(self.ledger._key())

    def save(self, campaign_id: str, record: dict[str, Any], drawn: Iterable[str]) -> bool:
        """Record the campaign's draw: ``record`` (``tasks.sample.Draw.record``) and the E.164
        numbers drawn. False when the campaign already has one (first writer wins): load it and
        use it instead."""
        given = list(drawn)
        numbers = sorted(set(given))
        bad = sum(1 for n in numbers if not _is_e164(n))
        if bad:
            raise ValueError(f"a draw holds E.164 numbers only ({bad} other values given)")
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        values = []
        if numbers:
            key = self.ledger._ride(lambda: self._key(adopt=True))
            values = draw_digests(numbers, key)

        def attempt() -> bool:
            error: DBAPIError | None = None
            try:
                self._insert(campaign_id, text, values)
            except DBAPIError as exc:
                error = exc
            ending = save_ending(error)
            if ending is SaveEnding.saved:
                return True
            if ending is SaveEnding.taken:
                return False
            assert error is not None
            raise error  # retry: ridden by the ledger up to its outage bound; fail: as it is

        return self.ledger._ride(attempt)

    def _insert(self, campaign_id: str, text: str, values: list[str]) -> None:
        with self.ledger._write() as conn:
            conn.execute(
                insert(sample_draws).values(
                    campaign_id=campaign_id,
                    record=text,
                    drawn=len(values),
                    created_at=self.ledger.now(),
                )
            )
            for start in range(0, len(values), _BATCH):
                conn.execute(
                    insert(sample_drawn),
                    [
                        {"campaign_id": campaign_id, "digest": d}
                        for d in values[start : start + _BATCH]
                    ],
                )

    @lg.ridden
    def load(self, campaign_id: str) -> tuple[dict[str, Any], DrawnSet] | None:
        """The campaign's draw: (record, who was drawn); None when it has none."""
        with self.ledger.engine.connect() as conn:
            row = conn.execute(
                select(sample_draws.c.record, sample_draws.c.purged_at).where(
                    sample_draws.c.campaign_id == campaign_id
                )
            ).first()
            if row is None:
                return None
            found = frozenset(
                conn.execute(
                    select(sample_drawn.c.digest).where(sample_drawn.c.campaign_id == campaign_id)
                ).scalars()
            )
        try:
            record = json.loads(row[0])
        except (TypeError, ValueError):
            record = None
        if not isinstance(record, dict):
            raise DrawUnreadable(
                f"le tirage de l'échantillon de la campagne {campaign_id} est illisible dans "
                "le registre : relancez-la avec un autre identifiant de campagne",
                personal=False,
            )
        key = self._key(adopt=False) if found else None
        return record, DrawnSet(found, key, purged=row[1] is not None)

    @lg.ridden
    def forget(self, numbers: Iterable[str]) -> int:
        """An erased person leaves every campaign's draw; how many rows went."""
        wanted = sorted({n for n in numbers if _is_e164(n)})
        with self.ledger.engine.connect() as conn:
            held = conn.execute(select(sample_drawn.c.digest).limit(1)).first()
        if not wanted or held is None:
            return 0  # no draw holds anybody: no key needed
        values = draw_digests(wanted, self._key(adopt=False))
        gone = 0
        with self.ledger._write() as conn:
            for start in range(0, len(values), _BATCH):
                done = conn.execute(
                    delete(sample_drawn).where(
                        sample_drawn.c.digest.in_(values[start : start + _BATCH])
                    )
                )
                gone += int(done.rowcount or 0)
        return gone

    @lg.ridden
    def forget_campaign(self, campaign_id: str) -> int:
        """The retention purge: the campaign's drawn people go, its record (counts, the seed)
        stays, marked purged; how many rows went."""
        with self.ledger._write() as conn:
            done = conn.execute(
                delete(sample_drawn).where(sample_drawn.c.campaign_id == campaign_id)
            )
            conn.execute(
                update(sample_draws)
                .where(sample_draws.c.campaign_id == campaign_id)
                .values(purged_at=self.ledger.now())
            )
        return int(done.rowcount or 0)


def drawn_mask(drawn: DrawnSet, numbers: Sequence[str] | np.ndarray) -> np.ndarray:
    """For each of ``numbers`` (a column, in order), whether the sample drew it."""
    members = drawn.members(list(numbers))
    return np.array([n in members for n in numbers], dtype=bool)


__all__ = [
    "DrawUnreadable",
    "Draws",
    "DrawnSet",
    "SaveEnding",
    "draw_digests",
    "draw_key",
    "drawn_mask",
    "save_ending",
]
