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
from typing import assert_never

from smspartner import SMSPartnerClient, SMSPartnerError
from tasks import i18n
from tasks import ledger as lg
from tasks import sendcore as sc
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.outcomes import GATEWAY_UNAVAILABLE, INSUFFICIENT_CREDITS, NO_SLOT
from tasks.pressure import PressureRule, rules_for
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
    cap_days: int = 0  # frequency cap: the rule cap=1/N when ``rules`` is empty
    rules: tuple[PressureRule, ...] = ()  # contact pressure, judged at claim time
    ledger_lease: timedelta = lg.DEFAULT_LEASE
    ledger_outage: float = lg.DEFAULT_OUTAGE
    key_block: str | None = None  # the Secret block of this deployment's account (its name)

    @property
    def pressure_rules(self) -> tuple[PressureRule, ...]:
        """The rules each claim judges: ``rules``, else the frequency cap alone."""
        return self.rules or rules_for(self.cap_days, [])

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
    without ever sending it twice. Raises ``LedgerUnavailable`` past the ledger's outage bound.

    The send core picks each step from the loop's state and what just happened; ``_execute``
    carries it out and hands back either the next state or the chunk's result."""
    claim = _claim(settings, chunk_index, ledger, sleep)
    if claim.action is lg.ClaimAction.SKIP:
        return _result(claim.chunk)
    run = _Run(settings, chunk_index, client, ledger, claim, now, sleep)
    loop = _first_loop(run)
    while True:
        step = sc.next_step(loop.held, loop.event, now(), settings.send, rng)
        after = _execute(run, loop, step)
        if isinstance(after, ChunkResult):
            return after
        loop = after


@dataclass(frozen=True)
class _Run:
    """What stays fixed while one chunk is driven: the chunk, the services, the claim."""

    settings: SendSettings
    chunk_index: int
    client: SMSPartnerClient
    ledger: lg.Ledger
    claim: lg.Claim
    now: Callable[[], datetime]
    sleep: Callable[[float], None]

    @property
    def campaign_id(self) -> str:
        return self.settings.campaign_id

    @property
    def outstanding(self) -> bool:
        """The claim found an earlier send of this chunk that may have landed."""
        return self.claim.action is lg.ClaimAction.RECONCILE


@dataclass(frozen=True)
class _Loop:
    """What changes from step to step: the core's view of the chunk, the ledger's row (its
    numbers change when the gateway refuses some), and what just happened."""

    held: sc.HeldChunk
    row: lg.ChunkRow
    event: sc.Event


def _first_loop(run: _Run) -> _Loop:
    row = run.claim.chunk
    # A chunk taken to send carries the claim's doubt time, that of the send about to be made:
    # only a reconciled chunk starts with an earlier send to settle.
    held = sc.HeldChunk(
        numbers=row.numbers,
        slot=sc.Slot.from_ledger(row.slot),
        doubt_from=row.doubt_from if run.outstanding else None,
        refused=row.refused,
    )
    return _Loop(held, row, sc.Claimed())


def _execute(run: _Run, loop: _Loop, step: sc.Step) -> _Loop | ChunkResult:
    """Carry out one step of the core: the loop's next state, or the result that ends it."""
    match step:
        case sc.Send():
            return _do_send(run, loop)
        case sc.Look():
            return replace(loop, event=_look(run.client, loop.row.tag))
        case sc.Wait():
            run.sleep(step.seconds)
            return replace(loop, event=sc.Claimed())
        case sc.SetAside():
            return _do_set_aside(run, loop, step)
        case sc.Replan():
            return _do_replan(run, loop)
        case sc.RecordAccepted():
            return _record_accepted(
                run.settings, run.chunk_index, run.ledger, loop.held, step, run.claim, run.now()
            )
        case sc.RecordLanded():
            return _record_landed(
                run.settings, run.chunk_index, run.ledger, loop.held, step, run.claim, run.now()
            )
        case sc.NothingLeft():
            return _finish_nothing_left(run)
        case sc.Defer():
            return _finish_defer(run, step)
        case sc.Fail():
            return _fail(run, step.reason, step.detail)
        case sc.Halt():
            return _finish_halt(run, step)
        case sc.StopCampaign():
            return _finish_stop(run, step)
        case _:
            assert_never(step)


def _do_send(run: _Run, loop: _Loop) -> _Loop | ChunkResult:
    """POST the chunk with the slot it can have now (its planned one may have passed)."""
    slot = _current_slot(run.settings, loop.row.territory, loop.held.slot, run.now())
    if isinstance(slot, sc.NoSlot):
        return _fail(run, NO_SLOT, slot.why)
    _note_attempt(run, loop.held, slot)
    # A send is decided only once nothing of an earlier one is outstanding.
    held = replace(loop.held, slot=slot, sends=loop.held.sends + 1, doubt_from=None)
    schedule = to_api_schedule(slot.at) if slot.at else None
    # A chunk planned for a segment's survey sends that one; else the campaign's.
    survey = loop.row.survey_id or run.settings.survey_id
    outcome = run.client.send_survey(held.numbers, survey, tag=loop.row.tag, schedule=schedule)
    return replace(loop, held=held, event=sc.Sent(outcome))


def _note_attempt(run: _Run, held: sc.HeldChunk, slot: sc.Slot) -> None:
    """Before the POST, record what the ledger must know should this run die during it."""
    changes: dict[str, object] = {}
    if slot != held.slot:
        changes["slot"] = slot.to_ledger()
    if held.sends or run.outstanding:
        # The ledger's doubt time is the claim's, or an earlier attempt's: this send may
        # land until it ends, should we die meanwhile.
        changes["doubt_from"] = run.now() + run.settings.call_deadline
    if changes:
        run.ledger.update_chunk(run.campaign_id, run.chunk_index, **changes)


def _do_set_aside(run: _Run, loop: _Loop, step: sc.SetAside) -> _Loop:
    """Drop the numbers the gateway refused; the rest are sent as the ledger now holds them."""
    row = run.ledger.set_aside(run.campaign_id, run.chunk_index, step.refused)
    held = replace(loop.held, numbers=row.numbers, refused=row.refused)
    return _Loop(held, row, sc.Claimed())


def _do_replan(run: _Run, loop: _Loop) -> _Loop | ChunkResult:
    """The gateway refused the slot: plan the next one the window allows, then send."""
    slot = _new_slot(run.settings, loop.row.territory, run.now())
    if isinstance(slot, sc.NoSlot):
        return _fail(run, NO_SLOT, slot.why)
    run.ledger.update_chunk(run.campaign_id, run.chunk_index, slot=slot.to_ledger())
    return replace(loop, held=replace(loop.held, slot=slot), event=sc.Claimed())


def _finish_nothing_left(run: _Run) -> ChunkResult:
    """Every number was refused: the chunk is done, nobody texted (so no number enters the
    frequency cap: ``numbers`` is empty)."""
    sent = run.ledger.mark_sent(
        run.campaign_id,
        run.chunk_index,
        message_id=None,
        nb_sms=0,
        cost=0.0,
        currency="EUR",
        texted_at=run.now(),
        detail="every number refused by the gateway",
        numbers=(),
        reserved=True,
    )
    return _result(sent)


def _finish_defer(run: _Run, step: sc.Defer) -> ChunkResult:
    """Leave the chunk in doubt for the settle phase, a rerun or the follow-up."""
    # An unknown answer just ended a new attempt: its doubt starts now. A look that settled
    # nothing keeps the doubt time recorded (None).
    doubt_from = run.now() if step.new_attempt else None
    held = run.ledger.mark_in_doubt(
        run.campaign_id, run.chunk_index, doubt_from=doubt_from, detail=step.detail
    )
    return replace(_result(held), deferred_until=step.until)


def _fail(run: _Run, reason: str, detail: str) -> ChunkResult:
    """Nothing of the chunk landed and this run gives up on it; a rerun may send it."""
    return _result(run.ledger.mark_failed(run.campaign_id, run.chunk_index, reason, detail))


def _finish_halt(run: _Run, step: sc.Halt) -> ChunkResult:
    # Credits are gone for the whole account: the campaign halts (the ledger grants no more
    # sends of it), so no later chunk is tried.
    run.ledger.halt(run.campaign_id, INSUFFICIENT_CREDITS)
    return _fail(run, INSUFFICIENT_CREDITS, step.detail)


def _finish_stop(run: _Run, step: sc.StopCampaign) -> ChunkResult:
    # The account was refused, so nothing was sent: the claim goes back untouched (pending)
    # for a run with a key the gateway takes.
    released = run.ledger.release(run.campaign_id, run.chunk_index)
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
            rules=settings.pressure_rules,
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
    lang: Lang = DEFAULT_LANG,
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
                if not _wait_for_first(waiting, moment, until, sleep, say, lang):
                    break
                continue
            for result in pool.map(drive, due):
                _take_result(result, waiting, results, on_settled)
                if result.stop_campaign:
                    return list(results.values())
    return list(results.values())


def _wait_for_first(
    waiting: dict[int, datetime],
    moment: datetime,
    until: datetime,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
    lang: Lang = DEFAULT_LANG,
) -> bool:
    """Sleep until the first waiting chunk is due; False, without sleeping, when that is past
    ``until`` (it stays in doubt for a rerun or the follow-up)."""
    first = min(waiting.values())
    if first > until:
        return False
    seconds = (first - moment).total_seconds()
    chunks = i18n.plural(lang, "progress.chunks", len(waiting))
    say(i18n.text(lang, "log.settle_wait", seconds=f"{seconds:.0f}", chunks=chunks))
    sleep(max(seconds, 0.0))
    return True


def _take_result(
    result: ChunkResult,
    waiting: dict[int, datetime],
    results: dict[int, ChunkResult],
    on_settled: Callable[[], None],
) -> None:
    """Keep a driven chunk's last result; it waits again while it is still in doubt."""
    results[result.chunk_index] = result
    if result.deferred_until is None:
        waiting.pop(result.chunk_index, None)
        on_settled()
    else:
        waiting[result.chunk_index] = result.deferred_until


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
