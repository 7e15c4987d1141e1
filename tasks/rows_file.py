"""The run's rows file, I/O: the rows frame on disk between the plan, the report and the
follow-up.

``save_rows`` writes a run's rows (``rows.<run>.pkl``) atomically and publishes them as the
campaign's latest ``rows.pkl``; ``load_rows`` reads either back exactly; ``drop_run_rows``
removes a run's own file once reported. A file is never seen half-written, and a failed write
leaves nothing behind (it holds people's numbers).

Files written by earlier versions must keep loading: a pickle names the module of every class
in it. The rows hold only pandas and numpy objects and the vocabulary of ``tasks/outcomes.py``
(``tests/test_rows_file.py`` checks it), so moving this module, or any planning code, never
breaks a file on disk; moving ``tasks/outcomes.py``'s enums would.

It is NOT where the folders are chosen (``tasks/folders.py``), nor the frame's columns
(``tasks/row_columns.py``). No Prefect. Imported by the prepare and report steps, the
follow-up, the cancellation and the privacy tasks.
"""

from __future__ import annotations

import operator
import os
import pickle
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_object_dtype

from tasks.folders import state_dir
from tasks.plan import CampaignError


def save_rows(rows: pd.DataFrame, campaign_id: str, run: str = "") -> str:
    """Write this run's rows (``rows.<run>.pkl``: two runs of one campaign never report each
    other's rows) and publish them as the campaign's latest ``rows.pkl`` (the follow-up's), by a
    hard link where the file system allows it."""
    folder = state_dir(campaign_id)
    latest = folder / "rows.pkl"
    path = folder / f"rows.{run}.pkl" if run else latest
    # Never let a reader see a half-written file: write aside, then rename; and never leave a
    # half-written one behind (it holds people's numbers): a failure removes it.
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    link = latest.with_suffix(f".{os.getpid()}.{threading.get_ident()}.link")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as fh:
            pickle.dump(_packed(rows), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
        if path != latest:
            try:
                os.link(path, link)
            except OSError:
                shutil.copyfile(path, link)
            os.replace(link, latest)
    except OSError as exc:
        for left in (partial, link):
            left.unlink(missing_ok=True)
        if path != latest:
            path.unlink(missing_ok=True)  # this run's own file: nobody reads it without the run
        raise CampaignError(
            f"cannot write the campaign's rows in {folder} ({exc.strerror or type(exc).__name__})"
            ": nothing was sent; free some space (or fix the folder), then run the campaign again"
        ) from None
    return str(path)


def drop_run_rows(path: str) -> None:
    """A run's own rows, once reported (``rows.pkl`` keeps the latest for the follow-up)."""
    if Path(path).name != "rows.pkl":
        Path(path).unlink(missing_ok=True)


def load_rows(path: str) -> pd.DataFrame:
    with open(path, "rb") as fh:
        rows = pickle.load(fh)  # noqa: S301 - our own file, written by save_rows
    if isinstance(rows, tuple) and rows[:1] == (_PACKED,):
        rows = _unpacked(*rows[1:])
    assert isinstance(rows, pd.DataFrame)  # a plain frame too (older files, the erasure's)
    return rows


# A million strings cost pickle a memo entry and an opcode each, and as much again to read
# back: a column of distinct texts is written as one string with a separator instead, and a
# column that holds another's very string objects (the E.164 the source already had) as a mask
# on that column, which keeps them one object in memory after loading too.
_PACKED = "rows packed v1"
_SEPARATORS = ("\x00", "\x1f", "\n")
_PROBE = 1000  # values looked at to tell a column of distinct texts from one of repeats


def _packed(rows: pd.DataFrame) -> tuple[Any, ...] | pd.DataFrame:
    """What save_rows pickles: (marker, the other columns as a frame, the column order, the
    packed columns), or the frame itself when nothing is worth packing."""
    if not rows.columns.is_unique:
        return rows
    packed: dict[Any, tuple[Any, ...]] = {}
    texts: dict[Any, np.ndarray] = {}
    for name, column in rows.items():
        if not _object_backed(column.dtype) or len(column) < _PROBE:
            continue
        values = column.to_numpy(dtype=object)
        if (same := _same_as(values, texts)) is not None:
            other, mask = same
            packed[name] = (column.dtype, "same", other, np.packbits(mask), values[~mask])
        elif (text := _joined(values)) is not None:
            packed[name] = (column.dtype, "text", *text)
            texts[name] = values
    if not packed:
        return rows
    return (_PACKED, rows.drop(columns=list(packed)), rows.columns, packed)


def _object_backed(dtype: Any) -> bool:
    """Columns of Python objects: object, and pandas' str dtype kept in Python strings."""
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "python"
    return is_object_dtype(dtype)


def _same_as(values: np.ndarray, texts: Mapping[Any, np.ndarray]) -> tuple[Any, np.ndarray] | None:
    """(a packed column, where ``values`` holds its very objects) when it mostly does."""
    for name, other in texts.items():
        probe = [a is b for a, b in zip(values[:_PROBE], other[:_PROBE], strict=True)]
        if sum(probe) * 2 > _PROBE:
            mask = np.fromiter(map(operator.is_, values, other), dtype=bool, count=len(values))
            return name, mask
    return None


def _joined(values: np.ndarray) -> tuple[str, str] | None:
    """(separator, the values joined by it) for distinct objects that are all exactly str."""
    if len({id(v) for v in values[:_PROBE]}) < _PROBE:
        return None  # repeated objects: one pickle memo entry each, already cheap
    strings = values.tolist()
    if set(map(type, strings)) != {str}:
        return None
    for sep in _SEPARATORS:
        joined = sep.join(strings)
        if joined.count(sep) == len(strings) - 1:  # no value holds the separator
            return sep, joined
    return None


def _unpacked(rest: pd.DataFrame, columns: pd.Index, packed: dict[Any, Any]) -> pd.DataFrame:
    rows = rest.copy(deep=False)
    texts: dict[Any, np.ndarray] = {}
    for name, (dtype, kind, *parts) in packed.items():
        if kind == "text":
            sep, joined = parts
            values = np.empty(len(rest), dtype=object)
            values[:] = joined.split(sep)
            texts[name] = values
        else:
            other, bits, others = parts
            mask = np.unpackbits(bits, count=len(rest)).astype(bool)
            values = np.empty(len(rest), dtype=object)
            values[mask] = texts[other][mask]
            values[~mask] = others
        # The same objects in the column, whichever of the two dtypes it had.
        rows[name] = pd.Series(values, index=rest.index, dtype=dtype, copy=False)
    rows = rows[list(columns)]
    rows.columns = columns
    return rows


__all__ = ["drop_run_rows", "load_rows", "save_rows"]
