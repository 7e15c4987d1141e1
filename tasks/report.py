"""The report step: every row's outcome, the campaign's summary, its files and its artifacts.

The rules (outcomes, counts, the summary, the files) are in ``tasks/campaign.py`` and
``tasks/reporting.py``; this task reads the ledger once and writes what they make."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, Failed, State

from smspartner.errors import mask_phone_numbers
from tasks import approval as approve
from tasks import campaign as cp
from tasks import i18n, runtime
from tasks import ledger as lg
from tasks import reporting as rp
from tasks.alerts import emit_campaign_outcome
from tasks.html_report import write_html_report
from tasks.i18n import Lang
from tasks.outcomes import Problem
from tasks.runs import cancel_link, masked_errors
from tasks.summary import CampaignSummary


@dataclass(frozen=True)
class ReportRequest:
    """What the report needs besides the prepared campaign: plain values from the flow."""

    survey_id: str
    ledger_url: str
    started: float  # time.monotonic() when the run started
    cost_per_sms: float
    ledger_outage: float
    lang: Lang


@task(name="write-report", cache_policy=NO_CACHE)
@masked_errors
def report_task(
    prepared: cp.Prepared,
    request: ReportRequest,
    credits_after: float | None,
    send_seconds: float,
    approval: dict[str, Any] | None = None,
) -> CampaignSummary | Problem:
    """Outcome per row, summary, files and artifacts."""
    rows = cp.load_rows(prepared.rows_path)
    chunks: list[lg.ChunkRow] = []
    if not prepared.dry_run:
        try:
            ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
            chunks = ledger.reidentify(ledger.chunks(prepared.campaign_id), rows[cp.E164])
        except lg.LedgerUnavailable as exc:
            return Problem(message=str(exc))
    rows = cp.row_outcomes(rows, chunks, dry_run=prepared.dry_run)
    summary = _summary(prepared, request, rows, chunks, credits_after, send_seconds, approval)
    report_dir = cp.report_dir(prepared.campaign_id)
    try:
        # One writer at a time of a campaign's report, whichever machine it runs on.
        ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
        with ledger.lock(f"report {prepared.campaign_id}"):
            data = summary.as_json()
            rp.write_files(report_dir, data, chunks, rows, prepared.source_columns)
            page = write_html_report(report_dir, data, lang=request.lang)
    except OSError as exc:
        return Problem(message=f"cannot write the report in {report_dir}: {exc.strerror or exc}")
    except lg.LedgerUnavailable as exc:
        return Problem(message=str(exc))
    cp.drop_run_rows(prepared.rows_path)
    publish(summary, rows, chunks, page, request.lang)
    return summary


def _summary(
    prepared: cp.Prepared,
    request: ReportRequest,
    rows: Any,
    chunks: list[lg.ChunkRow],
    credits_after: float | None,
    send_seconds: float,
    approval: dict[str, Any] | None,
) -> CampaignSummary:
    counts = cp.count_outcomes(rows)
    estimated = None
    if prepared.dry_run:
        estimated = round(counts.rejected.get(cp.DRY_RUN, 0) * request.cost_per_sms, 4)
    summary = rp.build_summary(
        campaign_id=prepared.campaign_id,
        survey_id=request.survey_id,
        counts=counts,
        chunks=chunks,
        rows=rows,
        decisions=prepared.decisions,
        credits_before=prepared.credits_before,
        credits_after=credits_after,
        currency=prepared.currency,
        dry_run=prepared.dry_run,
        duration=time.monotonic() - request.started,
        report_dir=cp.report_dir(prepared.campaign_id),
        estimated_cost=estimated,
    )
    summary.send_seconds = round(send_seconds, 3)
    if prepared.dry_run:
        summary.plan = prepared.dry_plan
    if approval:
        summary.approval = approval  # who said what is kept with the campaign's report
    return summary


def publish(
    summary: CampaignSummary, rows: Any, chunks: list[lg.ChunkRow], page: Path, lang: Lang
) -> None:
    """The campaign's artifacts: the summary (with the approval and a cancel link), the chunks'
    table and a link to the HTML report."""
    cid = summary.campaign_id
    markdown = rp.markdown_summary(summary, rows, lang=lang)
    if approval := summary.approval:
        comment = f" : « {approval['comment']} »" if approval.get("comment") else ""
        decision = i18n.text(lang, f"approval.decision_{approval['decision']}")
        markdown += f"\n\n{i18n.text(lang, 'approval.heading')}{decision}{comment}\n"
    if not summary.dry_run and (link := cancel_link(cid)):
        markdown += (
            f"\n\n[Annuler la campagne / Cancel the campaign]({link}) : Run, "
            f"campaign id = `{cid}` (the chunks still scheduled are called off)\n"
        )
    create_markdown_artifact(
        key=rp.artifact_key(cid, "summary"),
        markdown=markdown,
        description=i18n.text(lang, "artifact.summary"),
    )
    create_table_artifact(
        key=rp.artifact_key(cid, "chunks"),
        table=rp.chunk_records(chunks)
        or [{"index": "-", "state": i18n.text(lang, "artifact.nothing_sent")}],
        description=i18n.text(lang, "artifact.chunks"),
    )
    create_link_artifact(
        key=rp.artifact_key(cid, "report"),
        link=page.resolve().as_uri(),
        link_text=i18n.text(lang, "artifact.report_link", page=page),
    )


def end_state(
    summary: CampaignSummary | Problem,
    verdict: approve.Verdict,
    approval: approve.Approval,
    stop: str | None,
) -> State[Any] | dict[str, Any]:
    """How the send run ends: Completed with the summary's JSON, or why not, with the summary as
    the state's data (what was done, or would have been sent)."""
    logger = get_run_logger()
    if isinstance(summary, Problem):
        message = mask_phone_numbers(stop or summary.message)
        logger.error(message)
        return Failed(message=message)
    data = summary.as_json()
    if not verdict.lets_send:
        message, name = approve.unapproved_end(verdict, approval.timeout_hours)
        if name is None:
            logger.error(message)
            return Failed(message=message, data=data)
        logger.warning(message)
        return Cancelled(message=message, name=name, data=data)
    if stop:
        stop = mask_phone_numbers(stop)
        logger.error(stop)
        return Failed(message=stop, data=data)
    logger.info(
        i18n.text(
            approval.lang,
            "log.campaign_summary",
            campaign=summary.campaign_id,
            sent=summary.sent,
            failed=summary.failed,
            rejected=summary.rejected_total,
            cost=i18n.money(summary.cost, summary.currency, approval.lang),
        )
    )
    emit_campaign_outcome(data)  # failed or in-doubt chunks: the operator's automation hears
    return data
