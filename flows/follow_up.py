"""Follow a campaign's delivery: statuses by territory, a new report, STOP replies suppressed,
dead numbers retired.

Run it the day after a campaign's slot (or on a schedule)::

    python -m flows.follow_up --campaign-id ID [--retire-after K] [--retire-days D] [--verbose]

It reads the delivery statuses of every sent chunk from the gateway, writes
``data/reports/<campaign>/follow_up.json``, brings the campaign's report up to date (chunks
settled or cancelled since; summary.json, report.html with the delivery, chunks.*, rejects.*),
publishes new versions of the campaign's artifacts, and adds the numbers that replied STOP to
the never-text store. It keeps each recipient's status (by the store's keyed value, never the
number): a number "Not delivered" in K campaigns in a row (``--retire-after``, 2) goes into the
store as ``undeliverable`` for D days (``--retire-days``, 180), and out of it once delivered
again. The last line on stdout is a JSON object with the counts; on an error,
one line on stderr and a non-zero exit. The run's log lines go to the Prefect UI, and to stderr
too with ``--verbose``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

from prefect import flow, get_run_logger
from prefect.states import State
from pydantic import BeforeValidator, Field

from flows import ending
from flows.cli import failure_exit, print_result, quiet_console
from flows.parameters import (
    ApiKeyBlock,
    Language,
    Limits,
    RetireAfter,
    RetireDays,
    blank_is_none,
    operator_words,
    optional_switch,
)
from tasks import delivery, i18n, runtime
from tasks import plan as pl
from tasks import retire as rt
from tasks.errors import OperatorError
from tasks.i18n import DEFAULT_LANG, LANGS, Lang
from tasks.steps import follow_up as fu
from tasks.steps import report
from tasks.steps.runs import name_this_run

SETTLE_SECONDS = Limits.model_fields["settle_seconds"].default  # one default for both flows


@flow(name="follow-up-campaign", log_prints=False, persist_result=False)
def follow_up_campaign(
    campaign_id: Annotated[
        str | None,
        BeforeValidator(blank_is_none),
        Field(
            **operator_words(
                "Campagne",
                "L'identifiant de la campagne à suivre. Vide : toutes les campagnes récentes.",
                **optional_switch(
                    {"type": "string"}, "Une campagne", "Toutes les récentes", open_on_value=True
                ),
            )
        ),
    ] = None,
    since_days: Annotated[
        int,
        Field(
            ge=1,
            le=60,
            **operator_words(
                "Campagnes des derniers (jours)",
                "Sans campagne choisie : jusqu'où remonter.",
            ),
        ),
    ] = 7,
    retire_after: RetireAfter = rt.RETIRE_AFTER,
    retire_days: RetireDays = rt.RETIRE_DAYS,
    settle_seconds: Annotated[
        float,
        Field(
            ge=1,
            **operator_words(
                "Avancé · délai de vérification (secondes)",
                "Un envoi resté incertain compte comme non parti seulement ce délai après son "
                "dernier essai (après son heure s'il était programmé), si SMS Partner ne le "
                "connaît pas.",
            ),
        ),
    ] = SETTLE_SECONDS,
    api_key_block: ApiKeyBlock = None,
    lang: Language = DEFAULT_LANG,
) -> dict[str, Any] | State[Any]:
    """Read delivery statuses for sent campaigns, report them, suppress STOP replies and retire
    numbers that are no longer delivered.

    Args:
        campaign_id: The campaign to follow up; empty for every campaign that texted someone
            in the last `since_days` days (what the daily deployment does).
        since_days: How far back an empty campaign id looks.
        retire_after: "Not delivered" in this many campaigns in a row retires a number (0: never).
        retire_days: How long a retired number stays out of campaigns.
    """
    retiring = Retiring(retire_after, retire_days)
    try:
        ledger_url = runtime.ledger_url()
        runtime.shared_ledger(ledger_url)  # a ledger that cannot be opened: one line
        if campaign_id:
            name_this_run(campaign_id, "follow-up")
            return _follow_one(
                campaign_id, ledger_url, settle_seconds, api_key_block, lang, retiring
            )
        since = datetime.now(UTC) - timedelta(days=since_days)
        campaigns = runtime.shared_ledger(ledger_url).campaigns_texted_since(since)
    except OperatorError as exc:
        return ending.failed(exc)
    results, problems = _follow_each(
        campaigns, ledger_url, settle_seconds, api_key_block, lang, retiring
    )
    summary = {"since_days": since_days, "campaigns": results, "failed": problems}
    if problems:
        message = i18n.plural(lang, "follow_up.some_failed", len(problems), of=len(campaigns))
        return ending.failed(OperatorError(message, summary=summary))
    return summary


class Retiring(NamedTuple):
    """The two settings of dead numbers (``tasks/retire.py``)."""

    after: int = rt.RETIRE_AFTER
    days: int = rt.RETIRE_DAYS


def _follow_each(
    campaigns: list[str],
    ledger_url: str,
    settle_seconds: float,
    key_block: str | None,
    lang: Lang,
    retiring: Retiring,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each campaign in turn: the counts of those followed up, the one line of those that
    failed (one campaign's failure must not hide the others' statuses)."""
    logger = get_run_logger()
    results: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for cid in campaigns:
        try:
            results[cid] = _follow_one(cid, ledger_url, settle_seconds, key_block, lang, retiring)
        except OperatorError as exc:
            logger.error("%s: %s", cid, exc.message)
            problems[cid] = exc.message
    logger.info(i18n.text(lang, "log.follow_up_done", done=len(results), failed=len(problems)))
    return results, problems


def _follow_one(
    campaign_id: str,
    ledger_url: str,
    settle_seconds: float,
    key_block: str | None = None,
    lang: Lang = DEFAULT_LANG,
    retiring: Retiring = Retiring(),
) -> dict[str, Any]:
    """One campaign: chunks in doubt, statuses, STOP replies, each recipient's status (dead
    numbers retired, delivered ones released), new report and artifacts. Raises an
    ``OperatorError`` (unknown campaign, gateway, ledger, report) in one line."""
    logger = get_run_logger()
    pl.validate_campaign_id(campaign_id)
    ledger = runtime.shared_ledger(ledger_url)
    report.known_campaign(ledger, campaign_id, lang)
    bound = ledger.binding(campaign_id)
    cost_per_sms = Limits().cost_per_sms  # prices chunks no answer of the campaign priced
    doubt = fu.settle_in_doubt_task(
        campaign_id, ledger_url, settle_seconds, cost_per_sms, key_block
    )
    deliveries = fu.check_delivery_task(campaign_id, ledger_url, key_block)
    result = delivery.aggregate(
        campaign_id,
        deliveries,
        checked_at=datetime.now(UTC),
        survey_id=bound[0] if bound else None,
    )
    result.doubt = doubt
    added = fu.record_stops_task(ledger_url, campaign_id, delivery.stop_numbers(deliveries))
    result.stop_added = added
    moved = fu.record_deliveries_task(
        ledger_url, campaign_id, deliveries, retiring.after, retiring.days
    )
    result.retired, result.released = moved["retired"], moved["released"]
    fu.publish_task(result, deliveries, ledger_url, lang)
    counts = result.as_counts()
    logger.info(
        i18n.text(
            lang,
            "log.follow_up_summary",
            campaign=campaign_id,
            delivered=counts["delivered"],
            not_delivered=counts["not_delivered"],
            waiting=counts["waiting"],
            other=counts["other"],
            stops=added,
        )
    )
    return counts


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.follow_up",
        description="Read a sent campaign's delivery statuses, report them, suppress STOP replies.",
    )
    parser.add_argument(
        "--campaign-id", help="the campaign to follow up (default: every recent campaign)"
    )
    parser.add_argument(
        "--since-days", type=int, default=7, help="without --campaign-id: how far back to look"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=SETTLE_SECONDS,
        help="a chunk in doubt counts as not sent only this long after its last attempt",
    )
    parser.add_argument(
        "--retire-after",
        type=int,
        default=rt.RETIRE_AFTER,
        metavar="K",
        help="a number 'Not delivered' in K campaigns in a row goes into the never-text store "
        "as undeliverable (0: never)",
    )
    parser.add_argument(
        "--retire-days",
        type=int,
        default=rt.RETIRE_DAYS,
        metavar="D",
        help="how long such a number stays out (days)",
    )
    parser.add_argument("--api-key-block", help="Prefect Secret block holding the SMS Partner key")
    parser.add_argument("--lang", choices=LANGS, default=DEFAULT_LANG, help="report language")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the run's log lines")
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet_console()
    try:
        if args.campaign_id is not None:  # an empty id is a mistake, not "a new campaign"
            pl.validate_campaign_id(args.campaign_id)
        if not 1 <= args.since_days <= 60:
            raise pl.CampaignError("--since-days must be between 1 and 60")
        if problem := rt.settings_problem(args.retire_after, args.retire_days):
            raise pl.CampaignError(problem)
    except pl.CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = follow_up_campaign(
        campaign_id=args.campaign_id,
        since_days=args.since_days,
        retire_after=args.retire_after,
        retire_days=args.retire_days,
        settle_seconds=args.settle_seconds,
        api_key_block=args.api_key_block,
        lang=args.lang,
        return_state=True,
    )
    if state.is_completed() and isinstance(summary := state.result(), dict):
        print_result(summary, args.lang, "follow_up")
        return 0
    return failure_exit(state, "suivi en échec", lang=args.lang, kind="follow_up")


if __name__ == "__main__":
    sys.exit(main())
