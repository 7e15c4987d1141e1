"""The shape every source of recipients gives, and what refuses an input before it is read.

A DataFrame whose columns keep their original names and whose values are all strings (``""``
when missing), in the source's row order, indexed 0..n-1 (``_tidy_frame``); ``RecipientsError``,
the one error of the package; the checks of the bounds in ``limits.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.errors import OperatorError
from tasks.numbers import mask_numbers_in_text
from tasks.recipients import limits


class RecipientsError(OperatorError):
    """Bad input or source: str(exc) is ONE clear line for the operator (no traceback needed,
    no password, phone numbers masked)."""

    def __init__(self, message: str) -> None:
        # Masked here, once, so no message can forget it: driver errors quote values, and
        # paths or cells may be numbers.
        super().__init__(mask_numbers_in_text(message))


_UNNAMED = re.compile(r"Unnamed: \d+")


def _check_file(path: Path, *, allow_empty: bool = False) -> None:
    try:
        if not path.exists():
            raise RecipientsError(f"file not found: {path}")
        if path.is_dir():
            raise RecipientsError(f"{path} is a directory, not a file")
        if not path.is_file():
            raise RecipientsError(f"{path} is not a regular file")
        if not allow_empty and path.stat().st_size == 0:
            raise RecipientsError(f"{path} is empty (0 bytes)")
    except OSError as exc:
        raise RecipientsError(f"cannot read {path}: {exc.strerror or exc}") from None


def _tidy_frame(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Clean header names, drop what a spreadsheet export leaves behind, refuse an empty table."""
    names: list[str] = []
    unnamed: list[bool] = []
    for position, raw in enumerate(frame.columns):
        name = str(raw).strip()
        is_unnamed = name == "" or _UNNAMED.fullmatch(name) is not None
        names.append(f"Unnamed: {position}" if is_unnamed else name)
        unnamed.append(is_unnamed)
    frame.columns = pd.Index(_dedupe(names))
    empty_unnamed = [
        name
        for name, flag in zip(frame.columns, unnamed, strict=True)
        if flag and not (frame[name] != "").any()
    ]
    if empty_unnamed:
        frame = frame.drop(columns=empty_unnamed)
    if frame.shape[1] == 0:
        raise RecipientsError(f"{path} has no named columns")
    # Lines of bare delimiters (";;;") or spaces are blank lines to a person: rows with empty
    # cells between rows, nothing at the end of the file.
    frame = frame.iloc[: _filled_length(frame)]
    if frame.empty:
        raise RecipientsError(f"{path} has a header but no data rows")
    return frame.reset_index(drop=True)


def _filled_length(frame: pd.DataFrame, block: int = 4096) -> int:
    """Rows up to the last one that is not blank, looking from the end a block at a time (the
    last row of a file is seldom blank: a million rows need not all be looked at)."""
    end = len(frame)
    while end > 0:
        start = max(0, end - block)
        filled = np.flatnonzero(~_blank_rows(frame.iloc[start:end]))
        if filled.size:
            return start + int(filled[-1]) + 1
        end = start
        block *= 2  # a long blank tail: fewer, larger steps
    return 0


def _blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose cells are all empty or whitespace, looking only at rows still in doubt."""
    blank = np.ones(len(frame), dtype=bool)
    for name in frame.columns:
        in_doubt = np.flatnonzero(blank)
        if in_doubt.size == 0:
            break
        column = frame[name].iloc[in_doubt]
        blank[in_doubt] = ((column == "") | column.str.isspace()).to_numpy(dtype=bool)
    return blank


def _dedupe(names: Iterable[str]) -> list[str]:
    """Make names unique the way pandas does: phone, phone.1, phone.2."""
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}.{n}"
        seen.add(candidate)
        result.append(candidate)
    return result


def _check_width(width: int, path: Path, line: int) -> None:
    if width > limits.MAX_COLUMNS:
        raise RecipientsError(
            f"{path}: line {line:,} has {width:,} fields, more than the "
            f"{limits.MAX_COLUMNS:,} columns a list may have (numbers all on one line? "
            "give one per line)"
        )


def _too_many_cells(path: Path) -> RecipientsError:
    return RecipientsError(
        f"{path} has more than {limits.MAX_CELLS:,} cells: split it, "
        "or keep only the columns needed"
    )


def _rows_to_frame(rows: list[list[str]], path: Path) -> pd.DataFrame:
    if not rows:
        raise RecipientsError(f"{path}: the sheet is empty")
    header, data = rows[0], rows[1:]
    width = max(len(row) for row in rows)
    header = header + [""] * (width - len(header))
    columns = {i: [row[i] if i < len(row) else "" for row in data] for i in range(width)}
    frame = pd.DataFrame(columns, dtype=str)
    frame.columns = pd.Index(header)
    return _tidy_frame(frame, path)


def _first_line(value: object) -> str:
    for line in str(value).splitlines():
        if line.strip():
            return line.strip()
    return ""
