"""CSV and TXT files: encoding, delimiter, header width, bounds, then pandas.

The encoding is read from the first bytes (BOM, UTF-8, else Windows-1252), the delimiter is
sniffed from the first lines; a file picked by mistake (an image, a zip, a database) is named
for what it is. No message quotes what the file holds: parser messages that may quote text are
replaced by a phrase of ours (``_csv_error``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.recipients import limits
from tasks.recipients.frame import (
    RecipientsError,
    _check_width,
    _first_line,
    _tidy_frame,
    _too_many_cells,
)

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt", ".tsv")
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

# Enough lines to sniff a delimiter; reading more would only slow down million-row files.
_SAMPLE_BYTES = 64 * 1024
_SNIFF_LINES = 50
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
    max_rows = limits.MAX_CELLS // width
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
            if cells > limits.MAX_CELLS:
                raise _too_many_cells(path)
            rows.append(row)
    except csv.Error as exc:
        raise _csv_error(path, exc, reader.line_num) from None
    return rows
