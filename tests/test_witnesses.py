"""Witness phones: staff texted once per campaign, apart from the chunks, the cap and the counts.

What a survey team relies on: each witness gets each survey once per campaign (and once more
for a witnesses-only run), whatever the reruns, crashes and concurrent runs; a witness who said
STOP, or who is a recipient, is not texted again; a bad list stops everything before any send,
saying which line; the recipients' figures never move.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import SAMPLES, TEST_KEY, identity, mobiles, write_csv
from helpers import run_flow as run
from hypothesis import given
from hypothesis import strategies as st

from smspartner import TAG_PATTERN, Kind, Refusal, SendOutcome, SMSPartnerClient
from smspartner.models import Exchange
from smspartner.outcome import classify
from smspartner.simulator.faults import FaultConfig
from tasks import ledger as lg
from tasks import runtime
from tasks import sendcore as sc
from tasks import witnesses as wt
from tasks.nevertext import NeverText, Origin
from tasks.runtime import CampaignStopped
from tasks.witness_io import WitnessStore, load_witnesses, text_witnesses

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
STAFF = ["+33612345690", "+33612345691"]
CHUNK_TAG = re.compile(r"^[0-9a-f]{12}-\d{6}$")


# -- the pure rules --------------------------------------------------------------------------------


def _out(kind: Kind, refusal: Refusal | None = None, **fields: Any) -> SendOutcome:
    return SendOutcome(kind, fields.pop("reason", str(kind)), refusal, **fields)


# (answer, POSTs so far) -> (what is done, reason): the gateway's every kind of answer.
VERDICTS = [
    (_out(Kind.ACCEPTED, message_id=7, nb_sms=1, cost=0.05), 1, wt.Act.sent, None),
    (_out(Kind.UNKNOWN, reason="read timeout"), 1, wt.Act.in_doubt, "in_doubt"),
    (_out(Kind.UNKNOWN, reason="HTTP 502", http_status=502), 1, wt.Act.in_doubt, "in_doubt"),
    # What the wire gives, read by the client's own classification (smspartner.outcome).
    (classify(Exchange(None, failure="read timeout")), 1, wt.Act.in_doubt, "in_doubt"),
    (classify(Exchange(None, failure="reset")), 1, wt.Act.in_doubt, "in_doubt"),
    (classify(Exchange(None, connected=False, failure="refused")), 1, wt.Act.retry, None),
    (classify(Exchange(200, b"<html>proxy</html>")), 1, wt.Act.in_doubt, "in_doubt"),
    (classify(Exchange(200, b"")), 1, wt.Act.in_doubt, "in_doubt"),
    (classify(Exchange(200, b'{"success": true, "mess')), 1, wt.Act.in_doubt, "in_doubt"),
    (classify(Exchange(200, b'{"success": true}')), 1, wt.Act.in_doubt, "in_doubt"),
    (classify(Exchange(429, b"", retry_after=1.0)), 1, wt.Act.retry, None),
    (
        classify(Exchange(200, b'{"success": true, "code": 200, "message_id": 5}')),
        1,
        wt.Act.sent,
        None,
    ),
    (
        classify(Exchange(200, b'{"success": false, "code": 10, "message": "cle"}')),
        1,
        wt.Act.stop,
        "gateway_error",
    ),
    (_out(Kind.REFUSED, Refusal.NOT_CONNECTED), 1, wt.Act.retry, None),
    (_out(Kind.REFUSED, Refusal.NOT_CONNECTED), 3, wt.Act.failed, "gateway_unavailable"),
    (_out(Kind.REFUSED, Refusal.RATE_LIMITED, retry_after=2.0), 1, wt.Act.retry, None),
    (_out(Kind.REFUSED, Refusal.RATE_LIMITED), 3, wt.Act.failed, "gateway_unavailable"),
    (_out(Kind.REFUSED, Refusal.CREDITS, code=11), 1, wt.Act.failed, "insufficient_credits"),
    (_out(Kind.REFUSED, Refusal.ACCOUNT, code=1), 1, wt.Act.stop, "gateway_error"),
    (_out(Kind.REFUSED, Refusal.ACCOUNT, code=40), 1, wt.Act.stop, "gateway_error"),
    (_out(Kind.REFUSED, Refusal.SLOT, code=22), 1, wt.Act.failed, "no_slot"),
    (
        _out(
            Kind.REFUSED,
            Refusal.CONTENT,
            code=9,
            errors=(("phoneNumbers", "Le numéro 0612345690 est invalide"),),
        ),
        1,
        wt.Act.failed,
        "gateway_rejected",
    ),
    (
        _out(Kind.REFUSED, Refusal.CONTENT, code=9, errors=(("sondageIdent", "inconnu"),)),
        1,
        wt.Act.failed,
        "gateway_error",
    ),
]


@pytest.mark.parametrize(("answer", "sends", "act", "reason"), VERDICTS)
def test_every_gateway_answer_is_decided_once(
    answer: SendOutcome, sends: int, act: str, reason: str | None
) -> None:
    decided = wt.verdict(answer, STAFF[0], sends=sends, now=NOW, slot=None)
    assert (decided.act, decided.reason) == (act, reason)
    if decided.act is wt.Act.retry:
        assert 0 < decided.wait <= wt.POLICY.max_backoff
    # A send that may have landed is never made again: only "retry" sends once more, and
    # only after an answer proving nothing landed.
    if answer.kind is not Kind.REFUSED:
        assert decided.act is not wt.Act.retry


DEADLINE = timedelta(seconds=70)
RECORDS = [
    # (state found, ours, holder dead, age) -> what to do
    (None, True, False, timedelta(0), wt.Found.send),
    ("sending", True, False, timedelta(0), wt.Found.send),  # our own lost commit, retried
    ("sent", False, False, timedelta(0), wt.Found.texted),
    ("failed", False, False, timedelta(0), wt.Found.send),  # nothing landed: retaken
    ("sending", False, False, timedelta(seconds=5), wt.Found.wait),  # a live run sends it
    ("sending", False, True, timedelta(seconds=5), wt.Found.look),  # its run died
    ("sending", False, False, timedelta(seconds=71), wt.Found.look),  # outlived any send
    ("in_doubt", False, False, timedelta(0), wt.Found.look),
    ("in_doubt", False, True, timedelta(days=3), wt.Found.look),
]


@pytest.mark.parametrize(("state", "ours", "dead", "age", "found"), RECORDS)
def test_what_a_ledger_row_means(
    state: str | None, ours: bool, dead: bool, age: timedelta, found: wt.Found
) -> None:
    decided = wt.on_record(state, ours=ours, holder_dead=dead, age=age, deadline=DEADLINE)
    assert decided is found


def test_a_send_in_doubt_is_texted_only_when_the_gateway_shows_it() -> None:
    assert wt.after_look(sc.Evidence.FOUND) is wt.Outcome.texted
    assert wt.after_look(sc.Evidence.ABSENT) is wt.Outcome.in_doubt
    assert wt.after_look(sc.Evidence.UNCLEAR) is wt.Outcome.in_doubt


def test_witnesses_get_the_first_slot_or_at_once_when_it_is_too_near() -> None:
    lead = timedelta(minutes=10)
    assert wt.send_slot(None, NOW, lead) is None
    later = (NOW + timedelta(hours=2)).isoformat()
    assert wt.send_slot(later, NOW, lead) == NOW + timedelta(hours=2)
    assert wt.send_slot((NOW + timedelta(minutes=3)).isoformat(), NOW, lead) is None
    assert wt.send_slot((NOW - timedelta(hours=1)).isoformat(), NOW, lead) is None
    off_grid = wt.send_slot((NOW + timedelta(hours=1, minutes=2)).isoformat(), NOW, lead)
    assert off_grid == NOW + timedelta(hours=1, minutes=5)


@given(
    campaign=st.from_regex(r"[A-Za-z0-9._-]{1,120}", fullmatch=True),
    survey=st.text(min_size=1, max_size=40),
    mode=st.sampled_from(list(wt.Mode)),
    index=st.integers(0, 999_999),
)
def test_a_witness_tag_is_valid_and_never_a_chunks(
    campaign: str, survey: str, mode: wt.Mode, index: int
) -> None:
    tag = wt.witness_tag(campaign, survey, mode, STAFF[0])
    assert TAG_PATTERN.match(tag) and len(tag) == 20
    assert wt.is_witness_tag(tag) and not CHUNK_TAG.match(tag)
    chunk = lg.chunk_tag(campaign, index)
    assert not wt.is_witness_tag(chunk)
    # One tag per (campaign, survey, mode, witness): the look-up finds that send alone.
    other = wt.Mode.only if mode is wt.Mode.campaign else wt.Mode.campaign
    assert tag != wt.witness_tag(campaign, survey, other, STAFF[0])
    assert tag != wt.witness_tag(campaign, survey, mode, STAFF[1])


def test_left_out_witnesses_stop_first_then_recipients() -> None:
    left = wt.left_out(STAFF, {STAFF[0]}, frozenset(STAFF))
    assert left == {STAFF[0]: wt.Outcome.opted_out, STAFF[1]: wt.Outcome.recipient}


def test_the_result_counts_per_survey_with_masked_numbers_only() -> None:
    lines = (
        wt.line("ENQ_FR", STAFF[0], wt.Outcome.texted),
        wt.line("ENQ_FR", STAFF[1], wt.Outcome.opted_out),
        wt.line("ENQ_EN", STAFF[0], wt.Outcome.in_doubt, "in_doubt"),
        wt.line("ENQ_EN", STAFF[1], wt.Outcome.failed, "gateway_error"),
    )
    result = wt.WitnessResult("c1", False, lines)
    said = result.as_dict()
    assert (said["texted"], said["skipped"], said["maybe"], said["failed"]) == (1, 1, 1, 1)
    assert said["surveys"]["ENQ_FR"] == {"texted": 1, "skipped": 1, "maybe": 0, "failed": 0}
    assert "12345690" not in str(said) and "12345691" not in str(said)
    assert result.summary_line("fr").startswith("Témoins : 1 SMS envoyés")


# -- the list --------------------------------------------------------------------------------------


def test_the_sample_list_gives_two_simulator_numbers() -> None:
    assert load_witnesses(SAMPLES / "temoins.csv") == tuple(STAFF)


def test_a_list_with_names_headers_and_repeats_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Nom,Portable\nA,06 12 34 56 90\n\nB,+33 6 12 34 56 91\nC,0612345690\n")
    assert load_witnesses(path) == tuple(STAFF)
    headerless = tmp_path / "h.csv"
    headerless.write_text("0612345691\n")
    assert load_witnesses(headerless) == (STAFF[1],)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("mobile\n0612345690\n01 23 45 67 89\n", ["ligne 3", "pas un mobile"]),
        ("mobile\n0612345690\n06 12 34\n", ["ligne 3", "numéro invalide"]),
        ("mobile\n0612345690\n0612345691 / 0612345692\n", ["ligne 3", "plusieurs numéros"]),
        ("mobile\n", ["ne contient aucun numéro"]),
        ("", ["ne contient aucun numéro"]),
        (
            "mobile\n" + "\n".join(f"06123457{i:02d}" for i in range(21)) + "\n",
            ["21 numéros", "20 au plus"],
        ),
    ],
)
def test_a_bad_list_stops_before_any_send_naming_the_line(
    tmp_path: Path, content: str, words: list[str]
) -> None:
    path = tmp_path / "temoins.csv"
    path.write_text(content)
    with pytest.raises(wt.WitnessListError) as caught:
        load_witnesses(path)
    said = str(caught.value)
    assert "\n" not in said and "rien n'a été envoyé" in said
    for word in words:
        assert word in said
    # Never the file's text: the numbers of the faulty line are not quoted.
    assert "01 23 45 67 89" not in said and "0612345692" not in said


def test_a_missing_list_is_one_french_line(tmp_path: Path) -> None:
    with pytest.raises(wt.WitnessListError, match="introuvable"):
        load_witnesses(tmp_path / "absent.csv")
    with pytest.raises(wt.WitnessListError, match="does not exist"):
        load_witnesses(tmp_path / "absent.csv", "en")


def test_the_setting_is_the_named_file_else_the_worker_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.WITNESSES_ENV, raising=False)
    assert runtime.witnesses_file(None) is None
    monkeypatch.setenv(runtime.WITNESSES_ENV, "data/staff.csv")
    assert runtime.witnesses_file(None) == "data/staff.csv"
    assert runtime.witnesses_file(" data/other.csv ") == "data/other.csv"


# -- against the simulator, on each ledger database ------------------------------------------------


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A pseudonym key of the test's own (the never-text store needs one)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(lg.PSEUDONYM_KEY_ENV, "ab" * 32)


def _request(ledger_url: str, base_url: str, **changes: Any) -> wt.WitnessRequest:
    values: dict[str, Any] = {
        "campaign_id": "camp-1",
        "surveys": ("satisfaction-q4",),
        "numbers": tuple(STAFF),
        "schedule": None,
        "base_url": base_url,
        "key_block": None,
        "ledger_url": ledger_url,
        "ledger_outage": 5.0,
        **changes,
    }
    return wt.WitnessRequest(**values)


def _text(request: wt.WitnessRequest, ledger: Any, **kwargs: Any) -> wt.WitnessResult:
    client = SMSPartnerClient(TEST_KEY, request.base_url, max_retries=0)
    store = NeverText(ledger)
    kwargs.setdefault("sleep", lambda s: None)
    return text_witnesses(
        request, client=lambda: client, ledger=ledger, opted_out=store.among, **kwargs
    )


def _sends(simulator: Any) -> Counter[tuple[str, str]]:
    return Counter(
        (number, send["survey_id"])
        for send in simulator.state.sends
        for number in send["numbers"]
        if send["kind"] == "survey"
    )


def test_witnesses_are_texted_once_per_campaign_and_survey_even_when_run_again(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    request = _request(ledger_url, simulator.url, surveys=("ENQ_FR", "ENQ_EN"))
    first = _text(request, ledger)
    again = _text(request, ledger)
    expected = {(n, s): 1 for n in STAFF for s in ("ENQ_FR", "ENQ_EN")}
    assert _sends(simulator) == expected
    assert first.texted == again.texted == 4
    assert first.per_survey()["ENQ_EN"]["texted"] == 2
    # Each send carries a witness's tag, never a chunk's.
    assert all(wt.is_witness_tag(s["tag"]) for s in simulator.state.sends)
    # Another campaign texts them again, once.
    _text(_request(ledger_url, simulator.url, campaign_id="camp-2"), ledger)
    assert sum(_sends(simulator).values()) == 6


def test_witnesses_are_texted_at_the_campaign_s_first_slot(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    slot = (datetime.now(UTC) + timedelta(days=1)).replace(minute=5, second=0, microsecond=0)
    result = _text(_request(ledger_url, simulator.url, schedule=slot.isoformat()), ledger)
    assert result.texted == 2
    sends = simulator.state.sends
    assert {s["scheduled_at"] for s in sends} == {slot.isoformat()}
    rows = WitnessStore(ledger).of_campaign("camp-1")
    assert {r["slot"] for r in rows} == {slot.isoformat()}


def test_concurrent_runs_text_each_witness_once(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    simulator.state.faults = FaultConfig(latency_ms=150)
    request = _request(ledger_url, simulator.url)
    results: list[wt.WitnessResult] = []

    def one() -> None:
        results.append(_text(request, ledger, sleep=lambda s: threading.Event().wait(s)))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _sends(simulator) == {(n, "satisfaction-q4"): 1 for n in STAFF}
    assert [r.texted for r in results] == [2, 2, 2]


def test_witnesses_only_then_the_real_campaign_text_them_once_each(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    only = _request(ledger_url, simulator.url, only=True)
    assert _text(only, ledger).texted == 2
    assert _text(only, ledger).texted == 2  # the preview run again: nothing more
    assert sum(_sends(simulator).values()) == 2
    result = _text(_request(ledger_url, simulator.url), ledger)
    assert result.texted == 2
    assert _sends(simulator) == {(n, "satisfaction-q4"): 2 for n in STAFF}
    assert result.as_dict()["mode"] == "campaign"


def test_an_opted_out_witness_or_a_recipient_is_not_texted(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    NeverText(ledger).add([STAFF[0]], Origin.manual, "STOP")
    third = "+33612345692"
    request = _request(
        ledger_url, simulator.url, numbers=(*STAFF, third), exclude=frozenset({STAFF[1]})
    )
    result = _text(request, ledger)
    assert set(_sends(simulator)) == {(third, "satisfaction-q4")}
    outcomes = {line.outcome for line in result.lines}
    assert outcomes == {wt.Outcome.opted_out, wt.Outcome.recipient, wt.Outcome.texted}
    assert (result.texted, result.skipped) == (1, 2)


def test_a_send_that_may_have_landed_is_never_made_again(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    # Accepted and recorded by the gateway, answered with garbage: in doubt, not resent.
    simulator.state.faults = FaultConfig(garbage_rate=1.0, garbage_kinds=["html200"], seed=3)
    request = _request(ledger_url, simulator.url, numbers=(STAFF[0],))
    first = _text(request, ledger)
    assert (first.texted, first.maybe) == (0, 1)
    simulator.state.faults = FaultConfig()
    second = _text(request, ledger)  # looked up by its tag: found, so texted
    assert (second.texted, second.maybe) == (1, 0)
    assert _sends(simulator) == {(STAFF[0], "satisfaction-q4"): 1}


def test_a_row_left_sending_by_a_dead_run_is_reported_in_doubt_not_resent(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    from tasks.ledger.schema import witness_sends

    key = ("camp-1", "satisfaction-q4", "campaign", STAFF[0])
    tag = wt.witness_tag(*key[:2], wt.Mode.campaign, STAFF[0])
    with ledger._write() as conn:
        conn.execute(
            sa.insert(witness_sends).values(
                campaign_id=key[0],
                survey_id=key[1],
                mode=key[2],
                e164=key[3],
                tag=tag,
                state="sending",
                owner="elsewhere:1:dead-run",
                updated_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    result = _text(_request(ledger_url, simulator.url), ledger)
    assert _sends(simulator) == {(STAFF[1], "satisfaction-q4"): 1}
    assert (result.texted, result.maybe) == (1, 1)
    assert WitnessStore(ledger).of_campaign("camp-1")[0]["state"] == "in_doubt"


def test_a_refused_key_stops_the_campaign_and_a_rerun_sends(
    ledger: Any, ledger_url: str, simulator: Any, keyed: None
) -> None:
    request = _request(ledger_url, simulator.url, numbers=(STAFF[0],))
    wrong = SMSPartnerClient("not-the-key", simulator.url, max_retries=0)
    with pytest.raises(CampaignStopped):
        text_witnesses(request, client=lambda: wrong, ledger=ledger, opted_out=lambda n: set())
    assert WitnessStore(ledger).of_campaign("camp-1")[0]["state"] == "failed"
    assert _text(request, ledger).texted == 1  # nothing had landed: sent now, once
    assert sum(_sends(simulator).values()) == 1


# -- the step, next to a real campaign -------------------------------------------------------------


def test_the_step_texts_witnesses_outside_the_campaign_s_rows_and_counts(
    campaign_env: Path, simulator: Any, open_all_day: None
) -> None:
    from prefect import flow

    from tasks.steps.witnesses import read_witnesses_task, witness_task

    numbers = mobiles(5)
    summary = run(write_csv(campaign_env / "r.csv", numbers), campaign_id="with-witnesses")
    staff = (campaign_env / "staff.csv").write_text(f"mobile\n{STAFF[0]}\n{numbers[0]}\n")
    assert staff

    @flow
    def witnesses_flow() -> wt.WitnessResult:
        listed = read_witnesses_task(str(campaign_env / "staff.csv"))
        request = _request(
            runtime.ledger_url(),
            runtime.gateway_url(),
            campaign_id="with-witnesses",
            numbers=tuple(listed),  # the campaign's chunks say who is a recipient
        )
        return witness_task(request)

    result = witnesses_flow()
    assert (result.texted, result.skipped) == (1, 1)
    assert {line.outcome for line in result.lines} == {wt.Outcome.texted, wt.Outcome.recipient}
    sent = Counter(simulator.state.accepted_numbers())
    assert sent[STAFF[0]] == 1 and sent[numbers[0]] == 1  # a recipient: one SMS, not two
    identity(summary)
    assert summary["sent"] == 5
    ledger = runtime.shared_ledger(runtime.ledger_url())
    with ledger.engine.connect() as conn:
        chunk_numbers = ",".join(conn.execute(sa.text("SELECT numbers FROM chunks")).scalars())
        texted = set(conn.execute(sa.text("SELECT e164 FROM texted")).scalars())
    assert STAFF[0] not in chunk_numbers and STAFF[0] not in texted
    assert texted == set(numbers)
