"""The report folder's files, I/O: ``summary.json`` (written, and read back by
:func:`read_summary`), the chunks and the rejects as .csv and .xlsx
(``tasks/reporting/tables.py``), and the rows the report was made of (``rows.pkl``), each
replaced atomically (``tasks/files.py``). ``report.html`` is ``tasks/reporting/html.py``'s.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from tasks.files import atomic_path, write_text_atomic
from tasks.ledger.model import ChunkRow
from tasks.outcomes import SENT
from tasks.reporting.summary import CampaignSummary
from tasks.reporting.tables import write_table
from tasks.row_columns import DETAIL, E164, OUTCOME, REASON, ROW

ROWS_FILE = "rows.pkl"  # the rows a report was made of, beside it

CHUNK_COLUMNS = (
    "index",
    "size",
    "territory",
    "slot",
    "tag",
    "message_id",
    "nb_sms",
    "cost",
    "state",
    "reason",
    "refused",
)


def chunk_records(chunks: Sequence[ChunkRow]) -> list[dict[str, Any]]:
    return [
        {
            "index": c.chunk_index,
            "size": c.size,
            "territory": c.territory,
            "slot": c.slot or "at once",
            "tag": c.tag,
            "message_id": c.message_id,
            "nb_sms": c.nb_sms,
            "cost": c.cost,
            "state": c.state,
            "reason": c.reason,
            "refused": len(c.refused),
        }
        for c in chunks
    ]


def write_files(
    report_dir: Path,
    summary: Mapping[str, Any],
    chunks: Sequence[ChunkRow],
    rows: pd.DataFrame,
    source_columns: Sequence[str],
    *,
    rows_file: Path | None = None,
) -> dict[str, Path]:
    """summary.json; chunks and rejects (original row + reason, full numbers) as .csv + .xlsx;
    with ``rows_file``, the rows the report was made of as ``rows.pkl`` (a cancel or a
    follow-up rebuilds the report from it: tasks/steps/report.py). Every file is replaced
    atomically, and a failure leaves no temporary file (tasks/files.py)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {"summary": report_dir / "summary.json"}
    if rows_file is not None:
        paths["rows"] = keep_file(rows_file, report_dir / ROWS_FILE)
    write_text_atomic(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    records = chunk_records(chunks)
    header = list(records[0]) if records else list(CHUNK_COLUMNS)
    paths["chunks"], paths["chunks_xlsx"] = write_table(
        report_dir / "chunks", header, ([r[h] for h in header] for r in records)
    )
    not_sent = rows[rows[OUTCOME] != SENT]
    paths["rejects"], paths["rejects_xlsx"] = write_table(
        report_dir / "rejects",
        ["row", *source_columns, "outcome", "reason", "detail", "e164"],
        (
            [r[ROW], *(r[c] for c in source_columns), r[OUTCOME], r[REASON], r[DETAIL], r[E164]]
            for r in not_sent.to_dict("records")
        ),
    )
    return paths


def keep_file(source: Path, path: Path) -> Path:
    """``source`` published as ``path``, atomically: a hard link where the file system allows
    it (no copy of a million rows), else a copy."""
    with atomic_path(path) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    return path


def read_summary(report_dir: Path, campaign_id: str) -> CampaignSummary:
    """A campaign's ``summary.json``, or a bare summary (``complete`` False) when it is missing
    or unreadable: the follow-up still reports what the gateway says."""
    try:
        return CampaignSummary.model_validate_json((report_dir / "summary.json").read_bytes())
    except (OSError, ValidationError):
        return CampaignSummary(campaign_id=campaign_id)


__all__ = [
    "CHUNK_COLUMNS",
    "ROWS_FILE",
    "chunk_records",
    "keep_file",
    "read_summary",
    "write_files",
]
