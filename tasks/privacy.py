"""Retention and erasure (RGPD): full numbers kept no longer than needed, one person on request.

What stays, and why:

- **the ledger**: every chunk keeps its state, tag, counts and costs; its numbers become keyed
  hashes (``ledger.pseudonym``), so exactly-once and the frequency cap still know the person,
  and nobody can read a number back without the key (``data/state/pseudonym.key`` or
  ``SURVEY_PSEUDONYM_KEY``). A purged ``failed`` chunk becomes ``cancelled``: a rerun would
  otherwise send the pseudonyms;
- **the reports' aggregates**: ``summary.json``, ``report.html``, ``chunks.*``,
  ``follow_up.json``, ``cancel.json`` hold counts and masked numbers; a number found in such a
  text file anyway is masked in place;
- **the never-text store** (``tasks/nevertext.py``, in the ledger's database): a keyed hash of
  everybody who must never be texted again (STOP, opposition lists, erasures); it never holds a
  number and outlives every purge.

What goes:

- after the retention period (``purge``), for campaigns whose chunks are all final: the state
  folder (``data/state/<campaign>/``: working copies of the rows, rebuilt by a rerun from its
  input) and every row-level table of the report folder (``rejects.csv``/``.xlsx``: a table
  that holds a phone number, in any format, or an ``e164`` column). Folders of dry runs, which
  the ledger never saw, go by their files' age;
- on an erasure request (``erase``): the person's rows in every table and rows file, their
  number masked in every text file, under ``data/state`` and ``data/reports``.

What a file is (pure), then the file I/O (no Prefect here). The maskers that scrub stored files
are the numbers package's (``tasks/numbers/masking.py``); the two tasks are in
``tasks/steps/privacy.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import folders, rows_file, runtime
from tasks import row_columns as cols
from tasks.files import atomic_path
from tasks.numbers.masking import (
    has_number,
    mask_numbers,
    number_forms,
)

# A run's own rows file (``rows.<run>.pkl``) lives from its plan to its report: the purge leaves
# it to the run (which reads it to write the report, then removes it) unless it is older than a
# run can last: the longest approval wait (14 days) and a day to send and settle. Older, its
# run died, and the file goes.
RUN_FILE_LIFETIME = timedelta(days=15)
TEXT_SUFFIXES = frozenset({".json", ".html", ".htm", ".md", ".txt", ".log"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".xlsx", ".xlsm", ".pkl", ".parquet", ".xls"})


# -- pure rules ------------------------------------------------------------------------------


def _walk(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` (parsed JSON) with ``fn`` applied to every string, keys included."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    if isinstance(value, dict):
        return {fn(k): _walk(v, fn) for k, v in value.items()}
    return value


# -- files -----------------------------------------------------------------------------------


@dataclass
class FileCounts:
    rewritten: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rows_removed: int = 0

    def merge(self, other: FileCounts) -> None:
        self.rewritten += other.rewritten
        self.removed += other.removed
        self.rows_removed += other.rows_removed


def _read_text(path: Path) -> str | None:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        return None
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, path.stat().st_mode & 0o777)


def _mask_text_file(path: Path, fn: Callable[[str], str]) -> bool:
    """Apply ``fn`` to a text file's strings (a JSON file's string values only, so numbers and
    structure stay); True when it changed."""
    text = _read_text(path)
    if text is None:
        return False
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            new = fn(text)
        else:
            masked = _walk(data, fn)
            if masked == data:
                return False
            new = json.dumps(masked, indent=2, ensure_ascii=False) + "\n"
    else:
        new = fn(text)
    if new == text:
        return False
    _write_bytes(path, new.encode("utf-8"))
    return True


def _csv_dialect(text: str) -> tuple[str, bool]:
    head = text[:4096]
    try:
        delimiter = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    return delimiter, "\r\n" in head


def _drop_csv_rows(path: Path, hit: Callable[[str], bool]) -> int:
    """Remove the rows of a CSV where a cell holds the person; the header always stays."""
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = _read_text(path) or ""
    delimiter, crlf = _csv_dialect(text)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    kept = rows[:1] + [r for r in rows[1:] if not any(hit(cell) for cell in r)]
    if len(kept) == len(rows):
        return 0
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n").writerows(kept)
    _write_bytes(path, (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8"))
    return len(rows) - len(kept)


def _drop_xlsx_rows(path: Path, hit: Callable[[str], bool]) -> int:
    from openpyxl import load_workbook

    book = load_workbook(path)
    dropped = 0
    for sheet in book.worksheets:
        for index in range(sheet.max_row, 1, -1):
            cells = next(sheet.iter_rows(min_row=index, max_row=index, values_only=True))
            if any(isinstance(v, str | int) and hit(str(v)) for v in cells):
                sheet.delete_rows(index)
                dropped += 1
    if dropped:
        with atomic_path(path) as tmp:
            book.save(tmp)
    return dropped


def _drop_pickle_rows(path: Path, pattern: re.Pattern[str], fn: Callable[[str], str]) -> int | None:
    """Rows of a pickled DataFrame (the campaign's rows file) without the person, whatever the
    columns' dtypes (object, pandas' str, numbers read as numbers), and a column named after
    them (a file without a header) renamed; None when the file is not a DataFrame."""
    try:
        frame = rows_file.load_rows(str(path))
    except (AssertionError, OSError, ValueError, EOFError, ImportError, AttributeError):
        return None
    mask = pd.Series(False, index=frame.index)
    for position in range(frame.shape[1]):
        cells = frame.iloc[:, position].astype(str)
        mask |= cells.str.contains(pattern, regex=True, na=False).to_numpy(dtype=bool)
    names = [fn(c) if isinstance(c, str) else c for c in frame.columns]
    renamed = names != list(frame.columns)
    if not mask.any() and not renamed:
        return 0
    kept = frame.loc[~mask.to_numpy()]
    kept.columns = pd.Index(names)
    with atomic_path(path) as tmp:
        kept.to_pickle(tmp)
    return max(int(mask.sum()), 1 if renamed else 0)


def _xlsx_text(path: Path) -> str:
    """The text inside a workbook (its XML parts), to look for numbers without opening it."""
    try:
        with zipfile.ZipFile(path) as book:
            return "\n".join(
                book.read(name).decode("utf-8", "replace")
                for name in book.namelist()
                if name.endswith(".xml")
            )
    except zipfile.BadZipFile:
        return path.read_bytes().decode("latin-1")


def erase_from_file(path: Path, pattern: re.Pattern[str], fn: Callable[[str], str]) -> FileCounts:
    """Take one person out of one file: their rows out of tables and rows files, their number
    masked in texts; a file that holds them in a form we cannot edit is removed."""
    counts = FileCounts()
    suffix = path.suffix.lower()
    hit = lambda text: pattern.search(text) is not None  # noqa: E731 - a one-line predicate
    if suffix in (".csv", ".tsv"):
        dropped = _drop_csv_rows(path, hit)
        if dropped:
            counts.rows_removed += dropped
            counts.rewritten.append(str(path))
        if _mask_text_file(path, fn) and str(path) not in counts.rewritten:  # a header, say
            counts.rewritten.append(str(path))
        return counts
    if suffix in (".xlsx", ".xlsm"):
        if hit(_xlsx_text(path)):
            counts.rows_removed += _drop_xlsx_rows(path, hit)
            if hit(_xlsx_text(path)):  # not in a row (a sheet name...): the file goes
                path.unlink()
                counts.removed.append(str(path))
            else:
                counts.rewritten.append(str(path))
        return counts
    if suffix == ".pkl":
        frame_rows = _drop_pickle_rows(path, pattern, fn)
        if frame_rows:
            counts.rows_removed += frame_rows
            counts.rewritten.append(str(path))
        if frame_rows is not None:
            return counts
    text = _read_text(path)
    if text is not None and suffix not in TABLE_SUFFIXES:
        if _mask_text_file(path, fn):
            counts.rewritten.append(str(path))
        return counts
    if hit(path.read_bytes().decode("latin-1")):
        path.unlink()
        counts.removed.append(str(path))
    return counts


def _is_row_level(path: Path, known: frozenset[str]) -> bool:
    """A table whose rows are people: it holds a phone number, or an ``e164`` column."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        text = _xlsx_text(path)
    elif suffix in (".pkl", ".parquet", ".xls"):
        return True  # binary tables are only ever rows (the pipeline writes none of its own)
    else:
        text = _read_text(path) or ""
    if re.search(r"(?<![\w])e164(?![\w])", text[:65536]):
        return True
    return has_number(text, known)


def purge_folder(folder: Path, known: frozenset[str]) -> FileCounts:
    """A report folder after its retention period: row-level tables removed, numbers masked in
    the text files that keep the aggregates, anything else holding a number removed."""
    counts = FileCounts()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in TABLE_SUFFIXES:
            if _is_row_level(path, known):
                path.unlink()
                counts.removed.append(str(path))
            continue
        text = _read_text(path)
        if text is None:
            if has_number(path.read_bytes().decode("latin-1"), known):
                path.unlink()
                counts.removed.append(str(path))
            continue
        if _mask_text_file(path, lambda t: mask_numbers(t, known)):
            counts.rewritten.append(str(path))
    return counts


def remove_folder(folder: Path) -> FileCounts:
    """A campaign's state folder: working copies only (a rerun rebuilds them): all removed, but
    for the rows file of a run still going (``live_run_file``), which its report needs."""
    counts = FileCounts()
    if not folder.is_dir():
        return counts
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    kept = [p for p in files if live_run_file(p)]
    if not kept:
        counts.removed = [str(p) for p in files]
        shutil.rmtree(folder)
        return counts
    for path in files:
        if path not in kept:
            path.unlink(missing_ok=True)
            counts.removed.append(str(path))
    return counts


def live_run_file(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is the rows file of a run that may still be going (see
    ``RUN_FILE_LIFETIME``): the latest ``rows.pkl`` is not one, a ``rows.<run>.pkl`` is."""
    name = path.name
    if not (name.startswith("rows.") and name.endswith(".pkl")) or name == "rows.pkl":
        return False
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except OSError:
        return False
    return age < RUN_FILE_LIFETIME.total_seconds()


def rows_numbers(state: Path) -> set[str]:
    """The E.164 numbers of a campaign's rows file, when there is one."""
    path = state / "rows.pkl"
    try:
        frame = rows_file.load_rows(str(path))
        return {n for n in frame[cols.E164].dropna() if isinstance(n, str)}
    except (OSError, AssertionError, ValueError, KeyError, EOFError, ImportError):
        return set()


def newest_change(folder: Path) -> float:
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    return max(times, default=folder.stat().st_mtime)


def local_files(exclude: Iterable[Path]) -> Iterator[Path]:
    """Every file under the state and report folders, but for ``exclude`` (
    the ledger's own files, the key) and the Prefect server's database kept there by
    ``scripts/server.py``."""
    skip = {p.resolve() for p in exclude}
    server = (runtime.state_dir() / "prefect-server").resolve()
    for root in (runtime.state_dir(), runtime.reports_dir()):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            real = path.resolve()
            if path.is_file() and real not in skip and not real.is_relative_to(server):
                yield path


def ledger_files(ledger_url: str) -> list[Path]:
    """A SQLite ledger's files (the database, its journal and write-ahead log)."""
    if not ledger_url.startswith("sqlite:///"):
        return []
    base = Path(ledger_url[len("sqlite:///") :])
    return [base.with_name(base.name + s) for s in ("", "-wal", "-shm", "-journal")]


def purge_campaign_files(campaign_id: str, known: frozenset[str]) -> FileCounts:
    """A purged campaign's folders: its state folder removed, its report folder purged."""
    counts = remove_folder(folders.state_dir(campaign_id))
    report = folders.report_dir(campaign_id)
    if report.is_dir():
        counts.merge(purge_folder(report, known))
    return counts


def purge_orphans(ledger_ids: set[str], cutoff: float) -> FileCounts:
    """Folders of campaigns the ledger never saw (dry runs), by the age of their files."""
    counts = FileCounts()
    state = runtime.state_dir()
    for root in (state, runtime.reports_dir()):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in ledger_ids or folder.name == "prefect-server":
                continue
            if newest_change(folder) >= cutoff:
                continue
            if root == state:
                if (folder / "rows.pkl").exists():  # a campaign's state folder, nothing else
                    counts.merge(remove_folder(folder))
            else:
                known = number_forms(rows_numbers(folders.state_dir(folder.name)))
                counts.merge(purge_folder(folder, known))
    return counts


__all__ = [
    "FileCounts",
    "erase_from_file",
    "local_files",
    "purge_campaign_files",
    "purge_folder",
    "purge_orphans",
]
