"""Excel workbooks (.xlsx, .xlsm): size and zip-bomb checks, the sheet, cells as text.

A workbook is refused before it is read in full when its members inflate past
``MAX_XLSX_BYTES`` or ``MAX_XLSX_RATIO``, or its sheet declares more than ``MAX_CELLS`` cells.
Excel stores every number as a float: a phone typed as a number is read back as its digits.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from tasks.recipients import limits
from tasks.recipients.columns import _typed
from tasks.recipients.frame import (
    RecipientsError,
    _check_file,
    _check_width,
    _too_many_cells,
)
from tasks.recipients.text import _binary_kind

EXCEL_SUFFIXES: tuple[str, ...] = (".xlsx", ".xlsm")
# Uncompressed bytes of a workbook's members, and how much one large member may inflate: Excel's
# XML deflates 5-40 times; a zip bomb, up to a thousand.
MAX_XLSX_BYTES = 1 << 30
MAX_XLSX_RATIO = 200
_RATIO_CHECKED_FROM = 8 << 20


def _xls_error(path: Path) -> RecipientsError:
    return RecipientsError(f"{path} is an old Excel .xls file: save it as .xlsx or CSV UTF-8")


def _excel_rows(path: Path, sheet: str | None) -> tuple[list[list[str]], int]:
    """The cells of one worksheet as strings, from the first non-empty row (the header) on,
    and that row's number in the sheet (1-based, as Excel shows it)."""
    _check_file(path)
    with path.open("rb") as handle:
        head = handle.read(16)
    if not head.startswith(b"PK\x03\x04"):
        kind = _binary_kind(head)
        if kind is None:
            kind = "text, perhaps a CSV file" if _is_texty(head) else "not a zip container"
        raise RecipientsError(f"{path} is not a valid .xlsx workbook ({kind})")
    _check_workbook_size(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ParseError, ValueError) as exc:
        raise RecipientsError(
            f"{path} is not a valid .xlsx workbook ({_xlsx_problem(exc)})"
        ) from None
    try:
        worksheet = _pick_sheet(workbook, sheet, path)
        _check_declared_size(worksheet, path)
        # Rows as stored: read-only openpyxl pads every row to the declared width otherwise.
        worksheet.reset_dimensions()
        return _sheet_rows(worksheet.iter_rows(values_only=True), path)
    except (KeyError, ParseError, ValueError, zipfile.BadZipFile) as exc:
        raise RecipientsError(
            f"{path}: cannot read the workbook ({_xlsx_problem(exc)}): open it in a spreadsheet "
            "program and save it again as .xlsx, or save it as CSV UTF-8"
        ) from None
    finally:
        workbook.close()


def _xlsx_problem(exc: BaseException) -> str:
    """What a workbook reader's error is about, never its message: openpyxl and zipfile quote
    member names, and a value they could not convert."""
    if isinstance(exc, zipfile.BadZipFile | zipfile.LargeZipFile):
        return "a damaged or unsupported zip container"
    if isinstance(exc, InvalidFileException):
        return "not a file type openpyxl reads"
    if isinstance(exc, KeyError):
        return "a part a workbook needs is missing"
    if isinstance(exc, ParseError):
        return "XML that cannot be parsed"
    if isinstance(exc, OSError):
        return "an error reading the file"
    return "a value or structure the reader does not accept"


def _sheet_rows(sheet: Iterable[Sequence[Any]], path: Path) -> tuple[list[list[str]], int]:
    """Rows as strings from the first non-blank one (the header) to the last non-blank one:
    blank rows in between are rows, trailing ones are not. And the first one's number."""
    rows: list[list[str]] = []
    blank: list[list[str]] = []
    width = 0
    first = 1
    for number, values in enumerate(sheet, start=1):
        row = [_excel_value_to_str(value) for value in values]
        while row and row[-1] == "":
            row.pop()
        if not any(cell.strip() for cell in row):
            if rows:
                blank.append(row)
            continue
        if not rows:
            first = number
        rows.extend(blank)
        blank.clear()
        rows.append(row)
        if len(row) > width:
            width = len(row)
            _check_width(width, path, number)
        if len(rows) * width > limits.MAX_CELLS:
            raise _too_many_cells(path)
    return rows, first


def xlsx_size_problem(members: Sequence[tuple[str, int, int]]) -> str | None:
    """Why a workbook whose zip members are (name, uncompressed, compressed bytes) is refused
    before openpyxl inflates it, or None. Sizes are those the zip declares; Python's zipfile
    never inflates a member past its declared size, so they bound what reading can cost."""
    total = sum(size for _, size, _ in members)
    if total > MAX_XLSX_BYTES:
        return (
            f"it inflates to {total / 2**20:,.0f} MiB, more than {MAX_XLSX_BYTES / 2**20:,.0f} "
            "MiB: save a smaller workbook or a CSV"
        )
    for _name, size, compressed in members:
        # The member's name is the file's content: never quoted.
        if size > _RATIO_CHECKED_FROM and size > MAX_XLSX_RATIO * max(compressed, 1):
            return (
                f"one of its members inflates {size // max(compressed, 1):,} times "
                f"(to {size / 2**20:,.0f} MiB): not a workbook a spreadsheet program saves"
            )
    return None


def _check_workbook_size(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [(i.filename, i.file_size, i.compress_size) for i in archive.infolist()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise RecipientsError(
            f"{path} is not a valid .xlsx workbook ({_xlsx_problem(exc)})"
        ) from None
    problem = xlsx_size_problem(members)
    if problem is not None:
        raise RecipientsError(f"{path} is refused: {problem}")


def _check_declared_size(worksheet: Any, path: Path) -> None:
    rows, columns = worksheet.max_row, worksheet.max_column
    if rows and columns and rows * columns > limits.MAX_CELLS:
        raise RecipientsError(
            f"{path}: the sheet declares {rows:,} rows x {columns:,} columns, more than "
            f"{limits.MAX_CELLS:,} cells: delete the unused rows and columns, or save a CSV"
        )


def _pick_sheet(workbook: Any, sheet: str | None, path: Path) -> Any:
    worksheets = workbook.worksheets
    if sheet is None or not sheet.strip():
        if not worksheets:
            raise RecipientsError(f"{path} has no worksheet")
        return worksheets[0]
    for ws in worksheets:
        if ws.title == sheet:
            return ws
    matches = [ws for ws in worksheets if ws.title.strip().casefold() == sheet.strip().casefold()]
    if len(matches) == 1:
        return matches[0]
    # The sheets' names are the file's content: counted, never listed.
    count = len(worksheets)
    raise RecipientsError(
        f"sheet {_typed(sheet)!r} not found in {path} ({count} sheet{'s' if count != 1 else ''}"
        f"{', several of them with that name in other cases' if matches else ''}): give a sheet's "
        "name exactly as its tab shows it, or none for the first sheet"
    )


def _is_texty(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _excel_value_to_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # Excel stores every number as a float: a phone typed as a number is 612345678.0.
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
