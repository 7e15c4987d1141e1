"""The inbox for files, end to end: a list dropped in the stack's inbox folder becomes, at the
watcher's next pass, a send run paused for approval whose plan counts the file's recipients; the
same list dropped again starts nothing; a file that is not a list gets its reason beside it and
in the run's state.

A real stack (Prefect server, process worker, gateway simulator; the deployments of
deployments/prefect.yaml, the inbox's schedule included) and headless Chromium. The test starts
a pass of the watcher itself rather than wait up to two minutes for the schedule, whose being
active as shipped it checks. Screenshots at 1400 and 390 px go to /tmp/shots/inbox/.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import artifacts, deployment, open_run_page, state_badge
from helpers import stack_mobiles as mobiles
from playwright.sync_api import expect

from scripts.server import LocalStack
from tasks import inbox as ib

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOTS = Path("/tmp/shots/inbox")
WIDTHS = {"desktop": 1400, "phone": 390}
INBOX = "watch-inboxes/inbox"
SURVEY = "enquete-mairie"


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for kind, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"{name}-{kind}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 1000})


def drop(folder: Path, name: str, text: str) -> Path:
    """A file dropped a minute ago (whole: the watcher takes it at its next pass)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    then = time.time() - 60
    os.utime(path, (then, then))
    return path


def inbox_runs(stack: LocalStack, since: str) -> list[dict[str, Any]]:
    inbox = deployment(stack, "inbox")
    body = {
        "deployments": {"id": {"any_": [inbox["id"]]}},
        # started since (the ones to come, scheduled, are not passes yet)
        "flow_runs": {
            "start_time": {"after_": since, "is_null_": False},
            "state": {"type": {"not_any_": ["SCHEDULED"]}},
        },
        "sort": "START_TIME_ASC",
    }
    found: list[dict[str, Any]] = stack.api("POST", "/flow_runs/filter", body)
    return found


def one_pass(stack: LocalStack, since: str) -> list[dict[str, Any]]:
    """A pass of the watcher, started now, once ended; with every pass started since ``since``
    (a scheduled pass may take the files first: one runs at a time, and a pass that comes
    during another is called off)."""
    stack.wait_for_run(stack.create_flow_run(INBOX), timeout=180)
    runs = inbox_runs(stack, since)
    for run in runs:
        stack.wait_for_run(run["id"], timeout=180)
    return [stack.api("GET", f"/flow_runs/{r['id']}") for r in runs]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def wait_paused(stack: LocalStack, name: str, timeout: float = 180) -> dict[str, Any]:
    """The flow run named ``name`` once it waits for approval."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.api("POST", "/flow_runs/filter", {"flow_runs": {"name": {"any_": [name]}}})
        if found and found[0]["state_type"] in ("PAUSED", "COMPLETED", "FAILED", "CRASHED"):
            return dict(found[0])
        time.sleep(1)
    raise AssertionError(f"no run {name} paused:\n{stack.log_tail('worker-1', 60)}")


def test_a_list_dropped_in_the_inbox_waits_for_approval_and_is_taken_once(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    inbox = deployment(stack, "inbox")
    [schedule] = inbox["schedules"]
    assert schedule["active"] is True  # on as shipped: it texts nobody
    assert schedule["schedule"]["interval"] == 120 and schedule["slug"] == "inbox-every-2-minutes"
    # one pass at a time; passes piled up while no worker ran are called off
    assert inbox["global_concurrency_limit"]["limit"] == 1
    assert inbox["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"

    numbers = mobiles(29_000_000, 5)
    lines = [f"{i};Habitant {i};0{n[3:]}" for i, n in enumerate(numbers, start=1)]
    lines += ["6;Doublon;0" + numbers[0][3:], "7;Fixe;01 42 00 00 00"]  # rejected, not texted
    text = "id;nom;portable\n" + "\n".join(lines) + "\n"
    folder = clone / "data" / "inbox" / SURVEY
    since = now_iso()
    drop(folder, "habitants.csv", text)
    cid = ib.campaign_id(SURVEY, hashlib.sha256(text.encode()).hexdigest())

    passes = one_pass(stack, since)
    for _ in range(2):  # a pass started while a scheduled one ran is called off: once more
        if any(r["state_type"] == "COMPLETED" for r in passes):
            break
        passes = one_pass(stack, since)
    assert any(r["state_type"] == "COMPLETED" for r in passes), [
        (r["name"], r["state_name"], r["state"]["message"]) for r in passes
    ]
    send = wait_paused(stack, cid)
    assert send["state_name"] == "Paused", stack.log_tail("worker-1", 80)
    assert send["parameters"]["survey_id"] == SURVEY
    assert (folder / "pris" / "habitants.csv").is_file() and not (folder / "habitants.csv").exists()
    # The plan the person approves counts the file: 7 rows, 5 to text (a duplicate, a landline)
    [plan] = [a for a in artifacts(stack, send["id"]) if a["key"] == f"{cid}-approval"]
    assert re.search(r"Destinataires\s*[|:]\s*5\b", plan["data"]), plan["data"]

    # Dropped again under another name, beside a file that is not a list: nothing started,
    # the reasons beside the files and in the pass's state.
    since = now_iso()
    drop(folder, "habitants (copie).csv", text)
    drop(folder, "courrier.pdf", "%PDF-1.4")
    passes = one_pass(stack, since)
    refused = [r for r in passes if r["state_name"] == "Fichier refusé"]
    assert refused, passes
    assert refused[0]["state"]["message"].startswith("1 fichier refusé (courrier.pdf) : ")
    named = stack.api("POST", "/flow_runs/filter", {"flow_runs": {"name": {"any_": [cid]}}})
    assert [r["id"] for r in named] == [send["id"]]
    assert (folder / "habitants (copie).csv.deja-pris.txt").read_text(encoding="utf-8")
    assert (
        (folder / "courrier.pdf.erreur.txt")
        .read_text(encoding="utf-8")
        .startswith("Ce type de fichier n'est pas une liste")
    )

    # What the operator sees: the pass's artifact, its state, the campaign waiting.
    open_run_page(page, stack, refused[0]["id"], refused[0]["name"])
    expect(state_badge(page)).to_have_text("Fichier refusé")
    shoot(page, "pass-refused")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("boite-de-depot", exact=True).first.click()
    page.wait_for_url("**/artifacts/artifact/**")
    expect(page.get_by_text("Boîte de dépôt").first).to_be_visible()
    expect(page.get_by_text("courrier.pdf").first).to_be_visible()
    shoot(page, "artifact")
    open_run_page(page, stack, send["id"], cid)
    expect(state_badge(page)).to_have_text("Paused")
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    shoot(page, "campaign-paused")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(f"{cid}-approval", exact=True).first.click()
    page.wait_for_url("**/artifacts/artifact/**")
    expect(page.get_by_text(re.compile("approbation requise")).first).to_be_visible()
    shoot(page, "campaign-plan")

    # Left paused, nothing was sent; called off so the worker's process ends.
    sent = stack.simulator_state()["sends"]
    assert not [s for s in sent if set(s["numbers"]) & set(numbers)]
    cancelled = {"type": "CANCELLED", "name": "Cancelled", "message": "test over"}
    stack.api("POST", f"/flow_runs/{send['id']}/set_state", {"state": cancelled, "force": True})
