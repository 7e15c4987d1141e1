"""Report files are safe to open in a spreadsheet and keep what the operator needs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flows.survey_campaign import RecipientSource, send_survey_campaign
from tasks.reporting import artifact_key, write_csv

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_no_written_cell_can_start_a_formula(tmp_path_factory: Any, cells: list[str]) -> None:
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    write_csv(path, ["a"] * len(cells), [cells])
    with path.open(newline="", encoding="utf-8") as fh:
        header, row = list(csv.reader(fh))
    for written, original in zip(row, cells, strict=True):
        assert not written.startswith(DANGEROUS)
        assert written in (original, "'" + original)  # nothing else is changed


@given(st.text(min_size=1, max_size=80))
def test_artifact_keys_use_only_lowercase_letters_digits_and_dashes(campaign_id: str) -> None:
    key = artifact_key(campaign_id, "summary")
    assert key.endswith("summary")
    assert all(ch in "abcdefghijklmnopqrstuvwxyz0123456789-" for ch in key)


def test_rejects_csv_neutralises_formulas_from_the_source(
    campaign_env: Path, simulator: Any
) -> None:
    source = campaign_env / "r.csv"
    source.write_text(
        "name;phone\n"
        '"=HYPERLINK(""http://evil.example"")";=1+1\n'
        "@SUM(A1);0612345678\n"
        "Anne;-0612345679\n",
        encoding="utf-8",
    )
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(source)),
        campaign_id="formulas",
        return_state=True,
    )
    assert state.is_completed(), state.message
    rejects = campaign_env / "data" / "reports" / "formulas" / "rejects.csv"
    with rejects.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith(DANGEROUS) for cell in cells)
    assert '\'=HYPERLINK("http://evil.example")' in cells and "'=1+1" in cells
