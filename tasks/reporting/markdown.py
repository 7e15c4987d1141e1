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
    percent,
    plural,
    territory_cell,
    text,
)
from tasks.numbers import mask_number
from tasks.outcomes import FAILED, REJECTED, SENT
from tasks.reporting.slot_words import slot_sentences
from tasks.reporting.summary import CampaignSummary, as_mapping
from tasks.row_columns import E164, OUTCOME, REASON, TERRITORY

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
        *_audience_lines(summary, lang),
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


# -- who was asked (issue 23): the words both renderers use -------------------------------------

# The quota column's names that mean "the territory" (the default: no column of the file).
_TERRITORY_COLUMNS = frozenset({"territory", TERRITORY, "territoire"})


def _count(value: object) -> int:
    """A count read from a summary that may come from another version or an editor."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:
        return int(value)
    return 0


def _amount(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def survey_rows(summary: Mapping[str, Any], lang: Lang) -> list[list[str]]:
    """Per survey: its id, sent, failed, rejected, SMS and cost, as people read them; none
    for a one-survey campaign (its figures are the campaign's)."""
    surveys = summary.get("surveys")
    if not isinstance(surveys, Mapping) or len(surveys) < 2:
        return []
    currency = str(summary.get("currency") or "EUR")
    rows = []
    for survey, figures in surveys.items():
        f = figures if isinstance(figures, Mapping) else {}
        rows.append(
            [
                str(survey),
                *(number(_count(f.get(k)), lang) for k in (SENT, FAILED, REJECTED, "nb_sms")),
                money(_amount(f.get("cost")), currency, lang),
            ]
        )
    return rows


def survey_header(lang: Lang) -> list[str]:
    return [
        text(lang, "col.survey"),
        *(label(lang, "outcome", o) for o in (SENT, FAILED, REJECTED)),
        text(lang, "col.sms"),
        text(lang, "col.cost"),
    ]


def rule_rows(summary: Mapping[str, Any], lang: Lang) -> list[list[str]]:
    """Per contact-pressure rule that set rows aside: its name (with words for the built-in
    frequency cap) and how many rows."""
    skips = summary.get("pressure_skips")
    if not isinstance(skips, Mapping):
        return []
    return [
        [rule_name(str(rule), lang), number(_count(n), lang)]
        for rule, n in skips.items()
        if _count(n) > 0
    ]


def rule_name(rule: str, lang: Lang) -> str:
    """ "délai minimum entre deux enquêtes (cap)"; an operator's own rule keeps its name."""
    words = label(lang, "rule", rule)
    return rule if words == rule else f"{words} ({rule})"


def witnesses_texted(summary: Mapping[str, Any]) -> int:
    return _count(summary.get("witnesses"))


def sample_record(summary: Mapping[str, Any]) -> Mapping[str, Any] | None:
    sample = summary.get("sample")
    return sample if isinstance(sample, Mapping) else None


def _quota_column(sample: Mapping[str, Any], lang: Lang) -> tuple[str, bool]:
    """(the quota column as people read it, whether it is the territory)."""
    column = sample.get("quota_by")
    if column is None or str(column) in _TERRITORY_COLUMNS:
        return text(lang, "sample.territory"), True
    return str(column), False


def sample_facts(sample: Mapping[str, Any], lang: Lang) -> list[tuple[str, str]]:
    """The draw in a few (label, value) pairs: population, eligible, drawn, size, quota, seed."""
    facts = [(text(lang, "sample.population"), number(_count(sample.get("population")), lang))]
    days = _count(sample.get("exclude_days"))
    eligible = (
        text(lang, "sample.eligible_days", days=number(days, lang))
        if days
        else text(lang, "sample.eligible")
    )
    facts.append((eligible, number(_count(sample.get("eligible")), lang)))
    facts.append((text(lang, "sample.drawn"), number(_count(sample.get("drawn")), lang)))
    if sample.get("size") is not None:
        size = number(_count(sample.get("size")), lang)
        share = _amount(sample.get("percent"))
        if share is not None:
            size += f" ({text(lang, 'sample.percent', percent=percent(share / 100, lang))})"
        facts.append((text(lang, "sample.size"), size))
    column, _ = _quota_column(sample, lang)
    quota = sample.get("quota")
    if quota == "proportional":
        said = text(lang, "sample.quota_proportional", column=column)
    elif quota is not None and _count(quota) > 0:
        said = text(lang, "sample.quota_at_most", n=number(_count(quota), lang), column=column)
    else:
        said = text(lang, "sample.no_quota")
    facts.append((text(lang, "sample.quota"), said))
    facts.append((text(lang, "sample.seed"), str(sample.get("seed", text(lang, "unknown")))))
    return facts


def sample_notes(sample: Mapping[str, Any], lang: Lang) -> list[str]:
    """Why the draw is short of the size asked (when it is), and how to make it again."""
    notes = []
    if sample.get("short") and sample.get("size") is not None:
        key = (
            "sample.short_eligible"
            if sample.get("limited_by") == "eligible"
            else "sample.short_quota"
        )
        drawn, size = _count(sample.get("drawn")), _count(sample.get("size"))
        notes.append(text(lang, key, drawn=number(drawn, lang), size=number(size, lang)))
    if sample.get("seed") is not None:
        notes.append(text(lang, "sample.seed_note", seed=sample["seed"]))
    return notes


def sample_cells(
    sample: Mapping[str, Any], lang: Lang
) -> tuple[str, list[str], list[list[str]]] | None:
    """The draw per quota value (title, header, rows); None without a quota column."""
    cells = sample.get("cells")
    if not isinstance(cells, Mapping) or not cells:
        return None
    if sample.get("quota_by") is None and sample.get("quota") is None:
        return None  # no quota: one draw over everybody, nothing per value to show
    column, territories = _quota_column(sample, lang)
    header = [
        text(lang, "col.value"),
        text(lang, "col.population"),
        text(lang, "col.eligible"),
        text(lang, "col.drawn"),
    ]
    rows = []
    for value, cell in cells.items():
        c = cell if isinstance(cell, Mapping) else {}
        if not str(value).strip():
            name = text(lang, "sample.blank")
        else:
            name = territory_cell(str(value), lang) if territories else str(value)
        rows.append(
            [name, *(number(_count(c.get(k)), lang) for k in ("population", "eligible", "drawn"))]
        )
    return text(lang, "sample.cells", column=column), header, rows


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(*header), "|---" + "|---:" * (len(header) - 1) + "|", *(_row(*r) for r in rows)]


def _audience_lines(summary: Mapping[str, Any], lang: Lang) -> list[str]:
    """Per survey, the sample, the contact-pressure rules, the witnesses: those that apply."""
    lines: list[str] = []
    if surveys := survey_rows(summary, lang):
        lines += ["", "## " + text(lang, "audience.surveys"), ""]
        lines += _table_lines(survey_header(lang), surveys)
    if (sample := sample_record(summary)) is not None:
        lines += ["", "## " + text(lang, "audience.sample"), ""]
        colon = text(lang, "sep.colon")
        lines += [f"- {k}{colon}{v}" for k, v in sample_facts(sample, lang)]
        if (cells := sample_cells(sample, lang)) is not None:
            title, header, rows = cells
            lines += ["", title, "", *_table_lines(header, rows)]
        if notes := sample_notes(sample, lang):
            lines += ["", *notes]
    if rules := rule_rows(summary, lang):
        lines += ["", "## " + text(lang, "audience.rules"), "", text(lang, "rules.intro"), ""]
        lines += _table_lines([text(lang, "col.rule"), text(lang, "col.set_aside")], rules)
    if witnesses := witnesses_texted(summary):
        lines += ["", "## " + text(lang, "audience.witnesses"), ""]
        lines.append(plural(lang, "witnesses.texted", witnesses))
    return lines


def artifact_key(campaign_id: str, suffix: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    base = "".join(ch if ch in _KEY_CHARS else "-" for ch in campaign_id.lower()).strip("-")
    return f"{base[:60].strip('-')}-{suffix}"


__all__ = [
    "artifact_key",
    "markdown_summary",
    "rule_name",
    "rule_rows",
    "sample_cells",
    "sample_facts",
    "sample_notes",
    "sample_record",
    "survey_header",
    "survey_rows",
    "witnesses_texted",
]
