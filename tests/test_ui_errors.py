"""What the operator reads in the Prefect UI when a run does not complete: its state and one
line, never a traceback, in a worker's run (where Prefect's engine re-raises a failed run's
error at the end and used to log it with 40 lines of traceback).

One stack for the module (Prefect server, process worker, gateway simulator) and headless
Chromium, with the operator's steps of tests/test_ui_operator.py.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    RUN_TIMEOUT_MS,
    api_run,
    open_run_page,
    pause_until_asked,
    resume,
    sends_of,
    start_campaign,
    state_badge,
    write_recipients,
)
from helpers import stack_mobiles as mobiles
from playwright.sync_api import expect

from scripts.server import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FINAL = re.compile(
    r"Completed|Failed|Incomplete|Crashed|Cancelled|Refused|NotApproved|Refusée|Expirée"
)
SHOTS = Path("/tmp/shots/errors")


def api_logs(stack: LocalStack, run_id: str) -> str:
    """Every log line of the run, as the server keeps them (the UI's Logs tab reads these)."""
    logs = stack.api("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
    return "\n".join(str(log["message"]) for log in logs)


def shown_logs(page: Any) -> str:
    """The run page's Logs tab, as the operator sees it."""
    page.get_by_text("Logs", exact=True).first.click()
    logs = page.locator(".run-logs, .log-rows, [class*=log]").first
    expect(logs).to_be_visible()
    page.wait_for_timeout(500)  # the tab renders its rows after it shows
    return str(page.locator("body").inner_text())


def final_state(page: Any) -> str:
    expect(state_badge(page)).to_have_text(FINAL, timeout=RUN_TIMEOUT_MS)
    return str(state_badge(page).inner_text().strip())


def screenshots(page: Any, name: str, focus: Any) -> None:
    """The page at desktop and phone width, ``focus`` (a log line) scrolled into view."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1400, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        focus.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1400, "height": 900})


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]
    assert "exited with unexpected exception" not in text, text[-3000:]
    assert "cannot be resolved into an exception" not in text, text[-3000:]


def test_a_refused_campaign_logs_no_traceback(stack: LocalStack, clone: Path, page: Any) -> None:
    path = write_recipients(clone, "refused-no-traceback", mobiles(26_000_000, 3))
    cid = f"refus-{secrets.token_hex(3)}"
    run = start_campaign(page, stack, cid, path, approve_above=1)
    pause_until_asked(page, stack, run, cid)
    resume(page, approve=False, comment="pas cette semaine", recipients=3)
    assert final_state(page) == "Refusée", stack.log_tail("worker-1", 60)
    assert sends_of(stack, cid) == []
    # The worker's process has ended (its last records sent) once the run is final on the
    # server; the UI's Logs tab and the API both show the refusal and no traceback.
    shown = shown_logs(page)
    no_traceback(shown)
    said = page.get_by_text(re.compile("Campagne refusée \\(« pas cette semaine »\\)"))
    expect(said.first).to_be_visible()
    screenshots(page, "refused-logs", said.first)
    logs = api_logs(stack, run["id"])
    no_traceback(logs)
    assert "Campagne refusée" in logs
    ended = api_run(stack, run["id"])
    assert (ended["state_type"], ended["state_name"]) == ("CANCELLED", "Refusée")


def test_a_run_on_a_missing_file_shows_its_one_line(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    cid = f"absent-{secrets.token_hex(3)}"
    missing = f"data/e2e/{cid}.csv"  # in the data folder, as the form asks, but not there
    run = start_campaign(page, stack, cid, missing)
    open_run_page(page, stack, run["id"], cid)
    assert final_state(page) == "Failed", stack.log_tail("worker-1", 60)
    ended = api_run(stack, run["id"])
    message = ended["state"]["message"]
    assert cid in message and "\n" not in message  # one line, naming the file
    shown = shown_logs(page)
    no_traceback(shown)
    line = page.get_by_text(message).first
    expect(line).to_be_visible()  # its line, in the run's logs
    screenshots(page, "missing-file-logs", line)
    logs = api_logs(stack, run["id"])
    no_traceback(logs)
    assert logs.count(message) >= 1
