"""The Prefect ring: every ``@task``, artifact, pause, event and run name of the project.

Purpose and scope
    Each module is one step of a flow, as Prefect runs it: ``prepare`` (load, clean, suppress,
    check credits, plan), ``send`` (the fan-out of chunks, the settle wait, the credits after),
    ``approval`` (the paused run and its form), ``report`` (files and artifacts of a campaign),
    ``follow_up`` (delivery statuses, STOP replies), ``cancel`` (calling a campaign off),
    ``privacy`` (retention purge, erasure), ``progress`` (the progress artifact and the
    terminal bar), ``runs`` (run names, tags, the cancel link), ``alerts`` (the incomplete
    campaign's event, the automations command). A step calls rules (pure modules of ``tasks/``:
    ``approval``, ``cancellation``, ``delivery``, ``sendcore``...) and I/O modules (files,
    databases, the gateway: ``privacy``, ``cancel_io``, ``delivery_io``, ``ledger``...).
    It does NOT hold the rules themselves: a decision worth a table test belongs in a rules
    module, where it runs without Prefect.

Who may import it
    ``flows/`` (which only wire steps) and the steps themselves. Nothing else under ``tasks/``
    imports this package: outside ``tasks/steps/`` only ``tasks/runtime.py`` imports Prefect
    (``tests/test_layers.py`` checks it).

Entry points
    ``step(name)``: the one task decorator (below). ``masked_errors``: what it wraps every
    task in. ``python -m tasks.alerts`` (the automations command) runs ``steps.alerts.main``.

Pitfalls
    A task's ``name=`` is what the run graph, the logs, ``bench/fanout.py`` and the README
    show: keep it when moving a task. Two tasks share the name ``settle-in-doubt`` (the send
    run's and the follow-up's, in different flows); the README and the bench name them so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from tasks.errors import OperatorError
from tasks.numbers.masking import mask_phone_numbers

_P = ParamSpec("_P")
_R = TypeVar("_R")


class MaskedError(RuntimeError):
    """An unexpected error whose text quoted a phone number: the same error, number masked."""


def masked_errors(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Mask phone numbers in the text of any exception leaving a task: Prefect writes it to the
    run's state message, logs and events, which the UI shows and its database keeps (a database
    error quotes the value it choked on: ``invalid input syntax ... "06 12 34 56 78"``)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except OperatorError:
            raise  # masked when made, campaign ids kept (tasks/errors.py)
        except Exception as exc:
            said = f"{type(exc).__name__}: {exc}"
            masked = mask_phone_numbers(said)
            if masked == said:
                raise
            raise MaskedError(masked).with_traceback(exc.__traceback__) from None

    return wrapper


def step(
    name: str, *, task_run_name: Callable[[], str] | None = None
) -> Callable[[Callable[_P, _R]], Task[_P, _R]]:
    """The task decorator of every step: Prefect's ``@task`` named ``name``, never cached (a
    step's inputs are files, ledgers and gateways that change under the same arguments), its
    errors masked (``masked_errors``)."""

    def decorate(fn: Callable[_P, _R]) -> Task[_P, _R]:
        return task(name=name, task_run_name=task_run_name, cache_policy=NO_CACHE)(
            masked_errors(fn)
        )

    return decorate


__all__ = ["MaskedError", "masked_errors", "step"]
