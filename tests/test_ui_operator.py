"""The operator's console in the Prefect UI: a campaign that needs approval pauses, is approved or
refused from the run's Resume form, and a scheduled campaign is called off with the cancel
deployment.

Headless Chromium (Debian's package) driven by Playwright against one stack for the module
(Prefect server, process worker, gateway simulator), as in tests/test_ui.py. Every step is what
an operator does with the mouse; the simulator says what was texted.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright
from test_deployments import (
    campaign_numbers,
    deployment,
    mobiles,
    write_recipients,
)
from test_ui import CHROMIUM, CHROMIUM_ARGS, field, new_context

from scripts.server import LocalStack
from tasks.ledger import chunk_tag

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TIMEOUT_MS = 60_000  # every wait of the page is bounded
RUN_TIMEOUT_MS = 120_000  # a flow run from submitted to its end
FINAL = re.compile(r"Completed|Failed|Crashed|Cancelled|Refused|NotApproved")
# Anything that still reads as a whole French number, national or international, with or without
# separators (a masked number has bullets in the middle).
FULL_NUMBER = re.compile(r"(?:\+33|\b0)[\s.]?[1-9](?:[\s.]?\d){8}\b")


@pytest.fixture(scope="module")
def clone(ui_clone: Path) -> Path:
    return ui_clone  # one stack for every browser module (tests/conftest.py)


@pytest.fixture(scope="module")
def stack(ui_stack: LocalStack) -> LocalStack:
    return ui_stack


@pytest.fixture(scope="module")
def browser(stack: LocalStack) -> Iterator[Any]:
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


# -- what an operator does -----------------------------------------------------------------------


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
    type_into(page, "campaign_id", cid, kind="str")
    type_into(page, "File path", path)
    if approve_above is not None:
        type_into(page, "approve_above_recipients", approve_above, kind="int")
    if scheduled:  # "Send at once when allowed" off: every chunk gets a slot at the gateway
        toggle = field(page, "Send at once when allowed").get_by_role("switch")
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
    """Resume -> read the plan in the form -> (tick) -> comment -> Submit."""
    page.get_by_role("button", name="Resume", exact=True).click()
    modal = page.locator(".p-modal")
    expect(modal.get_by_text("Resume Flow Run")).to_be_visible()
    # The plan the operator approves: why it asks, and how many would be texted.
    expect(modal.get_by_text(re.compile("approbation requise"))).to_be_visible()
    recipients_row = modal.locator("tr").filter(
        has=page.locator("td", has_text=re.compile(r"^Destinataires$"))
    )
    expect(recipients_row.first.locator("td").nth(1)).to_have_text(str(recipients))
    box = field(page, "Approuver l'envoi").get_by_role("switch")
    expect(box).to_have_attribute("aria-checked", "false")  # refusing is the default
    if approve:
        box.click()
        expect(box).to_have_attribute("aria-checked", "true")
    field(page, "Commentaire").locator("textarea, input").first.fill(comment)
    submit_answer(page, modal)


def submit_answer(page: Any, modal: Any) -> None:
    """Submit the resume form, as an operator does until it goes through."""
    for _ in range(3):
        with page.expect_response(
            lambda r: r.url.endswith("/resume") and r.request.method == "POST"
        ) as answered:
            modal.get_by_role("button", name="Submit", exact=True).click()
        # A busy SQLite fails the server's transaction ("database is locked"); nothing changed,
        # the form stays open with an error toast, and an operator submits again.
        if answered.value.ok:
            break
        page.wait_for_timeout(2000)
    assert answered.value.ok, answered.value.text()
    expect(modal).to_have_count(0)


def sends_of(stack: LocalStack, cid: str) -> list[dict[str, Any]]:
    prefix = chunk_tag(cid, 0).split("-")[0] + "-"
    return [s for s in stack.simulator_state()["sends"] if (s["tag"] or "").startswith(prefix)]


def api_run(stack: LocalStack, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = stack.api("GET", f"/flow_runs/{run_id}")
    return run


# -- the tests -----------------------------------------------------------------------------------


def test_a_campaign_above_the_threshold_waits_for_approval_then_sends_once(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    numbers = mobiles(25_000_000, 4)
    # Two rows that are not texted (a duplicate, a landline): the summary shows them masked.
    landline = "+33145000017"
    path = write_recipients(clone, "approve-in-the-ui", [*numbers, numbers[0], landline])
    cid = f"ok-{secrets.token_hex(3)}"
    run = start_campaign(page, stack, cid, path, approve_above=2)
    assert run["parameters"]["approve_above_recipients"] == 2

    pause_until_asked(page, stack, run, cid)
    assert sends_of(stack, cid) == []  # nothing goes out while it waits
    # The plan is also an artifact of the run, for whoever opens it later.
    page.get_by_text("Artifacts", exact=True).first.click()
    expect(page.get_by_text(f"{cid}-approval", exact=True)).to_be_visible()

    resume(page, approve=True, comment="budget validé", recipients=4)
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    assert campaign_numbers(stack, cid) == Counter(numbers)  # each texted once
    page.get_by_text("Logs", exact=True).first.click()  # who approved said why: in the log
    expect(page.get_by_text(re.compile("approved: budget validé"))).to_be_visible()

    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(f"{cid}-summary", exact=True).click()
    expect(page.get_by_text(f"Campagne d'enquête {cid}")).to_be_visible()  # in French
    sent_row = page.locator("tr").filter(has=page.locator("td", has_text=re.compile("^envoyés$")))
    expect(sent_row.first.locator("td").nth(1)).to_have_text("4")
    expect(page.get_by_text("Exemples de numéros rejetés (masqués)")).to_be_visible()
    expect(page.get_by_text(re.compile("approuvée : « budget validé »"))).to_be_visible()
    shown = page.locator("body").inner_text()
    assert not FULL_NUMBER.findall(shown), FULL_NUMBER.findall(shown)
    assert not [n for n in [*numbers, landline] if n in shown or "0" + n[3:] in shown]
    assert api_run(stack, run["id"])["tags"].count(f"campaign:{cid}") == 1


def test_a_campaign_refused_in_the_ui_sends_nothing(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    numbers = mobiles(25_100_000, 3)
    path = write_recipients(clone, "refuse-in-the-ui", numbers)
    cid = f"no-{secrets.token_hex(3)}"
    run = start_campaign(page, stack, cid, path, approve_above=1)

    pause_until_asked(page, stack, run, cid)
    resume(page, approve=False, comment="trop cher", recipients=3)
    assert wait_final(page) == "Refused", stack.log_tail("worker-1", 60)
    ended = api_run(stack, run["id"])
    assert (ended["state_type"], ended["state_name"]) == ("CANCELLED", "Refused")
    assert "trop cher" in ended["state"]["message"]
    assert sends_of(stack, cid) == []


def test_the_cancel_deployment_calls_off_a_scheduled_campaign(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    numbers = mobiles(25_200_000, 3)
    path = write_recipients(clone, "cancel-from-the-ui", numbers)
    cid = f"later-{secrets.token_hex(3)}"
    run = start_campaign(page, stack, cid, path, scheduled=True)
    open_run_page(page, stack, run["id"], cid)
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    scheduled = sends_of(stack, cid)
    assert scheduled and all(s["scheduled_at"] and not s["cancelled"] for s in scheduled)
    assert Counter(n for s in scheduled for n in s["numbers"]) == Counter(numbers)

    # The summary links to the cancel deployment (the UI opens it in a new tab: followed here in
    # the same page); its form takes the campaign id.
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(f"{cid}-summary", exact=True).click()
    link = page.get_by_role("link", name=re.compile("Annuler la campagne"))
    href = str(link.get_attribute("href"))
    cancel_deployment = deployment(stack, "cancel-campaign")
    assert href == f"{stack.ui_url}/deployments/deployment/{cancel_deployment['id']}", href
    page.goto(href)
    expect(page.get_by_text("cancel-campaign", exact=True).first).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    type_into(page, "campaign_id", cid)
    cancel = submit_run(page)
    assert cancel["parameters"]["campaign_id"] == cid

    open_run_page(page, stack, cancel["id"], f"{cid} · cancel")
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    assert all(s["cancelled"] for s in sends_of(stack, cid)), sends_of(stack, cid)
    find_in_runs_list(page, stack, f"{cid} · cancel", "Completed")
