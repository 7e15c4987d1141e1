"""Shared fixtures: one Prefect test harness for the session, a gateway simulator per test.

Every test that runs a campaign works in its own temporary folder (reports, state, ledger) and
talks over HTTP to a simulator on 127.0.0.1, never to the real gateway.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Prefect reads these when it is first imported: keep its home and database out of ~/.prefect.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# Clients and ledgers used outside flow runs (most unit tests) log to the console only.
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("SMSPARTNER_API_KEY", None)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
TEST_KEY = "sim-key-9f3c2a7d41"
IN_CI = os.environ.get("CI", "").lower() == "true"


def server_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def need_server(host: str, port: int, what: str) -> None:
    """Skip when a database server is absent, except in CI where it must be there."""
    if server_answers(host, port):
        return
    if IN_CI:
        pytest.fail(f"{what} at {host}:{port} does not answer, and CI=true requires it")
    pytest.skip(f"{what} at {host}:{port} does not answer")


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a command-line subprocess: the repository on its path and the test
    harness's Prefect server (no second server to start per process)."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    return env


def start_cli(module: str, cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start ``python -m module args`` as a user would, against the harness's Prefect server."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a test may kill the whole process group
    )


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def simulator() -> Iterator[object]:
    from smspartner.simulator import SimulatorServer, SimulatorState

    state = SimulatorState(api_keys={TEST_KEY}, credits=1000.0)
    with SimulatorServer(state) as server:
        yield server


@pytest.fixture
def campaign_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator: object, prefect_harness: None
) -> Path:
    """A working folder and the environment a campaign needs, pointed at the simulator."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMSPARTNER_API_KEY", TEST_KEY)
    monkeypatch.setenv("SMSPARTNER_BASE_URL", simulator.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("SURVEY_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")
    monkeypatch.delenv("SURVEY_SUPPRESSION_LIST", raising=False)
    return tmp_path


@pytest.fixture
def env(campaign_env: Path, simulator: object) -> dict[str, str]:
    """The same environment for a command-line subprocess (see ``cli_env``)."""
    return {
        "SMSPARTNER_API_KEY": TEST_KEY,
        "SMSPARTNER_BASE_URL": simulator.url,  # type: ignore[attr-defined]
        "SURVEY_LEDGER_URL": f"sqlite:///{campaign_env}/ledger.sqlite",
    }


def summary_of(state: Any) -> dict[str, Any]:
    """A send run's JSON summary however it ended: a Completed run's result, else the summary
    its error carries (an incomplete campaign, a money stop, an approval stop)."""
    if state.is_completed():
        return dict(state.result())
    error = state.result(raise_on_failure=False)
    summary = getattr(error, "summary", None)
    assert summary is not None, f"{state.name}: {state.message}"
    return dict(summary)


# -- one Prefect stack for the browser tests -------------------------------------------------------


@pytest.fixture(scope="session")
def ui_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree the browser tests' worker runs the flows from."""
    from test_deployments import copy_working_tree

    return copy_working_tree(tmp_path_factory.mktemp("clone-ui"))


@pytest.fixture(scope="session")
def ui_stack(ui_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Prefect server, process worker and gateway simulator for every browser test module
    (tests/test_ui*.py): starting one costs more than most of their tests. Each module leaves the
    simulator as it found it (its faults and credits); their numbers come from ranges of their
    own (test_deployments.mobiles), so the shared ledger's frequency cap never links them."""
    from test_ui import require_chromium

    from scripts.server import LocalStack, StackConfig

    require_chromium()
    home = tmp_path_factory.mktemp("prefect-home-ui")
    # The workers import this list at every run: it must exist and hold a number at least.
    suppression = home / "suppression.csv"
    suppression.write_text("phone\n+33699999901\n", encoding="utf-8")
    config = StackConfig(root=ui_clone, home=home, logs=home / "logs", suppression_list=suppression)
    with LocalStack(config) as running:
        yield running
