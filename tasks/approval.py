"""Approval before sending: when a campaign's plan passes a threshold, a person says yes first.

The rules are pure: which thresholds a plan passes (``reasons``), the form's words and the plan
it shows (``describe``), what an answer decides (``verdict``), what a verdict lets through and
how an unapproved run ends. The pause, its form and the artifact are in
``tasks/steps/approval.py``: in the Prefect UI the run pauses with a form; on the command line,
with nobody to ask, the run stops before any send unless ``--yes`` was given.

The decision is a required choice, never a default: "Envoyer" or "Refuser". A plan its credits
or its budget cap do not cover (``tasks/money.py``) shows the shortfall first, and its form
cannot send everything: "Envoyer ce que les crédits permettent" or "Refuser". A resumed campaign
says what its earlier runs already sent and what is left.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tasks import i18n
from tasks import money as mn
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.outcomes import ChunkState
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


# -- the form's words ----------------------------------------------------------------------------

# The resume form and the plan it shows (the summary's approval line is in tasks/i18n.py). A list
# of short lines, never a table: the Prefect UI's resume form is about 530 px wide, and a table
# there is cut off on the right (the slots were invisible).
TEXTS: dict[str, dict[str, str]] = {
    "title": {
        "fr": "Campagne {campaign} : approbation requise avant tout envoi",
        "en": "Campaign {campaign}: approval needed before any send",
    },
    "why": {"fr": "Seuil dépassé : {reasons}.", "en": "Threshold passed: {reasons}."},
    "over_cost": {
        "fr": "coût estimé {cost}, au-dessus de {limit}",
        "en": "estimated cost {cost}, above {limit}",
    },
    "over_recipients": {"fr": "{people}, au-dessus de {limit}", "en": "{people}, above {limit}"},
    "planned": {"fr": "Ce qui est prévu", "en": "What is planned"},
    "recipients": {"fr": "Destinataires : {n}", "en": "Recipients: {n}"},
    "sms": {"fr": "SMS (1 par destinataire) : {n}", "en": "SMS (1 each): {n}"},
    "cost": {"fr": "Coût estimé : {amount}", "en": "Estimated cost: {amount}"},
    "credits": {"fr": "Crédits du compte : {amount}", "en": "Account credits: {amount}"},
    "cap": {"fr": "Plafond de budget : {amount}", "en": "Budget cap: {amount}"},
    "missing": {"fr": "Il manque : {amount}", "en": "Missing: {amount}"},
    "covered": {
        "fr": "Les crédits permettent d'envoyer à : {people}",
        "en": "The credits allow sending to: {people}",
    },
    "none": {"fr": "aucun", "en": "none"},
    "when": {"fr": "Quand", "en": "When"},
    "slot": {"fr": "{territory} : {when}, {people}", "en": "{territory}: {when}, {people}"},
    "now": {"fr": "tout de suite", "en": "at once"},
    "resumed": {
        "fr": "Campagne déjà commencée (même identifiant)",
        "en": "Campaign already started (same id)",
    },
    "already_sent": {"fr": "Déjà envoyés : {people}", "en": "Already sent: {people}"},
    "unconfirmed": {
        "fr": "Pas encore confirmés par SMS Partner : {people} ; rien n'est renvoyé avant "
        "confirmation",
        "en": "Not yet confirmed by SMS Partner: {people}; nothing is sent again before it is",
    },
    "cancelled": {"fr": "Annulés : {people}", "en": "Cancelled: {people}"},
    "left": {"fr": "Reste à envoyer : {people}", "en": "Left to send: {people}"},
    "short_choice": {
        "fr": "Envoyer à tous n'est pas possible. Choisissez « {within} » pour n'envoyer qu'aux "
        "{covered} premiers destinataires (les {left} autres ne seront pas envoyés), ou "
        "« {refuse} ».",
        "en": "Sending to everyone is not possible. Choose '{within}' to text the first "
        "{covered} recipients only (the other {left} will not be sent), or '{refuse}'.",
    },
    "short_within": {
        "fr": "Au lancement, l'envoi a été limité à ce que les crédits permettent : « {send} » "
        "n'envoie qu'à {people}, les {left} autres ne seront pas envoyés.",
        "en": "At launch, sending was limited to what the credits allow: '{send}' texts "
        "{people} only; the other {left} will not be sent.",
    },
    "how": {
        "fr": "Choisissez votre décision ci-dessous (obligatoire), puis **Submit**. Sans "
        "réponse sous {hours} h, rien n'est envoyé.",
        "en": "Choose your decision below (required), then **Submit**. Without an answer "
        "within {hours} h, nothing is sent.",
    },
    # the form's fields (tasks/steps/approval.py)
    "decision": {"fr": "Décision", "en": "Decision"},
    "decision_help": {
        "fr": "Obligatoire. « Envoyer » envoie la campagne décrite ci-dessus ; « Refuser » "
        "n'envoie rien.",
        "en": "Required. 'Send' sends the campaign described above; 'Refuse' sends nothing.",
    },
    "decision_help_short": {
        "fr": "Obligatoire. Les crédits ne couvrent pas toute la campagne : envoyer à tous "
        "n'est pas possible.",
        "en": "Required. The credits do not cover the whole campaign: sending to everyone is "
        "not possible.",
    },
    "comment": {"fr": "Commentaire", "en": "Comment"},
    "comment_help": {
        "fr": "Facultatif : pourquoi (gardé dans le rapport de la campagne).",
        "en": "Optional: why (kept in the campaign's report).",
    },
}


class Choice(StrEnum):
    """The form's decisions (codes; the form shows their words, ``CHOICES``)."""

    send = "send"
    within = "within"  # send only what the credits (or the budget cap) cover
    refuse = "refuse"


CHOICES: dict[Choice, dict[str, str]] = {
    Choice.send: {"fr": "Envoyer", "en": "Send"},
    Choice.within: {
        "fr": "Envoyer ce que les crédits permettent",
        "en": "Send what the credits allow",
    },
    Choice.refuse: {"fr": "Refuser (rien n'est envoyé)", "en": "Refuse (nothing is sent)"},
}


def say(lang: Lang, key: str, **values: object) -> str:
    # no line break inside « ... » (French quotes keep their words)
    said = i18n.say_in(TEXTS, lang, key, **values)
    return said.replace("« ", "«\u00a0").replace(" »", "\u00a0»")


def people(n: int, lang: Lang) -> str:
    """ "0 destinataire", "1 destinataire", "2 186 destinataires" (CLDR's plural rules)."""
    return i18n.plural(lang, "count.recipients", n)


def choices(short: bool) -> tuple[Choice, ...]:
    """What the form offers: a plan its money does not cover cannot be sent whole."""
    return (Choice.within, Choice.refuse) if short else (Choice.send, Choice.refuse)


def choice_of(value: object) -> Choice | None:
    """The decision a form's answer names (its words in any language, or its code)."""
    for code, words in CHOICES.items():
        if value == code.value or value in words.values():
            return code
    return None


def verdict(answer: Mapping[str, Any], *, short: bool) -> Verdict:
    """What a form's answer decides. ``decision`` is the form's required choice; an answer
    without it is an older caller's ``approve`` (and ``send_within_credits``, counted only on a
    plan its money does not cover, and only with an approval). Nothing chosen sends nothing."""
    comment = str(answer.get("comment") or "").strip()[:500]
    chosen = choice_of(answer.get("decision"))
    if chosen is None and answer.get("approve") is not None:
        if not answer["approve"]:
            return Verdict(Decision.refused, comment)
        within = short and bool(answer.get("send_within_credits"))
        return Verdict(Decision.approved, comment, within_credits=within)
    if chosen in (Choice.send, Choice.within):
        return Verdict(Decision.approved, comment, within_credits=chosen == Choice.within)
    return Verdict(Decision.refused, comment)


# -- the plan the form shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Earlier:
    """What earlier runs of a resumed campaign did, in recipients (from the ledger's chunks)."""

    sent: int = 0
    unconfirmed: int = 0  # sending or in doubt: may have landed, never sent again before known
    cancelled: int = 0

    @classmethod
    def of(cls, chunks: Iterable[tuple[str, int]]) -> Earlier:
        """From (state, recipients) of each of the campaign's chunks in the ledger; those not
        sent yet (pending, failed) are in the plan's "left to send"."""
        done: Counter[str] = Counter()
        for state, size in chunks:
            done[str(state)] += size
        return cls(
            sent=done[ChunkState.sent],
            unconfirmed=done[ChunkState.sending] + done[ChunkState.in_doubt],
            cancelled=done[ChunkState.cancelled],
        )

    @property
    def any(self) -> bool:
        return bool(self.sent or self.unconfirmed or self.cancelled)


def short_form(money: mn.Money | None, sending: int) -> bool:
    """Whether the form is the one of a plan its money does not cover (the choice to send what
    it covers, never to send all); not when that limit was already chosen at launch."""
    return money is not None and money.short and sending >= money.recipients


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
    earlier: Earlier | None = None,
) -> str:
    """The plan a person approves, in markdown (the resume form's description): why it asks,
    the shortfall of money first when there is one, what is planned, what a resumed campaign
    already sent, and when each territory is texted. Short lines that wrap at 530 px."""

    def amount(value: float | None) -> str:
        return say(lang, "none") if value is None else i18n.money(value, currency, lang)

    passed = []
    if above_cost is not None and cost > above_cost:
        passed.append(say(lang, "over_cost", cost=amount(cost), limit=amount(above_cost)))
    if above_recipients is not None and recipients > above_recipients:
        limit = i18n.number(above_recipients, lang)
        passed.append(say(lang, "over_recipients", people=people(recipients, lang), limit=limit))
    lines = [
        f"### {say(lang, 'title', campaign=campaign_id)}",
        "",
        *money_warning(money, recipients, lang),
        say(lang, "why", reasons=i18n.text(lang, "sep.list").join(passed)),
        "",
        f"**{say(lang, 'planned')}**",
        "",
        f"- {say(lang, 'recipients', n=i18n.number(recipients, lang))}",
        f"- {say(lang, 'sms', n=i18n.number(recipients, lang))}",
        f"- {say(lang, 'cost', amount=amount(cost))}",
        f"- {say(lang, 'credits', amount=amount(credits))}",
        f"- {say(lang, 'cap', amount=amount(max_cost))}",
    ]
    if money is not None and money.short:
        lines += [
            f"- {say(lang, 'missing', amount=amount(money.shortfall))}",
            f"- {say(lang, 'covered', people=people(money.covered, lang))}",
        ]
    if earlier is not None and earlier.any:
        lines += ["", f"**{say(lang, 'resumed')}**", ""]
        for key, n in (
            ("already_sent", earlier.sent),
            ("unconfirmed", earlier.unconfirmed),
            ("cancelled", earlier.cancelled),
        ):
            if n or key == "already_sent":
                lines.append(f"- {say(lang, key, people=people(n, lang))}")
        lines.append(f"- {say(lang, 'left', people=people(recipients, lang))}")
    lines += ["", f"**{say(lang, 'when')}**", ""]
    for territory, slots in slots_per_territory(plan).items():
        for slot, size in slots.items():
            when = say(lang, "now") if slot == "now" else _slot_when(slot, territory, lang)
            name = i18n.territory_name(territory, lang)
            lines.append(
                f"- {say(lang, 'slot', territory=name, when=when, people=people(size, lang))}"
            )
    lines += ["", say(lang, "how", hours=f"{timeout_hours:g}")]
    return "\n".join(lines)


def money_warning(money: mn.Money | None, sending: int, lang: Lang) -> list[str]:
    """The form's warning when the money does not cover the plan (markdown lines, a quote in
    bold), and the choice it leaves; nothing when it does."""
    if money is None or not money.short:
        return []
    left = i18n.number(money.recipients - sending, lang)
    if not short_form(money, sending):  # "send what the credits allow" chosen at launch
        send = CHOICES[Choice.send][lang]
        then = say(lang, "short_within", send=send, people=people(sending, lang), left=left)
    else:
        then = say(
            lang,
            "short_choice",
            within=CHOICES[Choice.within][lang],
            refuse=CHOICES[Choice.refuse][lang],
            covered=i18n.number(money.covered, lang),
            left=i18n.number(money.recipients - money.covered, lang),
        )
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


# The Cancelled states of a campaign nobody said yes to, by language: Prefect shows the name as
# the run's badge and emits it as an event (deployments/automations.yaml matches both languages).
UNAPPROVED_STATES: dict[str, dict[Lang, str]] = {
    "refused": {"fr": "Refusée", "en": "Refused"},
    "timed_out": {"fr": "Expirée", "en": "NotApproved"},
}

ENDINGS: dict[str, dict[Lang, str]] = {
    "stopped": {
        "fr": "Accord nécessaire avant l'envoi ({why}) : rien n'a été envoyé. Relancez avec --yes "
        "pour envoyer, ou relevez --approve-above-cost / --approve-above-recipients.",
        "en": "approval needed before sending ({why}): nothing sent; rerun with --yes to send, "
        "or raise --approve-above-cost / --approve-above-recipients",
    },
    "refused": {
        "fr": "Campagne refusée{comment} : rien n'a été envoyé. Pour l'envoyer quand même, "
        "relancez-la.",
        "en": "refused by the operator{comment} ({why}): nothing sent",
    },
    "timed_out": {
        "fr": "Pas de réponse en {hours} h : rien n'a été envoyé. Relancez la campagne pour être "
        "de nouveau sollicité.",
        "en": "not approved within {hours} h ({why}): nothing sent",
    },
}


_COST_ABOVE = re.compile(r"estimated cost ([\d.]+) above ([\d.]+)")
_RECIPIENTS_ABOVE = re.compile(r"(\d+) recipients above (\d+)")


def reasons_text(reasons: Iterable[str], lang: Lang) -> str:
    """Why a plan was held, for a person: ``reasons()``'s lines in ``lang``, as one phrase."""
    said = list(reasons)
    return "; ".join(said) if lang == "en" else " ; ".join(_reason_fr(r) for r in said)


def _reason_fr(reason: str) -> str:
    """One of ``reasons()``'s lines (English, as the JSON summary keeps them) in French."""
    if found := _COST_ABOVE.fullmatch(reason):
        return f"coût estimé {found[1].replace('.', ',')} au-delà de {found[2].replace('.', ',')}"
    if found := _RECIPIENTS_ABOVE.fullmatch(reason):
        return f"{i18n.plural('fr', 'count.recipients', int(found[1]))}, au-delà de {found[2]}"
    return reason


def unapproved_end(
    verdict: Verdict, timeout_hours: float, lang: Lang = DEFAULT_LANG
) -> tuple[str, str | None]:
    """The message of a campaign nobody said yes to (nothing was sent), and the name of its
    Cancelled state (None: it ends Failed, the command line's stop). The reasons the plan was
    held (English, as the JSON summary keeps them) appear in the English lines only: the French
    form and report give them in French."""
    why = "; ".join(verdict.reasons)
    if verdict.decision == Decision.stopped and verdict.money:
        return verdict.money, None
    if verdict.decision == Decision.stopped:
        return ENDINGS["stopped"][lang].format(why=reasons_text(verdict.reasons, lang)), None
    if verdict.decision == Decision.refused:
        comment = f" (« {verdict.comment} »)" if lang == "fr" else f": {verdict.comment}"
        said = ENDINGS["refused"][lang].format(comment=comment if verdict.comment else "", why=why)
        return said, UNAPPROVED_STATES["refused"][lang]
    said = ENDINGS["timed_out"][lang].format(hours=f"{timeout_hours:g}", why=why)
    return said, UNAPPROVED_STATES["timed_out"][lang]
