"""What a command line prints for people before its JSON line: a few lines in the campaign's
language (what was sent, what it cost, what to do next). Pure: a command's JSON summary in,
lines out; ``flows/cli.py:print_result`` prints them, then the JSON line, which stays last.

``kind`` says which command's summary it is: "send" (a campaign's summary), "follow_up" (one
campaign's delivery counts, or every recent campaign's), "cancel" (a cancel's counts). Another
kind, or a summary without what the lines need, gives no lines: the JSON line says it all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tasks import cancellation as cx
from tasks.i18n import Lang, money, number, plural, text, when
from tasks.outcomes import (
    CANCEL_ALREADY,
    CANCEL_ALREADY_SENT,
    CANCEL_DONE,
    CANCEL_IN_PROGRESS,
    CANCEL_NOT_FOUND,
    CANCEL_NOT_SENT,
    CANCEL_TOO_LATE,
    Reason,
)

# The next step, by the commonest reason rows were not sent (flows/ending.py says it too).
NEXT_STEP: dict[str, str] = {
    Reason.insufficient_credits: "end.next.insufficient_credits",
    Reason.budget_exceeded: "end.next.budget_exceeded",
    Reason.in_doubt: "end.next.in_doubt",
    Reason.gateway_unavailable: "end.next.retry",
    Reason.gateway_error: "end.next.retry",
    Reason.no_slot: "end.next.retry",
    Reason.cancelled: "end.next.cancelled",
}
_SHOWN_SLOTS = 3  # a campaign over many territories: the first slots, and how many more
_PARIS = "Europe/Paris"
_CANCELLED = (CANCEL_DONE, CANCEL_ALREADY, CANCEL_NOT_SENT)
_NOT_CANCELLED = (CANCEL_TOO_LATE, CANCEL_ALREADY_SENT, CANCEL_NOT_FOUND, CANCEL_IN_PROGRESS)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def readable_lines(summary: Mapping[str, Any], lang: Lang, kind: str) -> list[str]:
    """The lines people read before the JSON line (none for a summary this does not know)."""
    if kind == "send" and "loaded" in summary:
        return _send_lines(summary, lang)
    if kind == "follow_up" and "campaigns" in summary:
        return _follow_up_all_lines(summary, lang)
    if kind == "follow_up" and "chunks_checked" in summary:
        return _follow_up_lines(summary, lang)
    if kind == "cancel" and "recipients_cancelled" in summary:
        return _cancel_lines(summary, lang)
    return []


def _send_lines(s: Mapping[str, Any], lang: Lang) -> list[str]:
    currency = str(s.get("currency") or "EUR")
    rejected = sum(_int(v) for v in (s.get("rejected") or {}).values())
    title = text(lang, "term.campaign", campaign=s.get("campaign_id", ""))
    if s.get("dry_run"):
        title += text(lang, "campaign.dry_run")
    counts = text(
        lang,
        "term.counts",
        loaded=plural(lang, "count.rows_loaded", _int(s.get("loaded"))),
        sent=plural(lang, "count.sent", _int(s.get("sent"))),
        failed=plural(lang, "count.failed", _int(s.get("failed"))),
        rejected=plural(lang, "count.rejected", rejected),
    )
    lines = [title, counts]
    if s.get("dry_run"):
        would = plural(lang, "count.recipients", _int(s.get("would_send")))
        lines.append(f"{text(lang, 'term.dry_run')} {text(lang, 'term.would_send', n=would)}")
        lines.append(
            text(lang, "term.estimated", cost=money(s.get("estimated_cost"), currency, lang))
        )
    else:
        cost = text(
            lang,
            "term.cost",
            cost=money(s.get("cost"), currency, lang),
            sms=plural(lang, "count.sms", _int(s.get("nb_sms"))),
        )
        if s.get("credits_after") is not None:
            cost += " " + text(
                lang, "term.credits_after", credits=money(s["credits_after"], currency, lang)
            )
        lines.append(cost)
        lines += _when(s, lang)
    lines += _audience_lines(s, lang, currency)
    if s.get("report_dir"):
        lines.append(text(lang, "term.report", path=f"{s['report_dir']}/report.html"))
    lines.append(text(lang, "term.next", step=_next_step(s, rejected, lang)))
    return lines


def _audience_lines(s: Mapping[str, Any], lang: Lang, currency: str) -> list[str]:
    """Who was asked, when it is more than "everybody in the file, one survey": the sample,
    the rows the contact-pressure rules set aside, the witnesses, the figures per survey."""
    lines = []
    sample = s.get("sample")
    if isinstance(sample, Mapping):
        lines.append(
            text(
                lang,
                "term.sample",
                drawn=plural(lang, "count.drawn", _int(sample.get("drawn"))),
                eligible=number(_int(sample.get("eligible")), lang),
                population=number(_int(sample.get("population")), lang),
                seed=sample.get("seed", text(lang, "unknown")),
            )
        )
    skips = s.get("pressure_skips")
    if isinstance(skips, Mapping) and any(_int(n) > 0 for n in skips.values()):
        rules = text(lang, "sep.list").join(
            f"{rule} {number(_int(n), lang)}" for rule, n in skips.items() if _int(n) > 0
        )
        lines.append(text(lang, "term.rules", rules=rules))
    if (witnesses := _int(s.get("witnesses"))) > 0:
        lines.append(plural(lang, "term.witnesses", witnesses))
    surveys = s.get("surveys")
    if isinstance(surveys, Mapping) and len(surveys) > 1:
        items = [
            text(
                lang,
                "term.survey_item",
                survey=survey,
                sent=plural(lang, "count.sent", _int(f.get("sent"))),
                cost=money(_amount(f.get("cost")), currency, lang),
            )
            for survey, f in surveys.items()
            if isinstance(f, Mapping)
        ]
        lines.append(text(lang, "term.surveys", surveys=text(lang, "sep.list").join(items)))
    return lines


def _amount(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _when(s: Mapping[str, Any], lang: Lang) -> list[str]:
    """ "Envoi immédiat." and/or "Envoi programmé : mardi 7 janvier 10:00 (heure de Paris)."
    (the gateway's clock: each territory's own is in the report)."""
    lines = [text(lang, "term.at_once")] if s.get("sent_at_once") else []
    slots = [str(x) for x in s.get("slots") or []]
    shown = []
    for slot in slots[:_SHOWN_SLOTS]:
        try:
            shown.append(when(datetime.fromisoformat(slot), _PARIS, lang))
        except ValueError:
            shown.append(slot)
    if len(slots) > _SHOWN_SLOTS:
        shown.append(text(lang, "stops.more", n=number(len(slots) - _SHOWN_SLOTS, lang)))
    if shown:
        lines.append(text(lang, "term.scheduled", slots=text(lang, "sep.list").join(shown)))
    return lines


def _next_step(s: Mapping[str, Any], rejected: int, lang: Lang) -> str:
    campaign = s.get("campaign_id", "")
    if _int(s.get("failed")) > 0:
        reasons = Counter({r: _int(n) for r, n in (s.get("failed_reasons") or {}).items()})
        first = reasons.most_common(1)[0][0] if reasons else ""
        return text(lang, NEXT_STEP.get(first, "end.next.other"), campaign=campaign)
    if s.get("dry_run"):
        return text(lang, "term.next.dry_run")
    if rejected:
        return text(lang, "term.next.rejects")
    return text(lang, "term.next.done")


def _follow_up_lines(s: Mapping[str, Any], lang: Lang) -> list[str]:
    checked = plural(lang, "count.chunks_checked", _int(s.get("chunks_checked")))
    return [
        text(lang, "term.campaign", campaign=s.get("campaign_id", "")),
        text(
            lang,
            "term.delivery",
            checked=checked[:1].upper() + checked[1:],
            delivered=number(_int(s.get("delivered")), lang),
            not_delivered=number(_int(s.get("not_delivered")), lang),
            waiting=number(_int(s.get("waiting")), lang),
        ),
        text(
            lang,
            "term.stops",
            added=number(_int(s.get("stop_added")), lang),
        ),
        *(
            [
                text(
                    lang,
                    "log.retired",
                    retired=number(_int(s.get("retired")), lang),
                    released=number(_int(s.get("released")), lang),
                )
            ]
            if _int(s.get("retired")) or _int(s.get("released"))
            else []
        ),
        text(lang, "term.next", step=text(lang, "term.next.follow_up")),
    ]


def _follow_up_all_lines(s: Mapping[str, Any], lang: Lang) -> list[str]:
    campaigns: Mapping[str, Any] = s.get("campaigns") or {}
    failed: Mapping[str, Any] = s.get("failed") or {}
    lines = [
        text(
            lang,
            "term.campaigns_followed",
            n=number(len(campaigns) + len(failed), lang),
            failed=number(len(failed), lang),
        )
    ]
    for counts in campaigns.values():
        if isinstance(counts, Mapping):
            lines += _follow_up_lines(counts, lang)[:2]
    lines.append(text(lang, "term.next", step=text(lang, "term.next.follow_up")))
    return lines


def _cancel_lines(s: Mapping[str, Any], lang: Lang) -> list[str]:
    kept = sum(_int(s.get(o)) for o in _NOT_CANCELLED)
    said = text(
        lang,
        "term.cancelled",
        spared=plural(lang, "term.cancel_spared", _int(s.get("recipients_cancelled"))),
        cancelled=number(sum(_int(s.get(o)) for o in _CANCELLED), lang),
        kept=number(kept, lang),
    )
    step = "term.next.cancel_kept" if kept else "term.next.cancel_done"
    return [
        text(lang, "term.campaign", campaign=s.get("campaign_id", "")),
        said,
        *cx.witness_lines(s, lang),  # the witnesses' scheduled SMS, when the campaign had some
        text(lang, "term.next", step=text(lang, step)),
    ]


__all__ = ["NEXT_STEP", "readable_lines"]
