"""Approval that cannot be mistaken, without a server: what every answer to the resume form
decides, that the form cannot be answered without a decision (the schema the Prefect server
validates the answer against), and the plan the form shows (short lines, a resumed campaign's
progress, plurals). The browser side is tests/test_ui_approval.py."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.utilities.schema_tools.validation import build_error_obj, validate

from tasks import approval as ap
from tasks import money as mn
from tasks.outcomes import ChunkState
from tasks.steps import approval as steps

SEND, WITHIN, REFUSE = (ap.CHOICES[c]["fr"] for c in ap.Choice)


@pytest.mark.parametrize(
    ("short", "answer", "decision", "within"),
    [
        (False, {"decision": SEND, "comment": "ok"}, "approved", False),
        (False, {"decision": REFUSE, "comment": "trop cher"}, "refused", False),
        (False, {"decision": "Send"}, "approved", False),  # the English form's words
        (False, {"decision": "send"}, "approved", False),  # the code
        (True, {"decision": WITHIN}, "approved", True),
        (True, {"decision": REFUSE}, "refused", False),
        # "send all" on a plan the money does not cover (not offered; an API caller): approved
        # without the limit, so the plan made again stops short of money and sends nothing
        (True, {"decision": SEND}, "approved", False),
        # an answer in the words of the switch the form had before (``approve``), the box
        # counted only on a short plan with a yes
        (False, {"approve": True, "comment": "ok"}, "approved", False),
        (False, {"approve": False}, "refused", False),
        (False, {"approve": True, "send_within_credits": True}, "approved", False),
        (True, {"approve": True, "send_within_credits": True}, "approved", True),
        (True, {"approve": True}, "approved", False),
        (True, {"approve": False, "send_within_credits": True}, "refused", False),
        # no decision at all (the form and the server refuse it): nothing is sent
        (False, {"comment": "je suis d'accord"}, "refused", False),
        (False, {"decision": None, "approve": None}, "refused", False),
        (True, {"decision": "n'importe quoi"}, "refused", False),
    ],
)
def test_what_each_answer_decides(
    short: bool, answer: dict[str, Any], decision: str, within: bool
) -> None:
    verdict = ap.verdict(answer, short=short)
    assert (verdict.decision, verdict.within_credits) == (decision, within)
    assert verdict.lets_send is (decision == "approved")
    assert verdict.record() == {  # the summary keeps its codes (tasks/steps/report.py)
        "decision": decision,
        "reasons": [],
        "comment": str(answer.get("comment", "")),
        **({"send_within_credits": True} if within else {}),
    }


def schema_of(form: type[Any]) -> dict[str, Any]:
    """The schema the paused run stores and the server checks an answer against."""
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    return create_v2_schema(form.__name__, model_base=form.with_initial_data(description="d"))


@pytest.mark.parametrize("short", [False, True])
@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_form_cannot_be_answered_without_a_decision(short: bool, lang: str) -> None:
    form = steps.form(lang, short)  # type: ignore[arg-type]
    schema = schema_of(form)
    assert list(schema["properties"]) == ["decision", "comment"]  # no switch
    assert schema["required"] == ["decision"]  # the UI says so (no "(Optional)")
    assert "default" not in schema["properties"]["decision"]  # nothing chosen in advance
    offered = schema["definitions"]["Choix"]["enum"]
    expected = ap.choices(short)
    assert offered == [ap.CHOICES[c][lang] for c in expected]
    assert (ap.Choice.send in expected) is not short  # short of money: never "send all"
    assert validate({"decision": offered[0]}, schema) == []
    for missing in ({}, {"comment": "d'accord"}):
        said = build_error_obj(validate(missing, schema))
        assert said["errors"] == [
            {"property": "decision", "errors": ["'decision' is a required property"]}
        ]
    assert validate({"decision": "Envoyer tout"}, schema)  # only the offered choices
    # An older caller's {"approve": true} is refused, in the words the server answers with.
    said = build_error_obj(validate({"approve": True, "comment": "ok"}, schema))
    assert not said["valid"] and {"property": "decision", "errors": [
        "'decision' is a required property"
    ]} in said["errors"]  # fmt: skip
    assert steps.verdict_of(form(decision=offered[0]), short=short).lets_send


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


def describe(money: mn.Money | None = None, **kw: Any) -> str:
    values: dict[str, Any] = {
        "campaign_id": "mairie-enquete-2026-12",
        "recipients": 4,
        "cost": 0.18,
        "currency": "EUR",
        "credits": 98.38,
        "max_cost": None,
        "above_cost": None,
        "above_recipients": 2,
        "plan": [
            {"index": 0, "territory": "FR", "slot": None, "size": 3},
            {"index": 1, "territory": "RE", "slot": "2026-12-08T10:00:00+01:00", "size": 1},
        ],
        "timeout_hours": 24,
        "money": money,
    }
    return plain(ap.describe(**{**values, **kw}))


def test_the_plan_is_short_lines_in_french_with_every_slot() -> None:
    text = describe()
    assert "|" not in text  # no table: it was cut off on the right at 530 px
    assert max(len(line) for line in text.splitlines()) <= 150  # wraps as a paragraph
    assert "- Destinataires : 4" in text and "- Coût estimé : 0,18 €" in text
    assert "- France métropolitaine : tout de suite, 3 destinataires" in text
    assert "- La Réunion : mardi 8 décembre 13:00 (heure de La Réunion), 1 destinataire" in text
    assert "Seuil dépassé : 4 destinataires, au-dessus de 2." in text
    assert "(obligatoire)" in text and "rien n'est envoyé" in text
    for english in ("Approve", "Recipients", "Send", " / ", "cochez", "Resume"):
        assert english not in text, english
    assert "Campagne déjà commencée" not in text  # a new campaign


def test_a_shortfall_shows_the_money_and_what_would_be_sent() -> None:
    short = mn.Money(10, 0.045, 0.2, None, 0.0)
    text = describe(short, recipients=10, cost=0.45, credits=0.2)
    assert "- Crédits du compte : 0,2 €" in text or "- Crédits du compte : 0,20 €" in text
    assert "- Il manque : 0,25 €" in text
    assert "- Les crédits permettent d'envoyer à : 4 destinataires" in text
    assert "Envoyer à tous n'est pas possible" in text
    assert f"« {WITHIN} » pour n'envoyer qu'aux 4 premiers destinataires" in text


def test_a_resumed_campaign_says_what_was_sent_and_what_is_left() -> None:
    chunks = [
        (ChunkState.sent, 500),
        (ChunkState.sent, 1),
        (ChunkState.in_doubt, 2),
        (ChunkState.sending, 1),
        (ChunkState.cancelled, 0),
        (ChunkState.pending, 7),  # not sent yet: in the plan's "left to send"
        (ChunkState.failed, 3),
    ]
    earlier = ap.Earlier.of(chunks)
    assert earlier == ap.Earlier(sent=501, unconfirmed=3, cancelled=0)
    text = describe(earlier=earlier, recipients=10)
    assert "**Campagne déjà commencée (même identifiant)**" in text
    assert "- Déjà envoyés : 501 destinataires" in text
    assert "- Pas encore confirmés par SMS Partner : 3 destinataires" in text
    assert "Annulés" not in text
    assert "- Reste à envoyer : 10 destinataires" in text
    english = plain(ap.describe(**{**_base(), "earlier": earlier, "lang": "en"}))
    assert "- Already sent: 501 recipients" in english and "Destinataires" not in english
    assert not ap.Earlier.of([]).any


def _base() -> dict[str, Any]:
    return {
        "campaign_id": "c",
        "recipients": 1,
        "cost": 0.045,
        "currency": "EUR",
        "credits": None,
        "max_cost": None,
        "above_cost": None,
        "above_recipients": 0,
        "plan": [{"index": 0, "territory": "FR", "slot": None, "size": 1}],
        "timeout_hours": 24,
    }


@pytest.mark.parametrize(
    ("n", "fr", "en"),
    [
        (0, "0 destinataire", "0 recipients"),
        (1, "1 destinataire", "1 recipient"),
        (2, "2 destinataires", "2 recipients"),
        (1500, "1 500 destinataires", "1,500 recipients"),
    ],
)
def test_counts_of_people_agree_with_their_number(n: int, fr: str, en: str) -> None:
    assert plain(ap.people(n, "fr")) == fr and ap.people(n, "en") == en
