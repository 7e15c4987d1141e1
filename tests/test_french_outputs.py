"""Issue 22, "done when": every French output of a small campaign, read back as the operator
reads it, says no English word, writes 0, 1 and 2 with their plural forms, and totals money to
the cent. One run in English stays English.

Real parts: the Prefect test harness (artifacts, states and logs read back from its API), the
gateway simulator over HTTP, the SQLite ledger, the report files on disk, the command line's
readable lines (``flows.cli.print_result``). The window is open all day (``open_all_day``), so
what is said does not depend on the hour.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from helpers import identity, mobiles, write_csv
from openpyxl import load_workbook

from flows.cli import failure_exit, print_result
from flows.follow_up import follow_up_campaign
from flows.survey_campaign import Limits, RecipientSource, send_survey_campaign

# English words an operator must not meet in a French output (whole words, any case).
ENGLISH = (
    "chunk",
    "chunks",
    "sent",
    "failed",
    "rejected",
    "recipient",
    "recipients",
    "waiting",
    "loaded",
    "row",
    "rows",
    "numbers",
    "phone",
    "at once",
    "cost",
    "credits",
    "the",
    "and",
    "not",
    "new",
    "store",
    "gateway",
    "refused",
    "delivered",
    "delivery",
    "outcome",
    "reason",
    "slot",
    "scheduled",
    "dry run",
    "settle",
    "doubt",
    "campaign",
    "survey",
    "step",
    "cancelled",
    "pending",
    "state",
)
_ENGLISH = re.compile(r"\b(" + "|".join(re.escape(w) for w in ENGLISH) + r")\b", re.IGNORECASE)
# What is a name, not words: file names, paths, URLs, campaign ids in backticks.
_NAMES = re.compile(
    r"`[^`]*`|--[\w-]+|\S*[/\\]\S*|\b[\w-]+\.(?:json|csv|xlsx|html|pkl)\b|https?://\S+"
)
# Prefect's own log lines (not ours to translate), and SQL/HTTP libraries' if any.
_PREFECT_LINE = re.compile(
    r"^(Finished in state|Created task run|Executing|Beginning|Created subflow|Submitting|"
    r"Running|View at|Downloading|Opening|Starting|Process|Worker|Engine|Crash)"
)
_EURO = re.compile(r"(\d[\d\u202f\u00a0.,]*)\u00a0€|€(\d[\d,.]*)")
FR_ID, ONE_ID, SHORT_ID, EN_ID = "enquete-mairie-deux", "enquete-mairie-une", "enquete-court", "en"


def english_words(said: str) -> list[str]:
    return _ENGLISH.findall(_NAMES.sub(" ", said))


def run(csv: Path, campaign_id: str, lang: str = "fr", **kwargs: Any) -> Any:
    return send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(csv)),
        campaign_id=campaign_id,
        lang=lang,
        return_state=True,
        **kwargs,
    )


def run_id(state: Any) -> UUID:
    return state.state_details.flow_run_id  # type: ignore[no-any-return]


def artifact_texts(flow_run_id: UUID) -> list[str]:
    """Every artifact of the run as the UI shows it: markdown, tables, link texts, progress."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    said = []
    for artifact in found:
        data = artifact.data
        if artifact.type == "table":
            rows = json.loads(data) if isinstance(data, str) else data
            said.append(" | ".join(f"{k} = {v}" for row in rows for k, v in row.items()))
        elif artifact.type == "link":
            said.append(str((artifact.metadata_ or {}).get("link_text", "")))
        elif artifact.type == "markdown":
            said.append(str(data))
        said.append(artifact.description or "")
    return said


def our_log_lines(flow_run_id: UUID) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the run's last lines may still be on their way to the API
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs if not _PREFECT_LINE.match(log.message)]


def page_text(report: Path) -> str:
    page = (report / "report.html").read_text(encoding="utf-8")
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.DOTALL)
    page = re.sub(r"<[^>]+>", " ", page)
    return html_lib.unescape(page)


def workbook_cells(path: Path) -> list[str]:
    sheet = load_workbook(path).active
    assert sheet is not None
    return [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None]


def printed(capsys: pytest.CaptureFixture[str], summary: dict[str, Any], kind: str) -> list[str]:
    print_result(summary, "fr", kind)
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == summary  # the JSON line stays last and unchanged
    return lines[:-1]


def assert_french(outputs: dict[str, list[str]]) -> None:
    found = {
        where: sorted({w.lower() for line in said for w in english_words(line)})
        for where, said in outputs.items()
    }
    assert not {w: f for w, f in found.items() if f}, found


def assert_totals_to_the_cent(outputs: dict[str, list[str]]) -> int:
    seen = 0
    for where, said in outputs.items():
        for line in said:
            for fr, _en in _EURO.findall(line):
                if fr:
                    seen += 1
                    assert re.fullmatch(r"\d[\d\u202f]*,\d\d", fr), (where, line)
    return seen


@pytest.mark.usefixtures("open_all_day")
def test_every_french_output_of_a_small_campaign(
    campaign_env: Path, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.state.cost_per_sms = 0.045  # three decimals per SMS: totals must round to the cent
    # Campaign A: 3 numbers and 1 duplicate in chunks of 2: 2 chunks sent, 1 row rejected.
    two = mobiles(3)
    a = run(write_csv(campaign_env / "a.csv", [*two, two[0]]), FR_ID, limits=Limits(chunk_size=2))
    # Campaign B: one number: 1 row, 1 chunk, 0 rejected.
    b = run(write_csv(campaign_env / "b.csv", mobiles(1, start=10)), ONE_ID)
    summaries = {FR_ID: a.result(), ONE_ID: b.result()}
    for summary in summaries.values():
        identity(summary)
    assert summaries[FR_ID]["chunks"] == {"sent": 2} and summaries[FR_ID]["rejected"]
    # Campaign C: credits short by a few cents for its 1 recipient: the money stop's line.
    simulator.state.credits = 0.01
    c = run(write_csv(campaign_env / "c.csv", mobiles(1, start=20)), SHORT_ID)
    assert c.is_failed()
    simulator.state.credits = 1000.0
    follow_ups = {
        cid: follow_up_campaign(campaign_id=cid, lang="fr", return_state=True)
        for cid in (FR_ID, ONE_ID)
    }

    outputs: dict[str, list[str]] = {"state message": [str(c.message)]}
    for state in (a, b, c, *follow_ups.values()):
        outputs[f"artifacts {run_id(state)}"] = artifact_texts(run_id(state))
        outputs[f"logs {run_id(state)}"] = our_log_lines(run_id(state))
    for cid in summaries:
        report = campaign_env / "data" / "reports" / cid
        outputs[f"{cid} report.html"] = [page_text(report)]
        for table in ("chunks", "rejects"):
            outputs[f"{cid} {table}.xlsx"] = workbook_cells(report / f"{table}.xlsx")
        outputs[f"{cid} command line"] = printed(capsys, summaries[cid], "send")
        outputs[f"{cid} follow-up command line"] = printed(
            capsys, follow_ups[cid].result(), "follow_up"
        )
    assert failure_exit(c, "send failed", lang="fr") == 1
    out, err = capsys.readouterr()
    *refused, last = out.strip().splitlines()
    assert json.loads(last) == c.result(raise_on_failure=False).summary  # still the last line
    assert err.startswith("error: Crédits insuffisants")
    outputs["refused command line"] = [*refused, err]

    assert_french(outputs)
    assert assert_totals_to_the_cent(outputs) >= 6
    everything = "\n".join(line for said in outputs.values() for line in said)
    assert "0,14\u00a0€" in everything  # 3 x 0,045 € = 0,135 €, billed 0,14 €
    # 0, 1 and 2 in their forms: French counts 0 and 1 as one.
    for phrase in (
        "2 lots à envoyer",
        "1 lot à envoyer",
        "Lots : 2 envoyés.",
        "Lots : 1 envoyé.",
        "3 envoyés, 0 en échec, 1 rejeté ;",
        "1 envoyé, 0 en échec, 0 rejeté ;",
        "4 lignes chargées",
        "1 ligne chargée",
        "2 lots envoyés vérifiés",
        "1 lot envoyé vérifié",
        "pour 1 destinataire (",
    ):
        assert phrase in everything, phrase
    for wrong in ("1 lots", "1 destinataires", "0 destinataires", "1 rejetés", "1 envoyés"):
        assert wrong not in everything, wrong


@pytest.mark.usefixtures("open_all_day")
def test_an_english_campaign_stays_english(
    campaign_env: Path, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    state = run(write_csv(campaign_env / "e.csv", mobiles(1)), EN_ID, lang="en")
    summary = state.result()
    said = "\n".join(
        [*artifact_texts(run_id(state)), *our_log_lines(run_id(state))]
        + workbook_cells(campaign_env / "data" / "reports" / EN_ID / "chunks.xlsx")
    )
    print_result(summary, "en", "send")
    said += "\n" + capsys.readouterr().out
    for phrase in ("Survey campaign", "Chunks: 1 sent.", "1 chunk to send", "1 row loaded"):
        assert phrase in said, phrase
    for french in ("envoyé", "destinataire", "lots?", "coût", "campagne", "créneau", "ligne"):
        assert not re.search(rf"\b{french}", said, re.IGNORECASE), french


@pytest.mark.parametrize(
    ("spared", "said"),
    [
        (0, "0 destinataire ne recevra pas le SMS"),
        (1, "1 destinataire ne recevra pas le SMS"),
        (2, "2 destinataires ne recevront pas le SMS"),
    ],
)
def test_the_cancel_command_says_what_it_spared(
    spared: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = {"campaign_id": "c", "recipients_cancelled": spared, "cancelled": 1, "too_late": 1}
    lines = printed(capsys, counts, "cancel")
    assert lines[0] == "Campagne c" and lines[1].startswith(said + " ;")
    assert lines[-1].startswith("À faire : lisez dans le rapport les lots non annulés")
    assert not english_words("\n".join(lines))
