"""Witness phones' I/O: reading the list, the ledger's ``witness_sends`` rows, the gateway calls.

IO kind: the decisions are ``tasks/witnesses.py``'s (pure); this module carries them out. A
witness's send is recorded (``sending``) before the gateway is called, then ``sent``, ``failed``
(nothing landed: a rerun sends it) or ``in_doubt`` (may have landed: never sent again, only
looked up by its tag). Nothing here touches the chunks, the texted table or the counts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from smspartner import SMSPartnerClient, SMSPartnerError, StatusEntry
from smspartner.models import CONNECT_TIMEOUT
from tasks import ledger as lg
from tasks import sendcore as sc
from tasks import witnesses as wt
from tasks.cancellation import (
    ASK_GATEWAY,
    LEDGER_ONLY,
    LOOK_UP_TAG,
    NOTICE,
    SETTLE,
    ChunkAction,
    Why,
)
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.ledger.model import aware
from tasks.ledger.owners import owner_is_dead
from tasks.ledger.schema import witness_sends
from tasks.outcomes import (
    CAMPAIGN_CANCELLED,
    CANCEL_IN_PROGRESS,
    CANCEL_NOT_SENT,
    IN_DOUBT,
    ChunkState,
)
from tasks.recipients import RecipientsError
from tasks.recipients.suppression import read_number_list
from tasks.runtime import CampaignStopped
from tasks.slots import LEAD, to_api_schedule

# How often a run waiting for another run's send of the same witness reads its row again.
_POLL = 0.5


def load_witnesses(path: str | Path, lang: Lang = DEFAULT_LANG) -> tuple[str, ...]:
    """The witnesses' E.164 numbers from a CSV (any delimiter, encoding, with or without a
    header; other columns such as names ignored) or .xlsx list. WitnessListError in one line
    for a missing or unreadable file or any line that is not one mobile: an unreadable list
    stops the campaign before any send."""
    file = Path(path)
    if not file.is_file():
        raise wt.WitnessListError(wt.say(lang, "missing", path=path))
    # The opt-out lists' reader: the same careful reading of a column of numbers, whose
    # messages never quote the file.
    try:
        listed = read_number_list(file)
    except RecipientsError as exc:
        raise wt.WitnessListError(wt.say(lang, "unreadable", path=path, detail=exc)) from None
    return wt.witness_numbers(listed.entries, str(path), lang)


# -- the ledger's rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    campaign_id: str
    survey_id: str
    mode: wt.Mode
    e164: str

    def where(self) -> Any:
        c = witness_sends.c
        return and_(
            c.campaign_id == self.campaign_id,
            c.survey_id == self.survey_id,
            c.mode == str(self.mode),
            c.e164 == self.e164,
        )


@dataclass(frozen=True)
class Row:
    state: str
    owner: str | None
    updated_at: datetime
    reason: str | None = None


class WitnessStore:
    """The ``witness_sends`` table, in the ledger's database (its outage riding too)."""

    def __init__(self, ledger: lg.Ledger) -> None:
        self.ledger = ledger

    @lg.ridden
    def read(self, key: Key) -> Row | None:
        c = witness_sends.c
        with self.ledger.engine.connect() as conn:
            found = conn.execute(
                select(c.state, c.owner, c.updated_at, c.reason).where(key.where())
            ).first()
        if found is None:
            return None
        return Row(found.state, found.owner, aware(found.updated_at) or _EPOCH, found.reason)

    @lg.ridden
    def take(self, key: Key, tag: str, owner: str, slot: str | None) -> Row:
        """Record our send (``sending``) unless a row is there; retake a failed one (nothing
        landed) by a conditional update, so that one run only wins. The row as it stands."""
        now = self.ledger.now()
        mine = {"state": wt.WitnessState.sending, "owner": owner, "slot": slot, "updated_at": now}
        try:
            with self.ledger._write() as conn:
                conn.execute(
                    insert(witness_sends).values(
                        campaign_id=key.campaign_id,
                        survey_id=key.survey_id,
                        mode=str(key.mode),
                        e164=key.e164,
                        tag=wt.witness_tag(key.campaign_id, key.survey_id, key.mode, key.e164),
                        **mine,
                    )
                )
            return Row(wt.WitnessState.sending, owner, now)
        except IntegrityError:
            pass  # there already is one (ours too, when a lost commit was retried)
        with self.ledger._write() as conn:
            conn.execute(
                update(witness_sends)
                .where(key.where(), witness_sends.c.state == wt.WitnessState.failed)
                .values(reason=None, detail=None, **mine)
            )
        found = self.read(key)
        assert found is not None  # rows are never deleted while a campaign runs
        return found

    @lg.ridden
    def touch(self, key: Key, owner: str) -> None:
        """Our send goes on (a retry after a wait): other runs keep waiting for it."""
        with self.ledger._write() as conn:
            conn.execute(
                update(witness_sends)
                .where(key.where(), witness_sends.c.owner == owner)
                .values(updated_at=self.ledger.now())
            )

    @lg.ridden
    def finish(self, key: Key, owner: str, state: wt.WitnessState, **values: Any) -> None:
        """What our send became (only while the row is still ours)."""
        with self.ledger._write() as conn:
            conn.execute(
                update(witness_sends)
                .where(key.where(), witness_sends.c.owner == owner)
                .values(state=state, updated_at=self.ledger.now(), **values)
            )

    @lg.ridden
    def settle(self, key: Key, texted: bool) -> None:
        """A send that may have happened, looked up: found at the gateway it is sent; else a
        ``sending`` row whose run is gone stays in doubt (a later look may find it)."""
        c = witness_sends.c
        where: Any
        if texted:
            where = c.state.in_((wt.WitnessState.sending, wt.WitnessState.in_doubt))
            values: dict[str, Any] = {"state": wt.WitnessState.sent, "reason": None}
        else:
            where = c.state == wt.WitnessState.sending
            values = {"state": wt.WitnessState.in_doubt, "reason": IN_DOUBT}
        with self.ledger._write() as conn:
            conn.execute(
                update(witness_sends)
                .where(key.where(), where)
                .values(updated_at=self.ledger.now(), **values)
            )

    @lg.ridden
    def to_cancel(self, campaign_id: str) -> list[dict[str, Any]]:
        """The campaign's own witness sends (not the witnesses-only run's: those left at
        once), as the cancel reads them, numbers included."""
        c = witness_sends.c
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                select(witness_sends)
                .where(c.campaign_id == campaign_id, c.mode == str(wt.Mode.campaign))
                .order_by(c.survey_id, c.e164)
            ).all()
        return [dict(r._mapping) for r in rows]

    @lg.ridden
    def mark_cancelled(self, key: Key, from_states: Sequence[str], detail: str) -> bool:
        """The send ``cancelled`` if it still is in one of ``from_states`` (another run may
        have retaken it meanwhile); whether this call did it."""
        with self.ledger._write() as conn:
            done = conn.execute(
                update(witness_sends)
                .where(key.where(), witness_sends.c.state.in_(list(from_states)))
                .values(
                    state=wt.WitnessState.cancelled,
                    reason=CAMPAIGN_CANCELLED,
                    detail=detail[:500],
                    updated_at=self.ledger.now(),
                )
            )
        return bool(done.rowcount)

    @lg.ridden
    def note(self, key: Key, state: str, detail: str) -> None:
        """Why the cancel left the send as it is, while it still is in ``state``."""
        with self.ledger._write() as conn:
            conn.execute(
                update(witness_sends)
                .where(key.where(), witness_sends.c.state == state)
                .values(detail=detail[:500])
            )

    @lg.ridden
    def of_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every witness row of a campaign, numbers included (for the report, which masks
        them; for tests)."""
        c = witness_sends.c
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                select(witness_sends)
                .where(c.campaign_id == campaign_id)
                .order_by(c.survey_id, c.mode, c.e164)
            ).all()
        return [dict(r._mapping) for r in rows]


def texted_count(ledger: lg.Ledger, campaign_id: str) -> int:
    """Witness SMS of a campaign that went out (or will, at their slot), as the ledger says now:
    a cancel may have called some off since the send run counted them."""
    c = witness_sends.c
    with ledger.engine.connect() as conn:
        found = conn.execute(
            select(c.e164).where(
                c.campaign_id == campaign_id,
                c.mode == str(wt.Mode.campaign),
                c.state == str(wt.WitnessState.sent),
            )
        ).all()
    return len(found)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- the executor --------------------------------------------------------------------------------


def text_witnesses(
    request: wt.WitnessRequest,
    *,
    client: Callable[[], SMSPartnerClient],
    ledger: lg.Ledger,
    opted_out: Callable[[Sequence[str]], set[str]],
    timeout: float = sc.READ_TIMEOUT,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> wt.WitnessResult:
    """Text each witness once per survey of the campaign (never one in the never-text store,
    never a recipient of the campaign), each at most once whatever the reruns, crashes and
    concurrent runs. ``client`` is called only when a send or a look is needed (no key is read
    for a campaign without witnesses). Raises CampaignStopped when the gateway refuses the
    account, LedgerUnavailable past the ledger's outage bound."""
    numbers = tuple(dict.fromkeys(request.numbers))
    if not numbers or not request.surveys:
        return wt.WitnessResult(request.campaign_id, request.only)
    exclude = request.exclude
    if not request.only:  # a witnesses-only run texts nobody else: nobody to leave out
        exclude = exclude | recipients_among(ledger, request.campaign_id, numbers)
    left = wt.left_out(numbers, frozenset(opted_out(numbers)), exclude)
    run = _Run(
        request=request,
        store=WitnessStore(ledger),
        client=client,
        owner=lg.owner_token(f"witnesses-{uuid.uuid4().hex[:12]}"),
        slot=wt.send_slot(request.schedule, now(), LEAD),
        deadline=timedelta(seconds=CONNECT_TIMEOUT + 2 * timeout + wt.POLICY.max_backoff),
        now=now,
        sleep=sleep,
        called_off=not request.only and called_off(ledger, request.campaign_id),
    )
    lines: list[wt.WitnessLine] = []
    for survey in dict.fromkeys(request.surveys):
        for number in numbers:
            key = Key(request.campaign_id, survey, request.mode, number)
            lines.append(_one(run, key, left.get(number)))
    return wt.WitnessResult(request.campaign_id, request.only, tuple(lines))


def recipients_among(ledger: lg.Ledger, campaign_id: str, numbers: Sequence[str]) -> frozenset[str]:
    """The witnesses who are in the campaign's chunks: they get the recipients' SMS, and no
    second one (whatever ``exclude`` the caller gave: a rerun's plan may hold more)."""
    planned = {n for chunk in ledger.chunks(campaign_id) for n in chunk.numbers}
    return frozenset(n for n in numbers if n in planned)


def called_off(ledger: lg.Ledger, campaign_id: str) -> bool:
    """Whether the cancel flow called the campaign off (a chunk of it cancelled for that
    reason; the retention purge's cancelled chunks keep their own)."""
    return any(
        c.state == ChunkState.cancelled and c.reason == CAMPAIGN_CANCELLED
        for c in ledger.chunks(campaign_id)
    )


@dataclass(frozen=True)
class _Run:
    request: wt.WitnessRequest
    store: WitnessStore
    client: Callable[[], SMSPartnerClient]
    owner: str
    slot: datetime | None
    deadline: timedelta
    now: Callable[[], datetime]
    sleep: Callable[[float], None]
    called_off: bool = False  # the campaign was cancelled: nothing new is sent for it


def _one(run: _Run, key: Key, left: wt.Outcome | None) -> wt.WitnessLine:
    """One witness for one survey: texted (now or before), left out, in doubt or failed."""
    earlier = run.store.read(key)
    if earlier is not None and earlier.state == wt.WitnessState.sent:
        return wt.line(key.survey_id, key.e164, wt.Outcome.texted)
    if earlier is not None and earlier.state == wt.WitnessState.cancelled:
        return wt.line(key.survey_id, key.e164, wt.Outcome.cancelled)
    if (
        left is None
        and run.called_off
        and (earlier is None or earlier.state == wt.WitnessState.failed)
    ):
        # A rerun of a cancelled campaign sends none of its chunks, so no witness SMS either;
        # a send that may have landed is still looked up below.
        left = wt.Outcome.cancelled
    if left is not None:
        return wt.line(key.survey_id, key.e164, left)
    tag = wt.witness_tag(key.campaign_id, key.survey_id, key.mode, key.e164)
    slot = run.slot.isoformat() if run.slot else None
    row = run.store.take(key, tag, run.owner, slot)
    while True:
        found = wt.on_record(
            row.state,
            ours=row.owner == run.owner and row.state == wt.WitnessState.sending,
            holder_dead=owner_is_dead(row.owner),
            age=run.now() - row.updated_at,
            deadline=run.deadline,
        )
        if found is wt.Found.send and row.owner != run.owner:
            row = run.store.take(key, tag, run.owner, slot)  # a failed row: retake it
            continue
        if found is wt.Found.wait:
            run.sleep(_POLL)
            row = run.store.read(key) or row
            continue
        break
    if found is wt.Found.send:
        _send(run, key, tag)
    elif found is wt.Found.look:
        _look(run, key, tag)
    settled = run.store.read(key)
    assert settled is not None
    outcome = wt.outcome_of(settled.state)
    return wt.line(key.survey_id, key.e164, outcome, settled.reason)


def _send(run: _Run, key: Key, tag: str) -> None:
    """POST the witness's SMS until the answer settles it, as ``wt.verdict`` decides."""
    schedule = to_api_schedule(run.slot) if run.slot else None
    sends = 0
    while True:
        sends += 1
        outcome = run.client().send_survey([key.e164], key.survey_id, tag=tag, schedule=schedule)
        decided = wt.verdict(outcome, key.e164, sends=sends, now=run.now(), slot=run.slot)
        if decided.act is wt.Act.retry:
            run.store.touch(key, run.owner)
            run.sleep(decided.wait)
            continue
        if decided.act is wt.Act.sent:
            run.store.finish(
                key,
                run.owner,
                wt.WitnessState.sent,
                message_id=outcome.message_id,
                nb_sms=outcome.nb_sms,
                cost=outcome.cost,
            )
            return
        doubt = decided.act is wt.Act.in_doubt
        run.store.finish(
            key,
            run.owner,
            wt.WitnessState.in_doubt if doubt else wt.WitnessState.failed,
            reason=decided.reason,
            detail=decided.detail[:500],
        )
        if decided.act is wt.Act.stop:
            raise CampaignStopped(decided.detail)
        return


def _look(run: _Run, key: Key, tag: str) -> None:
    """A send that may have happened: ask the gateway by its tag; never send it again."""
    try:
        evidence = sc.evidence(run.client().status_by_tag(tag))
    except SMSPartnerError as exc:
        evidence = sc.evidence(exc)
    run.store.settle(key, wt.after_look(evidence) is wt.Outcome.texted)


# -- calling them off with their campaign --------------------------------------------------------


def cancel_witnesses(
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    campaign_id: str,
    now: datetime,
    *,
    notice: timedelta = NOTICE,
    settle: timedelta = SETTLE,
) -> list[wt.WitnessCancel]:
    """Call off the campaign's witness sends that can still be, as its chunks are: at the
    gateway when scheduled more than ``notice`` ahead, in the ledger when nothing landed (so a
    rerun does not send them). A gateway error on one is that send's outcome (``error``),
    never the end of the others; a rerun is harmless. LedgerUnavailable past the ledger's
    outage bound."""
    store = WitnessStore(ledger)
    return [
        _cancel_one(client, store, row, now, notice, settle) for row in store.to_cancel(campaign_id)
    ]


# How long a ``sending`` row may be written before the cancel treats it as a send that may have
# landed: one witness's longest send (``text_witnesses``' deadline at the default timeout).
_SEND_DEADLINE = timedelta(seconds=CONNECT_TIMEOUT + 2 * sc.READ_TIMEOUT + wt.POLICY.max_backoff)


def _cancel_one(
    client: SMSPartnerClient,
    store: WitnessStore,
    row: dict[str, Any],
    now: datetime,
    notice: timedelta,
    settle: timedelta,
) -> wt.WitnessCancel:
    key = Key(row["campaign_id"], row["survey_id"], wt.Mode(row["mode"]), row["e164"])
    updated = aware(row["updated_at"]) or _EPOCH
    facts = wt.CancelFacts(
        state=row["state"],
        slot=row["slot"],
        message_id=row["message_id"],
        updated_at=updated,
        stale=owner_is_dead(row["owner"]) or now - updated > _SEND_DEADLINE,
    )

    state = facts.state

    def ended(step: wt.CancelStep | ChunkAction, changed: bool = False) -> wt.WitnessCancel:
        outcome = step.outcome if isinstance(step, wt.CancelStep) else step.action
        if outcome in wt.CANCEL_KEPT:  # the ledger says why it may still go, or went
            store.note(key, state, f"not cancelled: {step.why.say('en')}")
        return wt.cancelled_line(key.survey_id, key.e164, facts.slot, outcome, step.why, changed)

    action = wt.cancel_action(facts, now, notice)
    if action.action == LEDGER_ONLY:
        if store.mark_cancelled(key, (state,), "campaign cancelled before it was sent"):
            return ended(ChunkAction(CANCEL_NOT_SENT, action.why), changed=True)
        return ended(ChunkAction(CANCEL_IN_PROGRESS, Why("claimed_meanwhile")))
    message_id = facts.message_id
    if action.action == LOOK_UP_TAG:
        looked = wt.after_tag_look(_by_tag(client, row["tag"]), facts, now, notice, settle)
        if looked.landed:  # it did land: the ledger says so, whatever the cancel does next
            store.settle(key, texted=True)
            state = wt.WitnessState.sent
        if looked.record:
            changed = store.mark_cancelled(
                key, (state,), "campaign cancelled; the gateway never got it"
            )
            return ended(looked, changed)
        if looked.outcome != ASK_GATEWAY:
            return ended(looked)
        message_id = looked.message_id
    elif action.action != ASK_GATEWAY:  # a final outcome: cancelled before, too late, sent...
        return ended(action)
    assert message_id is not None  # the rule asks the gateway only with one
    try:
        client.cancel(message_id)
        answer: SMSPartnerError | None = None
    except SMSPartnerError as exc:
        answer = exc
    step = wt.after_cancel_call(answer)
    # From a stale ``sending`` row too: the gateway has just said the send is there.
    changed = step.record and store.mark_cancelled(key, _AT_GATEWAY, step.why.say("en"))
    return ended(step, changed)


_AT_GATEWAY = (wt.WitnessState.sent, wt.WitnessState.in_doubt, wt.WitnessState.sending)


def _by_tag(client: SMSPartnerClient, tag: str) -> list[StatusEntry] | SMSPartnerError:
    try:
        return client.status_by_tag(tag)
    except SMSPartnerError as exc:
        return exc


__all__ = [
    "Key",
    "WitnessStore",
    "called_off",
    "cancel_witnesses",
    "load_witnesses",
    "recipients_among",
    "text_witnesses",
]
