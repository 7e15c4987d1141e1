"""Call a campaign off before it goes out.

    python -m flows.cancel_campaign --campaign-id ID [--lang fr|en] [--verbose]

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
import sys
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.states import State
from pydantic import Field

from flows import ending
from flows.cli import failure_exit, print_result, quiet_console
from flows.parameters import ApiKeyBlock, Language, operator_words
from tasks import cancellation as cx
from tasks import plan as pl
from tasks import runtime
from tasks.errors import OperatorError
from tasks.i18n import DEFAULT_LANG, LANGS, Lang
from tasks.steps import report
from tasks.steps.cancel import cancel_task, known_campaign, report_cancel_task
from tasks.steps.runs import name_this_run

# The cancel form's one field, in the operator's words. The form's schema is static: what is
# still scheduled is listed under the campaign's summary, whose link opens this form filled in.
CAMPAIGN_ID_TITLE = "Campagne à annuler (identifiant)"
CAMPAIGN_ID_HELP = (
    "Rempli par le lien « Annuler cette campagne » du résumé de la campagne, qui liste ce qui "
    "est encore programmé ; sinon, copiez l'identifiant depuis le nom de la campagne dans la "
    "page Runs. Cliquez ensuite sur « Submit » : les SMS programmés à plus de 5 minutes de leur "
    "heure d'envoi sont décommandés chez SMS Partner, ceux pas encore envoyés sont retirés ; "
    "les SMS déjà partis ne peuvent pas être rattrapés. Le résultat s'affiche dans l'onglet "
    "Artifacts. Les boutons « Cancel » de Prefect n'annulent aucun SMS."
)


@flow(name="cancel-campaign", log_prints=False, persist_result=False)
def cancel_campaign(
    campaign_id: Annotated[
        str,
        Field(
            **operator_words(CAMPAIGN_ID_TITLE, CAMPAIGN_ID_HELP),
        ),
    ],
    api_key_block: ApiKeyBlock = None,
    lang: Language = DEFAULT_LANG,
) -> dict[str, Any] | State[Any]:
    """Annule les envois d'une campagne qui peuvent encore l'être, puis met son rapport à jour.

    Cancels every scheduled chunk of a campaign that can still be cancelled, then brings the
    campaign's report (summary.json, report.html, chunks.*, rejects.*, artifacts) up to date."""
    logger = get_run_logger()
    try:
        pl.validate_campaign_id(campaign_id)
        name_this_run(campaign_id, "cancel")
        ledger_url = runtime.ledger_url()
        known_campaign(runtime.shared_ledger(ledger_url), campaign_id, lang)
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
    for line in cx.summary_lines(counts, lang):
        logger.info(line)
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
        description="Annule les SMS d'une campagne qui peuvent encore l'être (programmés à plus "
        "de 5 minutes de leur heure d'envoi, ou pas encore envoyés).",
    )
    parser.add_argument("--campaign-id", required=True, help="la campagne à annuler")
    parser.add_argument(
        "--api-key-block", help="le nom du secret Prefect qui garde la clé SMS Partner"
    )
    parser.add_argument(
        "--lang", choices=LANGS, default=DEFAULT_LANG, help="langue des messages (fr)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="affiche aussi le journal de l'exécution"
    )
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet_console()
    try:
        pl.validate_campaign_id(args.campaign_id)
    except pl.CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = cancel_campaign(
        campaign_id=args.campaign_id,
        api_key_block=args.api_key_block,
        lang=args.lang,
        return_state=True,
    )
    if state.is_completed() and isinstance(counts := state.result(), dict):
        print_result(counts, args.lang, "cancel")  # readable lines, then the JSON line
        return 0
    return failure_exit(state, "annulation en échec", lang=args.lang, kind="cancel")


if __name__ == "__main__":
    sys.exit(main())
