"""The ledger's hot path: campaigns, their plans, and each chunk's claim and outcome.

``Ledger`` is the one object callers hold. Its rooms stand on ``engine.LedgerEngine``:
``cap.FrequencyCap`` (reservations and lookups), ``retention.Retention`` (purge, erasure) and
``pseudonyms.Pseudonyms`` (the key handed in). This module keeps what every send does: write the
plan once, claim a chunk (a conditional update, or under the campaign lock when money or another
holder must be judged), record what it became, and price it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from tasks.ledger.cap import FrequencyCap, forget_texted, record_texted, retime_texted
from tasks.ledger.engine import (
    DEFAULT_LEASE,
    DEFAULT_OUTAGE,
    SELECT_CHUNK,
    THIS_CHUNK,
    ridden,
    system_now,
    update_unchanged,
)
from tasks.ledger.model import (
    ChunkPlan,
    ChunkRow,
    Claim,
    ClaimAction,
    ClaimRequest,
    aware,
    budget_refusal,
    chunk_from_row,
    chunk_tag,
    claim_values,
    decide_claim,
    failed_values,
    not_before,
)
from tasks.ledger.owners import owner_is_dead
from tasks.ledger.pseudonyms import KeySource, pseudonym
from tasks.ledger.retention import Retention
from tasks.ledger.schema import campaigns, chunks
from tasks.outcomes import ChunkState, Reason
from tasks.pressure import PressureRule, rules_for

# A fresh claim in one statement: the chunk is taken only if it is still to send and the campaign
# is not halted. Claims that need more (budget, a holder to judge, a halt to record) take the
# campaign lock instead.
_CLAIM_FRESH = (
    update(chunks)
    .where(
        THIS_CHUNK,
        chunks.c.state.in_((ChunkState.pending, ChunkState.failed)),
        ~exists().where(
            campaigns.c.campaign_id == bindparam("cid"), campaigns.c.halt_reason.is_not(None)
        ),
    )
    .values(
        state=ChunkState.sending,
        owner=bindparam("new_owner"),
        claim_token=bindparam("token"),
        claimed_at=bindparam("at"),
        doubt_from=bindparam("doubt_from"),
        reserved_cost=chunks.c.size * bindparam("per_recipient"),
        attempts=chunks.c.attempts + 1,
        updated_at=bindparam("at"),
        reason=None,
        detail=None,
    )
)
_CLAIM_FRESH_RETURNING = _CLAIM_FRESH.returning(*chunks.c)
_COMMITTED = func.coalesce(chunks.c.cost, chunks.c.reserved_cost, 0.0)
# Prices observed in the gateway's own answers (chunks confirmed by status are estimates).
_PRICED = and_(
    chunks.c.state == ChunkState.sent,
    chunks.c.cost.is_not(None),
    chunks.c.size > 0,
    func.coalesce(chunks.c.cost_estimated, False).is_(False),
)
_BUDGET = select(
    func.coalesce(func.sum(_COMMITTED), 0.0),
    func.coalesce(
        func.sum(case((chunks.c.owner == bindparam("owner"), _COMMITTED), else_=0.0)), 0.0
    ),
    func.sum(case((_PRICED, chunks.c.cost), else_=None)),
    func.sum(case((_PRICED, chunks.c.size), else_=None)),
).where(
    and_(
        chunks.c.campaign_id == bindparam("cid"),
        chunks.c.state.in_((ChunkState.sending, ChunkState.sent)),
    )
)
_OBSERVED = select(
    func.sum(chunks.c.cost), func.sum(chunks.c.nb_sms), func.sum(chunks.c.size)
).where(and_(chunks.c.campaign_id == bindparam("cid"), _PRICED))
# Chunks confirmed at the gateway without an answer naming their price.
_ESTIMATED = select(chunks.c.chunk_index, chunks.c.size, chunks.c.cost, chunks.c.nb_sms).where(
    and_(
        chunks.c.campaign_id == bindparam("cid"),
        chunks.c.state == ChunkState.sent,
        chunks.c.cost_estimated.is_(True),
    )
)
_REPRICE = (
    update(chunks)
    .where(and_(chunks.c.campaign_id == bindparam("cid"), chunks.c.chunk_index == bindparam("at")))
    .values(cost=bindparam("new_cost"), nb_sms=bindparam("new_sms"))
)


class Ledger(FrequencyCap, Retention):
    """One database of campaigns, chunks and texted numbers."""

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        outage: float = DEFAULT_OUTAGE,
        clock: Callable[[], datetime] = system_now,
        sleep: Callable[[float], None] = time.sleep,
        pseudonym_key: KeySource = None,
    ):
        """``pseudonym_key``: the key, or a function giving it when first needed (a ledger
        that never purged needs none); ``tasks.runtime.open_ledger`` hands in the worker's."""
        self.lease = lease
        self._hand_key(pseudonym_key)
        super().__init__(url, outage=outage, clock=clock, sleep=sleep)

    # -- plan -------------------------------------------------------------------------------

    @ridden
    def campaign_exists(self, campaign_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(campaigns.c.campaign_id).where(campaigns.c.campaign_id == campaign_id)
            ).first()
        return found is not None

    @ridden
    def credits_before(self, campaign_id: str) -> float | None:
        """The balance recorded before the campaign's first run."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(campaigns.c.credits_before).where(campaigns.c.campaign_id == campaign_id)
            ).scalar()

    @ridden
    def binding(self, campaign_id: str) -> tuple[str, str | None] | None:
        """(survey id, input fingerprint) the campaign was started with; None if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(campaigns.c.survey_id, campaigns.c.input_fingerprint).where(
                    campaigns.c.campaign_id == campaign_id
                )
            ).first()
        return None if row is None else (str(row[0]), row[1])

    @ridden
    def bind_input(self, campaign_id: str, fingerprint: str) -> None:
        """A rerun allowed to change the input binds the campaign to its new input."""
        with self._write() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(input_fingerprint=fingerprint)
            )

    @ridden
    def create_plan(
        self,
        campaign_id: str,
        survey_id: str,
        plan: Sequence[ChunkPlan],
        *,
        credits_before: float | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        """Write a campaign's chunks; False when another run created the campaign first."""
        now = self.now()
        try:
            with self._write() as conn:
                conn.execute(
                    insert(campaigns).values(
                        campaign_id=campaign_id,
                        survey_id=survey_id,
                        created_at=now,
                        credits_before=credits_before,
                        input_fingerprint=fingerprint,
                    )
                )
                _insert_chunks(conn, campaign_id, plan, now)
        except IntegrityError:
            return False
        return True

    @ridden
    def extend_plan(self, campaign_id: str, plan: Sequence[ChunkPlan]) -> None:
        """Add chunks for numbers a rerun found that no earlier run planned.

        Once a campaign's numbers were pseudonymised (purge, erasure), a caller that did not
        ``reidentify`` its chunks takes those people for new ones: the numbers the campaign
        already planned are left out here, and a chunk left empty is recorded ``cancelled``
        (``already_planned``), so nobody is texted twice whatever the caller did.
        """
        if plan:
            with self._campaign_lock(campaign_id) as (conn, _):
                marked = conn.execute(
                    select(campaigns.c.pseudonymised_at).where(
                        campaigns.c.campaign_id == campaign_id
                    )
                ).scalar()
                if marked is not None:
                    plan = self._not_yet_planned(conn, campaign_id, plan)
                _insert_chunks(conn, campaign_id, plan, self.now())

    def _not_yet_planned(
        self, conn: Connection, campaign_id: str, plan: Sequence[ChunkPlan]
    ) -> list[ChunkPlan]:
        planned: set[str] = set()
        found = conn.execute(
            select(chunks.c.numbers, chunks.c.refused).where(chunks.c.campaign_id == campaign_id)
        )
        for numbers, refused in found:
            planned.update((numbers or "").split(","))
            planned.update(json.loads(refused) if refused else {})
        key = self._key()
        return [
            replace(
                c,
                numbers=tuple(
                    n for n in c.numbers if n not in planned and pseudonym(n, key) not in planned
                ),
            )
            for c in plan
        ]

    @ridden
    def chunks(self, campaign_id: str, *, states: Sequence[str] = ()) -> list[ChunkRow]:
        query = select(chunks).where(chunks.c.campaign_id == campaign_id)
        if states:
            query = query.where(chunks.c.state.in_(list(states)))
        with self.engine.connect() as conn:
            result = conn.execute(query.order_by(chunks.c.chunk_index))
            return [chunk_from_row(r) for r in result]

    @ridden
    def chunk_slots(self, campaign_id: str) -> list[tuple[str, str | None]]:
        """Each (territory, slot) the campaign's chunks go at, once: what the plan's log lines
        say, without reading a million numbers back."""
        query = (
            select(chunks.c.territory, chunks.c.slot)
            .where(chunks.c.campaign_id == campaign_id)
            .distinct()
        )
        with self.engine.connect() as conn:
            return [(t, s) for t, s in conn.execute(query)]

    @ridden
    def chunk(self, campaign_id: str, chunk_index: int) -> ChunkRow:
        with self.engine.connect() as conn:
            r = conn.execute(SELECT_CHUNK, {"cid": campaign_id, "idx": chunk_index}).one()
        return chunk_from_row(r)

    @ridden
    def halt(self, campaign_id: str, reason: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(halt_reason=reason)
            )

    @ridden
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
        rules: Sequence[PressureRule] = (),
        cap_days: int = 0,
        attempt_ends_within: timedelta = timedelta(minutes=2),
    ) -> Claim:
        """Take a chunk for sending, or say why not (already sent, held, over budget).

        A chunk taken to send is recorded as possibly landing until ``attempt_ends_within``
        from now (the longest a send can take), so a run that dies mid-call leaves the chunk to
        be reconciled from that moment. Its numbers are reserved for the contact-pressure
        ``rules``, those some rule holds set aside; no rules records them without checking
        other campaigns. ``cap_days`` (older callers) stands for ``rules_for(cap_days, [])``
        when ``rules`` is empty.
        """
        token = uuid.uuid4().hex
        judged = tuple(rules) or rules_for(cap_days, [])
        return self._ride(
            lambda: self._claim(
                campaign_id,
                chunk_index,
                owner,
                token,
                cost_per_recipient=cost_per_recipient,
                max_cost=max_cost,
                credits=credits,
                rules=judged,
                ends_within=attempt_ends_within,
            )
        )

    def _claim(
        self,
        campaign_id: str,
        chunk_index: int,
        owner: str,
        token: str,
        *,
        cost_per_recipient: float,
        max_cost: float | None,
        credits: float | None,
        rules: tuple[PressureRule, ...],
        ends_within: timedelta,
    ) -> Claim:
        """One try of a claim (retried whole through an outage, under the same token)."""
        request = ClaimRequest(
            campaign_id,
            chunk_index,
            owner,
            token,
            self.now(),
            cost_per_recipient,
            max_cost=max_cost,
            credits=credits,
            rules=rules,
            ends_within=ends_within,
        )
        if not request.budgeted:
            fresh = self._claim_fresh(request)
            if fresh is not None:
                return fresh
        with self._campaign_lock(campaign_id) as (conn, halt):
            return self._claim_locked(conn, request, halt)

    def _claim_fresh(self, request: ClaimRequest) -> Claim | None:
        """The common case in one conditional statement: a chunk still to send, of a campaign
        not halted, with no money to check. None: the campaign lock must judge."""
        params = {
            **request.key,
            "new_owner": request.owner,
            "token": request.token,
            "at": request.now,
            "doubt_from": not_before(request.now + request.ends_within),
            "per_recipient": request.cost_per_recipient,
        }
        with self._write() as conn:
            found = self._take_fresh(conn, request.key, params)
            if found is None:
                return None
            row = self._reserve(conn, chunk_from_row(found), request.rules, request.now)
            return Claim(row, ClaimAction.SEND, reserved=True)

    def _take_fresh(
        self, conn: Connection, key: dict[str, Any], params: dict[str, Any]
    ) -> Row[Any] | None:
        """The chunk as the fresh claim left it, or None when it did not take it."""
        if self._update_returning:
            return conn.execute(_CLAIM_FRESH_RETURNING, params).first()
        if conn.execute(_CLAIM_FRESH, params).rowcount == 1:
            return conn.execute(SELECT_CHUNK, key).one()
        return None

    def _claim_locked(self, conn: Connection, request: ClaimRequest, halt: str | None) -> Claim:
        """The claim judged under the campaign lock: its holder, the halt, the money."""
        found = conn.execute(SELECT_CHUNK, request.key).one()
        row, claimed_at = chunk_from_row(found), aware(found.claimed_at)
        ours = found.claim_token == request.token
        alive = self._holder_alive(row.owner, request, claimed_at)
        action = decide_claim(
            row.state, same_claim=ours, holder_alive=alive, halted=halt is not None
        )
        if action is ClaimAction.BUSY:
            return Claim(row, action)
        if action is ClaimAction.SKIP:
            if row.state in (ChunkState.pending, ChunkState.failed):
                # A halted campaign: this chunk, not yet sent, fails too.
                failed = failed_values(halt, "campaign halted", request.now)
                return Claim(self._update(conn, request.key, failed), action)
            return Claim(row, action)
        if action is ClaimAction.SEND and ours:
            return Claim(row, action, reserved=True)  # our own claim, committed before
        reserve = row.size * request.cost_per_recipient
        if action is ClaimAction.SEND and request.budgeted:
            reserve, refusal = self._priced_reserve(conn, request, row)
            if refusal:
                failed = failed_values(refusal[0], refusal[1], request.now)
                return Claim(self._update(conn, request.key, failed), ClaimAction.SKIP)
        values = claim_values(row, action, request, claimed_at=claimed_at, reserve=reserve)
        claimed = self._update(conn, request.key, values)
        if action is ClaimAction.SEND:
            reserved = self._reserve(conn, claimed, request.rules, request.now)
            return Claim(reserved, action, reserved=True)
        return Claim(claimed, action)

    def _holder_alive(
        self, holder: str | None, request: ClaimRequest, claimed_at: datetime | None
    ) -> bool:
        """Another run holds the chunk and still runs (ours: whatever we did may have landed)."""
        return (
            holder is not None
            and holder != request.owner
            and not owner_is_dead(holder)
            and claimed_at is not None
            and request.now - claimed_at < self.lease
        )

    def _priced_reserve(
        self, conn: Connection, request: ClaimRequest, row: ChunkRow
    ) -> tuple[float, tuple[str, str] | None]:
        """What the chunk will cost, and why it may not be sent (cap, credits) or None. The
        estimate holds until the gateway's own answers tell the real price."""
        spent, mine, observed = _budget(conn, request.campaign_id, request.owner)
        reserve = row.size * (observed or request.cost_per_recipient)
        refusal = budget_refusal(
            spent=spent,
            mine=mine,
            reserve=reserve,
            max_cost=request.max_cost,
            credits=request.credits,
        )
        return reserve, refusal

    # -- outcomes ---------------------------------------------------------------------------

    @ridden
    def update_chunk(self, campaign_id: str, chunk_index: int, **values: Any) -> ChunkRow:
        """Record anything about a chunk (slot, numbers after refusals, state); the row back."""
        if "numbers" in values and not isinstance(values["numbers"], str):
            values["size"] = len(values["numbers"])
            values["numbers"] = ",".join(values["numbers"])
        if "refused" in values and not isinstance(values["refused"], str):
            values["refused"] = json.dumps(values["refused"]) if values["refused"] else None
        if values.get("doubt_from") is not None:
            values["doubt_from"] = not_before(values["doubt_from"])
        values["updated_at"] = self.now()
        with self._write() as conn:
            return self._update(conn, {"cid": campaign_id, "idx": chunk_index}, values)

    @ridden
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
        estimated: bool = False,
        reserved: bool = False,
    ) -> ChunkRow:
        """The outcome and the per-recipient record, in one transaction.

        ``numbers`` are the chunk's numbers as last recorded, when the caller has them at hand;
        ``reserved`` says the claim already recorded them for the frequency cap. ``estimated``:
        no answer named the chunk's price (it was confirmed through the status endpoint); its
        cost and SMS count are then the campaign's learnt price as soon as one is known, here
        or later (see ``_reprice``), ``cost`` and ``nb_sms`` being only the fallback.
        """
        key = {"cid": campaign_id, "idx": chunk_index}
        values = {
            "state": ChunkState.sent,
            "message_id": message_id,
            "nb_sms": nb_sms,
            "cost": cost,
            "currency": currency,
            "cost_estimated": estimated,
            "doubt_from": None,
            "reason": None,
            "detail": detail,
            "updated_at": self.now(),
        }
        # The campaign lock orders the prices: whichever of an estimated chunk and the first
        # priced one commits second sees the other.
        with self._campaign_lock(campaign_id) as (conn, _halt):
            row = self._update(conn, key, values)
            wanted = [n for n in (row.numbers if numbers is None else numbers) if n]
            if not reserved:
                record_texted(conn, campaign_id, wanted, texted_at, row.survey_id)
            elif row.slot is not None and wanted:
                # Rescheduled after the claim reserved it: the cap counts from the delivery.
                retime_texted(conn, campaign_id, wanted, texted_at)
            if chunk_index in _reprice(conn, campaign_id):
                row = chunk_from_row(conn.execute(SELECT_CHUNK, key).one())
        return row

    @ridden
    def mark_in_doubt(
        self, campaign_id: str, chunk_index: int, *, doubt_from: datetime | None, detail: str
    ) -> ChunkRow:
        """The chunk may have landed; ``doubt_from`` (None: keep the recorded one) is when the
        attempt ended. The claim is let go so any later run can settle it."""
        values: dict[str, Any] = {
            "state": ChunkState.in_doubt,
            "reason": Reason.in_doubt,
            "detail": detail[:500],
            "owner": None,
            "claim_token": None,
            "updated_at": self.now(),
        }
        if doubt_from is not None:
            values["doubt_from"] = not_before(doubt_from)
        with self._write() as conn:
            return self._update(conn, {"cid": campaign_id, "idx": chunk_index}, values)

    @ridden
    def mark_failed(
        self, campaign_id: str, chunk_index: int, reason: str, detail: str | None
    ) -> ChunkRow:
        """Nothing of the chunk landed: it fails, and its numbers leave the frequency cap."""
        detail = (detail or "")[:500] or None
        return self._give_back(
            campaign_id, chunk_index, state=ChunkState.failed, reason=reason, detail=detail
        )

    @ridden
    def set_aside(self, campaign_id: str, chunk_index: int, refused: dict[str, str]) -> ChunkRow:
        """Numbers the gateway refused leave the chunk (kept with its message) and the cap."""
        with self._write() as conn:
            key = {"cid": campaign_id, "idx": chunk_index}
            row = chunk_from_row(conn.execute(SELECT_CHUNK, key).one())
            numbers = [n for n in row.numbers if n not in refused]
            values = {
                "numbers": ",".join(numbers),
                "size": len(numbers),
                "refused": json.dumps({**row.refused, **refused}),
                "updated_at": self.now(),
            }
            row = self._update(conn, key, values)
            forget_texted(conn, campaign_id, list(refused))
        return row

    @ridden
    def release(self, campaign_id: str, chunk_index: int) -> ChunkRow:
        """Give a claim back untouched (nothing was sent), e.g. on an invalid key."""
        return self._give_back(
            campaign_id, chunk_index, state=ChunkState.pending, reserved_cost=None
        )

    def _give_back(self, campaign_id: str, chunk_index: int, **values: Any) -> ChunkRow:
        """Nothing of the chunk landed: let the claim go and the numbers leave the cap."""
        values.update(doubt_from=None, owner=None, claim_token=None, updated_at=self.now())
        with self._write() as conn:
            row = self._update(conn, {"cid": campaign_id, "idx": chunk_index}, values)
            forget_texted(conn, campaign_id, row.numbers)
        return row

    @ridden
    def observed_prices(self, campaign_id: str) -> tuple[float | None, float | None]:
        """(cost, SMS) per recipient in the gateway's own answers to this campaign, or None."""
        with self.engine.connect() as conn:
            cost, nb_sms, size = conn.execute(_OBSERVED, {"cid": campaign_id}).one()
        if not size:
            return None, None
        return float(cost) / int(size), (float(nb_sms) / int(size) if nb_sms else None)

    # Parked here: ``withdraw`` serves planning (an input's numbers that may no longer be sent),
    # not the send; it stays beside the chunk writes it shares until planning owns a store.
    @ridden
    def withdraw(self, campaign_id: str, why: dict[str, str]) -> int:
        """Take numbers out of the campaign's chunks that no send can have reached yet
        (``pending``, ``failed``): each leaves the list for ``refused`` with its reason, so no
        later send carries it. A chunk being sent or in doubt keeps its numbers (its send may
        have landed). How many numbers were taken out."""
        if not why:
            return 0
        taken = 0
        with self._campaign_lock(campaign_id) as (conn, _):
            found = conn.execute(
                select(chunks).where(
                    chunks.c.campaign_id == campaign_id,
                    chunks.c.state.in_((ChunkState.pending, ChunkState.failed)),
                )
            )
            for c in [chunk_from_row(r) for r in found]:
                out = [n for n in c.numbers if n in why]
                if not out:
                    continue
                numbers = [n for n in c.numbers if n not in why]
                refused = {**c.refused, **{n: why[n] for n in out}}
                values = {
                    "numbers": ",".join(numbers),
                    "size": len(numbers),
                    "refused": json.dumps(refused),
                }
                taken += len(out) if update_unchanged(conn, c, values) else 0
        return taken

    # -- cancellation -----------------------------------------------------------------------

    @ridden
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
        between is left alone (it is being sent; cancel it once it is). Its recipients leave the
        frequency cap's record: they were never texted.
        """
        now = self.now()
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
                .values(
                    state=ChunkState.cancelled,
                    reason=reason,
                    detail=detail,
                    owner=None,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:  # claimed in between by a run that does not take this lock
                return False
            forget_texted(conn, campaign_id, [n for n in (row.numbers or "").split(",") if n])
        return True


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
            # Only ``extend_plan`` makes empty chunks: numbers planned before, nothing to send.
            "state": ChunkState.pending if c.numbers else ChunkState.cancelled,
            "reason": None if c.numbers else Reason.already_planned,
            "attempts": 0,
            "updated_at": now,
            "survey_id": c.survey_id,
        }
        for c in plan
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(insert(chunks), rows[start : start + 1000])


def _reprice(conn: Connection, campaign_id: str) -> set[int]:
    """Price the campaign's estimated chunks at what the gateway's answers to it charged, once
    any did; the indexes of the chunks changed.

    A chunk confirmed through the status endpoint has no price of its own. Priced when it was
    confirmed, it could keep the configured estimate for good: after a crash, the resumed run
    confirms what the dead one sent before any answer of its own tells the price.
    """
    cost, nb_sms, size = conn.execute(_OBSERVED, {"cid": campaign_id}).one()
    if not size:
        return set()
    per_recipient = float(cost) / int(size)
    sms_each = float(nb_sms) / int(size) if nb_sms else None
    changes = []
    for row in conn.execute(_ESTIMATED, {"cid": campaign_id}).all():
        new_cost = round(int(row.size) * per_recipient, 6)
        new_sms = round(int(row.size) * sms_each) if sms_each is not None else row.nb_sms
        if row.cost is None or abs(float(row.cost) - new_cost) > 1e-9 or new_sms != row.nb_sms:
            changes.append(
                {
                    "cid": campaign_id,
                    "at": row.chunk_index,
                    "new_cost": new_cost,
                    "new_sms": new_sms,
                }
            )
    if changes:
        conn.execute(_REPRICE, changes)
    return {int(c["at"]) for c in changes}


def _budget(conn: Connection, campaign_id: str, owner: str) -> tuple[float, float, float | None]:
    """(cost sent or reserved by the campaign, the same for one owner, observed cost per
    recipient of the chunks sent so far or None), in one pass over an index."""
    row = conn.execute(_BUDGET, {"cid": campaign_id, "owner": owner}).one()
    per_recipient = float(row[2]) / int(row[3]) if row[3] else None
    return float(row[0]), float(row[1]), per_recipient
