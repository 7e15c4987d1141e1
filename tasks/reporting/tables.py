"""Tables for people to open by a double-click: a CSV for any tool and an .xlsx beside it.

What a French Excel (and LibreOffice) needs from a CSV opened by a double-click:

* UTF-8 **with a BOM**, or accents come out as ``HÃ©lÃ¨ne``;
* ``;`` between values (the list separator of a French Windows; a comma there is the decimal
  separator) and a decimal comma in numbers, so that a cost is a number there;
* nothing it would run as a formula (OWASP "CSV injection"), and nothing it would silently turn
  into another value (``+33612345678`` shown as ``3,36E+10``, ``0612345678`` losing its 0).

A cell at risk gets one invisible ZERO WIDTH SPACE (U+200B) in front, where OWASP suggests a
``'``: a French Excel shows that quote in front of every ``+33`` number, while U+200B is not
shown, makes the cell text (neither a formula nor a number), and is not trimmed away by
spreadsheets or ``str.strip()`` the way a tab or a space is. A cell is at risk when it starts
with ``=``, ``+``, ``-``, ``@`` (or their full-width forms) once leading blanks and quotes are
skipped, when it starts with a control character (tab, CR, LF), or when it is made of digits
that Excel would read as a number and show differently (a leading zero, more than 15 digits).
:func:`read_table` takes the mark off again.

A CSV cannot say "this cell is text", so :func:`write_table` also writes an ``.xlsx`` where
each value keeps its type: numbers are numbers, everything else is a string cell (``t="s"``
with the ``@`` text format), even a string that starts with ``=`` (openpyxl would otherwise
store it as a formula).

The .xlsx is for people, the CSV for programs: the CSV keeps the column names and codes the
README lists (``row``, ``reason``, ``duplicate``...), while the .xlsx may show its own header
and words for the codes in the report's language (``PeopleView``). Its columns are sized to
their header and first rows, its header row is frozen and filters are on.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from tasks.files import atomic_path

DELIMITER = ";"
GUARD = "\u200b"  # ZERO WIDTH SPACE: invisible, makes the cell text
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")  # and full-width = + - @
_LEADING = re.compile(r"[\s\"'\u201c\u201d\u00ab\u00bb\u2018\u2019]*")  # blanks and quotes
_DIGITS = re.compile(r"[0-9][0-9 .\u00a0\u202f]*")
_EXCEL_DIGITS = 15  # Excel keeps 15 significant digits of a number
_XLSX_MAX_ROWS = 1_048_576
_XLSX_MAX_CHARS = 32_767
_WIDTH_SAMPLE = 1_000  # rows read ahead to size the .xlsx columns
_MIN_WIDTH, _MAX_WIDTH = 6, 60  # characters


@dataclass(frozen=True)
class PeopleView:
    """How the .xlsx shows a table to people: its header, each row's values (codes in words),
    and the note on rows left out (``more(n, csv_name)``; None: the default English note)."""

    header: Sequence[str]
    row: Callable[[Sequence[object]], list[object]]
    more: Callable[[int, str], str | None] = lambda n, name: None


def needs_guard(value: str) -> bool:
    """Whether a spreadsheet would run ``value`` as a formula or show it as another value."""
    if not value:
        return False
    if value[0] == GUARD or value[0] < " ":  # our own mark, tab, CR, LF, other controls
        return True
    skipped = _LEADING.match(value)
    start = skipped.end() if skipped else 0
    if value[start : start + 1] in _FORMULA_START:
        return True
    if _DIGITS.fullmatch(value):
        digits = sum(ch.isdigit() for ch in value)
        return (value[0] == "0" and digits > 1) or digits > _EXCEL_DIGITS
    return False


def csv_cell(value: object) -> str:
    """One value as written in the CSV: text guarded when needed, a decimal comma in numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        whole = str(int(value))
        # Excel keeps 15 digits: a longer id would come back as 1,23457E+17.
        return GUARD + whole if len(whole.lstrip("-")) > _EXCEL_DIGITS else whole
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return ""  # a cell pandas read as missing
        text = repr(number) if math.isfinite(number) else str(number)
        return text.replace(".", ",")
    text = str(value)
    return GUARD + text if needs_guard(text) else text


def _xlsx_value(value: object) -> tuple[object, bool]:
    """(value, is_text) for an xlsx cell: real numbers stay numbers, the rest becomes text."""
    if value is None:
        return None, False
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if len(str(abs(int(value)))) <= _EXCEL_DIGITS:
            return int(value), False
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return None, False
        if math.isfinite(number):
            return number, False
    # XML cannot hold most control characters; an over-long cell would make Excel "repair" it.
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", str(value))[:_XLSX_MAX_CHARS]
    return (text, True) if text else (None, False)


def _xlsx_row(sheet: object, values: Sequence[object], font: Font | None = None) -> list[object]:
    row: list[object] = []
    for raw in values:
        value, is_text = _xlsx_value(raw)
        if not is_text and font is None:
            # A plain number or an empty cell: openpyxl writes it exactly as an unstyled cell
            # of it (nothing for an empty one), without a cell object of its own for each.
            row.append(value)
            continue
        cell = WriteOnlyCell(sheet, value=value)
        if is_text:
            # Set after the value: openpyxl makes any str starting with "=" a formula.
            cell.data_type = "s"
            cell.number_format = "@"
        if font is not None:
            cell.font = font
        row.append(cell)
    return row


def write_table(
    path_without_suffix: Path,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    for_people: PeopleView | None = None,
) -> list[Path]:
    """``<path>.csv`` and ``<path>.xlsx`` with the same table; both replaced atomically.

    The CSV keeps ``header`` and the values as given (programs read it); the .xlsx is for
    people: ``for_people`` gives its header and rewrites each row's values (French words for
    codes). Its columns are sized to the header and the first rows, the header row is frozen
    and filters are on.

    The rows are read once (they may be a generator over a million rows). An .xlsx holds at most
    1,048,576 rows: beyond that, its last row says how many more are in the CSV.
    """
    csv_path = path_without_suffix.with_name(path_without_suffix.name + ".csv")
    xlsx_path = path_without_suffix.with_name(path_without_suffix.name + ".xlsx")
    shown_header = list(for_people.header) if for_people else list(header)
    shown = for_people.row if for_people else list
    rows = iter(rows)
    # Read ahead: a write-only sheet writes its column widths before its first row.
    ahead = list(islice(rows, _WIDTH_SAMPLE))
    book = Workbook(write_only=True)
    sheet = book.create_sheet(path_without_suffix.name[:31] or "table")
    sheet.freeze_panes = "A2"
    for column, width in enumerate(column_widths(shown_header, map(shown, ahead)), start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.append(_xlsx_row(sheet, shown_header, Font(bold=True)))
    room = _XLSX_MAX_ROWS - 2  # the header, and a last row for the note
    left_out = written = 0
    with ExitStack() as stack:
        stack.callback(_drop_sheet_scratch, sheet)
        csv_tmp = stack.enter_context(atomic_path(csv_path))
        xlsx_tmp = stack.enter_context(atomic_path(xlsx_path))
        fh = stack.enter_context(csv_tmp.open("w", newline="", encoding="utf-8-sig"))
        writer = csv.writer(fh, delimiter=DELIMITER, lineterminator="\r\n")
        writer.writerow([csv_cell(h) for h in header])
        for row in chain(ahead, rows):
            writer.writerow([csv_cell(v) for v in row])
            if room > 0:
                sheet.append(_xlsx_row(sheet, shown(row)))
                room -= 1
                written += 1
            else:
                left_out += 1
        if shown_header:
            last = get_column_letter(len(shown_header))
            sheet.auto_filter.ref = f"A1:{last}{written + 1}"  # the header and every row
        if left_out:
            more = for_people.more(left_out, csv_path.name) if for_people else None
            note = more or f"... {left_out} more rows in {csv_path.name}"
            sheet.append(_xlsx_row(sheet, [note]))
        fh.close()
        book.save(xlsx_tmp)
    return [csv_path, xlsx_path]


def _shown_width(value: object) -> int:
    """How many characters a cell shows (a number as Excel shows it, roughly)."""
    shown, is_text = _xlsx_value(value)
    if shown is None:
        return 0
    if not is_text and isinstance(shown, float):
        return len(f"{shown:.10g}")
    return max((len(line) for line in str(shown).splitlines()), default=0)


def column_widths(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[float]:
    """Each column's width in characters: its longest header or value, a little room for the
    filter's button, never wider than ``_MAX_WIDTH`` (a long detail wraps in the cell)."""
    widest = [_shown_width(h) + 3 for h in header]  # the header's filter button
    for row in rows:
        for i, value in enumerate(row):
            if i < len(widest):
                widest[i] = max(widest[i], _shown_width(value) + 1)
    return [float(min(max(w, _MIN_WIDTH), _MAX_WIDTH)) for w in widest]


def _drop_sheet_scratch(sheet: Any) -> None:
    """openpyxl streams a write-only sheet through a temporary file in the system's temp
    folder, removed when the book is saved, or only when the process exits: a table that
    fails half-way (disk full, its folder removed) would leave people's numbers there for as
    long as the worker runs. Removed here whatever happened (nothing left after a save)."""
    writer = getattr(sheet, "_writer", None)
    if writer is None:
        return
    # Close the sheet's stream first (a no-op after a save), so that nothing writes to it later.
    with suppress(Exception):  # a stream broken by the failure being cleaned up: closed anyway
        rows = getattr(sheet, "_rows", None)
        if rows is not None:
            rows.close()
        writer.close()
    scratch = getattr(writer, "out", None)
    if isinstance(scratch, str):
        Path(scratch).unlink(missing_ok=True)


def unguard(cell: str) -> str:
    """A CSV cell as it was before :func:`csv_cell` guarded it."""
    return cell[1:] if cell.startswith(GUARD) else cell


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV written by :func:`write_table`, or by the older writer (UTF-8
    without BOM, comma-separated): BOM and guards taken off, the delimiter found."""
    with path.open(encoding="utf-8-sig", newline="") as fh:  # a CR inside a cell stays a CR
        text = fh.read()
    first = text.split("\n", 1)[0]
    delimiter = DELIMITER if first.count(DELIMITER) >= first.count(",") else ","
    table = [
        [unguard(c) for c in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)
    ]
    return (table[0], table[1:]) if table else ([], [])


__all__ = [
    "DELIMITER",
    "GUARD",
    "PeopleView",
    "column_widths",
    "csv_cell",
    "needs_guard",
    "read_table",
    "unguard",
    "write_table",
]
