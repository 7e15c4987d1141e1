"""A campaign's progress, seen while it runs: the phase, and chunks done out of the total.

A ``Tracker`` counts one campaign; its methods are safe from any thread (chunks are sent from
a thread pool). In a flow run the tracker owns one progress artifact: its bar, and a description
in the campaign's language ("Envoi : 340 lots sur 1 000 (depuis 12 s) — campagne X"). Counting a
chunk is a lock and an addition; the artifact is pushed by a small ticker thread, at most once a
``PUSH_EVERY`` and only when what it shows changed, so 2,000 chunks make no storm of API calls.
The text carries the phase's elapsed time, so the artifact moves every second or two even while
nothing else does (a settle wait, a long report), and the operator sees the run is alive.

This module holds the counts and their texts (``Tracker``, ``Snapshot``, ``Ticker``), without
Prefect: the artifact, the run's log lines, the registry of running campaigns and the command
line's Rich bar on stderr (``terminal_bar()``) are in ``tasks/steps/progress.py``.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

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
    return i18n.plural(lang, "progress.chunks", n)  # CLDR: fr says "0 lot", en "0 chunks"


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
