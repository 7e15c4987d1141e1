"""Issue 23 in the campaign's summary and report: who was asked, and why others were not.

The JSON summary's new keys (``pressure_skips``, ``witnesses``, ``sample``, ``surveys``) keep
the contract's order and types; the identity ``loaded = sent + failed + rejected`` holds with
rows not drawn and numbers retired; the figures per survey come from the rows and the chunks'
survey ids; every row set aside by a contact-pressure rule is counted under that rule, whether
the plan skipped it (``RULE``) or a claim held it (the chunk's ``held`` value). The markdown,
the HTML page and the command line's lines say it in French (English on demand), showing only
the sections that apply. One test reads the chunks of a real ledger on SQLite, PostgreSQL and
MariaDB, set aside by a real claim under a rule.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from test_french_outputs import english_words

from tasks import accounting
from tasks import ledger as lg
from tasks.ledger.model import ChunkRow
from tasks.outcomes import (
    DUPLICATE,
    NOT_SAMPLED,
    RECENTLY_SURVEYED,
    UNDELIVERABLE,
    ChunkState,
)
from tasks.pressure import PressureRule, held_value
from tasks.reporting import (
    CampaignSummary,
    build_summary,
    markdown_summary,
    read_summary,
    read_table,
    render_html,
    write_files,
    write_html_report,
)
from tasks.reporting.terminal import readable_lines
from tasks.row_columns import DETAIL, E164, OUTCOME, REASON, ROW, RULE, SURVEY, TERRITORY
from tasks.steps.report import PIPELINE_COLUMNS, compose, source_columns, witnesses_texted

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHOTS = Path("/tmp/shots")

SAMPLE: dict[str, Any] = {
    "population": 12000,
    "eligible": 11800,
    "drawn": 400,
    "seed": 829113,
    "size": 400,
    "percent": None,
    "quota_by": "territory",
    "quota": 150,
    "exclude_days": 180,
    "short": False,
    "limited_by": None,
    "cells": {
        "FR": {"population": 9000, "eligible": 8850, "drawn": 150},
        "GP": {"population": 2000, "eligible": 1990, "drawn": 150},
        "RE": {"population": 1000, "eligible": 960, "drawn": 100},
    },
}


def chunk(
    index: int,
    numbers: list[str],
    state: str = ChunkState.sent,
    *,
    survey_id: str | None = None,
    held: dict[str, str] | None = None,
    cost: float | None = None,
) -> ChunkRow:
    sent = state == ChunkState.sent
    return ChunkRow(
        campaign_id="c1",
        chunk_index=index,
        tag=f"t{index}",
        territory="FR",
        slot=None,
        numbers=tuple(numbers),
        refused={},
        state=state,
        reason=None if sent else "gateway_error",
        detail=None,
        owner=None,
        message_id=index if sent else None,
        nb_sms=len(numbers) if sent else None,
        cost=(0.045 * len(numbers) if cost is None else cost) if sent else None,
        currency="EUR",
        attempts=1,
        held=held or {},
        survey_id=survey_id,
    )


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A plan's rows frame: each row's number, territory, reason, survey and rule."""
    return pd.DataFrame(
        {
            ROW: [i + 1 for i in range(len(rows))],
            E164: [r["e164"] for r in rows],
            TERRITORY: [r.get("territory", "FR") for r in rows],
            REASON: pd.Series([r.get("reason") for r in rows], dtype=object),
            DETAIL: pd.Series([None] * len(rows), dtype=object),
            SURVEY: pd.Series([r.get("survey") for r in rows], dtype=object),
            RULE: pd.Series([r.get("rule") for r in rows], dtype=object),
        }
    )


def summarise(
    rows: pd.DataFrame,
    chunks: list[ChunkRow],
    *,
    survey_id: str = "ENQ_FR",
    witnesses: int = 0,
    sample: dict[str, Any] | None = None,
) -> tuple[CampaignSummary, pd.DataFrame]:
    rows = accounting.row_outcomes(rows, chunks, dry_run=False)
    summary = build_summary(
        campaign_id="c1",
        survey_id=survey_id,
        counts=accounting.count_outcomes(rows),
        chunks=chunks,
        rows=rows,
        decisions={},
        credits_before=100.0,
        credits_after=90.0,
        currency="EUR",
        dry_run=False,
        duration=1.0,
        report_dir=Path("data/reports/c1"),
        witnesses=witnesses,
        sample=sample,
    )
    return summary, rows


def two_surveys() -> tuple[pd.DataFrame, list[ChunkRow]]:
    """A two-language campaign: French rows to ENQ_FR (the default), English ones to ENQ_EN;
    some not drawn, one retired, two skipped at plan time (the cap, an operator's rule), one
    held at claim time by another campaign under "meme_enquete", one duplicate."""
    n = [f"+336120000{i:02d}" for i in range(12)]
    rows = frame(
        [
            {"e164": n[0], "survey": "ENQ_FR"},
            {"e164": n[1], "survey": "ENQ_FR"},
            {"e164": n[2], "survey": "ENQ_EN"},
            {"e164": n[3], "survey": "ENQ_EN"},
            {"e164": n[4], "survey": "ENQ_FR"},  # held at claim time
            {"e164": n[5], "reason": NOT_SAMPLED, "survey": "ENQ_FR"},
            {"e164": n[6], "reason": NOT_SAMPLED, "survey": "ENQ_EN"},
            {"e164": n[7], "reason": UNDELIVERABLE, "survey": "ENQ_EN"},
            {"e164": n[8], "reason": RECENTLY_SURVEYED, "survey": "ENQ_FR", "rule": "cap"},
            {"e164": n[9], "reason": RECENTLY_SURVEYED, "survey": "ENQ_EN", "rule": "trimestre"},
            {"e164": n[10], "reason": DUPLICATE},  # no survey: the campaign's
            {"e164": n[11], "survey": "ENQ_EN"},  # its chunk failed
        ]
    )
    chunks = [
        chunk(
            0,
            [n[0], n[1]],
            survey_id="ENQ_FR",
            held={n[4]: held_value("meme_enquete", "autre-campagne")},
            cost=0.09,
        ),
        chunk(1, [n[2], n[3]], survey_id="ENQ_EN", cost=0.135),
        chunk(2, [n[11]], ChunkState.failed, survey_id="ENQ_EN"),
    ]
    return rows, chunks


# -- the JSON summary ----------------------------------------------------------------------------


def test_the_new_keys_come_after_the_older_ones_with_their_json_types() -> None:
    rows, chunks = two_surveys()
    summary, _ = summarise(rows, chunks, witnesses=2, sample=SAMPLE)
    data = json.loads(summary.line())
    keys = list(data)
    assert keys[-4:] == ["pressure_skips", "witnesses", "sample", "surveys"]
    assert keys.index("report_dir") < keys.index("pressure_skips")
    assert data["pressure_skips"] == {"cap": 1, "meme_enquete": 1, "trimestre": 1}
    assert data["witnesses"] == 2 and data["sample"] == SAMPLE
    assert data["rejected"] == {
        "duplicate": 1,
        "not_sampled": 2,
        "recently_surveyed": 3,
        "undeliverable": 1,
    }
    for figures in data["surveys"].values():
        assert list(figures) == ["sent", "failed", "rejected", "cost", "nb_sms"]
        assert all(type(figures[k]) is int for k in ("sent", "failed", "rejected", "nb_sms"))
        assert isinstance(figures["cost"], int | float)
    # written and read back as it was, by this version and by the renderers
    assert CampaignSummary.model_validate_json(summary.line()).line() == summary.line()


def test_without_sample_rules_or_witnesses_the_keys_say_so_plainly() -> None:
    rows = frame([{"e164": "+33612000001"}, {"e164": "+33612000002", "reason": DUPLICATE}])
    summary, _ = summarise(rows, [chunk(0, ["+33612000001"])], survey_id="satisfaction")
    data = summary.as_json()
    assert "sample" not in data  # no sample asked: no key
    assert data["pressure_skips"] == {} and data["witnesses"] == 0
    assert data["surveys"] == {
        "satisfaction": {"sent": 1, "failed": 0, "rejected": 1, "cost": 0.045, "nb_sms": 1}
    }


def test_an_older_summary_read_back_gets_no_new_key(tmp_path: Path) -> None:
    old = {"campaign_id": "c0", "loaded": 1, "sent": 1, "failed": 0, "rejected": {}}
    (tmp_path / "summary.json").write_text(json.dumps(old), encoding="utf-8")
    assert read_summary(tmp_path, "c0").as_json() == old


def test_the_figures_per_survey_come_from_the_rows_and_the_chunks_survey_ids() -> None:
    rows, chunks = two_surveys()
    summary, _ = summarise(rows, chunks)
    assert summary.surveys == {
        # n0, n1 sent; n4 held, n5 not drawn, n8 capped, n10 a duplicate (no survey: default)
        "ENQ_EN": {"sent": 2, "failed": 1, "rejected": 3, "cost": 0.135, "nb_sms": 2},
        "ENQ_FR": {"sent": 2, "failed": 0, "rejected": 4, "cost": 0.09, "nb_sms": 2},
    }
    for key in ("sent", "failed", "nb_sms"):
        assert sum(f[key] for f in summary.surveys.values()) == getattr(summary, key)
    assert sum(f["rejected"] for f in summary.surveys.values()) == summary.rejected_total
    assert sum(f["cost"] for f in summary.surveys.values()) == pytest.approx(summary.cost)


def test_rows_of_an_older_plan_without_a_survey_column_go_to_the_campaigns_survey() -> None:
    rows, chunks = two_surveys()
    summary, _ = summarise(rows.drop(columns=[SURVEY, RULE]), chunks)
    # The chunks still say what each survey cost; the rows are all the campaign's.
    assert summary.surveys["ENQ_FR"]["sent"] == 4 and summary.surveys["ENQ_EN"]["sent"] == 0
    assert summary.surveys["ENQ_EN"]["nb_sms"] == 2
    # No RULE column: plan-time skips were the frequency cap's; the held one keeps its rule.
    assert summary.pressure_skips == {"cap": 2, "meme_enquete": 1}


def test_a_held_value_of_an_older_ledger_counts_under_the_cap() -> None:
    rows = frame([{"e164": "+33612000001"}, {"e164": "+33612000002"}])
    held = {"+33612000002": "campagne-ancienne"}  # before the rules: a plain campaign id
    summary, out = summarise(rows, [chunk(0, ["+33612000001"], held=held)])
    assert summary.pressure_skips == {"cap": 1}
    assert out[DETAIL].tolist()[1] == "held by campaign campagne-ancienne (frequency cap)"
    rows2 = frame([{"e164": "+33612000003"}])
    held2 = {"+33612000003": held_value("trimestre", "c9")}
    _, out2 = summarise(rows2, [chunk(0, [], held=held2)])
    assert out2[DETAIL].tolist() == ["held by campaign c9 (rule trimestre)"]


_REASONS = [None, None, None, NOT_SAMPLED, UNDELIVERABLE, DUPLICATE, RECENTLY_SURVEYED]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REASONS),
            st.sampled_from([None, "ENQ_FR", "ENQ_EN", "ENQ_ES"]),
            st.sampled_from([None, "cap", "trimestre"]),
            st.sampled_from(["sent", "failed", "held"]),
        ),
        max_size=40,
    ),
    st.integers(0, 5),
)
def test_the_identity_holds_and_every_skip_is_under_one_rule(
    spec: list[tuple[str | None, str | None, str | None, str]], witnesses: int
) -> None:
    rows = frame(
        [
            {
                "e164": f"+336130000{i:02d}",
                "reason": reason,
                "survey": survey,
                "rule": rule if reason == RECENTLY_SURVEYED else None,
            }
            for i, (reason, survey, rule, _) in enumerate(spec)
        ]
    )
    # Accepted rows go to a chunk of their survey that was sent or failed, or are held.
    groups: dict[tuple[str | None, str], list[str]] = {}
    held: dict[str, str] = {}
    for i, (reason, survey, _, fate) in enumerate(spec):
        if reason is None:
            number = f"+336130000{i:02d}"
            if fate == "held":
                held[number] = held_value("meme_enquete", "autre")
            else:
                groups.setdefault((survey, fate), []).append(number)
    chunks = [
        chunk(i, numbers, ChunkState(fate), survey_id=survey)
        for i, ((survey, fate), numbers) in enumerate(groups.items())
    ]
    if held:
        chunks.append(chunk(len(chunks), [], held=held))
    summary, _ = summarise(rows, chunks, witnesses=witnesses)
    assert summary.loaded == len(spec)  # witnesses are outside the counts
    assert summary.loaded == summary.sent + summary.failed + summary.rejected_total
    expected = Counter(r for r, *_ in spec if r is not None)
    expected[RECENTLY_SURVEYED] += len(held)
    assert summary.rejected == {k: v for k, v in sorted(expected.items()) if v}
    assert sum(summary.pressure_skips.values()) == summary.rejected.get(RECENTLY_SURVEYED, 0)
    for who in ("sent", "failed"):
        assert sum(int(f[who]) for f in summary.surveys.values()) == getattr(summary, who)
    assert sum(int(f["rejected"]) for f in summary.surveys.values()) == summary.rejected_total
    assert summary.witnesses == witnesses


def test_the_report_step_keeps_the_draw_and_the_witnesses_when_it_rebuilds() -> None:
    rows, chunks = two_surveys()
    first, out = summarise(rows, chunks, witnesses=3, sample=SAMPLE)
    # A refresh (after a cancel, a follow-up) rebuilds from summary.json and the ledger.
    before = CampaignSummary.model_validate_json(first.line())
    again = compose(before, out, chunks)
    assert again.sample == SAMPLE and again.witnesses == 3
    assert again.surveys == first.surveys and again.pressure_skips == first.pressure_skips
    assert witnesses_texted({"texted": 3, "skipped": 1, "maybe": 0}) == 3
    assert witnesses_texted(None) == 0 and witnesses_texted({"texted": "x"}) == 0


def test_rejects_csv_lists_the_source_columns_not_the_pipelines() -> None:
    rows, _ = two_surveys()
    rows["langue"] = "fr"
    assert {SURVEY, RULE} <= PIPELINE_COLUMNS
    assert source_columns(rows) == ["langue"]


def test_chunks_csv_says_which_survey_each_chunk_sends(tmp_path: Path) -> None:
    rows, chunks = two_surveys()
    chunks.append(chunk(3, ["+33612000099"]))  # no survey of its own: the campaign's
    out = accounting.row_outcomes(rows, chunks, dry_run=False)
    write_files(tmp_path, {"campaign_id": "c1", "survey_id": "ENQ_FR"}, chunks, out, [])
    header, table = read_table(tmp_path / "chunks.csv")
    assert header[-1] == "survey"
    assert [r[-1] for r in table] == ["ENQ_FR", "ENQ_EN", "ENQ_EN", "ENQ_FR"]
    sheet = load_workbook(tmp_path / "chunks.xlsx").active
    assert sheet is not None
    assert next(sheet.iter_rows(values_only=True))[-1] == "enquête"


# -- a real ledger: the chunks a claim set aside, on the three databases -------------------------


def test_chunks_of_a_real_ledger_give_the_skips_and_the_figures_per_survey(
    ledger_url: str,
) -> None:
    now = datetime.now(UTC)
    a, b, c, d = (f"+336140000{i:02d}" for i in range(4))
    then = now - timedelta(days=20)
    old = lg.Ledger(ledger_url, clock=lambda: then)
    old.create_plan("ancienne", "ENQ_FR", [lg.ChunkPlan(0, "FR", None, (a, c))])
    assert old.claim("ancienne", 0, lg.owner_token("o"), cost_per_recipient=0.05).reserved
    old.mark_sent(
        "ancienne",
        0,
        message_id=1,
        nb_sms=2,
        cost=0.09,
        currency="EUR",
        texted_at=then,
        reserved=True,
    )
    old.close()
    led = lg.Ledger(ledger_url)
    try:
        plan = [
            lg.ChunkPlan(0, "FR", None, (a, b), "ENQ_FR"),
            lg.ChunkPlan(1, "FR", None, (c, d), "ENQ_EN"),
        ]
        assert led.create_plan("nouvelle", "ENQ_FR", plan)
        # Once per 90 days per survey: a (ENQ_FR 20 days ago) is held; c got ENQ_FR, not EN.
        rules = (PressureRule("meme_enquete", 1, 90, this_survey=True),)
        for index in (0, 1):
            claim = led.claim(
                "nouvelle", index, lg.owner_token("n"), cost_per_recipient=0.05, rules=rules
            )
            led.mark_sent(
                "nouvelle",
                index,
                message_id=10 + index,
                nb_sms=len(claim.chunk.numbers),
                cost=0.045 * len(claim.chunk.numbers),
                currency="EUR",
                texted_at=now,
                numbers=claim.chunk.numbers,
                reserved=claim.reserved,
            )
        chunks = led.chunks("nouvelle")
    finally:
        led.close()
    rows = frame(
        [
            {"e164": a, "survey": "ENQ_FR"},
            {"e164": b, "survey": "ENQ_FR"},
            {"e164": c, "survey": "ENQ_EN"},
            {"e164": d, "survey": "ENQ_EN"},
            {"e164": "+33614000099", "reason": RECENTLY_SURVEYED, "rule": "cap"},
        ]
    )
    summary, _ = summarise(rows, chunks)
    assert summary.pressure_skips == {"cap": 1, "meme_enquete": 1}
    assert summary.surveys["ENQ_FR"] == {
        "sent": 1,
        "failed": 0,
        "rejected": 2,
        "cost": 0.045,
        "nb_sms": 1,
    }
    assert summary.surveys["ENQ_EN"] == {
        "sent": 2,
        "failed": 0,
        "rejected": 0,
        "cost": 0.09,
        "nb_sms": 2,
    }


# -- what people read ----------------------------------------------------------------------------


def full_summary(lang_sample: dict[str, Any] | None = SAMPLE) -> dict[str, Any]:
    rows, chunks = two_surveys()
    summary, _ = summarise(rows, chunks, witnesses=2, sample=lang_sample)
    return summary.as_json()


class Words(HTMLParser):
    """The words a person sees on the page (not the style sheet nor the tooltips)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = 0
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._hidden += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.words.append(data.strip())


SECTIONS_FR = ("Par enquête", "Échantillon", "Règles de sollicitation", "Témoins")
SECTIONS_EN = ("By survey", "Sample", "Contact-pressure rules", "Witnesses")


def test_the_markdown_says_who_was_asked_in_french() -> None:
    rows, chunks = two_surveys()
    summary, out = summarise(rows, chunks, witnesses=2, sample=SAMPLE)
    md = markdown_summary(summary, out)
    for heading in SECTIONS_FR:
        assert f"\n## {heading}\n" in md, heading
    assert "| ENQ_EN | 2 | 1 | 3 | 2 | 0,14\u00a0€ |" in md  # 0.135 rounded half up
    assert "- Population (personnes pouvant être interrogées) : 12\u202f000" in md
    assert "- Éligibles (pas sondées depuis 180 jours) : 11\u202f800" in md
    assert "- Tirées au sort : 400" in md
    assert "- Quota : au plus 150 par valeur de «\u00a0territoire\u00a0»" in md
    assert "| Guadeloupe (GP) | 2\u202f000 | 1\u202f990 | 150 |" in md
    assert "relancez avec la même graine (829113)" in md
    assert "| délai minimum entre deux enquêtes (cap) | 1 |" in md
    assert "| trimestre | 1 |" in md and "| meme_enquete | 1 |" in md
    assert (
        "Enquête envoyée à 2 numéros témoins, à part\u00a0: ils n'entrent ni dans les comptes" in md
    )
    assert "| non tiré dans l'échantillon (`not_sampled`) | 2 |" in md
    assert "| numéro qui ne reçoit plus les SMS (`undeliverable`) | 1 |" in md
    assert not english_words(md.replace("meme_enquete", "").replace("trimestre", ""))
    en = markdown_summary(summary, out, lang="en")
    for heading in SECTIONS_EN:
        assert f"\n## {heading}\n" in en, heading
    assert "Survey sent to 2 witness numbers, apart" in en


def test_one_witness_is_said_in_the_singular() -> None:
    rows = frame([{"e164": "+33612000001"}])
    summary, out = summarise(rows, [chunk(0, ["+33612000001"])], witnesses=1)
    md = markdown_summary(summary, out)
    assert "Enquête envoyée à 1 numéro témoin, à part\u00a0: il n'entre ni" in md
    assert "1 witness number, apart: it is" in markdown_summary(summary, out, lang="en")


def test_a_plain_campaign_shows_none_of_these_sections() -> None:
    rows = frame([{"e164": "+33612000001"}, {"e164": "+33612000002", "reason": DUPLICATE}])
    summary, out = summarise(rows, [chunk(0, ["+33612000001"])], survey_id="satisfaction")
    md = markdown_summary(summary, out)
    page = render_html(summary.as_json())
    lines = readable_lines(summary.as_json(), "fr", "send")
    for heading in SECTIONS_FR:
        assert f"## {heading}\n" not in md and f">{heading}</h2>" not in page
    assert 'id="chart-surveys"' not in page
    assert not any(re.match(r"(Échantillon|Écartées|Témoins|Par enquête)", x) for x in lines)


def test_a_short_draw_says_why_and_a_proportional_quota_says_so() -> None:
    sample = {
        **SAMPLE,
        "quota_by": "agence",
        "quota": "proportional",
        "percent": 10.0,
        "size": 1200,
        "drawn": 900,
        "short": True,
        "limited_by": "eligible",
        "exclude_days": 0,
        "cells": {"Nord": SAMPLE["cells"]["FR"], "": SAMPLE["cells"]["GP"]},
    }
    md = markdown_summary({**full_summary(sample)}, frame([]).assign(**{OUTCOME: []}))
    assert (
        "- Quota : selon la part de chaque valeur de «\u00a0agence\u00a0» dans la population" in md
    )
    assert "- Taille demandée : 1\u202f200 (10,0\u202f% de la population)" in md
    assert "- Éligibles (pas sondées récemment) : 11\u202f800" in md
    assert (
        "Pas assez de personnes éligibles pour la taille demandée\u00a0: 900 sur 1\u202f200." in md
    )
    assert "| (vide) | 2\u202f000 |" in md and "| Nord | 9\u202f000 |" in md


def test_the_html_page_shows_the_sections_in_french_and_english() -> None:
    data = full_summary()
    page = render_html(data)
    words = Words(page).words
    for heading in SECTIONS_FR:
        assert f">{heading}</h2>" in page, heading
    assert 'id="chart-surveys"' in page
    assert page.count('class="bar bar-sent"') >= 2
    # a reason's words too long for the chart's label column are cut, whole in the tooltip
    assert ">numéro qui ne reçoit plus…<title>numéro qui ne reçoit plus les SMS (undeli" in page
    assert "12\u202f000" in words and "829113" in words
    said = " ".join(words).replace("meme_enquete", "").replace("trimestre", "")
    assert not english_words(said)
    en = render_html(data, lang="en")
    for heading in SECTIONS_EN:
        assert f">{heading}</h2>" in en, heading
    # an edited summary.json with garbage in the new keys still renders
    broken = {**data, "sample": {"cells": [1], "seed": None}, "surveys": {"x": 3, "y": None}}
    assert "<h2" in render_html({**broken, "pressure_skips": [], "witnesses": "many"})


def test_the_command_line_says_who_was_asked() -> None:
    data = full_summary()
    lines = readable_lines(data, "fr", "send")
    assert (
        "Échantillon : 400 personnes tirées au sort (éligibles : 11\u202f800 ; population : "
        "12\u202f000 ; graine : 829113)."
    ) in lines
    assert "Écartées par les règles de sollicitation : cap 1 ; meme_enquete 1 ; trimestre 1." in (
        lines
    )
    assert "Témoins : enquête envoyée à 2 numéros témoins (hors comptes)." in lines
    assert (
        "Par enquête : ENQ_EN 2 envoyés (0,14\u00a0€) ; ENQ_FR 2 envoyés (0,09\u00a0€)."
    ) in lines
    assert lines[-2].startswith("Rapport : ") and lines[-1].startswith("À faire : ")
    en = readable_lines(data, "en", "send")
    assert "Witnesses: survey sent to 2 witness numbers (not counted)." in en


# -- the page in a browser -----------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 390])
def test_the_report_page_reads_well_wide_and_on_a_phone(tmp_path: Path, width: int) -> None:
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing and CI=true requires it")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    path = write_html_report(tmp_path, full_summary())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(path.as_uri(), wait_until="load")
            for heading in SECTIONS_FR:
                assert page.get_by_role("heading", name=heading, exact=True).is_visible()
            # nothing wider than the screen: no sideways scrolling on a phone
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, overflow
            bars = page.locator("#chart-surveys rect.bar")
            assert bars.count() == 5  # ENQ_EN sent, failed, rejected; ENQ_FR sent, rejected
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"R-report-{width}.png"), full_page=True)
        finally:
            browser.close()
