"""Sending one chunk exactly once: the executor of the send core's rules (``tasks/sendcore``).

The executor only carries out the steps ``sendcore.next_step`` decides: claim the chunk in the
ledger, POST it, ask the status endpoint, wait, record. It owns the one retry policy of sends
(the client never retries a POST). A send whose answer proved nothing leaves the chunk in doubt
with the time the attempt ended; ``settle_deferred`` comes back to such chunks once a look can
settle them, and a rerun or the daily follow-up does the same later.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from smspartner import SMSPartnerClient, SMSPartnerError
from tasks import ledger as lg
from tasks import sendcore as sc
from tasks.outcomes import GATEWAY_UNAVAILABLE, INSUFFICIENT_CREDITS, NO_SLOT
from tasks.runtime import (  # noqa: F401 - re-exported: callers import them from here too
    API_KEY_ENV,
    BASE_URL_ENV,
    CONNECT_TIMEOUT,
    SECRET_BLOCK,
    CampaignStopped,
    gateway_url,
    get_api_key,
    ledger_problem,
    shared_ledger,
    thread_client,
    unusable_ledger,
)
from tasks.slots import LEAD, MARGIN, PARIS, WindowPolicy, plan_slot, to_api_schedule

log = logging.getLogger("survey.sending")


@dataclass(frozen=True)
class SendSettings:
    """Everything a send task needs; small and serialisable, with no secret in it."""

    campaign_id: str
    survey_id: str
    base_url: str
    ledger_url: str
    owner: str
    cost_per_recipient: float
    max_cost: float | None = None
    credits: float | None = None
    policy: WindowPolicy = field(default_factory=WindowPolicy)
    lead: timedelta = LEAD
    margin: timedelta = MARGIN
    send: sc.SendPolicy = field(default_factory=sc.SendPolicy)
    timeout: float = sc.READ_TIMEOUT  # read timeout of one send
    cap_days: int = 0  # frequency cap: reserve the numbers against other campaigns
    ledger_lease: timedelta = lg.DEFAULT_LEASE
    ledger_outage: float = lg.DEFAULT_OUTAGE
    key_block: str | None = None  # the Secret block of this deployment's account (its name)

    @property
    def call_deadline(self) -> timedelta:
        """The longest one send can take, whatever the server does (the client's deadline)."""
        return timedelta(seconds=CONNECT_TIMEOUT + 2 * self.timeout)


@dataclass(frozen=True)
class ChunkResult:
    chunk_index: int
    state: str
    size: int
    reason: str | None = None
    nb_sms: int = 0
    cost: float = 0.0
    stop_campaign: str | None = None  # a one-line message when the campaign must stop
    deferred_until: datetime | None = None  # in doubt: a look can settle it from then


def send_chunk_once(
    settings: SendSettings,
    chunk_index: int,
    *,
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> ChunkResult:
    """Bring one chunk as far as this moment allows (sent, failed, or in doubt until a time)
    without ever sending it twice. Raises ``LedgerUnavailable`` past the ledger's outage bound."""
    cid = settings.campaign_id
    claim = _claim(settings, chunk_index, ledger, sleep)
    row = claim.chunk
    if claim.action is lg.ClaimAction.SKIP:
        return _result(row)
    outstanding = claim.action is lg.ClaimAction.RECONCILE
    state = sc.HeldChunk(
        numbers=row.numbers,
        slot=sc.Slot.from_ledger(row.slot),
        doubt_from=row.doubt_from if outstanding else None,
        refused=row.refused,
    )
    event: sc.Event = sc.Claimed()
    while True:
        step = sc.next_step(state, event, now(), settings.send, rng)
        if isinstance(step, sc.Send):
            slot = _current_slot(settings, row.territory, state.slot, now())
            if isinstance(slot, sc.NoSlot):
                return _result(ledger.mark_failed(cid, chunk_index, NO_SLOT, slot.why))
            changes: dict[str, object] = {}
            if slot != state.slot:
                changes["slot"] = slot.to_ledger()
            if state.sends or outstanding:
                # The ledger's doubt time is the claim's, or an earlier attempt's: this send may
                # land until it ends, should we die meanwhile.
                changes["doubt_from"] = now() + settings.call_deadline
            if changes:
                ledger.update_chunk(cid, chunk_index, **changes)
            # A send is decided only once nothing of an earlier one is outstanding.
            state = replace(state, slot=slot, sends=state.sends + 1, doubt_from=None)
            schedule = to_api_schedule(slot.at) if slot.at else None
            outcome = client.send_survey(
                state.numbers, settings.survey_id, tag=row.tag, schedule=schedule
            )
            event = sc.Sent(outcome)
        elif isinstance(step, sc.Look):
            event = _look(client, row.tag)
        elif isinstance(step, sc.Wait):
            sleep(step.seconds)
            event = sc.Claimed()
        elif isinstance(step, sc.SetAside):
            row = ledger.set_aside(cid, chunk_index, step.refused)
            state = replace(state, numbers=row.numbers, refused=row.refused)
            event = sc.Claimed()
        elif isinstance(step, sc.Replan):
            slot = _new_slot(settings, row.territory, now())
            if isinstance(slot, sc.NoSlot):
                return _result(ledger.mark_failed(cid, chunk_index, NO_SLOT, slot.why))
            ledger.update_chunk(cid, chunk_index, slot=slot.to_ledger())
            state = replace(state, slot=slot)
            event = sc.Claimed()
        elif isinstance(step, sc.RecordAccepted):
            return _record_accepted(settings, chunk_index, ledger, state, step, claim, now())
        elif isinstance(step, sc.RecordLanded):
            return _record_landed(settings, chunk_index, ledger, state, step, claim, now())
        elif isinstance(step, sc.NothingLeft):
            sent = ledger.mark_sent(
                cid,
                chunk_index,
                message_id=None,
                nb_sms=0,
                cost=0.0,
                currency="EUR",
                texted_at=now(),
                detail="every number refused by the gateway",
                numbers=(),
                reserved=True,
            )
            return _result(sent)
        elif isinstance(step, sc.Defer):
            doubt_from = now() if step.new_attempt else None
            held = ledger.mark_in_doubt(cid, chunk_index, doubt_from=doubt_from, detail=step.detail)
            return replace(_result(held), deferred_until=step.until)
        elif isinstance(step, sc.Fail):
            return _result(ledger.mark_failed(cid, chunk_index, step.reason, step.detail))
        elif isinstance(step, sc.Halt):
            ledger.halt(cid, INSUFFICIENT_CREDITS)
            return _result(ledger.mark_failed(cid, chunk_index, INSUFFICIENT_CREDITS, step.detail))
        else:
            assert isinstance(step, sc.StopCampaign)
            released = ledger.release(cid, chunk_index)
            return replace(_result(released), stop_campaign=step.message)


def _claim(
    settings: SendSettings, chunk_index: int, ledger: lg.Ledger, sleep: Callable[[float], None]
) -> lg.Claim:
    while True:
        claim = ledger.claim(
            settings.campaign_id,
            chunk_index,
            settings.owner,
            cost_per_recipient=settings.cost_per_recipient,
            max_cost=settings.max_cost,
            credits=settings.credits,
            cap_days=settings.cap_days,
            attempt_ends_within=settings.call_deadline,
        )
        if claim.action is not lg.ClaimAction.BUSY:
            return claim
        # Another run of this campaign is sending it right now: its outcome is ours to report.
        sleep(0.5)


def _look(client: SMSPartnerClient, tag: str) -> sc.Looked:
    try:
        entries = client.status_by_tag(tag)
    except SMSPartnerError as exc:
        return sc.Looked(sc.evidence(exc), detail=str(exc))
    return sc.Looked(sc.evidence(entries), tuple(entries))


def _record_accepted(
    settings: SendSettings,
    chunk_index: int,
    ledger: lg.Ledger,
    state: sc.HeldChunk,
    step: sc.RecordAccepted,
    claim: lg.Claim,
    now: datetime,
) -> ChunkResult:
    answer = step.outcome
    size = len(state.numbers)
    # Only a missing cost makes the chunk's cost an estimate (the ledger re-prices those once
    # the price is known); a missing SMS count alone is filled in, the cost is the gateway's.
    estimated = answer.cost is None
    cost, nb_sms = answer.cost, answer.nb_sms
    if cost is None or nb_sms is None:
        per_recipient, sms_each = _prices(settings, ledger)
        cost = size * per_recipient if cost is None else cost
        nb_sms = round(size * sms_each) if nb_sms is None else nb_sms
    assert cost is not None and nb_sms is not None
    row = ledger.mark_sent(
        settings.campaign_id,
        chunk_index,
        message_id=answer.message_id,
        nb_sms=nb_sms,
        cost=cost,
        currency=answer.currency or "EUR",
        texted_at=(state.slot.at or now).astimezone(UTC),
        numbers=state.numbers,
        estimated=estimated,
        reserved=claim.reserved,
        detail="the answer gave no price; cost estimated" if estimated else None,
    )
    return _result(row)


def _record_landed(
    settings: SendSettings,
    chunk_index: int,
    ledger: lg.Ledger,
    state: sc.HeldChunk,
    step: sc.RecordLanded,
    claim: lg.Claim,
    now: datetime,
) -> ChunkResult:
    per_recipient, sms_each = _prices(settings, ledger)
    size = len(state.numbers)
    message_ids = {e.message_id for e in step.entries if e.message_id is not None}
    row = ledger.mark_sent(
        settings.campaign_id,
        chunk_index,
        message_id=min(message_ids) if len(message_ids) == 1 else None,
        nb_sms=round(size * sms_each),
        cost=round(size * per_recipient, 6),
        currency="EUR",
        texted_at=(state.slot.at or now).astimezone(UTC),
        numbers=state.numbers,
        estimated=True,
        reserved=claim.reserved,
        detail="confirmed by status-by-tag after an answer that proved nothing; cost estimated",
    )
    return _result(row)


def _prices(settings: SendSettings, ledger: lg.Ledger) -> tuple[float, float]:
    """Cost and SMS per recipient: as the gateway's answers to this campaign priced them, else
    the configured estimate (one SMS each). Only a first guess for an estimated chunk: the
    ledger prices it, in the transaction that records it, at the price learnt by then, and
    again should the first price come later."""
    per_recipient, sms_each = ledger.observed_prices(settings.campaign_id)
    return per_recipient or settings.cost_per_recipient, sms_each or 1.0


def _current_slot(
    settings: SendSettings, territory: str, slot: sc.Slot, now: datetime
) -> sc.Slot | sc.NoSlot:
    """The slot to send with now: the planned one while it is still ahead, else a new one (at
    once only if the chunk was planned at once and the window still allows it)."""
    if slot.at is not None and slot.at >= now + settings.lead / 2:
        return slot
    return _new_slot(settings, territory, now, allow_immediate=slot.at_once)


def _new_slot(
    settings: SendSettings, territory: str, now: datetime, *, allow_immediate: bool = False
) -> sc.Slot | sc.NoSlot:
    decision = plan_slot(
        now,
        territory,
        settings.policy,
        lead=settings.lead,
        margin=settings.margin,
        allow_immediate=allow_immediate,
    )
    if decision.at_once:
        return sc.AT_ONCE
    if decision.slot is None:
        return sc.NoSlot(decision.explanation)
    return sc.Slot(decision.slot.astimezone(PARIS))


def _result(chunk: lg.ChunkRow) -> ChunkResult:
    return ChunkResult(
        chunk_index=chunk.chunk_index,
        state=chunk.state,
        size=chunk.size,
        reason=chunk.reason,
        nb_sms=chunk.nb_sms or 0,
        cost=chunk.cost or 0.0,
    )


def settle_deferred(
    deferred: dict[int, datetime],
    *,
    drive: Callable[[int], ChunkResult],
    until: datetime,
    workers: int,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = log.info,
    on_settled: Callable[[], None] = lambda: None,
) -> list[ChunkResult]:
    """Drive the chunks left in doubt again as each becomes due, until ``until``.

    A chunk whose look cannot settle it before ``until`` stays in doubt for a rerun or the
    follow-up. ``on_settled`` is called for each chunk out of doubt (the run's progress).
    Returns the last result of every chunk driven.
    """
    waiting = dict(deferred)
    results: dict[int, ChunkResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while waiting:
            moment = now()
            if moment > until:
                break
            due = sorted(i for i, at in waiting.items() if at <= moment)
            if not due:
                first = min(waiting.values())
                if first > until:
                    break
                seconds = (first - moment).total_seconds()
                say(
                    f"waiting {seconds:.0f} s for {len(waiting)} chunk(s) whose send may have "
                    "landed, before asking the gateway again"
                )
                sleep(max(seconds, 0.0))
                continue
            for result in pool.map(drive, due):
                results[result.chunk_index] = result
                if result.deferred_until is None:
                    waiting.pop(result.chunk_index, None)
                    on_settled()
                else:
                    waiting[result.chunk_index] = result.deferred_until
                if result.stop_campaign:
                    return list(results.values())
    return list(results.values())


def deferred_of(results: Iterable[ChunkResult]) -> dict[int, datetime]:
    return {r.chunk_index: r.deferred_until for r in results if r.deferred_until is not None}


def settle_only(
    settings: SendSettings,
    chunk_index: int,
    *,
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ChunkResult:
    """Settle one chunk left in doubt without sending anything (the daily follow-up): found at
    the gateway, it is sent; shown not to have landed, it fails so that a rerun sends it; else it
    stays in doubt."""
    claim = _claim(settings, chunk_index, ledger, time.sleep)
    row = claim.chunk
    if claim.action is lg.ClaimAction.SKIP:
        return _result(row)
    if claim.action is not lg.ClaimAction.RECONCILE:  # not in doubt any more: leave it be
        return _result(ledger.release(settings.campaign_id, chunk_index))
    state = sc.HeldChunk(row.numbers, sc.Slot.from_ledger(row.slot), row.doubt_from)
    step = sc.next_step(state, _look(client, row.tag), now(), settings.send)
    if isinstance(step, sc.RecordLanded):
        return _record_landed(settings, chunk_index, ledger, state, step, claim, now())
    if isinstance(step, sc.Defer):
        held = ledger.mark_in_doubt(
            settings.campaign_id, chunk_index, doubt_from=None, detail=step.detail
        )
        return replace(_result(held), deferred_until=step.until)
    detail = (
        "the gateway shows no send with this tag a settle time after the attempt; a rerun sends it"
    )
    return _result(
        ledger.mark_failed(settings.campaign_id, chunk_index, GATEWAY_UNAVAILABLE, detail)
    )
