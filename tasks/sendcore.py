"""The send core's rules: what to do next with one chunk, as pure functions of explicit values.

A chunk is sent by repeating one loop: ``next_step(state, event, now, policy)`` says what to do,
the executor (``tasks/sending.py``) does it and feeds back what happened. Nothing here does I/O
or reads a clock, so every (state, event) pair is tested as a table.

The rule that makes a chunk exactly-once: a send whose answer proved nothing (``unknown``) may
have landed, so the chunk is never sent again until the gateway shows it did not land. A status
endpoint's "not found" shows that only after a settle time since the unknown attempt ended (for a
scheduled chunk, since its slot): status endpoints lag behind acceptance, and a scheduled send may
be invisible until its slot. Before that the chunk is deferred, never resent.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from smspartner import (
    Kind,
    NotFound,
    Refusal,
    SendOutcome,
    SMSPartnerError,
    StatusEntry,
    models,
)
from tasks.numbers import mask_phone_numbers, parse_loose
from tasks.outcomes import GATEWAY_ERROR, GATEWAY_UNAVAILABLE, NO_SLOT

# --- slots ---


@dataclass(frozen=True)
class Slot:
    """When a chunk is delivered: at a time (aware), or at once (``at`` None)."""

    at: datetime | None = None

    @property
    def at_once(self) -> bool:
        return self.at is None

    def to_ledger(self) -> str | None:
        return None if self.at is None else self.at.isoformat()

    @classmethod
    def from_ledger(cls, text: str | None) -> Slot:
        return cls(None if text is None else datetime.fromisoformat(text))


AT_ONCE = Slot()


@dataclass(frozen=True)
class NoSlot:
    """No allowed delivery time within the planning horizon."""

    why: str = "no allowed slot within the planning horizon"


# --- what a status look-up proves ---


class Evidence(StrEnum):
    FOUND = "found"  # the gateway has a send with this tag: it landed
    ABSENT = "absent"  # the gateway knows no send with this tag (yet?)
    UNCLEAR = "unclear"  # the look-up itself failed: it proves nothing


def evidence(answer: Sequence[StatusEntry] | SMSPartnerError) -> Evidence:
    """What one answer of ``status_by_tag`` proves about a chunk's sends."""
    if isinstance(answer, NotFound):
        return Evidence.ABSENT
    if isinstance(answer, SMSPartnerError):
        return Evidence.UNCLEAR
    return Evidence.FOUND if answer else Evidence.ABSENT


def evidence_after(doubt_from: datetime, slot: Slot, settle: timedelta) -> datetime:
    """From when a "not found" counts as "did not land" for an attempt that ended at
    ``doubt_from``: a scheduled send may stay invisible until its slot."""
    start = doubt_from if slot.at is None or slot.at < doubt_from else slot.at
    return start + settle


# --- the policy and the state ---


# How long one send waits for the gateway's answer (seconds): the gateway client's own default;
# the form's and the command line's default (flows/parameters.py) and the send settings'
# (tasks/sending.py) come from here.
READ_TIMEOUT = models.READ_TIMEOUT


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int = 6  # sends (POSTs) of one chunk in one run
    backoff: float = 1.0  # first wait after a refusal that may pass (429, no connection)
    max_backoff: float = 30.0
    settle: timedelta = timedelta(seconds=300)
    first_look: timedelta = timedelta(seconds=2)  # an unknown send is first asked about then
    look_every: timedelta = timedelta(seconds=30)  # an unclear look-up is asked again then


@dataclass(frozen=True)
class HeldChunk:
    """What the executor knows about the chunk it holds."""

    numbers: tuple[str, ...]
    slot: Slot
    doubt_from: datetime | None = None  # an attempt that may have landed ended then
    sends: int = 0  # POSTs made in this run
    refused: dict[str, str] = field(default_factory=dict)  # numbers the gateway refused


# --- events (what happened) ---


@dataclass(frozen=True)
class Claimed:
    """The chunk was just claimed (or a wait ended): decide from the state alone."""


@dataclass(frozen=True)
class Sent:
    outcome: SendOutcome


@dataclass(frozen=True)
class Looked:
    evidence: Evidence
    entries: tuple[StatusEntry, ...] = ()
    detail: str = ""


Event = Claimed | Sent | Looked


# --- steps (what to do) ---


@dataclass(frozen=True)
class Send:
    """POST the chunk now (the executor picks the current slot)."""


@dataclass(frozen=True)
class Look:
    """Ask the status endpoint whether a send with the chunk's tag landed."""


@dataclass(frozen=True)
class Wait:
    """Sleep in place, then send again: the last refusal may pass."""

    seconds: float


@dataclass(frozen=True)
class SetAside:
    """The gateway refused these numbers (code 9 naming them): drop them, send the rest."""

    refused: dict[str, str]


@dataclass(frozen=True)
class Replan:
    """The gateway refused the slot: plan a later one, then send."""


@dataclass(frozen=True)
class RecordAccepted:
    outcome: SendOutcome


@dataclass(frozen=True)
class RecordLanded:
    """A send with the chunk's tag is at the gateway: sent, priced by estimate."""

    entries: tuple[StatusEntry, ...]


@dataclass(frozen=True)
class NothingLeft:
    """Every number was refused: the chunk is done, nobody texted."""


@dataclass(frozen=True)
class Defer:
    """Leave the chunk in doubt and come back at ``until`` (the run's settle phase, a rerun or
    the follow-up): it may have landed and nothing shows yet that it did not."""

    until: datetime
    detail: str
    new_attempt: bool = False  # True: an unknown attempt just ended (record when)


@dataclass(frozen=True)
class Fail:
    """Nothing landed and this run gives up on the chunk; a rerun may send it."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Halt:
    """Credits are gone: this chunk fails and no later chunk is tried."""

    detail: str


@dataclass(frozen=True)
class StopCampaign:
    """The account is refused: give the claim back untouched and stop the campaign."""

    message: str


Step = (
    Send
    | Look
    | Wait
    | SetAside
    | Replan
    | RecordAccepted
    | RecordLanded
    | NothingLeft
    | Defer
    | Fail
    | Halt
    | StopCampaign
)


# --- the rule ---


def next_step(
    state: HeldChunk,
    event: Event,
    now: datetime,
    policy: SendPolicy,
    rng: random.Random | None = None,
) -> Step:
    """What to do next with one chunk."""
    if isinstance(event, Claimed):
        if state.doubt_from is not None:
            return Look()
        return _send_or_done(state, policy)
    if isinstance(event, Looked):
        return _after_look(state, event, now, policy)
    return _after_send(state, event.outcome, now, policy, rng)


def _send_or_done(state: HeldChunk, policy: SendPolicy) -> Step:
    if not state.numbers:
        return NothingLeft()
    if state.sends >= policy.max_attempts:
        return Fail(GATEWAY_UNAVAILABLE, f"no answer that settles it after {state.sends} sends")
    return Send()


def _after_look(state: HeldChunk, event: Looked, now: datetime, policy: SendPolicy) -> Step:
    if event.evidence is Evidence.FOUND:
        return RecordLanded(event.entries)
    doubt_from = state.doubt_from or now
    settled_at = evidence_after(doubt_from, state.slot, policy.settle)
    if event.evidence is Evidence.ABSENT:
        if now >= settled_at:
            return _send_or_done(replace(state, doubt_from=None), policy)
        return Defer(settled_at, f"not at the gateway yet; settled at {settled_at:%H:%M:%S}")
    return Defer(now + policy.look_every, f"status unknown ({event.detail or 'look-up failed'})")


def _after_send(
    state: HeldChunk,
    outcome: SendOutcome,
    now: datetime,
    policy: SendPolicy,
    rng: random.Random | None,
) -> Step:
    if outcome.kind is Kind.ACCEPTED:
        return RecordAccepted(outcome)
    if outcome.kind is Kind.UNKNOWN:
        return Defer(now + policy.first_look, f"may have landed: {outcome.reason}", True)
    refusal = outcome.refusal
    if refusal is Refusal.ACCOUNT:
        what = "API key" if outcome.code in (1, 10) else "account"
        return StopCampaign(f"the gateway refused the {what} (code {outcome.code})")
    if refusal is Refusal.CREDITS:
        return Halt(f"gateway code {outcome.code}")
    if refusal in (Refusal.RATE_LIMITED, Refusal.NOT_CONNECTED):
        if state.sends >= policy.max_attempts:
            return Fail(GATEWAY_UNAVAILABLE, outcome.reason)
        wait = retry_wait(state.sends, policy, rng)
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, policy.max_backoff))
        return Wait(wait)
    if refusal is Refusal.SLOT:
        return Replan() if state.sends < policy.max_attempts else Fail(NO_SLOT, outcome.reason)
    refused, slot_refused, other = split_refusals(outcome.errors, state.numbers)
    if refused:
        return SetAside(refused)
    if slot_refused and state.sends < policy.max_attempts:
        return Replan()
    # The chunk's detail reaches the UI (chunk table): numbers the gateway quoted are masked.
    detail = mask_phone_numbers(f"code {outcome.code}: " + "; ".join(other or [outcome.reason]))
    return Fail(GATEWAY_ERROR, detail[:500])


def retry_wait(sends: int, policy: SendPolicy, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter, the one retry policy of sends."""
    delay = min(policy.max_backoff, policy.backoff * 2 ** min(max(sends - 1, 0), 30))
    return jitter(delay, rng)


# The jitter's own generator: drawing from the global one from worker threads would change the
# random state other code (a test's property-based generator) relies on.
_JITTER = random.Random()


def jitter(delay: float, rng: random.Random | None = None) -> float:
    """Somewhere in [delay/2, delay]: kept apart so tests can pin the randomness."""
    draw = (rng or _JITTER).uniform(0.5, 1.0)  # jitter, not crypto
    return delay * draw


_NUMBER_IN_TEXT = re.compile(r"\+?\d[\d .\-]{5,}\d")
_SLOT_ELEMENTS = ("scheduledDeliveryDate", "[time]", "[minute]")


def split_refusals(
    errors: Sequence[tuple[str, str]], numbers: Sequence[str]
) -> tuple[dict[str, str], bool, list[str]]:
    """Split a validation list: numbers of the chunk it names (with the gateway's message),
    whether it refused the slot, and every other problem."""
    wanted = set(numbers)
    refused: dict[str, str] = {}
    slot_refused = False
    other: list[str] = []
    for element, message in errors:
        hits = [n for n in map(parse_loose, _NUMBER_IN_TEXT.findall(message)) if n in wanted]
        if hits:
            refused.update(dict.fromkeys(hits, message))
        elif any(k in element for k in _SLOT_ELEMENTS):
            slot_refused = True
        else:
            other.append(f"{element}: {message}")
    return refused, slot_refused, other


__all__ = [
    "AT_ONCE",
    "READ_TIMEOUT",
    "HeldChunk",
    "Claimed",
    "Defer",
    "Event",
    "Evidence",
    "Fail",
    "Halt",
    "Look",
    "Looked",
    "NoSlot",
    "NothingLeft",
    "RecordAccepted",
    "RecordLanded",
    "Replan",
    "Send",
    "SendPolicy",
    "Sent",
    "SetAside",
    "Slot",
    "Step",
    "StopCampaign",
    "Wait",
    "evidence",
    "evidence_after",
    "jitter",
    "next_step",
    "retry_wait",
    "split_refusals",
]
