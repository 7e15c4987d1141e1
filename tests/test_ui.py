"""An operator in the Prefect UI: open the send deployment, fill the Custom run form, submit, wait
for the run to complete and read the campaign's summary artifact.

Headless Chromium (Debian's package, installed by .ci/run) driven by Playwright, against the same
kind of stack as tests/test_deployments.py: Prefect server, process worker, gateway simulator.
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
    CHROMIUM,
    CHROMIUM_ARGS,
    campaign_numbers,
    field,
    new_context,
    submit_run,
    write_recipients,
)
from helpers import stack_mobiles as mobiles

from scripts.server import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def clone(ui_clone: Path) -> Path:
    return ui_clone


@pytest.fixture(scope="module")
def stack(ui_stack: LocalStack) -> LocalStack:
    return ui_stack  # one stack for every browser module (tests/conftest.py)


@pytest.fixture
def page(stack: LocalStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield new_context(browser).new_page()
        finally:
            browser.close()


def test_custom_run_from_the_form_completes_and_shows_its_summary(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    from playwright.sync_api import expect

    numbers = mobiles(24_000_000, 3)
    path = write_recipients(clone, "from-the-ui", numbers)
    cid = f"ui-{secrets.token_hex(3)}"

    page.goto(f"{stack.ui_url}/deployments")
    page.get_by_text("weekly-survey", exact=True).first.click()
    page.wait_for_url("**/deployments/deployment/**")
    expect(page.get_by_text("tuesday-10h-paris")).to_be_visible()  # the weekly schedule
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()

    # The form speaks the operator's language and asks for no secret.
    for label in (
        "Destinataires",
        "Emplacement du fichier",
        "Plage horaire",
        "Budget maximum",
        "Avancé · envois en parallèle",
    ):
        expect(field(page, label)).to_be_visible()
    labels = page.locator(".schema-form-property__label").all_inner_texts()
    # Fields naming a Secret block ("... (Secret block)", api_key_block) take a name, not a secret.
    secretish = [
        t for t in labels if re.search(r"key|secret|password|token", t, re.I) and "block" not in t
    ]
    assert not secretish, labels

    field(page, "Reprendre une campagne").locator("textarea, input").first.fill(cid)
    field(page, "Emplacement du fichier").locator("textarea, input").first.fill(path)

    run = submit_run(page)
    assert run["parameters"]["campaign_id"] == cid
    assert run["parameters"]["recipients"]["path"] == path

    page.goto(f"{stack.ui_url}/runs/flow-run/{run['id']}")
    badge = page.locator(".page-heading-flow-run__meta .state-badge")
    expect(badge).to_have_text(re.compile("Completed|Failed|Crashed|Cancelled"), timeout=180_000)
    assert badge.inner_text().strip() == "Completed", stack.log_tail("worker-1", 60)

    page.get_by_text("Artifacts", exact=True).first.click()  # the run's tab
    page.get_by_text(f"{cid}-summary", exact=True).click()
    expect(page.get_by_text(f"Campagne d'enquête {cid}")).to_be_visible()  # French by default
    sent_row = page.locator("tr").filter(has=page.locator("td", has_text=re.compile(r"^envoyés$")))
    expect(sent_row.first.locator("td").nth(1)).to_have_text("3")

    assert campaign_numbers(stack, cid) == Counter(numbers)  # each texted once
