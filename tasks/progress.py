"""A campaign's progress, seen while it runs: the phase, and chunks done out of the total.

STUB (the agreed interface; helper PROGRESS implements it). One tracker per campaign id in this
process; every function is safe from any thread and a no-op when nothing was begun.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from tasks.i18n import Lang


class Phase(StrEnum):
    preparing = "preparing"
    sending = "sending"
    settling = "settling"
    reporting = "reporting"


def begin(campaign_id: str, lang: Lang) -> None:
    """The flow, at its start: the run's progress artifact appears."""


def phase(campaign_id: str, step: Phase, total: int = 0) -> None:
    """The flow, at each phase's start: ``total`` chunks (or items) to go through in it."""


def advance(campaign_id: str, done: int = 1) -> None:
    """A task, after each chunk: ``done`` more of the phase's total."""


def end(campaign_id: str) -> None:
    """The flow, at its end (whatever the outcome)."""


@contextmanager
def terminal_bar() -> Iterator[None]:
    """The command line, around the flow call: a progress bar on stderr when it is a terminal."""
    yield
