"""The report step: every row's outcome, the campaign's summary, its files and its artifacts.

The rules (outcomes, counts, the summary, the files) are in ``tasks/accounting.py`` and
``tasks/reporting/``; this module reads the ledger and writes what they make. One code path
serves the send run's report and its refresh (after a cancel, a follow-up): the same rows, the
ledger's chunks as they are now, the same rules.

A refresh has no send run at hand: it reads what the report folder keeps, the rows the last
report was made of (``rows.pkl``, removed with the other row-level files by the retention
purge) and ``summary.json`` (survey, credits, timing, approval), and the ledger's chunks.
Both take the ledger's lock ``report <campaign>``, so two reports never interleave, whichever
machines they run on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from tasks import accounting, folders, i18n, outcomes, rows_file, runtime, witness_io
from tasks import ledger as lg
from tasks import plan as pl
from tasks import reporting as rp
from tasks import row_columns as cols
from tasks.errors import OperatorError
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.outcomes import CAMPAIGN_CANCELLED
from tasks.reporting import CampaignSummary, read_summary, write_html_report
from tasks.steps import step
from tasks.steps.cancel import cancel_offer

ROWS_FILE = rp.ROWS_FILE  # in the report folder: the rows the report was made of
FOLLOW_UP_FILE = "follow_up.json"
# The columns the pipeline adds to the source's own (tasks/row_columns.py).
PIPELINE_COLUMNS = frozenset(
    {
        cols.ROW,
        cols.E164,
        cols.TERRITORY,
        cols.REASON,
        cols.DETAIL,
        cols.OUTCOME,
        cols.SURVEY,
        cols.RULE,
    }
)


class ReportError(OperatorError):
    """The campaign's report cannot be written (disk full, its folder removed by a purge)."""


class UnknownCampaign(OperatorError):
    """A campaign id the ledger does not know (mistyped, or never sent)."""


def unknown_campaign(campaign_id: str, lang: Lang = DEFAULT_LANG) -> UnknownCampaign:
    # The id was validated (pl.validate_campaign_id), so the error's masking leaves it as typed.
    return UnknownCampaign(i18n.text(lang, "error.unknown_campaign", campaign=campaign_id))


def known_campaign(ledger: lg.Ledger, campaign_id: str, lang: Lang = DEFAULT_LANG) -> lg.Ledger:
    """The ledger, when it knows the campaign; else ``UnknownCampaign``."""
    if not ledger.campaign_exists(campaign_id):
        raise unknown_campaign(campaign_id, lang)
    return ledger


@dataclass(frozen=True)
class ReportRequest:
    """What the report needs besides the prepared campaign: plain values from the flow."""

    survey_id: str
    ledger_url: str
    started: float  # time.monotonic() when the run started
    cost_per_sms: float
    ledger_outage: float
    lang: Lang


@dataclass(frozen=True)
class Report:
    """A report as written: the summary, the rows with their outcome, the chunks, the page."""

    summary: CampaignSummary
    rows: pd.DataFrame
    chunks: list[lg.ChunkRow]
    page: Path
    follow_up: dict[str, Any] | None = None


# -- the rules both paths share ----------------------------------------------------------------


def compose(
    base: CampaignSummary, rows: pd.DataFrame, chunks: list[lg.ChunkRow]
) -> CampaignSummary:
    """The summary of ``rows`` (with their outcomes) and ``chunks``: counts, cost, slots and
    chunk states from them; what only the send run knew (survey, credits, timing, approval,
    a dry run's plan, the sample's draw, the witnesses, keys of a newer version) kept from
    ``base``."""
    built = rp.build_summary(
        campaign_id=base.campaign_id,
        survey_id=base.survey_id or "",
        counts=accounting.count_outcomes(rows),
        chunks=chunks,
        rows=rows,
        decisions=base.slot_explanations,
        credits_before=base.credits_before,
        credits_after=base.credits_after,
        currency=base.currency,
        dry_run=base.dry_run,
        duration=float(base.duration_seconds or 0.0),
        report_dir=folders.report_dir(base.campaign_id),
        estimated_cost=base.estimated_cost,
        witnesses=base.witnesses,
        sample=base.sample,
    )
    return CampaignSummary.model_validate({**base.as_json(), **built.as_json()})


def source_columns(rows: pd.DataFrame) -> list[str]:
    """The input's own columns (for rejects.csv): all but those the pipeline added."""
    return [c for c in rows.columns if c not in PIPELINE_COLUMNS]


def read_follow_up(report_dir: Path) -> dict[str, Any] | None:
    """The last follow-up's figures, when there was one (the report keeps showing them)."""
    try:
        data = json.loads((report_dir / FOLLOW_UP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_report(
    summary: CampaignSummary,
    rows: pd.DataFrame,
    chunks: list[lg.ChunkRow],
    lang: Lang,
    *,
    rows_file: Path | None = None,
) -> Report:
    """summary.json, chunks.*, rejects.*, report.html (with the last follow-up's figures);
    the caller holds the report lock. A file that cannot be written is a ``ReportError``,
    and no temporary file is left (tasks/files.py)."""
    report_dir = folders.report_dir(summary.campaign_id)
    follow_up = read_follow_up(report_dir)
    data = summary.as_json()
    try:
        rp.write_files(
            report_dir, data, chunks, rows, source_columns(rows), rows_file=rows_file, lang=lang
        )
        page = write_html_report(report_dir, data, follow_up, lang=lang)
    except OSError as exc:
        raise ReportError(
            i18n.text(
                lang,
                "error.report_unwritten",
                folder=report_dir,
                why=exc.strerror or type(exc).__name__,
            )
        ) from None
    return Report(summary, rows, chunks, page, follow_up)


def publish(
    summary: CampaignSummary,
    rows: Any,
    chunks: list[lg.ChunkRow],
    page: Path,
    lang: Lang,
    *,
    delivery_markdown: str | None = None,
) -> None:
    """The campaign's artifacts: the summary (with the approval, a cancel link, and the
    delivery when a follow-up gives it), the chunks' table and a link to the HTML report."""
    cid = summary.campaign_id
    markdown = rp.markdown_summary(summary, rows, lang=lang)
    if approval := summary.approval:
        comment = f" : « {approval['comment']} »" if approval.get("comment") else ""
        decision = i18n.text(lang, f"approval.decision_{approval['decision']}")
        markdown += f"\n\n{i18n.text(lang, 'approval.heading')}{decision}{comment}\n"
    if not summary.dry_run and (offer := cancel_offer(cid, chunks, lang)):
        markdown += f"\n\n{offer}\n"  # what is still scheduled, the cancel form filled in
    if delivery_markdown:
        markdown += "\n\n" + delivery_markdown.replace("# ", "## ", 1)
    create_markdown_artifact(
        key=rp.artifact_key(cid, "summary"),
        markdown=markdown,
        description=i18n.text(
            lang, "artifact.summary_delivery" if delivery_markdown else "artifact.summary"
        ),
    )
    create_table_artifact(
        key=rp.artifact_key(cid, "chunks"),
        table=rp.chunk_table(chunks, lang, summary.survey_id)
        or [
            {
                i18n.label(lang, "xlsx.chunks", "index"): "-",
                i18n.label(lang, "xlsx.chunks", "state"): i18n.text(lang, "artifact.nothing_sent"),
            }
        ],
        description=i18n.text(lang, "artifact.chunks"),
    )
    create_link_artifact(
        key=rp.artifact_key(cid, "report"),
        link=page.resolve().as_uri(),
        link_text=i18n.text(lang, "artifact.report_link", page=page),
    )


# -- the send run's report ---------------------------------------------------------------------


@step("write-report")
def report_task(
    prepared: pl.Prepared,
    request: ReportRequest,
    credits_after: float | None,
    send_seconds: float,
    approval: dict[str, Any] | None = None,
    witnesses: dict[str, Any] | None = None,
) -> CampaignSummary:
    """Outcome per row, summary, files and artifacts. ``witnesses``: what the witness step
    did ({"texted": n, ...}; None: no witnesses). Raises ``ReportError`` (a file cannot be
    written) or ``LedgerUnavailable``."""
    cid = prepared.campaign_id
    rows = rows_file.load_rows(prepared.rows_path)
    ledger = None if prepared.dry_run else _ledger(request)
    chunks = ledger.reidentify(ledger.chunks(cid), rows[cols.E164]) if ledger else []
    rows = accounting.row_outcomes(rows, chunks, dry_run=prepared.dry_run)
    summary = compose(
        _base(prepared, request, rows, credits_after, send_seconds, approval, witnesses),
        rows,
        chunks,
    )
    # One writer at a time of a campaign's report, whichever machine it runs on.
    with _ledger(request).lock(f"report {cid}"):
        # The rows are kept beside the report (not a dry run's: nothing to refresh), so that
        # a cancel or a follow-up can rebuild it by the same rules.
        keep = None if prepared.dry_run else Path(prepared.rows_path)
        report = write_report(summary, rows, chunks, request.lang, rows_file=keep)
    rows_file.drop_run_rows(prepared.rows_path)
    publish(summary, rows, chunks, report.page, request.lang)
    return summary


def _ledger(request: ReportRequest) -> lg.Ledger:
    return runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)


def _base(
    prepared: pl.Prepared,
    request: ReportRequest,
    rows: pd.DataFrame,
    credits_after: float | None,
    send_seconds: float,
    approval: dict[str, Any] | None,
    witnesses: dict[str, Any] | None = None,
) -> CampaignSummary:
    """What the send run knows beyond its rows and chunks."""
    base = CampaignSummary(
        campaign_id=prepared.campaign_id,
        survey_id=request.survey_id,
        slot_explanations=dict(prepared.decisions),
        credits_before=prepared.credits_before,
        credits_after=credits_after,
        currency=prepared.currency,
        dry_run=prepared.dry_run,
        duration_seconds=round(time.monotonic() - request.started, 3),
        send_seconds=round(send_seconds, 3),
    )
    if prepared.dry_run:
        would_send = int((rows[cols.REASON] == outcomes.DRY_RUN).sum())
        base.estimated_cost = round(would_send * request.cost_per_sms, 4)
        base.plan = prepared.dry_plan
    if approval:
        base.approval = approval  # who said what is kept with the campaign's report
    base.witnesses = witnesses_texted(witnesses)
    # getattr: a Prepared pickled by a version without the sample (a resumed run) has none.
    if (sample := getattr(prepared, "sample", None)) is not None:
        base.sample = dict(sample)
    return base


def witnesses_texted(witnesses: dict[str, Any] | None) -> int:
    """How many witnesses got the survey, from the witness step's figures (none: 0)."""
    texted = (witnesses or {}).get("texted", 0)
    return texted if isinstance(texted, int) and not isinstance(texted, bool) else 0


# -- the refresh -------------------------------------------------------------------------------


def rebuild(campaign_id: str, ledger: lg.Ledger, lang: Lang) -> Report | None:
    """The campaign's report again, from the rows and summary its folder keeps and the
    ledger's chunks as they are now; the caller holds the report lock. None when the folder
    keeps no rows to rebuild from (a dry run, a report of an older version, purged rows)."""
    report_dir = folders.report_dir(campaign_id)
    before = read_summary(report_dir, campaign_id)
    if not before.complete or before.dry_run or not (report_dir / ROWS_FILE).is_file():
        return None
    try:
        rows = rows_file.load_rows(str(report_dir / ROWS_FILE))
    except (OSError, AssertionError, ValueError, EOFError):
        return None  # removed by a purge meanwhile, or not ours
    chunks = ledger.reidentify(ledger.chunks(campaign_id), rows[cols.E164])
    rows = accounting.row_outcomes(rows, chunks, dry_run=False)
    if before.witnesses:  # as the ledger says now: a cancel may have called them off
        before.witnesses = witness_io.texted_count(ledger, campaign_id)
    return write_report(compose(before, rows, chunks), rows, chunks, lang)


def refresh_report(campaign_id: str, ledger_url: str, lang: Lang = DEFAULT_LANG) -> Report | None:
    """Rebuild the report (under its lock) and publish its artifacts again; None, with a
    warning, when it cannot be rebuilt."""
    ledger = runtime.shared_ledger(ledger_url)
    with ledger.lock(f"report {campaign_id}"):
        report = rebuild(campaign_id, ledger, lang)
    if report is None:
        not_refreshed(campaign_id, lang)
        return None
    publish(report.summary, report.rows, report.chunks, report.page, lang)
    refreshed(report.summary, lang)
    return report


def refreshed(summary: CampaignSummary, lang: Lang) -> None:
    get_run_logger().info(
        i18n.text(
            lang,
            "log.report_refreshed",
            campaign=summary.campaign_id,
            sent=i18n.number(summary.sent, lang),
            cancelled=i18n.number(summary.rejected.get(CAMPAIGN_CANCELLED, 0), lang),
            cost=i18n.money(summary.cost, summary.currency, lang),
        )
    )


def not_refreshed(campaign_id: str, lang: Lang) -> None:
    get_run_logger().warning(
        i18n.text(
            lang,
            "log.report_not_refreshed",
            campaign=campaign_id,
            folder=folders.report_dir(campaign_id),
        )
    )


@step("refresh-report")
def refresh_task(campaign_id: str, ledger_url: str, lang: Lang = DEFAULT_LANG) -> str | None:
    """The campaign's report files and artifacts, brought up to the ledger (after a cancel)."""
    report = refresh_report(campaign_id, ledger_url, lang)
    return None if report is None else str(report.page)
