"""A campaign's progress while it runs: counts from many threads, the texts in French and English,
an artifact pushed at most once a tick, the fan-out and the settle wait counting by chunk, and the
command line's bar on a terminal (a real pseudo-terminal), never on stdout."""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.context import FlowRunContext

from flows.parameters import DeliveryWindow, Limits
from smspartner.client import Credits
from smspartner.simulator import FaultConfig, SimulatorServer, SimulatorState
from tasks import i18n
from tasks import ledger as lg
from tasks import plan as pl
from tasks.progress import Phase, Snapshot, Ticker, Tracker, chunks, duration
from tasks.sending import ChunkResult, settle_deferred
from tasks.steps import progress
from tasks.steps.prepare import Cleaned, write_plan
from tasks.steps.send import Throttle, send_campaign

NNBSP = "\u202f"  # CLDR's French thousands separator


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


# -- counts and texts -----------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=12))
def test_chunks_counted_from_many_threads_are_all_counted(per_thread: list[int]) -> None:
    tracker = Tracker("c", "fr")
    tracker.phase(Phase.sending, total=sum(per_thread))
    start = threading.Barrier(len(per_thread))

    def send(n: int) -> None:
        start.wait()  # every thread counts at the same time
        for _ in range(n):
            tracker.advance()

    threads = [threading.Thread(target=send, args=(n,)) for n in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = tracker.snapshot()
    assert (snap.done, snap.total) == (sum(per_thread), sum(per_thread))


def test_the_artifact_reads_the_phase_and_the_count_in_the_campaign_language() -> None:
    clock = Clock()
    fr, en = Tracker("mairie-2026", "fr", clock), Tracker("mairie-2026", "en", clock)
    for tracker in (fr, en):
        tracker.phase(Phase.sending, total=1000)
        tracker.advance(340)
    clock.at += 12
    assert fr.snapshot().description() == (
        f"Envoi : 340 lots sur 1{NNBSP}000 (depuis 12 s) — campagne mairie-2026"
    )
    assert en.snapshot().description() == (
        "Sending: 340 chunks out of 1,000 (12 s so far) — campaign mairie-2026"
    )
    for tracker in (fr, en):
        tracker.phase(Phase.settling, total=2)
        tracker.advance()
    clock.at += 65
    assert fr.snapshot().status() == "vérification des envois : 1 lot sur 2 (depuis 1 min 05 s)"
    assert en.snapshot().status() == "checking sends in doubt: 1 chunk out of 2 (1 min 05 s so far)"


@given(st.integers(min_value=0, max_value=10**9))
def test_chunk_counts_take_the_plural_of_their_number(n: int) -> None:
    fr, en = chunks(n, "fr"), chunks(n, "en")
    assert fr.startswith(i18n.number(n, "fr") + " ") and en.startswith(i18n.number(n, "en") + " ")
    # French: 0 and 1 are singular; whole millions take "de" (1 000 000 de lots)
    expected_fr = "lot" if n < 2 else "de lots" if n % 10**6 == 0 else "lots"
    assert fr.split(" ", 1)[1] == expected_fr
    assert en.split(" ", 1)[1] == ("chunk" if n == 1 else "chunks")


@given(st.integers(min_value=0, max_value=599))
def test_the_elapsed_time_changes_every_second_for_ten_minutes(seconds: int) -> None:
    # So the artifact moves at least every 2 s through a wait, whatever else happens.
    assert duration(seconds) != duration(seconds + 1)


@given(st.integers(min_value=600, max_value=10 * 86400))
def test_a_long_wait_changes_the_text_once_a_minute_only(seconds: int) -> None:
    # An approval waited for hours must not update the artifact every second.
    start = seconds - seconds % 60
    assert duration(start) == duration(start + 59)


phases = st.sampled_from(list(Phase))


@given(
    st.lists(
        st.tuples(phases, st.integers(0, 50), st.lists(st.integers(0, 30), max_size=5)),
        min_size=1,
        unique_by=lambda s: s[0],  # each phase once, in their order
    ).map(lambda steps: sorted(steps, key=lambda s: list(Phase).index(s[0])))
)
def test_the_bar_never_goes_back_as_the_phases_follow_each_other(
    steps: list[tuple[Phase, int, list[int]]],
) -> None:
    tracker = Tracker("c", "en")
    seen = [tracker.snapshot().percent]
    for step, total, advances in steps:
        tracker.phase(step, total)
        seen.append(tracker.snapshot().percent)
        for n in advances:
            tracker.advance(n)
            seen.append(tracker.snapshot().percent)
    tracker.finish()
    seen.append(tracker.snapshot().percent)
    assert seen == sorted(seen) and seen[0] >= 0 and seen[-1] <= 100
    assert (seen[-1] == 100) == (steps[-1][0] is Phase.reporting)


def test_the_end_says_how_the_run_ended() -> None:
    clock = Clock()
    done, cut = Tracker("c", "fr", clock), Tracker("c", "fr", clock)
    done.phase(Phase.reporting)
    cut.phase(Phase.sending, total=3)
    cut.advance(2)
    clock.at += 125
    done.finish()
    cut.finish()
    clock.at += 500  # the time stops at the end
    assert done.snapshot().description() == "Exécution terminée en 2 min 05 s — campagne c"
    assert cut.snapshot().description() == (
        "Exécution arrêtée pendant l'étape « envoi » : 2 lots sur 3 — campagne c"
    )
    assert cut.snapshot().percent < 100


# -- the throttle ---------------------------------------------------------------------------------


def test_the_ticker_pushes_once_per_tick_and_only_what_changed() -> None:
    clock = Clock()
    tracker = Tracker("c", "fr", clock)
    pushed: list[Snapshot] = []
    ticker = Ticker(tracker, pushed.append)
    tracker.phase(Phase.sending, total=1000)
    assert ticker.tick()
    for _ in range(1000):  # a thousand chunks between two ticks: one update
        tracker.advance()
    assert ticker.tick() and not ticker.tick()  # nothing new: no call to the API
    clock.at += 1
    assert ticker.tick()  # the elapsed time moved
    assert [p.done for p in pushed] == [0, 1000, 1000]


def test_a_failing_update_is_tried_again_at_the_next_tick() -> None:
    tracker = Tracker("c", "fr", Clock())
    answers: list[Exception | None] = [OSError("API down"), None]
    pushed: list[Snapshot] = []

    def push(snap: Snapshot) -> None:
        if answer := answers.pop(0):
            raise answer
        pushed.append(snap)

    ticker = Ticker(tracker, push)
    assert not ticker.tick()  # never raised to the campaign
    assert ticker.tick() and len(pushed) == 1


def test_the_ticker_thread_stops_at_the_end_after_its_last_push() -> None:
    clock = Clock()
    tracker = Tracker("c", "fr", clock)
    pushed: list[Snapshot] = []
    ticker = Ticker(tracker, pushed.append, every=0.01)
    ticker.start()
    tracker.phase(Phase.reporting)
    tracker.finish()
    ticker.stop()
    count = len(pushed)
    assert pushed[-1].ended and pushed[-1].percent == 100
    clock.at += 10
    time.sleep(0.05)  # several ticks' worth: a stopped ticker pushes nothing more
    assert len(pushed) == count


# -- outside and inside a flow run ----------------------------------------------------------------


def test_outside_a_flow_run_it_counts_and_creates_nothing() -> None:
    assert FlowRunContext.get() is None
    progress.begin("plain", "en")
    progress.phase("plain", Phase.sending, total=4)
    progress.advance("plain", 3)
    snap = progress.snapshot("plain")
    assert snap is not None and (snap.done, snap.total) == (3, 4)
    progress.end("plain")
    assert progress.snapshot("plain") is None
    progress.advance("plain")  # after the end, or never begun: nothing, and no error
    progress.phase("never-begun", Phase.reporting)


def _artifacts(flow_run_id: UUID) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                type=ArtifactFilterType(any_=["progress"]),
            )
        )


def _wait_for(flow_run_id: UUID, pattern: str) -> Any:
    """The run's progress artifact once its description matches (the ticker pushes it)."""
    deadline = time.monotonic() + 20
    while True:
        found = _artifacts(flow_run_id)
        if found and re.search(pattern, found[0].description or ""):
            return found[0]
        assert time.monotonic() < deadline, [a.description for a in found]
        time.sleep(0.2)


def test_in_a_flow_run_one_artifact_follows_the_phases_and_the_log_says_each(
    prefect_harness: None,
) -> None:
    @flow(name="progress-probe")
    def probe() -> UUID:
        run_id = FlowRunContext.get().flow_run.id  # type: ignore[union-attr]
        progress.begin("probe-1", "fr")
        progress.phase("probe-1", Phase.preparing)
        _wait_for(run_id, r"^Préparation \(depuis \d+ s\) — campagne probe-1$")
        progress.phase("probe-1", Phase.sending, total=10)
        progress.advance("probe-1", 4)
        artifact = _wait_for(run_id, r"^Envoi : 4 lots sur 10 ")
        assert artifact.data == pytest.approx(5 + 85 * 0.4)
        progress.phase("probe-1", Phase.reporting)
        progress.end("probe-1")
        return run_id

    run_id = probe()
    (artifact,) = _artifacts(run_id)  # one artifact for the run, updated in place
    assert artifact.data == 100
    assert re.fullmatch(r"Exécution terminée en \d+ s — campagne probe-1", artifact.description)
    assert artifact.key is None  # the run's own: not in the Artifacts page's keyed list
    said: list[str] = []
    deadline = time.monotonic() + 20  # the run's logs reach the server in batches
    while len(said) < 3 and time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        said = [log.message for log in logs if log.message.startswith("Campagne probe-1")]
        time.sleep(0.2)
    assert said == [
        "Campagne probe-1 — début de l'étape « préparation »",
        "Campagne probe-1 — début de l'étape « envoi » : 10 lots",
        "Campagne probe-1 — début de l'étape « rapport »",
    ]


# -- the fan-out and the settle wait count by chunk -----------------------------------------------


@pytest.fixture
def slow_gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SimulatorServer]:
    from helpers import TEST_KEY

    state = SimulatorState(api_keys={TEST_KEY}, credits=1000.0, faults=FaultConfig(latency_ms=100))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMSPARTNER_API_KEY", TEST_KEY)
    with SimulatorServer(state) as server:
        yield server


def test_the_fan_out_counts_each_chunk_not_each_batch(
    slow_gateway: SimulatorServer, tmp_path: Path, prefect_harness: None
) -> None:
    ledger_url = f"sqlite:///{tmp_path}/ledger.sqlite"
    limits = Limits(chunk_size=2, concurrency=1)
    numbers = [f"06 12 00 00 {i:02d}" for i in range(12)]  # six chunks, one batch of six
    frame = pd.DataFrame({"phone": numbers})
    cleaned = Cleaned(
        pl.clean_rows(frame, "phone", allow_foreign=False), pl.input_fingerprint(frame), ["phone"]
    )
    window = DeliveryWindow()
    request = limits.plan_request(
        campaign_id="by-chunk",
        survey_id="s1",
        ledger_url=ledger_url,
        window=window,
        dry_run=False,
        resume_changed_input=False,
    )
    credits = Credits(balance=1000.0, currency="EUR", credit_sms=None, to_send=None, raw={})
    prepared = write_plan(lg.Ledger(ledger_url), cleaned, credits, request)
    assert len(prepared.chunk_indices) == 6
    assert pl.batch_chunks(prepared.chunk_indices, 1) == [prepared.chunk_indices]
    settings = limits.send_settings(
        campaign_id="by-chunk",
        survey_id="s1",
        base_url=slow_gateway.url,
        ledger_url=ledger_url,
        credits=None,
        window=window,
        key_block=None,
    )
    seen: set[tuple[str | None, int]] = set()
    watching = threading.Event()

    def watch() -> None:  # what the ticker would read, looked at far more often than a chunk
        while not watching.is_set():
            if snap := progress.snapshot("by-chunk"):
                seen.add((snap.step, snap.done))
            time.sleep(0.005)

    @flow(name="fan-out-probe")
    def fan_out_probe() -> str | None:
        progress.begin("by-chunk", "en")
        try:
            return send_campaign(settings, prepared.chunk_indices, Throttle(1), 0)
        finally:
            progress.end("by-chunk")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert fan_out_probe() is None
    finally:
        watching.set()
        watcher.join()
    sending = sorted(done for step, done in seen if step == Phase.sending)
    # one batch of six chunks at 100 ms a call: every count in between shows, not just 0 and 6
    assert sending == [0, 1, 2, 3, 4, 5, 6], seen


def test_the_settle_wait_counts_each_chunk_out_of_doubt() -> None:
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    moments = {"now": t0}
    settled: list[int] = []

    def drive(index: int) -> ChunkResult:
        if index == 2:  # still in doubt after every look
            return ChunkResult(
                index, "in_doubt", 5, deferred_until=moments["now"] + timedelta(seconds=10)
            )
        return ChunkResult(index, "sent", 5)

    def sleep(seconds: float) -> None:
        moments["now"] += timedelta(seconds=seconds)

    settle_deferred(
        {0: t0, 1: t0 + timedelta(seconds=5), 2: t0},
        drive=drive,
        until=t0 + timedelta(seconds=60),
        workers=1,
        now=lambda: moments["now"],
        sleep=sleep,
        say=lambda _: None,
        on_settled=lambda: settled.append(1),
    )
    assert len(settled) == 2  # chunks 0 and 1; chunk 2 stays in doubt and is not counted


# -- the command line -----------------------------------------------------------------------------


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress.terminal_bar(stream):
        progress.begin("quiet", "fr")
        progress.phase("quiet", Phase.sending, total=3)
        progress.end("quiet")
    assert stream.getvalue() == ""


def test_on_a_terminal_the_bar_shows_the_phase_and_stdout_stays_clean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    leader, follower = os.openpty()
    terminal = os.fdopen(follower, "w", encoding="utf-8")
    os.set_blocking(leader, False)
    drawn = b""

    def screen() -> str:
        """What the terminal received so far, without its control sequences."""
        nonlocal drawn
        while True:
            try:
                chunk = os.read(leader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            drawn += chunk
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.decode("utf-8", "replace"))

    try:
        with progress.terminal_bar(terminal, every=0.01):
            progress.begin("tty", "fr")
            progress.phase("tty", Phase.sending, total=5)
            progress.advance("tty", 3)
            # The bar redraws on its own clock: wait until it has drawn this state (a busy
            # machine may take longer than a few redraws).
            deadline = time.monotonic() + 20
            while "Envoi : 3 lots sur 5" not in screen() and time.monotonic() < deadline:
                time.sleep(0.05)
            print('{"summary": true}')  # the JSON summary, printed while the bar is up
            progress.phase("tty", Phase.reporting)
            progress.end("tty")
        terminal.flush()
        shown = screen()
    finally:
        terminal.close()
        os.close(leader)
    assert "Envoi : 3 lots sur 5" in shown
    assert "Exécution terminée en 0 s — campagne tty" in shown  # the last state stays on screen
    assert "summary" not in shown
    assert capsys.readouterr().out == '{"summary": true}\n'
