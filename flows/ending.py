"""How a flow run ends when it cannot go on: one line, no traceback, the right state.

A ``SurveyError`` (tasks/errors.py) becomes a Failed (or Cancelled) state whose message is its
line and whose data is the error itself: Prefect's engine re-raises a failed run's data at the
end of the run, and re-raising an exception of the family is quiet (see ``flows/__init__.py``).
The command line reads the summary and the exit code back from the error.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.states import Cancelled, Failed, State

from tasks.errors import SurveyError


def failed(error: SurveyError, *, name: str | None = None) -> State[Any]:
    """The Failed state of a run ended by ``error`` (its line logged once, as an error)."""
    get_run_logger().error(error.message)
    if name:
        return Failed(message=error.message, data=error, name=name)
    return Failed(message=error.message, data=error)


def cancelled(error: SurveyError, name: str) -> State[Any]:
    """The Cancelled state of a run a person (or a timeout) stopped before any send."""
    get_run_logger().warning(error.message)
    return Cancelled(message=error.message, name=name, data=error)
