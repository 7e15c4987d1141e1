"""Delivery follow-up: status rules, STOP replies into the never-text store, the flow end to end.

The flow runs through the real Prefect engine against the simulator over HTTP; the simulator's
statuses move with its own clock (``state.advance``), so nothing sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import TEST_KEY, start_cli
from hypothesis import given
from hypothesis import strategies as st

from flows.follow_up import follow_up_campaign
from flows.survey_campaign import (
    DeliveryWindow,
    Limits,
    RecipientSource,
    send_survey_campaign,
)
from smspartner import StatusEntry
from smspartner.simulator import FaultConfig
from tasks import ledger as lg
from tasks import runtime
from tasks.delivery import status_bucket, tally_chunk
from tasks.nevertext import NeverText
from tasks.outcomes import ChunkState

# -- status rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "bucket"),
    [
        ("Delivered", "delivered"),
        ("delivered", "delivered"),
        ("DELIVRD", "delivered"),
        ("Délivré", "delivered"),
        ("Not delivered", "not_delivered"),
        ("not delivered", "not_delivered"),
        ("ko", "not_delivered"),
        ("KO", "not_delivered"),
        ("UNDELIV", "not_delivered"),
        ("EXPIRED", "not_delivered"),
        ("Non délivré", "not_delivered"),
        ("Waiting", "waiting"),
        ("waiting", "waiting"),
        ("PENDING", "waiting"),
        ("En attente", "waiting"),
        ("Numéro introuvable", "other"),
        ("Number not found", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_documented_status_spellings_fall_in_the_right_bucket(status: Any, bucket: str) -> None:
    assert status_bucket(status) == bucket


@given(st.one_of(st.none(), st.text(max_size=30), st.integers()))
def test_any_status_lands_in_exactly_one_bucket(status: Any) -> None:
    assert status_bucket(status) in {"delivered", "not_delivered", "waiting", "other"}


def _chunk(numbers: tuple[str, ...], territory: str = "FR") -> lg.ChunkRow:
    return lg.ChunkRow(
        campaign_id="c",
        chunk_index=3,
        tag="t",
        territory=territory,
        slot=None,
        numbers=numbers,
        refused={},
        state=ChunkState.sent,
        reason=None,
        detail=None,
        owner=None,
        message_id=7,
        nb_sms=3,
        cost=0.1,
        currency="EUR",
        attempts=1,
    )


def _entry(number: str, status: str, stop: bool = False, minute: int = 0) -> StatusEntry:
    return StatusEntry(number, status, stop, datetime(2025, 3, 1, 9, minute, tzinfo=UTC), 7)


def test_tally_matches_national_forms_keeps_latest_and_counts_missing_as_other() -> None:
    chunk = _chunk(("+33612345678", "+33612345679", "+33612345680"))
    entries = [
        _entry("0612345678", "Waiting", minute=1),
        _entry("+33612345678", "Delivered", stop=True, minute=5),  # later: wins
        _entry("+33 6 12 34 56 79", "ko"),
        _entry("+33699999999", "Delivered"),  # not in this chunk: ignored
    ]
    d = tally_chunk(chunk, entries, source="message")
    assert d.counts == {"delivered": 1, "not_delivered": 1, "waiting": 0, "other": 1}
    assert d.stops == ("+33612345678",)
    assert d.last_status_at == datetime(2025, 3, 1, 9, 5, tzinfo=UTC).isoformat()
    assert sum(d.counts.values()) == d.size == 3


# -- the flow ------------------------------------------------------------------------------

HEADER = "id;name;mobile\n"


def write_csv(path: Path, numbers: list[str]) -> Path:
    lines = [f"{i};Client {i};{n}" for i, n in enumerate(numbers, start=1)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def send(path: Path, campaign_id: str, **kwargs: Any) -> Any:
    kwargs.setdefault("window", DeliveryWindow(allow_immediate=False))
    state = send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(path)),
        campaign_id=campaign_id,
        return_state=True,
        **kwargs,
    )
    assert state.is_completed(), state.message
    return state


def follow(campaign_id: str) -> Any:
    return follow_up_campaign(campaign_id=campaign_id, return_state=True)


def past_every_slot(simulator: Any, ledger_url: str, campaign_id: str) -> None:
    """Move the simulator's clock past the campaign's last slot and the delivery delay."""
    chunks = lg.Ledger(ledger_url).chunks(campaign_id)
    slots = [datetime.fromisoformat(c.slot) for c in chunks if c.slot]
    latest = max(slots, default=simulator.state.now())
    ahead = (latest - simulator.state.now()).total_seconds()
    simulator.state.advance(max(ahead, 0) + simulator.state.delivery_delay_s + 1)


def expected(simulator: Any, numbers: list[str]) -> Counter[str]:
    names = {"Delivered": "delivered", "Not delivered": "not_delivered"}
    return Counter(names[simulator.state.planned_outcome(n)[0]] for n in numbers)


def population(simulator: Any) -> tuple[list[str], list[str], list[str]]:
    """FR and GP mobiles with some undelivered, and two FR numbers that will reply STOP."""
    outcome = simulator.state.planned_outcome
    stops = [n for n in (f"+3361{i:07d}" for i in range(100, 2000)) if outcome(n)[1]][:2]
    fr = [f"+3361{i:07d}" for i in range(40)] + stops
    gp = [f"+590690{i:06d}" for i in range(12)]
    assert any(outcome(n)[0] == "Not delivered" for n in fr)
    return fr, gp, stops


def test_statuses_move_from_waiting_to_final_and_stops_are_suppressed(
    campaign_env: Path, simulator: Any
) -> None:
    fr, gp, stops = population(simulator)
    national = [n.replace("+33", "0") for n in fr]  # as people type them
    send(write_csv(campaign_env / "r.csv", national + gp), "follow-me")

    before = follow("follow-me")  # nothing is due yet at the gateway
    assert before.is_completed(), before.message
    counts = before.result()
    assert counts["waiting"] == len(fr) + len(gp) and counts["delivered"] == 0
    assert counts["stop_added"] == 0 and counts["chunks_checked"] == 2

    past_every_slot(simulator, os.environ["SURVEY_LEDGER_URL"], "follow-me")
    after = follow("follow-me").result()
    want_fr, want_gp = expected(simulator, fr), expected(simulator, gp)
    assert after["by_territory"]["FR"] == {
        "delivered": want_fr["delivered"],
        "not_delivered": want_fr["not_delivered"],
        "waiting": 0,
        "other": 0,
    }
    assert after["by_territory"]["GP"]["delivered"] == want_gp["delivered"]
    assert after["delivered"] == want_fr["delivered"] + want_gp["delivered"]
    assert after["not_delivered"] == want_fr["not_delivered"] + want_gp["not_delivered"]
    assert after["waiting"] == after["other"] == 0
    assert after["stop_added"] == len(stops) == 2

    store = NeverText(runtime.open_ledger(os.environ["SURVEY_LEDGER_URL"]))
    assert store.among(fr + gp) == set(stops)  # STOP replies: never texted again
    assert store.counts() == {"stop_reply": 2, "people": 2}
    assert not (campaign_env / "data" / "state" / "suppression.csv").exists()  # no clear list

    report = campaign_env / "data" / "reports" / "follow-me"
    saved = json.loads((report / "follow_up.json").read_text())
    assert saved["delivered"] == after["delivered"] and len(saved["stops_masked"]) == 2
    page = (report / "report.html").read_text()
    assert 'id="chart-delivery"' in page and 'id="chart-territories"' in page
    for n in fr + gp + national:
        assert n not in page and n not in json.dumps(saved)

    again = follow("follow-me").result()  # the same STOP replies are not added twice
    assert again["stop_added"] == 0
    assert store.counts()["people"] == 2


def test_without_an_id_every_recent_campaign_is_followed_up(
    campaign_env: Path, simulator: Any
) -> None:
    send(write_csv(campaign_env / "a.csv", [f"+3361{i:07d}" for i in range(5)]), "daily-a")
    send(write_csv(campaign_env / "b.csv", [f"+3362{i:07d}" for i in range(7)]), "daily-b")
    state = follow_up_campaign(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result["campaigns"]) == {"daily-a", "daily-b"} and result["failed"] == {}
    assert result["campaigns"]["daily-b"]["waiting"] == 7
    for cid in ("daily-a", "daily-b"):
        assert (campaign_env / "data" / "reports" / cid / "follow_up.json").is_file()


def test_a_chunk_without_message_id_is_followed_by_its_tag(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = [f"+3361{i:07d}" for i in range(8)]
    # Every answer to a send is lost: the send flow confirms each chunk by its tag, which gives
    # no message id, so the follow-up can only ask by tag too.
    simulator.state.faults = FaultConfig(drop_after_accept_rate=1.0)
    send(
        write_csv(campaign_env / "r.csv", numbers),
        "by-tag",
        limits=Limits(retry_backoff=0.01, settle_seconds=1.0),
    )
    simulator.state.faults = FaultConfig()
    chunks = lg.Ledger(os.environ["SURVEY_LEDGER_URL"]).chunks("by-tag")
    assert [c.message_id for c in chunks] == [None]
    past_every_slot(simulator, os.environ["SURVEY_LEDGER_URL"], "by-tag")
    counts = follow("by-tag").result()
    want = expected(simulator, numbers)
    assert counts["delivered"] == want["delivered"]
    assert counts["not_delivered"] == want["not_delivered"]
    paths = Counter(r["path"] for r in simulator.state.requests)
    assert paths["bulk-status-by-tag"] >= 2 and paths["bulk-status"] == 0


def test_documented_answer_variations_are_tolerated(campaign_env: Path, simulator: Any) -> None:
    numbers = [f"+3361{i:07d}" for i in range(7)]
    send(write_csv(campaign_env / "r.csv", numbers), "variants")
    nat = [n.replace("+33", "0") for n in numbers]
    # One canned answer with what the docs say can come back: statut or status, lowercase,
    # 'ko', French texts, national numbers, dates as timestamps or strings, stop flags as
    # booleans or "0"/"1", an id as a string.
    simulator.state.add_canned(
        "bulk-status",
        {
            "success": True,
            "code": 200,
            "message_id": "1000",
            "StatutResponse_List": [
                {
                    "phoneNumber": numbers[0],
                    "status": "Delivered",
                    "stopSMS": False,
                    "date": "1534615206",
                },
                {
                    "phoneNumber": nat[1],
                    "statut": "delivered",
                    "stopSms": "1",
                    "date": "2025-03-01 10:00:00",
                },
                {"phoneNumber": numbers[2], "status": "ko", "stopSMS": "0", "date": 1534615206},
                {"phoneNumber": numbers[3], "status": "Not delivered"},
                {"phoneNumber": nat[4], "status": "waiting", "date": ""},
                {"phoneNumber": numbers[5], "status": "Numéro introuvable", "code": 4},
            ],
        },
    )
    counts = follow("variants").result()
    assert {k: counts[k] for k in ("delivered", "not_delivered", "waiting", "other")} == {
        "delivered": 2,
        "not_delivered": 2,
        "waiting": 1,
        "other": 2,  # numbers[6]: no status
    }
    assert counts["stop_added"] == 1
    store = NeverText(runtime.open_ledger(os.environ["SURVEY_LEDGER_URL"]))
    assert store.among(numbers) == {numbers[1]}


def test_problems_fail_the_run_with_one_clear_line(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = follow("never-sent")
    assert unknown.is_failed() and "Campagne « never-sent » inconnue" in unknown.message

    send(write_csv(campaign_env / "r.csv", ["+33610000001"]), "errors")
    monkeypatch.setenv("SMSPARTNER_API_KEY", "wrong-key-123")
    bad_key = follow("errors")
    assert bad_key.is_failed() and "API key" in bad_key.message
    assert "wrong-key-123" not in bad_key.message

    monkeypatch.setenv("SMSPARTNER_API_KEY", TEST_KEY)
    simulator.stop()  # the gateway is gone
    down = follow("errors")
    assert down.is_failed() and "unreachable" in down.message
    assert "\n" not in down.message and TEST_KEY not in down.message


def _cli(campaign_env: Path, *args: str) -> subprocess.Popen[str]:
    return start_cli("flows.follow_up", campaign_env, *args)


def test_command_line_prints_counts_last_and_fails_in_one_line(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = [f"+3361{i:07d}" for i in range(5)]
    send(write_csv(campaign_env / "r.csv", numbers), "cli-follow")
    past_every_slot(simulator, os.environ["SURVEY_LEDGER_URL"], "cli-follow")
    good = _cli(campaign_env, "--campaign-id", "cli-follow")
    bad = _cli(campaign_env, "--campaign-id", "no-such-campaign")
    out, err = good.communicate(timeout=120)
    assert good.returncode == 0, err[-2000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["campaign_id"] == "cli-follow" and counts["chunks_checked"] == 1
    assert counts["delivered"] + counts["not_delivered"] == 5

    out, err = bad.communicate(timeout=120)
    assert bad.returncode != 0 and out.strip() == ""
    assert err.strip().splitlines() == [
        "error: Campagne « no-such-campaign » inconnue : aucun envoi n'a été fait sous cet "
        "identifiant. Copiez l'identifiant exact depuis le nom de l'exécution de la campagne "
        "(page Runs de Prefect)."
    ]
    assert "Traceback" not in err


def test_artifacts_and_logs_show_counts_but_no_number_and_no_key(
    campaign_env: Path, simulator: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    fr, gp, stops = population(simulator)
    numbers = fr + gp + ["01 42 68 53 00"]  # a landline: rejected, shown masked if at all
    sent = send(write_csv(campaign_env / "r.csv", numbers), "Show-Me_1")
    past_every_slot(simulator, os.environ["SURVEY_LEDGER_URL"], "Show-Me_1")
    followed = follow("Show-Me_1")
    assert followed.is_completed(), followed.message
    counts = followed.result()
    APILogHandler().flush()  # the run's last log lines are still on their way
    runs = [sent.state_details.flow_run_id, followed.state_details.flow_run_id]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=runs))
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)), limit=200
        )
    by_key = {a.key: a for a in artifacts if a.flow_run_id == runs[1]}
    assert {"show-me-1-delivery", "show-me-1-summary", "show-me-1-report"} <= set(by_key)
    delivery = str(by_key["show-me-1-delivery"].data)
    assert f"| délivrés | {counts['delivered']} |" in delivery  # French by default
    assert (
        f"| France métropolitaine (FR) | {counts['by_territory']['FR']['delivered']} |" in delivery
    )
    assert "+33 6 •• •• ••" in delivery  # the STOP replies, masked
    assert "## Remise des SMS" in str(by_key["show-me-1-summary"].data)
    assert "report.html" in str(by_key["show-me-1-report"].data)
    assert len(logs) > 5
    text = json.dumps([a.data for a in artifacts], default=str, ensure_ascii=False)
    text += "\n".join(log.message for log in logs)
    assert TEST_KEY not in text
    for n in fr + gp:
        nsn = n[3:] if n.startswith("+33") else n[4:]
        assert n not in text and "0" + nsn not in text and nsn not in text
    assert "0142685300" not in text.replace(" ", "")
