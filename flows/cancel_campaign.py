"""Call a campaign off before it goes out.

    python -m flows.cancel_campaign --campaign-id ID [--verbose]

Cancels at the gateway every scheduled chunk of the campaign still more than five minutes from its
slot, cancels in the ledger the chunks that were never sent (so a rerun skips them), and says
what could not be cancelled and why (already sent, too late, not found, being sent). Writes
``data/reports/<campaign>/cancel.json`` and a markdown artifact. The last line on stdout is a
JSON object with the counts; on an error, one line on stderr and a non-zero exit (the run's log
lines go to the Prefect UI, and to stderr too with ``--verbose``). Running it again is safe:
what is already cancelled is counted as such.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import Field

from flows.cli import one_line, quiet_console
from flows.parameters import ApiKeyBlock, Language
from smspartner import SMSPartnerClient, SMSPartnerError
from tasks import campaign as cp
from tasks import cancellation as cx
from tasks import i18n, runtime
from tasks import ledger as lg
from tasks import reporting as rp
from tasks.followup import gateway_problem
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.outcomes import CANCEL_OUTCOMES, Problem
from tasks.runs import masked_errors, name_this_run
from tasks.sending import CampaignStopped, gateway_url, get_api_key, shared_ledger, unusable_ledger


@task(name="cancel-chunks", cache_policy=NO_CACHE)
@masked_errors
def cancel_task(
    campaign_id: str, ledger_url: str, key_block: str | None = None
) -> list[cx.ChunkCancel] | Problem:
    """Cancel what can still be cancelled, chunk by chunk, and record it in the ledger."""
    ledger = shared_ledger(ledger_url)
    if not ledger.campaign_exists(campaign_id):
        return Problem(message=f"unknown campaign id {campaign_id!r} in the ledger")
    chunks = ledger.chunks(campaign_id)
    base_url = gateway_url()
    try:
        with SMSPartnerClient(get_api_key(key_block), base_url) as client:
            results = cx.cancel_chunks(client, ledger, chunks, datetime.now(UTC))
    except SMSPartnerError as exc:
        done = sum(1 for c in ledger.chunks(campaign_id) if c.state == lg.CANCELLED)
        return Problem(
            message=f"{gateway_problem(exc, base_url)}; {done} of {len(chunks)} "
            "chunks are cancelled so far, run the cancel again"
        )
    except CampaignStopped as exc:
        return Problem(message=str(exc))
    return results


@task(name="report-cancel", cache_policy=NO_CACHE)
@masked_errors
def report_task(
    campaign_id: str, results: list[cx.ChunkCancel], lang: Lang = DEFAULT_LANG
) -> dict[str, Any]:
    """cancel.json and the markdown artifact."""
    at = datetime.now(UTC)
    counts = cx.count(campaign_id, results)
    cx.write_cancel(cp.REPORTS_DIR / campaign_id, counts, results, at)
    create_markdown_artifact(
        key=rp.artifact_key(campaign_id, "cancel"),
        markdown=cx.markdown_cancel(counts, results, at, lang=lang),
        description=i18n.text(lang, "artifact.cancel"),
    )
    return counts


@flow(name="cancel-campaign", log_prints=False, persist_result=False)
def cancel_campaign(
    campaign_id: Annotated[
        str, Field(title="Campaign id", description="The campaign to call off.")
    ],
    api_key_block: ApiKeyBlock = None,
    lang: Language = DEFAULT_LANG,
) -> dict[str, Any]:
    """Cancel every scheduled chunk of a campaign that can still be cancelled."""
    logger = get_run_logger()
    try:
        cp.validate_campaign_id(campaign_id)
    except cp.CampaignError as exc:
        logger.error(str(exc))
        return Failed(message=str(exc))  # type: ignore[return-value]
    name_this_run(campaign_id, "cancel")
    ledger_url = runtime.ledger_url()
    if broken := unusable_ledger(ledger_url):  # one line, not a traceback
        logger.error(broken)
        return Failed(message=broken)  # type: ignore[return-value]
    results = cancel_task(campaign_id, ledger_url, api_key_block)
    if isinstance(results, Problem):
        logger.error(results.message)
        return Failed(message=results.message)  # type: ignore[return-value]
    counts = report_task(campaign_id, results, lang)
    logger.info(
        i18n.text(
            lang,
            "log.cancel_summary",
            cancelled=sum(counts[o] for o in CANCEL_OUTCOMES if o not in cx.NOT_CANCELLED),
            not_cancelled=sum(counts[o] for o in cx.NOT_CANCELLED),
            spared=counts["recipients_cancelled"],
        )
    )
    return counts


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.cancel_campaign",
        description="Cancel the scheduled sends of a campaign that can still be cancelled.",
    )
    parser.add_argument("--campaign-id", required=True, help="the campaign to call off")
    parser.add_argument("--api-key-block", help="Prefect Secret block holding the SMS Partner key")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the run's log lines")
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet_console()
    try:
        cp.validate_campaign_id(args.campaign_id)
    except cp.CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = cancel_campaign(
        campaign_id=args.campaign_id, api_key_block=args.api_key_block, return_state=True
    )
    if state.is_completed():
        print(json.dumps(state.result(), ensure_ascii=False), flush=True)
        return 0
    print(f"error: {one_line(state.message or 'cancel failed')}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
