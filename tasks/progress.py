"""A campaign's progress, seen while it runs: the phase, and chunks done out of the total.

One tracker per campaign id in this process; every function is safe from any thread (chunks are
sent from a thread pool) and a no-op when nothing was begun.

In a flow run the tracker owns one progress artifact: its bar, and a description in the
campaign's language ("Envoi : 340 lots sur 1 000 (depuis 12 s) — campagne X"). Counting a chunk
is a lock and an addition; the artifact is pushed by a small ticker thread, at most once a
``PUSH_EVERY`` and only when what it shows changed, so 2,000 chunks make no storm of API calls.
The text carries the phase's elapsed time, so the artifact moves every second or two even while
nothing else does (a settle wait, a long report), and the operator sees the run is alive.

On the command line, ``terminal_bar()`` draws the same tracker as a Rich bar on stderr.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast
from uuid import UUID

from babel import Locale

from tasks import i18n
from tasks.i18n import Lang

log = logging.getLogger("survey.progress")

PUSH_EVERY = 1.0  # seconds between two looks of the ticker (one artifact update at most)


class Phase(StrEnum):
    preparing = "preparing"
    sending = "sending"
    settling = "settling"
    reporting = "reporting"


# Where each phase's share of the bar lies (percent), so that the bar never goes back: the
# sends are nearly all of a campaign's time.
_BANDS: dict[Phase, tuple[float, float]] = {
    Phase.preparing: (0.0, 5.0),
    Phase.sending: (5.0, 90.0),
    Phase.settling: (90.0, 95.0),
    Phase.reporting: (95.0, 100.0),
}


def duration(seconds: float) -> str:
    """ "12 s", "2 min 05 s", then coarser past ten minutes ("12 min", "1 h 05 min"), so that a
    long wait (an approval) changes the text once a minute, not every second."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 10:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def chunks(n: int, lang: Lang) -> str:
    """ "1 lot", "0 lot", "2 lots", "1 000 000 de lots" (fr); "1 chunk", "0 chunks" (en)."""
    form = Locale.parse(lang).plural_form(n)  # CLDR: fr says "0 lot", en "0 chunks"
    key = f"progress.chunks.{form}"
    if key not in i18n.CATALOG:
        key = "progress.chunks.other"
    return i18n.text(lang, key, n=i18n.number(n, lang))


@dataclass(frozen=True)
class Snapshot:
    """What a tracker shows at one moment."""

    campaign_id: str
    lang: Lang
    step: Phase | None
    done: int
    total: int
    phase_seconds: float
    run_seconds: float
    ended: bool = False

    @property
    def percent(self) -> float:
        """The bar: the phase's band, filled by its share of chunks done; 100 at a normal end."""
        if self.ended and self.step is Phase.reporting:
            return 100.0
        if self.step is None:
            return 0.0
        low, high = _BANDS[self.step]
        share = min(self.done, self.total) / self.total if self.total else 0.0
        return round(low + (high - low) * share, 1)

    def counted(self) -> str:
        """ "340 lots sur 1 000" (empty for a phase without a count)."""
        if not self.total:
            return ""
        return i18n.text(
            self.lang,
            "progress.out_of",
            done=chunks(self.done, self.lang),
            total=i18n.number(self.total, self.lang),
        )

    def status(self) -> str:
        """The phase and its count, without the campaign: "envoi : 340 lots sur 1 000 (depuis
        12 s)"; after the end, how it ended."""
        lang = self.lang
        name = i18n.text(lang, f"progress.phase.{self.step or Phase.preparing}")
        count = self.counted()
        if self.ended and self.step is Phase.reporting:
            return i18n.text(lang, "progress.over", time=duration(self.run_seconds))
        if self.ended:
            said = i18n.text(lang, "progress.stopped", phase=name)
            return said + (i18n.text(lang, "sep.colon") + count if count else "")
        said = name + (i18n.text(lang, "sep.colon") + count if count else "")
        return said + " " + i18n.text(lang, "progress.elapsed", time=duration(self.phase_seconds))

    def description(self) -> str:
        """The artifact's line: "Envoi : 340 lots sur 1 000 (depuis 12 s) — campagne X"."""
        line = i18n.text(self.lang, "progress.line", cid=self.campaign_id, what=self.status())
        return line[:1].upper() + line[1:]


class Tracker:
    """One campaign's counts; every method may be called from any thread."""

    def __init__(
        self, campaign_id: str, lang: Lang, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.campaign_id = campaign_id
        self.lang = lang
        self._clock = clock
        self._lock = threading.Lock()
        self._step: Phase | None = None
        self._done = 0
        self._total = 0
        self._started = self._since = clock()
        self._ended_at: float | None = None

    def phase(self, step: Phase, total: int = 0) -> None:
        with self._lock:
            self._step, self._total, self._done = step, max(0, total), 0
            self._since = self._clock()

    def advance(self, done: int = 1) -> None:
        with self._lock:
            self._done += done

    def finish(self) -> None:
        with self._lock:
            if self._ended_at is None:
                self._ended_at = self._clock()

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock() if self._ended_at is None else self._ended_at
            return Snapshot(
                self.campaign_id,
                self.lang,
                self._step,
                self._done,
                self._total,
                now - self._since,
                now - self._started,
                self._ended_at is not None,
            )


class Ticker:
    """Pushes a tracker's latest snapshot to ``push`` at most once per ``every`` seconds, and
    only when what it shows changed; ``stop`` pushes the last one."""

    def __init__(
        self, tracker: Tracker, push: Callable[[Snapshot], None], every: float = PUSH_EVERY
    ) -> None:
        self.tracker = tracker
        self._push = push
        self._every = every
        self._shown: tuple[float, str] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> bool:
        """Push the snapshot if it differs from the last one pushed; whether it did."""
        snap = self.tracker.snapshot()
        shown = (snap.percent, snap.description())
        if shown == self._shown:
            return False
        try:
            self._push(snap)
        except Exception as exc:  # progress is a view: a failed update never stops a campaign
            log.debug("progress update failed: %s", exc)
            return False
        self._shown = shown
        return True

    def start(self) -> None:
        # The thread runs in a copy of the caller's context: Prefect's settings and run context
        # (its API address, under the test harness too) come with it.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name="progress-ticker", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self._every):
            self.tick()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.tick()


@dataclass
class _Running:
    tracker: Tracker
    ticker: Ticker | None  # None outside a flow run: counts only, no artifact


_lock = threading.Lock()
_running: dict[str, _Running] = {}
_latest: Tracker | None = None  # the one the terminal bar draws (the last begun)


def _in_flow_run() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _artifact_pusher(tracker: Tracker) -> Callable[[Snapshot], None] | None:
    """The run's progress artifact, created now, and how to update it (None if it cannot be
    created: the campaign goes on without it)."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    snap = tracker.snapshot()
    try:
        artifact = create_progress_artifact(
            progress=snap.percent, key=None, description=snap.description()
        )
    except Exception as exc:  # the API is down: the run finds out soon enough on its own
        log.warning("the progress artifact could not be created: %s", exc)
        return None
    artifact_id = cast(UUID, artifact)  # a UUID in a sync flow (a coroutine in an async one)

    def push(shown: Snapshot) -> None:
        update_progress_artifact(
            artifact_id, progress=shown.percent, description=shown.description()
        )

    return push


def begin(campaign_id: str, lang: Lang) -> None:
    """The flow, at its start: the run's progress artifact appears."""
    global _latest
    end(campaign_id)  # a campaign begun twice in one process: the older tracker stops
    tracker = Tracker(campaign_id, lang)
    ticker = None
    if _in_flow_run() and (push := _artifact_pusher(tracker)) is not None:
        ticker = Ticker(tracker, push)
        ticker.tick()  # what create showed: the first change is pushed, not this
        ticker.start()
    with _lock:
        _running[campaign_id] = _Running(tracker, ticker)
        _latest = tracker


def phase(campaign_id: str, step: Phase, total: int = 0) -> None:
    """The flow, at each phase's start: ``total`` chunks (or items) to go through in it."""
    running = _running.get(campaign_id)
    if running is None:
        return
    tracker = running.tracker
    tracker.phase(step, total)
    said = i18n.text(
        tracker.lang,
        "progress.started",
        cid=campaign_id,
        phase=i18n.text(tracker.lang, f"progress.phase.{step}"),
    )
    if total:
        said += i18n.text(tracker.lang, "sep.colon") + chunks(total, tracker.lang)
    _run_logger().info(said)


def advance(campaign_id: str, done: int = 1) -> None:
    """A task, after each chunk: ``done`` more of the phase's total."""
    running = _running.get(campaign_id)
    if running is not None:
        running.tracker.advance(done)


def end(campaign_id: str) -> None:
    """The flow, at its end (whatever the outcome): the artifact shows how it ended."""
    with _lock:
        running = _running.pop(campaign_id, None)
    if running is None:
        return
    running.tracker.finish()
    if running.ticker is not None:
        running.ticker.stop()


def snapshot(campaign_id: str) -> Snapshot | None:
    """What a running campaign shows now (None when it was not begun or has ended)."""
    running = _running.get(campaign_id)
    return running.tracker.snapshot() if running else None


# -- the command line ---------------------------------------------------------------------------


def _console_handlers() -> list[Any]:
    """Prefect's console log handlers, wherever logging set them up."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers: list[Any] = [logging.getLogger()]
    loggers += [lg for lg in logging.root.manager.loggerDict.values() if hasattr(lg, "handlers")]
    found: dict[int, Any] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                found[id(handler)] = handler
    return list(found.values())


@contextmanager
def terminal_bar(stream: Any = None, every: float = 0.2) -> Iterator[None]:
    """The command line, around the flow call: a progress bar on stderr when it is a terminal
    (nothing otherwise: the phases are in the log lines). Only stderr is drawn on: the JSON
    summary on stdout is never touched."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    stream = sys.stderr if stream is None else stream
    if not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    global _latest
    _latest = None  # this command's campaign, not one an earlier call left behind
    handlers = _console_handlers()
    # Prefect's log lines go through the bar's console, so Rich prints them above the bar
    # instead of through it.
    console = next(
        (h.console for h in handlers if getattr(h, "stream", None) is stream), None
    ) or Console(file=stream)
    saved = [(h, h.console) for h in handlers]
    for handler in handlers:
        handler.console = console
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        console=console,
        redirect_stdout=False,  # stdout is the JSON summary's
        redirect_stderr=False,
        transient=False,
    )
    shown = bar.add_task("", total=None, visible=False)
    stopping = threading.Event()

    def follow() -> None:
        while True:
            tracker = _latest
            if tracker is not None:
                snap = tracker.snapshot()
                bar.update(
                    shown,
                    description=snap.description(),
                    total=100.0,
                    completed=snap.percent,
                    visible=True,
                )
            if stopping.wait(every):
                return

    follower = threading.Thread(target=follow, name="progress-bar", daemon=True)
    try:
        with bar:
            follower.start()
            try:
                yield
            finally:
                stopping.set()
                follower.join()
                tracker = _latest
                if tracker is not None:  # the last state, drawn once more before the bar stops
                    snap = tracker.snapshot()
                    bar.update(shown, description=snap.description(), completed=snap.percent)
    finally:
        for handler, before in saved:
            with contextlib.suppress(Exception):
                handler.console = before
