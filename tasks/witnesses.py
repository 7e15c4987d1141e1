"""Witness phones: staff numbers that receive each campaign's survey once, apart from everything.

A survey's text lives in the SMS Partner account, so the only way for a team to see what people
will receive (text, STOP line, number of SMS) is to receive it. A short list of staff mobiles is
texted once per (campaign, survey, mode) at the start of the campaign's first slot, outside the
counts, the sample, the rules and the cap; in "witnesses only" mode, they alone are texted,
before the real campaign (a mode of its own, so the real campaign texts them again once).

Rules kind: pure decisions from explicit values (no I/O, no clock, no Prefect, no SQLAlchemy).
The executor that reads the file, writes the ledger and calls the gateway is
``tasks/witness_io.py``; the Prefect step is ``tasks/steps/witnesses.py``.

Exactly once: the executor records a witness's send (``sending``) before calling the gateway.
What it then finds is decided by ``on_record``; what the gateway's answer proves, by
``verdict`` (the send core's own rule, ``tasks.sendcore.next_step``, read for one number); a
look-up by tag, by ``after_look``. A send that may have happened is never made again.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from smspartner import (
    CancelError,
    NotFound,
    SendOutcome,
    SMSPartnerError,
    StatusEntry,
    TransportError,
)
from tasks import i18n
from tasks import sendcore as sc
from tasks.cancellation import LOOK_UP_TAG, NOTICE, SETTLE, ChunkAction, Why, decide
from tasks.errors import OperatorError
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.ledger.model import ChunkRow
from tasks.numbers import mask_number, normalize_number
from tasks.outcomes import (
    CANCEL_ALREADY,
    CANCEL_ALREADY_SENT,
    CANCEL_DONE,
    CANCEL_NOT_FOUND,
    CANCEL_NOT_SENT,
    CANCEL_OUTCOMES,
    CANCEL_TOO_LATE,
    GATEWAY_ERROR,
    GATEWAY_REJECTED,
    IN_DOUBT,
    INSUFFICIENT_CREDITS,
    NO_SLOT,
    ChunkState,
)

MAX_WITNESSES: Final = 20
# A chunk's tag is 12 hex digits, "-", 6 digits (``tasks.ledger.chunk_tag``): "tm" is no hex
# digit, so the follow-up and the cancel, which read chunks' tags, never take a witness's send
# for a chunk, and a person reading the gateway's history can tell them apart.
TAG_PREFIX: Final = "tm"
_TAG_LENGTH: Final = 20  # the gateway's limit
# Sends of one witness in one run when the gateway asks to wait (429, no connection): few, as
# a witness's SMS must not hold the campaign back.
POLICY: Final = sc.SendPolicy(max_attempts=3, backoff=1.0, max_backoff=10.0)


class Mode(StrEnum):
    """Which send of the campaign a row is: the campaign's own, or the witnesses-only run."""

    campaign = "campaign"
    only = "only"


class WitnessState(StrEnum):
    """A witness's send in the ledger."""

    sending = "sending"  # recorded before the gateway is called
    sent = "sent"
    failed = "failed"  # nothing landed: a rerun sends it
    in_doubt = "in_doubt"  # may have landed: never sent again
    cancelled = "cancelled"  # called off with its campaign: never sent (again)


class Outcome(StrEnum):
    """What became of one witness for one survey, as the report shows it."""

    texted = "texted"  # sent by this run or an earlier one
    opted_out = "opted_out"  # in the never-text store: never texted
    recipient = "recipient"  # a recipient of the campaign: the recipients' SMS only
    in_doubt = "in_doubt"  # may have been texted: not sent again
    failed = "failed"  # not texted (reason)
    cancelled = "cancelled"  # called off with the campaign (tasks/witness_io.cancel_witnesses)


SKIPPED: Final = frozenset({Outcome.opted_out, Outcome.recipient})


# -- words ---------------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "missing": {
        "fr": "la liste de témoins {path} est introuvable ; vérifiez le chemin (un fichier CSV, "
        "un mobile par ligne), puis relancez la campagne : rien n'a été envoyé",
        "en": "the witness list {path} does not exist; check the path (a CSV file, one mobile "
        "per line), then run the campaign again: nothing was sent",
    },
    "unreadable": {
        "fr": "la liste de témoins {path} est illisible ({detail}) ; donnez un fichier CSV avec "
        "un mobile par ligne, puis relancez la campagne : rien n'a été envoyé",
        "en": "the witness list {path} cannot be read ({detail}); give a CSV file with one "
        "mobile per line, then run the campaign again: nothing was sent",
    },
    "empty": {
        "fr": "la liste de témoins {path} ne contient aucun numéro ; ajoutez-y les mobiles des "
        "témoins (un par ligne) ou n'indiquez pas de liste, puis relancez : rien n'a été envoyé",
        "en": "the witness list {path} holds no number; add the witnesses' mobiles (one per "
        "line) or give no list, then run again: nothing was sent",
    },
    "bad_line": {
        "fr": "la liste de témoins {path}, ligne {line} : {why} ; corrigez ou supprimez cette "
        "ligne (un mobile par ligne), puis relancez la campagne : rien n'a été envoyé",
        "en": "the witness list {path}, line {line}: {why}; correct or delete that line (one "
        "mobile per line), then run the campaign again: nothing was sent",
    },
    "too_many": {
        "fr": "la liste de témoins {path} compte {count} numéros, {most} au plus sont admis ; "
        "gardez-en {most} au plus, puis relancez la campagne : rien n'a été envoyé",
        "en": "the witness list {path} holds {count} numbers, at most {most} are allowed; keep "
        "{most} at most, then run the campaign again: nothing was sent",
    },
    "summary": {
        "fr": "Témoins : {texted} SMS envoyés, {skipped} écartés (STOP ou destinataires), "
        "{maybe} incertains, {failed} en échec.",
        "en": "Witnesses: {texted} SMS sent, {skipped} left out (STOP or recipients), "
        "{maybe} in doubt, {failed} failed.",
    },
}


def say(lang: Lang, key: str, **values: object) -> str:
    return i18n.say_in(TEXTS, lang, key, **values)


class WitnessListError(OperatorError):
    """The witness list cannot be used: the campaign stops before any send, in one line."""


# -- the list ------------------------------------------------------------------------------------


def witness_numbers(
    entries: Sequence[tuple[int, str]], path: str, lang: Lang = DEFAULT_LANG
) -> tuple[str, ...]:
    """The E.164 witnesses of a list's entries (``(file line, cell)`` per non-blank row below
    any header), in the list's order, each once. Each entry must be one mobile (French, overseas
    or foreign): anything else refuses the whole list, naming the line and why, never its text.
    WitnessListError for that, an empty list, or more than ``MAX_WITNESSES`` numbers."""
    if not entries:
        raise WitnessListError(say(lang, "empty", path=path))
    found: list[str] = []
    for line, cell in entries:
        parsed = normalize_number(cell, allow_foreign=True)
        if parsed.e164 is None:
            why = i18n.label(lang, "reason", parsed.reason or "invalid")
            raise WitnessListError(say(lang, "bad_line", path=path, line=line, why=why))
        found.append(parsed.e164)
    unique = tuple(dict.fromkeys(found))
    if len(unique) > MAX_WITNESSES:
        raise WitnessListError(
            say(lang, "too_many", path=path, count=len(unique), most=MAX_WITNESSES),
            personal=False,
        )
    return unique


# -- what the step is asked, and what it answers -------------------------------------------------


@dataclass(frozen=True)
class WitnessRequest:
    """Everything the witnesses' step needs; serialisable, no secret in it."""

    campaign_id: str
    surveys: tuple[str, ...] | list[str]  # one SMS per witness per survey
    numbers: tuple[str, ...] | list[str]  # E.164, as ``witness_numbers`` gave them
    schedule: str | None  # ISO slot of the campaign's first chunk; None: at once
    base_url: str
    key_block: str | None
    ledger_url: str
    ledger_outage: float
    lang: Lang = DEFAULT_LANG
    only: bool = False  # witnesses-only mode: they alone, before the real campaign
    exclude: frozenset[str] = field(default_factory=frozenset)  # the campaign's recipients

    @property
    def mode(self) -> Mode:
        return Mode.only if self.only else Mode.campaign


@dataclass(frozen=True)
class WitnessLine:
    """One witness for one survey, as the report shows it: the number masked."""

    survey_id: str
    number: str  # masked (``mask_number``)
    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True)
class WitnessResult:
    campaign_id: str
    only: bool = False
    lines: tuple[WitnessLine, ...] = ()

    def _count(self, *outcomes: Outcome, survey: str | None = None) -> int:
        return sum(
            1
            for line in self.lines
            if line.outcome in outcomes and (survey is None or line.survey_id == survey)
        )

    @property
    def texted(self) -> int:
        """Witness SMS sent, by this run or an earlier one (the summary's ``witnesses``)."""
        return self._count(Outcome.texted)

    @property
    def skipped(self) -> int:
        return self._count(*SKIPPED)

    @property
    def maybe(self) -> int:
        return self._count(Outcome.in_doubt)

    @property
    def failed(self) -> int:
        return self._count(Outcome.failed)

    @property
    def cancelled(self) -> int:
        return self._count(Outcome.cancelled)

    def per_survey(self) -> dict[str, dict[str, int]]:
        surveys = dict.fromkeys(line.survey_id for line in self.lines)
        return {
            s: {
                "texted": self._count(Outcome.texted, survey=s),
                "skipped": self._count(*SKIPPED, survey=s),
                "maybe": self._count(Outcome.in_doubt, survey=s),
                "failed": self._count(Outcome.failed, survey=s),
            }
            for s in surveys
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, masked numbers only."""
        return {
            "campaign_id": self.campaign_id,
            "mode": Mode.only if self.only else Mode.campaign,
            "texted": self.texted,
            "skipped": self.skipped,
            "maybe": self.maybe,
            "failed": self.failed,
            "surveys": self.per_survey(),
            "lines": [
                {
                    "survey_id": line.survey_id,
                    "number": line.number,
                    "outcome": str(line.outcome),
                    "reason": line.reason,
                }
                for line in self.lines
            ],
        }

    def summary_line(self, lang: Lang = DEFAULT_LANG) -> str:
        return say(
            lang,
            "summary",
            texted=self.texted,
            skipped=self.skipped,
            maybe=self.maybe,
            failed=self.failed,
        )


def line(survey_id: str, e164: str, outcome: Outcome, reason: str | None = None) -> WitnessLine:
    return WitnessLine(survey_id, mask_number(e164), outcome, reason)


# -- who is texted -------------------------------------------------------------------------------


def left_out(
    numbers: Sequence[str], opted_out: frozenset[str] | set[str], exclude: frozenset[str]
) -> dict[str, Outcome]:
    """The witnesses not to text, and why: the never-text store wins over everything (a
    witness who said STOP is never texted), then the campaign's recipients (they get the
    recipients' SMS, not a second one)."""
    out: dict[str, Outcome] = {}
    for number in numbers:
        if number in opted_out:
            out[number] = Outcome.opted_out
        elif number in exclude:
            out[number] = Outcome.recipient
    return out


def witness_tag(campaign_id: str, survey_id: str, mode: Mode, e164: str) -> str:
    """The gateway tag of one witness's send: 20 characters, lowercase, one per row of the
    ledger, never shaped like a chunk's (``TAG_PREFIX``)."""
    seed = "\x1f".join((campaign_id, survey_id, str(mode), e164)).encode()
    digest = hashlib.sha256(seed).hexdigest()
    return TAG_PREFIX + digest[: _TAG_LENGTH - len(TAG_PREFIX)]


def is_witness_tag(tag: str | None) -> bool:
    return bool(tag) and len(tag or "") == _TAG_LENGTH and (tag or "").startswith(TAG_PREFIX)


def send_slot(schedule: str | None, now: datetime, lead: timedelta) -> datetime | None:
    """When the witnesses' SMS is delivered: the campaign's first slot while it is at least
    ``lead`` ahead (on the gateway's 5-minute grid); None (at once) when the campaign sends at
    once or its first slot is too near or past (a rerun later in the day)."""
    if schedule is None:
        return None
    at = datetime.fromisoformat(schedule)
    if at.tzinfo is None:
        raise ValueError("the witnesses' slot must carry its offset")
    seconds = at.timestamp()
    on_grid = datetime.fromtimestamp(math.ceil(seconds / 300) * 300, at.tzinfo)
    return on_grid if on_grid >= now + lead else None


# -- what a record found in the ledger means -----------------------------------------------------


class Found(StrEnum):
    """What to do with one witness's send, given what the ledger holds for it."""

    send = "send"  # ours to send now (a new row, or one that failed with nothing landed)
    texted = "texted"  # sent by an earlier or concurrent run
    look = "look"  # may have happened: ask the gateway by tag, never send again
    wait = "wait"  # another live run is sending it right now: read again shortly
    cancelled = "cancelled"  # its campaign was cancelled: never sent


def on_record(
    state: str | None,
    *,
    ours: bool,
    holder_dead: bool,
    age: timedelta,
    deadline: timedelta,
) -> Found:
    """Decide one witness's send from its ledger row (None: there was none and ours was just
    written). ``ours``: this run wrote or retook it; ``holder_dead``: the run that holds a
    ``sending`` row certainly stopped; ``age``: since the row was last written; ``deadline``:
    the longest one send can take."""
    if state is None or ours:
        return Found.send
    if state == WitnessState.cancelled:
        return Found.cancelled
    if state == WitnessState.sent:
        return Found.texted
    if state == WitnessState.failed:
        return Found.send  # the caller retakes it conditionally: one run wins
    if state == WitnessState.sending and not holder_dead and age <= deadline:
        return Found.wait
    return Found.look  # in doubt, or a run that died (or outlived any send) while sending


# -- what the gateway's answer proves ------------------------------------------------------------


class Act(StrEnum):
    sent = "sent"
    failed = "failed"
    in_doubt = "in_doubt"
    retry = "retry"  # wait ``wait`` seconds, then send again
    stop = "stop"  # the account is refused: record failed, then stop the campaign


@dataclass(frozen=True)
class Verdict:
    act: Act
    reason: str | None = None
    detail: str = ""
    wait: float = 0.0


def verdict(
    outcome: SendOutcome,
    e164: str,
    *,
    sends: int,
    now: datetime,
    slot: datetime | None,
    policy: sc.SendPolicy = POLICY,
) -> Verdict:
    """What one answer to a witness's send proves, read by the send core's rule for one number
    (``sends``: the POSTs made so far in this run, this one included). A witness's send is
    never made again once it may have landed, and a refused slot is not replanned: the SMS
    would no longer show the campaign's first slot."""
    held = sc.HeldChunk(numbers=(e164,), slot=sc.Slot(slot), sends=sends)
    step = sc.next_step(held, sc.Sent(outcome), now, policy)
    match step:
        case sc.RecordAccepted():
            return Verdict(Act.sent)
        case sc.Defer():
            return Verdict(Act.in_doubt, IN_DOUBT, step.detail)
        case sc.Wait():
            return Verdict(Act.retry, wait=step.seconds)
        case sc.SetAside():
            return Verdict(Act.failed, GATEWAY_REJECTED, outcome.reason)
        case sc.Replan():
            return Verdict(Act.failed, NO_SLOT, outcome.reason)
        case sc.Halt():
            return Verdict(Act.failed, INSUFFICIENT_CREDITS, step.detail)
        case sc.StopCampaign():
            return Verdict(Act.stop, GATEWAY_ERROR, step.message)
        case sc.Fail():
            return Verdict(Act.failed, step.reason, step.detail)
    # Look, Send, RecordLanded, NothingLeft do not follow an answer: a bug in this reading.
    raise AssertionError(f"unexpected step {type(step).__name__} after a send")


def after_look(evidence: sc.Evidence) -> Outcome:
    """A send that may have happened, looked up by tag: found, it was texted; absent or
    unclear, it stays in doubt (a status endpoint lags; a witness is never texted twice)."""
    return Outcome.texted if evidence is sc.Evidence.FOUND else Outcome.in_doubt


def outcome_of(state: str) -> Outcome:
    """The report's outcome of a witness's row as the ledger holds it once settled."""
    if state == WitnessState.sent:
        return Outcome.texted
    if state == WitnessState.failed:
        return Outcome.failed
    if state == WitnessState.cancelled:
        return Outcome.cancelled
    return Outcome.in_doubt


# -- calling a witness's SMS off with its campaign ------------------------------------------------
# ``python -m flows.cancel_campaign`` cancels the campaign's witness sends as it does its chunks
# (``tasks/cancellation.py``'s ``decide``, read for one number): a scheduled SMS more than
# ``NOTICE`` ahead is called off at the gateway, one that never landed is cancelled in the
# ledger only (a rerun would send it), one that may have landed is looked up by its tag. The
# witnesses-only mode's sends are not: they left at once.

# A witness's cancel whose gateway call proved nothing (no answer, a 5xx, a refused key...): it
# may still go out, and running the cancel again settles it (code 5 if it was cancelled).
CANCEL_ERROR: Final = "error"
CANCEL_COUNTS: Final = (*CANCEL_OUTCOMES, CANCEL_ERROR)
# What a cancel leaves that may still reach a witness, or did: the operator has to look.
CANCEL_KEPT: Final = frozenset(CANCEL_COUNTS) - {CANCEL_DONE, CANCEL_NOT_SENT, CANCEL_ALREADY}


@dataclass(frozen=True)
class CancelFacts:
    """What the ledger holds of one witness's send, as the cancel reads it."""

    state: str  # a WitnessState
    slot: str | None  # ISO with offset; None: sent at once
    message_id: int | None
    updated_at: datetime  # when the row was last written (an in-doubt send's attempt)
    stale: bool = False  # a ``sending`` row whose run is gone (or outlived any send)


@dataclass(frozen=True)
class CancelStep:
    """What to do after the gateway answered (a tag look or the cancel call).

    ``outcome``: a final outcome (``CANCEL_COUNTS``) or ``ASK_GATEWAY`` (cancel
    ``message_id``); ``record``: write the row ``cancelled`` (only from the state it was read
    in); ``landed``: the tag look found the send, so the row is ``sent``."""

    outcome: str
    why: Why
    record: bool = False
    landed: bool = False
    message_id: int | None = None


def cancel_action(facts: CancelFacts, now: datetime, notice: timedelta = NOTICE) -> ChunkAction:
    """What to do with one witness's send when its campaign is called off at ``now``: the
    chunks' rule (``decide``) read for one number, so both end the same way. A ``sending`` row
    whose run is gone is a send that may have landed (in doubt)."""
    state = facts.state
    if state == WitnessState.sending and facts.stale:
        state = WitnessState.in_doubt
    return decide(_as_chunk(facts, state, facts.message_id), now, notice)


def _as_chunk(facts: CancelFacts, state: str, message_id: int | None) -> ChunkRow:
    doubt = facts.updated_at if state == WitnessState.in_doubt else None
    return ChunkRow(
        campaign_id="",
        chunk_index=0,
        tag="",
        territory="",
        slot=facts.slot,
        numbers=("witness",),  # never empty: a witness's send has its one number
        refused={},
        state=ChunkState(state),
        reason=None,
        detail=None,
        owner=None,
        message_id=message_id,
        nb_sms=None,
        cost=None,
        currency=None,
        attempts=1,
        doubt_from=doubt,
        updated_at=facts.updated_at,
    )


def after_tag_look(
    found: Sequence[StatusEntry] | SMSPartnerError,
    facts: CancelFacts,
    now: datetime,
    notice: timedelta = NOTICE,
    settle: timedelta = SETTLE,
) -> CancelStep:
    """What one look-up of a witness's tag (``status_by_tag``'s entries, or its error) says
    for the cancel: found with a message id in time, cancel it; found without one, it stays
    (the gateway's dashboard can still cancel it); not found, it never landed only once the
    settle time after its attempt (or its slot) has passed, else it may still go out; a look
    that failed proves nothing."""
    if isinstance(found, SMSPartnerError) and not isinstance(found, NotFound):
        return CancelStep(CANCEL_ERROR, Why("gateway_unanswered", {"detail": found.message}))
    entries = [] if isinstance(found, NotFound) else list(found)
    if entries:
        message_id = next((e.message_id for e in entries if e.message_id is not None), None)
        redo = decide(_as_chunk(facts, WitnessState.sent, message_id), now, notice)
        if redo.action == LOOK_UP_TAG:  # in time, but the gateway gave nothing to cancel
            return CancelStep(CANCEL_NOT_FOUND, Why("no_message_id_given"), landed=True)
        return CancelStep(redo.action, redo.why, landed=True, message_id=message_id)
    doubt = facts.state == WitnessState.in_doubt or (
        facts.state == WitnessState.sending and facts.stale
    )
    settled = now >= sc.evidence_after(facts.updated_at, sc.Slot.from_ledger(facts.slot), settle)
    if doubt and not settled:
        return CancelStep(CANCEL_NOT_FOUND, Why("not_visible_yet"))
    if doubt:
        return CancelStep(CANCEL_NOT_SENT, Why("never_got_it"), record=True)
    return CancelStep(CANCEL_NOT_FOUND, Why("tag_unknown"))


def after_cancel_call(answer: SMSPartnerError | None) -> CancelStep:
    """What the gateway's answer to cancelling a witness's message proves (``None``: it said
    yes). Its refusals are the chunks' (codes 4 to 7); anything else proved nothing: a call
    cut after it was written may have cancelled it, one never written did not, either way the
    SMS may still go out and running the cancel again settles it."""
    if answer is None:
        return CancelStep(CANCEL_DONE, Why("cancelled_at_gateway"), record=True)
    if isinstance(answer, NotFound):
        return CancelStep(CANCEL_NOT_FOUND, Why("message_unknown"))
    if isinstance(answer, CancelError) and answer.code == CancelError.ALREADY_CANCELLED:
        return CancelStep(CANCEL_ALREADY, Why("already_cancelled_gateway"), record=True)
    if isinstance(answer, CancelError) and answer.code == CancelError.TOO_LATE:
        return CancelStep(CANCEL_TOO_LATE, Why("gateway_too_late"))
    if isinstance(answer, CancelError) and answer.code == CancelError.ALREADY_SENT:
        return CancelStep(CANCEL_ALREADY_SENT, Why("gateway_already_sent"))
    if isinstance(answer, TransportError) and not answer.may_have_landed:
        return CancelStep(CANCEL_ERROR, Why("gateway_unreachable", {"detail": answer.message}))
    return CancelStep(CANCEL_ERROR, Why("gateway_unanswered", {"detail": answer.message}))


@dataclass(frozen=True)
class WitnessCancel:
    """What the cancel did with one witness's send (its number masked)."""

    survey_id: str
    number: str  # masked (``mask_number``)
    slot: str | None
    outcome: str  # one of CANCEL_COUNTS
    detail: str  # in English (cancel.json); ``why`` says it in the operator's language
    changed: bool = False  # the ledger now says cancelled because of this run
    why: Why | None = None


def cancelled_line(
    survey_id: str, e164: str, slot: str | None, outcome: str, why: Why, changed: bool = False
) -> WitnessCancel:
    return WitnessCancel(survey_id, mask_number(e164), slot, outcome, why.say("en"), changed, why)


def cancel_counts(results: Sequence[WitnessCancel]) -> dict[str, int]:
    """The cancel summary's ``witnesses``: witness sends per outcome, every key present."""
    return {o: sum(1 for r in results if r.outcome == o) for o in CANCEL_COUNTS}


__all__ = [
    "MAX_WITNESSES",
    "POLICY",
    "TAG_PREFIX",
    "CANCEL_COUNTS",
    "CANCEL_ERROR",
    "CANCEL_KEPT",
    "Act",
    "CancelFacts",
    "CancelStep",
    "Found",
    "Mode",
    "Outcome",
    "Verdict",
    "WitnessLine",
    "WitnessListError",
    "WitnessRequest",
    "WitnessResult",
    "WitnessCancel",
    "WitnessState",
    "after_cancel_call",
    "after_look",
    "after_tag_look",
    "cancel_action",
    "cancel_counts",
    "cancelled_line",
    "is_witness_tag",
    "left_out",
    "line",
    "on_record",
    "outcome_of",
    "send_slot",
    "verdict",
    "witness_numbers",
    "witness_tag",
]
