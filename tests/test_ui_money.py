"""Money first, in the Prefect UI: a campaign its credits do not cover waits for approval with the
shortfall at the top of the form, whose decision cannot be "send everything": refusing sends
nothing; choosing "Envoyer ce que les crédits permettent" sends what the credits cover.

A real stack (Prefect server, process worker, gateway simulator) and headless Chromium, as in
tests/test_ui_operator.py, whose helpers these tests reuse. Screenshots of the form at desktop
(1400 px) and phone (390 px) width, of the failed run and of the summary go to the test's tmp
folder (and /tmp/shots/money when it exists).
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    api_run,
    choose_decision,
    field,
    open_run_page,
    pause_until_asked,
    sends_of,
    start_campaign,
    submit_answer,
    wait_final,
    write_recipients,
)
from helpers import stack_mobiles as mobiles
from playwright.sync_api import expect

from scripts.server import LocalStack, _http

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOTS = Path("/tmp/shots/money")
PRICE = 0.045  # the deployment's estimate, and the simulator's price
RECIPIENTS = 10
CREDITS = 0.2  # covers 4 of the 10 recipients (4 x 0,045 = 0,18)


@pytest.fixture(scope="module")
def clone(ui_clone: Path) -> Path:
    return ui_clone  # one stack for every browser module (tests/conftest.py)


@pytest.fixture(scope="module")
def stack(ui_stack: LocalStack) -> Iterator[LocalStack]:
    credits = ui_stack.simulator_state()["credits"]
    yield ui_stack
    set_credits(ui_stack, credits)  # the next module finds the account as it was


def set_credits(stack: LocalStack, amount: float) -> None:
    _http("POST", stack.simulator_admin_url + "/_sim/credits", {"credits": amount})


def keep(page: Any, tmp_path: Path, name: str) -> None:
    """A screenshot in the test's folder (and /tmp/shots/money when it exists)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / path.name)


def shoot_form_on_a_phone(
    browser: Any, stack: LocalStack, run_id: str, tmp_path: Path, name: str
) -> None:
    """The same form as an operator on a phone (390 px) sees it: there, Resume is in the run's
    menu. A page of its own: resizing the desktop page would close its open form."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(60_000)
    try:
        phone = context.new_page()
        phone.goto(f"{stack.ui_url}/runs/flow-run/{run_id}")
        phone.locator(".page-heading").get_by_role("button").last.click()  # the run's menu
        phone.get_by_text("Resume", exact=True).last.click()
        modal = phone.locator(".p-modal")
        expect(modal.locator("blockquote").first).to_contain_text("Crédits insuffisants")
        keep(phone, tmp_path, f"{name}-390")
    finally:
        context.close()


def open_form_and_read_the_warning(page: Any) -> Any:
    """Resume -> the form opens with the shortfall, in bold, above the plan."""
    page.get_by_role("button", name="Resume", exact=True).click()
    modal = page.locator(".p-modal")
    expect(modal.get_by_text("Resume Flow Run")).to_be_visible()
    warning = modal.locator("blockquote").first
    expect(warning).to_contain_text(re.compile(r"Crédits insuffisants : il manque 0,25"))
    expect(warning).to_contain_text("de quoi en envoyer 4")
    expect(warning).to_contain_text("Envoyer à tous n'est pas possible")
    # the warning comes before the threshold that asked for the approval
    text = modal.inner_text()
    assert text.index("Crédits insuffisants") < text.index("Seuil dépassé"), text
    return modal


def answer(page: Any, modal: Any, *, within: bool, comment: str) -> None:
    """Send what the credits allow, or refuse: sending everything is not offered."""
    choose_decision(
        page,
        modal,
        "Envoyer ce que les crédits permettent" if within else "Refuser (rien n'est envoyé)",
    )
    field(page, "Commentaire").locator("textarea, input").first.fill(comment)
    submit_answer(page, modal)


def test_refusing_a_campaign_short_of_credits_sends_nothing(
    stack: LocalStack, clone: Path, browser: Any, page: Any, tmp_path: Path
) -> None:
    set_credits(stack, CREDITS)
    path = write_recipients(clone, "short-in-the-ui", mobiles(26_000_000, RECIPIENTS))
    cid = f"short-{secrets.token_hex(3)}"
    run = start_campaign(page, stack, cid, path, approve_above=1)
    pause_until_asked(page, stack, run, cid)

    modal = open_form_and_read_the_warning(page)
    keep(page, tmp_path, "approval-form-short-1400")
    shoot_form_on_a_phone(browser, stack, run["id"], tmp_path, "approval-form-short")
    answer(page, modal, within=False, comment="on verra")

    assert wait_final(page) == "Refusée", stack.log_tail("worker-1", 60)
    assert sends_of(stack, cid) == []
    assert "on verra" in api_run(stack, run["id"])["state"]["message"]
    keep(page, tmp_path, "run-refused-short-1400")


def test_approving_with_send_what_the_credits_allow_sends_within_them(
    stack: LocalStack, clone: Path, page: Any, tmp_path: Path
) -> None:
    set_credits(stack, CREDITS)
    numbers = mobiles(26_100_000, RECIPIENTS)
    path = write_recipients(clone, "within-in-the-ui", numbers)
    cid = f"within-{secrets.token_hex(3)}"
    run = start_campaign(page, stack, cid, path, approve_above=1)
    pause_until_asked(page, stack, run, cid)

    modal = open_form_and_read_the_warning(page)
    answer(page, modal, within=True, comment="on envoie ce qu'on peut")
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    texted = [n for s in sends_of(stack, cid) for n in s["numbers"]]
    assert sorted(texted) == sorted(numbers[:4])  # the first four, in plan order, once each
    assert stack.simulator_state()["credits"] == pytest.approx(CREDITS - 4 * PRICE)

    page.get_by_text("Logs", exact=True).first.click()
    expect(
        page.get_by_text(re.compile("Envoi dans la limite des crédits : 4")).first
    ).to_be_visible()
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(f"{cid}-summary", exact=True).click()
    expect(page.get_by_text(re.compile("crédits insuffisants")).first).to_be_visible()
    keep(page, tmp_path, "summary-within-1400")
    open_run_page(page, stack, run["id"], cid)
