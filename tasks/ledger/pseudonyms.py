"""Pseudonyms: the keyed hash the ledger keeps instead of a number it may no longer keep.

After the retention period (or an erasure request) the ledger keeps ``pseudonym(number, key)``:
still the same person for exactly-once and the frequency cap, no longer a phone number. 20
characters, short enough for ``texted.e164``; 76 bits, so two people of any realistic ledger
never share one; never starts with "+", so it is never taken for a number.

The key is HANDED IN: a ``Ledger`` receives it (bytes, or a function that returns it when first
needed) from ``tasks.runtime``, which reads the environment; nothing here reads it. The key's id
recorded in the ledger (``pseudonym_keys``) tells a worker with another key to stop in one line
rather than silently recognise nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tasks.ledger.engine import LedgerEngine
from tasks.ledger.model import ChunkRow, LedgerUnavailable
from tasks.ledger.schema import campaigns, pseudonym_keys

PSEUDONYM_KEY_ENV = "SURVEY_PSEUDONYM_KEY"  # read by tasks.runtime; named in our messages
_PSEUDONYM_HEX = 19

# A key, or what gives it when first needed (a ledger that never purged needs none).
KeySource = bytes | Callable[[], bytes] | None

# Whether pseudonyms stand for numbers anywhere (a purge or an erasure marks its campaigns).
ANY_PSEUDONYMISED = (
    select(campaigns.c.campaign_id).where(campaigns.c.pseudonymised_at.is_not(None)).limit(1)
)


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


def load_pseudonym_key(path: Path, given: str = "") -> bytes:
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


class Pseudonyms(LedgerEngine):
    """The ledger's key in use: the frequency cap, reruns, the retention purge and erasure."""

    _key_source: KeySource
    _pseudonyms_seen: bool  # the ledger holds pseudonyms made with our key
    _pseudonyms_looked: float  # when we last found it held none (time.monotonic)

    def _hand_key(self, key: KeySource) -> None:
        """Take the key (or its source) a ``Ledger`` is built with; nothing is read yet."""
        self._key_source = key
        self._pseudonyms_seen = False
        self._pseudonyms_looked = -math.inf

    def _key(self) -> bytes:
        if callable(self._key_source):
            self._key_source = self._key_source()  # read once, when first needed
        if self._key_source is None:
            raise PseudonymKeyError(
                "no pseudonym key was handed to the ledger (tasks.runtime.open_ledger hands in "
                f"the worker's {PSEUDONYM_KEY_ENV} or key file)"
            )
        return self._key_source

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
            if conn.execute(ANY_PSEUDONYMISED).first() is None:
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

    def store_key_checked(self, *, adopt: bool) -> bool:
        """For the keyed stores beside the chunks (the never-text store, the samples' draws):
        the key checked against the one the ledger recorded (another key would recognise
        nobody: refused in one line), and recorded as the ledger's when ``adopt``. True once
        there is a recorded key to have checked against."""
        for attempt in range(3):
            try:
                with self._write() as conn:
                    if adopt:
                        self._adopt_key(conn, pseudonyms=False)
                        return True
                    ids = set(conn.execute(select(pseudonym_keys.c.key_id)).scalars())
                    self._check_key(ids)
                    return bool(ids)
            except IntegrityError:  # two first runs recorded the key at once: check against it
                if attempt == 2:
                    raise
        return False

    def reidentify(self, rows: Sequence[ChunkRow], numbers: Iterable[str]) -> list[ChunkRow]:
        """The chunks with each pseudonym of one of ``numbers`` (the input at hand, E.164) put
        back as that number, so a rerun of a purged campaign matches its people to the chunks
        that already planned them. Chunks without pseudonyms come back as they are."""
        rows = list(rows)
        # A campaign never purged nor erased from holds no pseudonym: skip walking every number
        # of every chunk (a million at a large campaign's report).
        ids = sorted({c.campaign_id for c in rows})
        with self.engine.connect() as conn:
            marked = conn.execute(ANY_PSEUDONYMISED.where(campaigns.c.campaign_id.in_(ids))).first()
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
