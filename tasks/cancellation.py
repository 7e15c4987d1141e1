"""Calling a campaign off: what can still be cancelled, and what became of every chunk.

The gateway cancels a scheduled send only until five minutes before its time (code 6 after that,
7 once sent, 5 if already cancelled, 4 if unknown: smspartner-api.md section 4.5). So:

- a sent chunk whose slot is more than five minutes away is cancelled at the gateway, then in the
  ledger (its recipients leave the frequency cap's record: they were never texted);
- a chunk sent at once, or whose slot has passed, is ``already_sent``; one whose slot is five
  minutes away or less is ``too_late`` (not even tried: the gateway would refuse);
- a chunk that never reached the gateway (pending, failed) is cancelled in the ledger only, so a
  rerun of the campaign does not send it; one that may have reached it (in doubt) is looked up
  by tag first;
- a chunk another run is sending right now is left alone (``in_progress``): run the cancel again
  once that run has finished.

This module is the pure rule: ``decide`` (``now`` explicit), the counts and what people read
about a cancel, in French or English (``TEXTS``): the offer under a campaign's summary (what is
still scheduled, ``what_can_be_cancelled``), the cancel run's artifact, its log line and the
command line's lines. ``cancel_chunk`` does the I/O for one chunk (``tasks/cancel_io.py``); the
Prefect tasks the cancel flow runs are in ``tasks/steps/cancel.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from tasks.i18n import DEFAULT_LANG, Lang, say_in, territory_name, when
from tasks.ledger.model import ChunkRow
from tasks.outcomes import (
    CANCEL_ALREADY,
    CANCEL_ALREADY_SENT,
    CANCEL_DONE,
    CANCEL_IN_PROGRESS,
    CANCEL_NOT_FOUND,
    CANCEL_NOT_SENT,
    CANCEL_OUTCOMES,
    CANCEL_TOO_LATE,
    ChunkState,
)
from tasks.sendcore import SendPolicy

NOTICE = timedelta(minutes=5)
SETTLE = SendPolicy().settle  # "not found" proves "never landed" only this long after

# Actions of ``decide`` that still need the gateway or the ledger.
ASK_GATEWAY = "ask_gateway"
LEDGER_ONLY = "ledger_only"
LOOK_UP_TAG = "look_up_tag"
NOTHING = "nothing"  # a sent chunk that reached nobody (every number refused)

NEVER_SENT = (ChunkState.pending, ChunkState.failed)


@dataclass(frozen=True)
class Why:
    """Why a chunk ends as it does: a key of ``TEXTS`` (``why.<key>``) and its values, said in
    the operator's language (``say``); ``cancel.json`` keeps the English (``detail``)."""

    key: str
    values: dict[str, str] = field(default_factory=dict)

    def say(self, lang: Lang) -> str:
        return say(lang, f"why.{self.key}", **self.values)


@dataclass(frozen=True)
class ChunkAction:
    """What ``decide`` says to do with one chunk, and why (the reason the report shows)."""

    action: str  # one of the actions above, or a final outcome from CANCEL_OUTCOMES
    why: Why

    @property
    def detail(self) -> str:
        return self.why.say("en")


def decide(chunk: ChunkRow, now: datetime, notice: timedelta = NOTICE) -> ChunkAction:
    """What to do with one chunk when its campaign is called off at ``now`` (aware)."""
    if chunk.state == ChunkState.cancelled:
        return ChunkAction(CANCEL_ALREADY, Why("cancelled_before"))
    if chunk.state == ChunkState.sending:
        return ChunkAction(CANCEL_IN_PROGRESS, Why("being_sent"))
    if chunk.state in NEVER_SENT:
        return ChunkAction(LEDGER_ONLY, Why("never_sent"))
    if chunk.state == ChunkState.sent and not chunk.numbers:
        return ChunkAction(NOTHING, Why("all_refused"))
    if chunk.slot is None:
        if chunk.state == ChunkState.in_doubt:
            return ChunkAction(LOOK_UP_TAG, Why("maybe_sent_at_once"))
        return ChunkAction(CANCEL_ALREADY_SENT, Why("sent_at_once"))
    left = datetime.fromisoformat(chunk.slot) - now
    if left <= timedelta(0):
        return ChunkAction(
            CANCEL_ALREADY_SENT if chunk.state == ChunkState.sent else LOOK_UP_TAG,
            Why("slot_passed"),
        )
    if left <= notice:
        # An in-doubt chunk this close to its slot cannot be cancelled either way; the tag
        # lookup only says whether it will go out.
        return ChunkAction(
            CANCEL_TOO_LATE if chunk.state == ChunkState.sent else LOOK_UP_TAG,
            Why("too_close", {"left": _minutes(left), "notice": _minutes(notice)}),
        )
    if chunk.state == ChunkState.in_doubt or chunk.message_id is None:
        return ChunkAction(LOOK_UP_TAG, Why("no_message_id"))
    return ChunkAction(ASK_GATEWAY, Why("before_slot", {"left": _minutes(left)}))


def _minutes(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return (
        f"{seconds // 60} min {seconds % 60:02d} s" if seconds < 3600 else f"{seconds / 3600:.1f} h"
    )


@dataclass(frozen=True)
class ChunkCancel:
    """What cancelling did with one chunk."""

    chunk_index: int
    territory: str
    slot: str | None
    size: int
    outcome: str  # one of CANCEL_OUTCOMES, or "nothing"
    detail: str  # in English (cancel.json); ``why`` says it in the operator's language
    changed: bool = False  # the ledger now says cancelled because of this run
    why: Why | None = None


# The cancel summary's key for the witness phones' sends (issue 23), and the outcomes counted
# there as called off; every other one may still reach a witness, or did.
WITNESSES = "witnesses"
_WITNESS_DONE = (CANCEL_DONE, CANCEL_NOT_SENT, CANCEL_ALREADY)


def count(
    campaign_id: str,
    results: Iterable[ChunkCancel],
    witnesses: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON object the command prints: chunks per outcome, and recipients this run spared;
    ``witnesses`` (their sends per outcome, ``tasks.witnesses.cancel_counts``) only for a
    campaign that texted witnesses."""
    results = list(results)
    counts: dict[str, Any] = {"campaign_id": campaign_id}
    counts.update({o: sum(1 for r in results if r.outcome == o) for o in CANCEL_OUTCOMES})
    counts["recipients_cancelled"] = sum(r.size for r in results if r.changed)
    if witnesses is not None:
        counts[WITNESSES] = dict(witnesses)
    return counts


# What may still be sent or was: the operator has to look at these.
NOT_CANCELLED = (CANCEL_TOO_LATE, CANCEL_ALREADY_SENT, CANCEL_NOT_FOUND, CANCEL_IN_PROGRESS)
# What a cancel run ended with, said in the operator's words (a count of chunks, "lots").
_OUTCOME_ORDER = (
    CANCEL_DONE,
    CANCEL_NOT_SENT,
    CANCEL_ALREADY,
    CANCEL_TOO_LATE,
    CANCEL_ALREADY_SENT,
    CANCEL_NOT_FOUND,
    CANCEL_IN_PROGRESS,
)
_MAX_ROWS = 50  # rows of a table in an artifact; cancel.json has them all
PARIS = "Europe/Paris"  # the operator's clock: every time shown is Paris time, labelled so

# -- what people read about a cancel -------------------------------------------------------------
# "<key>.one" / "<key>.other": plural forms chosen by CLDR's rule (tasks.i18n.plural_form: in
# French 0 and 1 are singular). Kept beside the rule they speak for; the keys are stable.
TEXTS: dict[str, dict[str, str]] = {
    # why a chunk ends as it does (the artifact's "pourquoi" column; cancel.json: English)
    "why.cancelled_before": {"fr": "déjà annulé", "en": "cancelled before"},
    "why.being_sent": {
        "fr": "un autre lancement l'envoie en ce moment : relancez l'annulation ensuite",
        "en": "another run is sending it; cancel again afterwards",
    },
    "why.never_sent": {"fr": "jamais envoyé", "en": "never sent"},
    "why.all_refused": {
        "fr": "tous les numéros ont été refusés : rien à annuler",
        "en": "every number was refused: nothing to cancel",
    },
    "why.maybe_sent_at_once": {
        "fr": "peut-être déjà parti (envoi immédiat)",
        "en": "may have been sent at once",
    },
    "why.sent_at_once": {"fr": "parti tout de suite", "en": "sent at once"},
    "why.slot_passed": {"fr": "son heure d'envoi est passée", "en": "its slot has passed"},
    "why.too_close": {
        "fr": "{left} avant son heure d'envoi : SMS Partner demande plus de {notice}",
        "en": "{left} before its slot, the gateway needs more than {notice}",
    },
    "why.no_message_id": {"fr": "recherché chez SMS Partner", "en": "no message id yet"},
    "why.before_slot": {"fr": "{left} avant son heure d'envoi", "en": "{left} before its slot"},
    "why.cancelled_at_gateway": {
        "fr": "annulé chez SMS Partner",
        "en": "cancelled at the gateway",
    },
    "why.cancelled_in_ledger": {
        "fr": "annulé avant d'être envoyé",
        "en": "campaign cancelled before this chunk was sent",
    },
    "why.claimed_meanwhile": {
        "fr": "un autre lancement l'a pris entre-temps : relancez l'annulation",
        "en": "another run claimed it meanwhile; cancel again",
    },
    "why.no_message_id_given": {
        "fr": "envoyé, mais SMS Partner n'a pas donné de numéro de message à annuler",
        "en": "sent, but the gateway gave no message id to cancel",
    },
    "why.not_visible_yet": {
        "fr": "pas encore visible chez SMS Partner : il peut encore partir ; relancez "
        "l'annulation plus tard",
        "en": "not visible at the gateway yet: it may still go out; run the cancel again later",
    },
    "why.never_got_it": {
        "fr": "SMS Partner ne l'a jamais reçu",
        "en": "the gateway never got it",
    },
    "why.tag_unknown": {
        "fr": "SMS Partner ne le connaît pas",
        "en": "the gateway does not know its tag",
    },
    "why.message_unknown": {
        "fr": "SMS Partner ne connaît pas ce message (code 4)",
        "en": "the gateway does not know its message id (code 4)",
    },
    "why.already_cancelled_gateway": {
        "fr": "déjà annulé chez SMS Partner (code 5)",
        "en": "already cancelled at the gateway (code 5)",
    },
    "why.gateway_too_late": {
        "fr": "SMS Partner répond qu'il reste moins de 5 minutes (code 6)",
        "en": "the gateway says less than 5 minutes left (code 6)",
    },
    "why.gateway_already_sent": {
        "fr": "SMS Partner répond qu'il est déjà parti (code 7)",
        "en": "the gateway says it was already sent (code 7)",
    },
    # the outcomes, as counts of chunks
    "outcome.cancelled.one": {
        "fr": "{n} lot annulé chez SMS Partner",
        "en": "{n} chunk cancelled at the gateway",
    },
    "outcome.cancelled.other": {
        "fr": "{n} lots annulés chez SMS Partner",
        "en": "{n} chunks cancelled at the gateway",
    },
    "outcome.not_sent_cancelled.one": {
        "fr": "{n} lot pas encore envoyé, annulé",
        "en": "{n} chunk never sent, cancelled in the ledger",
    },
    "outcome.not_sent_cancelled.other": {
        "fr": "{n} lots pas encore envoyés, annulés",
        "en": "{n} chunks never sent, cancelled in the ledger",
    },
    "outcome.already_cancelled.one": {
        "fr": "{n} lot déjà annulé",
        "en": "{n} chunk already cancelled",
    },
    "outcome.already_cancelled.other": {
        "fr": "{n} lots déjà annulés",
        "en": "{n} chunks already cancelled",
    },
    "outcome.too_late.one": {
        "fr": "{n} lot trop proche de son heure d'envoi (5 minutes ou moins)",
        "en": "{n} chunk too late (5 minutes or less before its slot)",
    },
    "outcome.too_late.other": {
        "fr": "{n} lots trop proches de leur heure d'envoi (5 minutes ou moins)",
        "en": "{n} chunks too late (5 minutes or less before their slot)",
    },
    "outcome.already_sent.one": {"fr": "{n} lot déjà parti", "en": "{n} chunk already sent"},
    "outcome.already_sent.other": {
        "fr": "{n} lots déjà partis",
        "en": "{n} chunks already sent",
    },
    "outcome.not_found.one": {
        "fr": "{n} lot introuvable chez SMS Partner",
        "en": "{n} chunk not found at the gateway",
    },
    "outcome.not_found.other": {
        "fr": "{n} lots introuvables chez SMS Partner",
        "en": "{n} chunks not found at the gateway",
    },
    "outcome.in_progress.one": {
        "fr": "{n} lot en cours d'envoi par un autre lancement",
        "en": "{n} chunk being sent by another run",
    },
    "outcome.in_progress.other": {
        "fr": "{n} lots en cours d'envoi par un autre lancement",
        "en": "{n} chunks being sent by another run",
    },
    # the cancel run's artifact
    "title": {
        "fr": "Annulation de la campagne {campaign}",
        "en": "Cancelling campaign {campaign}",
    },
    "spared.one": {
        "fr": "Le {at}, {n} destinataire ne recevra pas le SMS grâce à cette annulation.",
        "en": "On {at}, {n} recipient will not be texted because of this cancellation.",
    },
    "spared.other": {
        "fr": "Le {at}, {n} destinataires ne recevront pas le SMS grâce à cette annulation.",
        "en": "On {at}, {n} recipients will not be texted because of this cancellation.",
    },
    "nothing": {
        "fr": "Cette campagne n'a aucun envoi : rien à annuler.",
        "en": "This campaign has no chunk: nothing to cancel.",
    },
    "done_heading": {"fr": "Annulés", "en": "Cancelled"},
    "kept_heading": {"fr": "Non annulés", "en": "Not cancelled"},
    "recipients.one": {"fr": "{n} destinataire", "en": "{n} recipient"},
    "recipients.other": {"fr": "{n} destinataires", "en": "{n} recipients"},
    "at_once": {"fr": "tout de suite", "en": "at once"},
    "not_sent_yet": {"fr": "pas encore envoyé", "en": "not sent yet"},
    "more": {"fr": "… et {n} de plus", "en": "… and {n} more"},
    "next.all_done": {
        "fr": "Plus rien ne partira pour cette campagne.",
        "en": "Nothing more will be sent for this campaign.",
    },
    "next.gone": {
        "fr": "Les SMS déjà partis, ou à 5 minutes ou moins de leur heure d'envoi, ne peuvent "
        "plus être annulés.",
        "en": "SMS already sent, or 5 minutes or less from their slot, cannot be cancelled.",
    },
    "next.again": {
        "fr": "Relancez l'annulation dans quelques minutes pour les lots marqués « relancez ».",
        "en": "Run the cancel again in a few minutes for the chunks marked “cancel again”.",
    },
    # the offer under a campaign's summary
    "offer.heading": {"fr": "Annuler cette campagne", "en": "Cancel this campaign"},
    "offer.scheduled": {
        "fr": "Encore programmé, peut être annulé :",
        "en": "Still scheduled, can be cancelled:",
    },
    "offer.link": {"fr": "Annuler cette campagne", "en": "Cancel this campaign"},
    "offer.what": {
        "fr": "ouvre le formulaire d'annulation déjà rempli avec l'identifiant {campaign} ; "
        "cliquez sur « Submit » en bas du formulaire. Les SMS programmés à plus de 5 minutes "
        "de leur heure d'envoi sont alors décommandés chez SMS Partner (ils ne sont pas "
        "facturés) et ceux pas encore envoyés sont retirés. Les SMS déjà partis ne peuvent "
        "pas être rattrapés.",
        "en": "opens the cancel form already filled with the id {campaign}; click “Submit” at "
        "the bottom of the form. The SMS scheduled more than 5 minutes ahead are then called "
        "off at SMS Partner (they are not billed) and those not sent yet are dropped. SMS "
        "already sent cannot be called back.",
    },
    "offer.prefect_button": {
        "fr": "Les boutons « Cancel » de Prefect (sur une exécution, ou en bas du formulaire) "
        "n'annulent aucun SMS : ils arrêtent une exécution ou ferment le formulaire.",
        "en": "Prefect's own “Cancel” buttons (on a run, or at the bottom of the form) call "
        "off no SMS: they stop a run or close the form.",
    },
    # the flow's log line and the command line
    "log.summary": {
        "fr": "annulation de {campaign} : {done} ; {kept} ; {spared}",
        "en": "cancelling {campaign}: {done}; {kept}; {spared}",
    },
    "log.spared.one": {"fr": "{n} destinataire épargné", "en": "{n} recipient spared"},
    "log.spared.other": {"fr": "{n} destinataires épargnés", "en": "{n} recipients spared"},
    "log.kept.one": {"fr": "{n} lot non annulé", "en": "{n} chunk not cancelled"},
    "log.kept.other": {"fr": "{n} lots non annulés", "en": "{n} chunks not cancelled"},
    "log.done.one": {"fr": "{n} lot annulé", "en": "{n} chunk cancelled"},
    "log.done.other": {"fr": "{n} lots annulés", "en": "{n} chunks cancelled"},
    "cli.report": {
        "fr": "Détail : {path}",
        "en": "Details: {path}",
    },
    # the witness phones' sends (tasks/witnesses.py), counted apart from the chunks
    "why.gateway_unanswered": {
        "fr": "SMS Partner n'a pas répondu clairement ({detail}) : il peut encore partir ; "
        "relancez l'annulation",
        "en": "the gateway gave no clear answer ({detail}): it may still go out; run the "
        "cancel again",
    },
    "why.gateway_unreachable": {
        "fr": "SMS Partner injoignable ({detail}) : rien n'a été annulé ; relancez l'annulation",
        "en": "the gateway could not be reached ({detail}): nothing was cancelled; run the "
        "cancel again",
    },
    "witnesses.heading": {"fr": "SMS des témoins", "en": "Witnesses' SMS"},
    "witnesses.done.one": {
        "fr": "SMS de témoin annulé : {n}",
        "en": "Witness SMS cancelled: {n}",
    },
    "witnesses.done.other": {
        "fr": "SMS des témoins annulés : {n}",
        "en": "Witnesses' SMS cancelled: {n}",
    },
    "witnesses.kept.one": {
        "fr": "SMS de témoin non annulé : {n}",
        "en": "Witness SMS not cancelled: {n}",
    },
    "witnesses.kept.other": {
        "fr": "SMS des témoins non annulés : {n}",
        "en": "Witnesses' SMS not cancelled: {n}",
    },
    "witnesses.line": {
        "fr": "{number}, enquête {survey} : {why}",
        "en": "{number}, survey {survey}: {why}",
    },
    "next.again_witnesses": {
        "fr": "Des SMS de témoins peuvent encore partir : relancez l'annulation dans quelques "
        "minutes.",
        "en": "Some witnesses' SMS may still go out: run the cancel again in a few minutes.",
    },
    # an id the ledger does not know
    "unknown": {
        "fr": "Campagne « {campaign} » inconnue : aucun envoi n'a été fait sous cet "
        "identifiant. Copiez l'identifiant exact depuis le nom de l'exécution de la campagne "
        "(page Runs de Prefect), ou ouvrez le lien « Annuler cette campagne » de son résumé.",
        "en": "Unknown campaign “{campaign}”: nothing was sent under this id. Copy the exact id "
        "from the name of the campaign's run (Prefect's Runs page), or open the “Cancel this "
        "campaign” link of its summary.",
    },
}


def say(lang: Lang, key: str, n: int | None = None, /, **values: object) -> str:
    """``TEXTS[key]`` in ``lang``; with ``n``, its plural form for ``n`` (``{n}`` written as
    people write numbers)."""
    return say_in(TEXTS, lang, key, n, **values)


def _slot_words(slot: str | None, lang: Lang) -> str:
    if slot is None:
        return say(lang, "at_once")
    return when(datetime.fromisoformat(slot), PARIS, lang)


def _why(r: ChunkCancel, lang: Lang) -> str:
    return r.why.say(lang) if r.why else r.detail


def _listed(rows: Sequence[tuple[str | None, str, int, str | None]], lang: Lang) -> list[str]:
    """One bullet per (slot, territory, recipients, why): a list wraps on a phone's screen,
    where a table of long dates is cut off."""
    lines = []
    for slot, territory, n, why in rows[:_MAX_ROWS]:
        where = f"**{_slot_words(slot, lang)}**, {territory_name(territory, lang)}"
        lines.append(f"- {where} : {say(lang, 'recipients', n)}" + (f" ({why})" if why else ""))
    if len(rows) > _MAX_ROWS:
        lines.append(f"- {say(lang, 'more', n=len(rows) - _MAX_ROWS)}")
    return lines


def markdown_cancel(
    counts: dict[str, Any],
    results: Sequence[ChunkCancel],
    at: datetime,
    *,
    lang: Lang = DEFAULT_LANG,
    witnesses: Sequence[WitnessKept] = (),
) -> str:
    """What the UI shows after a cancel: who will not be texted, what became of the chunks
    (the counts that are not zero), what was cancelled and what was not, and why; then the
    witnesses' SMS (``counts["witnesses"]``) and those not cancelled (``witnesses``: masked
    numbers), when the campaign texted witnesses."""
    lines = [
        f"# {say(lang, 'title', campaign=counts['campaign_id'])}",
        "",
        say(lang, "spared", counts["recipients_cancelled"], at=when(at, PARIS, lang)),
        "",
    ]
    said = [say(lang, f"outcome.{o}", counts[o]) for o in _OUTCOME_ORDER if counts.get(o)]
    lines += [f"- {line}" for line in said] or [say(lang, "nothing")]
    done = [r for r in results if r.changed]
    kept = [r for r in results if r.outcome in NOT_CANCELLED]
    if done:
        lines += ["", f"## {say(lang, 'done_heading')}", ""]
        lines += _listed([(r.slot, r.territory, r.size, None) for r in done], lang)
    if kept:
        lines += ["", f"## {say(lang, 'kept_heading')}", ""]
        lines += _listed([(r.slot, r.territory, r.size, _why(r, lang)) for r in kept], lang)
    lines += _witness_section(counts, witnesses, lang)
    lines += ["", *next_steps(counts, lang)]
    return "\n".join(lines)


class WitnessKept(Protocol):
    """A witness's send the cancel did not call off, as the artifact lists it (duck-typed:
    ``tasks.witnesses.WitnessCancel``, which imports this module)."""

    @property
    def survey_id(self) -> str: ...
    @property
    def number(self) -> str: ...  # masked
    @property
    def outcome(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def why(self) -> Why | None: ...


def witness_lines(counts: Mapping[str, Any], lang: Lang) -> list[str]:
    """The witnesses' line ("SMS des témoins annulés : n", and those not cancelled when some
    are) of a cancel of a campaign that texted witnesses; nothing otherwise."""
    found = counts.get(WITNESSES)
    if not isinstance(found, Mapping):
        return []
    done = sum(int(found.get(o, 0)) for o in _WITNESS_DONE)
    kept = sum(int(n) for o, n in found.items() if o not in _WITNESS_DONE)
    lines = [say(lang, "witnesses.done", done)]
    if kept:
        lines.append(say(lang, "witnesses.kept", kept))
    return lines


def _witness_section(
    counts: Mapping[str, Any], witnesses: Sequence[WitnessKept], lang: Lang
) -> list[str]:
    said = witness_lines(counts, lang)
    if not said:
        return []
    lines = ["", f"## {say(lang, 'witnesses.heading')}", "", *[f"- {line}" for line in said]]
    kept = [w for w in witnesses if w.outcome not in _WITNESS_DONE]
    if kept:
        lines.append("")
    for w in kept[:_MAX_ROWS]:
        why = w.why.say(lang) if w.why else w.detail
        said_why = say(lang, "witnesses.line", number=w.number, survey=w.survey_id, why=why)
        lines.append(f"- {said_why}")
    if len(kept) > _MAX_ROWS:
        lines.append(f"- {say(lang, 'more', n=len(kept) - _MAX_ROWS)}")
    return lines


def next_steps(counts: dict[str, Any], lang: Lang) -> list[str]:
    """What the operator takes away: nothing more will go out, or what cannot be stopped, or
    run the cancel again."""
    steps = []
    found = counts.get(WITNESSES)
    witnesses: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    gone = (CANCEL_TOO_LATE, CANCEL_ALREADY_SENT)
    if any(counts.get(o) or witnesses.get(o) for o in gone):
        steps.append(say(lang, "next.gone"))
    if counts.get(CANCEL_NOT_FOUND) or counts.get(CANCEL_IN_PROGRESS):
        steps.append(say(lang, "next.again"))
    if any(n for o, n in witnesses.items() if o not in (*_WITNESS_DONE, *gone)):
        steps.append(say(lang, "next.again_witnesses"))
    return steps or [say(lang, "next.all_done")]


def summary_lines(counts: dict[str, Any], lang: Lang) -> list[str]:
    """The command line's readable lines before its JSON line (and the run's log line)."""
    done = sum(counts.get(o, 0) for o in (CANCEL_DONE, CANCEL_NOT_SENT))
    kept = sum(counts.get(o, 0) for o in NOT_CANCELLED)
    line = say(
        lang,
        "log.summary",
        campaign=counts["campaign_id"],
        done=say(lang, "log.done", done),
        kept=say(lang, "log.kept", kept),
        spared=say(lang, "log.spared", counts.get("recipients_cancelled", 0)),
    )
    witnesses = witness_lines(counts, lang)
    joined = (" ; " if lang == "fr" else "; ").join(witnesses)  # French typography's space
    return [line, *([joined] if witnesses else []), *next_steps(counts, lang)]


def unknown_campaign_line(campaign_id: str, lang: Lang = DEFAULT_LANG) -> str:
    """An id the ledger does not know, quoted as typed, and where to find the right one."""
    return say(lang, "unknown", campaign=campaign_id)


# -- what can still be cancelled (the offer under a campaign's summary) --------------------------


@dataclass(frozen=True)
class Scheduled:
    """Recipients of one slot and territory that a cancel would still call off."""

    slot: str | None  # None: not sent yet (a rerun would send them)
    territory: str
    recipients: int


def can_be_cancelled(chunk: ChunkRow, now: datetime, notice: timedelta = NOTICE) -> bool:
    """Whether cancelling at ``now`` would still keep ``chunk`` from going out: it was never
    sent, or it is scheduled more than ``notice`` ahead (sent, or maybe sent: in doubt)."""
    action = decide(chunk, now, notice).action
    if action in (ASK_GATEWAY, LEDGER_ONLY):
        return True
    return (
        action == LOOK_UP_TAG
        and chunk.slot is not None
        and datetime.fromisoformat(chunk.slot) - now > notice
    )


def what_can_be_cancelled(
    chunks: Iterable[ChunkRow], now: datetime, notice: timedelta = NOTICE
) -> list[Scheduled]:
    """The recipients a cancel at ``now`` would spare, by slot and territory, soonest first
    (those not sent yet last); empty when nothing can be cancelled any more."""
    grouped: dict[tuple[str | None, str], int] = {}
    for chunk in chunks:
        if chunk.numbers and can_be_cancelled(chunk, now, notice):
            slot = chunk.slot if chunk.state not in NEVER_SENT else None
            grouped[(slot, chunk.territory)] = grouped.get((slot, chunk.territory), 0) + chunk.size
    return [
        Scheduled(slot, territory, n)
        for (slot, territory), n in sorted(
            grouped.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or "", kv[0][1])
        )
    ]


def markdown_offer(
    campaign_id: str, scheduled: Sequence[Scheduled], link: str, lang: Lang = DEFAULT_LANG
) -> str:
    """The section under a campaign's summary: what is still scheduled, and the link to the
    cancel form filled with the campaign's id; empty when nothing can be cancelled any more."""
    if not scheduled:
        return ""
    lines = [f"## {say(lang, 'offer.heading')}", "", say(lang, "offer.scheduled"), ""]
    lines += [
        f"- **{_slot_words(s.slot, lang) if s.slot else say(lang, 'not_sent_yet')}**, "
        f"{territory_name(s.territory, lang)} : {say(lang, 'recipients', s.recipients)}"
        for s in scheduled[:_MAX_ROWS]
    ]
    if len(scheduled) > _MAX_ROWS:
        lines.append(f"- {say(lang, 'more', n=len(scheduled) - _MAX_ROWS)}")
    lines += [
        "",
        f"**[{say(lang, 'offer.link')}]({link})** : "
        + say(lang, "offer.what", campaign=f"`{campaign_id}`"),
        "",
        say(lang, "offer.prefect_button"),
    ]
    return "\n".join(lines)
