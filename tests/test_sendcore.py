"""The send core's rule: ``next_step`` as a table over every (state, event) pair that matters.

The contract pinned here: an unknown send is never followed by a send; a "not found" counts only
from ``evidence_after`` (for a scheduled chunk, from its slot); found always means landed; an
unclear look-up defers; a claimed chunk with an outstanding attempt is looked up, not sent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smspartner import (
    Kind,
    NotFound,
    RateLimited,
    Refusal,
    SendOutcome,
    ServerError,
    SMSPartnerError,
    StatusEntry,
    TransportError,
)
from tasks.outcomes import GATEWAY_ERROR, GATEWAY_UNAVAILABLE, NO_SLOT
from tasks.sendcore import (
    AT_ONCE,
    Claimed,
    Defer,
    Evidence,
    Fail,
    Halt,
    HeldChunk,
    Look,
    Looked,
    NothingLeft,
    RecordAccepted,
    RecordLanded,
    Replan,
    Send,
    SendPolicy,
    Sent,
    SetAside,
    Slot,
    StopCampaign,
    Wait,
    evidence,
    evidence_after,
    jitter,
    next_step,
    retry_wait,
    split_refusals,
)

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
POLICY = SendPolicy()  # 6 attempts, backoff 1 s..30 s, settle 300 s, first look 2 s, look 30 s
MAX = POLICY.max_attempts
SETTLE = POLICY.settle
A, B = "+33612345678", "+33612345679"
NUMBERS = (A, B)
S = timedelta(seconds=1)

# --- states -----------------------------------------------------------------------------------

DOUBT_FROM = NOW - timedelta(minutes=1)  # an unknown attempt ended a minute ago
SETTLED = evidence_after(DOUBT_FROM, AT_ONCE, SETTLE)  # NOW + 4 min
LATER_AT = NOW + timedelta(hours=1)
LATER = Slot(LATER_AT)
SETTLED_LATER = LATER_AT + SETTLE  # the slot, then the settle time

FRESH = HeldChunk(NUMBERS, AT_ONCE)
EMPTY = HeldChunk((), AT_ONCE, refused={A: "stop", B: "stop"})
SPENT = HeldChunk(NUMBERS, AT_ONCE, sends=MAX)
SENT_1 = HeldChunk(NUMBERS, AT_ONCE, sends=1)  # what the executor holds after its first POST
SENT_3 = HeldChunk(NUMBERS, AT_ONCE, sends=3)
DOUBT = HeldChunk(NUMBERS, AT_ONCE, doubt_from=DOUBT_FROM, sends=1)
DOUBT_LATER = HeldChunk(NUMBERS, LATER, doubt_from=DOUBT_FROM, sends=1)
DOUBT_PAST_SLOT = HeldChunk(NUMBERS, Slot(NOW - timedelta(hours=1)), doubt_from=DOUBT_FROM)
DOUBT_EMPTY = HeldChunk((), AT_ONCE, doubt_from=DOUBT_FROM, sends=1)
DOUBT_SPENT = HeldChunk(NUMBERS, AT_ONCE, doubt_from=DOUBT_FROM, sends=MAX)
DOUBT_STATES = [DOUBT, DOUBT_LATER, DOUBT_PAST_SLOT, DOUBT_EMPTY, DOUBT_SPENT]
ALL_STATES = [FRESH, EMPTY, SPENT, SENT_1, SENT_3, *DOUBT_STATES]

# --- events -----------------------------------------------------------------------------------

ENTRY = StatusEntry(A, "Delivered", False, NOW, 307)
FOUND = Looked(Evidence.FOUND, (ENTRY,))
ABSENT = Looked(Evidence.ABSENT)
UNCLEAR = Looked(Evidence.UNCLEAR, detail="HTTP 502")


def refusal(why: Refusal, code: int | None = None, **kw: Any) -> SendOutcome:
    return SendOutcome(Kind.REFUSED, f"refused: {why}", why, code=code, **kw)


ACCEPTED = SendOutcome(Kind.ACCEPTED, "accepted", message_id=307, nb_sms=1, cost=0.038)
UNKNOWN = SendOutcome(Kind.UNKNOWN, "HTTP 502", http_status=502)
KEY_MISSING = refusal(Refusal.ACCOUNT, 1)
KEY_WRONG = refusal(Refusal.ACCOUNT, 10)
BLOCKED = refusal(Refusal.ACCOUNT, 30)
CREDITS = refusal(Refusal.CREDITS, 11)
RATE = refusal(Refusal.RATE_LIMITED, http_status=429)
RATE_10 = refusal(Refusal.RATE_LIMITED, http_status=429, retry_after=10.0)
RATE_100 = refusal(Refusal.RATE_LIMITED, http_status=429, retry_after=100.0)
RATE_SHORT = refusal(Refusal.RATE_LIMITED, http_status=429, retry_after=0.5)
NOT_CONNECTED = refusal(Refusal.NOT_CONNECTED)
SLOT = refusal(Refusal.SLOT, 22)
PHONE = "children[phoneNumbers].data"
NUMBER_REFUSED = f"Ce numero de telephone n'est pas valide ({B})"
CONTENT_NUMBER = refusal(Refusal.CONTENT, 9, errors=((PHONE, NUMBER_REFUSED),))
CONTENT_NATIONAL = refusal(Refusal.CONTENT, 9, errors=((PHONE, "invalide (06 12 34 56 79)"),))
CONTENT_STRANGER = refusal(Refusal.CONTENT, 9, errors=((PHONE, "invalide (+33698765432)"),))
DATE = "children[scheduledDeliveryDate].data"
CONTENT_DATE = refusal(Refusal.CONTENT, 9, errors=((DATE, "La date doit etre dans le futur"),))
SURVEY = "children[sondageIdent].data"
CONTENT_OTHER = refusal(Refusal.CONTENT, 9, errors=((SURVEY, "Sondage introuvable"),))
CONTENT_MIXED = refusal(
    Refusal.CONTENT, 9, errors=((SURVEY, "Sondage introuvable"), (PHONE, NUMBER_REFUSED))
)
CONTENT_BARE = refusal(Refusal.CONTENT, 14)

OUTCOMES = [ACCEPTED, UNKNOWN, KEY_MISSING, KEY_WRONG, BLOCKED, CREDITS, RATE, RATE_10]
OUTCOMES += [RATE_100, RATE_SHORT, NOT_CONNECTED, SLOT, CONTENT_NUMBER, CONTENT_NATIONAL]
OUTCOMES += [CONTENT_STRANGER, CONTENT_DATE, CONTENT_OTHER, CONTENT_MIXED, CONTENT_BARE]

# --- expectations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Between:
    low: float
    high: float

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float | int) and self.low <= other <= self.high


@dataclass(frozen=True)
class Contains:
    words: tuple[str, ...]
    absent: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str)
            and all(w in other for w in self.words)
            and not any(w in other for w in self.absent)
        )


def case(
    state: HeldChunk,
    event: Claimed | Sent | Looked,
    now: datetime,
    step: type,
    id: str,
    **fields: Any,
) -> Any:
    return pytest.param(state, event, now, step, fields, id=id)


CASES = [
    # --- claimed: decide from the state alone ----------------------------------------------
    case(FRESH, Claimed(), NOW, Send, "claimed-fresh"),
    case(EMPTY, Claimed(), NOW, NothingLeft, "claimed-no-numbers"),
    case(SPENT, Claimed(), NOW, Fail, "claimed-spent", reason=GATEWAY_UNAVAILABLE),
    case(DOUBT, Claimed(), NOW, Look, "claimed-outstanding"),
    case(DOUBT, Claimed(), NOW + timedelta(days=2), Look, "claimed-outstanding-long-after"),
    case(DOUBT_LATER, Claimed(), NOW, Look, "claimed-outstanding-scheduled"),
    case(DOUBT_EMPTY, Claimed(), NOW, Look, "claimed-outstanding-no-numbers"),
    case(DOUBT_SPENT, Claimed(), NOW, Look, "claimed-outstanding-spent"),
    # --- looked: found is landed, whenever ---------------------------------------------------
    case(DOUBT, FOUND, NOW, RecordLanded, "found-before-settle", entries=(ENTRY,)),
    case(DOUBT, FOUND, SETTLED + S, RecordLanded, "found-after-settle", entries=(ENTRY,)),
    case(DOUBT_LATER, FOUND, NOW, RecordLanded, "found-scheduled-early", entries=(ENTRY,)),
    case(DOUBT_EMPTY, FOUND, NOW, RecordLanded, "found-no-numbers", entries=(ENTRY,)),
    case(DOUBT_SPENT, FOUND, SETTLED, RecordLanded, "found-spent", entries=(ENTRY,)),
    case(FRESH, FOUND, NOW, RecordLanded, "found-nothing-outstanding", entries=(ENTRY,)),
    # --- looked: absent counts only from evidence_after --------------------------------------
    case(DOUBT, ABSENT, NOW, Defer, "absent-early", until=SETTLED, new_attempt=False),
    case(DOUBT, ABSENT, SETTLED - S, Defer, "absent-just-before", until=SETTLED, new_attempt=False),
    case(DOUBT, ABSENT, SETTLED, Send, "absent-at-settle"),
    case(DOUBT, ABSENT, SETTLED + timedelta(hours=5), Send, "absent-long-after"),
    case(DOUBT_EMPTY, ABSENT, NOW, Defer, "absent-early-no-numbers", until=SETTLED),
    case(DOUBT_EMPTY, ABSENT, SETTLED, NothingLeft, "absent-settled-no-numbers"),
    case(DOUBT_SPENT, ABSENT, NOW, Defer, "absent-early-spent", until=SETTLED),
    case(DOUBT_SPENT, ABSENT, SETTLED, Fail, "absent-settled-spent", reason=GATEWAY_UNAVAILABLE),
    # A scheduled chunk: the settle time counts from its slot, not from the attempt.
    case(DOUBT_LATER, ABSENT, NOW, Defer, "absent-scheduled-early", until=SETTLED_LATER),
    case(
        DOUBT_LATER,
        ABSENT,
        SETTLED,
        Defer,
        "absent-scheduled-past-attempt-settle",
        until=SETTLED_LATER,
    ),
    case(DOUBT_LATER, ABSENT, LATER_AT, Defer, "absent-scheduled-at-slot", until=SETTLED_LATER),
    case(
        DOUBT_LATER,
        ABSENT,
        SETTLED_LATER - S,
        Defer,
        "absent-scheduled-just-before",
        until=SETTLED_LATER,
    ),
    case(DOUBT_LATER, ABSENT, SETTLED_LATER, Send, "absent-scheduled-settled"),
    # A slot already past when the attempt ended: count from the attempt.
    case(DOUBT_PAST_SLOT, ABSENT, NOW, Defer, "absent-past-slot-early", until=SETTLED),
    case(DOUBT_PAST_SLOT, ABSENT, SETTLED, Send, "absent-past-slot-settled"),
    # No attempt outstanding (not asked by the executor): counts from now, so never sends.
    case(FRESH, ABSENT, NOW, Defer, "absent-nothing-outstanding", until=NOW + SETTLE),
    # --- looked: unclear proves nothing -----------------------------------------------------
    case(
        DOUBT,
        UNCLEAR,
        NOW,
        Defer,
        "unclear-early",
        until=NOW + POLICY.look_every,
        new_attempt=False,
        detail=Contains(("HTTP 502",)),
    ),
    case(
        DOUBT, UNCLEAR, SETTLED + S, Defer, "unclear-settled", until=SETTLED + S + POLICY.look_every
    ),
    case(
        DOUBT_LATER,
        UNCLEAR,
        SETTLED_LATER,
        Defer,
        "unclear-scheduled-settled",
        until=SETTLED_LATER + POLICY.look_every,
    ),
    case(DOUBT_SPENT, UNCLEAR, SETTLED, Defer, "unclear-spent", until=SETTLED + POLICY.look_every),
    case(
        DOUBT,
        Looked(Evidence.UNCLEAR),
        NOW,
        Defer,
        "unclear-no-detail",
        detail=Contains(("look-up failed",)),
    ),
    # --- sent -------------------------------------------------------------------------------
    case(SENT_1, Sent(ACCEPTED), NOW, RecordAccepted, "accepted", outcome=ACCEPTED),
    case(SPENT, Sent(ACCEPTED), NOW, RecordAccepted, "accepted-last-attempt", outcome=ACCEPTED),
    case(
        SENT_1,
        Sent(UNKNOWN),
        NOW,
        Defer,
        "unknown",
        until=NOW + POLICY.first_look,
        new_attempt=True,
        detail=Contains(("HTTP 502",)),
    ),
    case(SPENT, Sent(UNKNOWN), NOW, Defer, "unknown-last-attempt", new_attempt=True),
    case(
        SENT_1,
        Sent(KEY_MISSING),
        NOW,
        StopCampaign,
        "account-code-1",
        message=Contains(("API key", "code 1")),
    ),
    case(
        SENT_1,
        Sent(KEY_WRONG),
        NOW,
        StopCampaign,
        "account-code-10",
        message=Contains(("API key", "code 10")),
    ),
    case(
        SENT_1,
        Sent(BLOCKED),
        NOW,
        StopCampaign,
        "account-code-30",
        message=Contains(("account", "code 30"), absent=("API key",)),
    ),
    case(SENT_1, Sent(CREDITS), NOW, Halt, "credits", detail=Contains(("code 11",))),
    case(SENT_1, Sent(RATE), NOW, Wait, "rate-limited-1", seconds=Between(0.5, 1.0)),
    case(SENT_3, Sent(RATE), NOW, Wait, "rate-limited-3", seconds=Between(2.0, 4.0)),
    case(SENT_1, Sent(RATE_10), NOW, Wait, "rate-limited-retry-after", seconds=10.0),
    case(SENT_1, Sent(RATE_100), NOW, Wait, "rate-limited-retry-after-capped", seconds=30.0),
    case(
        SENT_3,
        Sent(RATE_SHORT),
        NOW,
        Wait,
        "rate-limited-short-retry-after",
        seconds=Between(2.0, 4.0),
    ),
    case(SPENT, Sent(RATE), NOW, Fail, "rate-limited-spent", reason=GATEWAY_UNAVAILABLE),
    case(
        SPENT,
        Sent(RATE_10),
        NOW,
        Fail,
        "rate-limited-retry-after-spent",
        reason=GATEWAY_UNAVAILABLE,
    ),
    case(SENT_1, Sent(NOT_CONNECTED), NOW, Wait, "not-connected", seconds=Between(0.5, 1.0)),
    case(SENT_3, Sent(NOT_CONNECTED), NOW, Wait, "not-connected-3", seconds=Between(2.0, 4.0)),
    case(SPENT, Sent(NOT_CONNECTED), NOW, Fail, "not-connected-spent", reason=GATEWAY_UNAVAILABLE),
    case(SENT_1, Sent(SLOT), NOW, Replan, "slot"),
    case(SPENT, Sent(SLOT), NOW, Fail, "slot-spent", reason=NO_SLOT),
    case(
        SENT_1,
        Sent(CONTENT_NUMBER),
        NOW,
        SetAside,
        "content-names-a-number",
        refused={B: NUMBER_REFUSED},
    ),
    case(
        SPENT,
        Sent(CONTENT_NUMBER),
        NOW,
        SetAside,
        "content-names-a-number-spent",
        refused={B: NUMBER_REFUSED},
    ),
    case(
        SENT_1,
        Sent(CONTENT_NATIONAL),
        NOW,
        SetAside,
        "content-names-a-national-number",
        refused={B: "invalide (06 12 34 56 79)"},
    ),
    case(
        SENT_1,
        Sent(CONTENT_MIXED),
        NOW,
        SetAside,
        "content-names-a-number-and-more",
        refused={B: NUMBER_REFUSED},
    ),
    case(
        SENT_1,
        Sent(CONTENT_STRANGER),
        NOW,
        Fail,
        "content-names-a-stranger",
        reason=GATEWAY_ERROR,
        detail=Contains(("code 9", PHONE)),
    ),
    case(SENT_1, Sent(CONTENT_DATE), NOW, Replan, "content-names-the-date"),
    case(
        SPENT,
        Sent(CONTENT_DATE),
        NOW,
        Fail,
        "content-names-the-date-spent",
        reason=GATEWAY_ERROR,
    ),
    case(
        SENT_1,
        Sent(CONTENT_OTHER),
        NOW,
        Fail,
        "content-other",
        reason=GATEWAY_ERROR,
        detail=Contains((f"code 9: {SURVEY}: Sondage introuvable",)),
    ),
    case(
        SENT_1,
        Sent(CONTENT_BARE),
        NOW,
        Fail,
        "content-without-errors",
        reason=GATEWAY_ERROR,
        detail=Contains(("code 14",)),
    ),
]


@pytest.mark.parametrize(("state", "event", "now", "step", "fields"), CASES)
def test_next_step(
    state: HeldChunk,
    event: Claimed | Sent | Looked,
    now: datetime,
    step: type,
    fields: dict[str, Any],
) -> None:
    got = next_step(state, event, now, POLICY, random.Random(7))
    assert type(got) is step, got
    assert {name: getattr(got, name) for name in fields} == fields, got


@pytest.mark.parametrize("state", ALL_STATES, ids=lambda s: f"sends={s.sends},{s.doubt_from}")
@pytest.mark.parametrize("offset", [0, 240, 299, 300, 3600, 3900, 86400])
def test_an_unknown_send_is_never_followed_by_a_send(state: HeldChunk, offset: int) -> None:
    now = NOW + timedelta(seconds=offset)
    got = next_step(state, Sent(UNKNOWN), now, POLICY)
    assert isinstance(got, Defer), got
    assert got.new_attempt and got.until == now + POLICY.first_look


@pytest.mark.parametrize("state", ALL_STATES, ids=lambda s: f"sends={s.sends},{s.doubt_from}")
def test_found_is_landed_and_unclear_defers_whatever_the_time(state: HeldChunk) -> None:
    for offset in (-3600, 0, 299, 300, 3900, 86400 * 3):
        now = NOW + timedelta(seconds=offset)
        assert next_step(state, FOUND, now, POLICY) == RecordLanded((ENTRY,))
        unclear = next_step(state, UNCLEAR, now, POLICY)
        assert isinstance(unclear, Defer) and not unclear.new_attempt
        assert unclear.until == now + POLICY.look_every


# --- the property: nothing outstanding is ever sent again on less than settled absence -------

OFFSETS = st.integers(-2 * 86400, 2 * 86400).map(lambda s: NOW + timedelta(seconds=s))
STATES = st.builds(
    HeldChunk,
    numbers=st.lists(st.sampled_from([A, B, "+590690000001"]), unique=True).map(tuple),
    slot=st.one_of(st.just(AT_ONCE), OFFSETS.map(Slot)),
    doubt_from=st.none() | OFFSETS,
    sends=st.integers(0, 8),
)
EVENTS = st.one_of(
    st.just(Claimed()),
    st.sampled_from([FOUND, ABSENT, UNCLEAR, Looked(Evidence.FOUND)]),
    st.sampled_from(OUTCOMES).map(Sent),
)
POLICIES = st.builds(
    SendPolicy,
    max_attempts=st.integers(1, 8),
    settle=st.integers(0, 3600).map(lambda s: timedelta(seconds=s)),
)


@settings(max_examples=250, deadline=None)
@given(
    state=STATES,
    event=EVENTS,
    now=OFFSETS,
    policy=POLICIES,
    seed=st.integers(0, 2**32),
)
def test_next_step_never_sends_over_an_outstanding_attempt(
    state: HeldChunk,
    event: Claimed | Sent | Looked,
    now: datetime,
    policy: SendPolicy,
    seed: int,
) -> None:
    got = next_step(state, event, now, policy, random.Random(seed))
    if isinstance(event, Sent) and event.outcome.kind is Kind.UNKNOWN:
        assert isinstance(got, Defer) and got.new_attempt
    if isinstance(got, Send) and state.doubt_from is not None:
        assert event == ABSENT
        assert now >= evidence_after(state.doubt_from, state.slot, policy.settle)
    if isinstance(event, Looked) and event.evidence is Evidence.FOUND:
        assert got == RecordLanded(event.entries)
    if isinstance(event, Looked) and event.evidence is Evidence.UNCLEAR:
        assert isinstance(got, Defer)
    if isinstance(got, Defer) and isinstance(event, Looked) and event.evidence is Evidence.ABSENT:
        assert got.until > now
    if isinstance(got, Wait):
        assert 0 < got.seconds <= policy.max_backoff
    if isinstance(got, Send):
        assert state.numbers and state.sends < policy.max_attempts


@given(
    doubt_from=OFFSETS,
    slot=st.one_of(st.just(AT_ONCE), OFFSETS.map(Slot)),
    settle=st.integers(0, 3600).map(lambda s: timedelta(seconds=s)),
)
def test_evidence_counts_from_the_later_of_the_attempt_and_the_slot(
    doubt_from: datetime, slot: Slot, settle: timedelta
) -> None:
    start = max(doubt_from, slot.at) if slot.at else doubt_from
    assert evidence_after(doubt_from, slot, settle) == start + settle


def test_evidence_after_examples() -> None:
    assert evidence_after(DOUBT_FROM, AT_ONCE, SETTLE) == NOW + timedelta(minutes=4)
    assert evidence_after(DOUBT_FROM, LATER, SETTLE) == NOW + timedelta(hours=1, minutes=5)
    assert evidence_after(DOUBT_FROM, Slot(DOUBT_FROM), SETTLE) == DOUBT_FROM + SETTLE
    assert evidence_after(DOUBT_FROM, Slot(NOW - timedelta(days=1)), SETTLE) == SETTLED


# --- retry_wait and jitter --------------------------------------------------------------------


class Pinned(random.Random):
    """A random source whose uniform draw is always one end of the range."""

    def __init__(self, end: Callable[[float, float], float]) -> None:
        super().__init__(0)
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return self.end(a, b)


@pytest.mark.parametrize(
    ("sends", "delay"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0), (7, 30.0), (60, 30.0)],
)
def test_retry_wait_doubles_from_backoff_up_to_max_backoff(sends: int, delay: float) -> None:
    assert retry_wait(sends, POLICY, Pinned(lambda a, b: b)) == delay
    assert retry_wait(sends, POLICY, Pinned(lambda a, b: a)) == delay / 2
    for seed in range(20):
        assert delay / 2 <= retry_wait(sends, POLICY, random.Random(seed)) <= delay


def test_retry_wait_follows_the_policy() -> None:
    policy = SendPolicy(backoff=0.25, max_backoff=1.5)
    high = Pinned(lambda a, b: b)
    assert [retry_wait(n, policy, high) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.5, 1.5]


@given(sends=st.integers(0, 1000), seed=st.integers(0, 2**32))
def test_retry_wait_is_bounded_and_reproducible(sends: int, seed: int) -> None:
    first = retry_wait(sends, POLICY, random.Random(seed))
    assert first == retry_wait(sends, POLICY, random.Random(seed))
    delay = min(POLICY.max_backoff, POLICY.backoff * 2 ** max(sends - 1, 0))
    assert delay / 2 <= first <= delay <= POLICY.max_backoff


def test_retry_wait_with_a_huge_attempt_count_is_capped() -> None:
    assert retry_wait(1025, POLICY, random.Random(0)) <= POLICY.max_backoff


@given(delay=st.floats(0, 1e6), seed=st.integers(0, 2**32))
def test_jitter_is_between_half_and_all_of_the_delay(delay: float, seed: int) -> None:
    got = jitter(delay, random.Random(seed))
    assert delay / 2 <= got <= delay
    assert got == jitter(delay, random.Random(seed))


def test_jitter_without_a_random_source_uses_the_module_one() -> None:
    assert all(5.0 <= jitter(10.0) <= 10.0 for _ in range(50))


# --- evidence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(NotFound("no send with this tag", code=4), Evidence.ABSENT, id="not-found"),
        pytest.param(ServerError("HTTP 502", http_status=502), Evidence.UNCLEAR, id="5xx"),
        pytest.param(
            TransportError("read timeout", may_have_landed=False), Evidence.UNCLEAR, id="timeout"
        ),
        pytest.param(RateLimited("HTTP 429", retry_after=3.0), Evidence.UNCLEAR, id="429"),
        pytest.param(SMSPartnerError("strange answer"), Evidence.UNCLEAR, id="other-error"),
        pytest.param([], Evidence.ABSENT, id="empty-list"),
        pytest.param((), Evidence.ABSENT, id="empty-tuple"),
        pytest.param([ENTRY], Evidence.FOUND, id="one-entry"),
        pytest.param(
            (ENTRY, StatusEntry(B, "Waiting", False, None, None)), Evidence.FOUND, id="entries"
        ),
    ],
)
def test_evidence(answer: Any, expected: Evidence) -> None:
    assert evidence(answer) is expected


# --- split_refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param([], ({}, False, []), id="nothing"),
        pytest.param([(PHONE, NUMBER_REFUSED)], ({B: NUMBER_REFUSED}, False, []), id="e164"),
        pytest.param(
            [(PHONE, "invalide (06 12 34 56 78)")],
            ({A: "invalide (06 12 34 56 78)"}, False, []),
            id="national-with-spaces",
        ),
        pytest.param(
            [(PHONE, "invalide (0033612345678)")],
            ({A: "invalide (0033612345678)"}, False, []),
            id="0033",
        ),
        pytest.param(
            [(PHONE, f"invalides: {A}, {B}")],
            ({A: f"invalides: {A}, {B}", B: f"invalides: {A}, {B}"}, False, []),
            id="two-in-one-message",
        ),
        pytest.param(
            [(PHONE, "invalide (+33698765432)")],
            ({}, False, [f"{PHONE}: invalide (+33698765432)"]),
            id="not-of-this-chunk",
        ),
        pytest.param(
            [(PHONE, "Ce numero de telephone n'est pas valide (922264)")],
            ({}, False, [f"{PHONE}: Ce numero de telephone n'est pas valide (922264)"]),
            id="go-fixture-short-digits",
        ),
        pytest.param([(DATE, "passée")], ({}, True, []), id="date"),
        pytest.param(
            [(DATE, "date 2025-03-04 10:00:00 passée")], ({}, True, []), id="date-with-digits"
        ),
        pytest.param([("children[time].data", "requis")], ({}, True, []), id="time"),
        pytest.param([("children[minute].data", "5-55")], ({}, True, []), id="minute"),
        pytest.param(
            [(SURVEY, "Sondage introuvable")],
            ({}, False, [f"{SURVEY}: Sondage introuvable"]),
            id="other",
        ),
        pytest.param(
            [(SURVEY, "Sondage introuvable"), (DATE, "passée"), (PHONE, NUMBER_REFUSED)],
            ({B: NUMBER_REFUSED}, True, [f"{SURVEY}: Sondage introuvable"]),
            id="all-three",
        ),
    ],
)
def test_split_refusals(
    errors: list[tuple[str, str]], expected: tuple[dict[str, str], bool, list[str]]
) -> None:
    assert split_refusals(errors, NUMBERS) == expected


def test_a_failed_chunk_s_detail_masks_the_numbers_the_gateway_quoted() -> None:
    outcome = SendOutcome(
        Kind.REFUSED,
        "code 9",
        Refusal.CONTENT,
        code=9,
        errors=(("children[sondageIdent].data", "unknown survey for +33699887766"),),
    )
    state = HeldChunk(numbers=("+33611111111",), slot=AT_ONCE)
    step = next_step(state, Sent(outcome), NOW, POLICY)
    assert isinstance(step, Fail) and step.reason == "gateway_error"
    assert "+33699887766" not in step.detail and "unknown survey" in step.detail
