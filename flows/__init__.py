"""Prefect flows: the project's entry points, wiring only (what they wire lives in ``tasks/``).

Purpose and scope
    One ``@flow`` and its command line (``main()``) per module: ``survey_campaign`` (send a
    survey), ``follow_up`` (delivery statuses, STOP replies), ``cancel_campaign``,
    ``erase_person`` (erasure on request) and ``purge_personal_data`` (retention).
    ``never_text`` is a command line without a flow run (the never-text store, in-process).
    It does NOT hold a rule, a task or a store: those are ``tasks/``.

Shared modules
    ``parameters``  the form models and fields (the UI's Run form), each turning itself into
                    the plain values the rules take.
    ``cli``         options derived from the models, one-line errors, exit codes.
    ``ending``      how a run stops: an ``OperatorError`` becomes one line and the right state.

Entry points
    ``python -m flows.<module>``; deployments name ``flows/<module>.py:<flow>``.

What a flow may import
    ``tasks.steps`` (every task), ``flows.parameters``, ``flows.ending``, ``flows.cli``,
    ``tasks.runtime`` (the environment), the error family and the rules' value types and
    checks (a campaign id, a phase). A flow calls steps and passes their values on; it makes
    no decision of its own and never reads a file or a database itself (a rule, an I/O module:
    through a step). Nothing in ``tasks/`` or ``smspartner/`` imports ``flows``.

Parked in the wrong room (for now)
    ``follow_up`` combines its steps' results with ``tasks.delivery`` in the flow (a step of
    its own would change the run's tasks); ``never_text`` writes its audit CSV itself (it
    belongs beside the store, in ``tasks/nevertext.py``).

Importing the package sets Prefect up for the project (below): no telemetry, the project's
loggers in each run's logs, no traceback for an expected failure.
"""

import logging
import os
import sys

# Set before Prefect reads its settings: no usage telemetry from a tool that handles customer data.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A temporary local server (no PREFECT_API_URL) can take more than the default 20 s to start on a
# small, busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The gateway client and the ledger also work outside flow runs (the never_text command, a test):
# their records then stay on the console, without Prefect's warning that no run can take them.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

# The ledger and the send executor ("survey.*") and the gateway client's retries ("smspartner")
# log through the standard library: into each run's logs too (the Prefect UI). Prefect attaches
# its API handler to the loggers of this setting when it sets logging up, on import.
EXTRA_LOGGERS_ENV = "PREFECT_LOGGING_EXTRA_LOGGERS"
EXTRA_LOGGERS = ("survey", "smspartner")


def _listed(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _ensure_extra_loggers() -> None:
    """Add this project's loggers to ``PREFECT_LOGGING_EXTRA_LOGGERS`` (keeping any the
    environment names), for Prefect to read when it loads its settings (the command line,
    ``python -m flows.x``, imports this package first). Where Prefect loaded them before (a
    worker's flow-run process imports Prefect, then the flow; deployments/prefect.yaml sets the
    variable in the job's environment for that case), do what Prefect's logging setup does for
    an extra logger, once that setup has run: give it the handlers of ``prefect.extra``, which
    send records to the run's logs."""
    names = list(dict.fromkeys([*_listed(os.environ.get(EXTRA_LOGGERS_ENV, "")), *EXTRA_LOGGERS]))
    os.environ[EXTRA_LOGGERS_ENV] = ",".join(names)
    if "prefect.context" not in sys.modules:
        return  # Prefect has not read its settings yet: it will read the variable
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.settings import PREFECT_LOGGING_EXTRA_LOGGERS

    if set(EXTRA_LOGGERS) <= set(PREFECT_LOGGING_EXTRA_LOGGERS.value()):
        return  # its logging setup, done or to come, covers them
    ensure_logging_setup()  # Prefect's own, when not done yet; later calls keep the handlers
    handlers = logging.getLogger("prefect.extra").handlers
    for name in EXTRA_LOGGERS:
        logger = logging.getLogger(name)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)


_ensure_extra_loggers()


# -- no traceback for an expected outcome ------------------------------------------------------

# Prefect's loggers whose records carry the tracebacks of a run's end: a task that raised
# ("Task run failed with exception ..."), the engine re-raising a failed run's exception at the
# end of a worker's run ("Engine execution exited with unexpected exception"), its entry point.
_ENGINE_LOGGERS = (
    "prefect.flow_runs",
    "prefect.task_runs",
    "prefect.engine",
    "prefect.flow_engine",
)
_RERAISED = ("exited with unexpected exception",)


def _expected(exc: BaseException | None) -> bool:
    """A failure of the family (tasks/errors.py), or a run a flow ended itself with a Failed or
    Cancelled state (Prefect's wrapper of its message): an outcome, not a bug."""
    from prefect.exceptions import CancelledRun, FailedRun

    from tasks.errors import OperatorError

    return isinstance(exc, (OperatorError, FailedRun, CancelledRun))


class QuietExpected(logging.Filter):
    """Drops the engine's re-raise of an expected failure (the run's state and its one line,
    logged by ``flows.ending``, already say it) and strips the traceback from a task's failure
    record, which keeps the error's one line. Anything else (a bug) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _expected(exc):
            return True
        if any(words in record.getMessage() for words in _RERAISED):
            return False
        from tasks.errors import OperatorError

        if isinstance(exc, OperatorError):
            record.msg, record.args = exc.message, ()
        record.exc_info, record.exc_text = None, None
        return True


def _quiet_expected_failures() -> None:
    """A logger's filters see the records made on it, whichever handler (the run's logs in the
    UI, the terminal) they then go to; set on the logger, they outlive Prefect's logging setup,
    done before or after this import (a worker's flow-run process imports Prefect first)."""
    for name in _ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietExpected) for f in logger.filters):
            logger.addFilter(QuietExpected())


_quiet_expected_failures()
