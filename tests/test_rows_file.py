"""The run's row file (``save_rows`` / ``load_rows``) gives back exactly the frame it was given:
the report and the follow-up read every row's number and reason from it."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import chunk_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import accounting, rows_file
from tasks import row_columns as cols
from tasks.ledger.model import ChunkRow
from tasks.outcomes import DUPLICATE, ChunkState


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _round_trip(rows: pd.DataFrame) -> pd.DataFrame:
    return rows_file.load_rows(rows_file.save_rows(rows, "c1", "run1"))


def test_a_campaigns_rows_come_back_as_they_were_with_shared_numbers_shared() -> None:
    n = 3000
    phones = [f"+3361234{i:04d}" if i % 3 else f"06 12 34 {i:04d}" for i in range(n)]
    e164 = np.array([p if p.startswith("+") else None for p in phones], dtype=object)
    e164[7] = "+33600000007"  # a number made by the cleaner, not the source's own string
    rows = pd.DataFrame(
        {
            "phone": phones,
            "name": [f"client {i}\x00\n\x1f" if i == 5 else f"client {i}" for i in range(n)],
            cols.ROW: range(1, n + 1),
            cols.E164: e164,
            cols.TERRITORY: ["FR"] * n,
            cols.REASON: [None] * (n - 1) + ["duplicate"],
        }
    )
    back = _round_trip(rows)
    pd.testing.assert_frame_equal(back, rows)
    # the E.164 that is the source's text stays one object with it (memory after loading)
    assert back[cols.E164].iloc[1] is back["phone"].iloc[1]


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
    rows = pd.DataFrame({"cell": values, "copy": values, cols.ROW: range(len(values))})
    pd.testing.assert_frame_equal(_round_trip(rows), rows)


def test_a_plain_pickled_frame_still_reads(tmp_path: Path) -> None:
    rows = pd.DataFrame({"phone": ["+33612345678"], cols.REASON: [None]})
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(rows))  # what save_rows wrote before, and the erasure writes
    pd.testing.assert_frame_equal(rows_file.load_rows(str(path)), rows)


class _Recording(pickle.Unpickler):
    """An unpickler that notes every class or function a file names (module, name)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.named: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.named.add((module, name))
        return super().find_class(module, name)


def test_a_rows_file_names_no_module_of_ours_but_the_vocabulary(tmp_path: Path) -> None:
    # A pickle names the module of every class in it: a file that named a planning module
    # would stop loading when that module moves (files written before a release are read
    # after it by the report, the follow-up and the erasure). Only the enums of
    # tasks/outcomes.py may appear, and they must stay importable there.
    n = 1500  # large enough for the packed format
    rows = pd.DataFrame({"phone": [f"+3361234{i:04d}" for i in range(n)]})
    rows[cols.ROW] = range(1, n + 1)
    rows[cols.E164] = rows["phone"]
    rows[cols.TERRITORY] = "FR"
    rows[cols.REASON] = [DUPLICATE if i % 3 else None for i in range(n)]
    rows[cols.DETAIL] = None
    chunks = [_chunk(rows.loc[rows[cols.REASON].isna(), cols.E164].tolist())]
    filled = accounting.row_outcomes(rows, chunks, dry_run=False)
    saved = Path(rows_file.save_rows(filled, "c1", "run1"))
    plain = tmp_path / "plain.pkl"  # as the erasure rewrites a rows file
    plain.write_bytes(pickle.dumps(filled))
    for path in (saved, plain):
        with open(path, "rb") as fh:
            reader = _Recording(fh)
            reader.load()
        ours = {module for module, _ in reader.named if module.split(".")[0] in _OUR_PACKAGES}
        assert ours == {"tasks.outcomes"}, (path.name, ours)
    pd.testing.assert_frame_equal(rows_file.load_rows(str(saved)), filled)


_OUR_PACKAGES = {"tasks", "flows", "smspartner", "scripts"}


def _chunk(numbers: list[str]) -> ChunkRow:
    return chunk_row(0, tuple(numbers), ChunkState.sent)
