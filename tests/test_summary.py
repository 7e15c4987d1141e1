"""The typed campaign summary keeps the JSON line's contract: keys, order, types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tasks.accounting import Counts
from tasks.reporting import CampaignSummary, build_summary, read_summary

# The send command's JSON line, key by key, in order (README: "The JSON summary line").
CONTRACT = [
    "campaign_id",
    "survey_id",
    "loaded",
    "sent",
    "failed",
    "rejected",
    "failed_reasons",
    "nb_sms",
    "cost",
    "cost_estimated",
    "currency",
    "slots",
    "sent_at_once",
    "chunks",
    "territories",
    "slot_explanations",
    "slot_plan",
    "credits_before",
    "credits_after",
    "dry_run",
    "duration_seconds",
    "report_dir",
]
# Issue 23's keys, always written, after every older one (an older reader's order holds).
AUDIENCE = ["pressure_skips", "witnesses", "surveys"]


def _built(dry_run: bool) -> CampaignSummary:
    import pandas as pd

    from tasks.row_columns import OUTCOME, TERRITORY

    rows = pd.DataFrame({TERRITORY: ["FR", "FR"], OUTCOME: ["rejected", "rejected"]})
    return build_summary(
        campaign_id="c1",
        survey_id="s1",
        counts=Counts(2, 0, 0, {"dry_run" if dry_run else "duplicate": 2}, {}),
        chunks=[],
        rows=rows,
        decisions={"FR": "window open"},
        credits_before=10,
        credits_after=None,
        currency="EUR",
        dry_run=dry_run,
        duration=1.23456,
        report_dir=Path("data/reports/c1"),
        estimated_cost=0.09 if dry_run else None,
    )


def test_a_built_summary_writes_the_contract_keys_in_order() -> None:
    summary = _built(dry_run=False)
    assert list(summary.as_json()) == [*CONTRACT, *AUDIENCE]
    summary.send_seconds = 0.5
    assert list(summary.as_json()) == [*CONTRACT, "send_seconds", *AUDIENCE]


def test_a_dry_run_adds_what_it_would_send_after_the_report_folder() -> None:
    summary = _built(dry_run=True)
    summary.send_seconds = 0.0
    summary.plan = [{"index": 0, "territory": "FR", "slot": None, "size": 2}]
    keys = list(summary.as_json())
    assert keys == [*CONTRACT, "would_send", "estimated_cost", "send_seconds", "plan", *AUDIENCE]
    assert summary.would_send == 2 and summary.estimated_cost == 0.09


def test_numbers_keep_their_json_types() -> None:
    # nothing sent: the cost is the integer 0, as the line always said; credits stay as given
    line = _built(dry_run=False).line()
    assert '"cost": 0,' in line and '"credits_before": 10,' in line
    assert '"duration_seconds": 1.235' in line
    assert json.loads(line)["chunks"] == {}


def test_reading_keeps_unknown_keys_and_an_old_summary_stays_old(tmp_path: Path) -> None:
    old = {"campaign_id": "c0", "loaded": 1, "sent": 1, "failed": 0, "rejected": {}, "new": [1]}
    (tmp_path / "summary.json").write_text(json.dumps(old), encoding="utf-8")
    summary = read_summary(tmp_path, "c0")
    assert summary.complete and summary.as_json() == old  # no slot_plan invented for it


def test_a_missing_or_garbled_summary_reads_as_a_bare_one(tmp_path: Path) -> None:
    bare = read_summary(tmp_path, "c2")
    assert not bare.complete and bare.as_json() == {"campaign_id": "c2"}
    for text in ("{", "[1, 2]", '{"campaign_id": "c2", "loaded": "many"}'):
        (tmp_path / "summary.json").write_text(text, encoding="utf-8")
        assert read_summary(tmp_path, "c2").as_json() == {"campaign_id": "c2"}


_counts = st.dictionaries(st.sampled_from(["duplicate", "invalid", "opted_out"]), st.integers(0, 9))


@given(
    loaded=st.integers(0, 10**7),
    cost=st.one_of(st.integers(0, 10**6), st.floats(0, 10**6, allow_nan=False)),
    rejected=_counts,
    credits=st.one_of(st.none(), st.integers(0, 10**6), st.floats(0, 10**6, allow_nan=False)),
    dry=st.booleans(),
)
def test_a_summary_reads_back_as_it_was_written(
    loaded: int, cost: float, rejected: dict[str, int], credits: Any, dry: bool
) -> None:
    data: dict[str, Any] = {
        "campaign_id": "c",
        "loaded": loaded,
        "rejected": rejected,
        "cost": cost,
        "credits_before": credits,
        "dry_run": dry,
    }
    line = CampaignSummary.model_validate(data).line()
    assert line == json.dumps(data, ensure_ascii=False)
    assert CampaignSummary.model_validate_json(line).line() == line
