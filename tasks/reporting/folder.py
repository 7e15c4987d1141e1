"""The report folder's files, I/O: ``summary.json`` (written, and read back by
:func:`read_summary`), the chunks and the rejects as .csv and .xlsx
(``tasks/reporting/tables.py``), and the rows the report was made of (``rows.pkl``), each
replaced atomically (``tasks/files.py``). ``report.html`` is ``tasks/reporting/html.py``'s.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from tasks import i18n
from tasks.files import atomic_path, write_text_atomic
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.ledger.model import ChunkRow
from tasks.outcomes import GATEWAY_REJECTED, SENT
from tasks.reporting.summary import CampaignSummary
from tasks.reporting.tables import PeopleView, write_table
from tasks.row_columns import DETAIL, E164, OUTCOME, REASON, ROW
from tasks.slots import TERRITORY_ZONES

ROWS_FILE = "rows.pkl"  # the rows a report was made of, beside it
AT_ONCE = "at once"  # chunks.csv's slot of a chunk sent at once (a code: the CSV is for programs)

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
    "survey",  # last: the columns before it keep their places for programs that read them
)


def chunk_records(chunks: Sequence[ChunkRow], survey_id: str | None = None) -> list[dict[str, Any]]:
    """The chunks as rows of chunks.csv; a chunk without a survey of its own sends the
    campaign's (``survey_id``)."""
    return [
        {
            "index": c.chunk_index,
            "size": c.size,
            "territory": c.territory,
            "slot": c.slot or AT_ONCE,
            "tag": c.tag,
            "message_id": c.message_id,
            "nb_sms": c.nb_sms,
            "cost": c.cost,
            "state": c.state,
            "reason": c.reason,
            "refused": len(c.refused),
            "survey": getattr(c, "survey_id", None) or survey_id,
        }
        for c in chunks
    ]


def _slot_words(slot: object, territory: object, lang: Lang) -> object:
    """A chunk's slot in the recipients' clock ("mardi 7 janvier 10:00 (heure de Paris)")."""
    if not slot or slot == AT_ONCE:
        return i18n.text(lang, "xlsx.at_once")
    zones = TERRITORY_ZONES.get(str(territory))
    try:
        return i18n.when(
            datetime.fromisoformat(str(slot)), zones[0] if zones else "Europe/Paris", lang
        )
    except (TypeError, ValueError):
        return slot


def chunks_view(lang: Lang, header: Sequence[str] = CHUNK_COLUMNS) -> PeopleView:
    """The chunks' table as people read it: headers and codes in ``lang``."""
    at = {name: i for i, name in enumerate(header)}

    def row(values: Sequence[object]) -> list[object]:
        out = list(values)
        if "slot" in at:
            out[at["slot"]] = _slot_words(out[at["slot"]], out[at.get("territory", -1)], lang)
        if "territory" in at:
            out[at["territory"]] = i18n.territory_cell(str(out[at["territory"]]), lang)
        if "state" in at:
            out[at["state"]] = i18n.label(lang, "chunk_state", str(out[at["state"]]))
        if "reason" in at and out[at["reason"]]:
            out[at["reason"]] = i18n.label(lang, "reason", str(out[at["reason"]]))
        return out

    return PeopleView([i18n.label(lang, "xlsx.chunks", h) for h in header], row, _more_rows(lang))


def rejects_view(lang: Lang, source_columns: Sequence[str]) -> PeopleView:
    """The rejects' table as people read it. The detail is kept where it is the gateway's own
    words (a number it refused); elsewhere it restates the reason, in English."""
    first = 1 + len(source_columns)  # outcome, reason, detail, e164 follow the source's columns

    def row(values: Sequence[object]) -> list[object]:
        out = list(values)
        outcome, reason = str(out[first]), out[first + 1]
        out[first] = i18n.label(lang, "row_outcome", outcome)
        if reason is not None and reason == reason:  # NaN: no reason
            out[first + 1] = i18n.label(lang, "reason", str(reason))
        if lang != "en" and reason != GATEWAY_REJECTED:
            out[first + 2] = None
        return out

    header = [
        i18n.label(lang, "xlsx.rejects", "row"),
        *source_columns,
        *(i18n.label(lang, "xlsx.rejects", c) for c in ("outcome", "reason", "detail", "e164")),
    ]
    return PeopleView(header, row, _more_rows(lang))


def _more_rows(lang: Lang) -> Callable[[int, str], str]:
    return lambda n, name: i18n.text(lang, "xlsx.more_rows", n=i18n.number(n, lang), file=name)


def chunk_table(
    chunks: Sequence[ChunkRow], lang: Lang, survey_id: str | None = None
) -> list[dict[str, Any]]:
    """The chunks as the run's table artifact shows them: headers and codes in ``lang``."""
    view = chunks_view(lang)
    return [
        dict(zip(view.header, view.row([r[h] for h in CHUNK_COLUMNS]), strict=True))
        for r in chunk_records(chunks, survey_id)
    ]


def write_files(
    report_dir: Path,
    summary: Mapping[str, Any],
    chunks: Sequence[ChunkRow],
    rows: pd.DataFrame,
    source_columns: Sequence[str],
    *,
    rows_file: Path | None = None,
    lang: Lang = DEFAULT_LANG,
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
    survey = summary.get("survey_id")
    records = chunk_records(chunks, survey if isinstance(survey, str) else None)
    header = list(records[0]) if records else list(CHUNK_COLUMNS)
    paths["chunks"], paths["chunks_xlsx"] = write_table(
        report_dir / "chunks",
        header,
        ([r[h] for h in header] for r in records),
        for_people=chunks_view(lang, header),
    )
    not_sent = rows[rows[OUTCOME] != SENT]
    paths["rejects"], paths["rejects_xlsx"] = write_table(
        report_dir / "rejects",
        ["row", *source_columns, "outcome", "reason", "detail", "e164"],
        (
            [r[ROW], *(r[c] for c in source_columns), r[OUTCOME], r[REASON], r[DETAIL], r[E164]]
            for r in not_sent.to_dict("records")
        ),
        for_people=rejects_view(lang, source_columns),
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
    "chunk_table",
    "chunks_view",
    "rejects_view",
    "keep_file",
    "read_summary",
    "write_files",
]
