"""The accounting rules (``tasks/accounting.py``) on their own, no database: each row's outcome
from its reject reason or its chunk in the ledger, the counts, and the identity every run
enforces, ``loaded == sent + failed + sum(rejected)``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from helpers import chunk_row
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.accounting import Counts, check_identity, count_outcomes, row_outcomes
from tasks.ledger.model import ERASED, NOT_IN_INPUT, OPTED_OUT_SINCE, ChunkRow
from tasks.outcomes import (
    CAMPAIGN_CANCELLED,
    DRY_RUN,
    DUPLICATE,
    FAILED,
    GATEWAY_REJECTED,
    IN_DOUBT,
    INSUFFICIENT_CREDITS,
    NOT_PLANNED,
    OPTED_OUT,
    RECENTLY_SURVEYED,
    REJECTED,
    SENT,
    ChunkState,
)
from tasks.row_columns import DETAIL, E164, OUTCOME, REASON, ROW

A, B, C = "+33612345601", "+33612345602", "+33612345603"


chunk = chunk_row  # a ledger chunk of campaign c1


def frame(*rows: tuple[str | None, str | None]) -> pd.DataFrame:
    """Rows as planning leaves them: (E.164, reject reason), no detail yet."""
    return pd.DataFrame(
        {
            ROW: range(1, len(rows) + 1),
            E164: pd.Series([e for e, _ in rows], dtype=object),
            REASON: pd.Series([r for _, r in rows], dtype=object),
            DETAIL: pd.Series([None] * len(rows), dtype=object),
        }
    )


def only(rows: pd.DataFrame) -> tuple[Any, Any, Any]:
    [(outcome, reason, detail)] = rows[[OUTCOME, REASON, DETAIL]].itertuples(index=False)
    return outcome, _none(reason), _none(detail)


def _none(value: Any) -> Any:
    """None for a missing value (pandas may infer a text column and say NaN)."""
    return None if pd.isna(value) else value


# One accepted row (A) and what the ledger says of it -> (outcome, reason, detail).
ONE_ROW_CASES = [
    pytest.param([chunk(0, (A,), ChunkState.sent)], (SENT, None, None), id="sent"),
    pytest.param(
        [chunk(0, (A,), ChunkState.cancelled, detail="called off")],
        (REJECTED, CAMPAIGN_CANCELLED, None),
        id="cancelled-is-rejected-not-failed",
    ),
    pytest.param(
        [chunk(0, (A,), ChunkState.failed, reason=INSUFFICIENT_CREDITS, detail="code 11")],
        (FAILED, INSUFFICIENT_CREDITS, "code 11"),
        id="failed-keeps-reason-and-detail",
    ),
    pytest.param(
        [chunk(0, (A,), ChunkState.in_doubt)],
        (FAILED, IN_DOUBT, None),
        id="no-reason-says-the-state",
    ),
    pytest.param(
        [chunk(0, (), ChunkState.pending, refused={A: OPTED_OUT_SINCE})],
        (REJECTED, OPTED_OUT, OPTED_OUT_SINCE),
        id="withdrawn-since-planned",
    ),
    pytest.param(
        [chunk(0, (), ChunkState.sent, refused={A: ERASED})],
        (REJECTED, OPTED_OUT, ERASED),
        id="erased",
    ),
    pytest.param(
        [chunk(0, (), ChunkState.sent, refused={A: "refused by the gateway (code 9)"})],
        (REJECTED, GATEWAY_REJECTED, "refused by the gateway (code 9)"),
        id="gateway-refused",
    ),
    pytest.param(
        [chunk(0, (), ChunkState.sent, held={A: "other-campaign"})],
        (REJECTED, RECENTLY_SURVEYED, "held by campaign other-campaign (frequency cap)"),
        id="held-by-the-cap",
    ),
    pytest.param(
        [chunk(0, (A,), ChunkState.failed), chunk(1, (A,), ChunkState.sent)],
        (SENT, None, None),
        id="a-later-chunk-has-the-last-word",
    ),
    pytest.param(
        [
            chunk(0, (), ChunkState.pending, refused={A: NOT_IN_INPUT}),
            chunk(1, (A,), ChunkState.sent),
        ],
        (SENT, None, None),
        id="left-the-input-then-back-and-planned-anew",
    ),
    pytest.param([], (FAILED, NOT_PLANNED, None), id="accepted-in-no-chunk"),
]


@pytest.mark.parametrize(("chunks", "expected"), ONE_ROW_CASES)
def test_a_rows_outcome_comes_from_its_chunk(chunks: list[ChunkRow], expected: tuple) -> None:
    assert only(row_outcomes(frame((A, None)), chunks, dry_run=False)) == expected


@pytest.mark.parametrize(
    ("reason", "chunks", "dry_run", "expected"),
    [
        pytest.param(DUPLICATE, [], False, (REJECTED, DUPLICATE, None), id="rejected-before"),
        # a number rejected before planning keeps its reason, whatever a chunk says of it
        pytest.param(
            DUPLICATE,
            [chunk(0, (A,), ChunkState.sent)],
            False,
            (REJECTED, DUPLICATE, None),
            id="rejected-row-ignores-chunks",
        ),
        pytest.param(None, [], True, (REJECTED, DRY_RUN, None), id="dry-run-would-send"),
    ],
)
def test_rejected_and_dry_run_rows(
    reason: str | None, chunks: list[ChunkRow], dry_run: bool, expected: tuple
) -> None:
    assert only(row_outcomes(frame((A, reason)), chunks, dry_run=dry_run)) == expected


def test_rows_keep_their_order_and_the_callers_frame_is_left_as_it_was() -> None:
    rows = frame((A, None), (None, "not_a_number"), (B, None), (C, None))
    before = rows.copy(deep=True)
    chunks = [
        chunk(0, (C, A), ChunkState.sent),  # chunk order is not row order
        chunk(1, (B,), ChunkState.failed, reason=INSUFFICIENT_CREDITS),
    ]
    out = row_outcomes(rows, chunks, dry_run=False)
    assert out[OUTCOME].tolist() == [SENT, REJECTED, FAILED, SENT]
    reasons = [None if pd.isna(r) else r for r in out[REASON]]  # pandas infers str: NaN
    assert reasons == [None, "not_a_number", INSUFFICIENT_CREDITS, None]
    pd.testing.assert_frame_equal(rows, before)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param([], Counts(0, 0, 0, {}, {}), id="empty"),
        pytest.param(
            [(SENT, None), (SENT, None), (FAILED, IN_DOUBT), (REJECTED, DUPLICATE)],
            Counts(4, 2, 1, {DUPLICATE: 1}, {IN_DOUBT: 1}),
            id="mixed",
        ),
        pytest.param(
            [(REJECTED, OPTED_OUT), (REJECTED, DUPLICATE), (REJECTED, OPTED_OUT)],
            Counts(3, 0, 0, {DUPLICATE: 1, OPTED_OUT: 2}, {}),
            id="rejected-by-reason-sorted",
        ),
    ],
)
def test_count_outcomes(outcomes: list[tuple[str, str | None]], expected: Counts) -> None:
    rows = pd.DataFrame(
        {OUTCOME: [o for o, _ in outcomes], REASON: [r for _, r in outcomes]}, dtype=object
    )
    counts = count_outcomes(rows)
    assert counts == expected
    assert list(counts.rejected) == sorted(counts.rejected)


@pytest.mark.parametrize(
    ("counts", "holds"),
    [
        pytest.param(Counts(5, 2, 1, {DUPLICATE: 2}, {IN_DOUBT: 1}), True, id="balanced"),
        pytest.param(Counts(0, 0, 0, {}, {}), True, id="nothing"),
        pytest.param(Counts(5, 2, 1, {DUPLICATE: 1}, {}), False, id="a-row-lost"),
        pytest.param(Counts(3, 2, 1, {DUPLICATE: 1}, {}), False, id="a-row-twice"),
    ],
)
def test_check_identity(counts: Counts, holds: bool) -> None:
    if holds:
        check_identity(counts)
    else:
        with pytest.raises(AssertionError, match=f"loaded {counts.loaded} != sent"):
            check_identity(counts)


def test_count_outcomes_refuses_a_row_without_an_outcome() -> None:
    rows = pd.DataFrame({OUTCOME: [SENT, None], REASON: [None, None]}, dtype=object)
    with pytest.raises(AssertionError, match="accounting identity broken"):
        count_outcomes(rows)


# -- any mix: every row leaves with exactly one outcome --------------------------------------

NUMBERS = [f"+336123456{i:02d}" for i in range(12)]
STATES = list(ChunkState)
REFUSALS = [OPTED_OUT_SINCE, ERASED, NOT_IN_INPUT, "refused by the gateway (code 9)"]


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[pd.DataFrame, list[ChunkRow]]:
    numbers = draw(st.lists(st.sampled_from([*NUMBERS, None]), max_size=15))
    reasons = draw(
        st.lists(st.sampled_from([None, None, DUPLICATE]), min_size=len(numbers), max_size=15)
    )
    # a row without a number always has its reason (the cleaner's)
    pairs = [(e, r if e else "not_a_number") for e, r in zip(numbers, reasons, strict=False)]
    rows = frame(*pairs)
    chunks = []
    for index in range(draw(st.integers(0, 4))):
        mine = draw(st.lists(st.sampled_from(NUMBERS), unique=True, max_size=6))
        refused = draw(st.dictionaries(st.sampled_from(NUMBERS), st.sampled_from(REFUSALS)))
        held = draw(st.dictionaries(st.sampled_from(NUMBERS), st.just("other"), max_size=2))
        state = draw(st.sampled_from(STATES))
        chunks.append(chunk(index, tuple(mine), state, refused=refused, held=held))
    return rows, chunks


@settings(max_examples=300, deadline=None)
@given(ledgers(), st.booleans())
def test_any_mix_keeps_the_identity(ledger: tuple[pd.DataFrame, list], dry_run: bool) -> None:
    rows, chunks = ledger
    out = row_outcomes(rows, chunks, dry_run=dry_run)
    counts = count_outcomes(out)  # raises when the identity breaks
    assert counts.loaded == len(rows) == len(out)
    assert counts.sent + counts.failed + sum(counts.rejected.values()) == counts.loaded
    assert set(out[OUTCOME]) <= {SENT, FAILED, REJECTED}
    # a rejected or failed row says why; a sent one does not
    assert out.loc[out[OUTCOME] != SENT, REASON].notna().all()
    assert out.loc[out[OUTCOME] == SENT, REASON].isna().all()
    # rows rejected before planning keep their reason, whatever the ledger says
    before = rows[REASON].notna()
    assert (out.loc[before, REASON] == rows.loc[before, REASON]).all()
