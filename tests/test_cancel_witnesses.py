"""Cancelling a campaign also calls off its witnesses' scheduled SMS (issue 23).

What a survey team relies on: once a campaign is cancelled, staff no longer receive a survey the
campaign does not send; what could not be called off (sent at once, too late, maybe still going)
is said, never hidden; running the cancel again is harmless, and a rerun of the campaign never
texts a cancelled witness. The rules are table-tested; the rest runs against the simulator on
each ledger database.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import CANCEL_NOW as NOW
from helpers import TEST_KEY, mobiles, write_csv
from helpers import cancel_chunk as chunk
from hypothesis import given
from hypothesis import strategies as st

from flows.cancel_campaign import cancel_campaign
from flows.parameters import Audience
from flows.survey_campaign import DeliveryWindow, RecipientSource, send_survey_campaign
from smspartner import (
    AuthError,
    CancelError,
    NotFound,
    RateLimited,
    ServerError,
    SMSPartnerClient,
    SMSPartnerError,
    StatusEntry,
    TransportError,
)
from smspartner.simulator.faults import FaultConfig
from tasks import ledger as lg
from tasks import witnesses as wt
from tasks.cancellation import (
    ASK_GATEWAY,
    LEDGER_ONLY,
    LOOK_UP_TAG,
    Why,
    count,
    decide,
    markdown_cancel,
    summary_lines,
)
from tasks.ledger.schema import witness_sends
from tasks.nevertext import NeverText
from tasks.numbers import mask_number
from tasks.runtime import CampaignStopped
from tasks.witness_io import WitnessStore, cancel_witnesses, text_witnesses

STAFF = ["+33612345690", "+33612345691"]
HOUR = timedelta(hours=1)
SLOT = (NOW + HOUR).isoformat()


# -- the pure rules --------------------------------------------------------------------------------


def facts(state: str = "sent", slot: str | None = SLOT, **more: Any) -> wt.CancelFacts:
    values: dict[str, Any] = {"message_id": 42, "updated_at": NOW - HOUR, **more}
    return wt.CancelFacts(state=state, slot=slot, **values)


def at(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


# (what the ledger holds) -> what the cancel does: every state, every kind of slot.
ACTIONS = [
    (facts(), ASK_GATEWAY),
    (facts(slot=None), "already_sent"),  # sent at once
    (facts(slot=at(-HOUR)), "already_sent"),
    (facts(slot=at(timedelta(minutes=4))), "too_late"),
    (facts(slot=at(timedelta(minutes=5))), "too_late"),  # the gateway needs more than five
    (facts(slot=at(timedelta(minutes=6))), ASK_GATEWAY),
    (facts(message_id=None), LOOK_UP_TAG),  # sent, but its answer gave no id
    (facts("cancelled"), "already_cancelled"),
    (facts("failed", message_id=None), LEDGER_ONLY),  # nothing landed: a rerun would send it
    (facts("failed", slot=at(-HOUR), message_id=None), LEDGER_ONLY),
    (facts("in_doubt", message_id=None), LOOK_UP_TAG),
    (facts("in_doubt", slot=None, message_id=None), LOOK_UP_TAG),
    (facts("in_doubt", slot=at(-HOUR), message_id=None), LOOK_UP_TAG),
    (facts("sending", message_id=None), "in_progress"),  # another live run sends it
    (facts("sending", message_id=None, stale=True), LOOK_UP_TAG),  # its run is gone
]


@pytest.mark.parametrize(("found", "action"), ACTIONS)
def test_what_the_cancel_does_with_each_witness_send(found: wt.CancelFacts, action: str) -> None:
    assert wt.cancel_action(found, NOW).action == action


@given(st.integers(min_value=-3 * 86400, max_value=3 * 86400), st.booleans())
def test_a_witness_send_is_decided_as_a_chunk_of_the_same_slot(seconds: int, has_id: bool) -> None:
    slot = NOW + timedelta(seconds=seconds)
    message_id = 42 if has_id else None
    witness = wt.cancel_action(facts(slot=slot.isoformat(), message_id=message_id), NOW)
    assert witness == decide(chunk(slot=slot, message_id=message_id), NOW)


def _refused(code: int) -> CancelError:
    return CancelError("refused", code=code)


# The gateway's every answer to a cancel -> (outcome, the ledger says cancelled).
ANSWERS: list[tuple[SMSPartnerError | None, str, bool]] = [
    (None, "cancelled", True),
    (NotFound("unknown message", code=4), "not_found", False),
    (_refused(5), "already_cancelled", True),  # from the dashboard, or a lost answer before
    (_refused(6), "too_late", False),
    (_refused(7), "already_sent", False),
    (_refused(99), "error", False),  # a code nobody documented proves nothing
    (TransportError("read timeout", may_have_landed=True), "error", False),  # may have done it
    (TransportError("refused", may_have_landed=False), "error", False),  # did not
    (ServerError("HTTP 502", http_status=502), "error", False),
    (ServerError("not JSON: <html>", http_status=200), "error", False),
    (RateLimited("429", retry_after=None), "error", False),
    (AuthError("key refused", code=10), "error", False),
]


@pytest.mark.parametrize(("answer", "outcome", "record"), ANSWERS)
def test_every_answer_to_a_witness_cancel_is_decided_once(
    answer: SMSPartnerError | None, outcome: str, record: bool
) -> None:
    step = wt.after_cancel_call(answer)
    assert (step.outcome, step.record, step.landed) == (outcome, record, False)
    # Anything short of a clear answer says the SMS may still go and the cancel should run again.
    if outcome == "error":
        assert "run the cancel again" in step.why.say("en")
        assert "relancez l'annulation" in step.why.say("fr")


def _entry(message_id: int | None) -> StatusEntry:
    return StatusEntry("+33612345690", "Waiting", False, None, message_id)


SETTLED = NOW - 2 * HOUR  # an attempt whose settle time (after its slot) has passed
LOOKS: list[tuple[Any, wt.CancelFacts, str, bool, bool]] = [
    # (the tag's look-up, the row) -> (outcome, ledger cancelled, it landed)
    ([_entry(77)], facts("in_doubt", message_id=None), ASK_GATEWAY, False, True),
    ([_entry(None)], facts("in_doubt", message_id=None), "not_found", False, True),
    ([_entry(None)], facts("in_doubt", slot=None, message_id=None), "already_sent", False, True),
    ([_entry(None)], facts("in_doubt", slot=at(-HOUR)), "already_sent", False, True),
    ([_entry(9)], facts("in_doubt", slot=at(timedelta(minutes=3))), "too_late", False, True),
    ([], facts("in_doubt", message_id=None), "not_found", False, False),  # may still go
    (NotFound("tag", code=4), facts("in_doubt", message_id=None), "not_found", False, False),
    (
        NotFound("tag", code=4),
        facts("in_doubt", slot=at(-3 * HOUR), message_id=None, updated_at=SETTLED - HOUR),
        "not_sent_cancelled",
        True,
        False,
    ),
    (NotFound("tag", code=4), facts(message_id=None), "not_found", False, False),
    (ServerError("503"), facts("in_doubt", message_id=None), "error", False, False),
    (TransportError("reset", may_have_landed=True), facts(message_id=None), "error", False, False),
]


@pytest.mark.parametrize(("found", "row", "outcome", "record", "landed"), LOOKS)
def test_what_a_look_up_by_tag_proves_for_the_cancel(
    found: Any, row: wt.CancelFacts, outcome: str, record: bool, landed: bool
) -> None:
    step = wt.after_tag_look(found, row, NOW)
    assert (step.outcome, step.record, step.landed) == (outcome, record, landed)
    if outcome == ASK_GATEWAY:
        assert step.message_id == 77
    if outcome == "not_found" and row.state == "in_doubt":
        assert "it may still go out" in step.why.say("en") or "message id" in step.why.say("en")


def test_the_cancel_says_the_witnesses_apart_in_french_with_plurals() -> None:
    done = [
        wt.cancelled_line("ENQ", n, SLOT, "cancelled", Why("cancelled_at_gateway"), True)
        for n in STAFF
    ]
    gone = wt.cancelled_line("ENQ", "+33612345692", None, "already_sent", Why("sent_at_once"))
    counts = count("c1", [], wt.cancel_counts([*done, gone]))
    assert counts["witnesses"]["cancelled"] == 2 and counts["witnesses"]["already_sent"] == 1
    assert set(counts["witnesses"]) == set(wt.CANCEL_COUNTS)
    text = markdown_cancel(counts, [], NOW, witnesses=[*done, gone])
    assert "## SMS des témoins" in text
    assert "- SMS des témoins annulés : 2" in text
    assert "- SMS de témoin non annulé : 1" in text
    assert f"{mask_number('+33612345692')}, enquête ENQ : parti tout de suite" in text
    assert "+33612345692" not in text and STAFF[0] not in text  # masked numbers only
    lines = summary_lines(counts, "fr")
    assert "SMS des témoins annulés : 2 ; SMS de témoin non annulé : 1" in lines
    assert any("ne peuvent plus être annulés" in line for line in lines)
    english = summary_lines(counts, "en")
    assert "Witnesses' SMS cancelled: 2; Witness SMS not cancelled: 1" in english
    # One that may still go: run the cancel again.
    maybe = replace(gone, outcome="error")
    again = summary_lines(count("c1", [], wt.cancel_counts([maybe])), "fr")
    assert any("Des SMS de témoins peuvent encore partir" in line for line in again)
    # A campaign without witnesses: no key, no words.
    plain = count("c1", [])
    assert "witnesses" not in plain
    assert "témoin" not in markdown_cancel(plain, [], NOW)
    assert not any("témoin" in line for line in summary_lines(plain, "fr"))


# -- the executor, against the simulator, on each ledger database ---------------------------------


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(lg.PSEUDONYM_KEY_ENV, "ab" * 32)


def _tomorrow() -> datetime:
    return (datetime.now(UTC) + timedelta(days=1)).replace(minute=5, second=0, microsecond=0)


def _text(
    ledger: Any,
    simulator: Any,
    schedule: datetime | None,
    client: SMSPartnerClient | None = None,
    **changes: Any,
) -> wt.WitnessResult:
    """The campaign's witness step, as the flow runs it (the request's ledger is ``ledger``)."""
    values: dict[str, Any] = {
        "campaign_id": "camp-1",
        "surveys": ("satisfaction-q4",),
        "numbers": tuple(STAFF),
        "schedule": schedule.isoformat() if schedule else None,
        "base_url": simulator.url,
        "key_block": None,
        "ledger_url": "unused: the ledger is given",
        "ledger_outage": 5.0,
        **changes,
    }
    client = client or SMSPartnerClient(TEST_KEY, simulator.url, max_retries=0)
    return text_witnesses(
        wt.WitnessRequest(**values),
        client=lambda: client,
        ledger=ledger,
        opted_out=NeverText(ledger).among,
        sleep=lambda s: None,
    )


def _cancel(ledger: Any, simulator: Any, now: datetime | None = None) -> list[wt.WitnessCancel]:
    with SMSPartnerClient(TEST_KEY, simulator.url, max_retries=0) as client:
        return cancel_witnesses(client, ledger, "camp-1", now or datetime.now(UTC))


def _outcomes(results: list[wt.WitnessCancel]) -> list[str]:
    return [r.outcome for r in results]


def _rows(ledger: Any) -> list[dict[str, Any]]:
    return WitnessStore(ledger).of_campaign("camp-1")


def _cancel_calls(simulator: Any) -> int:
    return sum(1 for r in simulator.state.requests if "message-cancel" in r["path"])


def test_scheduled_witness_sends_are_called_off_once_and_never_sent_again(
    ledger: Any, simulator: Any, keyed: None
) -> None:
    assert _text(ledger, simulator, _tomorrow()).texted == 2
    results = _cancel(ledger, simulator)
    assert _outcomes(results) == ["cancelled", "cancelled"] and all(r.changed for r in results)
    assert all(s["cancelled"] for s in simulator.state.sends)
    assert simulator.state.accepted_numbers() == []
    assert {(r["state"], r["reason"]) for r in _rows(ledger)} == {("cancelled", "cancelled")}
    assert all(STAFF[0] not in json.dumps(r.__dict__, default=str) for r in results)

    # The cancel again: the ledger answers, the gateway is not asked again.
    calls = _cancel_calls(simulator)
    again = _cancel(ledger, simulator)
    assert _outcomes(again) == ["already_cancelled"] * 2 and not any(r.changed for r in again)
    assert _cancel_calls(simulator) == calls
    # A rerun of the campaign's witness step never texts them again.
    rerun = _text(ledger, simulator, _tomorrow())
    assert {line.outcome for line in rerun.lines} == {wt.Outcome.cancelled}
    assert (rerun.texted, rerun.cancelled) == (0, 2) and len(simulator.state.sends) == 2


def test_a_witness_texted_at_once_is_already_sent_and_left_as_it_is(
    ledger: Any, simulator: Any, keyed: None
) -> None:
    _text(ledger, simulator, None)
    results = _cancel(ledger, simulator)
    assert _outcomes(results) == ["already_sent", "already_sent"]
    assert [r.why.say("fr") for r in results if r.why] == ["parti tout de suite"] * 2
    assert _cancel_calls(simulator) == 0 and not any(s["cancelled"] for s in simulator.state.sends)
    rows = _rows(ledger)
    assert {r["state"] for r in rows} == {"sent"}
    assert {r["detail"] for r in rows} == {"not cancelled: sent at once"}


def test_too_late_by_our_clock_or_the_gateway_s(ledger: Any, simulator: Any, keyed: None) -> None:
    slot = _tomorrow()
    _text(ledger, simulator, slot)
    # Our clock: three minutes before the slot, the gateway is not even asked.
    late = _cancel(ledger, simulator, now=slot - timedelta(minutes=3))
    assert _outcomes(late) == ["too_late", "too_late"] and _cancel_calls(simulator) == 0
    # The gateway's clock says three minutes left although ours says a day: code 6.
    simulator.state.advance((slot - simulator.state.now() - timedelta(minutes=3)).total_seconds())
    refused = _cancel(ledger, simulator)
    assert _outcomes(refused) == ["too_late", "too_late"] and _cancel_calls(simulator) == 2
    assert {r["state"] for r in _rows(ledger)} == {"sent"}
    assert not any(s["cancelled"] for s in simulator.state.sends)


def test_a_send_in_doubt_is_looked_up_and_said_to_maybe_still_go(
    ledger: Any, simulator: Any, keyed: None
) -> None:
    # Accepted and recorded by the gateway, answered with garbage: in doubt, no message id.
    simulator.state.faults = FaultConfig(garbage_rate=1.0, garbage_kinds=["html200"], seed=3)
    assert _text(ledger, simulator, _tomorrow(), numbers=(STAFF[0],)).maybe == 1
    # The gateway hides scheduled sends before their slot: not found proves nothing yet.
    simulator.state.faults = FaultConfig(hide_scheduled=True)
    hidden = _cancel(ledger, simulator)
    assert _outcomes(hidden) == ["not_found"]
    assert hidden[0].why is not None and "il peut encore partir" in hidden[0].why.say("fr")
    assert _rows(ledger)[0]["state"] == "in_doubt"
    # Seen by its tag: it landed (the ledger says sent), but the gateway gives no id to cancel.
    simulator.state.faults = FaultConfig()
    seen = _cancel(ledger, simulator)
    assert _outcomes(seen) == ["not_found"] and seen[0].detail.startswith("sent, but")
    assert _rows(ledger)[0]["state"] == "sent"
    assert _rows(ledger)[0]["detail"].startswith("not cancelled:")


def test_a_send_that_never_landed_is_cancelled_in_the_ledger_so_no_rerun_sends_it(
    ledger: Any, simulator: Any, keyed: None
) -> None:
    wrong = SMSPartnerClient("not-the-key", simulator.url, max_retries=0)
    with pytest.raises(CampaignStopped):
        _text(ledger, simulator, _tomorrow(), numbers=(STAFF[0],), client=wrong)
    assert _rows(ledger)[0]["state"] == "failed"
    results = _cancel(ledger, simulator)
    assert _outcomes(results) == ["not_sent_cancelled"] and results[0].changed
    assert _rows(ledger)[0]["state"] == "cancelled"
    rerun = _text(ledger, simulator, _tomorrow(), numbers=(STAFF[0],))
    assert rerun.cancelled == 1 and simulator.state.sends == []


def test_a_gateway_error_on_one_witness_is_its_own_and_a_rerun_settles_it(
    ledger: Any, simulator: Any, keyed: None
) -> None:
    _text(ledger, simulator, _tomorrow())
    simulator.state.add_canned("message-cancel", "<html>bad gateway</html>", status=502)
    first = _cancel(ledger, simulator)
    assert _outcomes(first) == ["error", "cancelled"]
    assert first[0].why is not None and "relancez" in first[0].why.say("fr")
    assert [r["state"] for r in _rows(ledger)] == ["sent", "cancelled"]
    again = _cancel(ledger, simulator)
    assert _outcomes(again) == ["cancelled", "already_cancelled"]
    assert all(s["cancelled"] for s in simulator.state.sends)


def test_a_send_cancelled_elsewhere_is_recorded_cancelled(
    ledger: Any, simulator: Any, keyed: None
) -> None:
    _text(ledger, simulator, _tomorrow(), numbers=(STAFF[0],))
    with SMSPartnerClient(TEST_KEY, simulator.url) as client:
        client.cancel(_rows(ledger)[0]["message_id"])  # from the gateway's dashboard
    assert _outcomes(_cancel(ledger, simulator)) == ["already_cancelled"]
    assert _rows(ledger)[0]["state"] == "cancelled"


def test_the_witnesses_only_run_is_not_touched(ledger: Any, simulator: Any, keyed: None) -> None:
    _text(ledger, simulator, None, only=True)
    assert _cancel(ledger, simulator) == []
    assert {r["state"] for r in _rows(ledger)} == {"sent"}


# -- the cancel flow, next to a real campaign -----------------------------------------------------


def _campaign(
    env: Path, campaign_id: str, staff_numbers: list[str] = STAFF, **window: Any
) -> dict[str, Any]:
    staff = env / "staff.csv"
    staff.write_text("mobile\n" + "\n".join(staff_numbers) + "\n", encoding="utf-8")
    state = send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(write_csv(env / "r.csv", mobiles(4)))),
        campaign_id=campaign_id,
        audience=Audience(witnesses=str(staff)),
        window=DeliveryWindow(**window),
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, dict)
    return result


def _cancel_flow(campaign_id: str) -> dict[str, Any]:
    state = cancel_campaign(campaign_id=campaign_id, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, dict)
    return result


def _witness_sends(simulator: Any) -> list[dict[str, Any]]:
    return [s for s in simulator.state.sends if wt.is_witness_tag(s["tag"])]


def test_cancelling_a_scheduled_campaign_calls_off_its_witnesses(
    campaign_env: Path, simulator: Any
) -> None:
    _campaign(campaign_env, "with-staff", allow_immediate=False)
    assert len(_witness_sends(simulator)) == 2

    counts = _cancel_flow("with-staff")
    assert counts["cancelled"] == 1 and counts["recipients_cancelled"] == 4  # the chunk, as ever
    assert counts["witnesses"] == {**dict.fromkeys(wt.CANCEL_COUNTS, 0), "cancelled": 2}
    assert all(s["cancelled"] for s in simulator.state.sends)
    assert simulator.state.accepted_numbers() == []
    assert "SMS des témoins annulés : 2" in summary_lines(counts, "fr")
    saved_text = (campaign_env / "data/reports/with-staff/cancel.json").read_text()
    saved = json.loads(saved_text)
    assert saved["witnesses"]["cancelled"] == 2 and len(saved["witness_sends"]) == 2
    assert STAFF[0] not in saved_text and STAFF[1] not in saved_text
    # The campaign's report, refreshed by the cancel, no longer says they were texted.
    report = json.loads((campaign_env / "data/reports/with-staff/summary.json").read_text())
    assert report["witnesses"] == 0

    again = _cancel_flow("with-staff")
    assert again["witnesses"]["already_cancelled"] == 2 and again["witnesses"]["cancelled"] == 0
    assert again["already_cancelled"] == 1

    # A rerun of the campaign texts nobody: neither the recipients nor the witnesses, not even
    # one added to the list since.
    sends = len(simulator.state.sends)
    _campaign(campaign_env, "with-staff", [*STAFF, "+33612345692"], allow_immediate=False)
    assert len(simulator.state.sends) == sends
    rows = WitnessStore(lg.Ledger(os.environ["SURVEY_LEDGER_URL"])).of_campaign("with-staff")
    assert [r["state"] for r in rows] == ["cancelled", "cancelled"]  # no row for the new one


def test_witnesses_texted_at_once_are_said_already_sent(
    campaign_env: Path, simulator: Any, open_all_day: None
) -> None:
    _campaign(campaign_env, "at-once")
    assert [s["scheduled_at"] for s in _witness_sends(simulator)] == [None, None]
    counts = _cancel_flow("at-once")
    assert counts["witnesses"]["already_sent"] == 2 and counts["witnesses"]["cancelled"] == 0
    lines = summary_lines(counts, "fr")
    assert "SMS de témoin annulé : 0 ; SMS des témoins non annulés : 2" in lines
    assert not any(s["cancelled"] for s in _witness_sends(simulator))


def test_a_witness_the_gateway_does_not_answer_for_does_not_stop_the_chunks(
    campaign_env: Path, simulator: Any
) -> None:
    _campaign(campaign_env, "half", allow_immediate=False)
    # One witness's answer was lost: in doubt, no message id; its look-up then fails (503).
    engine = sa.create_engine(os.environ["SURVEY_LEDGER_URL"])
    with engine.begin() as conn:
        conn.execute(
            sa.update(witness_sends)
            .where(witness_sends.c.e164 == STAFF[0])
            .values(state="in_doubt", message_id=None, reason="in_doubt")
        )
    engine.dispose()
    simulator.state.add_canned("bulk-status-by-tag", {"error": "busy"}, status=503, times=8)
    counts = _cancel_flow("half")
    assert counts["cancelled"] == 1 and counts["recipients_cancelled"] == 4
    assert counts["witnesses"]["cancelled"] == 1 and counts["witnesses"]["error"] == 1
    lines = summary_lines(counts, "fr")
    assert any("Des SMS de témoins peuvent encore partir" in line for line in lines)
