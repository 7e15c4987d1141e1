"""The run forms an operator fills in, in the Prefect UI (real server, worker and Chromium): every
label and help text French, no raw parameter name, one source kind's fields at a time, and a dry
run submitted from the French form completes.

Screenshots of each form at 1400 and 390 px go to /tmp/shots/form/ (looked at by a person).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    RUN_TIMEOUT_MS,
    field,
    open_custom_run,
    submit_run,
    write_recipients,
)
from helpers import stack_mobiles as mobiles

from flows.erase_person import erase_person
from flows.follow_up import follow_up_campaign
from flows.purge_personal_data import purge_personal_data
from flows.survey_campaign import send_survey_campaign
from scripts.server import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SHOTS = Path("/tmp/shots/form")

# English words a French label or help text must not hold (none is also a French word: "site",
# "date", "type", "minutes", "budget", "test", "page" and the like are left out on purpose).
ENGLISH = {
    "the", "of", "and", "or", "to", "is", "be", "when", "with", "without", "empty", "default",
    "file", "path", "survey", "campaign", "chunk", "chunks", "send", "sent", "sending", "hours",
    "number", "numbers", "phone", "property", "none", "null", "secret", "block", "key", "cost",
    "database", "query", "sheet", "column", "limit", "limits", "retry", "timeout", "settle",
    "ledger", "window", "approval", "approve", "kind", "source", "recipients", "dry", "run",
    "fan-out", "in_doubt", "sqlalchemy", "sondageident", "af2m_2024", "af2m_2026", "strict",
    "str", "int", "float", "bool", "dict",
}  # fmt: skip


def parameter_names(flow: Any) -> set[str]:
    """Every Python name of the flow's form: its parameters and their models' fields."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(flow).model_dump_for_openapi()
    names = set(schema["properties"])
    for definition in schema.get("definitions", {}).values():
        names |= set(definition.get("properties", {}))
    return names


def visible_words(page: Any) -> list[str]:
    """The form's labels, help texts and choices the operator can read."""
    page.wait_for_timeout(500)  # the form settles (anyOf sections render asynchronously)
    shown = page.locator(
        ".schema-form-property__label, .schema-form-property__description, "
        ".schema-form-property-any-of__section-header, .p-button-group button, option"
    )
    return [t.strip() for t in shown.all_inner_texts() if t.strip()]


def problems_in(texts: list[str], names: set[str]) -> list[str]:
    """Texts that are a raw parameter name, or hold an English word."""
    found = []
    for text in texts:
        if text in names or re.fullmatch(r"[a-z]+(?:_[a-z0-9]+)+", text):
            found.append(f"raw name: {text}")
        prose = re.sub(r"\S*[/:]\S*", " ", text.lower())  # not a path or an address's words
        words = set(re.findall(r"[^\W\d][\w-]*", prose))
        english = words & ENGLISH
        if english:
            found.append(f"English {sorted(english)}: {text}")
    return found


def shoot(page: Any, name: str) -> None:
    """The whole form at desktop and phone width (the UI scrolls inside its own panel, so the
    window is made as tall as the form)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tallest = "Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(300)
        page.set_viewport_size({"width": width, "height": int(page.evaluate(tallest)) + 50})
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def label(page: Any, text: str) -> Any:
    return page.locator(".schema-form-property__label", has_text=text)


def choose_source(page: Any, label: str) -> None:
    field(page, "Destinataires").get_by_role("button", name=label, exact=True).click()


def test_send_form_is_french_and_shows_one_source_kind(page: Any, stack: LocalStack) -> None:
    from playwright.sync_api import expect

    open_custom_run(page, stack, "weekly-survey")
    texts = visible_words(page)
    assert problems_in(texts, parameter_names(send_survey_campaign)) == [], texts
    labels = page.locator(".schema-form-property__label").all_inner_texts()
    # The operator's order: which survey, which people, when, how much, then the advanced ones.
    order = [
        "Enquête SMS Partner",
        "Destinataires",
        "Qui interroger",
        "Heures d'envoi",
        "Demander l'accord au-delà de (€)",
        "Budget maximum (€)",
        "Avancé · envois en parallèle",
        "Reprendre une campagne",
    ]
    at = [next(i for i, t in enumerate(labels) if t.startswith(o)) for o in order]
    assert at == sorted(at), labels
    assert not any(t.startswith("Avancé") for t in labels[: at[5]]), labels
    # Who is asked: the sample, the rules, the witnesses, a survey per segment, in one group.
    for words in (
        "Taille de l'échantillon",
        "Règles de sollicitation",
        "Fichier des témoins",
        "Envoyer seulement aux témoins",
        "Une enquête selon la colonne",
    ):
        expect(field(page, words)).to_be_visible()
    shoot(page, "send-file")

    # A file source shows the file's fields only; a database, the database's only.
    expect(field(page, "Emplacement du fichier")).to_be_visible()
    expect(label(page, "Adresse de la base")).to_have_count(0)
    choose_source(page, "Base de données")
    expect(field(page, "Adresse de la base")).to_be_visible()
    expect(field(page, "Requête ou table")).to_be_visible()
    expect(label(page, "Feuille Excel")).to_have_count(0)
    assert problems_in(visible_words(page), parameter_names(send_survey_campaign)) == []
    shoot(page, "send-database")
    choose_source(page, "Adresse web")
    expect(field(page, "Adresse du fichier")).to_be_visible()
    expect(label(page, "Requête ou table")).to_have_count(0)
    shoot(page, "send-url")


def test_a_dry_run_from_the_french_form_completes(
    page: Any, stack: LocalStack, clone: Path
) -> None:
    from playwright.sync_api import expect

    path = write_recipients(clone, "form-fr", mobiles(31_000_000, 3))
    cid = f"form-{secrets.token_hex(3)}"
    open_custom_run(page, stack, "weekly-survey")
    field(page, "Emplacement du fichier").locator("input, textarea").first.fill(path)
    field(page, "Essai sans envoi").get_by_role("switch").click()
    field(page, "Taille de l'échantillon").locator("input, textarea").first.fill("2")
    field(page, "Reprendre une campagne").locator("input, textarea").first.fill(cid)
    # "Jamais": no approval asked for the cost (the deployment's default asks above 100 €).
    cost = field(page, "Demander l'accord au-delà de (€)")
    cost.get_by_role("button", name="Jamais", exact=True).click()
    shoot(page, "send-dry-run-filled")
    run = submit_run(page)
    params = run["parameters"]
    assert params["recipients"]["path"] == path and params["dry_run"] is True
    assert params["campaign_id"] == cid
    assert params["audience"]["sample"] == "2"
    assert params.get("approve_above_cost") is None

    page.goto(f"{stack.ui_url}/runs/flow-run/{run['id']}")
    badge = page.locator(".page-heading-flow-run__meta .state-badge")
    final = re.compile("Completed|Failed|Crashed|Cancelled")
    expect(badge).to_have_text(final, timeout=RUN_TIMEOUT_MS)
    assert badge.inner_text().strip() == "Completed", stack.log_tail("worker-1", 60)


@pytest.mark.parametrize(
    ("deployment", "flow", "shot"),
    [
        ("daily-follow-up", follow_up_campaign, "follow-up"),
        ("erase-person", erase_person, "erase"),
        ("daily-purge", purge_personal_data, "purge"),
    ],
)
def test_follow_up_erase_and_purge_forms_are_french(
    page: Any, stack: LocalStack, deployment: str, flow: Any, shot: str
) -> None:
    open_custom_run(page, stack, deployment)
    texts = visible_words(page)
    assert texts
    assert problems_in(texts, parameter_names(flow)) == [], texts
    shoot(page, shot)


# -- choices: French in the form, the old codes still taken from scripts --------------------------

CHOICE_SHOTS = Path("/tmp/shots/choices")


def test_a_script_still_runs_the_deployment_with_the_old_codes(
    stack: LocalStack, clone: Path
) -> None:
    """`prefect deployment run ... -p approval_mode=pause` and run_deployment callers written
    before the form was French: the server (enforce_parameter_schema) takes their codes."""
    path = write_recipients(clone, "codes", mobiles(31_100_000, 2))
    cid = f"codes-{secrets.token_hex(3)}"
    run_id = stack.create_flow_run(
        "send-survey-campaign/weekly-survey",
        {
            "recipients": {"kind": "csv", "path": path},
            "campaign_id": cid,
            "dry_run": True,
            "approval_mode": "pause",
            "window": {"preset": "strict"},
            "approve_above_cost": None,
        },
    )
    run = stack.wait_for_run(run_id)
    assert run["state_type"] == "COMPLETED", stack.log_tail("worker-1", 60)
    assert run["parameters"]["approval_mode"] == "pause"


def test_the_choices_show_french_labels_and_no_code(page: Any, stack: LocalStack) -> None:
    """Each choice opens on its French list, which lists no code; the codes stay behind
    "Code technique", and coming back to "Choix" gives the French choice back."""
    from playwright.sync_api import expect

    from flows.parameters import APPROVAL_LABELS, CHOICE_TITLE, CODE_TITLE, WINDOW_LABELS

    CHOICE_SHOTS.mkdir(parents=True, exist_ok=True)
    open_custom_run(page, stack, "weekly-survey")
    for name, label, labels in (
        ("window", "Plage horaire", WINDOW_LABELS),
        ("approval", "Avancé · quand l'accord est nécessaire", APPROVAL_LABELS),
    ):
        choice = field(page, label)
        value = choice.locator(".p-select-button__value")
        expect(value).to_have_text(next(iter(labels.values())))  # the default, in French
        for width in (1400, 390):
            page.set_viewport_size({"width": width, "height": 900})
            choice.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            choice.screenshot(path=str(CHOICE_SHOTS / f"{name}-{width}.png"))
            # Headless Chromium's click does not open Prefect's select; the keyboard does.
            control = choice.locator("button.p-select-button__control")
            control.focus()
            control.press("ArrowDown")
            options = page.locator(".p-select-option")
            expect(options.first).to_be_visible()
            page.screenshot(path=str(CHOICE_SHOTS / f"{name}-open-{width}.png"))
            listed = [t.strip() for t in options.all_inner_texts()]
            assert listed == list(labels.values()), listed  # no code among them
            page.keyboard.press("Escape")
        page.set_viewport_size({"width": 1400, "height": 1000})
        choice.get_by_role("button", name=CODE_TITLE, exact=True).click()
        page.wait_for_timeout(300)
        choice.screenshot(path=str(CHOICE_SHOTS / f"{name}-code-1400.png"))
        choice.get_by_role("button", name=CHOICE_TITLE, exact=True).click()
        expect(value).to_have_text(next(iter(labels.values())))
    assert problems_in(visible_words(page), parameter_names(send_survey_campaign)) == []
