"""Report files open cleanly in a spreadsheet and keep what the operator needs; the summary is
French by default."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from flows.survey_campaign import RecipientSource, send_survey_campaign
from tasks.reporting import GUARD, artifact_key, markdown_summary, slot_plan, slot_sentences
from tasks.row_columns import E164, OUTCOME, REASON

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
SUMMARY: dict[str, Any] = {
    "campaign_id": "c1",
    "survey_id": "s1",
    "loaded": 1500,
    "sent": 1400,
    "failed": 0,
    "rejected": {"duplicate": 100},
    "failed_reasons": {},
    "nb_sms": 1400,
    "cost": 63.0,
    "cost_estimated": False,
    "currency": "EUR",
    "territories": {"FR": {"sent": 1000, "failed": 0, "rejected": 100}, "RE": {"sent": 400}},
    "slot_explanations": {
        "FR": "window open until 20:00 (Paris), enough for the fan-out; sending now",
        "RE": "21:05 Réunion time is after the 08:00-20:00 window; next allowed slot ...",
        "GP": "Sunday in Guadeloupe: no marketing SMS; no allowed slot within 14 days",
    },
    "slot_plan": slot_plan([("FR", None, "sent"), ("RE", "2025-01-07T10:00:00+01:00", "sent")]),
    "credits_before": 100.0,
    "credits_after": None,
    "dry_run": False,
    "duration_seconds": 3.21,
    "report_dir": "data/reports/c1",
}
ROWS = pd.DataFrame({E164: ["+33612345678"], REASON: ["duplicate"], OUTCOME: ["rejected"]})


@given(st.text(min_size=1, max_size=80))
def test_artifact_keys_use_only_lowercase_letters_digits_and_dashes(campaign_id: str) -> None:
    key = artifact_key(campaign_id, "summary")
    assert key.endswith("summary")
    assert all(ch in "abcdefghijklmnopqrstuvwxyz0123456789-" for ch in key)


def test_the_summary_speaks_french_by_default_and_english_on_demand() -> None:
    fr = markdown_summary(SUMMARY, ROWS)
    assert fr.startswith("# Campagne d'enquête `c1`")
    assert "1\u202f500 lignes chargées en 3,2 s" in fr
    assert "| doublon (`duplicate`) | 100 |" in fr
    assert "| La Réunion (RE) | 400 | 0 | 0 |" in fr
    assert "- **France métropolitaine** : envoi immédiat (fenêtre d'envoi ouverte)" in fr
    assert (
        "- **La Réunion** : envoi programmé mardi 7 janvier 13:00 (heure de La Réunion), "
        "soit mardi 7 janvier 10:00 (heure de Paris)"
    ) in fr
    assert "- **Guadeloupe** : aucun créneau autorisé" in fr  # planned, no chunk: no slot
    assert "coût : 63,00\u00a0€" in fr and "après : inconnu" in fr
    assert "+33 6 •• •• •• 78 : doublon" in fr and "+33612345678" not in fr
    en = markdown_summary(SUMMARY, ROWS, lang="en")
    assert en.startswith("# Survey campaign `c1`") and "| sent | 1,400 |" in en
    assert "- **Réunion**: 21:05 Réunion time is after" in en  # the planner's own words
    assert "cost: €63.00" in en


def test_slot_plan_follows_the_chunks_and_a_dry_run_plan() -> None:
    plan = slot_plan(
        [
            ("RE", "2025-01-07T10:05:00+01:00", "pending"),
            ("RE", "2025-01-07T10:00:00+01:00", "sent"),
            ("FR", None, "sent"),
            ("GP", "2025-01-07T14:00:00+01:00", "cancelled"),
        ]
    )
    assert plan == {
        "FR": {"at_once": True, "slots": [], "cancelled": False},
        "GP": {"at_once": False, "slots": [], "cancelled": True},
        "RE": {
            "at_once": False,
            "slots": ["2025-01-07T10:00:00+01:00", "2025-01-07T10:05:00+01:00"],
            "cancelled": False,
        },
    }
    dry = {"slot_plan": {}, "plan": [{"territory": "FR", "slot": None}], "dry_run": True}
    assert slot_sentences(dry) == {
        "France métropolitaine": "envoi immédiat (fenêtre d'envoi ouverte)"
    }
    # a summary.json from before slot_plan: the planner's words rather than a wrong claim
    old = {"slot_explanations": {"FR": "window open"}}
    assert slot_sentences(old) == {"France métropolitaine": "window open"}


def excel_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: accents right in Excel
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))


def test_rejects_neutralise_formulas_from_the_source(campaign_env: Path, simulator: Any) -> None:
    source = campaign_env / "r.csv"
    source.write_text(
        "name;phone\n"
        '"=HYPERLINK(""http://evil.example"")";=1+1\n'
        "@SUM(A1);0612345678\n"
        "Hélène;-0612345679 (bureau)\n"
        "Chloé;0612345678\n",
        encoding="utf-8",
    )
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(source)),
        campaign_id="formulas",
        return_state=True,
    )
    assert state.is_completed(), state.message
    report = campaign_env / "data" / "reports" / "formulas"
    rows = excel_rows(report / "rejects.csv")
    assert rows[0] == ["row", "name", "phone", "outcome", "reason", "detail", "e164"]
    assert all(len(r) == len(rows[0]) for r in rows)
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith(DANGEROUS) for cell in cells)
    assert GUARD + '=HYPERLINK("http://evil.example")' in cells and GUARD + "=1+1" in cells
    duplicate = next(r for r in rows if r[1] == "Chloé")  # the same number as row 2
    assert duplicate[2] == GUARD + "0612345678"  # keeps its 0 in Excel
    assert duplicate[4] == "duplicate" and duplicate[6] == GUARD + "+33612345678"

    sheet = load_workbook(report / "rejects.xlsx").active
    assert sheet is not None
    values = {c.value: c for row in sheet.iter_rows(min_row=2) for c in row if c.value}
    hyperlink = values['=HYPERLINK("http://evil.example")']
    assert hyperlink.data_type == "s" and values["=1+1"].data_type == "s"
    assert values["+33612345678"].data_type == "s" and values["Hélène"].data_type == "s"
    assert values[4].data_type == "n"  # the row number stays a number
    assert (report / "chunks.csv").is_file() and (report / "chunks.xlsx").is_file()


def test_the_delivery_summary_speaks_french_by_default() -> None:
    from tasks.delivery import FollowUp, markdown_delivery

    counts = {"delivered": 1200, "not_delivered": 30, "waiting": 0, "other": 20}
    result = FollowUp(
        campaign_id="c1",
        chunks_checked=3,
        counts=counts,
        by_territory={"RE": counts},
        stop_added=1,
        stops_masked=["+262 6 92 •• •• 01"],
        checked_at="2025-03-05T09:00:00+00:00",
    )
    fr = markdown_delivery(result)
    assert fr.startswith("# Remise des SMS de la campagne `c1`")
    assert "3 lots envoyés vérifiés le mercredi 5 mars 10:00 (heure de Paris)" in fr
    assert "dernier statut reçu de la passerelle : aucun pour l'instant" in fr
    assert "| délivrés | 1\u202f200 | 96,0\u202f% |" in fr
    assert "| La Réunion (RE) | 1\u202f200 | 30 | 0 | 20 |" in fr
    assert "## Réponses STOP" in fr and "- +262 6 92 •• •• 01" in fr
    en = markdown_delivery(result, lang="en")
    assert en.startswith("# Delivery of campaign `c1`") and "| delivered | 1,200 | 96.0% |" in en
    assert "| Réunion (RE) | 1,200 | 30 | 0 | 20 |" in en
