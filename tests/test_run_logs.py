"""The project's own warnings reach each run's logs, hence the Prefect UI: the ledger's (loggers
``survey.*``, e.g. an outage ridden through) and the gateway client's retries (``smspartner``).

Prefect sends a standard-library logger to the API only when it is named in
``PREFECT_LOGGING_EXTRA_LOGGERS`` when Prefect sets logging up, which it does on import. Here: a
command-line run, and the flows imported after Prefect (as in a worker's flow-run process). A
worker's run is in ``test_deployment_guards.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, SAMPLES, cli_env, flow_runs_mentioning, logs_of

EXTRA = "PREFECT_LOGGING_EXTRA_LOGGERS"

_WHICH_LOGGERS_GO_TO_THE_API = """
import json, logging, sys
if sys.argv[1] == "flows-first":  # the command line
    import flows.survey_campaign
    import prefect
elif sys.argv[1] == "prefect-first":  # settings read, logging not set up yet
    import prefect
    import flows.survey_campaign
else:  # logging set up before the flow is imported: a worker's flow-run process
    import prefect.main
    import flows.survey_campaign
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_LOGGING_EXTRA_LOGGERS

def to_api(name):
    logger = logging.getLogger(name)
    while logger is not None:
        if any(isinstance(h, APILogHandler) for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False

names = ["survey", "survey.ledger", "smspartner", "sqlalchemy", "urllib3"]
print(json.dumps({n: to_api(n) for n in names}))
"""


@pytest.mark.parametrize("order", ["flows-first", "prefect-first", "prefect-set-up-first"])
@pytest.mark.parametrize("listed", [None, "sqlalchemy"])
def test_the_ledger_and_the_gateway_client_log_to_the_run_whatever_imports_first(
    order: str, listed: str | None, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != EXTRA}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path))
    if listed is not None:  # the operator's own list is kept
        env[EXTRA] = listed
    done = subprocess.run(
        [sys.executable, "-c", _WHICH_LOGGERS_GO_TO_THE_API, order],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    to_api = json.loads(done.stdout.splitlines()[-1])
    assert to_api["survey"] and to_api["survey.ledger"] and to_api["smspartner"]
    assert to_api["urllib3"] is False  # nothing else is added
    assert to_api["sqlalchemy"] is (listed == "sqlalchemy")


def test_a_gateway_retry_is_in_a_command_line_runs_logs(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    # The gateway answers the balance read with a 503 twice: the client retries and warns.
    simulator.state.add_canned("me", {"error": "maintenance"}, status=503, times=2)
    full = {k: v for k, v in cli_env(**env).items() if k != EXTRA}  # the flows set it
    done = subprocess.run(
        [sys.executable, "-m", "flows.survey_campaign", "--survey-id", "s1",
         "--recipients", str(SAMPLES / "recipients.csv"), "--campaign-id", "retry-logs",
         "--dry-run"],
        cwd=campaign_env, env=full, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = flow_runs_mentioning("retry-logs")
    logs = logs_of(run.id)
    assert "GET me: ServerError, retry 1/" in logs and "GET me: ServerError, retry 2/" in logs
