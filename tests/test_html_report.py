"""The self-contained HTML report: its content, its safety, and its charts drawn in a browser."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers import IN_CI

from tasks.reporting import render_html, write_html_report

CHROMIUM = "/usr/bin/chromium"

SUMMARY: dict[str, Any] = {
    "campaign_id": "spring-2025",
    "survey_id": "satisfaction-q1",
    "loaded": 1000,
    "sent": 800,
    "failed": 50,
    "rejected": {"not_mobile": 90, "duplicate": 40, "opted_out": 20},
    "failed_reasons": {"budget_exceeded": 50},
    "nb_sms": 800,
    "cost": 36.0,
    "currency": "EUR",
    "slots": ["2025-03-04T10:00:00+01:00"],
    "sent_at_once": False,
    "chunks": {"failed": 1, "sent": 2},
    "territories": {
        "FR": {"sent": 700, "failed": 50, "rejected": 100},
        "GP": {"sent": 100, "failed": 0, "rejected": 10},
        "unknown": {"sent": 0, "failed": 0, "rejected": 40},
    },
    "slot_explanations": {"FR": "window open until 20:00 (Paris)"},
    "credits_before": 100.0,
    "credits_after": 64.0,
    "dry_run": False,
    "duration_seconds": 12.3,
    "report_dir": "data/reports/spring-2025",
}
FOLLOW_UP: dict[str, Any] = {
    "campaign_id": "spring-2025",
    "chunks_checked": 2,
    "delivered": 700,
    "not_delivered": 40,
    "waiting": 50,
    "other": 10,
    "stop_added": 2,
    "by_territory": {
        "FR": {"delivered": 620, "not_delivered": 30, "waiting": 45, "other": 5},
        "GP": {"delivered": 80, "not_delivered": 10, "waiting": 5, "other": 5},
    },
    "stops_masked": ["+33 6 •• •• •• 78", "+33612345699"],  # the second slipped in unmasked
    "checked_at": "2025-03-05T09:00:00+00:00",
    "last_status_at": "2025-03-04T09:03:00+00:00",
    "problems": [],
}


class Tags(HTMLParser):
    """Every element and attribute name of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.attrs: set[str] = set()
        self.values: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.attrs.update(name for name, _ in attrs)
        self.values.update(value for _, value in attrs if value)


def bars(page: str, chart_id: str) -> list[tuple[str, int, float]]:
    """(series, value, width) of each bar drawn in one chart."""
    svg = re.search(rf'<svg id="{chart_id}".*?</svg>', page, re.S)
    assert svg, chart_id
    return [
        (m["series"], int(m["value"]), float(m["width"]))
        for m in re.finditer(
            r'<rect class="bar[^"]*" data-series="(?P<series>[^"]+)" data-value="(?P<value>\d+)"'
            r'[^>]*width="(?P<width>[\d.]+)"',
            svg.group(0),
        )
    ]


def test_charts_hold_the_summary_and_delivery_figures() -> None:
    page = render_html(SUMMARY, FOLLOW_UP)
    assert bars(page, "chart-outcomes") == [
        ("sent", 800, 400.0),
        ("failed", 50, 25.0),
        ("rejected", 150, 75.0),
    ]
    assert [(s, v) for s, v, _ in bars(page, "chart-rejects")] == [
        ("rejected", 90),
        ("rejected", 40),
        ("rejected", 20),
    ]
    territories = bars(page, "chart-territories")
    assert [(s, v) for s, v, _ in territories] == [
        ("sent", 700),
        ("failed", 50),
        ("rejected", 100),
        ("sent", 100),
        ("rejected", 10),
        ("rejected", 40),  # zero parts are not drawn
    ]
    assert [v for _, v, _ in bars(page, "chart-delivery")] == [700, 40, 50, 10]
    assert sum(v for _, v, _ in bars(page, "chart-delivery-territories")) == 800
    assert "Guadeloupe" in page and "budget_exceeded" in page


def test_without_follow_up_there_is_no_delivery_section() -> None:
    page = render_html(SUMMARY)
    assert 'id="chart-outcomes"' in page and "chart-delivery" not in page


def test_text_is_escaped_numbers_masked_and_nothing_is_fetched() -> None:
    hostile = {
        **SUMMARY,
        "campaign_id": '<script>alert("x")</script>',
        "slot_explanations": {"FR": '<img src="https://evil.example/x.png">'},
        "rejected": {"<b>odd</b>": 3},
    }
    page = render_html(hostile, FOLLOW_UP)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page
    assert "+33612345699" not in page and "+33 6 •• •• •• 99" in page
    # no element or attribute that makes a browser fetch anything
    tags = Tags()
    tags.feed(page)
    assert not tags.seen & {"script", "img", "link", "iframe", "object", "embed", "image"}
    assert not tags.attrs & {"src", "href", "xlink:href", "srcset", "action", "background"}
    # the only URL in an attribute is the SVG namespace, which is a name, not a download
    assert {v for v in tags.values if "://" in v} == {"http://www.w3.org/2000/svg"}
    assert "url(" not in page and "@import" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_a_summary_with_missing_keys_still_renders() -> None:
    page = render_html({"campaign_id": "bare"}, {"delivered": 3})
    assert "Rien à représenter" in page and 'id="chart-delivery"' in page
    page = render_html({"campaign_id": "bare"}, {"delivered": 3}, lang="en")
    assert "Nothing to chart" in page and 'id="chart-delivery"' in page


def test_the_page_is_in_french_and_in_english_on_demand() -> None:
    summary = {
        **SUMMARY,
        "loaded": 12345,
        "slot_plan": {
            "FR": {"at_once": False, "slots": ["2025-03-04T10:00:00+01:00"], "cancelled": False},
            "GP": {"at_once": True, "slots": [], "cancelled": False},
        },
    }
    page = render_html(summary, FOLLOW_UP)
    assert '<html lang="fr">' in page
    assert "<title>Campagne d&#x27;enquête spring-2025</title>" in page
    assert "<dt>Lignes chargées</dt><dd>12\u202f345</dd>" in page
    assert "<dt>Coût</dt><dd>36,00\u00a0€</dd>" in page
    assert "100,00\u00a0€ / 64,00\u00a0€" in page
    assert "programmé : mardi 4 mars 10:00 (heure de Paris)" in page
    assert "<td>FR · France métropolitaine</td>" in page and "<td>inconnu</td>" in page
    assert (
        "<li><strong>France métropolitaine</strong> : envoi programmé mardi 4 mars 10:00 "
        "(heure de Paris)</li>"
    ) in page
    assert "<strong>Guadeloupe</strong> : envoi immédiat" in page
    assert "pas un mobile (not_mobile)" in page and "<td class=n>87,5\u202f%</td>" in page
    assert "vérifiés le mercredi 5 mars 10:00 (heure de Paris)" in page
    assert "Réponses STOP : 2 ;" in page
    en = render_html(summary, FOLLOW_UP, lang="en")
    assert '<html lang="en">' in en and "<title>Survey campaign spring-2025</title>" in en
    assert "<dt>Cost</dt><dd>€36.00</dd>" in en and "<dt>Rows loaded</dt><dd>12,345</dd>" in en
    assert "<strong>Metropolitan France</strong>: window open until 20:00 (Paris)" in en
    assert "checked on Wednesday 5 March 10:00 (Paris time)" in en and "87.5%" in en


def test_the_file_is_written_in_place(tmp_path: Path) -> None:
    path = write_html_report(tmp_path / "r", SUMMARY)
    assert path == tmp_path / "r" / "report.html"
    assert path.read_text(encoding="utf-8") == render_html(SUMMARY)
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


CHARTS = [
    "chart-outcomes",
    "chart-rejects",
    "chart-territories",
    "chart-delivery",
    "chart-delivery-territories",
]


@pytest.mark.browser
def test_the_report_draws_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing and CI=true requires it")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    path = write_html_report(tmp_path, SUMMARY, FOLLOW_UP)
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requested.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            assert page.title() == "Campagne d'enquête spring-2025"
            for chart in CHARTS:
                svg = page.locator(f"svg#{chart}")
                box = svg.bounding_box()
                assert box and box["width"] > 300 and box["height"] > 20, chart
                rects = svg.locator("rect.bar")
                assert rects.count() > 0, chart
                for i in range(rects.count()):
                    r = rects.nth(i).bounding_box()
                    assert r and r["width"] > 0 and r["height"] > 0, (chart, i)
            # drawn to scale: 800 sent against 50 failed
            sent = page.locator("#chart-outcomes rect.bar-sent").bounding_box()
            failed = page.locator("#chart-outcomes rect.bar-failed").bounding_box()
            assert sent and failed
            assert sent["width"] / failed["width"] == pytest.approx(16, rel=0.05)
        finally:
            browser.close()
    assert requested == [path.as_uri()]  # the page itself, nothing else
