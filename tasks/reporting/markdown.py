"""What the run's page in the Prefect UI shows: the campaign's markdown summary (aggregates
only, numbers masked) and the keys artifacts are published under. Pure: a summary in, text
out; the step that publishes it is ``tasks/steps/report.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tasks.i18n import (
    CATALOG,
    DEFAULT_LANG,
    Lang,
    label,
    money,
    number,
    plural,
    territory_cell,
    text,
)
from tasks.numbers import mask_number
from tasks.outcomes import FAILED, REJECTED, SENT
from tasks.reporting.slot_words import slot_sentences
from tasks.reporting.summary import CampaignSummary, as_mapping
from tasks.row_columns import E164, OUTCOME, REASON

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _reason_cell(code: str, lang: Lang) -> str:
    words = label(lang, "reason", code)
    return code if words == code else f"{words} (`{code}`)"


def chunks_in_state(state: str, n: int, lang: Lang) -> str:
    """ "2 envoyés", "1 annulé" (chunks, in a sentence); a state the catalog does not know
    keeps its code."""
    if f"chunks_in.{state}.other" in CATALOG:
        return plural(lang, f"chunks_in.{state}", n)
    return f"{number(n, lang)} {state}"


def markdown_summary(
    summary: CampaignSummary | Mapping[str, Any], rows: pd.DataFrame, *, lang: Lang = DEFAULT_LANG
) -> str:
    """What the run's page in the Prefect UI shows: aggregates only, numbers masked."""
    summary = as_mapping(summary)
    lines = [
        *_outcome_lines(summary, lang),
        *_territory_lines(summary, lang),
        *_slot_lines(summary, lang),
        *_cost_lines(summary, lang),
        *_reject_lines(rows, lang),
        "",
        text(lang, "report.full", path=f"`{summary['report_dir']}`"),
    ]
    return "\n".join(lines)


def _outcome_lines(summary: Mapping[str, Any], lang: Lang) -> list[str]:
    """The title, what was loaded, and the outcome and reason tables."""
    title = text(lang, "campaign.title", campaign=f"`{summary['campaign_id']}`")
    lines = [
        "# " + title + (text(lang, "campaign.dry_run") if summary["dry_run"] else ""),
        "",
        text(
            lang,
            "campaign.loaded",
            survey=f"`{summary['survey_id']}`",
            rows=plural(lang, "count.rows_loaded", int(summary["loaded"])),
            seconds=number(round(float(summary["duration_seconds"]), 1), lang),
        ),
        "",
        _row(text(lang, "col.outcome"), text(lang, "col.rows")),
        "|---|---:|",
        _row(label(lang, "outcome", SENT), number(summary["sent"], lang)),
        _row(label(lang, "outcome", FAILED), number(summary["failed"], lang)),
        _row(label(lang, "outcome", REJECTED), number(sum(summary["rejected"].values()), lang)),
        "",
    ]
    for key, column in (
        ("rejected", "col.rejected_because"),
        ("failed_reasons", "col.failed_because"),
    ):
        if summary[key]:
            lines += [_row(text(lang, column), text(lang, "col.rows")), "|---|---:|"]
            lines += [_row(_reason_cell(k, lang), number(v, lang)) for k, v in summary[key].items()]
            lines.append("")
    return lines


def _territory_lines(summary: Mapping[str, Any], lang: Lang) -> list[str]:
    outcomes = (SENT, FAILED, REJECTED)
    return [
        _row(text(lang, "col.territory"), *(label(lang, "outcome", o) for o in outcomes)),
        "|---|---:|---:|---:|",
        *(
            _row(territory_cell(t, lang), *(number(c.get(o, 0), lang) for o in outcomes))
            for t, c in summary["territories"].items()
        ),
    ]


def _slot_lines(summary: Mapping[str, Any], lang: Lang) -> list[str]:
    """How each territory is sent, then the chunks by state."""
    lines = ["", "## " + text(lang, "slots.heading"), ""]
    colon = text(lang, "sep.colon")
    sentences = slot_sentences(summary, lang)
    if sentences:
        lines += [f"- **{name}**{colon}{why}" for name, why in sentences.items()]
    else:
        lines.append("- " + text(lang, "slots.nothing"))
    chunks: Mapping[str, Any] = summary.get("chunks") or {}
    if chunks:
        states = text(lang, "sep.list").join(
            chunks_in_state(str(k), int(v), lang) for k, v in chunks.items()
        )
        lines += ["", text(lang, "summary.chunks", states=states)]
    return lines


def _cost_lines(summary: Mapping[str, Any], lang: Lang) -> list[str]:
    currency = str(summary.get("currency") or "EUR")
    cost = money(summary["cost"], currency, lang)
    if summary.get("cost_estimated"):
        cost += text(lang, "cost.partly_estimated")
    lines = [
        "",
        "## " + text(lang, "cost.heading"),
        "",
        "- " + text(lang, "cost.line", sms=number(summary["nb_sms"], lang), cost=cost),
    ]
    if summary.get("estimated_cost") is not None:
        estimated = money(summary["estimated_cost"], currency, lang)
        lines.append("- " + text(lang, "cost.estimated", cost=estimated))
    before = money(summary["credits_before"], currency, lang)
    after = money(summary["credits_after"], currency, lang)
    lines.append("- " + text(lang, "cost.credits", before=before, after=after))
    return lines


def _reject_lines(rows: pd.DataFrame, lang: Lang) -> list[str]:
    """A few rejected rows as examples, numbers masked."""
    examples = rows.loc[rows[OUTCOME] == REJECTED, [E164, REASON]].dropna().head(5)
    if not len(examples):
        return []
    colon = text(lang, "sep.colon")
    return [
        "",
        text(lang, "rejects.examples"),
        "",
        *(
            f"- {mask_number(str(e))}{colon}{_reason_cell(str(r), lang)}"
            for e, r in examples.itertuples(index=False)
        ),
    ]


def artifact_key(campaign_id: str, suffix: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    base = "".join(ch if ch in _KEY_CHARS else "-" for ch in campaign_id.lower()).strip("-")
    return f"{base[:60].strip('-')}-{suffix}"


__all__ = ["artifact_key", "markdown_summary"]
