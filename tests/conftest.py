"""Shared fixtures: one Prefect test harness for the session, a gateway simulator per test.

Every test that runs a campaign works in its own temporary folder (reports, state, ledger) and
talks over HTTP to a simulator on 127.0.0.1, never to the real gateway.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    OPEN_ALL_DAY,
    TEST_KEY,
    copy_working_tree,
    fresh_database,
    new_context,
    require_chromium,
)

from scripts.server import LocalStack

# Prefect reads these when it is first imported: keep its home and database out of ~/.prefect.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# Clients and ledgers used outside flow runs (most unit tests) log to the console only.
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("SMSPARTNER_API_KEY", None)


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
def open_all_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default window opened at every hour for in-process runs (see helpers.OPEN_ALL_DAY;
    command-line runs take ``start_cli(..., all_day=True)``)."""
    from flows import parameters

    monkeypatch.setitem(parameters.PRESETS, parameters.WindowPreset.strict, dict(OPEN_ALL_DAY))


@pytest.fixture
def env(campaign_env: Path, simulator: object) -> dict[str, str]:
    """The same environment for a command-line subprocess (see ``cli_env``)."""
    return {
        "SMSPARTNER_API_KEY": TEST_KEY,
        "SMSPARTNER_BASE_URL": simulator.url,  # type: ignore[attr-defined]
        "SURVEY_LEDGER_URL": f"sqlite:///{campaign_env}/ledger.sqlite",
    }


# -- a ledger on each database it runs on ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger database on each engine the ledger runs on (MariaDB: no UPDATE ...
    RETURNING, no ON CONFLICT, so its own code paths)."""
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Any]:
    """A ledger opened as the flows open it (tasks.runtime), on each of the three databases."""
    from tasks import runtime

    led = runtime.open_ledger(ledger_url)
    yield led
    led.close()


# -- one Prefect stack for the browser tests -------------------------------------------------------


@pytest.fixture(scope="session")
def ui_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree the browser tests' worker runs the flows from."""
    return copy_working_tree(tmp_path_factory.mktemp("clone-ui"))


@pytest.fixture(scope="session")
def ui_stack(ui_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Prefect server, process worker and gateway simulator for every browser test module
    (tests/test_ui*.py): starting one costs more than most of their tests. Each module leaves the
    simulator as it found it (its faults and credits); their numbers come from ranges of their
    own (helpers.stack_mobiles), so the shared ledger's frequency cap never links them."""
    from scripts.server import StackConfig

    require_chromium()
    home = tmp_path_factory.mktemp("prefect-home-ui")
    # The workers import this list at every run: it must exist and hold a number at least.
    suppression = home / "suppression.csv"
    suppression.write_text("phone\n+33699999901\n", encoding="utf-8")
    config = StackConfig(root=ui_clone, home=home, logs=home / "logs", suppression_list=suppression)
    with LocalStack(config) as running:
        yield running


# -- the browser test files (tests/test_ui_*.py) ---------------------------------------------------
# A module that starts a stack of its own (test_deployments.py...) defines its own clone and stack.


@pytest.fixture(scope="module")
def clone(ui_clone: Path) -> Path:
    return ui_clone  # one stack for every browser module (tests/conftest.py)


@pytest.fixture(scope="module")
def stack(ui_stack: LocalStack) -> LocalStack:
    return ui_stack


@pytest.fixture(scope="module")
def browser(stack: LocalStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh page; on a failed test, a screenshot of it in the test's tmp folder."""
    context = new_context(browser)
    failed_before = request.session.testsfailed
    opened = context.new_page()
    try:
        yield opened
    finally:
        if request.session.testsfailed > failed_before:  # this test's call just failed
            shot = tmp_path / "failure.png"
            opened.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failed page: {shot}")
        context.close()
