"""The one error tree (tasks/errors.py): every expected failure carries one masked Problem."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

import tasks
from tasks import errors
from tasks.errors import (
    CampaignIncomplete,
    OperatorError,
    Problem,
    SurveyError,
    UsageError,
    gateway_problem,
)


def _family() -> set[type[OperatorError]]:
    """Every subclass of OperatorError defined anywhere in tasks/."""
    for module in pkgutil.walk_packages(tasks.__path__, "tasks."):
        importlib.import_module(module.name)
    found, todo = set(), [OperatorError]
    while todo:
        for kind in todo.pop().__subclasses__():
            if kind.__module__.startswith("tasks.") and kind not in found:
                found.add(kind)
                todo.append(kind)
    return found


def test_the_docstring_draws_every_member_of_the_family() -> None:
    doc = errors.__doc__ or ""
    missing = sorted(k.__name__ for k in _family() if f"── {k.__name__}" not in doc)
    assert not missing, f"add them to the tree in tasks/errors.py: {missing}"


def test_the_older_name_is_the_same_class() -> None:
    assert SurveyError is OperatorError


def test_a_problem_is_made_only_through_the_masking_path() -> None:
    with pytest.raises(TypeError, match="Problem.of"):
        Problem("call 06 12 34 56 78")
    problem = Problem.of("call 06 12 34 56 78\nsecond line", exit_code=2)
    assert problem == Problem.of("call 06••••••78", exit_code=2)
    assert problem.line == "call 06••••••78" and problem.exit_code == 2
    with pytest.raises(FrozenInstanceError):
        problem.line = "06 12 34 56 78"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "message", "personal", "line", "exit_code"),
    [
        (OperatorError, "refused 06 12 34 56 78", True, "refused 06••••••78", 1),
        (UsageError, "  \n bad --phone +33612345678\nmore", True, "bad --phone +336••••••78", 2),
        (CampaignIncomplete, "1 234 567 rows not sent", False, "1 234 567 rows not sent", 3),
        (CampaignIncomplete, "1 234 567 rows not sent", True, "12•••67 rows not sent", 3),
        (OperatorError, "", True, "OperatorError", 1),  # no text: the kind's name
    ],
)
def test_an_error_carries_its_problem(
    kind: type[OperatorError], message: str, personal: bool, line: str, exit_code: int
) -> None:
    error = kind(message, summary={"sent": 1}, personal=personal)
    assert str(error) == error.message == error.problem.line == line
    assert error.exit_code == error.problem.exit_code == exit_code
    assert error.summary == error.problem.summary == {"sent": 1}


def test_the_summary_known_at_the_end_joins_the_problem() -> None:
    error = CampaignIncomplete("3 rows failed", personal=False)
    assert error.summary is None
    error.summary = {"failed": 3}
    assert error.problem.summary == {"failed": 3} and error.problem.line == "3 rows failed"


def test_an_error_crosses_processes_whole() -> None:
    error = CampaignIncomplete("call 06 12 34 56 78", summary={"failed": 1})
    back: Any = pickle.loads(pickle.dumps(error))
    assert type(back) is CampaignIncomplete
    assert back.message == "call 06••••••78" and back.summary == {"failed": 1}
    assert back.problem == error.problem and back.exit_code == 3
    # A pickle written before the Problem existed names the same rebuild function.
    old: Any = errors._rebuild(UsageError, "1 234 567 rows", None)
    assert old.problem.line == "1 234 567 rows" and old.problem.exit_code == 2


def test_gateway_problems_never_show_credentials() -> None:
    from smspartner.errors import AuthError, Rejected, TransportError

    url = "https://user:secret@gw.example:8443/v1?key=k"
    refused = gateway_problem(TransportError("refused", may_have_landed=False), url)
    assert refused == "gateway unreachable at https://gw.example:8443/v1: refused"
    assert gateway_problem(AuthError("no", code=10), url) == (
        "the gateway refused the API key (code 10)"
    )
    assert gateway_problem(Rejected("bad 0612345678"), url) == "gateway error: bad 06••••••78"
