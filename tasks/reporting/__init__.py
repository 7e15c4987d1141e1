"""The campaign report: what the operator and the Prefect UI are shown of a campaign.

Purpose and scope
    Files under ``data/reports/<campaign>/`` keep full numbers where the operator needs them
    (``rejects.csv`` / ``rejects.xlsx``, to fix the source); everything the Prefect UI shows is
    aggregated or masked. People's words (markdown, HTML) are French by default, English with
    ``lang="en"``; summary keys, JSON, CSV column names and reason codes never change (machine
    contracts).

    It does NOT read the ledger, publish artifacts or take a lock: the report step
    (``tasks/steps/report.py``) gathers the chunks and rows and hands them here. No Prefect.

Modules
    ``summary``     the typed summary (the JSON line, ``summary.json``), built whole; pure
    ``slot_words``  how each territory is sent, in words (both renderers); pure
    ``markdown``    the UI's markdown summary and artifact keys; pure
    ``html``        ``report.html``: one self-contained page with SVG charts
    ``tables``      CSV + XLSX a French Excel opens safely (no formula, no mangled number)
    ``folder``      the report folder's files: summary.json (and reading it back), chunks,
                    rejects, rows.pkl

Who imports it
    The steps (report, follow-up, cancel, approval), ``flows/`` (the summary), scripts and
    tests, through this face; the follow-up's delivery tables use ``tables``.
"""

from __future__ import annotations

from tasks.reporting.folder import (
    CHUNK_COLUMNS,
    ROWS_FILE,
    chunk_records,
    chunk_table,
    keep_file,
    read_summary,
    write_files,
)
from tasks.reporting.html import render_html, write_html_report
from tasks.reporting.markdown import artifact_key, markdown_summary
from tasks.reporting.slot_words import slot_sentence, slot_sentences
from tasks.reporting.summary import (
    CampaignSummary,
    as_mapping,
    build_summary,
    slot_plan,
    territory_table,
)
from tasks.reporting.tables import GUARD, read_table, write_table

__all__ = [
    "CHUNK_COLUMNS",
    "GUARD",
    "ROWS_FILE",
    "CampaignSummary",
    "artifact_key",
    "as_mapping",
    "build_summary",
    "chunk_records",
    "chunk_table",
    "keep_file",
    "markdown_summary",
    "read_summary",
    "read_table",
    "render_html",
    "slot_plan",
    "slot_sentence",
    "slot_sentences",
    "territory_table",
    "write_files",
    "write_html_report",
    "write_table",
]
