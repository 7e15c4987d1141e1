"""Several machines: two workers, each in a clone of its own, one Prefect server and one ledger.

The issue's acceptance test. "machine-a" and "machine-b" are two clones of the working tree at
different paths (two machines' disks), each with its own worker started from its root and
polling a work queue of its own, so every run goes to the machine the test names; the flows run
in the worker's own clone (``deployments/prefect.yaml``'s pull step reads the worker's
``SURVEY_PROJECT_DIR``). The Prefect server and the ledger are on PostgreSQL; both workers have
the same ``SURVEY_PSEUDONYM_KEY``.

- Separate data folders (each clone's own ``data/``): a person erased through the deployment on
  machine B is never texted by a campaign sent from machine A.
- One shared data folder (``SURVEY_DATA_DIR``, the same absolute folder on both): a campaign
  sent from A and followed up on B has a complete report there, and the purge on B leaves no
  full number of it in any file of that folder nor in the ledger.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    PG,
    artifacts,
    campaign_numbers,
    copy_working_tree,
    fresh_pg_databases,
    write_recipients,
)
from helpers import (
    stack_mobiles as mobiles,
)

from scripts.server import LocalStack, StackConfig

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SEND = "send-survey-campaign/weekly-survey"
FOLLOW_UP = "follow-up-campaign/daily-follow-up"
PURGE = "purge-personal-data/daily-purge"
ERASE = "erase-person/erase-person"
A, B = "machine-a", "machine-b"
QUEUES = {A: "machine-a", B: "machine-b"}
KEY = secrets.token_hex(32)  # SURVEY_PSEUDONYM_KEY, the same on both machines


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two clones at different paths, one per machine."""
    found = {}
    for name in (A, B):
        # deployments/prefect.yaml's pull step runs each flow in the worker's SURVEY_PROJECT_DIR
        found[name] = copy_working_tree(tmp_path_factory.mktemp(name))
    return found


@pytest.fixture(scope="module")
def pg_once() -> Iterator[tuple[str, str]]:
    yield from fresh_pg_databases("survey_machines")


@pytest.fixture(scope="module")
def stack(
    machines: dict[str, Path],
    pg_once: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalStack]:
    """Deployed from machine A's clone; each worker in its own clone and queue."""
    prefect_db, ledger_db = pg_once
    home = tmp_path_factory.mktemp("prefect-home-machines")
    config = StackConfig(
        root=machines[A],
        home=home,
        logs=home / "logs",
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
        ledger_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger_db}",
        workers=(A, B),
        worker_dirs=machines,
        worker_queues=QUEUES,
        worker_env={name: {"SURVEY_PSEUDONYM_KEY": KEY} for name in (A, B)},
        simulator_args=("--delivery-delay-s", "0"),
    )
    with LocalStack(config) as running:
        yield running


def run_on(
    stack: LocalStack, machine: str, deployment: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run a deployment on one machine (its queue) and wait for the end; the final flow run."""
    run_id = stack.create_flow_run(deployment, params, work_queue=QUEUES[machine])
    run = stack.wait_for_run(run_id)
    assert run["state_type"] == "COMPLETED", (
        f"{deployment} on {machine}: {run['state_type']} {run['state']['message']}\n"
        f"{stack.log_tail(machine, 80)}"
    )
    other = B if machine == A else A
    assert run_id in stack.log_tail(machine, 5000) and run_id not in stack.log_tail(other, 5000)
    return run


def report_path(stack: LocalStack, run_id: str, cid: str) -> Path:
    """Where the run wrote the campaign's report.html (its last report artifact's link)."""
    data = [str(a["data"]) for a in artifacts(stack, run_id) if a["key"] == f"{cid}-report"]
    links = re.findall(r"file:[^)\s]+", data[-1] if data else "")  # a link, or markdown with one
    assert links, f"no link in the {cid}-report artifact: {data}"
    return Path(urllib.parse.unquote(urllib.parse.urlparse(links[-1]).path)).resolve()


# -- separate data folders ---------------------------------------------------------------------


def test_erased_on_one_machine_is_never_texted_from_the_other(
    stack: LocalStack, machines: dict[str, Path]
) -> None:
    for name in (A, B):  # each machine its own data/ (its clone's), as on separate disks
        if stack.extra_env[name].get("SURVEY_DATA_DIR"):
            stack.restart_worker(name, {"SURVEY_PSEUDONYM_KEY": KEY})
    numbers = mobiles(27_000_000, 12)
    erased = numbers[4]

    run_on(stack, B, ERASE, {"phone": f"0{erased[3:]}"})  # typed as people type it

    path = write_recipients(machines[A], "separate", numbers)  # a file on machine A only
    run = run_on(
        stack, A, SEND, {"campaign_id": "separate", "recipients": {"kind": "csv", "path": path}}
    )
    texted = campaign_numbers(stack, "separate")
    assert erased not in stack.simulator_state()["accepted_numbers"]  # never, by any campaign
    assert texted == Counter(n for n in numbers if n != erased)  # everyone else exactly once
    # machine A ran it in its own clone, with its own data folder
    reports = machines[A] / "data" / "reports" / "separate"
    assert report_path(stack, run["id"], "separate") == reports.resolve() / "report.html"
    summary = json.loads((reports / "summary.json").read_text(encoding="utf-8"))
    assert summary["sent"] == len(numbers) - 1
    assert summary["rejected"].get("opted_out") == sum(summary["rejected"].values()) == 1
    assert not (machines[B] / "data" / "reports" / "separate").exists()

    # and machine B in its own: a dry run there of a file only B has (it texts nobody)
    b_path = write_recipients(machines[B], "separate-b", [erased, *mobiles(27_050_000, 2)])
    dry = run_on(
        stack,
        B,
        SEND,
        {
            "campaign_id": "separate-b",
            "recipients": {"kind": "csv", "path": b_path},
            "dry_run": True,
        },
    )
    b_reports = machines[B] / "data" / "reports" / "separate-b"
    assert report_path(stack, dry["id"], "separate-b") == b_reports.resolve() / "report.html"
    b_summary = json.loads((b_reports / "summary.json").read_text(encoding="utf-8"))
    assert b_summary["rejected"] == {"opted_out": 1, "dry_run": 2}
    assert not (machines[A] / "data" / "reports" / "separate-b").exists()
    assert erased not in stack.simulator_state()["accepted_numbers"]


# -- one shared data folder --------------------------------------------------------------------


def number_forms(e164: str) -> set[str]:
    """How a French mobile is written in the files: E.164 and national, without separators."""
    return {e164, "0" + e164[3:]}


def forms_of(numbers: list[str]) -> set[str]:
    return set().union(*(number_forms(n) for n in numbers))


_SEPARATORS = re.compile(r"[\s\u200b\u00a0.\-]")


def numbers_in_bytes(data: bytes, forms: set[str], *, spaced: bool = True) -> set[str]:
    """The forms found in ``data``, as they are or (``spaced``) written with separators."""
    found = {f for f in forms if f.encode() in data}
    if spaced:
        compact = _SEPARATORS.sub("", data.decode("utf-8", errors="ignore"))
        found |= {f for f in forms if f in compact}
    return found


def numbers_in_folder(folder: Path, forms: set[str]) -> dict[str, set[str]]:
    """Every file under ``folder`` (members of .xlsx files too) holding one of ``forms``."""
    found: dict[str, set[str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = numbers_in_bytes(data, forms)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    hits |= numbers_in_bytes(archive.read(member), forms)
        if hits:
            found[str(path.relative_to(folder))] = hits
    return found


def numbers_in_ledger(ledger_db: str, forms: set[str]) -> dict[str, set[str]]:
    import psycopg

    found: dict[str, set[str]] = {}
    with psycopg.connect(f"{PG}/{ledger_db}") as conn:
        for table in ("chunks", "texted"):
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            hits = numbers_in_bytes(repr(rows).encode(), forms, spaced=False)
            if hits:
                found[table] = hits
    return found


def test_shared_data_folder_report_follow_up_and_purge_across_machines(
    stack: LocalStack, machines: dict[str, Path], pg_once: tuple[str, str], tmp_path: Path
) -> None:
    shared = tmp_path / "shared-data"  # one folder both machines mount at the same path
    shared.mkdir()
    for name in (A, B):
        stack.restart_worker(name, {"SURVEY_PSEUDONYM_KEY": KEY, "SURVEY_DATA_DIR": str(shared)})
    numbers = mobiles(27_100_000, 23)
    cid = "shared"
    # numbers[0] twice: its second row is rejected as a duplicate, so rejects.csv / .xlsx hold it
    path = write_recipients(machines[A], cid, [*numbers, numbers[0]])
    limits = {"chunk_size": 5}  # several chunks: the follow-up checks each
    run_on(
        stack,
        A,
        SEND,
        {"campaign_id": cid, "recipients": {"kind": "csv", "path": path}, "limits": limits},
    )
    assert campaign_numbers(stack, cid) == Counter(numbers)
    reports = shared / "reports" / cid
    summary = json.loads((reports / "summary.json").read_text(encoding="utf-8"))
    assert summary["sent"] == len(numbers) and summary["rejected"] == {"duplicate": 1}
    assert summary["loaded"] == len(numbers) + 1

    follow = run_on(stack, B, FOLLOW_UP, {"campaign_id": cid})
    # B found A's summary in the shared folder: it published the summary with the delivery
    assert f"{cid}-summary" in {a["key"] for a in artifacts(stack, follow["id"])}
    follow_up = json.loads((reports / "follow_up.json").read_text(encoding="utf-8"))
    assert follow_up["chunks_checked"] == summary["chunks"]["sent"] >= 2
    statuses = ("delivered", "not_delivered", "waiting", "other")
    assert sum(follow_up[s] for s in statuses) == len(numbers)
    html = (reports / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-outcomes"' in html and 'id="chart-delivery"' in html
    # B kept A's summary (it did not write a bare one of its own over it)
    assert summary == json.loads((reports / "summary.json").read_text(encoding="utf-8"))
    # and nothing of the campaign went to either machine's own data/
    for name in (A, B):
        for sub in ("state", "reports"):
            local = machines[name] / "data" / sub
            assert not (local.exists() and numbers_in_folder(local, forms_of(numbers))), local

    forms = forms_of(numbers)
    before = numbers_in_folder(shared, forms)
    # the scan sees them before the purge: in the state folder and in the rejects
    assert any(f.startswith("state") for f in before), before
    assert {"reports/shared/rejects.csv", "reports/shared/rejects.xlsx"} <= set(before), before

    purge = run_on(stack, B, PURGE, {"older_than_days": 0})
    assert purge["state_type"] == "COMPLETED"
    assert numbers_in_folder(shared, forms) == {}, f"before the purge: {sorted(before)}"
    assert numbers_in_ledger(pg_once[1], forms) == {}
    # the aggregates stay
    assert json.loads((reports / "summary.json").read_text(encoding="utf-8"))["sent"] == len(
        numbers
    )
