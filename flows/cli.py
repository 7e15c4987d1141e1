"""What the flows' command lines share: one-line errors, and a quiet terminal."""

from __future__ import annotations

import logging


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
