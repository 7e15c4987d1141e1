"""Recipients: one source (a CSV/TXT file, an Excel workbook, or a database query) read into one
DataFrame shape, and the local opt-out lists read the same careful way.

What it is: the I/O that reads people's lists (files and databases; never Prefect). Whatever
the source, the result has the same shape: a DataFrame whose columns keep their original names
and whose values are all strings (``""`` when missing), in the source's row order, indexed
0..n-1. Nothing is parsed as a phone number here: the raw text is kept, to explain each reject.
What it is NOT: the rules about numbers (``tasks.numbers``), nor the never-text store
(``tasks.nevertext``, in the ledger's database). Steps and flows import it; it imports
``tasks.numbers``, ``tasks.dburl`` and ``tasks.errors`` only.

Every problem an operator can fix (missing file, unreadable encoding, bad query, database
down...) raises ``RecipientsError``, whose message is one line that is safe to show: database
URLs have their password masked, no password is quoted, and every phone number in it is masked
(a database or a library may quote the value it choked on). No message quotes what an input
file holds (a header, a cell, a sheet's or a zip member's name, a byte, a parser's excerpt): a
file given by mistake (a credentials file, an .ini) must not reach the run's log. Rows, columns
and counts are said by number. Inputs are bounded before they are read in full (``MAX_COLUMNS``,
``MAX_CELLS``, the workbook's inflated size), so a hostile or careless file fails in seconds.

Modules:
- ``load.py``: ``load_recipients``, the entry point: exactly one source, to the common frame.
- ``frame.py``: the frame's shape and tidying, ``RecipientsError``; ``limits.py``: the bounds
  (change them there, ``limits.MAX_CELLS``: the face's copies are for reading).
- ``text.py``: CSV/TXT (encoding, delimiter, header width); ``excel.py``: .xlsx/.xlsm.
- ``sql.py``: a database, read-only, under a statement timeout; ``sql_guard.py``: the pure
  tokenizer that refuses any query it cannot read for certain as a single SELECT.
- ``columns.py``: which column holds the numbers (``find_phone_column``).
- ``suppression.py``: ``load_suppression_list``, an opt-out list that fails closed: one entry
  it cannot read as a phone number, or no entry at all, refuses the whole list.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tasks.recipients.columns import PHONE_COLUMN_CANDIDATES, find_phone_column
from tasks.recipients.frame import RecipientsError
from tasks.recipients.limits import MAX_CELLS, MAX_COLUMNS
from tasks.recipients.sql_guard import SQLUnreadable, sql_code, sql_refusal

if TYPE_CHECKING:
    from tasks.recipients.excel import (
        EXCEL_SUFFIXES,
        MAX_XLSX_BYTES,
        MAX_XLSX_RATIO,
        xlsx_size_problem,
    )
    from tasks.recipients.load import load_recipients
    from tasks.recipients.sql import CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_S, mask_db_url
    from tasks.recipients.suppression import SuppressionList, load_suppression_list
    from tasks.recipients.text import CSV_SUFFIXES, DELIMITERS
else:
    # The readers (SQLAlchemy, openpyxl, pandas' parsers) load when one of their names is first
    # asked for: the pure modules of this package (columns, frame, limits, sql_guard) import
    # without them.
    _LAZY = {
        "EXCEL_SUFFIXES": "excel",
        "MAX_XLSX_BYTES": "excel",
        "MAX_XLSX_RATIO": "excel",
        "xlsx_size_problem": "excel",
        "load_recipients": "load",
        "CONNECT_TIMEOUT_S": "sql",
        "STATEMENT_TIMEOUT_S": "sql",
        "mask_db_url": "sql",
        "SuppressionList": "suppression",
        "load_suppression_list": "suppression",
        "CSV_SUFFIXES": "text",
        "DELIMITERS": "text",
    }

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # asked once: later lookups find it directly
        return value


__all__ = [
    "CONNECT_TIMEOUT_S",
    "CSV_SUFFIXES",
    "DELIMITERS",
    "EXCEL_SUFFIXES",
    "MAX_CELLS",
    "MAX_COLUMNS",
    "MAX_XLSX_BYTES",
    "MAX_XLSX_RATIO",
    "PHONE_COLUMN_CANDIDATES",
    "STATEMENT_TIMEOUT_S",
    "RecipientsError",
    "SQLUnreadable",
    "SuppressionList",
    "find_phone_column",
    "load_recipients",
    "load_suppression_list",
    "mask_db_url",
    "sql_code",
    "sql_refusal",
    "xlsx_size_problem",
]
