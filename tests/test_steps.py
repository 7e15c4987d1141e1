"""The Prefect ring (tasks/steps/): one task decorator, the same for every step — never cached,
its errors masked — and every task of the project under it with the name the run graph, the
README and bench/fanout.py know."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from prefect import Task
from prefect.cache_policies import NO_CACHE

import tasks.steps
from tasks.errors import SurveyError
from tasks.steps import MaskedError, masked_errors, step

# Every task name the project has today, by step module (the send run's and the follow-up's
# settle task share their name: the README and the bench call them so).
NAMES = {
    "tasks.steps.prepare": {
        "fetch-recipients",
        "load-recipients",
        "clean-numbers",
        "suppress",
        "check-credits",
        "plan-campaign",
    },
    "tasks.steps.send": {"send-chunks", "settle-in-doubt", "read-credits"},
    "tasks.steps.report": {"write-report", "refresh-report"},
    "tasks.steps.follow_up": {
        "settle-in-doubt",
        "check-delivery",
        "record-stops",
        "record-deliveries",
        "publish-delivery",
    },
    "tasks.steps.cancel": {"cancel-chunks", "report-cancel"},
    "tasks.steps.privacy": {"purge-personal-data", "erase-person"},
    "tasks.steps.inbox": {"look-at-inboxes", "take-file"},
    "tasks.steps.witnesses": {"read-witnesses", "text-witnesses"},
}


def step_tasks() -> dict[str, list[Task[Any, Any]]]:
    """The tasks each module of the ring defines (not those it imports)."""
    found: dict[str, list[Task[Any, Any]]] = {}
    for info in pkgutil.iter_modules(tasks.steps.__path__, "tasks.steps."):
        module = importlib.import_module(info.name)
        found[info.name] = [
            value
            for value in vars(module).values()
            if isinstance(value, Task) and value.fn.__module__ == info.name
        ]
    return found


def test_every_task_keeps_its_name_and_lives_in_the_ring() -> None:
    found = {m: {t.name for t in ts} for m, ts in step_tasks().items() if ts}
    assert found == NAMES


def test_every_task_is_uncached_and_masks_its_errors() -> None:
    for module, found in step_tasks().items():
        for each in found:
            assert each.cache_policy is NO_CACHE, (module, each.name)
            # masked_errors wraps the function the task runs (functools.wraps keeps the name)
            assert getattr(each.fn, "__wrapped__", None) is not None, (module, each.name)


def test_step_makes_a_named_uncached_task_whose_docstring_is_the_functions() -> None:
    @step("a-step")
    def add(a: int, b: int) -> int:
        """Adds."""
        return a + b

    assert isinstance(add, Task)
    assert (add.name, add.cache_policy, add.description) == ("a-step", NO_CACHE, "Adds.")
    assert add.fn(2, 3) == 5


@pytest.mark.parametrize(
    ("raised", "kind", "said"),
    [
        # a library's error quoting a number: the same error, the number masked
        (ValueError('invalid input "06 12 34 56 78"'), MaskedError, "06"),
        # no number in it: the error itself, untouched
        (ValueError("no such table"), ValueError, "no such table"),
        # the family masks when made and keeps campaign ids: left as it is
        (SurveyError("campaign x failed"), SurveyError, "campaign x failed"),
    ],
)
def test_masked_errors(raised: Exception, kind: type[Exception], said: str) -> None:
    @masked_errors
    def fails() -> None:
        raise raised

    with pytest.raises(kind) as caught:
        fails()
    assert said in str(caught.value)
    assert "12 34 56" not in str(caught.value)
    assert ("•" in str(caught.value)) is (kind is MaskedError)
