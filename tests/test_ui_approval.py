"""Approval that cannot be mistaken, in the Prefect UI: the resume form of a campaign above its
threshold shows the whole plan at 530 px, cannot be submitted without a decision, sends once on
"Envoyer", sends nothing on "Refuser", and shows a shortfall of credits with its numbers.

One stack for every browser module (tests/conftest.py) and headless Chromium, as an operator
uses them. Screenshots at 530 px and 1400 px go to /tmp/shots/approval/.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    api_run,
    campaign_numbers,
    choose_decision,
    close_toasts,
    field,
    open_choices,
    open_resume_form,
    open_run_page,
    pause_until_asked,
    sends_of,
    start_paused_campaign,
    state_badge,
    submit_answer,
    wait_final,
    write_recipients,
)
from helpers import stack_mobiles as mobiles
from playwright.sync_api import expect

from scripts.server import LocalStack, _http

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOTS = Path("/tmp/shots/approval")


@pytest.fixture(scope="module")
def stack(ui_stack: LocalStack) -> Iterator[LocalStack]:
    credits = ui_stack.simulator_state()["credits"]
    yield ui_stack
    set_credits(ui_stack, credits)  # the next module finds the account as it was


def set_credits(stack: LocalStack, amount: float) -> None:
    _http("POST", stack.simulator_admin_url + "/_sim/credits", {"credits": amount})


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def paused(page: Any, stack: LocalStack, clone: Path, name: str, first: int, n: int) -> Any:
    numbers = mobiles(first, n)
    path = write_recipients(clone, name, numbers)
    cid = f"{name}-{secrets.token_hex(3)}"
    run = start_paused_campaign(stack, cid, path, approve_above=1)
    pause_until_asked(page, stack, run, cid)
    return numbers, cid, run


def plan_fits(modal: Any) -> None:
    """The plan (the form's description) is not cut off on the right."""
    plan = modal.locator("ul").filter(has_text="Destinataires").first.locator("xpath=..")
    expect(plan).to_be_visible()
    wide = plan.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert wide[0] <= wide[1], wide
    body = modal.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert body[0] <= body[1], body


def test_the_form_shows_the_whole_plan_at_530px_and_needs_a_decision(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    numbers, cid, run = paused(page, stack, clone, "appr-send", 27_700_000, 3)
    page.set_viewport_size({"width": 530, "height": 900})
    page.reload()  # the run's page laid out for this width (Resume moves to its menu)
    modal = open_resume_form(page)
    expect(modal.get_by_text("Destinataires : 3", exact=True)).to_be_visible()
    # now or at the next allowed hour, depending on when the test runs
    slot = modal.get_by_text(re.compile(r"^France métropolitaine : .+, 3 destinataires$"))
    expect(slot).to_be_visible()
    box = slot.bounding_box()
    assert box["x"] + box["width"] <= 530, box  # the slot, inside the window
    plan_fits(modal)
    shoot(page, "form-530")

    # Submitting without a decision: the form says it is required, the run stays paused.
    close_toasts(page)
    modal.get_by_role("button", name="Submit", exact=True).click()
    expect(modal.get_by_text("required", exact=False).first).to_be_visible()
    expect(modal.get_by_text("(Optional)", exact=False)).to_have_count(1)  # the comment only
    shoot(page, "form-no-decision-530")
    page.wait_for_timeout(3000)
    assert api_run(stack, run["id"])["state_type"] == "PAUSED"
    assert sends_of(stack, cid) == []

    choose_decision(page, modal, "Envoyer")
    field(page, "Commentaire").locator("textarea, input").first.fill("budget validé")
    submit_answer(page, modal)
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    assert campaign_numbers(stack, cid) == Counter(numbers)  # each texted once
    assert api_run(stack, run["id"])["state_name"] == "Completed"


def test_refusing_with_a_comment_sends_nothing(stack: LocalStack, clone: Path, page: Any) -> None:
    _, cid, run = paused(page, stack, clone, "appr-refuse", 27_710_000, 2)
    modal = open_resume_form(page)
    shoot(page, "form-1400")
    choose_decision(page, modal, "Refuser (rien n'est envoyé)")
    field(page, "Commentaire").locator("textarea, input").first.fill("pas cette semaine")
    submit_answer(page, modal)
    assert wait_final(page) == "Refusée", stack.log_tail("worker-1", 60)
    ended = api_run(stack, run["id"])
    assert (ended["state_type"], ended["state_name"]) == ("CANCELLED", "Refusée")
    assert "pas cette semaine" in ended["state"]["message"]
    assert sends_of(stack, cid) == []


def test_a_shortfall_and_a_resumed_campaign_show_their_numbers(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    set_credits(stack, 0.2)  # covers 4 of the 10 recipients at 0,045 €
    numbers, cid, run = paused(page, stack, clone, "appr-short", 27_720_000, 10)
    page.set_viewport_size({"width": 530, "height": 900})
    page.reload()
    modal = open_resume_form(page)
    for shown in (
        r"Crédits du compte : 0,20? €",
        r"Coût estimé : 0,45 €",
        r"Il manque : 0,25 €",
        r"Les crédits permettent d'envoyer à : 4 destinataires",
    ):
        line = re.compile("^" + shown.replace(" €", r"\s€") + "$")
        expect(modal.get_by_text(line)).to_be_visible()
    warning = modal.locator("blockquote").first
    expect(warning).to_contain_text("Envoyer à tous n'est pas possible")
    plan_fits(modal)
    shoot(page, "form-short-530")
    offered = open_choices(page, "Décision")
    assert offered == [
        "Envoyer ce que les crédits permettent",
        "Refuser (rien n'est envoyé)",
    ], offered  # sending everything is not a choice
    choose_decision(page, modal, "Envoyer ce que les crédits permettent")
    submit_answer(page, modal)
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    assert sorted(campaign_numbers(stack, cid)) == sorted(numbers[:4])

    # The same campaign again, credits back: the form says what was sent and what is left.
    set_credits(stack, 100.0)
    page.set_viewport_size({"width": 1400, "height": 1000})
    path = "data/e2e/appr-short.csv"
    again = start_paused_campaign(stack, cid, path, approve_above=1)
    open_run_page(page, stack, again["id"], cid)  # its second run: two in the Runs list
    expect(state_badge(page)).to_have_text("Paused", timeout=90_000)
    modal = open_resume_form(page)
    expect(modal.get_by_text("Campagne déjà commencée (même identifiant)")).to_be_visible()
    expect(modal.get_by_text("Déjà envoyés : 4 destinataires", exact=True)).to_be_visible()
    expect(modal.get_by_text("Reste à envoyer : 6 destinataires", exact=True)).to_be_visible()
    shoot(page, "form-resumed-1400")
    choose_decision(page, modal, "Refuser (rien n'est envoyé)")
    submit_answer(page, modal)
    assert wait_final(page) == "Refusée", stack.log_tail("worker-1", 60)
    assert sorted(campaign_numbers(stack, cid)) == sorted(numbers[:4])  # nothing more
