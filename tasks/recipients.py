"""Load campaign recipients from a CSV file, an Excel workbook or a SQL database.

Whatever the source, the result has the same shape: a DataFrame whose columns keep their original
names and whose values are all strings (``""`` when missing), in the source's row order, indexed
0..n-1. Nothing is interpreted here: phone numbers stay exactly as written (a leading zero,
``612345678.0``, ``+33 (0)6 ...``) because cleaning them belongs to the numbers step, which needs
the raw text to explain each reject.

Every problem an operator can fix (missing file, unreadable encoding, bad query, database down...)
raises :class:`RecipientsError`, whose message is one line that is safe to show: database URLs
have their password masked, no password is quoted, and every phone number in it is masked (a
database or a library may quote the value it choked on). No message quotes what an input file
holds (a header, a cell, a sheet's or a zip member's name, a byte, a parser's excerpt): a file
given by mistake (a credentials file, an .ini) must not reach the run's log. Rows, columns and
counts are said by number.

Inputs are bounded before they are read in full: at most ``MAX_COLUMNS`` columns and
``MAX_CELLS`` cells, and a workbook's declared size and zip members are checked before openpyxl
inflates anything, so a hostile or careless file fails in seconds rather than after minutes of
CPU or gigabytes of memory.

Databases are only read: a query must be a single SELECT (or WITH ... SELECT) statement or a bare
table name, as read by a small tokenizer of each server's lexical rules (``sql_refusal``) that
refuses whatever it cannot read for certain (MySQL's executable comments, ``#``, unclosed quotes,
stray ``$``...). PostgreSQL, MariaDB/MySQL and SQLite connections are also put in read-only
mode, so a statement that slips past the check (``SELECT nextval(...)``) is refused by the
server, and the query runs under a statement timeout.

A local opt-out list is read by ``load_suppression_list``, which finds its column of numbers
with or without a header and fails closed: one entry it cannot read as a phone number, or no
entry at all, refuses the whole list (naming the rows, never their text). A person on an
opt-out list must never be texted, and an entry silently skipped is such a person.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import time
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import numpy as np
import openpyxl
import pandas as pd
import sqlalchemy as sa
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from tasks import dburl
from tasks.errors import SurveyError
from tasks.numbers import mask_numbers_in_text, numbers_in_entries


class RecipientsError(SurveyError):
    """Bad input or source: str(exc) is ONE clear line for the operator (no traceback needed,
    no password, phone numbers masked)."""

    def __init__(self, message: str) -> None:
        # Masked here, once, so no message can forget it: driver errors quote values, and
        # paths or cells may be numbers.
        super().__init__(mask_numbers_in_text(message))


# Usual headers of a phone column, most specific first: when a file has both "Téléphone" (often a
# landline) and "Portable", the mobile wins. Matching ignores case, accents, spaces and
# punctuation, so "TEL", "Tél." and "tel" are one entry.
PHONE_COLUMN_CANDIDATES: tuple[str, ...] = (
    "mobile",
    "portable",
    "téléphone portable",
    "téléphone mobile",
    "tél portable",
    "tél mobile",
    "numéro de portable",
    "numéro de mobile",
    "numéro portable",
    "numéro mobile",
    "mobile phone",
    "mobile number",
    "phone mobile",
    "cell",
    "cellphone",
    "cell phone",
    "cell number",
    "cellulaire",
    "gsm",
    "msisdn",
    "phone",
    "phone number",
    "phone no",
    "telephone",
    "telephone number",
    "téléphone",
    "tél",
    "tel",
    "numéro de téléphone",
    "n° de téléphone",
    "n° tél",
    "num tel",
    "numéro tel",
    "contact number",
    "numéro",
    "number",
)

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES: tuple[str, ...] = (".xlsx", ".xlsm")
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 300.0

# Past these, a file is refused before it is read in full. A million recipients with twenty
# columns fit; a one-line list of 200,000 numbers, or a workbook declaring 17 billion cells, not.
MAX_COLUMNS = 1_000
MAX_CELLS = 20_000_000
# Uncompressed bytes of a workbook's members, and how much one large member may inflate: Excel's
# XML deflates 5-40 times; a zip bomb, up to a thousand.
MAX_XLSX_BYTES = 1 << 30
MAX_XLSX_RATIO = 200
_RATIO_CHECKED_FROM = 8 << 20

# Enough lines to sniff a delimiter; reading more would only slow down million-row files.
_SAMPLE_BYTES = 64 * 1024
_SNIFF_LINES = 50
_UNNAMED = re.compile(r"Unnamed: \d+")
# "é", "è", "à"... encoded as UTF-8; as Windows-1252 this reads "Ã©", which French text never has.
_UTF8_ACCENT = re.compile(rb"\xc3[\x80-\xbf]")

# First bytes of files people pick by mistake, to say what the file is rather than "bad CSV".
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx saved under another name?)"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (.xls) or a password-protected workbook"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3\x00", "a SQLite database (use db_url='sqlite:///<path>')"),
)

# Plain "postgresql://" and "mysql://" would need psycopg2 / mysqlclient, which we do not ship.

_IDENT = r"[^\W\d]\w*"
_TABLE_NAME = re.compile(rf"({_IDENT})(?:\.({_IDENT}))?")
_LEADING_WORD = re.compile(r"[\s(]*(\w+)")
# Writes that can hide inside a statement that starts with SELECT or WITH; INTO also writes
# (SELECT ... INTO OUTFILE / DUMPFILE / @variable / new_table).
_WRITE_WORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|DROP|ALTER|CREATE|TRUNCATE|GRANT|REVOKE"
    r"|RENAME|CALL|EXEC|EXECUTE|COPY|VACUUM|REINDEX|ATTACH|DETACH|PRAGMA|INTO|OUTFILE|DUMPFILE)\b",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_recipients(
    *,
    path: str | Path | None = None,
    db_url: str | None = None,
    query: str | None = None,
    sheet: str | None = None,
    chunksize: int = 50_000,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
) -> pd.DataFrame:
    """Exactly one of path (CSV / .xlsx) or db_url (+ query: a SELECT or a bare table name).
    Every column kept with its original name, every value as a string (object or pandas string
    dtype; missing -> "" ), row order preserved, index = RangeIndex. A blank line between rows
    is a row of empty cells (trailing ones are not rows). A query running longer than
    ``statement_timeout_s`` is stopped by the server. Raises RecipientsError for bad input."""
    # Blank form fields arrive as "" from the Prefect UI: treat them as "not given".
    has_path = path is not None and str(path).strip() != ""
    has_db = db_url is not None and db_url.strip() != ""
    if has_path == has_db:
        raise RecipientsError(
            "give exactly one source of recipients: a file path (CSV or .xlsx) or a db_url"
        )
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise RecipientsError(f"chunksize must be a positive integer, got {chunksize!r}")
    if has_path:
        assert path is not None
        if query is not None and query.strip():
            raise RecipientsError("query applies to a database (db_url), not to a file")
        return _load_file(Path(path), sheet)
    assert db_url is not None
    if sheet is not None and sheet.strip():
        raise RecipientsError("sheet applies to an .xlsx file, not to a database")
    if query is None or not query.strip():
        raise RecipientsError(
            f"a query is needed with the database {mask_db_url(db_url)}: "
            "a SELECT statement or a table name"
        )
    if (
        isinstance(statement_timeout_s, bool)
        or not isinstance(statement_timeout_s, int | float)
        or not math.isfinite(statement_timeout_s)
        or statement_timeout_s <= 0
    ):
        raise RecipientsError(
            f"statement_timeout_s must be a positive number of seconds, got {statement_timeout_s!r}"
        )
    return _load_sql(db_url, query, chunksize, float(statement_timeout_s))


_NAME_IT = (
    "name the column that holds the numbers with --phone-column (or the form's Phone column "
    "field), as its header is written"
)


def find_phone_column(columns: Sequence[str], preferred: str | None = None) -> str:
    """preferred (exact, then case/accent-insensitive) or the first usual header found.

    RecipientsError when none: it says how many columns there are and how to name the phone
    column, and never quotes a column's name (a file without a header line has its first row
    there, and a file given by mistake its first line). ``preferred``, typed by the operator,
    is echoed back shortened (and masked, like every message)."""
    names = [str(c) for c in columns]
    if preferred is not None and preferred.strip():
        if preferred in names:
            return preferred
        wanted = _header_key(preferred)
        for name in names:
            if _header_key(name) == wanted:
                return name
        # An operator who named a column expects that one: falling back to another could text
        # the wrong numbers.
        raise RecipientsError(
            f"phone column {_typed(preferred)!r} not found among {_the_columns(len(names))}: "
            f"{_NAME_IT} (case, accents and spaces do not matter){_data_hint(names)}"
        )
    keys = [_header_key(name) for name in names]
    for candidate in PHONE_COLUMN_CANDIDATES:
        wanted = _header_key(candidate)
        for name, key in zip(names, keys, strict=True):
            if key == wanted:
                return name
    raise RecipientsError(
        f"no phone column found among {_the_columns(len(names))}: {_NAME_IT}, or head it "
        f"with a usual name such as Téléphone, Mobile, Portable or phone{_data_hint(names)}"
    )


_TYPED_SHOWN = 40  # characters of an operator's own input echoed in a message


def _typed(text: str) -> str:
    """What the operator typed (a column or sheet name), shortened for a message."""
    text = " ".join(text.split())
    return text if len(text) <= _TYPED_SHOWN else text[: _TYPED_SHOWN - 1] + "…"


def _columns(count: int) -> str:
    return "1 column" if count == 1 else f"{count:,} columns"


def _the_columns(count: int) -> str:
    return "the only column" if count == 1 else f"the {count:,} columns"


def _data_hint(names: Sequence[str]) -> str:
    """A hint (never the text) when a column name looks like a phone number."""
    if any(_looks_like_number(name) for name in names):
        return " (the first line looks like data: is the header line missing?)"
    return ""


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
    listed = _read_number_list(file)
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


def mask_db_url(url: str) -> str:
    """URL with every secret (password, ``?password=``...) shown as '***'; never raises."""
    return dburl.mask(url)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


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


def _load_file(path: Path, sheet: str | None) -> pd.DataFrame:
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _rows_to_frame(_excel_rows(path, sheet)[0], path)
    if suffix == ".xls":
        raise _xls_error(path)
    if suffix not in CSV_SUFFIXES:
        supported = ", ".join(CSV_SUFFIXES + EXCEL_SUFFIXES)
        raise RecipientsError(
            f"unsupported file type {suffix or '(no extension)'!r} for {path}; expected {supported}"
        )
    if sheet is not None and sheet.strip():
        raise RecipientsError(f"sheet applies to an .xlsx workbook, not to {path}")
    return _read_csv(path)


def _xls_error(path: Path) -> RecipientsError:
    return RecipientsError(f"{path} is an old Excel .xls file: save it as .xlsx or CSV UTF-8")


def _binary_kind(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _detect_encoding(head: bytes, path: Path) -> tuple[str, str]:
    """The encoding of a text file from its first bytes, and those bytes decoded (whole lines)."""
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        kind = _binary_kind(head)
        if kind is not None:
            raise RecipientsError(f"{path} is {kind}, not a CSV text file")
        if b"\x00" in head:
            raise RecipientsError(
                f"{path} is not a text file (binary data, or UTF-16 without BOM): "
                "save it as CSV UTF-8"
            )
        encoding = "utf-8"
        try:
            _decode_head(head, encoding)
        except UnicodeDecodeError:
            if _UTF8_ACCENT.search(head):
                # Read as Windows-1252, the UTF-8 part would silently turn into "Ã©".
                raise RecipientsError(
                    f"{path} mixes UTF-8 and Windows-1252 text: save it as CSV UTF-8"
                ) from None
            # French Excel's "CSV (séparateur: point-virgule)" is Windows-1252.
            encoding = "cp1252"
    try:
        text = _decode_head(head, encoding)
    except UnicodeDecodeError as exc:
        raise RecipientsError(
            f"{path}: cannot decode the byte at position {exc.start:,} as UTF-8 or "
            "Windows-1252: save it as CSV UTF-8"
        ) from None
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\n\r\f\v")
    if controls > len(text) // 100:
        raise RecipientsError(f"{path} does not look like a text file: save it as CSV UTF-8")
    return encoding, text


def _decode_head(head: bytes, encoding: str) -> str:
    # The sample may end inside a multi-byte character: decode incrementally, without final=True.
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    text: str = decoder.decode(head, final=False)
    if len(head) >= _SAMPLE_BYTES and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    return text


def _detect_delimiter(text: str) -> str:
    """The delimiter that splits the header into most fields and the rows alike.

    csv.Sniffer alone picks "," in a ";" file whose headers or values hold commas, so each
    candidate is scored by parsing the sample; the sniffer only breaks ties.
    """
    lines = text.splitlines(keepends=True)
    truncated = len(lines) > _SNIFF_LINES
    sample = "".join(lines[:_SNIFF_LINES])
    if not sample.strip():
        return ","
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = ""
    parsed = {d: _parse_sample(sample, d, truncated) for d in DELIMITERS}
    several_lines = sum(1 for line in lines[:_SNIFF_LINES] if line.strip()) > 1
    scores = {d: _delimiter_score(rows, several_lines) for d, rows in parsed.items()}
    best = max(DELIMITERS, key=lambda d: (scores[d], d == sniffed))
    if scores[best][1] > 1:
        return best
    # A single column: take the delimiter found least in the values, so "06 12,34" stays whole.
    return min(DELIMITERS, key=lambda d: sum(len(row) for row in parsed[d]))


def _parse_sample(sample: str, delimiter: str, truncated: bool) -> list[list[str]]:
    try:
        reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
        rows = [r for r in reader if r and (len(r) > 1 or r[0].strip())]
    except csv.Error:
        return []
    # The last row of a cut sample may be half a row.
    return rows[:-1] if truncated and len(rows) > 1 else rows


def _delimiter_score(rows: list[list[str]], several_lines: bool) -> tuple[float, int, int, int]:
    """(share of rows shaped like the header, header width, rows, minus stray quotes).

    Trailing empty fields are fine. Lines that all parse into one row, or quotes left inside
    fields, mean the quoting was misread under this delimiter.
    """
    if not rows or len(rows[0]) < 2:
        return (0.0, 1, len(rows), 0)
    width = len(rows[0])
    stray = -sum(cell.count('"') for row in rows for cell in row)
    body = rows[1:]
    if not body:
        return (0.0 if several_lines else 1.0, width, 1, stray)
    alike = sum(
        len(row) == width or (len(row) > width and not "".join(row[width:]).strip()) for row in body
    )
    return (alike / len(body), width, len(rows), stray)


def _read_csv(path: Path) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(_SAMPLE_BYTES)
    encoding, text = _detect_encoding(head, path)
    delimiter = _detect_delimiter(text)
    # Before pandas: its naming of duplicate headers is quadratic (a one-line list of 200,000
    # numbers took minutes), and its frame costs memory per cell.
    leading, width = _csv_header_shape(path, encoding, delimiter)
    max_rows = MAX_CELLS // width
    try:
        frame = _pandas_read_csv(path, encoding, delimiter, leading, max_rows)
    except UnicodeDecodeError as exc:
        # The sample was plain ASCII and a Windows-1252 accent came later: retry once as such.
        if encoding != "utf-8" or not text.isascii():
            raise _decode_error(path, exc, encoding) from None
        encoding = "cp1252"
        try:
            frame = _pandas_read_csv(path, encoding, delimiter, leading, max_rows)
        except UnicodeDecodeError as again:
            raise _decode_error(path, again, encoding) from None
    if len(frame) > max_rows:
        raise _too_many_cells(path)
    return _tidy_frame(frame, path)


def _csv_header_shape(path: Path, encoding: str, delimiter: str) -> tuple[int, int]:
    """Lines before the header (blank ones), and the header's field count, within bounds."""
    # Only delimiters are counted here: a byte the encoding cannot read is pandas' to report.
    try:
        with path.open(encoding=encoding, errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            before = 0
            for row in reader:
                if any(cell.strip() for cell in row):
                    _check_width(len(row), path, before + 1)
                    return before, len(row)
                before = reader.line_num
    except csv.Error as exc:
        raise _csv_error(path, exc) from None
    except OSError as exc:
        raise RecipientsError(f"cannot read {path}: {exc.strerror or exc}") from None
    raise RecipientsError(f"{path} is empty (no header line)")


def _pandas_read_csv(
    path: Path, encoding: str, delimiter: str, leading: int, max_rows: int
) -> pd.DataFrame:
    """The file read by pandas' C parser, every value a string as written, at most
    ``max_rows + 1`` data rows (one more than allowed, to tell)."""
    options: dict[str, Any] = {
        "sep": delimiter,
        "encoding": encoding,
        "dtype": str,
        "keep_default_na": False,
        "na_filter": False,
        # Without this, a trailing delimiter on data lines turns column 1 into the index.
        "index_col": False,
        # A blank line between rows is a row (a recipient whose cell is empty must be counted
        # and reported); the blank lines before the header are skipped here.
        "skip_blank_lines": False,
        "skiprows": leading,
        "nrows": max_rows + 1,
        "quotechar": '"',
        "engine": "c",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = _parse_csv(path, options, tolerate_wide_rows=True)
    if frame is not None and not any(
        issubclass(w.category, pd.errors.ParserWarning) for w in caught
    ):
        return frame
    # Some line has more fields than the header (pandas warned and dropped them, or refused).
    # Empty extras are what "a;b;" exports leave; anything else would be silently lost.
    options["usecols"] = range(_header_width(path, encoding, delimiter))
    frame = _parse_csv(path, options, tolerate_wide_rows=False)
    assert frame is not None
    return frame


def _parse_csv(
    path: Path, options: dict[str, Any], *, tolerate_wide_rows: bool
) -> pd.DataFrame | None:
    """pd.read_csv with its errors as one-line messages; None for a row wider than the header."""
    try:
        return pd.read_csv(path, **options)
    except UnicodeDecodeError:
        raise  # the caller may retry in another encoding
    except pd.errors.EmptyDataError:
        raise RecipientsError(f"{path} is empty (no header line)") from None
    except pd.errors.ParserError as exc:
        detail = _first_line(exc).removeprefix("Error tokenizing data. C error: ")
        if tolerate_wide_rows and detail.startswith("Expected "):
            return None
        raise _csv_error(path, exc) from None
    except ValueError as exc:
        raise _csv_error(path, exc) from None


# Parser messages known to quote nothing of the file (counts and positions only); any other is
# replaced by a phrase of ours, since a parser may quote the text it choked on.
_SAFE_PARSER_DETAIL = re.compile(
    r"Expected \d+ fields in line \d+, saw \d+"
    r"|EOF inside string starting at row \d+"
    r"|EOF following escape character"
    r"|Buffer overflow caught - possible malformed input file\."
    r"|field larger than field limit \(\d+\)"
    r"|new-line character seen in unquoted field\b.*"
    r"|line contains NUL"
    r"|unexpected end of data"
)


def _csv_error(path: Path, exc: Exception, line: int | None = None) -> RecipientsError:
    """A CSV reader's or parser's error as one line quoting nothing of the file."""
    detail = _first_line(exc).removeprefix("Error tokenizing data. C error: ")
    if _SAFE_PARSER_DETAIL.fullmatch(detail) is None:
        detail = "a line the CSV reader cannot parse (a stray quote?)"
    where = f" (line {line:,})" if line else ""
    return RecipientsError(f"{path} is not a valid CSV file{where}: {detail}")


def _decode_error(path: Path, exc: UnicodeDecodeError, encoding: str) -> RecipientsError:
    label = {"cp1252": "Windows-1252", "utf-16": "UTF-16"}.get(encoding, "UTF-8")
    return RecipientsError(
        f"{path}: cannot decode the file as {label} ({exc.reason}): "
        "it may mix encodings; save it as CSV UTF-8"
    )


def _header_width(path: Path, encoding: str, delimiter: str) -> int:
    """The header's field count, once every field beyond it is known to be empty."""
    width = 0
    try:
        with path.open(encoding=encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if width == 0:
                    width = len(row)
                elif any(cell.strip() for cell in row[width:]):
                    raise RecipientsError(
                        f"{path} is not a valid CSV file: line {reader.line_num} has "
                        f"{len(row)} fields, the header has {width}"
                    )
    except csv.Error as exc:
        raise _csv_error(path, exc, reader.line_num) from None
    return width


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


def _text_rows(path: Path) -> list[list[str]]:
    """Every record of a small text file (a suppression list), within the size bounds."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipientsError(f"cannot read {path}: {exc.strerror or exc}") from None
    encoding, head_text = _detect_encoding(raw[:_SAMPLE_BYTES], path)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8" or not head_text.isascii():
            raise _decode_error(path, exc, encoding) from None
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as again:
            raise _decode_error(path, again, "cp1252") from None
    delimiter = _detect_delimiter(head_text)
    rows: list[list[str]] = []
    cells = 0
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for row in reader:
            _check_width(len(row), path, reader.line_num)
            cells += len(row)
            if cells > MAX_CELLS:
                raise _too_many_cells(path)
            rows.append(row)
    except csv.Error as exc:
        raise _csv_error(path, exc, reader.line_num) from None
    return rows


def _check_width(width: int, path: Path, line: int) -> None:
    if width > MAX_COLUMNS:
        raise RecipientsError(
            f"{path}: line {line:,} has {width:,} fields, more than the {MAX_COLUMNS:,} columns "
            "a list may have (numbers all on one line? give one per line)"
        )


def _too_many_cells(path: Path) -> RecipientsError:
    return RecipientsError(
        f"{path} has more than {MAX_CELLS:,} cells: split it, or keep only the columns needed"
    )


def _looks_like_number(cell: str) -> bool:
    return sum(ch.isdigit() for ch in cell) >= 6


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


def _read_number_list(path: Path) -> _NumberColumn:
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


# --------------------------------------------------------------------------------------------
# Excel
# --------------------------------------------------------------------------------------------


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
        if len(rows) * width > MAX_CELLS:
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
    if rows and columns and rows * columns > MAX_CELLS:
        raise RecipientsError(
            f"{path}: the sheet declares {rows:,} rows x {columns:,} columns, more than "
            f"{MAX_CELLS:,} cells: delete the unused rows and columns, or save a CSV"
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


# --------------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------------


def _load_sql(db_url: str, query: str, chunksize: int, timeout_s: float) -> pd.DataFrame:
    shown = mask_db_url(db_url)
    url = _parse_db_url(db_url, shown)
    statement = _read_statement(query, url.get_backend_name())
    _check_sqlite_file(url, shown)
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(url))
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise RecipientsError(
            f"unsupported database URL {shown}: {_db_error_line(exc, url)}"
        ) from None
    try:
        try:
            connection = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise RecipientsError(
                f"cannot connect to the database {shown}: {_db_error_line(exc, url)}"
            ) from None
        with connection:
            try:
                _make_read_only(connection)
                deadline = _set_statement_timeout(connection, timeout_s)
                names, columns = _fetch(connection, statement, chunksize, deadline)
            except (sa.exc.SQLAlchemyError, _Overtime) as exc:
                if isinstance(exc, _Overtime) or _timed_out(exc):
                    raise RecipientsError(
                        f"the recipients query ran longer than {timeout_s:g} s on {shown}: "
                        "make it faster (an index, fewer rows) or allow it more time "
                        "(statement_timeout_s)"
                    ) from None
                raise RecipientsError(
                    f"the query failed on {shown}: {_db_error_line(exc, url)}"
                ) from None
    finally:
        engine.dispose()
    if not columns or not columns[0]:
        # A recurring query ("last week's customers") may rightly find nobody: an empty
        # campaign, not an error. The columns still let the phone column be checked.
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in _dedupe(names)})
    frame = pd.DataFrame(dict(enumerate(columns)), dtype=str)
    frame.columns = pd.Index(_dedupe(names))
    return frame


def _parse_db_url(db_url: str, shown: str) -> URL:
    try:
        url = make_url(db_url.strip())
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise RecipientsError(f"not a valid database URL: {shown}") from None
    return dburl.with_driver(url)


def _connect_args(url: URL) -> dict[str, Any]:
    # A database behind a firewall that drops packets would otherwise hang the flow for minutes.
    if url.get_backend_name() in ("postgresql", "mysql", "mariadb") and (
        "connect_timeout" not in url.query
    ):
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def _check_sqlite_file(url: URL, shown: str) -> None:
    # SQLite would silently create an empty database at a mistyped path.
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    file = Path(database)
    if not file.is_file():
        raise RecipientsError(f"SQLite database file not found: {shown}")


def _read_statement(query: str, dialect: str) -> str | sa.Select[Any]:
    """A bare table name as a quoted SELECT, or the user's statement once it is known to read."""
    text = query.strip().rstrip(";").strip()
    table = _TABLE_NAME.fullmatch(text)
    if table is not None:
        schema, name = (table[1], table[2]) if table[2] else (None, table[1])
        return sa.select(sa.literal_column("*")).select_from(sa.table(name, schema=schema))
    refusal = sql_refusal(text, dialect)
    if refusal is not None:
        raise RecipientsError(refusal)
    return text


class SQLUnreadable(SurveyError, ValueError):
    """Text the guard cannot read for certain as the server would: str() says what."""


@dataclass(frozen=True)
class _Lexicon:
    """How a server's SQL lexer treats the characters around literals and comments."""

    refused: str  # characters outside literals whose reading depends on the server
    dollar_quotes: bool  # PostgreSQL: $$...$$ and $tag$...$tag$ are strings
    brackets: bool  # SQLite: [name] is a quoted identifier
    dash_needs_space: bool  # MySQL: "--" opens a comment only before a space


_LEXICONS = {
    "postgresql": _Lexicon("", dollar_quotes=True, brackets=False, dash_needs_space=False),
    # "#" opens a comment on MySQL: it could hide a quote from the guard, or the guard one.
    "mysql": _Lexicon("#", dollar_quotes=False, brackets=False, dash_needs_space=True),
    "mariadb": _Lexicon("#", dollar_quotes=False, brackets=False, dash_needs_space=True),
    # SQLite reads "$name(...)" (and @, #, :) as one parameter token that may swallow a quote.
    "sqlite": _Lexicon("$@#:", dollar_quotes=False, brackets=True, dash_needs_space=False),
}
# Another server: refuse every character some server reads in a way of its own.
_ANY_LEXICON = _Lexicon("#$@:[", dollar_quotes=False, brackets=False, dash_needs_space=True)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_QUOTE_NAMES = {"'": "string", '"': "quoted name", "`": "quoted name", "[": "[name]"}


def sql_code(query: str, dialect: str, *, backslash_escapes: bool) -> str:
    """``query`` with each literal, quoted name and comment replaced by one space, as the
    server of ``dialect`` reads it, backslashes escaping quotes or not (MySQL by default, a
    PostgreSQL E'' string). SQLUnreadable for what the guard cannot read for certain: MySQL's
    executable comments (``/*! */``, ``/*M! */``), optimizer hints, nested or unclosed comments
    and quotes, and characters whose meaning depends on the server (``#`` on MySQL, a stray
    ``$`` on PostgreSQL)."""
    lexicon = _LEXICONS.get(dialect, _ANY_LEXICON)
    code: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "'\"`" or (ch == "[" and lexicon.brackets):
            i = _quoted_end(query, i, backslash_escapes and ch in "'\"")
            code.append(" ")
        elif query.startswith("--", i):
            if lexicon.dash_needs_space and i + 2 < n and not query[i + 2].isspace():
                raise SQLUnreadable("'--' without a space after it (MySQL reads two minus signs)")
            newline = query.find("\n", i)
            i = n if newline < 0 else newline
            code.append(" ")
        elif query.startswith("/*", i):
            i = _comment_end(query, i)
            code.append(" ")
        elif ch == "$" and lexicon.dollar_quotes:
            i = _dollar_end(query, i, code)
        elif ch in lexicon.refused:
            raise SQLUnreadable(f"{ch!r} outside a literal")
        elif ch == "\x00":
            raise SQLUnreadable("a NUL character")
        else:
            code.append(ch)
            i += 1
    return "".join(code)


def _quoted_end(query: str, start: int, backslash_escapes: bool) -> int:
    """The index after the literal or quoted name opened at ``start``."""
    opening = query[start]
    closing = "]" if opening == "[" else opening
    i, n = start + 1, len(query)
    while i < n:
        ch = query[i]
        if backslash_escapes and ch == "\\":
            i += 2
        elif ch != closing:
            i += 1
        elif closing != "]" and query.startswith(closing, i + 1):  # a doubled quote
            i += 2
        else:
            return i + 1
    raise SQLUnreadable(f"an unclosed {_QUOTE_NAMES[opening]} ({opening}...)")


def _comment_end(query: str, start: int) -> int:
    """The index after the comment opened at ``start`` ("/*")."""
    if query.startswith(("/*!", "/*M!", "/*+"), start):
        # MySQL/MariaDB run what is inside /*! */ and /*M! */; /*+ */ hints can lift limits.
        raise SQLUnreadable(f"an executable comment or hint ({query[start : start + 4]}...*/)")
    end = query.find("*/", start + 2)
    if end < 0:
        raise SQLUnreadable("an unclosed comment (/*...)")
    if "/*" in query[start + 2 : end]:
        # PostgreSQL nests comments, MySQL does not: they would end in different places.
        raise SQLUnreadable("a comment inside a comment")
    return end + 2


def _dollar_end(query: str, start: int, code: list[str]) -> int:
    """PostgreSQL: the index after the dollar quote (or the $1 parameter) at ``start``."""
    before = query[start - 1] if start else " "
    if before.isalnum() or before in "_$" or ord(before) > 0x7F:
        # Inside a name "$" is a letter, after a number it may open a quote: not for certain.
        raise SQLUnreadable("a '$' inside a word")
    tag = _DOLLAR_TAG.match(query, start)
    if tag is None:
        if query[start + 1 : start + 2].isdigit():
            code.append("$")
            return start + 1
        raise SQLUnreadable("a '$' that opens no dollar quote")
    end = query.find(tag[0], tag.end())
    if end < 0:
        raise SQLUnreadable(f"an unclosed dollar quote ({tag[0]}...)")
    code.append(" ")
    return end + len(tag[0])


def sql_refusal(query: str, dialect: str) -> str | None:
    """Why the recipients query is refused on ``dialect`` (one line starting "refusing"), or
    None when it is one statement that only reads: read under both backslash conventions, it
    starts with SELECT or WITH and has no write keyword nor INTO outside literals."""
    for backslash_escapes in (False, True):
        try:
            code = sql_code(query, dialect, backslash_escapes=backslash_escapes)
        except SQLUnreadable as exc:
            return (
                f"refusing a query the guard cannot read for certain: {exc}; "
                "recipients are only read, so give a plain SELECT"
            )
        if ";" in code:
            return "refusing several statements: give a single SELECT statement"
        first = _LEADING_WORD.match(code)
        word = first[1].upper() if first else ""
        if word not in ("SELECT", "WITH"):
            return (
                f"refusing a query that starts with {word or 'no keyword'}: give a table name "
                "or a SELECT (or WITH ... SELECT) statement, recipients are only read"
            )
        write = _WRITE_WORDS.search(code)
        if write is not None:
            return f"refusing a query that contains {write[1].upper()}: recipients are only read"
    return None


def _make_read_only(connection: Connection) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # First statement of the transaction that runs the query.
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif dialect in ("mysql", "mariadb"):
        # Session-wide, then a fresh transaction so the query's own transaction is read-only.
        connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        connection.commit()
    elif dialect == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")


class _Overtime(Exception):
    """The query's rows were still coming at its deadline."""


def _set_statement_timeout(connection: Connection, seconds: float) -> float:
    """Have the server stop the query after ``seconds``; returns the deadline (monotonic
    clock) past which the fetch gives up too, on servers without a timeout of their own."""
    deadline = time.monotonic() + seconds
    ms = max(1, min(math.ceil(seconds * 1000), 2**31 - 1))
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # LOCAL: this transaction only, so a pooled connection never keeps it.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
    elif dialect in ("mysql", "mariadb"):
        if getattr(connection.dialect, "is_mariadb", False):
            connection.exec_driver_sql(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
        else:  # MySQL's own variable, for SELECT statements
            connection.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
    elif dialect == "sqlite":
        # No server to stop it: SQLite calls this every few thousand steps and aborts the
        # statement ("interrupted") once it returns true.
        driver = connection.connection.driver_connection
        if driver is not None:
            driver.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    return deadline


def _timed_out(exc: sa.exc.SQLAlchemyError) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL query_canceled
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # MariaDB's max_statement_time exceeded, MySQL's max_execution_time exceeded.
    if args and args[0] in (1969, 3024):
        return True
    return type(orig).__module__ == "sqlite3" and "interrupted" in str(orig)


def _fetch(
    connection: Connection,
    statement: str | sa.Select[Any],
    chunksize: int,
    deadline: float = math.inf,
) -> tuple[list[str], list[list[str]]]:
    """Column names and string columns, read chunk by chunk through a server-side cursor."""
    streaming = connection.execution_options(stream_results=True, yield_per=chunksize)
    if isinstance(statement, str):
        # Raw: SQLAlchemy's text() would read ":name" in a literal as a bind parameter, and
        # no_parameters keeps the driver from reading "%" in LIKE '06%' as a placeholder.
        result = streaming.execution_options(no_parameters=True).exec_driver_sql(statement)
    else:
        result = streaming.execute(statement)
    if not result.returns_rows:
        raise RecipientsError("the query returned no result set: give a SELECT statement")
    keys = result.keys()
    names = [str(name) for name in keys]
    columns: list[list[str]] = [[] for _ in names]
    for chunk in result.partitions(chunksize):
        for column, values in zip(columns, zip(*chunk, strict=True), strict=True):
            # Most cells are already str: skip the function call for them.
            column.extend([v if type(v) is str else _sql_value_to_str(v) for v in values])
        if time.monotonic() > deadline:  # a server times each FETCH, not the whole read
            raise _Overtime
    return names, columns


def _sql_value_to_str(value: Any) -> str:
    # Converted here, value by value: letting pandas infer types would turn an integer column
    # with a NULL into floats ("612345678.0").
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _db_error_line(exc: BaseException, url: URL) -> str:
    """The first line of the driver's message, with the password removed in case it echoes it."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # PyMySQL errors are (code, message) tuples.
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        line = f"{_first_line(args[1])} (error {args[0]})"
    else:
        line = _first_line(orig) or type(orig).__name__
    # Too short a password would also blank out ordinary letters of the message.
    if url.password and len(str(url.password)) >= 4:
        line = line.replace(str(url.password), "***")
    return line[:300]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _first_line(value: object) -> str:
    for line in str(value).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _header_key(name: str) -> str:
    """'Téléphone', 'TELEPHONE ' and 'télé-phone' all give 'telephone'."""
    decomposed = unicodedata.normalize("NFKD", str(name))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in plain.casefold() if ch.isalnum())
