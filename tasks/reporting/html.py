"""The campaign report as one self-contained HTML page: summary, charts, delivery.

Inline CSS and inline SVG only: no script, font, image or link to anything, so the page opens the
same from a laptop, a mail attachment or a server without internet, and its
Content-Security-Policy forbids the browser to fetch anything at all. Only aggregates and masked
numbers go in; every text is escaped. The page is French by default (``lang="en"`` for English):
labels, dates, amounts and territory names go through :mod:`tasks.i18n`.

Charts are horizontal bars, stacked when a bar has several parts. Each chart is an ``<svg>`` with
a stable id (``chart-outcomes``, ``chart-rejects``, ``chart-surveys`` when a campaign sends
several surveys, ``chart-territories``, ``chart-delivery``, ``chart-delivery-territories``);
each drawn part is a ``<rect class="bar ...">`` with ``data-series`` and ``data-value``, and
only parts with a positive value are drawn.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tasks.files import atomic_path
from tasks.i18n import (
    DEFAULT_LANG,
    Lang,
    label,
    money,
    number,
    percent,
    plural,
    territory_name,
    text,
    when,
)
from tasks.numbers import mask_number
from tasks.outcomes import (
    DELIVERED,
    DELIVERY_STATUSES,
    FAILED,
    NOT_DELIVERED,
    OTHER_STATUS,
    REJECTED,
    SENT,
    WAITING,
)
from tasks.reporting.markdown import (
    rule_rows,
    sample_cells,
    sample_facts,
    sample_notes,
    sample_record,
    survey_header,
    survey_rows,
    witnesses_texted,
)
from tasks.reporting.slot_words import slot_sentences

# Okabe-Ito colours: told apart by people with the common colour-vision deficiencies.
COLOURS: dict[str, str] = {
    SENT: "#009E73",
    FAILED: "#D55E00",
    REJECTED: "#999999",
    DELIVERED: "#009E73",
    NOT_DELIVERED: "#D55E00",
    WAITING: "#E69F00",
    OTHER_STATUS: "#56B4E9",
}
# Which catalog group words each series (tasks.i18n): outcomes, or delivery statuses.
_SERIES_GROUP: dict[str, str] = {
    SENT: "outcome",
    FAILED: "outcome",
    REJECTED: "outcome",
    DELIVERED: "status",
    NOT_DELIVERED: "status",
    WAITING: "status",
    OTHER_STATUS: "status",
}
_PARIS = "Europe/Paris"

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"
_E164 = re.compile(r"^\+\d{8,15}$")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:60rem;padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
svg.chart{display:block;max-width:100%;height:auto}svg.chart text{font-size:12px;fill:#222}
.legend{display:flex;gap:1rem;flex-wrap:wrap;font-size:.85rem;margin:.2rem 0}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-.1rem}
.empty{color:#666;font-style:italic}.note{color:#555;font-size:.9rem}
@media (max-width:40rem){body{padding:0 .5rem}th,td{padding:.2rem .35rem}
table{display:block;max-width:100%;overflow-x:auto;font-size:.85rem}
dl{grid-template-columns:1fr 1fr}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def _money(value: object, currency: object, lang: Lang) -> str:
    amount = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    return _e(money(amount, str(currency or "EUR"), lang))


def _series(series: str, lang: Lang) -> str:
    return label(lang, _SERIES_GROUP.get(series, "outcome"), series)


def _territory(code: str, lang: Lang) -> str:
    name = territory_name(code, lang)
    if code == "unknown" or name == code:
        return name  # rows without a territory: "inconnu", not "unknown · inconnu"
    return f"{code} · {name}"


def _moment(value: object, lang: Lang) -> str:
    """An ISO 8601 instant as the operator reads it (Paris time); as given if it is not one."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            return when(moment, _PARIS, lang)
    return str(value)


def _masked(value: object) -> str:
    """A number for display: masked if it came in whole (belt and braces), else as given."""
    text = str(value)
    return mask_number(text) if _E164.match(text) else text


# -- charts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar: a label and its parts, drawn left to right in the order given."""

    label: str
    parts: Sequence[tuple[str, int]]  # (series, value)
    short: str | None = None  # shown beside the bar when the label is too long for it

    @property
    def total(self) -> int:
        return sum(max(v, 0) for _, v in self.parts)


_LABEL_W, _BAR_W, _VALUE_W, _ROW_H, _BAR_H, _TOP = 190, 400, 90, 26, 18, 4
_LABEL_CHARS = 28  # what the label column holds at 12px: a longer label is cut with "…"


def svg_bars(chart_id: str, title: str, bars: Sequence[Bar], lang: Lang = DEFAULT_LANG) -> str:
    """A horizontal bar chart (stacked parts) as inline SVG; a note when there is nothing."""
    top = max((b.total for b in bars), default=0)
    if top <= 0:
        return f'<p class="empty" id="{_e(chart_id)}-empty">{_e(text(lang, "html.nothing"))}</p>'
    width = _LABEL_W + _BAR_W + _VALUE_W
    height = _TOP * 2 + _ROW_H * len(bars)
    out = [
        f'<svg id="{_e(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    for row, bar in enumerate(bars):
        y = _TOP + row * _ROW_H
        mid = y + _ROW_H / 2
        # A label wider than its column would be cut at the page's edge: the short one is
        # shown (cut with "…" if still too long), the whole one is the tooltip.
        shown = bar.short or bar.label
        if len(shown) > _LABEL_CHARS:
            cut = shown[: _LABEL_CHARS - 1]
            word = cut.rsplit(" ", 1)[0]  # at a word's end, unless that leaves too little
            shown = (word if len(word) > _LABEL_CHARS // 2 else cut).rstrip() + "…"
        tip = f"<title>{_e(bar.label)}</title>" if shown != bar.label else ""
        out.append(
            f'<text class="label" x="{_LABEL_W - 8}" y="{mid:.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{_e(shown)}{tip}</text>'
        )
        x = float(_LABEL_W)
        for series, value in bar.parts:
            if value <= 0:
                continue
            # A small positive count stays visible (at least one pixel) next to a huge one.
            w = max(_BAR_W * value / top, 1.0)
            out.append(
                f'<rect class="bar bar-{_e(series)}" data-series="{_e(series)}" '
                f'data-value="{value}" x="{x:.2f}" y="{y + (_ROW_H - _BAR_H) / 2:.1f}" '
                f'width="{w:.2f}" height="{_BAR_H}" fill="{COLOURS.get(series, "#666666")}">'
                f"<title>{_e(bar.label)}: {_e(_series(series, lang))} {_e(number(value, lang))}"
                "</title></rect>"
            )
            x += w
        out.append(
            f'<text class="value" x="{x + 6:.2f}" y="{mid:.1f}" '
            f'dominant-baseline="middle">{_e(number(bar.total, lang))}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _legend(series: Sequence[str], lang: Lang) -> str:
    items = "".join(
        f'<span><span class="swatch" style="background:{COLOURS.get(s, "#666666")}"></span>'
        f"{_e(_series(s, lang))}</span>"
        for s in series
    )
    return f'<div class="legend">{items}</div>'


def _figure(
    chart_id: str, title: str, bars: Sequence[Bar], series: Sequence[str], lang: Lang
) -> str:
    legend = _legend(series, lang) if len(series) > 1 else ""
    return (
        f"<figure><figcaption>{_e(title)}</figcaption>{legend}"
        f"{svg_bars(chart_id, title, bars, lang)}</figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1) -> str:
    head = "".join(
        f"<th{' class=n' if i >= numeric_from else ''}>{_e(h)}</th>" for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i >= numeric_from else ''}>{_e(v)}</td>" for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- sections --------------------------------------------------------------------------------


def _overview(s: Mapping[str, Any], lang: Lang) -> str:
    rejected = s.get("rejected") or {}
    currency = s.get("currency") or ""

    def n(value: object) -> str:
        return _e(number(_int(value), lang))

    items: list[tuple[str, str]] = [
        (text(lang, "html.survey"), _e(s.get("survey_id") or text(lang, "unknown"))),
        (text(lang, "html.loaded"), n(s.get("loaded"))),
        (text(lang, "html.sent"), n(s.get("sent"))),
        (text(lang, "html.failed"), n(s.get("failed"))),
        (text(lang, "html.rejected"), n(sum(_int(v) for v in rejected.values()))),
        (text(lang, "html.sms"), n(s.get("nb_sms"))),
        (text(lang, "html.cost"), _money(s.get("cost"), currency, lang)),
        (
            text(lang, "html.credits"),
            f"{_money(s.get('credits_before'), currency, lang)} / "
            f"{_money(s.get('credits_after'), currency, lang)}",
        ),
    ]
    if s.get("estimated_cost") is not None:
        items.append(
            (text(lang, "html.estimated"), _money(s.get("estimated_cost"), currency, lang))
        )
    slots = s.get("slots") or []
    shown = text(lang, "sep.list").join(_moment(x, lang) for x in slots)
    scheduled = text(lang, "html.scheduled", slots=shown) if slots else ""
    if s.get("sent_at_once"):
        parts = [text(lang, "html.at_once"), scheduled]
        scheduled = text(lang, "sep.list").join(p for p in parts if p)
    cancelled = _int((s.get("chunks") or {}).get("cancelled"))
    if cancelled:  # called off after it was planned: said, not left as "scheduled"
        said = text(lang, "html.cancelled_chunks", n=number(cancelled, lang))
        scheduled = text(lang, "sep.list").join(p for p in (scheduled, said) if p)
    items.append((text(lang, "html.delivery_when"), _e(scheduled or text(lang, "unknown"))))
    if s.get("duration_seconds") is not None:
        seconds = number(round(float(s["duration_seconds"]), 1), lang)
        items.append((text(lang, "html.run_time"), _e(text(lang, "html.seconds", seconds=seconds))))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f"<dl>{body}</dl>"


def _reason(code: str, lang: Lang) -> str:
    words = label(lang, "reason", code)
    return code if words == code else f"{words} ({code})"


def _outcome_section(s: Mapping[str, Any], lang: Lang) -> str:
    rejected = {str(k): _int(v) for k, v in (s.get("rejected") or {}).items()}
    failed_reasons = {str(k): _int(v) for k, v in (s.get("failed_reasons") or {}).items()}
    bars = [
        Bar(_series(SENT, lang), [(SENT, _int(s.get("sent")))]),
        Bar(_series(FAILED, lang), [(FAILED, _int(s.get("failed")))]),
        Bar(_series(REJECTED, lang), [(REJECTED, sum(rejected.values()))]),
    ]
    out = [
        f"<h2>{_e(text(lang, 'html.outcomes'))}</h2>",
        _figure(
            "chart-outcomes", text(lang, "html.by_outcome"), bars, [SENT, FAILED, REJECTED], lang
        ),
    ]
    if rejected:
        reason_bars = [
            Bar(_reason(k, lang), [(REJECTED, v)], short=label(lang, "reason", k))
            for k, v in sorted(rejected.items(), key=lambda kv: -kv[1])
        ]
        out.append(
            _figure("chart-rejects", text(lang, "html.by_reason"), reason_bars, [REJECTED], lang)
        )
    if failed_reasons:
        out.append(f"<p>{_e(text(lang, 'html.failed_because'))}</p>")
        out.append(
            _table(
                [text(lang, "col.reason"), text(lang, "col.rows")],
                [[_reason(k, lang), number(v, lang)] for k, v in sorted(failed_reasons.items())],
            )
        )
    return "\n".join(out)


def _audience_section(s: Mapping[str, Any], lang: Lang) -> str:
    """Who was asked (issue 23), the parts that apply: per survey, the sample's draw, the
    contact-pressure rules' skips, the witnesses."""
    out = []
    if rows := survey_rows(s, lang):
        surveys: Mapping[str, Any] = s.get("surveys") or {}
        series = [SENT, FAILED, REJECTED]
        bars = [
            Bar(
                str(name),
                [(k, _int(f.get(k) if isinstance(f, Mapping) else 0)) for k in series],
            )
            for name, f in surveys.items()
        ]
        out += [
            f"<h2>{_e(text(lang, 'audience.surveys'))}</h2>",
            _figure("chart-surveys", text(lang, "html.by_survey"), bars, series, lang),
            _table(survey_header(lang), rows),
        ]
    if (sample := sample_record(s)) is not None:
        facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in sample_facts(sample, lang))
        out += [f'<h2 id="sample">{_e(text(lang, "audience.sample"))}</h2>', f"<dl>{facts}</dl>"]
        if (cells := sample_cells(sample, lang)) is not None:
            title, header, cell_rows = cells
            out += [f"<p>{_e(title)}</p>", _table(header, cell_rows)]
        out += [f'<p class="note">{_e(note)}</p>' for note in sample_notes(sample, lang)]
    if rules := rule_rows(s, lang):
        out += [
            f'<h2 id="pressure">{_e(text(lang, "audience.rules"))}</h2>',
            f"<p>{_e(text(lang, 'rules.intro'))}</p>",
            _table([text(lang, "col.rule"), text(lang, "col.set_aside")], rules),
        ]
    if witnesses := witnesses_texted(s):
        out += [
            f'<h2 id="witnesses">{_e(text(lang, "audience.witnesses"))}</h2>',
            f"<p>{_e(plural(lang, 'witnesses.texted', witnesses))}</p>",
        ]
    return "\n".join(out)


def _territory_section(s: Mapping[str, Any], lang: Lang) -> str:
    territories: Mapping[str, Mapping[str, Any]] = s.get("territories") or {}
    series = [SENT, FAILED, REJECTED]
    bars = [
        Bar(_territory(str(t), lang), [(k, _int(c.get(k))) for k in series])
        for t, c in territories.items()
    ]
    rows = [
        [_territory(str(t), lang), *(number(_int(c.get(k)), lang) for k in series)]
        for t, c in territories.items()
    ]
    out = [
        f"<h2>{_e(text(lang, 'html.territories'))}</h2>",
        _figure("chart-territories", text(lang, "html.by_territory"), bars, series, lang),
    ]
    if rows:
        header = [text(lang, "col.territory"), *(_series(k, lang) for k in series)]
        out.append(_table(header, rows))
    sentences = slot_sentences(s, lang)
    if sentences:
        colon = text(lang, "sep.colon")
        out.append(f"<h2>{_e(text(lang, 'slots.heading'))}</h2><ul>")
        out += [
            f"<li><strong>{_e(name)}</strong>{_e(colon)}{_e(why)}</li>"
            for name, why in sentences.items()
        ]
        out.append("</ul>")
    chunks: Mapping[str, Any] = s.get("chunks") or {}
    if chunks:
        out.append(f"<h2>{_e(text(lang, 'html.chunks'))}</h2>")
        out.append(
            _table(
                [text(lang, "col.state"), text(lang, "col.chunks")],
                [[label(lang, "state", str(k)), number(_int(v), lang)] for k, v in chunks.items()],
            )
        )
    return "\n".join(out)


def _delivery_section(f: Mapping[str, Any], lang: Lang) -> str:
    counts = {b: _int(f.get(b)) for b in DELIVERY_STATUSES}
    total = sum(counts.values())
    bars = [Bar(_series(b, lang), [(b, counts[b])]) for b in DELIVERY_STATUSES]
    by_territory: Mapping[str, Mapping[str, Any]] = f.get("by_territory") or {}
    t_bars = [
        Bar(_territory(str(t), lang), [(b, _int(c.get(b))) for b in DELIVERY_STATUSES])
        for t, c in by_territory.items()
    ]
    note = text(
        lang,
        "html.delivery_note",
        chunks=plural(lang, "count.chunks_checked", _int(f.get("chunks_checked"))),
        checked=_moment(f.get("checked_at") or text(lang, "unknown"), lang),
        latest=_moment(f.get("last_status_at") or text(lang, "none_yet"), lang),
    )
    statuses = list(DELIVERY_STATUSES)
    out = [
        f"<h2>{_e(text(lang, 'html.delivery'))}</h2>",
        f'<p class="note">{_e(note)}</p>',
        _figure("chart-delivery", text(lang, "html.by_status"), bars, statuses, lang),
    ]
    if total:
        out.append(
            _table(
                [text(lang, "col.status"), text(lang, "col.recipients"), text(lang, "col.share")],
                [
                    [_series(b, lang), number(counts[b], lang), percent(counts[b] / total, lang)]
                    for b in DELIVERY_STATUSES
                ],
            )
        )
    out.append(
        _figure(
            "chart-delivery-territories",
            text(lang, "html.status_by_territory"),
            t_bars,
            statuses,
            lang,
        )
    )
    out += _stops_and_problems(f, lang)
    return "\n".join(out)


def _stops_and_problems(f: Mapping[str, Any], lang: Lang) -> list[str]:
    """The STOP replies found (masked, the first 20) and the follow-up's problems."""
    out = []
    stops = [str(x) for x in f.get("stops_masked") or []]
    summary = text(
        lang,
        "stops.summary",
        stops=number(len(stops), lang),
        added=number(_int(f.get("stop_added")), lang),
    )
    out.append(f"<p>{_e(summary)}</p>")
    if stops:
        shown = "".join(f"<li>{_e(_masked(x))}</li>" for x in stops[:20])
        more = (
            f"<li>{_e(text(lang, 'stops.more', n=number(len(stops) - 20, lang)))}</li>"
            if len(stops) > 20
            else ""
        )
        out.append(f'<ul class="stops">{shown}{more}</ul>')
    problems = f.get("problems") or []
    if problems:
        out.append(
            f"<p>{_e(text(lang, 'html.problems'))}</p><ul>"
            + "".join(f"<li>{_e(p)}</li>" for p in problems[:20])
            + "</ul>"
        )
    return out


def render_html(
    summary: Mapping[str, Any],
    follow_up: Mapping[str, Any] | None = None,
    *,
    lang: Lang = DEFAULT_LANG,
) -> str:
    """The whole page. Missing keys are tolerated (a report rebuilt without its summary)."""
    cid = str(summary.get("campaign_id") or (follow_up or {}).get("campaign_id") or "campaign")
    dry = text(lang, "campaign.dry_run") if summary.get("dry_run") else ""
    # The id in <code>: escape the words around it, not the markup.
    before, _, after = text(lang, "campaign.title", campaign="\0").partition("\0")
    heading = f"{_e(before)}<code>{_e(cid)}</code>{_e(after)}"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(lang)}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(text(lang, 'campaign.title', campaign=cid))}{_e(dry)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{heading}{_e(dry)}</h1>",
        _overview(summary, lang),
        _outcome_section(summary, lang),
        _audience_section(summary, lang),
        _territory_section(summary, lang),
    ]
    if follow_up is not None:
        parts.append(_delivery_section(follow_up, lang))
    parts.append(f'<p class="note">{_e(text(lang, "html.footer"))}</p></body></html>')
    return "\n".join(parts) + "\n"


def write_html_report(
    report_dir: Path,
    summary: Mapping[str, Any],
    follow_up: Mapping[str, Any] | None = None,
    *,
    lang: Lang = DEFAULT_LANG,
) -> Path:
    """Write ``report.html`` in ``report_dir`` (atomically: a reader never sees half a page)."""
    path = report_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render_html(summary, follow_up, lang=lang), encoding="utf-8")
    return path


__all__ = ["COLOURS", "Bar", "render_html", "svg_bars", "write_html_report"]
