"""The never-text store: everybody who must never be texted again, in the ledger's database.

Every source lands here, with its source, reason and date: the gateway's STOP list as read at
each run, STOP replies the follow-up finds, opt-out lists imported (a run's named list, the
``flows.never_text import`` command, the clear-text ``suppression.csv`` of earlier versions,
migrated once), people erased on request, numbers added by hand. Every campaign of every worker
reads it before planning and again before a resumed chunk is sent; nothing a run is given can
remove or bypass what it holds.

As the CNIL asks of an opposition list (*liste repoussoir*), it keeps only what recognises a
number: a keyed one-way value of 80 bits, never the number. Without the key nobody can test a
number against it, and nobody can ever read a number back from it (see ``digests``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from tasks import ledger as lg
from tasks.numbers import mask_numbers_in_text

_BATCH = 2000


class Origin(StrEnum):
    """Who said this person must never be texted."""

    gateway = "gateway_stop"  # the gateway's STOP list, read at a run
    reply = "stop_reply"  # a STOP reply the follow-up found
    imported = "import"  # an opt-out list imported (a run's list, the import command)
    erasure = "erasure"  # erased on request
    manual = "manual"  # added by hand


@dataclass(frozen=True)
class Entry:
    """One row of the store, as an audit export shows it: never a number."""

    digest: str
    source: str
    reason: str | None
    campaign_id: str | None
    added_at: datetime


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
            with self.ledger._write() as conn:
                if adopt:
                    self.ledger._adopt_key(conn, pseudonyms=False)
                    self._key_checked = True
                else:
                    ids = set(conn.execute(select(lg.pseudonym_keys.c.key_id)).scalars())
                    self.ledger._check_key(ids)
                    self._key_checked = bool(ids)
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

    @lg.ridden
    def among(self, numbers: Sequence[str] | np.ndarray) -> set[str]:
        """The numbers of ``numbers`` (E.164; a column of a million is looked up in one pass)
        that the store holds."""
        with self.ledger.engine.connect() as conn:
            held = set(conn.execute(select(lg.never_text.c.digest).distinct()).scalars())
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
        """What the store holds for one number (an operator's or a DPO's question)."""
        mine = digester(self._key(adopt=False))(e164)
        with self.ledger.engine.connect() as conn:
            found = conn.execute(select(lg.never_text).where(lg.never_text.c.digest == mine)).all()
        return [Entry(*r) for r in found]

    def entries(self) -> Iterator[Entry]:
        """Every row, oldest first (the audit export)."""
        table = lg.never_text
        with self.ledger.engine.connect() as conn:
            query = select(table).order_by(table.c.added_at, table.c.digest, table.c.source)
            for row in conn.execution_options(yield_per=5000).execute(query):
                yield Entry(*row)

    @lg.ridden
    def counts(self) -> dict[str, int]:
        """Rows per source, and ``people``: distinct numbers."""
        table = lg.never_text
        with self.ledger.engine.connect() as conn:
            per: dict[str, int] = dict(
                conn.execute(select(table.c.source, func.count()).group_by(table.c.source)).all()
            )
            people = conn.execute(select(func.count(table.c.digest.distinct()))).scalar()
        return {**{str(k): int(v) for k, v in per.items()}, "people": int(people or 0)}

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


__all__ = ["Entry", "NeverText", "Origin", "digester"]
