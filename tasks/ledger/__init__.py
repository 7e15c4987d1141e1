"""The send ledger: what every chunk of every campaign became, kept in a database.

Purpose and scope. It is what makes a campaign exactly-once across retries, crashes and
concurrent runs: the plan is written once per campaign; a chunk is *claimed* (``sending``) before
the gateway is called, by an update conditional on its state (or under the campaign row's lock
when money or another holder must be judged), and its outcome written after; a ``sending`` chunk
whose owner died or whose lease ran out is handed over as in doubt, to be reconciled with the
gateway before any resend; budgets and the frequency cap are checked inside the claim's
transaction; an unreachable database is ridden through for up to the outage bound, then
``LedgerUnavailable`` says so in one line. SQLite (a file under the data folder), PostgreSQL and
MariaDB/MySQL (``mysql://``, through PyMySQL) are tested; any SQLAlchemy URL should work.

It does NOT read the environment or choose its URL or pseudonym key (``tasks.runtime`` does, and
hands them in: ``runtime.open_ledger``, ``runtime.shared_ledger``), talk to the gateway, or
decide what a campaign sends (planning and the send core do). It never imports Prefect.

Entry points: ``Ledger`` (the store) and its nouns ``ChunkPlan``, ``ChunkRow``, ``Claim``,
``ClaimAction``; ``owner_token``; ``LedgerUnavailable``; ``DEFAULT_OUTAGE``, ``DEFAULT_LEASE``.
Import them from here (``from tasks import ledger as lg``). Steps, I/O modules and the runtime
may import the package; rules modules import the nouns from ``tasks.ledger.model``: the SQL
rooms load on first use of their names, so the nouns come without SQLAlchemy.

Architecture, one room per reason to change:

- ``model``       nouns and pure claim rules (``decide_claim``, ``budget_refusal``,
                  ``claim_values``, ``chunk_tag``); no SQLAlchemy, clock or file system
- ``schema``      the tables alone
- ``engine``      engines per dialect, outage riding, transactions, locks; the two defaults
- ``owners``      who holds a claim, and whether that process still runs
- ``pseudonyms``  the keyed hash kept instead of a number; the key is handed in
- ``cap``         the contact-pressure rules' SQL (the frequency cap is one), per dialect;
                  the rules themselves are ``tasks.pressure`` (pure)
- ``retention``   the purge of old campaigns, the erasure of one person, compaction
- ``store``       ``Ledger``: plans, claims, outcomes, prices (the hot path)

Pitfalls: chunk states are ``tasks.outcomes.ChunkState``, the one spelling (the ledger has no
aliases of its own). A ledger that has pseudonyms needs
the same key on every worker (``SURVEY_PSEUDONYM_KEY``); a ``Ledger`` built without a key raises
``PseudonymKeyError`` the first time it needs one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tasks.ledger.model import (
    ERASED,
    NOT_IN_INPUT,
    OPTED_OUT_SINCE,
    WITHDRAWN,
    ChunkPlan,
    ChunkRow,
    Claim,
    ClaimAction,
    ClaimRequest,
    LedgerUnavailable,
    PurgeScan,
    budget_refusal,
    chunk_tag,
    claim_values,
    decide_claim,
)
from tasks.ledger.owners import owner_token

if TYPE_CHECKING:
    from tasks.ledger.engine import DEFAULT_LEASE, DEFAULT_OUTAGE, is_outage, ridden
    from tasks.ledger.pseudonyms import (
        PSEUDONYM_KEY_ENV,
        KeySource,
        PseudonymKeyError,
        is_pseudonym,
        key_id,
        load_pseudonym_key,
        pseudonym,
    )
    from tasks.ledger.schema import never_text, pseudonym_keys
    from tasks.ledger.store import Ledger


# Names of the SQL rooms: (module, name there), loaded when first asked for (the nouns above
# import without SQLAlchemy). ``ridden`` is also used by ``tasks.nevertext``, a store that shares
# the ledger's database and its outage riding.
_LAZY = {
    "DEFAULT_LEASE": ("engine", "DEFAULT_LEASE"),
    "DEFAULT_OUTAGE": ("engine", "DEFAULT_OUTAGE"),
    "is_outage": ("engine", "is_outage"),
    "ridden": ("engine", "ridden"),
    "PSEUDONYM_KEY_ENV": ("pseudonyms", "PSEUDONYM_KEY_ENV"),
    "KeySource": ("pseudonyms", "KeySource"),
    "PseudonymKeyError": ("pseudonyms", "PseudonymKeyError"),
    "is_pseudonym": ("pseudonyms", "is_pseudonym"),
    "key_id": ("pseudonyms", "key_id"),
    "load_pseudonym_key": ("pseudonyms", "load_pseudonym_key"),
    "pseudonym": ("pseudonyms", "pseudonym"),
    "never_text": ("schema", "never_text"),
    "pseudonym_keys": ("schema", "pseudonym_keys"),
    "Ledger": ("store", "Ledger"),
}

if not TYPE_CHECKING:  # the type checker reads the imports above instead

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        globals()[name] = value  # asked once: later lookups find it directly
        return value


__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_OUTAGE",
    "ERASED",
    "NOT_IN_INPUT",
    "OPTED_OUT_SINCE",
    "PSEUDONYM_KEY_ENV",
    "WITHDRAWN",
    "ChunkPlan",
    "ChunkRow",
    "Claim",
    "ClaimAction",
    "ClaimRequest",
    "KeySource",
    "Ledger",
    "LedgerUnavailable",
    "PseudonymKeyError",
    "PurgeScan",
    "budget_refusal",
    "chunk_tag",
    "claim_values",
    "decide_claim",
    "is_outage",
    "is_pseudonym",
    "key_id",
    "load_pseudonym_key",
    "never_text",
    "owner_token",
    "pseudonym",
    "pseudonym_keys",
    "ridden",
]
