"""How each territory is sent, in words: the sentences both reports (markdown and HTML) show.

Pure: worded from a summary's slot plan in the report's language (French by default); in
English the slot planner's own explanation wins where there is one (it also says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tasks.i18n import DEFAULT_LANG, Lang, territory_name, text, when
from tasks.reporting.summary import CampaignSummary, as_mapping, slot_plan
from tasks.slots import TERRITORY_ZONES

_PARIS = "Europe/Paris"


def _plan_of(summary: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The summary's slot plan (a dry run's from its ``plan``); territories that were planned
    but have no chunk map to None: they had no slot."""
    plan: dict[str, dict[str, Any] | None] = dict(summary.get("slot_plan") or {})
    if not plan and summary.get("plan"):
        plan.update(
            slot_plan((str(p.get("territory")), p.get("slot"), None) for p in summary["plan"])
        )
    for territory in summary.get("slot_explanations") or {}:
        plan.setdefault(territory, None)
    return dict(sorted(plan.items()))


def _slot_time(slot: str, zone: str, lang: Lang) -> str:
    moment = datetime.fromisoformat(slot)
    local = when(moment, zone, lang)
    if zone == _PARIS:
        return local
    # Overseas: the recipient's clock first, then the gateway's (the one the API is given).
    return text(lang, "slot.paris_too", local=local, paris=when(moment, _PARIS, lang))


def slot_sentence(territory: str, entry: Mapping[str, Any] | None, lang: Lang) -> str:
    """How one territory is sent, from its slot plan entry ("envoi programmé mardi 7 janvier
    13:00 (heure de La Réunion), soit mardi 7 janvier 10:00 (heure de Paris)")."""
    zones = TERRITORY_ZONES.get(territory)
    parts: list[str] = []
    if zones is None and len(territory) == 2 and territory.isupper():
        parts.append(text(lang, "slot.foreign", code=territory))
    if entry is None:
        return text(lang, "sep.list").join([*parts, text(lang, "slot.none")])
    zone = zones[0] if zones else _PARIS
    sent: list[str] = []
    if entry.get("at_once"):
        sent.append(text(lang, "slot.at_once"))
    for slot in entry.get("slots") or []:
        try:
            sent.append(text(lang, "slot.scheduled", when=_slot_time(str(slot), zone, lang)))
        except (TypeError, ValueError):
            sent.append(text(lang, "slot.scheduled", when=str(slot)))
    if not sent:
        sent.append(text(lang, "slot.cancelled" if entry.get("cancelled") else "slot.none"))
    elif entry.get("cancelled"):
        sent.append(text(lang, "slot.some_cancelled"))  # the rest was called off
    return text(lang, "sep.list").join([*parts, *sent])


def slot_sentences(
    summary: CampaignSummary | Mapping[str, Any], lang: Lang = DEFAULT_LANG
) -> dict[str, str]:
    """Territory name -> how it is sent. In English the slot planner's own explanation (it also
    says why) wins where there is one; other languages are worded from the slot plan."""
    summary = as_mapping(summary)
    explanations: Mapping[str, Any] = summary.get("slot_explanations") or {}
    if "slot_plan" not in summary and not summary.get("plan"):
        # A summary written before slot_plan existed: the planner's words are all there is.
        return {territory_name(t, lang): str(why) for t, why in explanations.items()}
    out: dict[str, str] = {}
    for territory, entry in _plan_of(summary).items():
        name = territory_name(territory, lang)
        why = explanations.get(territory)
        out[name] = str(why) if lang == "en" and why else slot_sentence(territory, entry, lang)
    return out


__all__ = ["slot_sentence", "slot_sentences"]
