"""The campaign report as one self-contained HTML page: summary, charts, delivery.

Inline CSS and inline SVG only: no script, font, image or link to anything, so the page opens the
same from a laptop, a mail attachment or a server without internet, and its
Content-Security-Policy forbids the browser to fetch anything at all. Only aggregates and masked
numbers go in; every text is escaped.

Charts are horizontal bars, stacked when a bar has several parts. Each chart is an ``<svg>`` with
a stable id (``chart-outcomes``, ``chart-rejects``, ``chart-territories``, ``chart-delivery``,
``chart-delivery-territories``); each drawn part is a ``<rect class="bar ...">`` with
``data-series`` and ``data-value``, and only parts with a positive value are drawn.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from tasks.reporting import atomic_path

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
LABELS: dict[str, str] = {
    SENT: "sent",
    FAILED: "failed",
    REJECTED: "rejected",
    DELIVERED: "delivered",
    NOT_DELIVERED: "not delivered",
    WAITING: "waiting",
    OTHER_STATUS: "other / no status",
}
TERRITORY_NAMES: dict[str, str] = {
    "FR": "Metropolitan France",
    "GP": "Guadeloupe",
    "MQ": "Martinique",
    "GF": "French Guiana",
    "RE": "Réunion",
    "YT": "Mayotte",
    "PM": "Saint-Pierre-et-Miquelon",
    "NC": "New Caledonia",
    "PF": "French Polynesia",
    "WF": "Wallis-et-Futuna",
}

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


def _money(value: object, currency: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.3f} {_e(currency or '')}".strip()
    return "n/a"


def _territory(code: str) -> str:
    name = TERRITORY_NAMES.get(code)
    return f"{code} · {name}" if name else code


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

    @property
    def total(self) -> int:
        return sum(max(v, 0) for _, v in self.parts)


_LABEL_W, _BAR_W, _VALUE_W, _ROW_H, _BAR_H, _TOP = 190, 400, 90, 26, 18, 4


def svg_bars(chart_id: str, title: str, bars: Sequence[Bar]) -> str:
    """A horizontal bar chart (stacked parts) as inline SVG; a note when there is nothing."""
    top = max((b.total for b in bars), default=0)
    if top <= 0:
        return f'<p class="empty" id="{_e(chart_id)}-empty">Nothing to chart.</p>'
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
        out.append(
            f'<text class="label" x="{_LABEL_W - 8}" y="{mid:.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{_e(bar.label)}</text>'
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
                f"<title>{_e(bar.label)}: {_e(LABELS.get(series, series))} {value}</title></rect>"
            )
            x += w
        out.append(
            f'<text class="value" x="{x + 6:.2f}" y="{mid:.1f}" '
            f'dominant-baseline="middle">{bar.total:,}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _legend(series: Sequence[str]) -> str:
    items = "".join(
        f'<span><span class="swatch" style="background:{COLOURS.get(s, "#666666")}"></span>'
        f"{_e(LABELS.get(s, s))}</span>"
        for s in series
    )
    return f'<div class="legend">{items}</div>'


def _figure(chart_id: str, title: str, bars: Sequence[Bar], series: Sequence[str]) -> str:
    legend = _legend(series) if len(series) > 1 else ""
    return (
        f"<figure><figcaption>{_e(title)}</figcaption>{legend}"
        f"{svg_bars(chart_id, title, bars)}</figure>"
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


def _overview(s: Mapping[str, Any]) -> str:
    rejected = s.get("rejected") or {}
    currency = s.get("currency") or ""
    items: list[tuple[str, str]] = [
        ("Survey", _e(s.get("survey_id", "n/a"))),
        ("Rows loaded", f"{_int(s.get('loaded')):,}"),
        ("Sent", f"{_int(s.get('sent')):,}"),
        ("Failed", f"{_int(s.get('failed')):,}"),
        ("Rejected", f"{sum(_int(v) for v in rejected.values()):,}"),
        ("SMS billed", f"{_int(s.get('nb_sms')):,}"),
        ("Cost", _money(s.get("cost"), currency)),
        (
            "Credits before / after",
            f"{_money(s.get('credits_before'), currency)} / "
            f"{_money(s.get('credits_after'), currency)}",
        ),
    ]
    if s.get("estimated_cost") is not None:
        items.append(("Estimated cost if sent", _money(s.get("estimated_cost"), currency)))
    slots = s.get("slots") or []
    when = ", ".join(_e(x) for x in slots) if slots else ""
    if s.get("sent_at_once"):
        when = "at once" + (f"; scheduled: {when}" if when else "")
    items.append(("Delivery", when or "n/a"))
    if s.get("duration_seconds") is not None:
        items.append(("Run time", f"{float(s['duration_seconds']):.1f} s"))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f"<dl>{body}</dl>"


def _outcome_section(s: Mapping[str, Any]) -> str:
    rejected = {str(k): _int(v) for k, v in (s.get("rejected") or {}).items()}
    failed_reasons = {str(k): _int(v) for k, v in (s.get("failed_reasons") or {}).items()}
    bars = [
        Bar(LABELS[SENT], [(SENT, _int(s.get("sent")))]),
        Bar(LABELS[FAILED], [(FAILED, _int(s.get("failed")))]),
        Bar(LABELS[REJECTED], [(REJECTED, sum(rejected.values()))]),
    ]
    out = [
        "<h2>Outcomes</h2>",
        _figure("chart-outcomes", "Recipients by outcome", bars, [SENT, FAILED, REJECTED]),
    ]
    if rejected:
        reason_bars = [
            Bar(k, [(REJECTED, v)]) for k, v in sorted(rejected.items(), key=lambda kv: -kv[1])
        ]
        out.append(_figure("chart-rejects", "Rejected rows by reason", reason_bars, [REJECTED]))
    if failed_reasons:
        out.append("<p>Failed because:</p>")
        out.append(_table(["reason", "rows"], sorted(failed_reasons.items())))
    return "\n".join(out)


def _territory_section(s: Mapping[str, Any]) -> str:
    territories: Mapping[str, Mapping[str, Any]] = s.get("territories") or {}
    series = [SENT, FAILED, REJECTED]
    bars = [
        Bar(_territory(str(t)), [(k, _int(c.get(k))) for k in series])
        for t, c in territories.items()
    ]
    rows = [[_territory(str(t)), *(_int(c.get(k)) for k in series)] for t, c in territories.items()]
    out = [
        "<h2>Territories</h2>",
        _figure("chart-territories", "Recipients by territory and outcome", bars, series),
    ]
    if rows:
        out.append(_table(["territory", *(LABELS[k] for k in series)], rows))
    explanations: Mapping[str, Any] = s.get("slot_explanations") or {}
    if explanations:
        out.append("<h2>Delivery slots</h2><ul>")
        out += [f"<li><strong>{_e(t)}</strong>: {_e(why)}</li>" for t, why in explanations.items()]
        out.append("</ul>")
    chunks: Mapping[str, Any] = s.get("chunks") or {}
    if chunks:
        out.append("<h2>API calls (chunks)</h2>")
        out.append(_table(["state", "chunks"], [[k, _int(v)] for k, v in chunks.items()]))
    return "\n".join(out)


def _delivery_section(f: Mapping[str, Any]) -> str:
    counts = {b: _int(f.get(b)) for b in DELIVERY_STATUSES}
    total = sum(counts.values())
    bars = [Bar(LABELS[b], [(b, counts[b])]) for b in DELIVERY_STATUSES]
    by_territory: Mapping[str, Mapping[str, Any]] = f.get("by_territory") or {}
    t_bars = [
        Bar(_territory(str(t)), [(b, _int(c.get(b))) for b in DELIVERY_STATUSES])
        for t, c in by_territory.items()
    ]
    out = [
        "<h2>Delivery</h2>",
        f'<p class="note">{_int(f.get("chunks_checked"))} sent chunks checked at '
        f"{_e(f.get('checked_at') or 'n/a')} (UTC); latest status from the gateway: "
        f"{_e(f.get('last_status_at') or 'none yet')}. Delivery reports can take up to 48 h.</p>",
        _figure("chart-delivery", "Recipients by delivery status", bars, list(DELIVERY_STATUSES)),
    ]
    if total:
        out.append(
            _table(
                ["status", "recipients", "share"],
                [
                    [LABELS[b], counts[b], f"{100 * counts[b] / total:.1f} %"]
                    for b in DELIVERY_STATUSES
                ],
            )
        )
    out.append(
        _figure(
            "chart-delivery-territories",
            "Delivery status by territory",
            t_bars,
            list(DELIVERY_STATUSES),
        )
    )
    stops = [str(x) for x in f.get("stops_masked") or []]
    out.append(
        f"<p>{len(stops)} recipients replied STOP; {_int(f.get('stop_added'))} were added to the "
        "local suppression list.</p>"
    )
    if stops:
        shown = "".join(f"<li>{_e(_masked(x))}</li>" for x in stops[:20])
        more = f"<li>... and {len(stops) - 20} more</li>" if len(stops) > 20 else ""
        out.append(f'<ul class="stops">{shown}{more}</ul>')
    problems = f.get("problems") or []
    if problems:
        out.append(
            "<p>Problems:</p><ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems[:20]) + "</ul>"
        )
    return "\n".join(out)


def render_html(summary: Mapping[str, Any], follow_up: Mapping[str, Any] | None = None) -> str:
    """The whole page. Missing keys are tolerated (a report rebuilt without its summary)."""
    cid = str(summary.get("campaign_id") or (follow_up or {}).get("campaign_id") or "campaign")
    dry = " (dry run)" if summary.get("dry_run") else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Survey campaign {_e(cid)}{dry}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Survey campaign <code>{_e(cid)}</code>{dry}</h1>",
        _overview(summary),
        _outcome_section(summary),
        _territory_section(summary),
    ]
    if follow_up is not None:
        parts.append(_delivery_section(follow_up))
    parts.append(
        '<p class="note">Aggregates only; phone numbers are masked. Full rejects are in '
        "rejects.csv next to this file.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def write_html_report(
    report_dir: Path, summary: Mapping[str, Any], follow_up: Mapping[str, Any] | None = None
) -> Path:
    """Write ``report.html`` in ``report_dir`` (atomically: a reader never sees half a page)."""
    path = report_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render_html(summary, follow_up), encoding="utf-8")
    return path


__all__ = ["COLOURS", "Bar", "render_html", "svg_bars", "write_html_report"]
