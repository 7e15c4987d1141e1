"""Approval before sending: when a campaign's plan passes a threshold, a person says yes first.

The rule (``reasons``) is pure. In the Prefect UI the run pauses with a form (``ask``); on the
command line, with nobody to ask, the run stops before any send unless ``--yes`` was given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from prefect.input import RunInput
from pydantic import Field

from tasks import i18n
from tasks.i18n import Lang
from tasks.slots import TERRITORY_ZONES


class ApprovalMode(StrEnum):
    pause = "pause"  # ask in the Prefect UI (a deployment's run)
    stop = "stop"  # nobody to ask (the command line without --yes): stop before any send
    approved = "approved"  # approved in advance (--yes)


class Decision(StrEnum):
    not_needed = "not_needed"
    approved = "approved"
    refused = "refused"
    timed_out = "timed_out"
    stopped = "stopped"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    comment: str = ""

    def as_dict(self, reasons: Sequence[str]) -> dict[str, Any]:
        return {"decision": str(self.decision), "reasons": list(reasons), "comment": self.comment}


def reasons(
    recipients: int,
    cost: float,
    above_cost: float | None,
    above_recipients: int | None,
) -> list[str]:
    """Why this plan needs a person's approval (empty: it does not)."""
    why = []
    if above_cost is not None and cost > above_cost:
        why.append(f"estimated cost {cost:.2f} above {above_cost:.2f}")
    if above_recipients is not None and recipients > above_recipients:
        why.append(f"{recipients} recipients above {above_recipients}")
    return why


class ApprovalForm(RunInput):
    """What the operator answers in the UI to resume a paused campaign."""

    approve: bool = Field(
        False,
        title="Approuver l'envoi / Approve the send",
        description="Cochez pour envoyer ; laissez décoché pour refuser (rien n'est envoyé).",
    )
    comment: str = Field(
        "", title="Commentaire / Comment", description="Pourquoi (gardé dans le rapport)."
    )


def slots_per_territory(plan: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """{territory: {slot or 'now': recipients}} of a plan's chunks."""
    out: dict[str, Counter[str]] = {}
    for chunk in plan:
        out.setdefault(str(chunk["territory"]), Counter())[str(chunk["slot"] or "now")] += int(
            chunk["size"]
        )
    return {t: dict(sorted(c.items())) for t, c in sorted(out.items())}


def ask(description: str, timeout_seconds: int) -> Verdict:
    """Pause the current flow run until a person answers the form (or the timeout passes)."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalForm.with_initial_data(description=description),
            timeout=timeout_seconds,
            poll_interval=2,  # an approval is seen within seconds (one light API read each)
            key="approval",
        )
    except FlowPauseTimeout:
        return Verdict(Decision.timed_out)
    comment = str(answer.comment or "").strip()[:500]
    return Verdict(Decision.approved if answer.approve else Decision.refused, comment)


def describe(
    *,
    campaign_id: str,
    recipients: int,
    cost: float,
    currency: str,
    credits: float | None,
    max_cost: float | None,
    above_cost: float | None,
    above_recipients: int | None,
    plan: Sequence[Mapping[str, Any]],
    timeout_hours: float,
    lang: Lang = "fr",
) -> str:
    """The plan a person approves, in markdown (the pause form's description)."""

    def t(key: str, **values: object) -> str:
        return i18n.text(lang, f"approval.{key}", **values)

    def money(amount: float | None) -> str:
        return t("none") if amount is None else i18n.money(amount, currency, lang)

    passed = []
    if above_cost is not None and cost > above_cost:
        passed.append(t("over_cost", cost=money(cost), limit=money(above_cost)))
    if above_recipients is not None and recipients > above_recipients:
        passed.append(
            t(
                "over_recipients",
                n=i18n.number(recipients, lang),
                limit=i18n.number(above_recipients, lang),
            )
        )
    lines = [
        f"## {t('title', campaign=campaign_id)}",
        "",
        t("why", reasons=i18n.text(lang, "sep.list").join(passed)),
        "",
        f"| {t('item')} | |",
        "|---|---|",
        f"| {t('recipients')} | {i18n.number(recipients, lang)} |",
        f"| {t('sms_estimated')} | {i18n.number(recipients, lang)} |",
        f"| {t('estimated_cost')} | {money(cost)} |",
        f"| {t('credits')} | {money(credits)} |",
        f"| {t('budget_cap')} | {money(max_cost)} |",
        "",
        f"| {t('territory')} | {t('slot')} | {t('recipients')} |",
        "|---|---|---|",
    ]
    for territory, slots in slots_per_territory(plan).items():
        for slot, size in slots.items():
            shown = t("now") if slot == "now" else _slot_when(slot, territory, lang)
            lines.append(
                f"| {i18n.territory_name(territory, lang)} | {shown} | {i18n.number(size, lang)} |"
            )
    lines += ["", t("how", hours=f"{timeout_hours:g}")]
    return "\n".join(lines)


def _slot_when(slot: str, territory: str, lang: Lang) -> str:
    """An ISO slot in the territory's own time ("mardi 7 janvier 10:00 (heure de Paris)")."""
    try:
        moment = datetime.fromisoformat(slot)
    except ValueError:
        return slot
    zone = TERRITORY_ZONES.get(territory, ("Europe/Paris",))[0]
    return i18n.when(moment, zone, lang)
