"""A campaign's progress in Prefect: the run's progress artifact, the phases in the run's log,
and the command line's bar.

The counts and their texts are in ``tasks/progress.py`` (no Prefect); this module keeps one
tracker per campaign id in this process, pushes it to the run's progress artifact through a
``Ticker`` and says each phase in the run's log. Every function is safe from any thread (chunks
are sent from a thread pool) and a no-op when nothing was begun.

On the command line, ``terminal_bar()`` draws the same tracker as a Rich bar on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from tasks import i18n
from tasks.i18n import Lang
from tasks.progress import Phase, Snapshot, Ticker, Tracker, chunks

log = logging.getLogger("survey.progress")


@dataclass
class _Running:
    tracker: Tracker
    ticker: Ticker | None  # None outside a flow run: counts only, no artifact


_lock = threading.Lock()
_running: dict[str, _Running] = {}
_latest: Tracker | None = None  # the one the terminal bar draws (the last begun)


def _in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _artifact_pusher(tracker: Tracker) -> Callable[[Snapshot], None] | None:
    """The run's progress artifact, created now, and how to update it (None if it cannot be
    created: the campaign goes on without it)."""
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


def lang_of(campaign_id: str) -> Lang:
    """The language of a campaign begun in this process (its log lines speak it); the default
    language for one that was not."""
    running = _running.get(campaign_id)
    return running.tracker.lang if running else i18n.DEFAULT_LANG


def snapshot(campaign_id: str) -> Snapshot | None:
    """What a running campaign shows now (None when it was not begun or has ended)."""
    running = _running.get(campaign_id)
    return running.tracker.snapshot() if running else None


# -- the command line ---------------------------------------------------------------------------


def _console_handlers() -> list[Any]:
    """Prefect's console log handlers, wherever logging set them up."""
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
