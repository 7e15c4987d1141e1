"""The settle phase: chunks left in doubt are driven again when due, and never past the bound.
The price of chunks confirmed at the gateway: what the campaign learnt, whenever it learnt it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import REPO, TEST_KEY

from smspartner import Kind, Refusal, SendOutcome, ServerError, SMSPartnerClient, StatusEntry
from tasks import ledger as lg
from tasks.sendcore import SendPolicy
from tasks.sending import ChunkResult, SendSettings, send_chunk_once, settle_deferred

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def test_a_chunk_is_driven_again_when_due_and_settles() -> None:
    clock = Clock()
    driven: list[tuple[int, datetime]] = []

    def drive(index: int) -> ChunkResult:
        driven.append((index, clock.now()))
        return ChunkResult(index, "sent", 10)

    results = settle_deferred(
        {3: T0 + timedelta(seconds=5)},
        drive=drive,
        until=T0 + timedelta(seconds=60),
        workers=2,
        now=clock.now,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    assert driven == [(3, T0 + timedelta(seconds=5))]
    assert [r.state for r in results] == ["sent"]


def test_chunks_that_never_settle_stop_at_the_bound() -> None:
    clock = Clock()
    looks: list[datetime] = []

    def drive(index: int) -> ChunkResult:
        looks.append(clock.now())
        clock.sleep(3)  # a look that takes longer than the chunk's next due time
        return ChunkResult(index, "in_doubt", 10, deferred_until=clock.now() - timedelta(seconds=1))

    results = settle_deferred(
        {0: T0},
        drive=drive,
        until=T0 + timedelta(seconds=20),
        workers=1,
        now=clock.now,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    assert looks and max(looks) <= T0 + timedelta(seconds=20)
    assert results[0].deferred_until is not None  # still in doubt, for a rerun or the follow-up


def test_a_chunk_due_after_the_bound_is_left_in_doubt_without_waiting() -> None:
    clock = Clock()
    said: list[str] = []
    results = settle_deferred(
        {1: T0 + timedelta(hours=30)},  # a scheduled slot tomorrow
        drive=lambda i: ChunkResult(i, "sent", 1),
        until=T0 + timedelta(minutes=15),
        workers=1,
        now=clock.now,
        sleep=clock.sleep,
        say=said.append,
    )
    assert results == [] and clock.now() == T0 and said == []


def test_a_stop_ends_the_settle_phase() -> None:
    clock = Clock()
    results = settle_deferred(
        {0: T0, 1: T0},
        drive=lambda i: ChunkResult(i, "pending", 1, stop_campaign="the gateway refused the key"),
        until=T0 + timedelta(minutes=15),
        workers=1,
        now=clock.now,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    assert results and results[0].stop_campaign


# --- prices: chunks confirmed at the gateway cost what the campaign learnt -------------------

ESTIMATE = 0.045  # the configured estimate per recipient
PRICE = 0.038  # what the gateway really charges


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[lg.Ledger]:
    led = lg.Ledger(ledger_url)
    yield led
    led.close()


def numbers_plan(n_chunks: int, size: int) -> list[lg.ChunkPlan]:
    return [
        lg.ChunkPlan(i, "FR", None, tuple(f"+3367{i:03d}{j:04d}" for j in range(size)))
        for i in range(n_chunks)
    ]


def sent(ledger: lg.Ledger, campaign_id: str, chunk: int, cost: float, estimated: bool) -> None:
    claim = ledger.claim(campaign_id, chunk, "me", cost_per_recipient=ESTIMATE)
    size = claim.chunk.size
    ledger.mark_sent(
        campaign_id,
        chunk,
        message_id=None if estimated else 100 + chunk,
        nb_sms=size,
        cost=cost * size,
        currency="EUR",
        texted_at=T0,
        estimated=estimated,
        reserved=claim.reserved,
    )


def test_chunks_priced_by_estimate_take_the_price_the_gateway_tells_later(
    ledger: lg.Ledger,
) -> None:
    ledger.create_plan("p", "survey", numbers_plan(4, 5))
    sent(ledger, "p", 0, ESTIMATE, estimated=True)  # confirmed by status before any price
    sent(ledger, "p", 1, ESTIMATE, estimated=True)
    assert [c.cost for c in ledger.chunks("p")[:2]] == [pytest.approx(5 * ESTIMATE)] * 2
    sent(ledger, "p", 2, PRICE, estimated=False)  # the first answer that names the price
    # A caller that read the prices before that answer was recorded still gets the real one.
    sent(ledger, "p", 3, ESTIMATE, estimated=True)
    chunks = ledger.chunks("p")
    assert [c.cost for c in chunks] == [pytest.approx(5 * PRICE)] * 4
    assert [c.cost_estimated for c in chunks] == [True, True, False, True]
    assert ledger.observed_prices("p") == (pytest.approx(PRICE), pytest.approx(1.0))


def test_repricing_stays_within_one_campaign(ledger: lg.Ledger) -> None:
    ledger.create_plan("a", "survey", numbers_plan(1, 5))
    ledger.create_plan("b", "survey", numbers_plan(1, 5))
    sent(ledger, "a", 0, ESTIMATE, estimated=True)
    sent(ledger, "b", 0, PRICE, estimated=False)
    assert ledger.chunks("a")[0].cost == pytest.approx(5 * ESTIMATE)


CRASH = """
import os, signal, sys
from smspartner import SMSPartnerClient
from tasks import ledger as lg

url, base_url, key, campaign = sys.argv[1:5]
ledger = lg.Ledger(url)
client = SMSPartnerClient(key, base_url)
for index in (0, 1):
    row = ledger.claim(campaign, index, lg.owner_token("crashed"), cost_per_recipient=0.045).chunk
    assert client.send_survey(row.numbers, "survey", tag=row.tag).kind == "accepted"
os.kill(os.getpid(), signal.SIGKILL)  # killed before recording what the gateway answered
"""


def test_after_a_crash_the_cost_of_the_campaign_is_what_the_gateway_charged(
    ledger: lg.Ledger, ledger_url: str, simulator: Any
) -> None:
    simulator.state.cost_per_sms = PRICE
    ledger.create_plan("crash", "survey", numbers_plan(4, 5))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, ledger_url, simulator.url, TEST_KEY, "crash"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert len(simulator.state.sends) == 2
    # The resumed run: the two chunks the crash left are found at the gateway by their tags
    # (before any answer of this campaign told the price), then the other two are sent.
    settings = SendSettings(
        campaign_id="crash",
        survey_id="survey",
        base_url=simulator.url,
        ledger_url=ledger_url,
        owner=lg.owner_token("resumed"),
        cost_per_recipient=ESTIMATE,
    )
    with SMSPartnerClient(TEST_KEY, simulator.url) as client:
        results = [
            send_chunk_once(settings, i, client=client, ledger=ledger, sleep=lambda _: None)
            for i in range(4)
        ]
    assert [r.state for r in results] == ["sent"] * 4
    texted = Counter(simulator.state.accepted_numbers())
    assert len(texted) == 20 and max(texted.values()) == 1
    charged = round(sum(s["cost"] for s in simulator.state.sends), 4)
    chunks = ledger.chunks("crash")
    assert [c.cost_estimated for c in chunks] == [True, True, False, False]
    assert round(sum(c.cost or 0.0 for c in chunks), 4) == pytest.approx(charged)
    assert sum(c.nb_sms or 0 for c in chunks) == sum(s["nb_sms"] for s in simulator.state.sends)


def test_a_price_learnt_while_other_chunks_are_confirmed_reaches_all_of_them(
    ledger: lg.Ledger,
) -> None:
    # Chunks confirmed by status and chunks priced by their answer, recorded by many workers at
    # once: whichever commits first, every estimated chunk ends at the learnt price.
    ledger.create_plan("many", "survey", numbers_plan(24, 5))

    def price(i: int) -> float:
        return PRICE if i % 4 == 3 else ESTIMATE

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: sent(ledger, "many", i, price(i), i % 4 != 3), range(24)))
    chunks = ledger.chunks("many")
    assert sum(not c.cost_estimated for c in chunks) == 6
    assert [c.cost for c in chunks] == [pytest.approx(5 * PRICE)] * 24


# --- one home for the read timeout ------------------------------------------------------------


def _form_read_timeout() -> float:
    from flows.parameters import Limits

    return Limits().read_timeout


def _settings_read_timeout() -> float:
    return SendSettings("c", "s", "http://gateway", "sqlite://", "owner", 0.045).timeout


def _cli_read_timeout() -> float:
    from flows.survey_campaign import parse_args

    return float(parse_args(["--survey-id", "s", "--recipients", "r.csv"]).read_timeout)


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(_form_read_timeout, id="UI form"),
        pytest.param(_settings_read_timeout, id="send settings"),
        pytest.param(_cli_read_timeout, id="command line"),
    ],
)
def test_every_read_timeout_default_is_the_send_policys(where: Any) -> None:
    from tasks.sendcore import READ_TIMEOUT

    assert where() == READ_TIMEOUT == 30.0  # README: "--read-timeout S ... (30)"


# --- the executor: its ledger writes and gateway calls, in order ------------------------------
# The order is the exactly-once argument: a send's doubt time is in the ledger before its POST,
# a refused account gives the claim back untouched, credits halt the campaign before the chunk
# fails.

OPEN = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # Tuesday, 08:30 in Paris: the window is open
ABOUT = ["+33612000001", "+33612000002", "+33612000003"]
ACCEPTED = SendOutcome(Kind.ACCEPTED, "ok", message_id=7, nb_sms=3, cost=0.12, currency="EUR")
UNKNOWN = SendOutcome(Kind.UNKNOWN, "read timeout")


def refused(why: Refusal, code: int | None = None, *errors: tuple[str, str]) -> SendOutcome:
    return SendOutcome(Kind.REFUSED, f"refused: {why}", why, code=code, errors=errors)


class Recorded:
    """A real ledger whose writes are noted in the trace the gateway also writes to."""

    WRITES = ("claim", "set_aside", "mark_sent", "mark_in_doubt", "mark_failed", "halt", "release")

    def __init__(self, ledger: lg.Ledger, trace: list[str]) -> None:
        self._ledger, self._trace = ledger, trace

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._ledger, name)

        def noted(*args: Any, **kwargs: Any) -> Any:
            if name == "update_chunk":
                self._trace.append("update " + "+".join(sorted(kwargs)))
            elif name in self.WRITES:
                self._trace.append(name)
            return method(*args, **kwargs)

        return noted


class Scripted:
    """A gateway that answers sends and look-ups from a script and notes every call."""

    def __init__(self, trace: list[str], sends: list[SendOutcome], looks: list[Any]) -> None:
        self.trace, self.sends, self.looks = trace, list(sends), list(looks)

    def send_survey(
        self, numbers: tuple[str, ...], survey_id: str, *, tag: str, schedule: str | None
    ) -> SendOutcome:
        self.trace.append(f"POST {len(numbers)}" + (" scheduled" if schedule else ""))
        return self.sends.pop(0)

    def status_by_tag(self, tag: str) -> list[StatusEntry]:
        self.trace.append("look")
        answer = self.looks.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


LANDED = [StatusEntry(ABOUT[0], "Delivered", False, None, 7)]
NAMES_ONE = ("phoneNumbers", f"{ABOUT[1]}: not a mobile number")
NAMES_ALL = ("phoneNumbers", " ; ".join(ABOUT) + " invalid")


@pytest.mark.parametrize(
    ("doubt_first", "sends", "looks", "trace", "state"),
    [
        ([], [ACCEPTED], [], ["claim", "POST 3", "mark_sent"], "sent"),
        (
            [],
            [refused(Refusal.RATE_LIMITED), ACCEPTED],
            [],
            ["claim", "POST 3", "update doubt_from", "POST 3", "mark_sent"],
            "sent",
        ),
        ([], [UNKNOWN], [], ["claim", "POST 3", "mark_in_doubt"], "in_doubt"),
        ([], [refused(Refusal.ACCOUNT, 10)], [], ["claim", "POST 3", "release"], "pending"),
        (
            [],
            [refused(Refusal.CREDITS, 11)],
            [],
            ["claim", "POST 3", "halt", "mark_failed"],
            "failed",
        ),
        (
            [],
            [refused(Refusal.CONTENT, 9, NAMES_ONE), ACCEPTED],
            [],
            ["claim", "POST 3", "set_aside", "update doubt_from", "POST 2", "mark_sent"],
            "sent",
        ),
        (
            [],
            [refused(Refusal.CONTENT, 9, NAMES_ALL)],
            [],
            ["claim", "POST 3", "set_aside", "mark_sent"],
            "sent",
        ),
        (
            [],
            [refused(Refusal.SLOT, 22), ACCEPTED],
            [],
            [
                "claim",
                "POST 3",
                "update slot",
                "update doubt_from",
                "POST 3 scheduled",
                "mark_sent",
            ],
            "sent",
        ),
        (
            [],
            [refused(Refusal.CONTENT, 9, ("message", "too long"))],
            [],
            ["claim", "POST 3", "mark_failed"],
            "failed",
        ),
        # In doubt from an earlier drive, then driven again: found at the gateway it is sent
        # without a POST; shown absent after the settle time, its doubt time is written first.
        ([UNKNOWN], [], [LANDED], ["claim", "look", "mark_sent"], "sent"),
        (
            [UNKNOWN],
            [ACCEPTED],
            [[]],
            ["claim", "look", "update doubt_from", "POST 3", "mark_sent"],
            "sent",
        ),
        ([UNKNOWN], [], [ServerError("HTTP 502")], ["claim", "look", "mark_in_doubt"], "in_doubt"),
    ],
    ids=[
        "accepted",
        "429-then-accepted",
        "unknown",
        "account-refused",
        "credits-gone",
        "one-number-refused",
        "every-number-refused",
        "slot-refused",
        "content-refused",
        "in-doubt-found",
        "in-doubt-absent-resent",
        "in-doubt-look-fails",
    ],
)
def test_the_executor_writes_the_ledger_and_calls_the_gateway_in_this_order(
    tmp_path: Any,
    doubt_first: list[SendOutcome],
    sends: list[SendOutcome],
    looks: list[Any],
    trace: list[str],
    state: str,
) -> None:
    clock = Clock()
    clock.at = OPEN
    ledger = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite", clock=clock.now, sleep=clock.sleep)
    ledger.create_plan("order", "survey", [lg.ChunkPlan(0, "FR", None, tuple(ABOUT))])
    settings = SendSettings(
        "order", "survey", "http://unused", "sqlite://", lg.owner_token("order"), 0.04
    )
    seen: list[str] = []

    def drive(answers: list[SendOutcome], looked: list[Any]) -> ChunkResult:
        return send_chunk_once(
            settings,
            0,
            client=Scripted(seen, answers, looked),  # type: ignore[arg-type]
            ledger=Recorded(ledger, seen),  # type: ignore[arg-type]
            now=clock.now,
            sleep=clock.sleep,
            rng=random.Random(0),
        )

    if doubt_first:
        assert drive(doubt_first, []).state == "in_doubt"
        clock.sleep(SendPolicy().settle.total_seconds() + 60)  # past the settle time
        seen.clear()
    result = drive(sends, looks)
    ledger.close()
    assert seen == trace
    assert result.state == state
    assert (result.stop_campaign is not None) == (state == "pending")
    assert (result.deferred_until is not None) == (state == "in_doubt")
