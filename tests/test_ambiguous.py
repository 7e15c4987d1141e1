"""Never twice when the gateway's answer is ambiguous, and the ledger's outages ridden through.

The simulator's record is the judge: after a first run under each fault, every valid recipient
was texted at most once; after the settle time has passed and the campaign was run again,
exactly once. The cost the summary shows is what the simulator charged.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import TEST_KEY, csv_of, fresh_database, start_cli, summary_of
from helpers import fault_mobiles as mobiles
from tcp_proxy import TcpProxy

from flows.survey_campaign import DeliveryWindow, Limits, RecipientSource, send_survey_campaign
from smspartner.simulator import FaultConfig
from tasks import ledger as lg

N = 10_000
SETTLE = 4.0  # every lag and delay below stays under it: the settle time's assumption

# In-doubt chunks settle within a test only when sent at once: any hour of CI (conftest.py).
pytestmark = pytest.mark.usefixtures("open_all_day")


def run(
    path: Path, campaign_id: str, *, window: DeliveryWindow | None = None, **limits: Any
) -> Any:
    limits.setdefault("retry_backoff", 0.05)
    limits.setdefault("settle_seconds", SETTLE)
    limits.setdefault("settle_wait_seconds", 20.0)
    limits.setdefault("read_timeout", 1.0)
    limits.setdefault("concurrency", 8)
    return send_survey_campaign(
        survey_id="ambiguous",
        recipients=RecipientSource(path=str(path)),
        campaign_id=campaign_id,
        window=window or DeliveryWindow(),
        limits=Limits(**limits),
        return_state=True,
    )


def texted(simulator: Any) -> Counter[str]:
    return Counter(simulator.state.accepted_numbers())


def charged(simulator: Any) -> float:
    return round(sum(s["cost"] for s in simulator.state.sends if not s["cancelled"]), 4)


AMBIGUOUS = {
    "status_lags_behind_lost_answers": FaultConfig(
        drop_after_accept_rate=0.3, status_lag_s=2.0, seed=11
    ),
    "slower_than_the_timeout": FaultConfig(slow_send_s=2.0, slow_send_rate=0.3, seed=12),
    "html_empty_truncated_after_accepting": FaultConfig(garbage_rate=0.3, seed=13),
    "no_message_id": FaultConfig(garbage_rate=0.3, garbage_kinds=["no_message_id"], seed=14),
    "html_from_a_proxy_that_never_forwarded": FaultConfig(garbage_before_rate=0.3, seed=15),
    "all_together": FaultConfig(
        drop_after_accept_rate=0.1,
        status_lag_s=2.0,
        slow_send_s=2.0,
        slow_send_rate=0.1,
        garbage_rate=0.1,
        garbage_before_rate=0.1,
        error_5xx_rate=0.05,
        rate_limit_rate=0.05,
        retry_after=0.05,
        reset_rate=0.05,
        seed=16,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(AMBIGUOUS))
def test_ambiguous_answers_never_text_anyone_twice(
    name: str, campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(N)
    csv = csv_of(campaign_env / "r.csv", numbers)
    cid = f"amb-{name}".replace("_", "-")
    simulator.state.faults = AMBIGUOUS[name]
    first = run(csv, cid)
    summary = summary_of(first)
    # Complete only when nothing is left failed or in doubt; otherwise Incomplete, never green.
    assert first.is_completed() == (summary["failed"] == 0), first.message
    assert summary["loaded"] == summary["sent"] + summary["failed"] + sum(
        summary["rejected"].values()
    )
    counts = texted(simulator)
    assert max(counts.values()) == 1, f"{sum(c > 1 for c in counts.values())} texted twice"
    # What the run says it sent is what the gateway accepted, and what it cost is the charge.
    assert summary["sent"] == len(counts)
    assert summary["cost"] == pytest.approx(charged(simulator), abs=1e-6)
    # Faults off, the settle time passed: the rerun sends what did not land, once.
    simulator.state.faults = FaultConfig()
    time.sleep(SETTLE)
    again = run(csv, cid).result()
    assert Counter(texted(simulator)) == Counter(numbers)
    assert again["sent"] == N and again["failed"] == 0
    assert again["cost"] == pytest.approx(charged(simulator), abs=1e-6)
    assert again["credits_before"] == summary["credits_before"]  # the campaign as a whole


@pytest.mark.slow
def test_a_scheduled_chunk_hidden_until_its_slot_stays_in_doubt_not_resent(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(1200)
    csv = csv_of(campaign_env / "r.csv", numbers)
    # Every answer is lost, and the status endpoints show a scheduled send only from its slot.
    simulator.state.faults = FaultConfig(drop_after_accept_rate=1.0, hide_scheduled=True)
    first = run(csv, "hidden", window=DeliveryWindow(allow_immediate=False), settle_wait_seconds=3)
    summary = summary_of(first)
    assert summary["sent"] == 0 and summary["failed_reasons"] == {"in_doubt": 1200}
    assert len(simulator.state.sends) == 3  # each chunk reached the gateway once, and only once
    # A rerun before the slot: "not found" proves nothing yet, nothing is sent again.
    simulator.state.faults = FaultConfig(hide_scheduled=True)
    rerun = run(csv, "hidden", window=DeliveryWindow(allow_immediate=False), settle_wait_seconds=1)
    assert summary_of(rerun)["failed_reasons"] == {"in_doubt": 1200}
    assert len(simulator.state.sends) == 3
    # Once the slot has passed the gateway shows the sends: the follow-up settles them.
    slot = min(s["scheduled_at"] for s in simulator.state.sends)
    from datetime import datetime

    ahead = (datetime.fromisoformat(slot) - simulator.state.now()).total_seconds()
    simulator.state.advance(max(ahead, 0) + 60)
    from flows.follow_up import follow_up_campaign

    followed = follow_up_campaign(campaign_id="hidden", settle_seconds=SETTLE, return_state=True)
    assert followed.result()["in_doubt"] == {
        "confirmed_sent": 3,
        "not_sent": 0,
        "still_in_doubt": 0,
    }
    chunks = lg.Ledger(os.environ["SURVEY_LEDGER_URL"]).chunks("hidden")
    assert {c.state for c in chunks} == {"sent"} and all(c.cost_estimated for c in chunks)
    assert Counter(texted(simulator)) == Counter(numbers)


# -- two campaigns at once, on the three databases ------------------------------------------------


def _cli(env_dir: Path, simulator: Any, csv: Path, cid: str, url: str, *extra: str) -> Any:
    return start_cli(
        "flows.survey_campaign",
        env_dir,
        all_day=True,
        *("--survey-id", "overlap", "--recipients", str(csv), "--campaign-id", cid),
        *("--chunk-size", "100", "--concurrency", "4", "--retry-backoff", "0.05"),
        *("--settle-seconds", str(SETTLE)),
        *extra,
        SMSPARTNER_API_KEY=TEST_KEY,
        SMSPARTNER_BASE_URL=simulator.url,
        SURVEY_LEDGER_URL=url,
    )


@pytest.mark.slow
def test_two_campaigns_started_together_text_a_shared_person_once(
    campaign_env: Path, simulator: Any, ledger_url: str
) -> None:
    shared = mobiles(1500)
    lists = {"left": shared + mobiles(500, 5000), "right": mobiles(500, 8000) + shared}
    simulator.state.faults = FaultConfig(latency_ms=20)
    simulator.state.stop_rate = 0.0  # no STOP replies: a reply would opt a shared person out
    csvs = {cid: csv_of(campaign_env / f"{cid}.csv", nums) for cid, nums in lists.items()}
    procs = {cid: _cli(campaign_env, simulator, csvs[cid], cid, ledger_url) for cid in lists}
    summaries = {}
    for cid, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        summaries[cid] = json.loads(out.strip().splitlines()[-1])
    counts = texted(simulator)
    assert max(counts.values()) == 1
    assert set(counts) == set(shared) | set(mobiles(500, 5000)) | set(mobiles(500, 8000))
    # each shared person went to one campaign; the other says why it did not text them
    capped = sum(s["rejected"].get("recently_surveyed", 0) for s in summaries.values())
    assert capped == len(shared)
    assert sum(s["sent"] for s in summaries.values()) == len(counts)


# -- the ledger drops for a while ----------------------------------------------------------------


@pytest.fixture
def pg_behind_a_proxy(tmp_path: Path) -> Iterator[tuple[TcpProxy, str]]:
    gen = fresh_database("postgresql", tmp_path)
    url = next(gen)
    with TcpProxy("127.0.0.1", 5432) as proxy:
        yield proxy, url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    next(gen, None)


def _cut_when(
    simulator: Any, proxy: TcpProxy, after_sends: int, seconds: float
) -> threading.Thread:
    def cut() -> None:
        deadline = time.monotonic() + 120
        while len(simulator.state.sends) < after_sends and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.cut()
        time.sleep(seconds)
        proxy.restore()

    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    return thread


def _run_through_a_cut(
    env_dir: Path,
    simulator: Any,
    pg: tuple[TcpProxy, str],
    csv: Path,
    cid: str,
    *,
    cut: float,
    bound: float,
) -> tuple[Any, str, str]:
    """Run a campaign whose ledger connection is cut for ``cut`` seconds mid fan-out."""
    proxy, url = pg
    simulator.state.faults = FaultConfig(latency_ms=60)
    cutter = _cut_when(simulator, proxy, after_sends=8, seconds=cut)
    proc = _cli(env_dir, simulator, csv, cid, url, "--ledger-outage-seconds", str(bound))
    out, err = proc.communicate(timeout=300)
    cutter.join()
    return proc, out, err


@pytest.mark.slow
def test_a_ledger_outage_of_seconds_is_ridden_through(
    campaign_env: Path, simulator: Any, pg_behind_a_proxy: tuple[TcpProxy, str]
) -> None:
    numbers = mobiles(2500)
    csv = csv_of(campaign_env / "r.csv", numbers)
    proc, out, err = _run_through_a_cut(
        campaign_env, simulator, pg_behind_a_proxy, csv, "outage", cut=4.0, bound=60.0
    )
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert "unreachable" in err  # one line said so
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["sent"] == len(numbers)
    assert Counter(texted(simulator)) == Counter(numbers)


@pytest.mark.slow
def test_a_ledger_outage_past_the_bound_stops_cleanly_and_the_rerun_texts_once(
    campaign_env: Path, simulator: Any, pg_behind_a_proxy: tuple[TcpProxy, str]
) -> None:
    numbers = mobiles(2500)
    csv = csv_of(campaign_env / "r.csv", numbers)
    proc, out, err = _run_through_a_cut(
        campaign_env, simulator, pg_behind_a_proxy, csv, "outage-long", cut=8.0, bound=2.0
    )
    assert proc.returncode != 0
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "unreachable" in last
    assert max(texted(simulator).values()) == 1
    rerun = _cli(campaign_env, simulator, csv, "outage-long", pg_behind_a_proxy[1])
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["sent"] == len(numbers)
    assert Counter(texted(simulator)) == Counter(numbers)
