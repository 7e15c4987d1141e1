"""The report follows the campaign: after a cancel, after the follow-up and after a rerun,
summary.json, report.html, chunks.csv, rejects.csv and the artifacts say what the ledger says.

Real simulator, real Prefect flows in-process (as tests/test_cancel.py). The simulator's clock is
moved so that the gateway refuses to cancel one territory's chunks (too late, code 6) and
cancels the other's: some chunks stay sent, the others end cancelled.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from flows.cancel_campaign import cancel_campaign
from flows.follow_up import follow_up_campaign
from flows.survey_campaign import DeliveryWindow, Limits, RecipientSource, send_survey_campaign
from tasks import ledger as lg
from tasks.i18n import money, number, plural
from tasks.outcomes import ChunkState
from tasks.reporting import artifact_key, read_table

FR = [f"+3361{i:07d}" for i in range(30)]  # 3 chunks of 10
GP = [f"+590690{i:06d}" for i in range(40)]  # 4 chunks of 10


def write_csv(path: Path, numbers: list[str]) -> Path:
    lines = [f"{i};Client {i};{n}" for i, n in enumerate(numbers, start=1)]
    path.write_text("id;name;mobile\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def send(path: Path, campaign_id: str, lead_minutes: int = 10) -> dict[str, Any]:
    state = send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(path)),
        campaign_id=campaign_id,
        window=DeliveryWindow(allow_immediate=False),  # every chunk scheduled
        limits=Limits(chunk_size=10, lead_minutes=lead_minutes),
        resume_changed_input=True,  # the second run adds GP to the campaign
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state.result()


def ledger_chunks(campaign_id: str) -> list[lg.ChunkRow]:
    return lg.Ledger(os.environ["SURVEY_LEDGER_URL"]).chunks(campaign_id)


class Page(HTMLParser):
    """The words a person sees on the page (not the style sheet, nor the tooltips),
    and the overview's label -> value pairs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.words: list[str] = []
        self.overview: dict[str, str] = {}
        self._hidden = 0
        self._tag = ""
        self._label = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("style", "title"):
            self._hidden += 1
        self._tag = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._hidden or not data.strip():
            return
        self.words.append(data.strip())
        if self._tag == "dt":
            self._label = data.strip()
        elif self._tag == "dd" and self._label:
            self.overview[self._label] = self.overview.get(self._label, "") + data.strip()

    @property
    def text(self) -> str:
        return " ".join(self.words)


def cancel_one_territory(simulator: Any, campaign_id: str) -> dict[str, Any]:
    """Bring the gateway's clock three minutes before the earlier slot: the chunks of that
    slot are too late to cancel (code 6), the later ones are cancelled."""
    slots = sorted({datetime.fromisoformat(c.slot) for c in ledger_chunks(campaign_id) if c.slot})
    assert len(slots) == 2 and slots[1] - slots[0] > timedelta(minutes=10), slots
    ahead = slots[0] - simulator.state.now() - timedelta(minutes=3)
    simulator.state.advance(ahead.total_seconds())
    state = cancel_campaign(campaign_id=campaign_id, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def assert_report_matches_ledger(folder: Path, campaign_id: str) -> dict[str, Any]:
    """summary.json, report.html, chunks.csv and rejects.csv say what the ledger says."""
    chunks = ledger_chunks(campaign_id)
    sent = [c for c in chunks if c.state == ChunkState.sent]
    cancelled = [c for c in chunks if c.state == ChunkState.cancelled]
    assert sent and cancelled and len(sent) + len(cancelled) == 7
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["chunks"] == {"cancelled": len(cancelled), "sent": len(sent)}
    assert summary["sent"] == sum(c.size for c in sent)
    assert summary["rejected"] == {"cancelled": sum(c.size for c in cancelled)}
    assert summary["failed"] == 0 and summary["failed_reasons"] == {}
    rejected = sum(summary["rejected"].values())
    assert summary["loaded"] == summary["sent"] + summary["failed"] + rejected == 70
    assert summary["cost"] == pytest.approx(sum(c.cost or 0 for c in sent))
    assert summary["nb_sms"] == sum(c.nb_sms or 0 for c in sent)
    assert summary["slots"] == sorted({c.slot for c in sent if c.slot})
    gone = {c.territory for c in cancelled}
    assert all(summary["slot_plan"][t]["cancelled"] for t in gone)

    page = Page((folder / "report.html").read_text(encoding="utf-8"))
    assert page.overview["Envoyés"] == number(summary["sent"], "fr")
    assert page.overview["Coût"] == money(summary["cost"], "EUR", "fr")
    assert page.overview["Rejetés"] == number(rejected, "fr")
    assert f"lots annulés : {len(cancelled)}" in page.overview["Envoi"]
    assert "annulés" in page.words  # the chunks' table: state "annulés"...
    assert number(len(cancelled), "fr") == page.words[page.words.index("annulés") + 1]
    assert "campagne annulée" in page.words  # the reason of the rejected rows, on its chart
    assert "envoi annulé" in page.text  # the cancelled territory's slot sentence

    header, rows = read_table(folder / "chunks.csv")
    states = [r[header.index("state")] for r in rows]
    assert states.count("cancelled") == len(cancelled) and states.count("sent") == len(sent)
    costs = [float(r[header.index("cost")].replace(",", ".") or 0) for r in rows]
    assert sum(c for c, s in zip(costs, states, strict=True) if s == "sent") == pytest.approx(
        summary["cost"]
    )

    # The people called off are in rejects.csv, with their row of the source.
    header, rows = read_table(folder / "rejects.csv")
    called_off = {n for c in cancelled for n in c.numbers}
    listed = {r[header.index("e164")]: r for r in rows}
    assert set(listed) == called_off
    for n, r in listed.items():
        assert r[header.index("reason")] == "cancelled" and r[header.index("outcome")] == "rejected"
        assert r[header.index("name")] == f"Client {r[header.index('id')]}"
    return summary


def artifacts(campaign_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [artifact_key(campaign_id, s) for s in ("summary", "chunks", "report", "delivery")]
    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    return {a.key: a.data for a in found}


def assert_artifacts_match(campaign_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    latest = artifacts(campaign_id)
    markdown = str(latest[artifact_key(campaign_id, "summary")])
    assert f"| envoyés | {number(summary['sent'], 'fr')} |" in markdown
    assert "campagne annulée (`cancelled`)" in markdown
    cancelled = summary["chunks"]["cancelled"]
    assert (
        plural("fr", "chunks_in.cancelled", cancelled) in markdown
    )  # "Lots : 3 envoyés ; 4 annulés."
    assert money(summary["cost"], "EUR", "fr") in markdown
    table = latest[artifact_key(campaign_id, "chunks")]
    table = json.loads(table) if isinstance(table, str) else table
    assert sum(1 for r in table if r["état"] == "annulé") == cancelled  # French, as the UI shows
    return latest


def test_cancel_follow_up_and_rerun_keep_the_report_true(
    campaign_env: Path, simulator: Any
) -> None:
    # FR first, GP added by a second run two hours ahead: two slots, far apart.
    send(write_csv(campaign_env / "fr.csv", FR), "seven")
    csv = write_csv(campaign_env / "r.csv", FR + GP)
    first = send(csv, "seven", lead_minutes=120)
    assert first["sent"] == 70 and first["chunks"] == {"sent": 7}
    folder = campaign_env / "data" / "reports" / "seven"
    charged = first["cost"]

    counts = cancel_one_territory(simulator, "seven")
    assert counts["cancelled"] >= 1 and counts["too_late"] >= 1
    summary = assert_report_matches_ledger(folder, "seven")
    assert summary["cost"] < charged  # the cancelled sends were refunded, not counted
    # What only the send run knew is kept.
    assert summary["survey_id"] == "satisfaction"
    assert summary["credits_before"] == first["credits_before"]
    assert summary["duration_seconds"] == first["duration_seconds"]
    assert_artifacts_match("seven", summary)

    # The follow-up: the same truth, and the delivery figures with it.
    past = max(datetime.fromisoformat(c.slot) for c in ledger_chunks("seven") if c.slot)
    simulator.state.advance(
        (past - simulator.state.now()).total_seconds() + simulator.state.delivery_delay_s + 1
    )
    followed = follow_up_campaign(campaign_id="seven", return_state=True)
    assert followed.is_completed(), followed.message
    delivery = followed.result()
    assert delivery["chunks_checked"] == summary["chunks"]["sent"]
    assert delivery["delivered"] + delivery["not_delivered"] == summary["sent"]
    assert assert_report_matches_ledger(folder, "seven") == summary
    page = Page((folder / "report.html").read_text(encoding="utf-8"))
    assert "Remise des SMS" in page.words
    assert number(delivery["delivered"], "fr") in page.words
    latest = assert_artifacts_match("seven", summary)
    assert "## Remise des SMS" in str(latest[artifact_key("seven", "summary")])
    assert "report.html" in str(latest[artifact_key("seven", "report")])

    # A rerun of the campaign sends nothing again, and its report says the same.
    sends = len(simulator.state.sends)
    rerun = send(csv, "seven")
    assert len(simulator.state.sends) == sends
    for key in ("loaded", "sent", "failed", "rejected", "chunks", "cost", "nb_sms", "slots"):
        assert rerun[key] == summary[key], key
    assert_report_matches_ledger(folder, "seven")
    page = Page((folder / "report.html").read_text(encoding="utf-8"))
    assert "Remise des SMS" in page.words  # the last follow-up's figures stay on the page
    assert_artifacts_match("seven", rerun)


def test_unknown_campaign_says_so_in_one_line_with_its_id_unmasked(campaign_env: Path) -> None:
    cid = "enquete-20261207-134501-ab12"  # its date digits read like a phone number
    for state in (
        cancel_campaign(campaign_id=cid, return_state=True),
        follow_up_campaign(campaign_id=cid, return_state=True),
    ):
        assert state.is_failed()
        said = state.message or ""
        assert said.startswith(f"Campagne « {cid} » inconnue : aucun envoi n'a été fait")
        assert "Copiez l'identifiant exact" in said and "\n" not in said and "•" not in said


# -- a report that cannot be written -------------------------------------------------------------

FULL_DISK = r"""
import resource, signal, sys
import pandas as pd
from tasks import row_columns as cols
from tasks.steps.report import ReportError, write_report
from tasks.reporting import CampaignSummary

# Files may not grow past 64 KiB: a write beyond fails as on a full disk (EFBIG, not a signal).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
n = 5000
rows = pd.DataFrame({
    "name": [f"Client {i}" for i in range(n)],
    "mobile": [f"+3361{i:07d}" for i in range(n)],
    cols.ROW: range(1, n + 1),
    cols.E164: [f"+3361{i:07d}" for i in range(n)],
    cols.TERRITORY: "FR",
    cols.REASON: "not_mobile",
    cols.DETAIL: None,
    cols.OUTCOME: "rejected",
})
summary = CampaignSummary(campaign_id="full", loaded=n, rejected={"not_mobile": n})
try:
    write_report(summary, rows, [], "fr")
except ReportError as exc:
    print(exc.message)
    sys.exit(0)
sys.exit("written anyway")
"""


def test_a_full_disk_leaves_no_temporary_file_of_personal_data(tmp_path: Path) -> None:
    import subprocess
    import sys

    scratch = tmp_path / "scratch"  # the system temp folder, where openpyxl streams a sheet
    scratch.mkdir()
    env = {**os.environ, "SURVEY_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(scratch)}
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "data" / "reports" / "full"
    # One line, in French, saying where and what to do.
    assert done.stdout.splitlines() == [
        f"rapport non écrit dans {folder} (File too large) ; libérez de la place (ou rétablissez "
        "le dossier), puis relancez la même commande"
    ]
    left = sorted(p.name for p in folder.iterdir())
    assert "rejects.csv" not in left and "rejects.xlsx" not in left
    assert not [n for n in left if n.startswith(".") or n.endswith(".tmp")], left
    assert list(scratch.iterdir()) == []


def test_a_folder_removed_while_a_table_is_written_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import tempfile

    from tasks.reporting import write_table

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    folder = tmp_path / "reports" / "purged"
    folder.mkdir(parents=True)

    def rows() -> Any:
        for i in range(2000):
            if i == 1000:
                shutil.rmtree(folder)  # a purge takes the campaign's folder meanwhile
            yield [i, f"+3361{i:07d}"]

    with pytest.raises(OSError):
        write_table(folder / "rejects", ["row", "e164"], rows())
    assert not folder.exists() or list(folder.iterdir()) == []
    assert list(scratch.iterdir()) == []  # openpyxl's stream of the sheet is gone too


def test_a_report_that_kept_no_rows_is_left_as_it_is_and_the_cancel_still_ends_well(
    campaign_env: Path, simulator: Any
) -> None:
    send(write_csv(campaign_env / "r.csv", FR), "older")
    folder = campaign_env / "data" / "reports" / "older"
    (folder / "rows.pkl").unlink()  # a report written before the rows were kept, or purged
    before = (folder / "summary.json").read_text(encoding="utf-8")
    state = cancel_campaign(campaign_id="older", return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["cancelled"] == 3
    assert (folder / "summary.json").read_text(encoding="utf-8") == before  # not half-updated
    assert (folder / "cancel.json").is_file()  # what the cancel did is there all the same
