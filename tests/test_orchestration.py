"""The pieces the flows wire: the plan written to a real ledger, the models' plain values, the
approval's end and the claims' credit check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import PLAN_CREDITS as CREDITS
from helpers import PLAN_NOW as NOW
from helpers import cleaned_rows as _cleaned
from helpers import plan_request as _request
from hypothesis import given
from hypothesis import strategies as st

from flows.parameters import DeliveryWindow, Limits, RecipientSource, SourceKind
from tasks import approval as approve
from tasks import ledger as lg
from tasks import plan as pl
from tasks import runtime
from tasks.i18n import Lang
from tasks.nevertext import NeverText, Origin
from tasks.sendcore import SendPolicy
from tasks.slots import LEAD, MARGIN
from tasks.steps.prepare import is_sample, write_plan
from tasks.steps.send import credits_to_check

NUMBERS = ["06 12 34 56 78", "0612345678", "07 81 23 45 67", "not a number", "06 98 76 54 32"]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> lg.Ledger:
    monkeypatch.chdir(tmp_path)  # the plan's row file goes to data/state under here
    return runtime.open_ledger(f"sqlite:///{tmp_path}/ledger.sqlite")


def test_a_first_run_writes_its_plan_and_a_rerun_plans_nobody_again(ledger: lg.Ledger) -> None:
    first = write_plan(ledger, _cleaned(NUMBERS), CREDITS, _request(), NOW)
    # three distinct mobiles (one duplicate, one not a number), two per chunk
    assert first.to_send == 3 and len(first.chunk_indices) == 2
    assert sum(c.size for c in ledger.chunks("c1")) == 3
    again = write_plan(ledger, _cleaned(NUMBERS), CREDITS, _request(), NOW)
    assert again.chunk_indices == first.chunk_indices  # the same chunks, still to send
    assert sum(c.size for c in ledger.chunks("c1")) == 3  # nobody planned twice


def test_numbers_in_the_never_text_store_are_not_planned(ledger: lg.Ledger) -> None:
    NeverText(ledger).add(["+33612345678"], Origin.reply)
    prepared = write_plan(ledger, _cleaned(NUMBERS), CREDITS, _request(), NOW)
    assert prepared.to_send == 2
    planned = {n for c in ledger.chunks("c1") for n in c.numbers}
    assert "+33612345678" not in planned


@pytest.mark.parametrize(
    ("changes", "held"),
    [
        ({"dry_run": True}, []),
        ({"thresholds": (None, 2)}, ["3 recipients above 2"]),
        ({"thresholds": (0.10, None)}, ["estimated cost 0.14 above 0.10"]),
    ],
)
def test_a_dry_run_or_a_held_plan_writes_nothing(
    ledger: lg.Ledger, changes: dict[str, object], held: list[str]
) -> None:
    prepared = write_plan(ledger, _cleaned(NUMBERS), CREDITS, _request(**changes), NOW)
    assert prepared.dry_run and prepared.approval_reasons == held
    assert prepared.to_send == 3 and sum(p["size"] for p in prepared.dry_plan) == 3
    assert not ledger.campaign_exists("c1")


def test_a_campaign_stays_bound_to_its_survey_and_its_input(ledger: lg.Ledger) -> None:
    write_plan(ledger, _cleaned(NUMBERS), CREDITS, _request(), NOW)
    with pytest.raises(pl.CampaignError, match="survey"):
        write_plan(ledger, _cleaned(NUMBERS), CREDITS, _request(survey_id="s2"), NOW)
    grown = _cleaned([*NUMBERS, "06 11 11 11 11"])
    with pytest.raises(pl.CampaignError, match="--resume-changed-input"):
        write_plan(ledger, grown, CREDITS, _request(), NOW)
    write_plan(ledger, grown, CREDITS, _request(resume_changed_input=True), NOW)
    assert sum(c.size for c in ledger.chunks("c1")) == 4  # only the new number was added


@pytest.mark.parametrize(
    ("credits", "to_send", "checked"),
    [
        (None, 1000, None),  # the gateway did not say: its own code 11 is the backstop
        (100.0, 1000, None),  # plenty: twice the estimated cost (45.0) or more
        (89.99, 1000, 89.99),  # less than twice: every claim checks what is left
        (0.0, 1, 0.0),
    ],
)
def test_claims_check_the_credits_only_when_they_may_run_short(
    credits: float | None, to_send: int, checked: float | None
) -> None:
    assert credits_to_check(credits, to_send, 0.045) == checked


@pytest.mark.parametrize(
    ("verdict", "lang", "state", "words"),
    [
        (approve.Verdict(approve.Decision.stopped, reasons=("r",)), "en", None, "(r)"),
        (approve.Verdict(approve.Decision.stopped, reasons=("r",)), "fr", None, "rien n'a été"),
        (approve.Verdict(approve.Decision.refused, "no", ("r",)), "en", "Refused", "(r)"),
        (approve.Verdict(approve.Decision.refused, "no", ("r",)), "fr", "Refusée", "(« no »)"),
        (approve.Verdict(approve.Decision.timed_out, reasons=("r",)), "en", "NotApproved", "2 h"),
        (approve.Verdict(approve.Decision.timed_out, reasons=("r",)), "fr", "Expirée", "2 h"),
    ],
)
def test_an_unapproved_campaign_says_why_and_how_it_ends(
    verdict: approve.Verdict, lang: Lang, state: str | None, words: str
) -> None:
    message, name = approve.unapproved_end(verdict, 2.0, lang)
    assert name == state and words in message
    assert ("nothing sent" if lang == "en" else "rien n'a été envoyé") in message
    if verdict.decision == approve.Decision.stopped:
        assert "--yes" in message  # the command line's way to send
    assert not verdict.lets_send and verdict.record() == verdict.as_dict(["r"])


def test_only_a_needed_approval_is_recorded() -> None:
    assert approve.Verdict(approve.Decision.not_needed).record() is None
    assert approve.Verdict(approve.Decision.approved, "ok", ("r",)).lets_send
    assert approve.Approval(above_cost=1.0).asks
    assert not approve.Approval(above_cost=1.0, mode=approve.ApprovalMode.approved).asks
    assert not approve.Approval().asks


@given(
    chunk_size=st.integers(1, 500),
    lead=st.integers(6, 120),
    attempts=st.integers(1, 20),
    settle=st.floats(1, 86400),
    timeout=st.floats(1, 600),
    cap=st.integers(0, 365),
)
def test_the_limits_reach_the_rules_as_they_were_given(
    chunk_size: int, lead: int, attempts: int, settle: float, timeout: float, cap: int
) -> None:
    limits = Limits(
        chunk_size=chunk_size,
        lead_minutes=lead,
        max_attempts=attempts,
        settle_seconds=settle,
        read_timeout=timeout,
        frequency_cap_days=cap,
    )
    window = DeliveryWindow(allow_immediate=False)
    rules = limits.plan_rules(window)
    assert (rules.chunk_size, rules.lead, rules.cap_days) == (
        chunk_size,
        timedelta(minutes=lead),
        cap,
    )
    assert rules.policy == window.policy() and not rules.allow_immediate
    settings = limits.send_settings(
        campaign_id="c",
        survey_id="s",
        base_url="http://127.0.0.1:1",
        ledger_url="sqlite://",
        credits=None,
        window=window,
        key_block=None,
    )
    assert settings.send.max_attempts == attempts and settings.timeout == timeout
    assert settings.send.settle == timedelta(seconds=settle) and settings.lead == rules.lead
    assert settings.margin == rules.margin == MARGIN and settings.cap_days == cap


def test_every_default_of_the_rules_comes_from_the_form() -> None:
    limits, policy = Limits(), SendPolicy()
    assert limits.send_policy() == policy
    assert timedelta(minutes=limits.lead_minutes) == LEAD


@pytest.mark.parametrize(
    ("source", "sample"),
    [
        (RecipientSource(), True),  # the form's default: the bundled sample
        (RecipientSource(path="data/samples/../samples/recipients.csv"), True),
        (RecipientSource(path="my/list.csv"), False),
        (RecipientSource(kind=SourceKind.sql, db_url="sqlite:///data/samples/x.db"), True),
        (RecipientSource(kind=SourceKind.sql, db_url="postgresql://u@h/db"), False),
    ],
)
def test_the_bundled_samples_are_recognised_whatever_the_path(
    source: RecipientSource, sample: bool
) -> None:
    assert is_sample(source.plain()) is sample
