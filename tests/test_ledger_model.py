"""The ledger's pure rules (``tasks.ledger.model``), without a database: what a claim decides,
what it refuses on money, what it writes, and the chunk's tag; and that the nouns import
without SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import chunk_row
from hypothesis import given
from hypothesis import strategies as st

from tasks.ledger.model import (
    ChunkRow,
    ClaimAction,
    ClaimRequest,
    budget_refusal,
    chunk_from_row,
    chunk_tag,
    claim_values,
    decide_claim,
    not_before,
)
from tasks.outcomes import ChunkState

A = ClaimAction
S = ChunkState
NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
ENDS = timedelta(minutes=2)


def row(**changes: Any) -> ChunkRow:
    base: dict[str, Any] = {"numbers": ("+33611000001", "+33611000002"), "state": S.pending}
    return chunk_row(campaign_id="c", tag=chunk_tag("c", 0), **{**base, **changes})


def request(now: datetime = NOW) -> ClaimRequest:
    return ClaimRequest("c", 0, "me", "tok", now, 0.05, ends_within=ENDS)


# -- the claim decision, as a table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "same_claim", "holder_alive", "halted", "expected"),
    [
        (S.sent, False, False, False, A.SKIP),
        (S.sent, False, False, True, A.SKIP),
        (S.cancelled, False, True, False, A.SKIP),
        (S.sending, True, True, False, A.SEND),  # our own claim, its commit lost, retried
        (S.sending, False, True, False, A.BUSY),  # another live run holds it
        (S.sending, False, False, False, A.RECONCILE),  # its holder died: it may have landed
        (S.sending, False, False, True, A.RECONCILE),  # halted, but it may have landed
        (S.in_doubt, False, False, False, A.RECONCILE),
        (S.in_doubt, False, False, True, A.RECONCILE),
        (S.pending, False, False, False, A.SEND),
        (S.failed, False, False, False, A.SEND),  # nothing landed: a rerun sends it
        (S.pending, False, False, True, A.SKIP),  # a halted campaign takes no new chunk
        (S.failed, False, False, True, A.SKIP),
    ],
)
def test_decide_claim_over_every_state(
    state: str, same_claim: bool, holder_alive: bool, halted: bool, expected: ClaimAction
) -> None:
    got = decide_claim(state, same_claim=same_claim, holder_alive=holder_alive, halted=halted)
    assert got is expected


@pytest.mark.parametrize(
    ("spent", "mine", "reserve", "max_cost", "credits", "reason"),
    [
        (0.0, 0.0, 1.0, None, None, None),
        (1.0, 0.0, 1.0, 2.0, None, None),  # exactly at the cap is allowed
        (1.5, 0.0, 1.0, 2.0, None, "budget_exceeded"),
        (0.0, 4.0, 1.0, None, 5.0, None),
        (0.0, 4.5, 1.0, None, 5.0, "insufficient_credits"),
        (9.0, 0.5, 1.0, 20.0, 5.0, None),  # earlier runs' spending is not this run's credits
        (19.5, 4.5, 1.0, 20.0, 5.0, "budget_exceeded"),  # the cap is said first
    ],
)
def test_budget_refusal_table(
    spent: float,
    mine: float,
    reserve: float,
    max_cost: float | None,
    credits: float | None,
    reason: str | None,
) -> None:
    got = budget_refusal(
        spent=spent, mine=mine, reserve=reserve, max_cost=max_cost, credits=credits
    )
    assert (got[0] if got else None) == reason


def test_a_budget_refusal_says_the_projected_cost_and_the_bound() -> None:
    assert budget_refusal(spent=1.5, mine=0, reserve=1, max_cost=2, credits=None) == (
        "budget_exceeded",
        "projected cost 2.50 > max_cost 2.00",
    )
    assert budget_refusal(spent=0, mine=4.5, reserve=1, max_cost=None, credits=5) == (
        "insufficient_credits",
        "projected cost 5.50 > credits 5.00",
    )


# -- what a claim writes, as a table --------------------------------------------------------------

EARLIER = NOW - timedelta(minutes=30)
RECORDED = NOW - timedelta(minutes=10)


@pytest.mark.parametrize(
    ("action", "recorded_doubt", "claimed_at", "updated_at", "doubt_from"),
    [
        # A fresh send may have landed from the moment it can end at the latest.
        (A.SEND, None, None, None, NOW + ENDS),
        (A.SEND, RECORDED, EARLIER, EARLIER, NOW + ENDS),  # an old doubt is not this send's
        # A reconciled chunk keeps the doubt of the earlier send...
        (A.RECONCILE, RECORDED, EARLIER, EARLIER, RECORDED),
        # ...else the latest its holder would have given up...
        (A.RECONCILE, None, EARLIER, RECORDED, EARLIER + ENDS),
        # ...else, on the oldest rows, when the chunk was last written, else now.
        (A.RECONCILE, None, None, RECORDED, RECORDED),
        (A.RECONCILE, None, None, None, NOW),
    ],
)
def test_claim_values_table(
    action: ClaimAction,
    recorded_doubt: datetime | None,
    claimed_at: datetime | None,
    updated_at: datetime | None,
    doubt_from: datetime,
) -> None:
    before = row(state=S.in_doubt, attempts=2, doubt_from=recorded_doubt, updated_at=updated_at)
    got = claim_values(before, action, request(), claimed_at=claimed_at, reserve=0.1)
    assert got == {
        "state": S.sending,
        "owner": "me",
        "claim_token": "tok",
        "claimed_at": NOW,
        "doubt_from": doubt_from,
        "reserved_cost": 0.1,
        "attempts": 3,
        "updated_at": NOW,
        "reason": None,
        "detail": None,
    }


def test_a_fresh_claims_doubt_is_rounded_up_to_the_second() -> None:
    now = NOW + timedelta(microseconds=1)
    got = claim_values(row(), A.SEND, request(now), claimed_at=None, reserve=0.1)
    assert got["doubt_from"] == NOW + ENDS + timedelta(seconds=1)


@pytest.mark.parametrize("action", [A.SKIP, A.BUSY])
def test_a_claim_that_takes_nothing_writes_nothing(action: ClaimAction) -> None:
    with pytest.raises(ValueError, match="writes nothing"):
        claim_values(row(), action, request(), claimed_at=None, reserve=0.0)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOW, NOW),
        (NOW + timedelta(microseconds=1), NOW + timedelta(seconds=1)),
        (NOW + timedelta(microseconds=999_999), NOW + timedelta(seconds=1)),
    ],
)
def test_not_before_never_rounds_down(moment: datetime, expected: datetime) -> None:
    assert not_before(moment) == expected


# -- the chunk's tag and row ----------------------------------------------------------------------


def test_a_chunk_tag_is_stable_across_versions() -> None:
    # Tags are in the gateway's records and in every existing ledger: never change them.
    assert chunk_tag("demo-20250107-103012-ab31", 7) == "2ae058990642-000007"
    assert chunk_tag("c1", 0) == "d0f631ca1ddb-000000"


@given(
    st.text(min_size=1, max_size=120),
    st.integers(min_value=0, max_value=999_999),
    st.integers(min_value=0, max_value=999_999),
)
def test_a_chunk_tag_fits_the_gateway_and_tells_chunks_apart(
    campaign_id: str, index: int, other: int
) -> None:
    tag = chunk_tag(campaign_id, index)
    assert len(tag) <= 20 and tag == tag.lower() and " " not in tag
    assert (chunk_tag(campaign_id, other) == tag) is (other == index)


def test_a_row_read_from_the_database_becomes_a_chunk() -> None:
    naive = datetime(2026, 3, 2, 10, 0)  # SQLite hands datetimes back without their zone
    read = SimpleNamespace(
        **{**row().__dict__, "numbers": "+33611000001,,+33611000002", "attempts": None},
    )
    read.refused = json.dumps({"+33611000003": "code 9"})
    read.held = None
    read.doubt_from, read.updated_at = naive, None
    got = chunk_from_row(read)
    assert got.numbers == ("+33611000001", "+33611000002") and got.size == 2
    assert got.refused == {"+33611000003": "code 9"} and got.held == {}
    assert got.doubt_from == naive.replace(tzinfo=UTC) and got.updated_at is None
    assert got.attempts == 0 and got.cost_estimated is False


# -- no SQLAlchemy needed -------------------------------------------------------------------------


def test_the_nouns_import_without_sqlalchemy() -> None:
    script = (
        "import sys\n"
        "sys.modules['sqlalchemy'] = None  # any import of it fails\n"
        "import tasks.ledger.model\n"
        "from tasks.ledger import ChunkPlan, ChunkRow, Claim, ClaimAction, owner_token\n"
        "try:\n"
        "    from tasks.ledger import Ledger\n"
        "except ImportError:\n"
        "    print('store needs sqlalchemy')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "store needs sqlalchemy"
