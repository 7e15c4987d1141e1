"""Progress you can watch: an operator starts a campaign of 100,000 recipients from the Prefect UI,
with the gateway answering in 100 ms, opens the run's Artifacts tab and sees the progress
artifact move (phase, chunks sent out of the total, time) until the run ends.

Headless Chromium driven by Playwright against one stack (Prefect server, process worker,
gateway simulator), as in tests/test_ui_operator.py. The page is only read, never reloaded: what
is seen is what the UI's own refresh shows an operator.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FINAL,
    RUN_TIMEOUT_MS,
    campaign_numbers,
    open_custom_run,
    open_run_page,
    state_badge,
    submit_run,
    type_into,
    write_recipients,
)
from helpers import stack_mobiles as mobiles
from playwright.sync_api import expect

from scripts.server import LocalStack, _http

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RECIPIENTS = 100_000
LATENCY_MS = 100
SHOTS = Path("/tmp/shots/PROGRESS")
# The first word of the card in each phase, in their order; "Exécution ..." once it has ended.
PHASES = ["Préparation", "Envoi", "Vérification", "Rapport", "Exécution"]


@pytest.fixture(scope="module")
def clone(ui_clone: Path) -> Path:
    return ui_clone  # one stack for every browser module (tests/conftest.py)


@pytest.fixture(scope="module")
def stack(ui_stack: LocalStack) -> Iterator[LocalStack]:
    """The shared stack, its gateway LATENCY_MS slow and rich enough for 100,000 SMS (the
    campaign runs to its end), as it was again afterwards."""
    admin = ui_stack.simulator_admin_url
    credits = ui_stack.simulator_state()["credits"]
    _http("POST", admin + "/_sim/faults", {"latency_ms": LATENCY_MS})
    _http("POST", admin + "/_sim/credits", {"credits": 20000})
    try:
        yield ui_stack
    finally:
        _http("POST", admin + "/_sim/faults", {})
        _http("POST", admin + "/_sim/credits", {"credits": credits})


def shoot(page: Any, card: Any, name: str) -> None:
    """The page at desktop and phone widths, the card in view, kept for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 1000})
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_the_progress_artifact_moves_while_a_large_campaign_runs(
    stack: LocalStack, clone: Path, page: Any
) -> None:
    numbers = mobiles(27_000_000, RECIPIENTS)
    path = write_recipients(clone, "watch-progress", numbers)
    cid = f"watch-{secrets.token_hex(3)}"

    open_custom_run(page, stack, "weekly-survey")
    type_into(page, "Reprendre une campagne", cid)
    type_into(page, "Emplacement du fichier", path)
    # One call at a time: 200 chunks of 500 take some 20 s at 100 ms a call, the time to watch.
    type_into(page, "Avancé · envois en parallèle", 1)
    # The deployment asks for approval above 100 EUR (tests/test_ui_operator.py covers it): the
    # operator raises the threshold for this budgeted campaign of 4,500 EUR.
    type_into(page, "Demander l'accord au-delà de (€)", 10_000, kind="Montant")
    run = submit_run(page)
    assert run["parameters"]["limits"]["concurrency"] == 1
    assert run["parameters"]["approve_above_cost"] == 10_000

    open_run_page(page, stack, run["id"], cid)
    page.get_by_text("Artifacts", exact=True).first.click()
    card = page.get_by_text(re.compile(f" — campagne {re.escape(cid)}$")).first
    expect(card).to_be_visible(timeout=RUN_TIMEOUT_MS)

    seen: list[str] = []
    shot = False
    deadline = time.monotonic() + 240
    while not FINAL.fullmatch(state_badge(page).inner_text().strip()):
        assert time.monotonic() < deadline, (seen, stack.log_tail("worker-1", 60))
        if card.count():  # between two refreshes of the list, the card may be redrawn
            text = card.inner_text().strip()
            if not seen or text != seen[-1]:
                seen.append(text)
            if not shot and text.startswith("Envoi : "):
                shoot(page, card, "run-page-sending")
                shot = True
        # The UI asks for a running run's artifacts every 5 s by itself; an operator who
        # reloads the page sees the value of the moment (the artifact changes every second).
        page.reload()
        page.get_by_text("Artifacts", exact=True).first.click()
        card.or_(state_badge(page)).first.wait_for(timeout=RUN_TIMEOUT_MS)
        page.wait_for_timeout(250)

    print(f"progress seen in the UI ({len(seen)} values):", *seen, sep="\n  ")
    assert state_badge(page).inner_text().strip() == "Completed", stack.log_tail("worker-1", 60)
    assert len(set(seen)) >= 5, seen
    # The sends moved by chunk while the operator watched: several counts out of the 200.
    sent = [int(m[1]) for t in seen if (m := re.match(r"Envoi : (\d+) lots? sur 200 ", t))]
    assert len(set(sent)) >= 3 and sent == sorted(sent), seen
    # The phases show, in French, in their order.
    phases = [t.split(" ", 1)[0] for t in seen]
    assert phases == sorted(phases, key=PHASES.index)
    assert "Envoi" in phases, seen

    # Once the run is over, the card says so.
    page.reload()
    page.get_by_text("Artifacts", exact=True).first.click()
    ended = page.get_by_text(re.compile(f"^Exécution terminée en .* — campagne {re.escape(cid)}$"))
    expect(ended).to_be_visible()
    shoot(page, ended, "run-page-ended")
    assert campaign_numbers(stack, cid) == Counter(numbers)  # each texted once
