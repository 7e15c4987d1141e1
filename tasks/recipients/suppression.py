"""A local opt-out list: its column of numbers, with or without a header, failing closed.

One entry that gives no phone number, or no entry at all, refuses the whole list (naming the
rows, never their text): a person on an opt-out list must never be texted, and an entry
silently skipped is such a person. Entries are read by ``tasks.numbers.numbers_in_entries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.numbers import numbers_in_entries
from tasks.recipients.columns import _columns, find_phone_column
from tasks.recipients.excel import EXCEL_SUFFIXES, _excel_rows, _xls_error
from tasks.recipients.frame import RecipientsError, _check_file
from tasks.recipients.text import _text_rows


@dataclass(frozen=True)
class SuppressionList:
    """A local opt-out list as read: its numbers, and counts. Nothing of the file's text (no
    header, no cell): it may be logged as it is."""

    numbers: frozenset[str]  # E.164
    read: int  # entries (non-blank rows below the header): each gave a number, or it refused
    column: int  # position of the column of numbers, 1-based (1 for a one-column list)


# Row numbers named in a message, before "and N others".
_ROWS_SHOWN = 5


def load_suppression_list(path: str | Path) -> SuppressionList:
    """The numbers never to text, from a CSV (any delimiter and encoding) or .xlsx list, with or
    without a header line (a first row with no digit at all, shaped like column names). Its
    column of numbers is the one a usual phone header names, else the one whose cells mostly
    give numbers; other columns are ignored.

    Each entry is read like a recipient cell (``tasks.numbers``: national or international
    French formats, separators, digits of any script), foreign numbers and landlines included,
    plus what people add in such lists (two numbers in a cell, ``(STOP)``, ``ext 1``).

    Fails closed: RecipientsError (one line, never any of the file's text) for a missing or
    unreadable file, a file with no column of numbers, an empty or header-only list, and a
    list with any entry that gives no phone number (a row whose cell of numbers is empty
    included; the message names those rows as a spreadsheet numbers them). Blank rows are
    ignored."""
    file = Path(path)
    listed = read_number_list(file)
    if not listed.entries:
        what = "has a header line but no phone number below it" if listed.header else "is empty"
        raise RecipientsError(
            f"refusing the suppression list {file}: it {what}; give a list with the phone "
            "numbers never to text, one per row, or no suppression list"
        )
    texts = [text for _, text in listed.entries]
    found = numbers_in_entries(pd.Series(texts, dtype=object))
    bad = [row for (row, _), numbers in zip(listed.entries, found, strict=True) if not numbers]
    if bad:
        raise RecipientsError(_unreadable_rows_message(file, bad, listed))
    numbers = frozenset(n for group in found for n in group)
    return SuppressionList(numbers, len(texts), listed.position)


def _unreadable_rows_message(path: Path, rows: Sequence[int], listed: _NumberColumn) -> str:
    """One line naming the rows (first few, then a count), never what they hold."""
    shown = [str(row) for row in rows[:_ROWS_SHOWN]]
    others = len(rows) - len(shown)
    if others:
        named = f"rows {', '.join(shown)} and {others:,} other{'s' if others > 1 else ''}"
    elif len(shown) == 1:
        named = f"row {shown[0]}"
    else:
        named = f"rows {', '.join(shown[:-1])} and {shown[-1]}"
    verb, them = ("holds", "that row") if len(rows) == 1 else ("hold", "those rows")
    column = f" in column {listed.position}" if listed.width > 1 else ""
    hint = ""
    if rows[0] == listed.first_row:
        hint = "; a header line holds no digits"
    return (
        f"refusing the suppression list {path}: {named} {verb} no readable phone number{column}, "
        f"and a person on the list could be texted; correct or delete {them} (one phone number "
        f"per row, in any usual format{hint}), then run again"
    )


# Rows read to find a headerless list's column of numbers: enough to tell, cheap on wide files.
_DETECTION_ROWS = 500
# A header cell longer than this is a line of text, not a column name.
_HEADER_CELL_CHARS = 64


@dataclass(frozen=True)
class _NumberColumn:
    """A number list's column of numbers, as read: nothing here is quoted in a message but
    through row and column numbers."""

    entries: list[tuple[int, str]]  # (file row, 1-based; its cell, stripped) per data row
    position: int  # the column, 1-based (0 when there is no data row)
    width: int  # the list's columns
    header: bool  # whether the first non-blank row is a header line
    first_row: int  # the file row of the first non-blank row (0 when there is none)


def read_number_list(path: Path) -> _NumberColumn:
    """A number list's column of numbers: one entry per non-blank row below the header (its
    cell there, ``""`` when that cell is empty), with the row's number in the file as a
    spreadsheet shows it. Blank rows are skipped.

    The first non-blank row is a header when it looks like column names (``_is_header``):
    no digit at all, so that a mistyped number is never taken for one. A usual phone header
    names the column; otherwise the column is the one whose cells mostly give numbers, read
    as the entries themselves will be: not "the first with six digits", which picks a customer
    id. RecipientsError when no column does (never quoting the file).
    """
    _check_file(path, allow_empty=True)
    try:
        if path.stat().st_size == 0:
            return _NumberColumn([], 0, 0, header=False, first_row=0)
    except OSError as exc:
        raise RecipientsError(f"cannot read {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        rows, first_number = _excel_rows(path, sheet=None)
    elif suffix == ".xls":
        raise _xls_error(path)
    else:
        rows, first_number = _text_rows(path), 1
    numbered = [
        (number, [cell.strip() for cell in row])
        for number, row in enumerate(rows, start=first_number)
        if any(cell.strip() for cell in row)
    ]
    if not numbered:
        return _NumberColumn([], 0, 0, header=False, first_row=0)
    width = max(len(row) for _, row in numbered)
    first_row, first = numbered[0]
    has_header = _is_header(first)
    data = numbered[1:] if has_header else numbered
    if not data:
        return _NumberColumn([], 0, width, has_header, first_row)
    index: int | None = None
    if has_header:
        try:
            index = first.index(find_phone_column(first))
        except RecipientsError:
            index = None
    if index is None:
        index = _column_of_numbers([row for _, row in data[:_DETECTION_ROWS]])
    if index is None:
        raise RecipientsError(
            f"no column of {path} holds phone numbers ({_columns(width)}, {len(numbered):,} "
            f"non-blank row{'s' if len(numbered) > 1 else ''}): an opt-out list needs one phone "
            "number per row, with or without a header line such as phone or Téléphone; is it "
            "the right file?"
        )
    entries = [(number, row[index] if index < len(row) else "") for number, row in data]
    return _NumberColumn(entries, index + 1, width, has_header, first_row)


def _is_header(row: Sequence[str]) -> bool:
    """Whether a list's first non-blank row is a header line: short cells, none with a digit
    (of any script), some with a letter."""
    cells = [cell for cell in row if cell]
    return (
        all(len(cell) <= _HEADER_CELL_CHARS for cell in cells)
        and not any(ch.isdigit() for cell in cells for ch in cell)
        and any(ch.isalpha() for cell in cells for ch in cell)
    )


def _column_of_numbers(rows: list[list[str]]) -> int | None:
    """The column whose non-empty cells most often give a number, if they mostly do (at least
    half of them; the leftmost on a tie)."""
    width = max((len(row) for row in rows), default=0)
    best: tuple[float, int] | None = None
    for i in range(width):
        cells = [row[i] for row in rows if i < len(row) and row[i]]
        if not cells:
            continue
        used = sum(1 for found in numbers_in_entries(pd.Series(cells, dtype=object)) if found)
        share = used / len(cells)
        if share >= 0.5 and (best is None or share > best[0]):
            best = (share, i)
    return None if best is None else best[1]
