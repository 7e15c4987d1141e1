"""Money first: the rules that decide whether the credits and the budget cap cover a campaign
(pure, table and property tests), the plan step applying them on a real ledger, and the send
flow against the gateway simulator with too few credits."""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.parameters import DeliveryWindow, Limits
from smspartner.client import Credits
from tasks import accounting, rows_file
from tasks import ledger as lg
from tasks import money as mn
from tasks import plan as pl
from tasks.errors import SurveyError
from tasks.plan import PlanRequest
from tasks.steps.prepare import Cleaned, write_plan

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Paris: the window is open


def plain(text: str) -> str:
    """Babel's narrow and plain no-break spaces as spaces, for comparing texts."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


# -- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "price", "credits", "max_cost", "spent", "covered", "shortfall", "reason"),
    [
        # the campaign of issue 20: 82 576 recipients at 0,045 €, 98,38 € of credits
        (82576, 0.045, 98.38, None, 0.0, 2186, 3617.54, "insufficient_credits"),
        (100, 0.045, 4.5, None, 0.0, 100, 0.0, None),  # exactly enough
        (300, 0.045, 13.5, None, 0.0, 300, 0.0, None),  # 300 x 0.045 is 13.499999... in floats
        (301, 0.045, 13.5, None, 0.0, 300, 0.05, "insufficient_credits"),  # 0.045 up to a cent
        (1000, 0.045, 100.0, 30.0, 0.0, 666, 15.0, "budget_exceeded"),  # the cap binds
        (100, 0.1, 100.0, 20.0, 15.0, 50, 5.0, "budget_exceeded"),  # earlier runs' spending
        (100, 0.1, 100.0, 10.0, 12.0, 0, 12.0, "budget_exceeded"),  # the cap already passed
        (100, 0.1, 5.0, 50.0, 0.0, 50, 5.0, "insufficient_credits"),  # the credits bind
        (100, 0.1, 5.0, 5.0, 0.0, 50, 5.0, "budget_exceeded"),  # a tie: the cap, as the ledger
        (10, 0.1, None, None, 0.0, 10, 0.0, None),  # credits unknown: no limit here
        (10, 0.1, None, 0.5, 0.0, 5, 0.5, "budget_exceeded"),  # unknown credits, the cap still
        (10, 0.1, -5.0, None, 0.0, 0, 6.0, "insufficient_credits"),  # an account in the red
        (0, 0.045, 0.0, 0.0, 0.0, 0, 0.0, None),  # nothing to send is never short
    ],
)
def test_what_the_money_covers(
    recipients: int,
    price: float,
    credits: float | None,
    max_cost: float | None,
    spent: float,
    covered: int,
    shortfall: float,
    reason: str | None,
) -> None:
    money = mn.Money(recipients, price, credits, max_cost, spent)
    assert money.covered == covered
    assert money.short is (reason is not None)
    assert money.shortfall == pytest.approx(shortfall)
    if reason:
        assert money.reason == reason


@pytest.mark.parametrize(
    ("estimate", "observed", "price"),
    [(0.045, None, 0.045), (0.045, 0.05, 0.05), (0.045, 0.04, 0.04)],
)
def test_a_resumed_campaign_is_priced_at_what_the_gateway_charged(
    estimate: float, observed: float | None, price: float
) -> None:
    assert mn.price_per_recipient(estimate, observed) == price


@pytest.mark.parametrize(
    ("sizes", "whole", "covered", "kept"),
    [
        ([500, 500, 500], [False] * 3, 1100, [500, 500, 100]),  # the last chunk is cut
        ([250] * 4, [False] * 4, 666, [250, 250, 166, 0]),
        ([300, 100, 100], [True, False, False], 250, [0, 100, 100]),  # a ledger chunk: whole
        ([100, 500], [True, False], 300, [100, 200]),
        ([100, 100], [True, True], 150, [100, 0]),
        ([10, 10], [False, False], 0, [0, 0]),
        ([10, 10], [False, False], 20, [10, 10]),
    ],
)
def test_what_is_kept_of_each_chunk(
    sizes: list[int], whole: list[bool], covered: int, kept: list[int]
) -> None:
    assert mn.keep(sizes, whole, covered) == kept


prices = st.sampled_from([0.01, 0.035, 0.045, 0.05, 0.0725, 0.1, 0.16])
amounts = st.one_of(st.none(), st.floats(-10, 200, allow_nan=False).map(lambda x: round(x, 2)))
chunks = st.lists(st.tuples(st.integers(1, 60), st.booleans()), max_size=12)


@given(chunks, prices, amounts, amounts, st.floats(0, 50).map(lambda x: round(x, 2)))
def test_what_is_kept_never_costs_more_than_the_money_and_nobody_is_lost(
    plan: list[tuple[int, bool]],
    price: float,
    credits: float | None,
    max_cost: float | None,
    spent: float,
) -> None:
    sizes = [size for size, _ in plan]
    whole = [stays for _, stays in plan]
    money = mn.Money(sum(sizes), price, credits, max_cost, spent)
    kept = mn.keep(sizes, whole, money.covered)
    available = money.available
    if available is not None:
        assert sum(kept) * price <= max(0.0, available) + mn.EPSILON  # in the red: none
        # as much as the money covers, and not one more
        if money.covered < money.recipients:
            assert (money.covered + 1) * price > available + mn.EPSILON
            assert money.shortfall >= money.cost - available - 1e-9
            assert money.shortfall < money.cost - available + 0.01 + 1e-9
    assert money.short is (money.covered < money.recipients)
    assert not money.short or money.shortfall > 0
    for size, stays, k in zip(sizes, whole, kept, strict=True):
        assert 0 <= k <= size
        assert not stays or k in (0, size)  # a ledger chunk is sent whole or not at all
    # every recipient is either kept or left out (then rejected with the reason): none lost
    assert sum(kept) + sum(s - k for s, k in zip(sizes, kept, strict=True)) == money.recipients
    # no chunk that can be cut is left short while money remains for one more recipient
    if any(k < s and not stays for s, stays, k in zip(sizes, whole, kept, strict=True)):
        assert sum(kept) == money.covered


def test_the_line_that_stops_a_campaign_says_what_is_missing_and_what_to_do() -> None:
    money = mn.Money(82576, 0.045, 98.38, None, 0.0)
    ui = plain(mn.shortfall_line(money, "fr", command_line=False))
    assert ui == (
        "Crédits insuffisants : il manque 3 617,54 € pour 82 576 destinataires (crédits "
        "98,38 €, coût estimé 3 715,92 € ; de quoi en envoyer 2 186). Rien n'a été envoyé. "
        "Rechargez le compte SMS Partner, réduisez la liste, ou cochez « Envoyer ce que les "
        "crédits permettent »."
    )
    cli = plain(mn.shortfall_line(money, "en", command_line=True))
    assert cli.startswith("Not enough credits: €3,617.54 missing for 82,576 recipients")
    assert cli.endswith("or run again with --send-within-credits.")
    capped = plain(
        mn.shortfall_line(mn.Money(1000, 0.045, 100.0, 30.0, 0.0), "fr", command_line=True)
    )
    assert capped.startswith("Plafond de budget insuffisant : il manque 15,00 € pour 1 000")
    assert "Relevez --max-cost" in capped


def test_the_stop_is_an_error_of_the_family_that_keeps_what_the_report_needs() -> None:
    prepared = pl.Prepared(campaign_id="c1", rows_path="rows.pkl", chunk_indices=[])
    short = mn.CreditsShort("Crédits insuffisants : il manque 1 €", prepared=prepared)
    short.approval = {"decision": "approved", "reasons": [], "comment": "ok"}
    assert isinstance(short, SurveyError) and short.exit_code == 1
    again = pickle.loads(pickle.dumps(short))
    assert type(again) is mn.CreditsShort and str(again) == str(short)
    assert again.prepared == prepared and again.approval == short.approval


# -- the plan step on a real ledger -----------------------------------------------------------

NUMBERS = ["06 12 34 56 78", "07 81 23 45 67", "06 98 76 54 32", "not a number"]


def cleaned(numbers: list[str]) -> Cleaned:
    frame = pd.DataFrame({"phone": numbers})
    rows = pl.clean_rows(frame, "phone", allow_foreign=False)
    return Cleaned(rows, pl.input_fingerprint(frame), ["phone"])


def request(**changes: Any) -> PlanRequest:
    planned = Limits(chunk_size=2, cost_per_sms=0.1).plan_request(
        campaign_id="c1",
        survey_id="s1",
        ledger_url="unused",
        window=DeliveryWindow(),
        dry_run=False,
        resume_changed_input=False,
    )
    return replace(planned, **changes)


def credits(balance: float) -> Credits:
    return Credits(balance=balance, currency="EUR", credit_sms=None, to_send=None, raw={})


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> lg.Ledger:
    monkeypatch.chdir(tmp_path)  # the plan's row file goes to data/state under here
    return lg.Ledger(f"sqlite:///{tmp_path}/ledger.sqlite")


def outcomes(prepared: pl.Prepared, ledger: lg.Ledger) -> accounting.Counts:
    """What the report step would count of this plan (the ledger's chunks as they stand)."""
    rows = rows_file.load_rows(prepared.rows_path)
    chunks = [] if prepared.dry_run else ledger.chunks(prepared.campaign_id)
    return accounting.count_outcomes(
        accounting.row_outcomes(rows, chunks, dry_run=prepared.dry_run)
    )


def test_short_of_credits_nothing_is_planned_and_every_row_is_accounted_for(
    ledger: lg.Ledger,
) -> None:
    with pytest.raises(mn.CreditsShort) as stopped:
        write_plan(ledger, cleaned(NUMBERS), credits(0.25), request(), NOW)
    line = plain(str(stopped.value))
    assert line.startswith("Crédits insuffisants : il manque 0,05 € pour 3 destinataires")
    assert "--send-within-credits" in line  # the command line's next step
    assert not ledger.campaign_exists("c1")  # nothing written: nothing can be sent
    prepared = stopped.value.prepared
    assert prepared is not None and prepared.chunk_indices == [] and not prepared.dry_run
    counts = outcomes(prepared, ledger)
    assert counts.sent == 0 and counts.failed == 0
    assert counts.rejected == {"insufficient_credits": 3, "not_a_number": 1}


def test_send_within_credits_plans_what_they_cover_and_rejects_the_rest(
    ledger: lg.Ledger,
) -> None:
    prepared = write_plan(
        ledger, cleaned(NUMBERS), credits(0.25), request(send_within_credits=True), NOW
    )
    assert prepared.to_send == 2 and prepared.money is not None and prepared.money.short
    planned = ledger.chunks("c1")
    assert sum(c.size for c in planned) == 2 and prepared.chunk_indices == [0]
    counts = outcomes(prepared, ledger)
    assert counts.rejected == {"insufficient_credits": 1, "not_a_number": 1}
    assert counts.failed == 2  # the planned chunk, not sent yet (pending), reads failed here
    # a rerun once the credits are back plans the one left out, and nobody twice
    again = write_plan(ledger, cleaned(NUMBERS), credits(10.0), request(), NOW)
    assert again.to_send == 3 and sum(c.size for c in ledger.chunks("c1")) == 3


def test_the_budget_cap_counts_what_earlier_runs_spent_at_the_price_the_gateway_charged(
    ledger: lg.Ledger,
) -> None:
    first = write_plan(ledger, cleaned(NUMBERS[:2]), credits(10.0), request(), NOW)
    assert first.to_send == 2
    chunk = ledger.chunks("c1")[0]
    owner = lg.owner_token("t")
    assert ledger.claim("c1", 0, owner, cost_per_recipient=0.1).action == "send"
    # the gateway charged 0,15 € each, not the 0,10 € estimate
    ledger.mark_sent(
        "c1", 0, message_id=1, nb_sms=2, cost=0.3, currency="EUR", texted_at=NOW,
        numbers=chunk.numbers,
    )  # fmt: skip
    grown = request(resume_changed_input=True, max_cost=0.4)
    # one new recipient: 0,10 € at the estimate would fit the cap (0,30 + 0,10); 0,15 does not
    with pytest.raises(mn.CreditsShort) as stopped:
        write_plan(ledger, cleaned(NUMBERS), credits(10.0), grown, NOW)
    line = plain(str(stopped.value))
    assert "Plafond de budget insuffisant : il manque 0,05 € pour 1 destinataire" in line
    assert "déjà dépensé 0,30 €" in line
    assert sum(c.size for c in ledger.chunks("c1")) == 2  # the new one was not planned
    fits = write_plan(ledger, cleaned(NUMBERS), credits(10.0), replace(grown, max_cost=0.45), NOW)
    assert fits.to_send == 1 and fits.money is not None and not fits.money.short


def test_an_earlier_runs_chunk_is_sent_whole_or_left_for_later(ledger: lg.Ledger) -> None:
    four = [*NUMBERS[:3], "06 11 22 33 44"]
    first = write_plan(ledger, cleaned(four[:3]), credits(10.0), request(), NOW)
    assert [c.size for c in ledger.chunks("c1")] == [2, 1] and first.to_send == 3
    # nothing sent yet; the rerun has money for two recipients and a new one in its input
    rerun = request(send_within_credits=True, resume_changed_input=True)
    prepared = write_plan(ledger, cleaned(four), credits(0.2), rerun, NOW)
    assert prepared.chunk_indices == [0]  # chunk 0 (2) fits; chunk 1 stays as it is
    assert prepared.to_send == 2
    counts = outcomes(prepared, ledger)
    assert counts.rejected == {"insufficient_credits": 1}  # the new recipient, not planned
    assert sum(c.size for c in ledger.chunks("c1")) == 3


@pytest.mark.parametrize("within", [False, True])
def test_a_plan_held_for_approval_shows_the_shortfall_and_writes_nothing(
    ledger: lg.Ledger, within: bool
) -> None:
    held = request(thresholds=(None, 1), send_within_credits=within)
    prepared = write_plan(ledger, cleaned(NUMBERS), credits(0.25), held, NOW)
    assert prepared.dry_run and prepared.approval_reasons
    assert prepared.money is not None and prepared.money.short
    assert prepared.to_send == (2 if within else 3)
    assert sum(p["size"] for p in prepared.dry_plan) == prepared.to_send
    assert not ledger.campaign_exists("c1")


def test_a_dry_run_short_of_money_still_plans_and_says_it(ledger: lg.Ledger) -> None:
    prepared = write_plan(ledger, cleaned(NUMBERS), credits(0.0), request(dry_run=True), NOW)
    assert prepared.dry_run and prepared.money is not None and prepared.money.covered == 0
    assert outcomes(prepared, ledger).rejected == {"dry_run": 3, "not_a_number": 1}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 40),
    st.integers(1, 7),
    st.floats(0, 2.5).map(lambda x: round(x, 2)),
    st.booleans(),
)
def test_every_row_is_planned_or_rejected_with_a_reason_and_never_over_the_money(
    n: int, chunk_size: int, balance: float, within: bool
) -> None:
    numbers = [f"06{i:08d}" for i in range(10, 10 + n)] + ["nope"]
    with tempfile.TemporaryDirectory() as folder:
        import os

        here = os.getcwd()
        os.chdir(folder)
        try:
            ledger = lg.Ledger(f"sqlite:///{folder}/ledger.sqlite")
            asked = replace(
                request(send_within_credits=within),
                rules=replace(request().rules, chunk_size=chunk_size),
            )
            try:
                prepared = write_plan(ledger, cleaned(numbers), credits(balance), asked, NOW)
            except mn.CreditsShort as short:
                assert short.prepared is not None and short.prepared.money is not None
                prepared = short.prepared
                # within the credits, only a plan the money covers nobody of stops
                assert not within or prepared.money.covered == 0
                assert not ledger.campaign_exists("c1")
            planned = sum(c.size for c in ledger.chunks("c1"))
            assert planned == prepared.to_send
            assert planned * 0.1 <= balance + mn.EPSILON
            counts = outcomes(prepared, ledger)
            assert counts.loaded == n + 1
            # planned rows read failed (pending) here; the rest are rejected with a reason
            assert counts.failed == planned and counts.sent == 0
            money_reason = counts.rejected.get("insufficient_credits", 0)
            assert planned + money_reason == n
            ledger.engine.dispose()
        finally:
            os.chdir(here)


# -- the send flow, against the gateway simulator ---------------------------------------------


def write_csv(path: Path, n: int) -> Path:
    lines = [f"{i};06{i:08d}" for i in range(10, 10 + n)]
    path.write_text("id;mobile\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def send(path: Path, **kwargs: Any) -> Any:
    from flows.survey_campaign import RecipientSource, send_survey_campaign

    return send_survey_campaign(
        survey_id="s", recipients=RecipientSource(path=str(path)), return_state=True, **kwargs
    )


def test_a_campaign_its_credits_do_not_cover_sends_nothing_and_says_why(
    campaign_env: Path, simulator: Any
) -> None:
    simulator.state.credits = 0.045 * 300  # room for 300 recipients out of 1 000
    state = send(
        write_csv(campaign_env / "r.csv", 1000),
        campaign_id="short",
        limits=Limits(chunk_size=250, concurrency=1),
    )
    assert state.is_failed()
    assert plain(state.message).startswith(
        "Crédits insuffisants : il manque 31,50 € pour 1 000 destinataires (crédits 13,50 €"
    )
    assert simulator.state.sends == []  # no send started
    error = state.result(raise_on_failure=False)
    assert isinstance(error, mn.CreditsShort) and error.summary is not None
    summary = error.summary
    assert summary["loaded"] == 1000 and summary["sent"] == 0 and summary["failed"] == 0
    assert summary["rejected"] == {"insufficient_credits": 1000}
    written = campaign_env / "data" / "reports" / "short" / "summary.json"
    assert '"insufficient_credits": 1000' in written.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("credits", "max_cost", "sent", "reason"),
    [
        (0.045 * 300, None, 300, "insufficient_credits"),  # 250 + 50 of the second chunk
        (1000.0, 30.0, 666, "budget_exceeded"),  # 666 x 0,045 = 29,97
    ],
)
def test_send_within_credits_texts_what_the_money_covers_once_and_rejects_the_rest(
    campaign_env: Path,
    simulator: Any,
    credits: float,
    max_cost: float | None,
    sent: int,
    reason: str,
) -> None:
    simulator.state.credits = credits
    state = send(
        write_csv(campaign_env / "r.csv", 1000),
        campaign_id="within",
        limits=Limits(chunk_size=250, concurrency=2, max_cost=max_cost),
        send_within_credits=True,
    )
    # the operator chose it: everybody ended sent or rejected with a reason, a complete run
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["sent"] == sent and summary["failed"] == 0
    assert summary["rejected"] == {reason: 1000 - sent}
    texted = simulator.state.accepted_numbers()
    assert len(texted) == len(set(texted)) == sent
    assert summary["cost"] <= min(credits, max_cost or credits) + 1e-9


# -- the approval form -------------------------------------------------------------------------


def describe(money: mn.Money | None, recipients: int) -> str:
    from tasks import approval as approve

    return approve.describe(
        campaign_id="c1",
        recipients=recipients,
        cost=recipients * 0.045,
        currency="EUR",
        credits=98.38,
        max_cost=None,
        above_cost=None,
        above_recipients=1,
        plan=[{"index": 0, "territory": "FR", "slot": None, "size": recipients}],
        timeout_hours=24,
        money=money,
    )


def test_the_form_opens_with_the_shortfall_and_the_choice_it_leaves() -> None:
    short = mn.Money(82576, 0.045, 98.38, None, 0.0)
    lines = plain(describe(short, 82576)).splitlines()
    assert lines[0].startswith("### Campagne c1")
    # right under the title, in bold, quoted: what is missing, then the choice it leaves
    assert lines[2] == "> **⚠️ " + plain(mn.short_text(short, "fr")) + "**"
    assert lines[4].startswith("> Envoyer à tous n'est pas possible.")
    assert "« Envoyer ce que les crédits permettent »" in lines[4]
    assert "2 186 premiers destinataires" in lines[4] and "80 390 autres" in lines[4]
    within = plain(describe(short, 2186))  # the limit was chosen at launch: 2 186 planned
    assert "« Envoyer » n'envoie qu'à 2 186 destinataires" in within
    assert "les 80 390 autres ne seront pas envoyés" in within
    enough = describe(mn.Money(10, 0.045, 98.38, None, 0.0), 10)
    assert "⚠️" not in enough and "> " not in enough
    assert "⚠️" not in describe(None, 10)


@pytest.mark.parametrize(
    ("form", "answer", "decision", "within"),
    [
        ("short", {"decision": "Envoyer ce que les crédits permettent"}, "approved", True),
        ("short", {"decision": "Refuser (rien n'est envoyé)"}, "refused", False),
        ("plain", {"decision": "Envoyer"}, "approved", False),
        ("plain", {"decision": "Refuser (rien n'est envoyé)"}, "refused", False),
    ],
)
def test_sending_what_the_credits_allow_is_a_choice_of_its_own(
    form: str, answer: dict[str, Any], decision: str, within: bool
) -> None:
    from tasks.steps import approval as approve

    kind = approve.ShortApprovalForm if form == "short" else approve.ApprovalForm
    verdict = approve.verdict_of(kind(**answer))
    assert verdict.decision == decision and verdict.within_credits is within
    record = verdict.as_dict()
    assert record.get("send_within_credits", False) is within


def test_a_form_short_of_money_cannot_send_everything() -> None:
    from tasks.steps import approval as approve

    plain_form = approve.ApprovalForm.model_json_schema()
    assert list(plain_form["properties"]) == ["decision", "comment"]  # the old switch is gone
    short_form = approve.ShortApprovalForm.model_json_schema()
    assert list(short_form["properties"]) == ["decision", "comment"]
    offered = short_form["$defs"][short_form["properties"]["decision"]["$ref"].split("/")[-1]]
    assert offered["enum"] == [
        "Envoyer ce que les crédits permettent",
        "Refuser (rien n'est envoyé)",
    ]


def test_the_command_line_says_the_money_first_when_a_threshold_holds_it_too(
    ledger: lg.Ledger,
) -> None:
    from tasks import approval as approve
    from tasks.steps import approval as asking

    approval = approve.Approval(above_recipients=1, mode=approve.ApprovalMode.stop)

    def prepare(hold: bool, within_credits: bool = False) -> pl.Prepared:
        asked = request(thresholds=approval.thresholds if hold else None)
        return write_plan(ledger, cleaned(NUMBERS), credits(0.25), asked, NOW)

    prepared, verdict = asking.until_approved(prepare, approval)
    assert verdict.decision == "stopped" and prepared.dry_run
    message, name = approve.unapproved_end(verdict, approval.timeout_hours)
    assert name is None  # the command line's stop: Failed
    assert plain(message).startswith("Crédits insuffisants : il manque 0,05 € pour 3")
    assert "--send-within-credits" in message and "--yes" in message
    assert not ledger.campaign_exists("c1")


def test_send_within_credits_with_credits_for_nobody_stops_like_without(ledger: lg.Ledger) -> None:
    asked = request(send_within_credits=True)
    with pytest.raises(mn.CreditsShort) as stopped:
        write_plan(ledger, cleaned(NUMBERS), credits(0.05), asked, NOW)  # not even one at 0,10
    assert "de quoi en envoyer 0" in str(stopped.value)
    assert not ledger.campaign_exists("c1")  # a run that can send nobody does not end green
    assert stopped.value.prepared is not None
    assert outcomes(stopped.value.prepared, ledger).rejected["insufficient_credits"] == 3
