"""Exactly once under faults: the simulator's record is the judge.

Each test runs a campaign of a few thousand recipients against the simulator with faults
injected, then checks what the simulator accepted: every valid recipient exactly once, nobody
else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import TEST_KEY, csv_of, start_cli, summary_of
from helpers import fault_mobiles as mobiles

from flows.survey_campaign import Limits, RecipientSource, send_survey_campaign
from smspartner.simulator import FaultConfig

N = 3000

# In-doubt chunks settle within a test only when sent at once: any hour of CI (conftest.py).
pytestmark = pytest.mark.usefixtures("open_all_day")


def run(path: Path, campaign_id: str, **limits: Any) -> Any:
    limits.setdefault("chunk_size", 100)
    limits.setdefault("retry_backoff", 0.05)
    limits.setdefault("max_attempts", 12)
    # The simulator's status endpoints are up to date unless a test makes them lag.
    limits.setdefault("settle_seconds", 1.0)
    limits.setdefault("settle_wait_seconds", 30.0)
    return send_survey_campaign(
        survey_id="faults",
        recipients=RecipientSource(path=str(path)),
        campaign_id=campaign_id,
        limits=Limits(**limits),
        return_state=True,
    )


def assert_exactly_once(simulator: Any, expected: set[str]) -> None:
    counts = Counter(simulator.state.accepted_numbers())
    assert set(counts) == expected
    twice = [n for n, c in counts.items() if c > 1]
    assert not twice, f"{len(twice)} numbers texted more than once"


FAULTS = {
    "latency": FaultConfig(latency_ms=40, seed=1),
    "server_errors": FaultConfig(error_5xx_rate=0.3, seed=2),
    "rate_limited": FaultConfig(rate_limit_rate=0.3, retry_after=0.05, seed=3),
    "connection_resets": FaultConfig(reset_rate=0.3, seed=4),
    "answers_lost": FaultConfig(drop_after_accept_rate=0.3, seed=5),
    "all_together": FaultConfig(
        latency_ms=10,
        error_5xx_rate=0.1,
        rate_limit_rate=0.1,
        retry_after=0.05,
        reset_rate=0.1,
        drop_after_accept_rate=0.1,
        seed=6,
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_valid_recipient_exactly_once_under_faults(
    name: str, campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(N)
    garbage = ["01 42 68 53 00", "nope", numbers[0]]  # a landline, text, a duplicate
    simulator.state.faults = FAULTS[name]
    state = run(
        csv_of(campaign_env / "r.csv", numbers, garbage), f"faults-{name}".replace("_", "-")
    )
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["loaded"] == summary["sent"] + summary["failed"] + sum(
        summary["rejected"].values()
    )
    assert summary["rejected"] == {"not_mobile": 1, "not_a_number": 1, "duplicate": 1}
    assert summary["sent"] == N and summary["failed"] == 0
    assert_exactly_once(simulator, set(numbers))


def test_low_credits_stop_the_campaign_without_overspending(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(1000)
    simulator.state.credits = 100.0
    # the account looks rich when the campaign starts, then credits run out at the gateway
    simulator.state.add_canned(
        "sondage/to/send", {"success": False, "code": 11, "message": "Crédits insuffisants"}
    )
    state = run(csv_of(campaign_env / "r.csv", numbers), "low-credits", concurrency=1)
    # Nothing sent is not a success: the run ends Incomplete, saying why and what to do.
    assert state.is_failed() and state.name == "Incomplete", state.message
    assert "non envoyés" in state.message and "crédits insuffisants" in state.message
    summary = summary_of(state)
    assert summary["sent"] == 0
    assert summary["failed_reasons"] == {"insufficient_credits": 1000}
    assert simulator.state.sends == []
    # credits added: the same campaign id sends what was left, once
    again = run(csv_of(campaign_env / "r.csv", numbers), "low-credits", concurrency=1)
    assert again.result()["sent"] == 1000
    assert_exactly_once(simulator, set(numbers))


def test_code_9_sets_refused_numbers_aside_and_sends_the_rest(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(250)
    refused = numbers[7]
    simulator.state.add_canned(
        "sondage/to/send",
        {
            "success": False,
            "code": 9,
            "error": [
                {
                    "elementId": "children[phoneNumbers].data",
                    "message": f"Ce numero de telephone n'est pas valide ({refused})",
                },
            ],
        },
        status=400,
    )
    state = run(csv_of(campaign_env / "r.csv", numbers), "code-nine", chunk_size=500)
    summary = state.result()
    assert summary["rejected"] == {"gateway_rejected": 1} and summary["sent"] == 249
    assert_exactly_once(simulator, set(numbers) - {refused})
    rejects = (campaign_env / "data" / "reports" / "code-nine" / "rejects.csv").read_text()
    assert "n'est pas valide" in rejects


def test_code_10_mid_campaign_stops_with_a_clear_message(
    campaign_env: Path, simulator: Any
) -> None:
    simulator.state.add_canned(
        "sondage/to/send", {"success": False, "code": 10, "message": "Clé API incorrecte"}, times=50
    )
    state = run(csv_of(campaign_env / "r.csv", mobiles(300)), "bad-key-later", concurrency=1)
    assert state.is_failed()
    assert "API key" in state.message and TEST_KEY not in state.message
    assert simulator.state.sends == []
    # the key problem does not poison the ledger: once fixed, the campaign goes out once
    simulator.state.reset()
    again = run(csv_of(campaign_env / "r.csv", mobiles(300)), "bad-key-later")
    assert again.result()["sent"] == 300
    assert_exactly_once(simulator, set(mobiles(300)))


def _cli(campaign_env: Path, simulator: Any, csv: Path, campaign_id: str) -> subprocess.Popen[str]:
    return start_cli(
        "flows.survey_campaign",
        campaign_env,
        all_day=True,
        *("--survey-id", "kill", "--recipients", str(csv), "--campaign-id", campaign_id),
        *("--chunk-size", "50", "--concurrency", "2", "--retry-backoff", "0.05"),
        *("--settle-seconds", "1", "--settle-wait-seconds", "30"),
        SMSPARTNER_API_KEY=TEST_KEY,
        SMSPARTNER_BASE_URL=simulator.url,
        SURVEY_LEDGER_URL=f"sqlite:///{campaign_env}/ledger.sqlite",
    )


@pytest.mark.slow
def test_sigkill_mid_fanout_then_rerun_texts_everyone_once(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(2000)
    csv = csv_of(campaign_env / "r.csv", numbers)
    simulator.state.faults = FaultConfig(latency_ms=150)
    proc = _cli(campaign_env, simulator, csv, "killed")
    deadline = time.monotonic() + 120
    while len(simulator.state.sends) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(simulator.state.sends)
    assert 0 < before < 40
    simulator.state.faults = FaultConfig()
    rerun = _cli(campaign_env, simulator, csv, "killed")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["sent"] == 2000 and summary["loaded"] == 2000
    assert_exactly_once(simulator, set(numbers))


@pytest.mark.slow
def test_same_campaign_twice_at_once_texts_everyone_once(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(2000)
    csv = csv_of(campaign_env / "r.csv", numbers)
    simulator.state.faults = FaultConfig(latency_ms=30)
    runs = [_cli(campaign_env, simulator, csv, "twins") for _ in range(2)]
    results = [p.communicate(timeout=300) for p in runs]
    for p, (out, err) in zip(runs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["sent"] == 2000
    assert_exactly_once(simulator, set(numbers))


def test_simulator_faults_are_configurable_over_http(simulator: Any) -> None:
    admin = simulator.url.replace("/v1", "/_sim")
    requests.post(f"{admin}/faults", json={"error_5xx_rate": 1.0}, timeout=5).raise_for_status()
    assert simulator.state.faults.error_5xx_rate == 1.0
    answer = requests.get(f"{simulator.url}/me", params={"apiKey": TEST_KEY}, timeout=5)
    assert answer.status_code >= 500


def test_a_chunk_that_may_have_landed_is_never_resent_blindly(
    campaign_env: Path, simulator: Any
) -> None:
    from tasks import ledger as lg

    numbers = mobiles(300)
    csv = csv_of(campaign_env / "r.csv", numbers)
    # every answer to a send is lost, and the gateway then stops answering status queries
    simulator.state.faults = FaultConfig(drop_after_accept_rate=1.0)
    simulator.state.add_canned("bulk-status-by-tag", "<html>502</html>", status=502, times=1000)
    state = run(csv, "lost-answers", chunk_size=100, max_attempts=3, settle_wait_seconds=3.0)
    assert state.is_failed() and state.name == "Incomplete", state.message
    summary = summary_of(state)
    assert summary["sent"] == 0 and summary["failed_reasons"] == {"in_doubt": 300}
    assert len(simulator.state.sends) == 3  # each chunk reached the gateway once, and only once
    # the gateway is back: the rerun finds the three sends by their tags and resends nothing
    simulator.state.clear_canned()
    simulator.state.faults = FaultConfig()
    again = run(csv, "lost-answers", chunk_size=100)
    ledger = lg.Ledger(os.environ["SURVEY_LEDGER_URL"])
    assert {c.state for c in ledger.chunks("lost-answers")} == {"sent"}
    assert again.result()["sent"] == 300
    assert len(simulator.state.sends) == 3
    assert_exactly_once(simulator, set(numbers))
