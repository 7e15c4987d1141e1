"""The send core against a model of the gateway: nobody is texted twice, whatever happens.

A hypothesis state machine drives ``send_chunk_once`` chunk by chunk over a real SQLite ledger,
with a fake clock shared by the ledger, the executor and ``ModelGateway``. The model records every
send it accepts and, per call, answers as the real gateway may: accepted; the answer lost or
garbled after the send was taken (unknown); garbage before anything was taken (unknown); a 429 or
no connection (refused); a slow send taken only some seconds after an unknown answer; a status
look-up that lags (a send taken less than ``lag`` seconds ago is "not found") or fails. A run may
also die (``Crash``) inside the call, before or after the gateway took the send: its claim stays
``sending`` under a dead owner (every run's pid does not exist) and the next run reconciles it.

Rules: drive one chunk (early or late for a deferred one), the settle phase (``settle_deferred``),
a whole campaign run (every chunk, then the settle phase), a new run taking over a dead run's
chunk (a script may also restart it at once, as a task retry does), the status lag changing, and
time passing.

Every lag and delay stays below the settle time, the one assumption the design makes about the
real gateway: a send is visible at the status endpoint within ``settle`` after its attempt ended.
Invariants: no number is ever in two sends the gateway took (slow ones counted from the moment the
call returns: they will land); a chunk the ledger calls sent is at the gateway, one it calls
failed or pending is not. At the end the faults stop, the clock passes the settle time, every
chunk not yet sent is driven again, and every number of the plan is texted exactly once.
"""

from __future__ import annotations

import contextlib
import random
import socket
import tempfile
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
from hypothesis import HealthCheck, note, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from smspartner import Kind, NotFound, Refusal, SendOutcome, ServerError, StatusEntry
from tasks import ledger as lg
from tasks.outcomes import ChunkState
from tasks.sendcore import SendPolicy
from tasks.sending import ChunkResult, SendSettings, send_chunk_once, settle_deferred
from tasks.slots import PARIS

SETTLE = timedelta(seconds=300)
POLICY = SendPolicy(
    max_attempts=4,
    backoff=0.01,
    settle=SETTLE,
    first_look=timedelta(seconds=2),
    look_every=timedelta(seconds=30),
)
# Lag and delay add up for a slow send (taken ``delay`` after the answer, visible ``lag`` later):
# together they stay below the settle time.
MAX_LAG = 140
MAX_DELAY = 140
MAX_TOOK = 60  # seconds one call takes: below the executor's call deadline (65 s)
# Tuesday 1 December 2026, 08:30 in Paris: the window (08:00-20:00) allows sending at once.
# Steps that move the clock stop at LATEST, hours before the window closes: the model only
# knows sends at once (it refuses a schedule).
START = datetime(2026, 12, 1, 8, 30, tzinfo=PARIS).astimezone(UTC)
LATEST = datetime(2026, 12, 1, 15, 0, tzinfo=PARIS).astimezone(UTC)
CAMPAIGN = "model"
HOST = socket.gethostname()
DEAD_PID = 999_999_999  # above any pid_max: the claim of such an owner is a dead one's


class Crash(BaseException):
    """The run dies inside the call (not an Exception: the executor must not catch it)."""


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=max(seconds, 0.0))

    def advance_to(self, moment: datetime) -> None:
        self.t = max(self.t, moment)

    def __str__(self) -> str:
        return f"{self.t.astimezone(PARIS):%H:%M:%S}"


# --- what the gateway does with one call ---


@dataclass(frozen=True)
class Ok:
    took: int = 0  # the call takes this long; the send is taken at its end


@dataclass(frozen=True)
class LostAfter:
    """Taken, then the answer is lost (read timeout): unknown."""

    took: int = 0


@dataclass(frozen=True)
class GarbageAfter:
    """Taken, then an HTML 502 page: unknown."""

    took: int = 0


@dataclass(frozen=True)
class GarbageBefore:
    """Nothing taken, an HTML 502 page: unknown."""

    took: int = 0


@dataclass(frozen=True)
class RateLimited:
    """HTTP 429: refused, nothing taken."""


@dataclass(frozen=True)
class NotConnected:
    """The request never left: refused, nothing taken."""


@dataclass(frozen=True)
class Slow:
    """Unknown now (timeout); the gateway takes the send ``delay`` seconds later."""

    delay: int


@dataclass(frozen=True)
class CrashBefore:
    """The run dies during the call; the gateway took nothing."""

    took: int = 0


@dataclass(frozen=True)
class CrashAfter:
    """The gateway took the send, then the run dies before the answer arrives."""

    took: int = 0


SendFault = (
    Ok | LostAfter | GarbageAfter | GarbageBefore | RateLimited | NotConnected | Slow | CrashBefore
) | CrashAfter


@dataclass(frozen=True)
class Look:
    """The status look-up answers, as far as the gateway's lag lets it see."""


@dataclass(frozen=True)
class LookFails:
    """The status look-up fails (HTTP 5xx)."""


LookFault = Look | LookFails

_took = st.integers(0, MAX_TOOK)
send_faults = st.one_of(
    st.builds(Ok, _took),
    st.builds(LostAfter, _took),
    st.builds(GarbageAfter, _took),
    st.builds(GarbageBefore, _took),
    st.sampled_from([RateLimited(), NotConnected()]),
    st.builds(Slow, st.integers(0, MAX_DELAY)),
    st.builds(CrashBefore, _took),
    st.builds(CrashAfter, _took),
    st.builds(CrashAfter, _took),  # twice: a crash after the send is the likeliest to double it
)
look_faults = st.sampled_from([Look(), LookFails()])
lags = st.integers(0, MAX_LAG)


@dataclass(frozen=True)
class Script:
    """What the gateway does during one drive: ``sends`` in order, then ``then`` for every
    further send; ``looks`` in order, then every look answers. ``restart``: if the run dies, a
    new run takes the chunk over this many seconds later (a retry of the task), else not."""

    sends: tuple[SendFault, ...] = ()
    then: SendFault = Ok()
    looks: tuple[LookFault, ...] = ()
    restart: int | None = None


scripts = st.builds(
    Script,
    sends=st.lists(send_faults, max_size=3).map(tuple),
    then=send_faults,
    looks=st.lists(look_faults, max_size=3).map(tuple),
    restart=st.one_of(st.none(), st.just(0), st.integers(0, MAX_LAG)),
)
# How late a deferred chunk is driven after the time its result gave: soon, or much later.
lateness = st.one_of(st.integers(0, 120), st.sampled_from([299, 300, 301, 600]))
CALM = Script()


@dataclass(frozen=True)
class Taken:
    """A send the gateway took: it texts ``numbers`` at ``at``."""

    tag: str
    numbers: tuple[str, ...]
    at: datetime
    message_id: int


class ModelGateway:
    """The two methods of the client the executor calls, answering as a script says."""

    def __init__(self, clock: FakeClock, say: Callable[[str], None]) -> None:
        self.clock = clock
        self.say = say
        self.taken: list[Taken] = []
        self.sends: deque[SendFault] = deque()
        self.then: SendFault = Ok()
        self.looks: deque[LookFault] = deque()
        self.lag = 0  # sends taken less than ``lag`` seconds ago are invisible to look-ups

    def play(self, script: Script) -> None:
        self.sends = deque(script.sends)
        self.then = script.then
        self.looks = deque(script.looks)

    def _take(self, tag: str, numbers: tuple[str, ...], at: datetime) -> int:
        message_id = len(self.taken) + 1
        self.taken.append(Taken(tag, numbers, at, message_id))
        self.say(f"  gateway takes {tag} {list(numbers)} at {at.astimezone(PARIS):%H:%M:%S}")
        return message_id

    def send_survey(
        self,
        numbers: tuple[str, ...] | list[str],
        survey_id: str,
        *,
        tag: str,
        schedule: object = None,
    ) -> SendOutcome:
        assert schedule is None, "the model only knows sends at once (keep the clock in window)"
        numbers = tuple(numbers)
        fault = self.sends.popleft() if self.sends else self.then
        self.say(f"  send {tag} at {self.clock}: {fault}")
        if isinstance(fault, RateLimited):
            return SendOutcome(
                Kind.REFUSED, "HTTP 429, rate limited", Refusal.RATE_LIMITED, http_status=429
            )
        if isinstance(fault, NotConnected):
            return SendOutcome(Kind.REFUSED, "connection refused", Refusal.NOT_CONNECTED)
        if isinstance(fault, Slow):
            self._take(tag, numbers, self.clock.now() + timedelta(seconds=fault.delay))
            return SendOutcome(Kind.UNKNOWN, "read timeout")
        self.clock.sleep(fault.took)
        if isinstance(fault, CrashBefore):
            raise Crash
        if isinstance(fault, GarbageBefore):
            return SendOutcome(Kind.UNKNOWN, "HTTP 502 with an answer that is not JSON", None, 502)
        message_id = self._take(tag, numbers, self.clock.now())
        if isinstance(fault, CrashAfter):
            raise Crash
        if isinstance(fault, LostAfter):
            return SendOutcome(Kind.UNKNOWN, "read timeout")
        if isinstance(fault, GarbageAfter):
            return SendOutcome(Kind.UNKNOWN, "HTTP 502 with an answer that is not JSON", None, 502)
        assert isinstance(fault, Ok)
        return SendOutcome(
            Kind.ACCEPTED,
            "accepted",
            http_status=200,
            message_id=message_id,
            nb_sms=len(numbers),
            cost=round(0.05 * len(numbers), 6),
            currency="EUR",
        )

    def status_by_tag(self, tag: str) -> list[StatusEntry]:
        fault = self.looks.popleft() if self.looks else Look()
        now = self.clock.now()
        if isinstance(fault, LookFails):
            self.say(f"  look {tag} at {self.clock}: fails")
            raise ServerError("HTTP 503", http_status=503)
        seen_until = now - timedelta(seconds=self.lag)
        visible = [t for t in self.taken if t.tag == tag and t.at <= seen_until]
        self.say(f"  look {tag} at {self.clock} (lag {self.lag}): {len(visible)} send(s)")
        if not visible:
            raise NotFound("code 4: unknown tag", code=4)
        return [
            StatusEntry(n, "Delivered", False, t.at, t.message_id)
            for t in visible
            for n in t.numbers
        ]

    def texted(self) -> Counter[str]:
        """How many sends the gateway took (or will take: slow ones) for each number."""
        return Counter(n for t in self.taken for n in t.numbers)


# --- the machine ---

chunk_sizes = st.lists(st.integers(1, 5), min_size=1, max_size=4)


class SendModel(RuleBasedStateMachine):
    """One campaign over a fresh ledger; each rule is something a run or the world does."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="send-model-")
        self.url = f"sqlite:///{self.tmp.name}/l.sqlite"
        self.clock = FakeClock(START)
        self.ledger = lg.Ledger(self.url, clock=self.clock.now, sleep=self.clock.sleep)
        self.trace: list[str] = []  # what happened in this step, noted once it is over
        self.gateway = ModelGateway(self.clock, self.trace.append)
        self.rng = random.Random(0)
        self.run = 0  # every run is a process of its own; a new one after every crash
        self.deferred: dict[int, datetime] = {}  # chunk -> when its result said to come back
        self.crashed: int | None = None  # the chunk a dead run left, until driven again
        self.plan: list[lg.ChunkPlan] = []
        self.runs = 0  # calls of the executor so far
        self.checked = -1  # the ledger was last compared with the gateway after that many
        self.broken = False  # a step failed: skip the final phase, report that failure

    def settings_for(self, owner: str) -> SendSettings:
        return SendSettings(
            campaign_id=CAMPAIGN,
            survey_id="s",
            base_url="http://unused",
            ledger_url=self.url,
            owner=owner,
            cost_per_recipient=0.05,
            send=POLICY,
            cap_days=0,
        )

    def in_day(self) -> bool:
        """Whether the clock leaves room for more steps before the sending window closes."""
        return self.clock.t < LATEST

    def flush(self) -> None:
        """Note this step's trace (hypothesis prints it with a failing example)."""
        if self.trace:
            note("\n".join(self.trace))
            self.trace.clear()

    @initialize(sizes=chunk_sizes, lag=lags)
    def make_plan(self, sizes: list[int], lag: int) -> None:
        self.gateway.lag = lag
        self.plan = [
            lg.ChunkPlan(i, "FR", None, tuple(f"+336{i + 1:02d}{j:06d}" for j in range(n)))
            for i, n in enumerate(sizes)
        ]
        assert self.ledger.create_plan(CAMPAIGN, "s", self.plan)

    def _run_once(self, chunk_index: int) -> ChunkResult:
        """The executor on one chunk, by the current run; ``Crash`` if the run died."""
        self.runs += 1
        # No run's pid exists, so the claim a crashed run left is seen as a dead one's.
        owner = f"{HOST}:{DEAD_PID}:run{self.run}"
        self.trace.append(f"run{self.run} drives chunk {chunk_index} at {self.clock}")
        try:
            result = send_chunk_once(
                self.settings_for(owner),
                chunk_index,
                client=self.gateway,  # type: ignore[arg-type]
                ledger=self.ledger,
                now=self.clock.now,
                sleep=self.clock.sleep,
                rng=self.rng,
            )
        except Crash:
            self.trace.append(f"  run{self.run} died")
            self.run += 1
            self.deferred.pop(chunk_index, None)
            self.crashed = chunk_index
            raise
        except BaseException:
            self.broken = True
            raise
        if self.crashed == chunk_index:
            self.crashed = None
        until = result.deferred_until
        self.trace.append(f"  -> {result.state} {result.reason or ''}, deferred until {until}")
        if until is None:
            self.deferred.pop(chunk_index, None)
        else:
            self.deferred[chunk_index] = until
        return result

    def _play(self, script: Script, run: Callable[[], object]) -> None:
        """``run`` with the gateway following ``script``; if the run dies and the script says
        so, a new run takes the chunk over (a retry of the task)."""
        self.gateway.play(script)
        try:
            run()
        except Crash:
            if script.restart is not None:
                assert self.crashed is not None
                self.clock.sleep(script.restart)
                with contextlib.suppress(Crash):
                    self._run_once(self.crashed)
        finally:
            self.flush()

    @precondition(lambda self: self.in_day())
    @rule(pick=st.integers(0, 3), script=scripts)
    def drive(self, pick: int, script: Script) -> None:
        """Drive a chunk now, one not sent yet if any: fresh, in doubt (early or late), left
        by a dead run, failed."""
        rows = self.ledger.chunks(CAMPAIGN)
        todo = [r.chunk_index for r in rows if r.state != ChunkState.sent] or [
            r.chunk_index for r in rows
        ]
        chunk = todo[pick % len(todo)]
        self._play(script, lambda: self._run_once(chunk))

    @precondition(lambda self: self.in_day() and bool(self.deferred))
    @rule(pick=st.integers(0, 3), late=lateness, script=scripts)
    def drive_when_due(self, pick: int, late: int, script: Script) -> None:
        """Come back to a deferred chunk at the time its result gave, or later."""
        chunk = sorted(self.deferred)[pick % len(self.deferred)]
        self.clock.advance_to(self.deferred[chunk] + timedelta(seconds=late))
        self._play(script, lambda: self._run_once(chunk))

    @precondition(lambda self: self.in_day() and bool(self.deferred))
    @rule(span=st.integers(0, 900), script=scripts)
    def settle_phase(self, span: int, script: Script) -> None:
        """The run's settle phase (``settle_deferred``): the deferred chunks are driven again as
        each becomes due, for ``span`` seconds."""
        self._play(script, lambda: self._settle(span))

    @precondition(lambda self: self.in_day())
    @rule(span=st.integers(0, 900), script=scripts)
    def campaign_run(self, span: int, script: Script) -> None:
        """A whole run of the campaign, as the flow does it: every chunk not sent yet in turn,
        then the settle phase for ``span`` seconds. A crash ends the run."""

        def run() -> None:
            for row in self.ledger.chunks(CAMPAIGN):
                if row.state != ChunkState.sent:
                    self._run_once(row.chunk_index)
            self._settle(span)

        self._play(replace(script, restart=None), run)

    def _settle(self, span: float) -> None:
        settle_deferred(
            dict(self.deferred),
            drive=self._run_once,
            until=self.clock.now() + timedelta(seconds=span),
            workers=1,
            now=self.clock.now,
            sleep=self.clock.sleep,
            say=self.trace.append,
        )

    @precondition(lambda self: self.in_day() and self.crashed is not None)
    @rule(late=st.one_of(lags, st.integers(0, 900)), script=scripts)
    def take_over(self, late: int, script: Script) -> None:
        """A new run takes over the chunk a dead run left, some time later."""
        chunk = self.crashed
        assert chunk is not None
        self.clock.sleep(late)
        self._play(script, lambda: self._run_once(chunk))

    @rule(lag=lags)
    def status_lag(self, lag: int) -> None:
        """The status endpoint now lags this much behind the sends it took."""
        self.gateway.lag = lag

    @precondition(lambda self: self.in_day())
    @rule(seconds=st.one_of(st.integers(0, 600), st.sampled_from([1, 2, 30, 299, 300, 301])))
    def advance(self, seconds: int) -> None:
        self.clock.sleep(seconds)

    @invariant()
    def nobody_texted_twice(self) -> None:
        twice = {n: k for n, k in self.gateway.texted().items() if k > 1}
        if twice:
            self.broken = True
        assert not twice, f"texted more than once: {twice}"

    @invariant()
    def the_ledger_agrees_with_the_gateway(self) -> None:
        """Sent means it is at the gateway; failed or pending means it is not (a rerun sends
        those again)."""
        if self.checked == self.runs:
            return
        self.checked = self.runs
        landed = {t.tag for t in self.gateway.taken}
        for row in self.ledger.chunks(CAMPAIGN):
            wrong = (row.state == ChunkState.sent and row.tag not in landed) or (
                row.state in (ChunkState.failed, ChunkState.pending) and row.tag in landed
            )
            if wrong:
                self.broken = True
            assert not wrong, (
                f"chunk {row.chunk_index} is {row.state} ({row.reason}) "
                f"but landed={row.tag in landed}"
            )

    def teardown(self) -> None:
        try:
            if self.plan and not self.broken:
                self.everything_goes_well_at_last()
        finally:
            self.flush()
            self.ledger.close()
            self.tmp.cleanup()

    def everything_goes_well_at_last(self) -> None:
        """Faults stop, the clock passes every pending send and the settle time, and every
        chunk not sent yet is driven again (a rerun, then its settle phase): each number is
        then texted exactly once."""
        self.trace.append("final phase: no more faults")
        self.gateway.play(CALM)
        self.gateway.lag = 0
        latest = max((t.at for t in self.gateway.taken), default=self.clock.now())
        self.clock.advance_to(latest)
        self.nobody_texted_twice()
        self.clock.sleep((SETTLE + self.settings_for("x").call_deadline).total_seconds() + 1)
        for _ in range(3):
            rows = self.ledger.chunks(CAMPAIGN)
            for chunk in [r.chunk_index for r in rows if r.state != ChunkState.sent]:
                self._run_once(chunk)
            self._settle(2 * SETTLE.total_seconds())
        rows = self.ledger.chunks(CAMPAIGN)
        assert [r.state for r in rows] == [ChunkState.sent] * len(self.plan), [
            (r.chunk_index, r.state, r.reason, r.detail) for r in rows
        ]
        texted = self.gateway.texted()
        wanted = Counter(n for c in self.plan for n in c.numbers)
        assert texted == wanted, f"texted {dict(texted)}, wanted each of {sorted(wanted)} once"
        numbers_of = {lg.chunk_tag(CAMPAIGN, c.chunk_index): c.numbers for c in self.plan}
        assert all(numbers_of[t.tag] == t.numbers for t in self.gateway.taken)


SendModel.TestCase.settings = settings(
    max_examples=400,
    deadline=None,
    stateful_step_count=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSendModel = SendModel.TestCase
