"""The cancel flow's tasks: what can still be cancelled called off, chunk by chunk, then
``cancel.json`` and the markdown artifact; and the offer to cancel under a campaign's summary
(``cancel_offer``: what is still scheduled, and the link to the cancel form filled in).

The rule is ``tasks/cancellation.py`` (``decide``); the gateway and ledger calls and the file
are ``tasks/cancel_io.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact

from smspartner import SMSPartnerClient, SMSPartnerError
from tasks import ledger as lg
from tasks import runtime
from tasks import witnesses as wt
from tasks.cancel_io import cancel_chunks, write_cancel
from tasks.cancellation import (
    ChunkCancel,
    count,
    markdown_cancel,
    markdown_offer,
    unknown_campaign_line,
    what_can_be_cancelled,
)
from tasks.errors import OperatorError, gateway_problem
from tasks.folders import report_dir
from tasks.i18n import DEFAULT_LANG, Lang, text
from tasks.outcomes import ChunkState
from tasks.reporting import artifact_key
from tasks.steps import step
from tasks.steps.runs import cancel_link
from tasks.witness_io import cancel_witnesses

# What the cancel did: one line per chunk, then one per witness's send (issue 23), handed from
# the cancel step to the report step as one list so the flow wires them as before.
Cancelled = ChunkCancel | wt.WitnessCancel


def known_campaign(ledger: lg.Ledger, campaign_id: str, lang: Lang = DEFAULT_LANG) -> None:
    """``UnknownCampaign`` for an id the ledger does not know: quoted as typed (a validated id
    is never masked), with where to find the right one."""
    # Imported here: the report imports this module for its cancel offer.
    from tasks.steps.report import UnknownCampaign

    if not ledger.campaign_exists(campaign_id):
        raise UnknownCampaign(unknown_campaign_line(campaign_id, lang))


def cancel_offer(campaign_id: str, chunks: list[lg.ChunkRow], lang: Lang = DEFAULT_LANG) -> str:
    """The section under a campaign's summary: what a cancel would still call off, and the
    link to the cancel form filled with the campaign's id; empty when nothing can be cancelled
    any more, or the cancel is not deployed on this server."""
    scheduled = what_can_be_cancelled(chunks, datetime.now(UTC))
    if not scheduled or not (link := cancel_link(campaign_id, lang)):
        return ""
    return markdown_offer(campaign_id, scheduled, link, lang)


@step("cancel-chunks")
def cancel_task(campaign_id: str, ledger_url: str, key_block: str | None = None) -> list[Cancelled]:
    """Cancel what can still be cancelled, chunk by chunk, then the campaign's witness sends,
    and record it in the ledger. A gateway that cannot be reached (or refuses the key) while
    cancelling the chunks is an ``OperatorError`` saying how far it got; what was cancelled
    before it stays cancelled, and running again resumes. A witness's send the gateway does
    not answer for is that send's outcome (``error``), never the run's end."""
    ledger = runtime.shared_ledger(ledger_url)
    chunks = ledger.chunks(campaign_id)
    base_url = runtime.gateway_url()
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            results: list[Cancelled] = []
            results += cancel_chunks(client, ledger, chunks, datetime.now(UTC))
            # After the chunks: the recipients come first; a witness's error is its own.
            results += cancel_witnesses(client, ledger, campaign_id, datetime.now(UTC))
            return results
    except SMSPartnerError as exc:
        done = sum(1 for c in ledger.chunks(campaign_id) if c.state == ChunkState.cancelled)
        raise OperatorError(
            f"{gateway_problem(exc, base_url)}; {done} of {len(chunks)} "
            "chunks are cancelled so far, run the cancel again"
        ) from None


@step("report-cancel")
def report_cancel_task(
    campaign_id: str, results: list[Cancelled], lang: Lang = DEFAULT_LANG
) -> dict[str, Any]:
    """cancel.json and the markdown artifact; the counts gain ``witnesses`` (their sends per
    outcome) only for a campaign that texted witnesses."""
    at = datetime.now(UTC)
    chunks = [r for r in results if isinstance(r, ChunkCancel)]
    witnesses = [r for r in results if isinstance(r, wt.WitnessCancel)]
    counts = count(campaign_id, chunks, wt.cancel_counts(witnesses) if witnesses else None)
    write_cancel(report_dir(campaign_id), counts, chunks, at, witnesses)
    create_markdown_artifact(
        key=artifact_key(campaign_id, "cancel"),
        markdown=markdown_cancel(counts, chunks, at, lang=lang, witnesses=witnesses),
        description=text(lang, "artifact.cancel"),
    )
    return counts
