"""Approval before sending, as Prefect runs it: the paused run with its form, the plan's
artifact, the verdict read back, and the plan made again once approved.

The rules (thresholds, the form's description, verdicts, how an unapproved run ends) are in
``tasks/approval.py``. A plan its credits or its budget cap do not cover (``tasks/money.py``)
gets the form with one more box: sending only what the money covers is a choice of its own;
approving without it sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from tasks import i18n
from tasks import money as mn
from tasks.approval import Approval, ApprovalMode, Decision, Verdict, describe
from tasks.numbers.masking import mask_phone_numbers
from tasks.plan import Prepared
from tasks.reporting import artifact_key


def _approve_field() -> Any:
    return Field(
        False,
        title="Approuver l'envoi / Approve the send",
        description="Cochez pour envoyer ; laissez décoché pour refuser (rien n'est envoyé).",
    )


def _comment_field() -> Any:
    return Field("", title="Commentaire / Comment", description="Pourquoi (gardé dans le rapport).")


class ApprovalForm(RunInput):
    """What the operator answers in the UI to resume a paused campaign."""

    approve: bool = _approve_field()
    comment: str = _comment_field()


class ShortApprovalForm(RunInput):
    """The form of a plan its credits or its budget cap do not cover: sending what the money
    covers is a choice of its own, never implied by approving (the box sits right under
    "Approuver l'envoi", before the comment)."""

    approve: bool = _approve_field()
    send_within_credits: bool = Field(
        False,
        title="Envoyer ce que les crédits permettent / Send what the credits allow",
        description="Avec « Approuver l'envoi » : n'envoyer qu'aux destinataires que les crédits "
        "(ou le plafond de budget) couvrent, les autres ne sont pas envoyés. Sans cette case, "
        "approuver n'envoie rien.",
    )
    comment: str = _comment_field()


def ask(description: str, timeout_seconds: int, *, short: bool = False) -> Verdict:
    """Pause the current flow run until a person answers the form (or the timeout passes);
    ``short``: the plan's money does not cover it (the form has the choice to send what it
    covers)."""
    form = ShortApprovalForm if short else ApprovalForm
    try:
        answer = pause_flow_run(
            wait_for_input=form.with_initial_data(description=description),
            timeout=timeout_seconds,
            poll_interval=2,  # an approval is seen within seconds (one light API read each)
            key="approval",
        )
    except FlowPauseTimeout:
        return Verdict(Decision.timed_out)
    return verdict_of(answer)


def verdict_of(answer: ApprovalForm | ShortApprovalForm) -> Verdict:
    """What the form's answer decides (the box to send what the money covers counts only with
    an approval)."""
    comment = str(answer.comment or "").strip()[:500]
    if not answer.approve:
        return Verdict(Decision.refused, comment)
    within = isinstance(answer, ShortApprovalForm) and answer.send_within_credits
    return Verdict(Decision.approved, comment, within_credits=within)


def until_approved(
    prepare: Callable[..., Prepared], approval: Approval
) -> tuple[Prepared, Verdict]:
    """The campaign's plan, held for a person's yes when it passes a threshold and planned again
    once approved (slots move with the time that passed while it waited).

    ``prepare(hold)`` plans, held at the thresholds when ``hold``; ``prepare(False, True)``
    plans what the money covers only (the person ticked the form's box). Planned again short of
    money without that choice, it raises ``money.CreditsShort``, which then carries the
    verdict's record (the summary keeps who approved)."""
    prepared = prepare(approval.asks)
    if not prepared.approval_reasons:
        return prepared, Verdict(Decision.not_needed)
    verdict = seek(prepared, approval)
    if verdict.decision == Decision.approved:
        said = f": {verdict.comment}" if verdict.comment else ""
        within = " (send what the credits allow)" if verdict.within_credits else ""
        get_run_logger().info("approved%s%s", within, said)
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
    short = money is not None and money.short and prepared.to_send >= money.recipients
    why = "; ".join(held)
    if approval.mode == ApprovalMode.stop:
        if short and money is not None:  # money first: --yes alone would not send
            line = mn.shortfall_line(money, approval.lang, command_line=True)
            also = i18n.text(approval.lang, "money.also_approval", why=why)
            return Verdict(Decision.stopped, reasons=held, money=f"{line} {also}")
        return Verdict(Decision.stopped, reasons=held)
    get_run_logger().warning("waiting for approval (%s): open the flow run in the Prefect UI", why)
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
    )
    create_markdown_artifact(
        key=artifact_key(prepared.campaign_id, "approval"),
        markdown=description,
        description=i18n.text(approval.lang, "artifact.approval"),
    )
    verdict = ask(description, int(approval.timeout_hours * 3600), short=short)
    return Verdict(
        verdict.decision, mask_phone_numbers(verdict.comment), held, verdict.within_credits
    )
