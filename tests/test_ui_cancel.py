"""Cancel from the campaign, in the Prefect UI: a scheduled campaign's summary lists what is
still scheduled and links to the cancel form already filled with its id; the cancel run says,
in French, what it called off; a mistyped id comes back as typed, never masked.

A real stack (Prefect server, process worker, gateway simulator) and headless Chromium, as in
tests/test_ui_operator.py. The campaign is started through the deployment (its form is another
test's subject); everything about the cancel is done with the mouse. Screenshots at 1400 and
390 px go to /tmp/shots/cancel/ (looked at by a person when the texts change).
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from helpers import (
    api_run,
    deployment,
    explain,
    field,
    open_run_page,
    run_deployment,
    sends_of,
    submit_run,
    wait_final,
    write_recipients,
)
from helpers import stack_mobiles as mobiles
from playwright.sync_api import expect

from scripts.server import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOTS = Path("/tmp/shots/cancel")
WIDTHS = {"desktop": 1400, "phone": 390}
ID_LABEL = "Campagne à annuler"


def shoot(page: Any, name: str, height: int = 1000) -> None:
    """The page at desktop and phone width (for a person to look at). The UI scrolls inside
    its own pane, so a tall window shows what a person scrolls through."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for kind, width in WIDTHS.items():
        page.set_viewport_size(
            {"width": width, "height": int(height * (1.6 if width < 800 else 1))}
        )
        page.wait_for_timeout(300)  # the layout settles
        page.screenshot(path=str(SHOTS / f"{name}-{kind}.png"))
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 1000})


def open_artifact(page: Any, stack: LocalStack, run_id: str, name: str, key: str) -> None:
    """The run's page -> Artifacts -> the artifact ``key``."""
    open_run_page(page, stack, run_id, name)
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(key, exact=True).click()
    page.wait_for_url("**/artifacts/artifact/**")


def scheduled_campaign(stack: LocalStack, clone: Path, cid: str, numbers: list[str]) -> str:
    """A campaign whose every chunk waits at the gateway for its slot; the send run's id."""
    path = write_recipients(clone, cid, numbers)
    done, run_id = run_deployment(
        stack,
        "send-survey-campaign/weekly-survey",
        {"campaign_id": cid, "recipients": {"path": path}, "window": {"allow_immediate": False}},
    )
    assert done.returncode == 0, explain(stack, done)
    scheduled = sends_of(stack, cid)
    assert scheduled and all(s["scheduled_at"] and not s["cancelled"] for s in scheduled)
    return run_id


def test_a_campaign_is_cancelled_from_the_link_of_its_summary(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    numbers = mobiles(25_300_000, 3)
    cid = f"annul-{secrets.token_hex(3)}"
    send_run = scheduled_campaign(stack, clone, cid, numbers)

    # The summary: what is still scheduled, and the link, in French.
    open_artifact(page, stack, send_run, cid, f"{cid}-summary")
    expect(page.get_by_role("heading", name="Annuler cette campagne")).to_be_visible()
    expect(page.get_by_text("Encore programmé, peut être annulé :")).to_be_visible()
    slot = page.locator("li").filter(has_text="France métropolitaine : 3 destinataires")
    expect(slot).to_contain_text("(heure de Paris)")  # the slot, for people
    expect(page.get_by_text(re.compile("boutons « Cancel » de Prefect"))).to_be_visible()
    link = page.get_by_role("link", name="Annuler cette campagne", exact=True)
    shoot(page, "1-summary-offer", height=1700)

    # The link opens the cancel deployment's Custom run page, its form filled with the id (the
    # UI opens it in a new tab: followed here in the same page).
    href = str(link.get_attribute("href"))
    cancel_deployment = deployment(stack, "cancel-campaign")
    where = urlsplit(href)
    assert f"{where.scheme}://{where.netloc}{where.path}" == (
        f"{stack.ui_url}/deployments/deployment/{cancel_deployment['id']}/run"
    )
    filled = json.loads(unquote(parse_qs(where.query)["parameters"][0]))
    assert filled == {"campaign_id": cid, "lang": "fr"}
    page.goto(href)
    box = field(page, ID_LABEL).locator("input, textarea").first
    expect(box).to_have_value(cid)
    help_text = page.get_by_text(re.compile("sont décommandés chez SMS Partner"))
    expect(help_text).to_be_visible()
    expect(page.get_by_text("campaign_id", exact=True)).to_have_count(0)  # no raw name
    shoot(page, "2-cancel-form-filled")

    cancel = submit_run(page)
    assert cancel["parameters"]["campaign_id"] == cid
    open_run_page(page, stack, cancel["id"], f"{cid} · cancel")
    assert wait_final(page) == "Completed", stack.log_tail("worker-1", 60)
    assert all(s["cancelled"] for s in sends_of(stack, cid)), sends_of(stack, cid)

    # The cancel run says what it did, in French: who will not be texted, what was cancelled.
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(f"{cid}-cancel", exact=True).click()
    expect(page.get_by_text(f"Annulation de la campagne {cid}")).to_be_visible()
    expect(page.get_by_text(re.compile("3 destinataires ne recevront pas le SMS"))).to_be_visible()
    expect(page.get_by_text(re.compile("lots? annulés? chez SMS Partner"))).to_be_visible()
    expect(page.get_by_text("Plus rien ne partira pour cette campagne.")).to_be_visible()
    shoot(page, "3-cancel-result")

    # The campaign's summary, brought up to date by the cancel (the version the cancel run
    # made, on the key's timeline), offers nothing more to cancel.
    page.goto(f"{stack.ui_url}/artifacts/key/{cid}-summary")
    made_by_cancel = page.get_by_role("listitem").filter(has_text=f"{cid} · cancel")
    made_by_cancel.get_by_role("heading").get_by_role("link").click()
    page.wait_for_url("**/artifacts/artifact/**")
    expect(page.get_by_text(re.compile("^Campagne d'enquête")).first).to_be_visible()
    shoot(page, "4-summary-after-cancel", height=1700)
    expect(page.get_by_text(re.compile("annulé")).first).to_be_visible()
    expect(page.get_by_role("link", name="Annuler cette campagne")).to_have_count(0)


def test_a_mistyped_campaign_id_comes_back_as_typed(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    typed = "demo-satisfaction-20251207-103031"  # the tail forgotten: no such campaign
    cancel_deployment = deployment(stack, "cancel-campaign")
    page.goto(f"{stack.ui_url}/deployments/deployment/{cancel_deployment['id']}/run")
    field(page, ID_LABEL).locator("input, textarea").first.fill(typed)
    run = submit_run(page)
    open_run_page(page, stack, run["id"], f"{typed} · cancel")
    assert wait_final(page) == "Failed"
    message = api_run(stack, run["id"])["state"]["message"]
    assert message.startswith(f"Campagne « {typed} » inconnue : aucun envoi"), message
    assert "•" not in message
    page.get_by_text("Logs", exact=True).first.click()
    expect(page.get_by_text(re.compile(f"Campagne « {typed} » inconnue")).first).to_be_visible()
    shoot(page, "5-unknown-id")
