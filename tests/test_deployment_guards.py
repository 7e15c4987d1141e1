"""What the deployments guard, checked against a real Prefect server, a process worker and the
gateway simulator (``scripts.server.LocalStack``, as in ``test_deployments.py``):

- a password typed into the send form's database URL, whatever its characters or encoding, is
  refused by the server before it stores the run, and its answer does not echo it; nothing of it
  lands in Prefect's database;
- a file path typed into the form that is absolute or climbs out with ``..`` is refused the same;
- the gateway client's retry warnings reach a worker's run logs (the Prefect UI);
- the daily follow-up, the daily purge and the erasures run one at a time.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    SEND,
    SEND_NAME,
    copy_working_tree,
    deployment,
    explain,
    run_deployment,
    wait_for_final_state,
)

from flows.parameters import FORM_PATH_EXPECTED
from scripts.server import LocalStack, StackConfig
from tasks.dburl import PUBLIC_URL_EXPECTED

pytestmark = pytest.mark.slow

MARK = "Zx9S3cretPw"  # a test value: found nowhere, or the test fails
# A password in every shape a form could carry one: with "/", "#", "?" or "@" in it, a query key
# percent-encoded or in capitals, a driver's option that holds one.
URLS_WITH_A_PASSWORD = [
    f"postgresql://crm_reader:{MARK}@crm.example.internal/crm",
    f"postgresql://u:pa/{MARK}@host/db",
    f"mysql://u:p#{MARK}@h/db",
    f"postgresql://u:p?{MARK}@h/db",
    f"postgresql://u:p@{MARK}@h/db",
    f"postgresql://u:{MARK}%2F@h/db",
    f"postgresql://u@h/db?pass%77ord={MARK}",
    f"postgresql://u@h/db?%70assword={MARK}",
    f"postgresql://u@h/db?PASSWORD={MARK}",
    f"postgresql://u@h/db?sslmode=require&sslpassword={MARK}",
    f"mssql+pyodbc://u@h/db?odbc_connect=DRIVER%3Dx%3BPWD%3D{MARK}",
    f"postgresql://u@h/db?token={MARK}",
]
URL_REFUSED = (
    "Error creating flow run: Validation failed for field 'recipients'. "
    f"Failure reason: {PUBLIC_URL_EXPECTED!r} was expected"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    clone = copy_working_tree(tmp_path_factory.mktemp("clone"))
    home = tmp_path_factory.mktemp("prefect-home")  # the server's SQLite database is here
    logs = tmp_path_factory.mktemp("logs")
    with LocalStack(StackConfig(root=clone, home=home, logs=logs)) as running:
        yield running


def post(stack: LocalStack, path: str, body: Any) -> tuple[int, str]:
    """(HTTP status, body as text) of a POST to the stack's Prefect API, whatever the status (a
    server busy under load is asked again, as the UI's retry would)."""
    return stack.answer("POST", path, body)


def stored_anywhere(stack: LocalStack, text: str) -> list[str]:
    """Where the Prefect server keeps ``text``: its runs' parameters, or any byte of its database
    (WAL included) and of the stack's logs."""
    found = []
    with sqlite3.connect(stack.config.home / "prefect.db") as db:
        for (parameters,) in db.execute("SELECT parameters FROM flow_run"):
            if text in str(parameters):
                found.append("flow_run.parameters")
    for folder in (stack.config.home, stack.config.logs):
        for path in Path(folder).rglob("*"):
            if path.is_file() and text.encode() in path.read_bytes():
                found.append(str(path))
    return found


def later() -> dict[str, Any]:
    """A state that keeps a created run off the workers (scheduled next year)."""
    when = datetime.now(UTC) + timedelta(days=365)
    return {"type": "SCHEDULED", "state_details": {"scheduled_time": when.isoformat()}}


# -- the send form: no password stored, none echoed ---------------------------------------------


def test_a_password_typed_into_the_form_is_refused_unstored_and_unechoed(
    stack: LocalStack,
) -> None:
    send = deployment(stack, SEND_NAME)
    assert send["enforce_parameter_schema"] is True
    create = f"/deployments/{send['id']}/create_flow_run"
    for url in URLS_WITH_A_PASSWORD:
        recipients = {"kind": "sql", "db_url": url, "query": "SELECT 1"}
        status, said = post(stack, create, {"parameters": {"recipients": recipients}})
        assert status == 409, (url, status, said)
        assert MARK not in said and json.loads(said) == {"detail": URL_REFUSED}, said
    # not a string: refused without being quoted either
    for value in ({"password": MARK}, [f"postgresql://u:{MARK}@h/db"]):
        status, said = post(stack, create, {"parameters": {"recipients": {"db_url": value}}})
        assert status == 409 and json.loads(said) == {"detail": URL_REFUSED}, said
    assert stored_anywhere(stack, MARK) == []

    # A URL without a password is stored as typed.
    for url in (
        "postgresql://crm_reader@crm.example.internal/crm",
        "mysql+pymysql://u@h:3306/db?charset=utf8mb4",
        "sqlite:///data/x.sqlite",
    ):
        recipients = {"kind": "sql", "db_url": url, "query": "SELECT 1"}
        status, said = post(
            stack, create, {"parameters": {"recipients": recipients}, "state": later()}
        )
        assert status == 201, said
        run = json.loads(said)
        assert run["parameters"]["recipients"]["db_url"] == url
        stack.api("DELETE", f"/flow_runs/{run['id']}")


@pytest.mark.parametrize("path", ["../pyproject.toml", "/etc/passwd", "data/../../x.csv"])
def test_a_path_outside_the_clone_typed_into_the_form_is_refused_before_any_run(
    stack: LocalStack, path: str
) -> None:
    send = deployment(stack, SEND_NAME)
    create = f"/deployments/{send['id']}/create_flow_run"
    for parameters, field in (
        ({"recipients": {"kind": "csv", "path": path}}, "recipients"),
        ({"suppression_list": path}, "suppression_list"),
    ):
        status, said = post(stack, create, {"parameters": parameters})
        assert status == 409, said
        assert json.loads(said) == {
            "detail": f"Error creating flow run: Validation failed for field {field!r}. "
            f"Failure reason: {FORM_PATH_EXPECTED!r} was expected"
        }
    status, said = post(
        stack,
        create,
        {"parameters": {"recipients": {"path": "data/e2e/x.csv"}}, "state": later()},
    )
    assert status == 201, said
    stack.api("DELETE", f"/flow_runs/{json.loads(said)['id']}")


def test_a_link_in_the_data_folder_to_a_file_outside_is_refused_by_the_run(
    stack: LocalStack,
) -> None:
    # The server cannot see through a symbolic link: the flow checks the real path.
    outside = stack.config.root.parent / "worker-secrets.ini"
    outside.write_text("[db]\npassword = hunter2-from-the-worker\n", encoding="utf-8")
    link = stack.config.root / "data" / "e2e" / "innocent.csv"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    before = len(stack.simulator_state()["sends"])
    for params in (
        {"recipients": {"kind": "csv", "path": "data/e2e/innocent.csv"}},
        {"suppression_list": "data/e2e/innocent.csv"},
    ):
        done, run_id = run_deployment(stack, SEND, params)
        assert done.returncode != 0
        run = stack.api("GET", f"/flow_runs/{run_id}")
        assert run["state_type"] == "FAILED"
        assert "hors du dossier data" in run["state"]["message"]
        logs = stack.api("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
        assert not any("hunter2" in entry["message"] for entry in logs)
    assert len(stack.simulator_state()["sends"]) == before  # nobody texted


# -- a worker's runs: the gateway client's warnings in the UI ------------------------------------


def test_a_gateway_retry_warning_reaches_a_worker_runs_logs(stack: LocalStack) -> None:
    for name in (SEND_NAME, "daily-follow-up"):
        env = deployment(stack, name)["job_variables"]["env"]
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "survey,smspartner"
    # The gateway answers the balance read with a 503 twice: the client retries, and warns.
    canned = {"path": "me", "status": 503, "body": {"error": "maintenance"}, "times": 2}
    urllib.request.urlopen(  # the stack's own simulator
        urllib.request.Request(
            stack.simulator_admin_url + "/_sim/canned",
            data=json.dumps(canned).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        ),
        timeout=30,
    ).close()
    done, run_id = run_deployment(stack, SEND, {"dry_run": True, "campaign_id": "worker-retry"})
    assert done.returncode == 0, explain(stack, done)
    logs = stack.api("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
    retries = [log for log in logs if "GET me: ServerError, retry" in log["message"]]
    assert [log["name"] for log in retries] == ["smspartner", "smspartner"], [
        (log["name"], log["message"]) for log in logs
    ]
    assert all(log["level"] == 30 for log in retries)  # WARNING


# -- one run at a time for the daily flows -------------------------------------------------------


def test_the_daily_flows_carry_a_limit_of_one_run_at_a_time(stack: LocalStack) -> None:
    for name in ("daily-follow-up", "daily-purge", "erase-person"):
        found = deployment(stack, name)
        assert found["global_concurrency_limit"]["limit"] == 1, found
        assert found["concurrency_options"]["collision_strategy"] == "ENQUEUE", found
    for name in (SEND_NAME, "cancel-campaign"):  # campaigns run side by side
        assert deployment(stack, name)["global_concurrency_limit"] is None


def test_two_purges_at_once_run_one_after_the_other(stack: LocalStack) -> None:
    purge = deployment(stack, "daily-purge")
    ids = []
    for _ in range(2):
        # a key of its own per run: a create retried after a busy answer cannot make a second run
        key = {"idempotency_key": uuid.uuid4().hex}
        status, said = post(stack, f"/deployments/{purge['id']}/create_flow_run", key)
        assert status == 201, said
        ids.append(json.loads(said)["id"])
    for run_id in ids:
        assert wait_for_final_state(stack, run_id, timeout=300) == "COMPLETED"
    runs = [stack.api("GET", f"/flow_runs/{run_id}") for run_id in ids]
    first, second = sorted(runs, key=lambda r: datetime.fromisoformat(r["start_time"]))
    end = datetime.fromisoformat(first["end_time"])
    assert end <= datetime.fromisoformat(second["start_time"]), (first, second)
    waited = {
        s["name"]
        for run_id in ids
        for s in stack.api("GET", f"/flow_run_states/?flow_run_id={run_id}")
    }
    assert "AwaitingConcurrencySlot" in waited, waited
