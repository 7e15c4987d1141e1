"""What the flows' command lines share: the result for people then the JSON line
(``print_result``), one-line errors, and a quiet terminal."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from prefect.states import State
from pydantic import BaseModel

from tasks.errors import OperatorError
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.reporting.terminal import readable_lines


def quiet_console() -> None:
    """Keep the run's log lines off the terminal: they stay in the Prefect UI, and the command's
    stderr is the one line that says what went wrong."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(logging.CRITICAL + 1)


def one_line(text: object, default: str = "failed") -> str:
    """The first line of an error's text: the command line says what went wrong in one line."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else default


def print_result(summary: Mapping[str, Any], lang: Lang, kind: str) -> None:
    """A command's result on stdout: a few readable lines in the campaign's language (sent,
    cost, what to do next; ``tasks/reporting/terminal.py``), then the JSON line, always last
    and unchanged (programs read it). ``kind``: "send", "follow_up", "cancel"... (an unknown
    kind prints the JSON line only)."""
    try:
        lines = readable_lines(summary, lang, kind)
    except Exception:  # words for people must never cost the JSON line programs read
        lines = []
    if lines:
        print("\n".join(lines), flush=True)
    print(json.dumps(summary, ensure_ascii=False), flush=True)


def failure_exit(
    state: State[Any], default: str, *, lang: Lang = DEFAULT_LANG, kind: str = "send"
) -> int:
    """The end of a command whose run did not complete: the JSON summary the run kept, when
    there is one, as the last line on stdout (after its readable lines, ``print_result``); one
    ``error:`` line on stderr; the exit code of the error (tasks/errors.py: 1 an error, 2 a
    usage error, 3 a campaign left incomplete)."""
    error: object = None
    if state.is_failed() or state.is_cancelled() or state.is_crashed():
        try:
            error = state.result(raise_on_failure=False)
        except Exception:  # no result kept: the state's message says it
            error = None
    if isinstance(error, OperatorError):
        if error.summary is not None:
            print_result(error.summary, lang, kind)
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    if isinstance(error, dict):  # a flow that still ends with its summary as the state's data
        print_result(error, lang, kind)
    print(f"error: {one_line(state.message or default, default)}", file=sys.stderr)
    return 1


def _scalar(annotation: Any) -> Any:
    """int / float / str of a field's annotation (``float | None`` -> float)."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else str
    return annotation


def add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One ``--field-name`` option per field of ``model``, with its type, default and words:
    the command line and the UI's form come from one source."""
    for name, info in model.model_fields.items():
        kind = _scalar(info.annotation)
        words = ": ".join(w for w in (info.title, info.description) if w)
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None else f" (par défaut : {default})"
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind if kind in (int, float, str) else str,
            default=default,
            help=((words or name) + shown).replace("%", "%%"),  # argparse formats help with %
        )


def model_from_args(model: type[BaseModel], args: argparse.Namespace) -> Any:
    """The model from the options ``add_model_options`` made (pydantic validates the values)."""
    return model(**{name: getattr(args, name) for name in model.model_fields})
