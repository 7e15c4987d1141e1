"""The deployments end to end, the way a user runs them: Prefect's own CLI, a real Prefect server,
a process worker, the gateway simulator over HTTP.

Each stack works in a copy of the working tree (what a fresh clone holds), deploys
``deployments/prefect.yaml`` with the documented command from that copy's root, and starts its
workers there. One SQLite-backed stack serves the module; the scale-out test starts its own,
with the Prefect server and the ledger on PostgreSQL and two workers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import (
    PG,
    SEND,
    SEND_NAME,
    artifacts,
    campaign_numbers,
    copy_working_tree,
    deployment,
    explain,
    fresh_pg_databases,
    run_deployment,
    wait_for_final_state,
    write_recipients,
)
from helpers import stack_mobiles as mobiles

from flows.parameters import WINDOW_LABELS
from scripts.server import LocalStack, StackConfig

pytestmark = pytest.mark.slow

FOLLOW_UP_NAME = "daily-follow-up"
PARIS = ZoneInfo("Europe/Paris")


def is_summary(artifact: dict[str, Any]) -> bool:
    return (artifact["key"] or "").endswith("-summary")  # the progress artifact has no key


def campaign_of(stack: LocalStack, flow_run_id: str) -> str:
    """The campaign id a run used, read from its summary artifact's key."""
    keys = {a["key"] for a in artifacts(stack, flow_run_id) if is_summary(a)}
    assert len(keys) == 1, keys
    return keys.pop().removesuffix("-summary")


def run_now(stack: LocalStack, flow_run_id: str, name: str = "Scheduled") -> None:
    """Schedule an existing flow run for now, as the UI's Retry button does."""
    state = {
        "type": "SCHEDULED",
        "name": name,
        "state_details": {"scheduled_time": datetime.now(UTC).isoformat()},
    }
    stack.api("POST", f"/flow_runs/{flow_run_id}/set_state", {"state": state, "force": True})


def names_in(schema: Any) -> Iterator[str]:
    """Every property name of a JSON schema, nested models included."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from names_in(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from names_in(item)


# -- the module's stack --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_working_tree(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def stack(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Simulator, Prefect server (SQLite), pool, Secret block, deployments and one worker."""
    home = tmp_path_factory.mktemp("prefect-home")
    with LocalStack(StackConfig(root=clone, home=home, logs=home / "logs")) as running:
        yield running


# -- what the deploy command declares ------------------------------------------------------------


def test_deploy_declares_schedules_pool_and_a_form_without_secrets(
    stack: LocalStack, clone: Path
) -> None:
    send, follow = deployment(stack, SEND_NAME), deployment(stack, FOLLOW_UP_NAME)
    assert stack.api("GET", "/work_pools/surveys")["type"] == "process"
    for d in (send, follow):
        assert d["work_pool_name"] == "surveys"
        assert d["enforce_parameter_schema"] is True
        # the worker runs the flows in its own clone (SURVEY_PROJECT_DIR), else the clone
        # deployed from: flows/ and data/samples/ are there
        shell, chdir = d["pull_steps"]
        script = shell["prefect.deployments.steps.run_shell_script"]["script"]
        assert script == f"printf '%s' \"${{SURVEY_PROJECT_DIR:-{clone}}}\""
        assert chdir == {
            "prefect.deployments.steps.set_working_directory": {"directory": "{{ clone.stdout }}"}
        }

    [weekly] = send["schedules"]
    assert weekly["schedule"]["cron"] == "0 10 * * 2"
    assert weekly["schedule"]["timezone"] == "Europe/Paris"
    assert weekly["slug"] == "tuesday-10h-paris"
    assert weekly["active"] is False  # shipped off: it would text the sample numbers weekly
    [daily] = follow["schedules"]
    assert daily["schedule"]["cron"] == "0 9 * * *"
    assert daily["schedule"]["timezone"] == "Europe/Paris"
    assert daily["slug"] == "daily-09h-paris"
    assert daily["active"] is True  # it texts nobody: it reads statuses and suppresses STOPs

    assert send["parameters"]["survey_id"] == "demo-satisfaction"
    assert (clone / send["parameters"]["recipients"]["path"]).is_file()

    schema = send["parameter_openapi_schema"]
    defs = schema["definitions"]
    # One model per source kind: the form shows one kind's fields (tests/test_form_schema.py).
    kinds = [k["$ref"].rsplit("/", 1)[-1] for k in schema["properties"]["recipients"]["anyOf"]]
    assert kinds == ["FileSource", "DatabaseSource", "UrlSource"]
    preset = defs["DeliveryWindow"]["properties"]["preset"]
    # French choices first; the old codes on a second tab, for the scripts that send them.
    assert preset["anyOf"][0]["enum"] == list(WINDOW_LABELS.values())
    assert preset["title"] == "Plage horaire"
    source = defs["FileSource"]["properties"]
    assert source["path"]["title"] == "Emplacement du fichier" and source["path"]["description"]
    limits = defs["Limits"]["properties"]
    assert limits["max_cost"]["title"] == "Budget maximum (€)"
    assert limits["max_cost"]["minimum"] == 0
    assert (limits["concurrency"]["minimum"], limits["concurrency"]["maximum"]) == (1, 64)
    # A *_block parameter holds the name of a Secret block, never the secret itself.
    secretish = [
        n
        for n in names_in(schema)
        if re.search(r"key|secret|password|token", n, re.I) and not n.endswith("_block")
    ]
    assert secretish == []
    assert stack.config.api_key not in json.dumps(send)

    # enforce_parameter_schema: the server refuses what the form would refuse, before any worker
    refused = stack.prefect(
        "deployment",
        "run",
        SEND,
        "--params",
        json.dumps({"limits": {"concurrency": 100}}),
        check=False,
    )
    assert refused.returncode != 0
    assert "limits.concurrency" in refused.stdout and "maximum of 64" in refused.stdout


def test_redeploying_keeps_schedules_without_duplicate_runs(stack: LocalStack) -> None:
    before = {d: deployment(stack, d) for d in (SEND_NAME, FOLLOW_UP_NAME)}
    daily_id = before[FOLLOW_UP_NAME]["id"]
    stack.api("POST", f"/deployments/{daily_id}/schedule", {"max_runs": 3})
    # An operator switches the weekly schedule on in the UI; this file stays the source of truth.
    weekly = before[SEND_NAME]["schedules"][0]
    stack.api(
        "PATCH",
        f"/deployments/{before[SEND_NAME]['id']}/schedules/{weekly['id']}",
        {"active": True},
    )
    stack.deploy()
    stack.api("POST", f"/deployments/{daily_id}/schedule", {"max_runs": 3})
    for name, old in before.items():
        new = deployment(stack, name)
        assert new["id"] == old["id"]
        assert [s["id"] for s in new["schedules"]] == [s["id"] for s in old["schedules"]]
    assert deployment(stack, SEND_NAME)["schedules"][0]["active"] is False
    upcoming = stack.api(
        "POST",
        "/flow_runs/filter",
        {
            "deployments": {"id": {"any_": [daily_id]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        },
    )
    starts = Counter(r["expected_start_time"] for r in upcoming)
    assert starts and max(starts.values()) == 1


# -- runs ----------------------------------------------------------------------------------------


def test_shipped_send_deployment_runs_on_the_sample_data_then_the_follow_up(
    stack: LocalStack, clone: Path
) -> None:
    done, run_id = run_deployment(stack, SEND)
    assert done.returncode == 0, explain(stack, done)
    assert "Completed" in done.stdout

    keys = {a["key"] for a in artifacts(stack, run_id)}
    cid = campaign_of(stack, run_id)
    assert {f"{cid}-summary", f"{cid}-chunks", f"{cid}-report"} <= keys
    # a manual run without a campaign id gets a fresh one, from its own flow run
    assert cid.startswith("demo-satisfaction-") and cid.endswith(run_id[:8])

    summary = json.loads((clone / "data" / "reports" / cid / "summary.json").read_text())
    assert summary["sent"] > 0
    assert summary["loaded"] == summary["sent"] + summary["failed"] + sum(
        summary["rejected"].values()
    )
    texted = campaign_numbers(stack, cid)
    assert sum(texted.values()) == summary["sent"] and max(texted.values()) == 1

    # The key came from the Secret block: it is in no parameter and no log line of the run.
    run = stack.api("GET", f"/flow_runs/{run_id}")
    logs = stack.api("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
    assert logs and stack.config.api_key not in json.dumps([run, logs])

    done, follow_id = run_deployment(
        stack, "follow-up-campaign/daily-follow-up", {"campaign_id": cid}
    )
    assert done.returncode == 0, explain(stack, done)
    assert f"{cid}-delivery" in {a["key"] for a in artifacts(stack, follow_id)}
    assert (clone / "data" / "reports" / cid / "follow_up.json").is_file()


def test_daily_follow_up_runs_as_shipped(stack: LocalStack) -> None:
    schema = deployment(stack, FOLLOW_UP_NAME)["parameter_openapi_schema"]
    assert "campaign_id" not in schema.get("required", [])  # the schedule passes no id
    done, _ = run_deployment(stack, "follow-up-campaign/daily-follow-up")
    assert done.returncode == 0, explain(stack, done)


def test_the_inbox_polls_every_two_minutes_as_shipped(stack: LocalStack, clone: Path) -> None:
    inbox = deployment(stack, "inbox")
    assert inbox["work_pool_name"] == "surveys" and inbox["enforce_parameter_schema"] is True
    [every] = inbox["schedules"]
    assert every["schedule"]["interval"] == 120 and every["slug"] == "inbox-every-2-minutes"
    assert every["active"] is True  # on as shipped: every campaign it starts waits for a yes
    for _ in range(3):  # a scheduled pass running at that moment calls this one off
        done, run_id = run_deployment(stack, "watch-inboxes/inbox")
        if "Cancelled" not in done.stdout:
            break
    assert done.returncode == 0, explain(stack, done)
    # An empty inbox: the folder and its explanation for whoever opens the share, nothing more.
    assert (clone / "data" / "inbox" / "LISEZ-MOI.txt").read_text(encoding="utf-8")
    assert [a["key"] for a in artifacts(stack, run_id)] == []


def test_scheduled_run_keeps_its_campaign_id_when_run_again(stack: LocalStack, clone: Path) -> None:
    numbers = mobiles(21_000_000, 12)
    path = write_recipients(clone, "scheduled", numbers)
    send = deployment(stack, SEND_NAME)
    weekly = send["schedules"][0]
    schedule_url = f"/deployments/{send['id']}/schedules/{weekly['id']}"
    # The scheduler creates the weekly runs once the schedule is on (here with its own list).
    stack.api(
        "PATCH",
        schedule_url,
        {
            "active": True,
            "parameters": {"recipients": {"kind": "csv", "path": path}},
        },
    )
    try:
        stack.api("POST", f"/deployments/{send['id']}/schedule", {"max_runs": 2})
        upcoming = stack.api(
            "POST",
            "/flow_runs/filter",
            {
                "deployments": {"id": {"any_": [send["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_ASC",
            },
        )
        first = upcoming[0]
        assert first["auto_scheduled"] and first["parameters"]["recipients"]["path"] == path
        expected = datetime.fromisoformat(first["expected_start_time"]).astimezone(PARIS)
        assert (expected.weekday(), expected.hour, expected.minute) == (1, 10, 0)  # Tuesday 10:00

        run_now(stack, first["id"])  # its occurrence comes now rather than next Tuesday
        assert wait_for_final_state(stack, first["id"]) == "COMPLETED"
    finally:
        stack.api("PATCH", schedule_url, {"active": False, "parameters": {}})

    cid = campaign_of(stack, first["id"])
    assert cid == f"demo-satisfaction-{expected:%Y%m%d-%H%M%S}-{send['id'][:6]}"
    assert campaign_numbers(stack, cid) == Counter(numbers)

    # The same scheduled run again (Retry in the UI, or a duplicate of its occurrence): same
    # campaign, and the ledger knows every chunk was sent.
    run_now(stack, first["id"], name="AwaitingRetry")
    assert wait_for_final_state(stack, first["id"]) == "COMPLETED"
    summaries = [a for a in artifacts(stack, first["id"]) if is_summary(a)]
    assert [a["key"] for a in summaries] == [f"{cid}-summary"] * 2
    assert campaign_numbers(stack, cid) == Counter(numbers)


# -- scale-out: PostgreSQL, two workers, two campaigns at once ---------------------------------


@pytest.fixture
def pg_databases() -> Iterator[tuple[str, str]]:
    yield from fresh_pg_databases("survey_e2e")


@pytest.mark.postgres
def test_postgres_two_workers_two_campaigns_at_once(
    clone: Path, tmp_path_factory: pytest.TempPathFactory, pg_databases: tuple[str, str]
) -> None:
    prefect_db, ledger_db = pg_databases
    home = tmp_path_factory.mktemp("prefect-home-pg")
    config = StackConfig(
        root=clone,
        home=home,
        logs=home / "logs",
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
        ledger_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger_db}",
        workers=("worker-a", "worker-b"),
        worker_limit=2,
        use_secret_block=False,  # the key in the workers' environment, the other way documented
    )
    a_numbers, b_numbers = mobiles(23_000_000, 40), mobiles(23_100_000, 35)
    a_path = write_recipients(clone, "pg-a", a_numbers)
    b_path = write_recipients(clone, "pg-b", b_numbers)
    small = {"chunk_size": 5}  # many chunks, so the twin runs of pg-a contend for each claim
    runs = [
        {"campaign_id": "pg-a", "recipients": {"kind": "csv", "path": a_path}, "limits": small},
        # the same campaign twice at once, as a duplicated run would: the ledger's claims decide
        {"campaign_id": "pg-a", "recipients": {"kind": "csv", "path": a_path}, "limits": small},
        {"campaign_id": "pg-b", "recipients": {"kind": "csv", "path": b_path}, "limits": small},
    ]
    with LocalStack(config) as pg_stack:
        commands = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "deployment",
                    "run",
                    SEND,
                    "--watch",
                    "--watch-interval",
                    "1",
                    "--watch-timeout",
                    "240",
                    "--params",
                    json.dumps(p),
                ],
                cwd=clone,
                env=pg_stack.cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for p in runs
        ]
        try:
            outputs = [c.communicate(timeout=300)[0] for c in commands]
        finally:
            for c in commands:
                if c.poll() is None:
                    c.kill()
                    c.wait()
        for c, out in zip(commands, outputs, strict=True):
            assert c.returncode == 0, out[-3000:] + "\n" + pg_stack.log_tail("worker-a", 40)

        texted = Counter(pg_stack.simulator_state()["accepted_numbers"])
        assert texted == Counter(a_numbers + b_numbers)  # everyone once, nobody twice
        ids = [re.search(r"UUID:\s*([0-9a-f-]{36})", out) for out in outputs]
        run_ids = {m.group(1) for m in ids if m}
        by_worker = {
            w: {r for r in run_ids if r in pg_stack.log_tail(w, 2000)} for w in config.workers
        }
        assert all(by_worker.values()), by_worker  # both workers ran flows
        for cid in ("pg-a", "pg-b"):
            found = pg_stack.api(
                "POST", "/artifacts/filter", {"artifacts": {"key": {"any_": [f"{cid}-summary"]}}}
            )
            assert found, f"no summary artifact for {cid}"

    import psycopg

    with psycopg.connect(f"{PG}/{prefect_db}") as conn:
        count = conn.execute("SELECT count(*) FROM flow_run").fetchone()
    assert count is not None and count[0] >= 3  # the runs are in PostgreSQL, not in SQLite
    with psycopg.connect(f"{PG}/{ledger_db}") as conn:
        rows = conn.execute("SELECT campaign_id FROM campaigns ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == ["pg-a", "pg-b"]
