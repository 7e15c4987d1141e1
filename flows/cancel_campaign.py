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
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.states import Failed
from pydantic import Field

from flows.cli import one_line, quiet_console
from flows.parameters import ApiKeyBlock, Language
from tasks import campaign as cp
from tasks import cancellation as cx
from tasks import i18n, runtime
from tasks.i18n import DEFAULT_LANG
from tasks.outcomes import CANCEL_OUTCOMES, Problem
from tasks.runs import name_this_run


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
    if broken := runtime.unusable_ledger(ledger_url):  # one line, not a traceback
        logger.error(broken)
        return Failed(message=broken)  # type: ignore[return-value]
    results = cx.cancel_task(campaign_id, ledger_url, api_key_block)
    if isinstance(results, Problem):
        logger.error(results.message)
        return Failed(message=results.message)  # type: ignore[return-value]
    counts = cx.report_task(campaign_id, results, lang)
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
