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
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    api_run,
    campaign_numbers,
    deployment,
    field,
    find_in_runs_list,
    open_run_page,
    pause_until_asked,
    resume,
    sends_of,
    start_campaign,
    submit_run,
    wait_final,
    write_recipients,
)
from helpers import (
    stack_mobiles as mobiles,
)
from playwright.sync_api import expect

from scripts.server import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Anything that still reads as a whole French number, national or international, with or without
# separators (a masked number has bullets in the middle).
FULL_NUMBER = re.compile(r"(?:\+33|\b0)[\s.]?[1-9](?:[\s.]?\d){8}\b")


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
    expect(page.get_by_text(re.compile("envoi approuvé : budget validé"))).to_be_visible()

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
    assert wait_final(page) == "Refusée", stack.log_tail("worker-1", 60)
    ended = api_run(stack, run["id"])
    assert (ended["state_type"], ended["state_name"]) == ("CANCELLED", "Refusée")
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

    # The summary links to the cancel deployment's run form, already filled with the campaign's
    # id (the UI opens it in a new tab: followed here in the same page). More in test_ui_cancel.
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(f"{cid}-summary", exact=True).click()
    link = page.get_by_role("link", name="Annuler cette campagne", exact=True)
    href = str(link.get_attribute("href"))
    cancel_deployment = deployment(stack, "cancel-campaign")
    run_form = f"{stack.ui_url}/deployments/deployment/{cancel_deployment['id']}/run?parameters="
    assert href.startswith(run_form), href
    page.goto(href)
    expect(field(page, "Campagne à annuler").locator("input, textarea").first).to_have_value(cid)
    cancel = submit_run(page)
    assert cancel["parameters"]["campaign_id"] == cid

    open_run_page(page, stack, cancel["id"], f"{cid} · cancel")
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    assert all(s["cancelled"] for s in sends_of(stack, cid)), sends_of(stack, cid)
    find_in_runs_list(page, stack, f"{cid} · cancel", "Completed")
