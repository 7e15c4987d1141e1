"""The planning rules (``tasks/plan.py``) on their own: the ledger's answers come in as plain
functions and values, so every decision here runs without a database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from helpers import chunk_row
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import plan as pl
from tasks.ledger.model import NOT_IN_INPUT, OPTED_OUT_SINCE, ChunkRow
from tasks.outcomes import (
    BUDGET_EXCEEDED,
    DUPLICATE,
    INSUFFICIENT_CREDITS,
    NO_SLOT,
    OPTED_OUT,
    RECENTLY_SURVEYED,
    ChunkState,
)
from tasks.row_columns import DETAIL, E164, REASON, ROW, TERRITORY
from tasks.slots import SlotDecision, WindowPolicy

NOW = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Paris: the window is open
A, B, C, D = (f"+3361234560{i}" for i in range(1, 5))
GP = "+590690123456"  # Guadeloupe: another territory
SEND_NOW = SlotDecision("FR", at_once=True, slot=None, explanation="sending now")


def rows_of(*phones: str) -> pd.DataFrame:
    return pl.clean_rows(pd.DataFrame({"phone": list(phones)}), "phone", allow_foreign=False)


chunk = chunk_row  # a ledger chunk of campaign c1


def reasons(rows: pd.DataFrame) -> list[str | None]:
    return [None if pd.isna(r) else r for r in rows[REASON]]


# -- campaign ids and binding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign_id", "valid"),
    [
        ("demo-20250107-103012-ab31", True),
        ("a", True),
        ("A.b_c-9", True),
        ("x" * 120, True),
        ("x" * 121, False),
        ("", False),
        ("-starts-with-a-dash", False),
        ("id\n", False),  # fullmatch: "$" would let a trailing newline through
        ("has space", False),
        ("../escape", False),
    ],
)
def test_validate_campaign_id(campaign_id: str, valid: bool) -> None:
    if valid:
        assert pl.validate_campaign_id(campaign_id) == campaign_id
    else:
        with pytest.raises(pl.CampaignError, match="campaign id must be"):
            pl.validate_campaign_id(campaign_id)


@pytest.mark.parametrize(
    ("survey_id", "stem"),
    [("Satisfaction 2025!", "satisfaction-2025"), ("***", "survey"), ("x" * 60, "x" * 40)],
)
def test_a_new_campaign_id_is_valid_and_says_its_survey_and_paris_time(
    survey_id: str, stem: str
) -> None:
    made = pl.new_campaign_id(survey_id, NOW)
    assert pl.validate_campaign_id(made) == made
    assert made.startswith(f"{stem}-20250304-100000-")  # 09:00 UTC is 10:00 in Paris


BOUND = ("s1", "fp1")


@pytest.mark.parametrize(
    ("bound", "survey", "fingerprint", "allow", "refused"),
    [
        pytest.param(None, "s1", "fp1", False, None, id="a-new-campaign"),
        pytest.param(BOUND, "s1", "fp1", False, None, id="same-survey-same-input"),
        pytest.param(BOUND, "s2", "fp1", True, "started with survey 's1'", id="another-survey"),
        pytest.param(BOUND, "s1", "fp2", False, "started on another input", id="input-changed"),
        pytest.param(BOUND, "s1", "fp2", True, None, id="input-changed-on-purpose"),
        pytest.param(("s1", None), "s1", "fp2", False, None, id="bound-before-fingerprints"),
    ],
)
def test_binding_problem(
    bound: tuple[str, str | None] | None,
    survey: str,
    fingerprint: str,
    allow: bool,
    refused: str | None,
) -> None:
    said = pl.binding_problem("c1", bound, survey, fingerprint, allow)
    if refused is None:
        assert said is None
    else:
        assert said is not None and refused in said and said.startswith("campaign c1 ")


def test_the_fingerprint_follows_rows_and_columns_not_the_frames_identity() -> None:
    frame = pd.DataFrame({"phone": [A, B], "name": ["x", "y"]})
    same = pl.input_fingerprint(frame.copy())
    assert pl.input_fingerprint(frame) == same
    assert pl.input_fingerprint(frame.iloc[::-1]) != same  # order counts
    assert pl.input_fingerprint(frame.rename(columns={"name": "nom"})) != same
    assert pl.input_fingerprint(frame.assign(name=["x", None])) != same


# -- reject marks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "detail", "expected", "details"),
    [
        pytest.param(set(), "d", [None, DUPLICATE, None], [None] * 3, id="nothing-to-suppress"),
        pytest.param(
            {A, B}, None, [OPTED_OUT, DUPLICATE, None], [None] * 3, id="accepted-rows-only"
        ),
        pytest.param(
            {C}, "list x", [None, DUPLICATE, OPTED_OUT], [None, None, "list x"], id="with-detail"
        ),
    ],
)
def test_apply_suppression(
    numbers: set[str], detail: str | None, expected: list, details: list
) -> None:
    rows = rows_of(A, A, C)  # the second A is a duplicate: it keeps that reason
    out = pl.apply_suppression(rows, OPTED_OUT, numbers, detail)
    assert reasons(out) == expected
    assert [None if pd.isna(d) else d for d in out[DETAIL]] == details


def test_mark_no_slot_rejects_the_stuck_territories_among_the_rows_given() -> None:
    rows = rows_of(A, GP, B, C)
    decisions = {
        "FR": SEND_NOW,
        "GP": SlotDecision("GP", at_once=False, slot=None, explanation="no slot within 14 days"),
    }
    among = pd.Series([True, True, True, False], index=rows.index)
    out = pl.mark_no_slot(rows, decisions, among)
    assert reasons(out) == [None, NO_SLOT, None, None]
    assert out.loc[1, DETAIL] == "no slot within 14 days"


def test_normalise_list_keeps_the_numbers_it_can_read() -> None:
    assert pl.normalise_list(["06 12 34 56 01", A, "not a number", ""]) == {A}


# -- earlier runs ------------------------------------------------------------------------------


def test_withdrawals_take_out_whoever_left_the_input_or_opted_out_since() -> None:
    existing = [
        chunk(0, (A, B), ChunkState.pending),
        chunk(1, (C,), ChunkState.failed),
        chunk(2, (D,), ChunkState.sent),  # sent: nothing to take back
    ]
    rows = rows_of(A, C, D)  # B left the input
    why = pl.withdrawals(existing, rows, never={C, D})
    assert why == {B: NOT_IN_INPUT, C: OPTED_OUT_SINCE}
    after = pl.without(existing, why)
    assert [c.numbers for c in after] == [(A,), (), (D,)]
    assert after[0].refused == {B: NOT_IN_INPUT} and after[1].refused == {C: OPTED_OUT_SINCE}


def test_earlier_recipients_missing_from_the_input_are_counted_as_row_zero() -> None:
    existing = [chunk(0, (A, B), ChunkState.sent), chunk(1, (C,), ChunkState.pending)]
    out = pl.with_earlier_recipients(rows_of(A), existing)
    assert out[E164].tolist() == [A, B]  # C was never sent: not counted
    assert out[ROW].tolist() == [1, 0]


def test_candidates_are_accepted_rows_and_unsent_numbers() -> None:
    existing = [chunk(0, (C,), ChunkState.pending), chunk(1, (D,), ChunkState.sent)]
    assert list(pl.candidates(rows_of(A, A, B), existing)) == [A, B, C]


# -- chunks and send tasks ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, pl.MAX_CHUNK + 1, -1])
def test_a_chunk_size_outside_the_gateways_limit_is_refused(size: int) -> None:
    with pytest.raises(pl.CampaignError, match="chunk size must be between 1 and 500"):
        pl.plan_chunks(rows_of(A), {"FR": SEND_NOW}, chunk_size=size)


TERRITORY_OF = {"FR": "+336", "GP": "+590690", "RE": "+262692"}


@settings(max_examples=200, deadline=None)
@given(
    territories=st.lists(st.sampled_from(sorted(TERRITORY_OF)), max_size=1200),
    chunk_size=st.one_of(st.integers(1, 7), st.just(pl.MAX_CHUNK)),
    start=st.integers(0, 50),
)
def test_chunks_partition_the_rows(territories: list[str], chunk_size: int, start: int) -> None:
    accepted = pd.DataFrame(
        {
            E164: [f"{TERRITORY_OF[t]}{i:06d}" for i, t in enumerate(territories)],
            TERRITORY: territories,
        },
        dtype=object,
    )
    decisions = {t: replace(SEND_NOW, territory=t) for t in TERRITORY_OF}
    plan = pl.plan_chunks(accepted, decisions, chunk_size=chunk_size, start_index=start)
    planned = [n for c in plan for n in c.numbers]
    assert sorted(planned) == sorted(accepted[E164])  # every row once, none twice
    assert all(1 <= len(c.numbers) <= min(chunk_size, pl.MAX_CHUNK) for c in plan)
    assert [c.chunk_index for c in plan] == list(range(start, start + len(plan)))
    for c in plan:  # one territory per chunk, its rows in source order
        assert {territories[int(n[-6:])] for n in c.numbers} == {c.territory}
        assert list(c.numbers) == sorted(c.numbers)


def test_a_scheduled_territory_carries_its_slot_in_paris_time() -> None:
    slot = datetime(2025, 3, 4, 9, 10, tzinfo=UTC)
    decisions = {"FR": SlotDecision("FR", at_once=False, slot=slot, explanation="at 10:10")}
    [only] = pl.plan_chunks(rows_of(A), decisions, chunk_size=10)
    assert only.slot == "2025-03-04T10:10:00+01:00"


# -- the run's plan with injected look-ups -----------------------------------------------------

RULES = pl.PlanRules(
    chunk_size=2,
    concurrency=4,
    lead=timedelta(minutes=10),
    margin=timedelta(minutes=5),
    cap_days=30,
    policy=WindowPolicy(),
    allow_immediate=True,
)


class Ledger:
    """The ledger's answers as plain values, and who asked what."""

    def __init__(self, texted: Iterable[str] = (), price: float | None = None) -> None:
        self.texted, self.price = set(texted), price
        self.asked: list[tuple[str, object]] = []

    def texted_since(self, numbers: Iterable[str], since: datetime) -> set[str]:
        wanted = list(numbers)
        self.asked.append(("texted_since", (sorted(wanted), since)))
        return self.texted & set(wanted)

    def observed_price(self) -> float | None:
        self.asked.append(("observed_price", None))
        return self.price

    def lookups(self) -> pl.Lookups:
        return pl.Lookups(texted_since=self.texted_since, observed_price=self.observed_price)


def test_plan_rows_asks_the_cap_only_about_fresh_rows_and_marks_its_answer() -> None:
    ledger = Ledger(texted={B})
    existing = [chunk(0, (D,), ChunkState.sent)]
    rows = rows_of(A, B, A, C, D)
    out, plan, decisions, *_ = pl.plan_rows(
        rows, existing, never={C}, rules=RULES, now=NOW, texted_since=ledger.texted_since
    )
    # D was planned by an earlier run, C is never to be texted, the second A is a duplicate
    assert ledger.asked == [("texted_since", ([A, B], NOW - timedelta(days=30)))]
    assert reasons(out) == [None, RECENTLY_SURVEYED, DUPLICATE, OPTED_OUT, None]
    assert out.loc[1, DETAIL] == "texted by another campaign within 30 days"
    assert [(c.chunk_index, c.numbers) for c in plan] == [(1, (A,))]
    assert decisions["FR"].at_once


def test_without_a_cap_the_ledger_is_not_asked() -> None:
    ledger = Ledger(texted={A})
    out, plan, *_ = pl.plan_rows(
        rows_of(A, B), [], set(), replace(RULES, cap_days=0), NOW, ledger.texted_since
    )
    assert ledger.asked == [] and reasons(out) == [None, None]
    assert [c.numbers for c in plan] == [(A, B)]


def test_a_territory_without_a_slot_is_rejected_not_planned() -> None:
    sundays_only = replace(
        RULES, policy=WindowPolicy(weekdays=frozenset({6}), horizon_days=1), allow_immediate=False
    )
    out, plan, *_ = pl.plan_rows(rows_of(A), [], set(), sundays_only, NOW, Ledger().texted_since)
    assert reasons(out) == [NO_SLOT] and plan == []


def request(**changes: object) -> pl.PlanRequest:
    base = pl.PlanRequest(
        campaign_id="c1",
        survey_id="s1",
        run="r1",
        ledger_url="sqlite://",
        ledger_outage=0.0,
        rules=RULES,
        cost_per_sms=0.10,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def attempt(
    rows: pd.DataFrame,
    req: pl.PlanRequest,
    *,
    credits: float | None = 100.0,
    existing: list[ChunkRow] | None = None,
    ledger: Ledger | None = None,
) -> pl.Attempt:
    return pl.attempt(
        rows,
        existing or [],
        set(),
        req,
        NOW,
        credits=credits,
        currency=None,
        lookups=(ledger or Ledger()).lookups(),
        approval=lambda n, cost: [f"{n} recipients at {cost:.2f}"] if n > 2 else [],
    )


@pytest.mark.parametrize(
    ("credits", "req", "sent", "rejected", "stopped", "held"),
    [
        pytest.param(100.0, request(), 3, 0, False, [], id="enough-money"),
        pytest.param(0.25, request(), 0, 3, True, [], id="short-stops-everything"),
        pytest.param(
            0.25, request(send_within_credits=True), 2, 1, False, [], id="short-sends-what-fits"
        ),
        pytest.param(
            100.0,
            request(max_cost=0.15, send_within_credits=True),
            1,
            2,
            False,
            [],
            id="the-cap-binds",
        ),
        pytest.param(
            100.0,
            request(thresholds=(None, 2)),
            3,
            0,
            False,
            ["3 recipients at 0.30"],
            id="held-for-a-yes",
        ),
        pytest.param(
            0.25,
            request(thresholds=(None, 2)),
            3,
            0,
            False,
            ["3 recipients at 0.30"],
            id="held-short-a-person-chooses",
        ),
        pytest.param(0.25, request(dry_run=True), 3, 0, False, [], id="a-dry-run-only-tells"),
    ],
)
def test_money_and_approval_applied_to_the_plan(
    credits: float,
    req: pl.PlanRequest,
    sent: int,
    rejected: int,
    stopped: bool,
    held: list[str],
) -> None:
    a = attempt(rows_of(A, B, C), req, credits=credits)
    assert sum(len(c.numbers) for c in a.plan) == sent
    assert reasons(a.rows).count(None) == sent
    limit = BUDGET_EXCEEDED if req.max_cost is not None else INSUFFICIENT_CREDITS
    assert reasons(a.rows).count(limit) == rejected
    assert a.stopped is stopped and a.held == held
    assert a.money.recipients == 3 and a.money.price == pytest.approx(0.10)


def test_a_resumed_campaign_is_priced_at_what_the_gateway_charged() -> None:
    ledger = Ledger(price=0.20)
    earlier = [chunk(0, (A,), ChunkState.sent, cost=0.20)]
    a = attempt(rows_of(A, B), request(), existing=earlier, ledger=ledger)
    assert a.money.price == pytest.approx(0.20) and a.money.spent == pytest.approx(0.20)
    assert ("observed_price", None) in ledger.asked
    fresh = Ledger()
    attempt(rows_of(A, B), request(), ledger=fresh)
    assert ("observed_price", None) not in fresh.asked  # a first run has nothing to ask


def test_the_prepared_plan_lists_what_is_left_to_send() -> None:
    earlier = [chunk(0, (A,), ChunkState.failed), chunk(1, (B,), ChunkState.sent)]
    a = attempt(rows_of(A, B, C, D), request(), existing=earlier)
    out = pl.prepared(
        a, request(), rows_path="p", columns=["phone"], credits=9.0, currency=None, first_credits=10
    )
    assert out.chunk_indices == [0, 2] and out.to_send == 3  # A again, then C and D together
    assert (out.credits_before, out.credits_now, out.currency) == (10, 9.0, "EUR")
    assert not out.dry_run and out.dry_plan == []
    held = attempt(rows_of(A, B, C, D), request(thresholds=(None, 0)), existing=earlier)
    dry = pl.prepared(
        held, request(), rows_path="p", columns=[], credits=9.0, currency="EUR", first_credits=9
    )
    assert dry.dry_run and dry.chunk_indices == []
    assert [(p["index"], p["size"]) for p in dry.dry_plan] == [(0, 1), (2, 2)]
