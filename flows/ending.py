"""How a flow run ends when it cannot go on: one line, no traceback, the right state.

An ``OperatorError`` (tasks/errors.py) becomes a Failed (or Cancelled) state whose message is its
line and whose data is the error itself: Prefect's engine re-raises a failed run's data at the
end of the run, and re-raising an exception of the family is quiet (see ``flows/__init__.py``).
The command line reads the summary and the exit code back from the error.

A send run ends Completed only when every loaded row ended sent or rejected with a reason
(``end_state``); rows failed or in doubt make it ``Incomplete`` (a Failed state), with one line
in the campaign's language: how many, why, and the next step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import get_run_logger
from prefect.states import Cancelled, Failed, State

from tasks import approval as approve
from tasks import i18n
from tasks.errors import CampaignIncomplete, OperatorError, mask
from tasks.i18n import Lang
from tasks.outcomes import Reason
from tasks.reporting import CampaignSummary
from tasks.reporting.terminal import NEXT_STEP
from tasks.steps.alerts import emit_campaign_outcome

_REASONS = frozenset(Reason)
INCOMPLETE = "Incomplete"  # the Failed state's name (deployments/automations.yaml knows it)

_NEXT = NEXT_STEP  # the next step, by the commonest reason rows were not sent


def failed(error: OperatorError, *, name: str | None = None) -> State[Any]:
    """The Failed state of a run ended by ``error`` (its line logged once, as an error)."""
    get_run_logger().error(error.message)
    if name:
        return Failed(message=error.message, data=error, name=name)
    return Failed(message=error.message, data=error)


def cancelled(error: OperatorError, name: str) -> State[Any]:
    """The Cancelled state of a run a person (or a timeout) stopped before any send."""
    get_run_logger().warning(error.message)
    return Cancelled(message=error.message, name=name, data=error)


def incomplete_line(summary: CampaignSummary, lang: Lang, stop: str | None = None) -> str | None:
    """One line on the rows not sent (None: there are none), e.g. "80 415 destinataires non
    envoyés : crédits insuffisants. Rechargez le compte SMS Partner, puis relancez la campagne
    X." The commonest reason comes first and chooses the next step; rows a stop left unsent
    (a refused key, the ledger gone) say what stopped the sends (``stop``)."""
    if summary.failed <= 0:
        return None
    reasons = Counter({r: n for r, n in summary.failed_reasons.items() if n > 0})
    ranked = [r for r, _ in reasons.most_common()][:2]  # the two commonest

    def said(reason: str) -> str:
        if reason in _REASONS:
            return i18n.label(lang, "reason", reason)
        # A chunk the campaign never got to (still pending when the sends stopped).
        return i18n.text(lang, "end.stopped") + (f" ({mask(stop)})" if stop else "")

    why = ", ".join(
        said(r) + (f" ({i18n.number(reasons[r], lang)})" if len(reasons) > 1 else "")
        for r in ranked
    ) or (said("") if stop else i18n.text(lang, "unknown"))
    first = ranked[0] if ranked else ""
    step = _NEXT.get(first) or ("end.next.fix" if stop else "end.next.other")
    head = i18n.plural(lang, "end.not_sent", summary.failed)
    return (
        f"{head}{i18n.text(lang, 'sep.colon')}{why}. "
        f"{i18n.text(lang, step, campaign=summary.campaign_id)}"
    )


def end_state(
    summary: CampaignSummary,
    verdict: approve.Verdict,
    approval: approve.Approval,
    stop: str | None,
) -> State[Any] | dict[str, Any]:
    """How the send run ends: Completed with the summary's JSON when every row ended sent or
    rejected with a reason; else why not, with the summary (what was done, or would have been
    sent) kept in the error for the command line."""
    logger = get_run_logger()
    data = summary.as_json()
    if not verdict.lets_send:
        message, name = approve.unapproved_end(verdict, approval.timeout_hours, approval.lang)
        error = OperatorError(message, summary=data)
        return failed(error) if name is None else cancelled(error, name)
    logger.info(
        i18n.text(
            approval.lang,
            "log.campaign_summary",
            campaign=summary.campaign_id,
            sent=i18n.plural(approval.lang, "count.sent", summary.sent),
            failed=i18n.plural(approval.lang, "count.failed", summary.failed),
            rejected=i18n.plural(approval.lang, "count.rejected", summary.rejected_total),
            cost=i18n.money(summary.cost, summary.currency, approval.lang),
        )
    )
    emit_campaign_outcome(data)  # failed or in-doubt chunks: the operator's automation hears
    if line := incomplete_line(summary, approval.lang, stop):
        if stop:
            logger.error(stop)  # what stopped the sends, in the gateway's or ledger's words
        return failed(CampaignIncomplete(line, summary=data, personal=False), name=INCOMPLETE)
    if stop:
        return failed(OperatorError(stop, summary=data))
    return data
