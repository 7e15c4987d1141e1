"""The run's row file (``save_rows`` / ``load_rows``) gives back exactly the frame it was given:
the report and the follow-up read every row's number and reason from it."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import campaign as cp


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _round_trip(rows: pd.DataFrame) -> pd.DataFrame:
    return cp.load_rows(cp.save_rows(rows, "c1", "run1"))


def test_a_campaigns_rows_come_back_as_they_were_with_shared_numbers_shared() -> None:
    n = 3000
    phones = [f"+3361234{i:04d}" if i % 3 else f"06 12 34 {i:04d}" for i in range(n)]
    e164 = np.array([p if p.startswith("+") else None for p in phones], dtype=object)
    e164[7] = "+33600000007"  # a number made by the cleaner, not the source's own string
    rows = pd.DataFrame(
        {
            "phone": phones,
            "name": [f"client {i}\x00\n\x1f" if i == 5 else f"client {i}" for i in range(n)],
            cp.ROW: range(1, n + 1),
            cp.E164: e164,
            cp.TERRITORY: ["FR"] * n,
            cp.REASON: [None] * (n - 1) + ["duplicate"],
        }
    )
    back = _round_trip(rows)
    pd.testing.assert_frame_equal(back, rows)
    # the E.164 that is the source's text stays one object with it (memory after loading)
    assert back[cp.E164].iloc[1] is back["phone"].iloc[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.text(max_size=12), min_size=1, max_size=40),
    n=st.integers(1000, 1300),  # the file packs columns of a thousand rows or more
    with_none=st.booleans(),
)
def test_any_texts_come_back_exactly(texts: list[str], n: int, with_none: bool) -> None:
    # any text, separators and NULs included, each cell its own string object
    values: list[str | None] = [texts[i % len(texts)] + "".join(["", str(i)]) for i in range(n)]
    if with_none:
        values[0] = None
    rows = pd.DataFrame({"cell": values, "copy": values, cp.ROW: range(len(values))})
    pd.testing.assert_frame_equal(_round_trip(rows), rows)


def test_a_plain_pickled_frame_still_reads(tmp_path: Path) -> None:
    rows = pd.DataFrame({"phone": ["+33612345678"], cp.REASON: [None]})
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(rows))  # what save_rows wrote before, and the erasure writes
    pd.testing.assert_frame_equal(cp.load_rows(str(path)), rows)
