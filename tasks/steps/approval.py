"""Approval before sending, as Prefect runs it: the paused run with its form, the plan's
artifact, the verdict read back, and the plan made again once approved.

The rules (thresholds, the form's words and plan, what an answer decides, how an unapproved run
ends) are in ``tasks/approval.py``. The form's decision is a required choice (the Prefect UI
cannot submit it empty, the server refuses an answer without it); a plan its credits or its
budget cap do not cover gets a form whose choices are to send what the money covers or to
refuse, never to send everything. An API caller answers ``{"decision": "Envoyer"}`` (a choice's
words, ``tasks.approval.CHOICES``); the older ``{"approve": true}`` is refused by the server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field, create_model

from tasks import approval as approve
from tasks import i18n, runtime
from tasks import money as mn
from tasks.approval import (
    CHOICES,
    Approval,
    ApprovalMode,
    Decision,
    Earlier,
    Verdict,
    choices,
    describe,
    say,
    short_form,
    verdict,
)
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.numbers.masking import mask_phone_numbers
from tasks.plan import Prepared
from tasks.reporting import artifact_key


@functools.cache
def form(lang: Lang, short: bool) -> type[RunInput]:
    """The resume form in ``lang``: a required decision with nothing chosen in advance (the
    Prefect UI cannot submit it empty, the server refuses an answer without it; ``short``: the
    plan's money does not cover it, so sending everything is not one of the choices), then a
    comment."""
    offered = choices(short)
    words = StrEnum("Choix", {c.value: CHOICES[c][lang] for c in offered})  # type: ignore[misc]
    help_key = "decision_help_short" if short else "decision_help"
    decision = Field(title=say(lang, "decision"), description=say(lang, help_key))
    comment = Field("", title=say(lang, "comment"), description=say(lang, "comment_help"))
    name = "ShortApprovalForm" if short else "ApprovalForm"
    model: type[RunInput] = create_model(
        name, __base__=RunInput, decision=(words, decision), comment=(str, comment)
    )
    return model


ApprovalForm = form(DEFAULT_LANG, False)
ShortApprovalForm = form(DEFAULT_LANG, True)


def ask(
    description: str, timeout_seconds: int, *, short: bool = False, lang: Lang = DEFAULT_LANG
) -> Verdict:
    """Pause the current flow run until a person answers the form (or the timeout passes);
    ``short``: the plan's money does not cover it (the form offers to send what it covers, not
    everything)."""
    try:
        answer = pause_flow_run(
            wait_for_input=form(lang, short).with_initial_data(description=description),
            timeout=timeout_seconds,
            poll_interval=2,  # an approval is seen within seconds (one light API read each)
            key="approval",
        )
    except FlowPauseTimeout:
        return Verdict(Decision.timed_out)
    return verdict_of(answer, short=short)


def verdict_of(answer: RunInput, *, short: bool | None = None) -> Verdict:
    """What the form's answer decides (``tasks.approval.verdict``); ``short`` defaults to the
    form's kind."""
    if short is None:
        short = type(answer).__name__ == "ShortApprovalForm"
    return verdict(answer.model_dump(), short=short)


def earlier_runs(campaign_id: str) -> Earlier:
    """What earlier runs of this campaign did (nothing for a new one): read from the ledger,
    which a held plan has not written to."""
    ledger = runtime.shared_ledger(runtime.ledger_url())
    if not ledger.campaign_exists(campaign_id):
        return Earlier()
    return Earlier.of((c.state, c.size) for c in ledger.chunks(campaign_id))


def until_approved(
    prepare: Callable[..., Prepared], approval: Approval
) -> tuple[Prepared, Verdict]:
    """The campaign's plan, held for a person's yes when it passes a threshold and planned again
    once approved (slots move with the time that passed while it waited).

    ``prepare(hold)`` plans, held at the thresholds when ``hold``; ``prepare(False, True)``
    plans what the money covers only (the person chose to send what the credits allow). Planned
    again short of money without that choice, it raises ``money.CreditsShort``, which then
    carries the verdict's record (the summary keeps who approved)."""
    prepared = prepare(approval.asks)
    if not prepared.approval_reasons:
        return prepared, Verdict(Decision.not_needed)
    verdict = seek(prepared, approval)
    if verdict.decision == Decision.approved:
        lang = approval.lang
        said = f" : {verdict.comment}" if verdict.comment else ""
        within = i18n.text(lang, "log.approved_within") if verdict.within_credits else ""
        get_run_logger().info(i18n.text(lang, "log.approved", within=within, comment=said))
        try:
            prepared = prepare(False, True) if verdict.within_credits else prepare(False)
        except mn.CreditsShort as short:
            short.approval = verdict.record()
            raise
    return prepared, verdict


def seek(prepared: Prepared, approval: Approval) -> Verdict:
    """Ask a person (a paused run in the UI), or stop when nobody can be asked: ``prepared`` is
    the plan held at a threshold."""
    held = tuple(prepared.approval_reasons)
    money = prepared.money
    short = short_form(money, prepared.to_send)
    why = approve.reasons_text(held, approval.lang)
    if approval.mode == ApprovalMode.stop:
        if short and money is not None:  # money first: --yes alone would not send
            line = mn.shortfall_line(money, approval.lang, command_line=True)
            also = i18n.text(approval.lang, "money.also_approval", why=why)
            return Verdict(Decision.stopped, reasons=held, money=f"{line} {also}")
        return Verdict(Decision.stopped, reasons=held)
    get_run_logger().warning(i18n.text(approval.lang, "log.waiting_approval", why=why))
    price = approval.cost_per_sms if money is None else money.price
    description = describe(
        campaign_id=prepared.campaign_id,
        recipients=prepared.to_send,
        cost=prepared.to_send * price,
        currency=prepared.currency,
        credits=prepared.credits_now,
        max_cost=approval.max_cost,
        above_cost=approval.above_cost,
        above_recipients=approval.above_recipients,
        plan=prepared.dry_plan,
        timeout_hours=approval.timeout_hours,
        lang=approval.lang,
        money=money,
        earlier=earlier_runs(prepared.campaign_id),
    )
    create_markdown_artifact(
        key=artifact_key(prepared.campaign_id, "approval"),
        markdown=description,
        description=i18n.text(approval.lang, "artifact.approval"),
    )
    answer = ask(description, int(approval.timeout_hours * 3600), short=short, lang=approval.lang)
    return Verdict(answer.decision, mask_phone_numbers(answer.comment), held, answer.within_credits)
