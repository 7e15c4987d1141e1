"""Plain helpers shared by the test files: paths, the test key, command-line runs, waits.

Fixtures live in conftest.py; this module holds what a test imports by name, so that no test
file imports another (``from helpers import ...``, tests/ is on the import path). It never
imports Prefect at import time (conftest.py sets Prefect's environment first, and imports this
module): flows/ and tasks/steps/ are imported inside the helpers that need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pandas as pd
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from sqlalchemy.pool import NullPool

from scripts.server import LocalStack
from smspartner.client import Credits
from tasks import ledger as lg
from tasks import plan as pl
from tasks.ledger import chunk_tag
from tasks.outcomes import ChunkState
from tasks.plan import PlanRequest
from tasks.recipients import RecipientsError, load_recipients

if TYPE_CHECKING:
    from tasks.steps.prepare import Cleaned

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


# The default window opened day and night, every day (closed only for the last minute before
# midnight: a window's end is exclusive). Exactly-once tests under faults settle their in-doubt
# chunks only when those were sent at once (a chunk scheduled for the next morning is settled
# after its slot, long after the test), and CI runs at any hour; the window rules themselves are
# tested in test_slots.py.
OPEN_ALL_DAY: dict[str, Any] = {
    "start": dtime(0, 0),
    "end": dtime(23, 59),
    "weekdays": frozenset(range(7)),
    "holidays": False,
}

# ``python -c`` body: open the window as above, then run the module as ``python -m`` would.
_ALL_DAY_LAUNCH = f"""
import datetime, runpy, sys
from flows import parameters
parameters.PRESETS[parameters.WindowPreset.strict] = {OPEN_ALL_DAY!r}
module = sys.argv.pop(1)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def start_cli(
    module: str, cwd: Path, *args: str, all_day: bool = False, **env: str
) -> subprocess.Popen[str]:
    """Start ``python -m module args`` as a user would, against the harness's Prefect server;
    with ``all_day``, under a window open at every hour (see ``OPEN_ALL_DAY``)."""
    launch = ["-c", _ALL_DAY_LAUNCH, module] if all_day else ["-m", module]
    return subprocess.Popen(
        [sys.executable, *launch, *args],
        cwd=cwd,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a test may kill the whole process group
    )


def summary_of(state: Any) -> dict[str, Any]:
    """A send run's JSON summary however it ended: a Completed run's result, else the summary
    its error carries (an incomplete campaign, a money stop, an approval stop)."""
    if state.is_completed():
        return dict(state.result())
    error = state.result(raise_on_failure=False)
    summary = getattr(error, "summary", None)
    assert summary is not None, f"{state.name}: {state.message}"
    return dict(summary)


# -- numbers and files of the fault tests ----------------------------------------------------------


def fault_mobiles(n: int, start: int = 0) -> list[str]:
    return [f"+3367{i:07d}" for i in range(start, start + n)]


def csv_of(path: Path, numbers: list[str], extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    rows = [*numbers, *extra]
    path.write_text("phone\n" + "\n".join(rows) + "\n")
    return path


# -- a send flow run in this process ---------------------------------------------------------------


HEADER = "id;name;mobile\n"


def write_csv(path: Path, numbers: list[str]) -> Path:
    lines = [f"{i};Client {i};{n}" for i, n in enumerate(numbers, start=1)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_flow(path: Path, **kwargs: Any) -> dict[str, Any]:
    from flows.survey_campaign import RecipientSource, send_survey_campaign

    kwargs.setdefault("survey_id", "satisfaction-q4")
    state = send_survey_campaign(
        recipients=RecipientSource(path=str(path)), return_state=True, **kwargs
    )
    assert state.is_completed(), state.message
    return state.result()


def identity(summary: dict[str, Any]) -> None:
    assert summary["loaded"] == summary["sent"] + summary["failed"] + sum(
        summary["rejected"].values()
    )


def texted(simulator: Any) -> Counter[str]:
    return Counter(simulator.state.accepted_numbers())


def mobiles(n: int, start: int = 0) -> list[str]:
    return [f"+3361{(start + i):07d}" for i in range(n)]


# -- the command line ------------------------------------------------------------------------------


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = cli_env(**env)
    return subprocess.run(
        [sys.executable, "-m", "flows.survey_campaign", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    for word in words:
        assert word in errors[0]


# -- what the Prefect server recorded --------------------------------------------------------------


def flow_runs_mentioning(text: str) -> list[Any]:
    """Every flow run of the harness's server whose parameters, name or state message hold text."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
    return [
        r
        for r in runs
        if text in json.dumps(r.parameters, default=str)
        or text in (r.name or "")
        or text in str(r.state.message if r.state else "")
    ]


def logs_of(run_id: UUID) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return "\n".join(log.message for log in logs)


# -- a ledger chunk for the cancellation rules -----------------------------------------------------


CANCEL_NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def chunk_row(
    index: int = 0, numbers: tuple[str, ...] = (), state: str = ChunkState.pending, **more: Any
) -> lg.ChunkRow:
    """A ledger chunk of campaign ``c1`` as the store reads it back: planned, never sent, unless
    ``more`` says otherwise (any field of ``ChunkRow``)."""
    fields: dict[str, Any] = {
        "campaign_id": "c1",
        "chunk_index": index,
        "tag": f"c1-{index}",
        "territory": "FR",
        "slot": None,
        "numbers": numbers,
        "refused": {},
        "state": state,
        "reason": None,
        "detail": None,
        "owner": None,
        "message_id": None,
        "nb_sms": None,
        "cost": None,
        "currency": None,
        "attempts": 0,
    }
    return lg.ChunkRow(**{**fields, **more})


def cancel_chunk(
    state: str = ChunkState.sent,
    slot: datetime | None = CANCEL_NOW + timedelta(hours=1),
    message_id: int | None = 42,
    numbers: tuple[str, ...] = ("+33612345678",),
) -> lg.ChunkRow:
    return chunk_row(
        0,
        numbers,
        state,
        campaign_id="c",
        tag="t",
        slot=slot.isoformat() if slot else None,
        message_id=message_id,
        nb_sms=1,
        cost=0.045,
        currency="EUR",
        attempts=1,
    )


# -- planning inputs -------------------------------------------------------------------------------


PLAN_NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Paris: the window is open


def cleaned_rows(numbers: list[str]) -> Cleaned:
    from tasks.steps.prepare import Cleaned

    frame = pd.DataFrame({"phone": numbers})
    rows = pl.clean_rows(frame, "phone", allow_foreign=False)
    return Cleaned(rows, pl.input_fingerprint(frame), ["phone"])


def plan_request(**changes: object) -> PlanRequest:
    from flows.parameters import DeliveryWindow, Limits

    limits = Limits(chunk_size=2)
    request = limits.plan_request(
        campaign_id="c1",
        survey_id="s1",
        ledger_url="unused",
        window=DeliveryWindow(),
        dry_run=False,
        resume_changed_input=False,
    )
    return replace(request, **changes)  # type: ignore[arg-type]


PLAN_CREDITS = Credits(balance=50.0, currency="EUR", credit_sms=None, to_send=None, raw={})


# -- databases -------------------------------------------------------------------------------------

PG_ADMIN = "host=127.0.0.1 user=postgres dbname=test"


def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on ``kind`` (sqlite, postgresql, mariadb), dropped after
    the generator is resumed. A server that is absent skips the test (fails it on CI)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.sqlite"
        return
    name = f"test_{uuid.uuid4().hex[:10]}"
    if kind == "postgresql":
        need_server("127.0.0.1", 5432, "PostgreSQL")
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return
    need_server("127.0.0.1", 3306, "MariaDB")
    import pymysql

    admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    try:
        with admin.cursor() as c:
            c.execute(f"CREATE DATABASE `{name}`")
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        with admin.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


# -- recipient sources and database servers --------------------------------------------------------


PG_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
MARIADB_URLS = ("mysql://root@127.0.0.1:3306/test",)


def write_input(tmp_path: Path, name: str, content: bytes | str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def recipients_error_of(**kwargs: object) -> str:
    with pytest.raises(RecipientsError) as info:
        load_recipients(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, "an operator message is one line"
    assert "Traceback" not in message
    return message


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://").replace(
        "mysql://", "mysql+pymysql://"
    )


def require_server(name: str, urls: tuple[str, ...]) -> str:
    """The first of urls whose server answers. Otherwise skip, or fail when CI is "true":
    on CI the database services are part of the job, and a skip would hide their absence."""
    problems = []
    for url in urls:
        engine = sa.create_engine(
            sqlalchemy_url(url), poolclass=NullPool, connect_args={"connect_timeout": 3}
        )
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return url
        except sa.exc.SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", exc)).strip().splitlines()
            problems.append(first[0] if first else type(exc).__name__)
        finally:
            engine.dispose()
    reason = f"{name} not reachable ({'; '.join(problems)})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            raw = connection.execution_options(no_parameters=True)
            for statement in statements:
                raw.exec_driver_sql(statement)
    finally:
        engine.dispose()


def scalar(url: str, statement: str) -> object:
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(statement).scalar()
    finally:
        engine.dispose()


# -- deployments on a local stack (scripts.server.LocalStack) --------------------------------------


SEND = "send-survey-campaign/weekly-survey"
SEND_NAME = "weekly-survey"


PG = "postgresql://postgres@127.0.0.1:5432"


def copy_working_tree(dest: Path) -> Path:
    """What a fresh clone holds: tracked and new files, not ignored ones (no .venv, no state)."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=REPO,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked archive)
        skip = shutil.ignore_patterns(
            ".git",
            ".venv",
            "__pycache__",
            "*.egg-info",
            ".*_cache",
            ".hypothesis",
            "reports",
            "state",
        )
        shutil.copytree(REPO, dest, ignore=skip, dirs_exist_ok=True)
        return dest
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a deleted file is still listed until the deletion is committed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def stack_mobiles(first: int, n: int) -> list[str]:
    """n French mobiles in E.164, from a range no other test uses."""
    return [f"+336{first + i:08d}" for i in range(n)]


def write_recipients(root: Path, name: str, numbers: list[str]) -> str:
    """A CSV in the clone, in the national format people type; its path relative to the root."""
    path = root / "data" / "e2e" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{i};Client {i};0{n[3:]}" for i, n in enumerate(numbers, start=1)]
    path.write_text("id;name;mobile\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return str(path.relative_to(root))


def campaign_numbers(stack: LocalStack, campaign_id: str) -> Counter[str]:
    """How many times the simulator accepted each number for this campaign (by chunk tag)."""
    prefix = chunk_tag(campaign_id, 0).split("-")[0]
    sends = stack.simulator_state()["sends"]
    return Counter(
        n for s in sends if (s["tag"] or "").startswith(prefix + "-") for n in s["numbers"]
    )


def run_deployment(
    stack: LocalStack, name: str, params: dict[str, Any] | None = None, timeout: int = 240
) -> tuple[subprocess.CompletedProcess[str], str]:
    """`prefect deployment run NAME --watch`; the completed command and the flow run's id."""
    args = [
        "deployment",
        "run",
        name,
        "--watch",
        "--watch-interval",
        "1",
        "--watch-timeout",
        str(timeout),
    ]
    if params:
        args += ["--params", json.dumps(params)]
    done = stack.prefect(*args, timeout=timeout + 60, check=False)
    found = re.search(r"UUID:\s*([0-9a-f-]{36})", done.stdout)
    assert found, f"no flow run id in:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done, found.group(1)


def explain(stack: LocalStack, done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {done.returncode}\n{done.stdout[-2500:]}\n{done.stderr[-1500:]}\n"
        f"--- worker log ---\n{stack.log_tail(stack.config.workers[0], 60)}"
    )


def artifacts(stack: LocalStack, flow_run_id: str) -> list[dict[str, Any]]:
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "CREATED_DESC"}
    found: list[dict[str, Any]] = stack.api("POST", "/artifacts/filter", body)
    return found[::-1]


def deployment(stack: LocalStack, name: str) -> dict[str, Any]:
    found = stack.api("POST", "/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    assert len(found) == 1, found
    result: dict[str, Any] = found[0]
    return result


def wait_for_final_state(stack: LocalStack, flow_run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = stack.api("GET", f"/flow_runs/{flow_run_id}")
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return str(run["state_type"])
        time.sleep(1)
    raise AssertionError(
        f"flow run {flow_run_id} not finished after {timeout} s:\n"
        f"{stack.log_tail(stack.config.workers[0], 60)}"
    )


def fresh_pg_databases(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh database for the Prefect server and one for the ledger; dropped afterwards."""
    need_server("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    names = (f"{prefix}_prefect_{secrets.token_hex(4)}", f"{prefix}_ledger_{secrets.token_hex(4)}")
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield names
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the browser -----------------------------------------------------------------------------------


CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


TIMEOUT_MS = 60_000


def require_chromium() -> None:
    """Skip without the browser, except in CI, where its absence is a failure."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing, and CI=true requires it (.ci/run installs it)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


def new_context(browser: Any) -> Any:
    """A browser context whose waits are bounded and whose requests never leave 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/])"), lambda r: r.abort())
    return context


def field(page: Any, label: str) -> Any:
    """The form's property whose label starts with ``label`` (the innermost, for nested models)."""
    header = page.locator(
        ".schema-form-property__label", has_text=re.compile("^" + re.escape(label))
    )
    return page.locator(".schema-form-property").filter(has=header).last


# -- what an operator does in the Prefect UI -------------------------------------------------------


RUN_TIMEOUT_MS = 120_000  # a flow run from submitted to its end


FINAL = re.compile(r"Completed|Failed|Crashed|Cancelled|Refused|NotApproved|Refusée|Expirée")


def open_custom_run(page: Any, stack: LocalStack, deployment: str) -> None:
    """Deployments -> the deployment -> Run -> Custom run."""
    page.goto(f"{stack.ui_url}/deployments")
    page.get_by_text(deployment, exact=True).first.click()
    page.wait_for_url("**/deployments/deployment/**")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    page.locator(".schema-form-property").first.wait_for()


def type_into(page: Any, label: str, value: object, kind: str | None = None) -> None:
    """Fill a form field; ``kind`` picks the type of an optional one first (int, str)."""
    prop = field(page, label)
    if kind:
        prop.get_by_role("button", name=kind, exact=True).click()
    prop.locator("textarea, input").first.fill(str(value))


def submit_run(page: Any) -> dict[str, Any]:
    """Submit the Custom run form; the flow run the server created."""
    for _ in range(3):
        with page.expect_response(
            lambda r: r.url.endswith("/create_flow_run") and r.request.method == "POST"
        ) as created:
            page.get_by_role("button", name="Submit", exact=True).click()
        # 503 is the server's "try again" (SQLite busy on a loaded machine): an operator would.
        if created.value.status != 503:
            break
        page.wait_for_timeout(2000)
    assert created.value.status == 201, created.value.text()
    run: dict[str, Any] = created.value.json()
    return run


def start_campaign(
    page: Any,
    stack: LocalStack,
    cid: str,
    path: str,
    approve_above: int | None = None,
    scheduled: bool = False,
) -> dict[str, Any]:
    """A send run from the weekly-survey deployment's Custom run form."""
    open_custom_run(page, stack, "weekly-survey")
    type_into(page, "Reprendre une campagne", cid)
    type_into(page, "Emplacement du fichier", path)
    if approve_above is not None:
        type_into(
            page, "Demander l'accord au-delà de (destinataires)", approve_above, kind="Nombre"
        )
    if scheduled:  # "Send at once when allowed" off: every chunk gets a slot at the gateway
        toggle = field(page, "Envoyer tout de suite si l'heure le permet").get_by_role("switch")
        toggle.click()
        expect(toggle).to_have_attribute("aria-checked", "false")
    run = submit_run(page)
    assert run["parameters"]["campaign_id"] == cid
    assert run["parameters"]["window"]["allow_immediate"] is not scheduled
    return run


def state_badge(page: Any) -> Any:
    return page.locator(".page-heading-flow-run__meta .state-badge")


def open_run_page(page: Any, stack: LocalStack, run_id: str, name: str) -> None:
    """The run's page, once the run has taken its campaign's name."""
    page.goto(f"{stack.ui_url}/runs/flow-run/{run_id}")
    heading = page.locator(".page-heading")
    expect(heading.get_by_text(name, exact=True)).to_be_visible(timeout=RUN_TIMEOUT_MS)


def wait_final(page: Any) -> str:
    expect(state_badge(page)).to_have_text(FINAL, timeout=RUN_TIMEOUT_MS)
    return str(state_badge(page).inner_text().strip())


def find_in_runs_list(page: Any, stack: LocalStack, name: str, state: str) -> None:
    """The Runs page lists the run under its campaign's name, in that state; open it."""
    page.goto(f"{stack.ui_url}/runs")
    row = page.locator(".state-list-item").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )
    expect(row).to_have_count(1)
    expect(row.locator(".state-badge")).to_have_text(state)
    row.get_by_role("link", name=name, exact=True).click()
    page.wait_for_url("**/runs/flow-run/**")


def pause_until_asked(page: Any, stack: LocalStack, run: dict[str, Any], cid: str) -> None:
    """The run is Paused under the campaign's name, in the Runs list and on its page."""
    open_run_page(page, stack, run["id"], cid)
    expect(state_badge(page)).to_have_text(re.compile("Paused|" + FINAL.pattern), timeout=90_000)
    assert state_badge(page).inner_text().strip() == "Paused", stack.log_tail("worker-1", 60)
    find_in_runs_list(page, stack, cid, "Paused")


def resume(page: Any, approve: bool, comment: str, recipients: int) -> None:
    """Resume -> read the plan in the form -> choose "Envoyer" or "Refuser" -> comment ->
    Submit."""
    modal = open_resume_form(page)
    # The plan the operator approves: why it asks, and how many would be texted.
    expect(modal.get_by_text(f"Destinataires : {recipients}", exact=True)).to_be_visible()
    choose_decision(page, modal, "Envoyer" if approve else "Refuser (rien n'est envoyé)")
    field(page, "Commentaire").locator("textarea, input").first.fill(comment)
    submit_answer(page, modal)


def submit_answer(page: Any, modal: Any) -> None:
    """Submit the resume form, as an operator does until it goes through."""
    for _ in range(6):
        close_toasts(page)
        with page.expect_response(
            lambda r: r.url.endswith("/resume") and r.request.method == "POST"
        ) as answered:
            modal.get_by_role("button", name="Submit", exact=True).click()
        # A busy SQLite fails the server's transaction ("database is locked"); nothing changed,
        # the form stays open with an error toast, and an operator submits again.
        if answered.value.ok:
            break
        page.wait_for_timeout(3000)
    assert answered.value.ok, answered.value.text()
    expect(modal).to_have_count(0)


def close_toasts(page: Any) -> None:
    """Close the notices still shown, as an operator does: on a narrow page an error notice
    (a busy server's answer to an earlier try) lies over the form's Submit button."""
    for _ in range(10):
        close = page.locator(".p-toast__close-btn, .p-toast__close").first
        if not close.is_visible():
            break
        with contextlib.suppress(Exception):  # gone by itself meanwhile
            close.click(timeout=2000)
    # A notice that cannot be closed would still lie over the form's Submit on a narrow page
    # for as long as it shows: clicks go through the notices to the form.
    page.add_style_tag(
        content="#prefect-design-toast-app, #prefect-design-toast-app * "
        "{ pointer-events: none !important; }"
    )


def sends_of(stack: LocalStack, cid: str) -> list[dict[str, Any]]:
    prefix = chunk_tag(cid, 0).split("-")[0] + "-"
    return [s for s in stack.simulator_state()["sends"] if (s["tag"] or "").startswith(prefix)]


def api_run(stack: LocalStack, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = stack.api("GET", f"/flow_runs/{run_id}")
    return run


# -- approval --------------------------------------------------------------------------------------


def open_resume_form(page: Any) -> Any:
    """Resume (in the run's menu on a narrow page) -> the form with the plan; the form."""
    resume_button = page.get_by_role("button", name="Resume", exact=True)
    if resume_button.is_visible():
        resume_button.click()
    else:  # a phone-sized page keeps the run's actions in its menu
        page.locator(".page-heading").get_by_role("button").last.click()
        page.get_by_text("Resume", exact=True).last.click()
    modal = page.locator(".p-modal")
    expect(modal.get_by_text("Resume Flow Run")).to_be_visible()
    expect(modal.get_by_text(re.compile("approbation requise"))).to_be_visible()
    return modal


def open_choices(page: Any, label: str) -> list[str]:
    """Open the select of the field ``label`` and read its options. Headless Chromium's click
    does not open Prefect's select; the keyboard does, as it does for an operator who tabs
    through the form (pressed again when the form was not ready for the first press)."""
    control = field(page, label).locator("button.p-select-button__control")
    options = page.locator(".p-select-option")
    control.focus()
    control.press("ArrowDown")
    try:
        expect(options.first).to_be_visible(timeout=15_000)
    except AssertionError:  # the form was not ready for the first press: once more
        control.focus()
        control.press("ArrowDown")
        expect(options.first).to_be_visible(timeout=15_000)
    return [o.strip() for o in options.all_inner_texts()]


def choose_decision(page: Any, modal: Any, choice: str) -> None:
    """Pick the form's required "Décision" (nothing is chosen in advance)."""
    if not page.locator(".p-select-option").first.is_visible():  # not opened already
        open_choices(page, "Décision")
    page.locator(".p-select-option", has_text=choice).first.click()
    expect(page.locator(".p-select-option")).to_have_count(0)  # closed: Submit is reachable
    expect(field(page, "Décision").locator("button.p-select-button__control")).to_have_text(choice)


def start_paused_campaign(
    stack: LocalStack, cid: str, path: str, approve_above: int
) -> dict[str, Any]:
    """A send run of the weekly-survey deployment started through the API (the tests of the
    resume form do not depend on the Custom run form's fields)."""
    sent = deployment(stack, "weekly-survey")
    parameters = {
        "campaign_id": cid,
        "recipients": {"kind": "csv", "path": path},
        "approve_above_recipients": approve_above,
    }
    run: dict[str, Any] = stack.api(
        "POST", f"/deployments/{sent['id']}/create_flow_run", {"parameters": parameters}
    )
    return run
