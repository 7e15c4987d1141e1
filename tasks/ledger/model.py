"""The ledger's nouns and its pure claim rules (no SQLAlchemy, clock, file system or Prefect).

What a planned chunk is (``ChunkPlan``), what the ledger holds of one (``ChunkRow``), what a
claim decided (``Claim``, ``ClaimAction``, ``decide_claim``), what it refuses on money
(``budget_refusal``) and what it writes (``claim_values``). The store (``tasks.ledger.store``)
reads and writes; every decision it takes from a row read is made here, from explicit inputs, so
it can be tested without a database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from tasks.errors import OperatorError
from tasks.outcomes import ChunkState, Reason
from tasks.pressure import PressureRule

# What an unsent chunk keeps in ``refused`` for a number taken out before its send.
ERASED = "erased on request"  # an erasure (see ``Retention.erase_number``)
OPTED_OUT_SINCE = "in the never-text store since it was planned"  # see ``Ledger.withdraw``
NOT_IN_INPUT = "not in the input the campaign was resumed on"
WITHDRAWN = (ERASED, OPTED_OUT_SINCE)  # rows of the input that say opted_out in the report


class LedgerUnavailable(OperatorError):
    """The ledger could not be reached within the outage bound: str() is one line."""


class ClaimAction(StrEnum):
    SEND = "send"  # nothing of this chunk is outstanding: send it
    RECONCILE = "reconcile"  # an earlier send may have landed: settle it before sending
    SKIP = "skip"  # final (sent, cancelled), or refused now (budget, halted campaign)
    BUSY = "busy"  # another live run holds it: wait and ask again


@dataclass(frozen=True)
class ChunkPlan:
    chunk_index: int
    territory: str
    slot: str | None
    numbers: tuple[str, ...]
    survey_id: str | None = None  # None: the campaign's survey


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
    doubt_from: datetime | None = None
    cost_estimated: bool = False
    held: dict[str, str] = field(default_factory=dict)  # number -> tasks.pressure.held_value
    updated_at: datetime | None = None
    survey_id: str | None = None  # None: the campaign's survey (older ledgers, one survey)

    @property
    def size(self) -> int:
        return len(self.numbers)


@dataclass
class PurgeScan:
    """The campaigns of a ledger as the retention purge sees them (see ``purge_scan``)."""

    due: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    """What claim() decided for one chunk, with the chunk as the claim left it."""

    chunk: ChunkRow
    action: ClaimAction
    reserved: bool = False  # the chunk's numbers were recorded for the frequency cap


@dataclass(frozen=True)
class ClaimRequest:
    """One claim's inputs (see ``Ledger.claim``), with the moment it was made."""

    campaign_id: str
    chunk_index: int
    owner: str
    token: str  # this claim's own mark: a retry after a lost commit recognises it
    now: datetime
    cost_per_recipient: float
    max_cost: float | None = None
    credits: float | None = None
    rules: tuple[PressureRule, ...] = ()  # contact pressure, judged under the cap lock
    ends_within: timedelta = timedelta(minutes=2)  # the longest one send can take

    @property
    def key(self) -> dict[str, Any]:
        """The chunk's key as the store's prepared statements bind it."""
        return {"cid": self.campaign_id, "idx": self.chunk_index}

    @property
    def budgeted(self) -> bool:
        """Whether money bounds the claim (then it reads the campaign's spending under lock)."""
        return self.max_cost is not None or self.credits is not None


def decide_claim(state: str, *, same_claim: bool, holder_alive: bool, halted: bool) -> ClaimAction:
    """What a claim of one chunk does, from the chunk's state and its holder (pure).

    ``same_claim``: the chunk is held under this very claim's token (our commit was lost with
    the connection and the claim is retried). ``holder_alive``: its holder's process still runs
    and its lease has not run out. A halted campaign takes no new chunk, but a chunk that may have
    landed is still reconciled.
    """
    if state in (ChunkState.sent, ChunkState.cancelled):
        return ClaimAction.SKIP
    if state == ChunkState.sending:
        if same_claim:
            return ClaimAction.SEND
        return ClaimAction.BUSY if holder_alive else ClaimAction.RECONCILE
    if state == ChunkState.in_doubt:
        return ClaimAction.RECONCILE
    return ClaimAction.SKIP if halted else ClaimAction.SEND


def budget_refusal(
    *,
    spent: float,
    mine: float,
    reserve: float,
    max_cost: float | None,
    credits: float | None,
) -> tuple[str, str] | None:
    """(reason, detail) when sending ``reserve`` more would pass the cap or the credits (pure).

    ``credits`` is what the account had when this run started: only this run's own commitments
    (``mine``) count against it, since earlier runs' sends were already taken from it.
    """
    if max_cost is not None and spent + reserve > max_cost + 1e-9:
        detail = f"projected cost {spent + reserve:.2f} > max_cost {max_cost:.2f}"
        return Reason.budget_exceeded, detail
    if credits is not None and mine + reserve > credits + 1e-9:
        detail = f"projected cost {mine + reserve:.2f} > credits {credits:.2f}"
        return Reason.insufficient_credits, detail
    return None


def claim_values(
    row: ChunkRow,
    action: ClaimAction,
    request: ClaimRequest,
    *,
    claimed_at: datetime | None,
    reserve: float,
) -> dict[str, Any]:
    """What a claim that takes the chunk (``SEND`` or ``RECONCILE``) writes to it (pure).

    ``row`` and ``claimed_at`` are the chunk as read under the campaign lock; ``reserve`` the
    cost set aside for it. A fresh send may have landed from the moment it can end at the latest
    (``request.ends_within`` from now). A chunk reconciled keeps the doubt of the earlier send:
    it ended when recorded, or at the latest when its holder would have given up; the oldest
    rows lack the column.
    """
    if action not in (ClaimAction.SEND, ClaimAction.RECONCILE):
        raise ValueError(f"a {action} claim writes nothing of its own")
    doubt_from = not_before(request.now + request.ends_within)
    if action is ClaimAction.RECONCILE:
        ended = (claimed_at + request.ends_within) if claimed_at else row.updated_at or request.now
        doubt_from = row.doubt_from or ended
    return {
        "state": ChunkState.sending,
        "owner": request.owner,
        "claim_token": request.token,
        "claimed_at": request.now,
        "doubt_from": doubt_from,
        "reserved_cost": reserve,
        "attempts": row.attempts + 1,
        "updated_at": request.now,
        "reason": None,
        "detail": None,
    }


def failed_values(reason: str | None, detail: str, now: datetime) -> dict[str, Any]:
    """What a claim refused on the spot writes: the chunk fails with why (pure)."""
    return {"state": ChunkState.failed, "reason": reason, "detail": detail, "updated_at": now}


def chunk_tag(campaign_id: str, chunk_index: int) -> str:
    """Gateway tag of a chunk: <= 20 chars, lowercase, no spaces, unique across campaigns."""
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:12]
    return f"{digest}-{chunk_index:06d}"


def chunk_from_row(r: Any) -> ChunkRow:
    """A ``chunks`` row as read from the database (any object with its columns) (pure)."""
    return ChunkRow(
        campaign_id=r.campaign_id,
        chunk_index=r.chunk_index,
        tag=r.tag,
        territory=r.territory,
        slot=r.slot,
        numbers=tuple(filter(None, (r.numbers or "").split(","))),
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
        doubt_from=aware(r.doubt_from),
        cost_estimated=bool(r.cost_estimated),
        held=json.loads(r.held) if r.held else {},
        updated_at=aware(r.updated_at),
        # Rows read before add_missing_columns ran, or built by hand, may lack the column.
        survey_id=getattr(r, "survey_id", None),
    )


def not_before(moment: datetime) -> datetime:
    """``moment`` rounded up to the second: MariaDB keeps whole seconds, and a doubt must never
    be recorded as starting earlier than it did."""
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; we only store UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
