"""Call a campaign off before it goes out.

    python -m flows.cancel_campaign --campaign-id ID [--verbose]

Cancels at the gateway every scheduled chunk of the campaign still more than five minutes from its
slot, cancels in the ledger the chunks that were never sent (so a rerun skips them), and says
what could not be cancelled and why (already sent, too late, not found, being sent). Writes
``data/reports/<campaign>/cancel.json`` and a markdown artifact, then brings the campaign's
report up to date (summary.json, report.html, chunks.*, rejects.*, its artifacts): cancelled
chunks shown cancelled, their recipients rejected with the reason ``cancelled``, the cost as it
is. The last line on stdout is a JSON object with the counts; on an error, one line on stderr
and a non-zero exit (the run's log lines go to the Prefect UI, and to stderr too with
``--verbose``). Running it again is safe: what is already cancelled is counted as such.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.states import State
from pydantic import Field

from flows import ending
from flows.cli import failure_exit, quiet_console
from flows.parameters import ApiKeyBlock, Language
from tasks import cancellation as cx
from tasks import i18n, runtime
from tasks import plan as pl
from tasks.errors import OperatorError
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.outcomes import CANCEL_OUTCOMES
from tasks.steps import report
from tasks.steps.cancel import cancel_task, report_cancel_task
from tasks.steps.runs import name_this_run


@flow(name="cancel-campaign", log_prints=False, persist_result=False)
def cancel_campaign(
    campaign_id: Annotated[
        str, Field(title="Campaign id", description="The campaign to call off.")
    ],
    api_key_block: ApiKeyBlock = None,
    lang: Language = DEFAULT_LANG,
) -> dict[str, Any] | State[Any]:
    """Cancel every scheduled chunk of a campaign that can still be cancelled, then bring the
    campaign's report (summary.json, report.html, chunks.*, rejects.*, artifacts) up to date."""
    logger = get_run_logger()
    try:
        pl.validate_campaign_id(campaign_id)
        name_this_run(campaign_id, "cancel")
        ledger_url = runtime.ledger_url()
        report.known_campaign(runtime.shared_ledger(ledger_url), campaign_id, lang)
        try:
            results = cancel_task(campaign_id, ledger_url, api_key_block)
        except OperatorError:
            # What was cancelled before the gateway failed shows in the report all the same.
            _refresh_anyway(campaign_id, ledger_url, lang)
            raise
        counts = report_cancel_task(campaign_id, results, lang)
        report.refresh_task(campaign_id, ledger_url, lang)
    except OperatorError as exc:
        return ending.failed(exc)
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


def _refresh_anyway(campaign_id: str, ledger_url: str, lang: Lang) -> None:
    """The report refreshed on the way out of a failed cancel; its own failure is logged, the
    cancel's error is the one the run ends with."""
    try:
        report.refresh_task(campaign_id, ledger_url, lang)
    except OperatorError as exc:
        get_run_logger().warning(exc.message)


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
        pl.validate_campaign_id(args.campaign_id)
    except pl.CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = cancel_campaign(
        campaign_id=args.campaign_id, api_key_block=args.api_key_block, return_state=True
    )
    if state.is_completed():
        print(json.dumps(state.result(), ensure_ascii=False), flush=True)
        return 0
    return failure_exit(state, "cancel failed")


if __name__ == "__main__":
    sys.exit(main())
