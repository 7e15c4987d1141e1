"""Approval before sending: when a campaign's plan passes a threshold, a person says yes first.

The rules are pure: which thresholds a plan passes (``reasons``), the form's description
(``describe``), what a verdict lets through and how an unapproved run ends. The pause, its form
and the artifact are in ``tasks/steps/approval.py``: in the Prefect UI the run pauses with a
form; on the command line, with nobody to ask, the run stops before any send unless ``--yes``
was given.

A plan its credits or its budget cap do not cover (``tasks/money.py``) shows the shortfall at the
top of the form, and the form then has one more box: sending only what the money covers is a
choice of its own; approving without it sends nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tasks import i18n
from tasks import money as mn
from tasks.i18n import DEFAULT_LANG, Lang
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
    reasons: tuple[str, ...] = ()  # the thresholds the plan passed
    within_credits: bool = False  # approved to send only what the money covers
    money: str = ""  # stopped on the command line short of money: the line that says it

    def as_dict(self, reasons: Sequence[str] | None = None) -> dict[str, Any]:
        why = list(self.reasons if reasons is None else reasons)
        said: dict[str, Any] = {
            "decision": str(self.decision),
            "reasons": why,
            "comment": self.comment,
        }
        if self.within_credits:
            said["send_within_credits"] = True
        return said

    def record(self) -> dict[str, Any] | None:
        """What the campaign's summary keeps of it (None when no approval was needed)."""
        return None if self.decision == Decision.not_needed else self.as_dict()

    @property
    def lets_send(self) -> bool:
        return self.decision in (Decision.not_needed, Decision.approved)


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


def slots_per_territory(plan: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """{territory: {slot or 'now': recipients}} of a plan's chunks."""
    out: dict[str, Counter[str]] = {}
    for chunk in plan:
        out.setdefault(str(chunk["territory"]), Counter())[str(chunk["slot"] or "now")] += int(
            chunk["size"]
        )
    return {t: dict(sorted(c.items())) for t, c in sorted(out.items())}


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
    lang: Lang = DEFAULT_LANG,
    money: mn.Money | None = None,
) -> str:
    """The plan a person approves, in markdown (the pause form's description); a plan its money
    does not cover (``money.short``) opens with the shortfall and the choice it leaves."""

    def t(key: str, **values: object) -> str:
        return i18n.text(lang, f"approval.{key}", **values)

    def amount(value: float | None) -> str:
        return t("none") if value is None else i18n.money(value, currency, lang)

    passed = []
    if above_cost is not None and cost > above_cost:
        passed.append(t("over_cost", cost=amount(cost), limit=amount(above_cost)))
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
        *money_warning(money, recipients, lang),
        t("why", reasons=i18n.text(lang, "sep.list").join(passed)),
        "",
        f"| {t('item')} | |",
        "|---|---|",
        f"| {t('recipients')} | {i18n.number(recipients, lang)} |",
        f"| {t('sms_estimated')} | {i18n.number(recipients, lang)} |",
        f"| {t('estimated_cost')} | {amount(cost)} |",
        f"| {t('credits')} | {amount(credits)} |",
        f"| {t('budget_cap')} | {amount(max_cost)} |",
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


def money_warning(money: mn.Money | None, sending: int, lang: Lang) -> list[str]:
    """The form's warning when the money does not cover the plan (markdown lines, a quote in
    bold), and what approving then does; nothing when it does."""
    if money is None or not money.short:
        return []
    if sending < money.recipients:  # "send what the credits allow" was ticked at launch
        then = i18n.text(
            lang,
            "money.form_within",
            sending=i18n.number(sending, lang),
            left=i18n.number(money.recipients - sending, lang),
        )
    else:
        then = i18n.text(lang, "money.form_choice", covered=i18n.number(money.covered, lang))
    return [f"> **⚠️ {mn.short_text(money, lang)}**", ">", f"> {then}", ""]


def _slot_when(slot: str, territory: str, lang: Lang) -> str:
    """An ISO slot in the territory's own time ("mardi 7 janvier 10:00 (heure de Paris)")."""
    try:
        moment = datetime.fromisoformat(slot)
    except ValueError:
        return slot
    zone = TERRITORY_ZONES.get(territory, ("Europe/Paris",))[0]
    return i18n.when(moment, zone, lang)


@dataclass(frozen=True)
class Approval:
    """When a campaign waits for a person's yes, and how: plain values from the flow's form."""

    above_cost: float | None = None
    above_recipients: int | None = None
    mode: ApprovalMode = ApprovalMode.pause
    timeout_hours: float = 24.0
    cost_per_sms: float = 0.0
    max_cost: float | None = None
    lang: Lang = DEFAULT_LANG

    @property
    def thresholds(self) -> tuple[float | None, int | None]:
        return self.above_cost, self.above_recipients

    @property
    def asks(self) -> bool:
        """Whether the plan is held at a threshold (not when approved in advance)."""
        return self.mode != ApprovalMode.approved and any(t is not None for t in self.thresholds)


def unapproved_end(verdict: Verdict, timeout_hours: float) -> tuple[str, str | None]:
    """The message of a campaign nobody said yes to (nothing was sent), and the name of its
    Cancelled state (None: it ends Failed, the command line's stop)."""
    why = "; ".join(verdict.reasons)
    if verdict.decision == Decision.stopped and verdict.money:
        return verdict.money, None
    if verdict.decision == Decision.stopped:
        return (
            f"approval needed before sending ({why}): nothing sent; rerun with --yes to send, "
            "or raise --approve-above-cost / --approve-above-recipients"
        ), None
    if verdict.decision == Decision.refused:
        comment = f": {verdict.comment}" if verdict.comment else ""
        return f"refused by the operator{comment} ({why}): nothing sent", "Refused"
    return f"not approved within {timeout_hours:g} h ({why}): nothing sent", "NotApproved"
