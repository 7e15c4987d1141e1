"""``load_recipients``: exactly one source (a file or a database query) to the common frame."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from tasks.recipients.excel import EXCEL_SUFFIXES, _excel_rows, _xls_error
from tasks.recipients.frame import RecipientsError, _check_file, _rows_to_frame
from tasks.recipients.sql import STATEMENT_TIMEOUT_S, _load_sql, mask_db_url
from tasks.recipients.text import CSV_SUFFIXES, _read_csv


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
