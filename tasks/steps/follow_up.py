"""The follow-up flow's tasks: chunks left in doubt settled, delivery statuses read from the
gateway, STOP replies into the never-text store, each recipient's status into its delivery
history (numbers "Not delivered" campaign after campaign retired, delivered ones released), and
the campaign's report and artifacts brought up to date with the delivery.

The rules are in ``tasks/delivery.py``, the gateway calls and files in ``tasks/delivery_io.py``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from smspartner import SMSPartnerClient, SMSPartnerError
from tasks import folders, runtime
from tasks import ledger as lg
from tasks import reporting as rp
from tasks import row_columns as cols
from tasks.delivery import (
    ChunkDelivery,
    FollowUp,
    chunks_to_check,
    doubt_counts,
    markdown_delivery,
    number_statuses,
)
from tasks.delivery_io import check_chunks, write_follow_up
from tasks.errors import OperatorError, gateway_problem
from tasks.i18n import DEFAULT_LANG, Lang, number, plural, text
from tasks.nevertext import Origin
from tasks.outcomes import ChunkState
from tasks.reporting import read_summary, write_html_report
from tasks.sendcore import SendPolicy
from tasks.sending import SendSettings, settle_only
from tasks.steps import report as rep
from tasks.steps import step
from tasks.steps.runs import run_lang


@step("settle-in-doubt")
def settle_in_doubt_task(
    campaign_id: str,
    ledger_url: str,
    settle_seconds: float,
    cost_per_sms: float,
    key_block: str | None = None,
    lang: Lang | None = None,
) -> dict[str, int]:
    """Settle the chunks a send run left in doubt, where the gateway can now tell."""
    ledger = runtime.shared_ledger(ledger_url)
    doubtful = ledger.chunks(campaign_id, states=[ChunkState.in_doubt])
    if not doubtful:
        return doubt_counts([])
    settings = _settle_settings(campaign_id, ledger_url, settle_seconds, cost_per_sms)
    counts = doubt_counts(_settle_states(settings, ledger, doubtful, key_block))
    lang = run_lang(lang)
    get_run_logger().info(
        text(
            lang,
            "log.doubt_settled",
            n=number(len(doubtful), lang),
            sent=number(counts["confirmed_sent"], lang),
            not_sent=number(counts["not_sent"], lang),
            still=number(counts["still_in_doubt"], lang),
        )
    )
    return counts


def _settle_settings(
    campaign_id: str, ledger_url: str, settle_seconds: float, cost_per_sms: float
) -> SendSettings:
    return SendSettings(
        campaign_id=campaign_id,
        survey_id="-",  # nothing is sent here
        base_url=runtime.gateway_url(),
        ledger_url=ledger_url,
        owner=lg.owner_token(f"follow-up-{uuid.uuid4().hex[:8]}"),
        cost_per_recipient=cost_per_sms,  # when no answer of the campaign priced it
        send=SendPolicy(settle=timedelta(seconds=settle_seconds)),
    )


def _settle_states(
    settings: SendSettings, ledger: lg.Ledger, chunks: list[lg.ChunkRow], key_block: str | None
) -> list[str]:
    """Each chunk's ledger state once settled, all through one client."""
    with SMSPartnerClient(runtime.get_api_key(key_block), settings.base_url) as client:
        return [
            settle_only(settings, c.chunk_index, client=client, ledger=ledger).state for c in chunks
        ]


@step("check-delivery")
def check_delivery_task(
    campaign_id: str, ledger_url: str, key_block: str | None = None, lang: Lang | None = None
) -> list[ChunkDelivery]:
    """Ask the gateway for the statuses of every sent chunk of the campaign."""
    chunks = chunks_to_check(runtime.shared_ledger(ledger_url).chunks(campaign_id))
    base_url = runtime.gateway_url()
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            deliveries = check_chunks(client, chunks)
    except SMSPartnerError as exc:
        raise OperatorError(gateway_problem(exc, base_url)) from None
    get_run_logger().info(plural(run_lang(lang), "count.chunks_checked", len(deliveries)))
    return deliveries


@step("record-stops")
def record_stops_task(
    ledger_url: str, campaign_id: str, numbers: list[str], lang: Lang | None = None
) -> int:
    """Add the STOP replies to the never-text store; how many people were new to it."""
    store = runtime.never_text_store(runtime.shared_ledger(ledger_url))
    added = store.add(numbers, Origin.reply, "STOP reply", campaign_id)
    lang = run_lang(lang)
    said = text(lang, "log.stop_replies", n=number(len(numbers), lang), added=number(added, lang))
    get_run_logger().info(said)
    return added


@step("record-deliveries")
def record_deliveries_task(
    ledger_url: str,
    campaign_id: str,
    deliveries: list[ChunkDelivery],
    retire_after: int,
    retire_days: int,
    lang: Lang | None = None,
) -> dict[str, int]:
    """Each recipient's delivery status into the never-text store's history; the numbers it
    retires as undeliverable (``retire_after`` campaigns in a row, for ``retire_days`` days)
    and releases (delivered again). Counts only: no number leaves the store."""
    store = runtime.never_text_store(runtime.shared_ledger(ledger_url))
    done = store.record_deliveries(
        campaign_id, number_statuses(deliveries), after=retire_after, days=retire_days
    )
    lang = run_lang(lang)
    get_run_logger().info(
        text(
            lang,
            "log.retired",
            retired=number(done["retired"], lang),
            released=number(done["released"], lang),
        )
    )
    return done


@step("publish-delivery")
def publish_task(
    result: FollowUp,
    deliveries: list[ChunkDelivery],
    ledger_url: str,
    lang: Lang = DEFAULT_LANG,
) -> str:
    """follow_up.json and delivery.*, the campaign's report rebuilt with the ledger as it is
    now (chunks settled since, cancelled ones) and the delivery figures, and new versions of
    its artifacts."""
    cid = result.campaign_id
    report_dir = folders.report_dir(cid)
    ledger = runtime.shared_ledger(ledger_url)
    delivery_md = markdown_delivery(result, lang=lang)
    with ledger.lock(f"report {cid}"):
        try:
            write_follow_up(report_dir, result, deliveries)
        except OSError as exc:
            raise rep.ReportError(
                text(lang, "error.report_unwritten", folder=report_dir, why=exc.strerror or exc)
            ) from None
        rebuilt = rep.rebuild(cid, ledger, lang)
        summary = read_summary(report_dir, cid)
        page: Path | None = rebuilt.page if rebuilt else None
        if rebuilt is None and summary.complete:
            # A report written before its rows were kept: the delivery added, as it was.
            page = write_html_report(report_dir, summary.as_json(), result.as_dict(), lang=lang)
    create_markdown_artifact(
        key=rp.artifact_key(cid, "delivery"),
        markdown=delivery_md,
        description=text(lang, "artifact.delivery"),
    )
    if rebuilt is not None:
        rep.publish(
            rebuilt.summary,
            rebuilt.rows,
            rebuilt.chunks,
            rebuilt.page,
            lang,
            delivery_markdown=delivery_md,
        )
        rep.refreshed(rebuilt.summary, lang)
        return str(rebuilt.page)
    if page is None:
        # Not the campaign's newest report: a partial one would hide what the send run wrote.
        get_run_logger().warning(text(lang, "log.summary_elsewhere", folder=report_dir.parent))
        return ""
    rep.not_refreshed(cid, lang)
    rows = pd.DataFrame(columns=[cols.OUTCOME, cols.E164, cols.REASON])  # no rows kept to show
    chunks = ledger.chunks(cid)
    rep.publish(summary, rows, chunks, page, lang, delivery_markdown=delivery_md)
    return str(page)
