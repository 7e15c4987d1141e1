"""Cancelling a campaign: the timing rule, and the flow end to end against the simulator.

The simulator applies the documented rules (codes 4, 5, 6, 7) on its own clock, which the tests
move with ``state.advance`` to bring a slot near or past without sleeping.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import CANCEL_NOW as NOW
from helpers import TEST_KEY, start_cli
from helpers import cancel_chunk as chunk
from hypothesis import given
from hypothesis import strategies as st

from flows.cancel_campaign import cancel_campaign
from flows.survey_campaign import DeliveryWindow, Limits, RecipientSource, send_survey_campaign
from smspartner import CancelError, NotFound, SMSPartnerClient, StatusEntry
from tasks import ledger as lg
from tasks.cancellation import (
    ASK_GATEWAY,
    LEDGER_ONLY,
    LOOK_UP_TAG,
    NOTHING,
    ChunkCancel,
    Why,
    count,
    decide,
    markdown_cancel,
    markdown_offer,
    summary_lines,
    unknown_campaign_line,
    what_can_be_cancelled,
)
from tasks.outcomes import ChunkState


@given(st.integers(min_value=-3 * 86400, max_value=3 * 86400))
def test_a_sent_chunk_is_tried_only_more_than_five_minutes_before_its_slot(seconds: int) -> None:
    action = decide(chunk(slot=NOW + timedelta(seconds=seconds)), NOW).action
    if seconds <= 0:
        assert action == "already_sent"
    elif seconds <= 300:
        assert action == "too_late"
    else:
        assert action == ASK_GATEWAY


def test_every_state_has_a_decision() -> None:
    assert decide(chunk(slot=None), NOW).action == "already_sent"  # sent at once
    assert decide(chunk(state=ChunkState.cancelled), NOW).action == "already_cancelled"
    assert decide(chunk(state=ChunkState.sending), NOW).action == "in_progress"
    assert decide(chunk(state=ChunkState.pending), NOW).action == LEDGER_ONLY
    assert (
        decide(chunk(state=ChunkState.failed, slot=NOW - timedelta(days=1)), NOW).action
        == LEDGER_ONLY
    )
    assert decide(chunk(state=ChunkState.in_doubt), NOW).action == LOOK_UP_TAG
    assert decide(chunk(message_id=None), NOW).action == LOOK_UP_TAG
    assert decide(chunk(numbers=()), NOW).action == NOTHING


# -- the flow ------------------------------------------------------------------------------

HEADER = "id;name;mobile\n"


def write_csv(path: Path, numbers: list[str]) -> Path:
    lines = [f"{i};Client {i};{n}" for i, n in enumerate(numbers, start=1)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def send(path: Path, campaign_id: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("window", DeliveryWindow(allow_immediate=False))  # every chunk scheduled
    state = send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(path)),
        campaign_id=campaign_id,
        return_state=True,
        **kwargs,
    )
    assert state.is_completed(), state.message
    return state.result()


def cancel(campaign_id: str) -> dict[str, Any]:
    state = cancel_campaign(campaign_id=campaign_id, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def ledger() -> lg.Ledger:
    return lg.Ledger(os.environ["SURVEY_LEDGER_URL"])


def until_slot(simulator: Any, campaign_id: str) -> timedelta:
    slot = min(datetime.fromisoformat(c.slot) for c in ledger().chunks(campaign_id) if c.slot)
    return slot - simulator.state.now()


FR = [f"+3361{i:07d}" for i in range(30)]
GP = [f"+590690{i:06d}" for i in range(6)]


def test_cancel_in_time_calls_everything_off_and_forgets_the_recipients(
    campaign_env: Path, simulator: Any
) -> None:
    csv = write_csv(campaign_env / "r.csv", FR + GP)
    send(csv, "oops")
    assert len(simulator.state.sends) == 2 and simulator.state.credits < 1000

    counts = cancel("oops")
    assert counts == {
        "campaign_id": "oops",
        "cancelled": 2,
        "already_cancelled": 0,
        "too_late": 0,
        "already_sent": 0,
        "not_found": 0,
        "not_sent_cancelled": 0,
        "in_progress": 0,
        "recipients_cancelled": 36,
    }
    assert all(s["cancelled"] for s in simulator.state.sends)
    assert simulator.state.accepted_numbers() == []
    assert simulator.state.credits == pytest.approx(1000)  # the gateway refunds a cancelled send
    assert {(c.state, c.reason) for c in ledger().chunks("oops")} == {("cancelled", "cancelled")}
    saved = json.loads((campaign_env / "data/reports/oops/cancel.json").read_text())
    assert saved["cancelled"] == 2 and len(saved["chunks"]) == 2

    # Running it again changes nothing and says so.
    again = cancel("oops")
    assert again["already_cancelled"] == 2 and again["cancelled"] == 0
    assert again["recipients_cancelled"] == 0

    # A rerun of the campaign does not send the cancelled chunks again...
    rerun = send(csv, "oops")
    assert len(simulator.state.sends) == 2
    assert rerun["sent"] == rerun["failed"] == 0 and rerun["rejected"] == {"cancelled": 36}
    # ...and the frequency cap forgot them: nobody was texted, so a new campaign may text them.
    fresh = send(csv, "the-right-one")
    assert fresh["sent"] == 36 and fresh["rejected"] == {}


def test_too_late_and_already_sent_are_left_alone_and_reported(
    campaign_env: Path, simulator: Any
) -> None:
    send(write_csv(campaign_env / "r.csv", FR), "late")
    # Our clock says there is time, the gateway's says three minutes: it refuses (code 6).
    simulator.state.advance((until_slot(simulator, "late") - timedelta(minutes=3)).total_seconds())
    counts = cancel("late")
    assert counts["too_late"] == 1 and counts["cancelled"] == 0
    assert counts["recipients_cancelled"] == 0
    assert [c.state for c in ledger().chunks("late")] == ["sent"]
    assert not simulator.state.sends[0]["cancelled"]

    simulator.state.advance(600)  # the slot has passed at the gateway (code 7)
    assert cancel("late")["already_sent"] == 1
    assert [c.state for c in ledger().chunks("late")] == ["sent"]
    assert len(simulator.state.accepted_numbers()) == len(FR)


def test_cancelled_elsewhere_or_unknown_at_the_gateway(campaign_env: Path, simulator: Any) -> None:
    send(write_csv(campaign_env / "r.csv", FR), "elsewhere")
    message_id = ledger().chunks("elsewhere")[0].message_id
    assert message_id is not None
    with SMSPartnerClient(TEST_KEY, simulator.url) as client:
        client.cancel(message_id)  # e.g. from the gateway's dashboard
    counts = cancel("elsewhere")
    assert counts["already_cancelled"] == 1 and counts["recipients_cancelled"] == len(FR)
    assert [c.state for c in ledger().chunks("elsewhere")] == ["cancelled"]

    send(write_csv(campaign_env / "s.csv", GP), "forgotten")
    simulator.state.reset()  # the gateway no longer knows any message id (code 4)
    counts = cancel("forgotten")
    assert counts["not_found"] == 1 and counts["recipients_cancelled"] == 0
    assert [c.state for c in ledger().chunks("forgotten")] == ["sent"]


def test_chunks_never_sent_are_cancelled_so_a_rerun_skips_them(
    campaign_env: Path, simulator: Any
) -> None:
    csv = write_csv(campaign_env / "r.csv", FR)
    # The account looked rich enough, the gateway says otherwise when sending (code 11).
    broke = {"success": False, "code": 11, "message": "Crédits insuffisants"}
    simulator.state.add_canned("sondage/to/send", broke, times=3)
    state = send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(csv)),
        campaign_id="broke",
        window=DeliveryWindow(allow_immediate=False),
        limits=Limits(chunk_size=10),
        return_state=True,
    )
    assert not state.is_completed()  # an incomplete campaign does not end green
    first = state.result(raise_on_failure=False).summary
    assert first["failed_reasons"] == {"insufficient_credits": 30}
    counts = cancel("broke")
    assert counts["not_sent_cancelled"] == 3 and counts["recipients_cancelled"] == 30
    # The report says it: nobody failed, everybody called off.
    report = json.loads((campaign_env / "data/reports/broke/summary.json").read_text())
    assert report["failed"] == 0 and report["rejected"] == {"cancelled": 30}
    rerun = send(csv, "broke", limits=Limits(chunk_size=10))
    assert rerun["sent"] == 0 and simulator.state.sends == []


def test_gateway_problems_fail_the_run_in_one_line(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = cancel_campaign(campaign_id="nothing-here", return_state=True)
    assert unknown.is_failed() and "Campagne « nothing-here » inconnue" in str(unknown.message)

    send(write_csv(campaign_env / "r.csv", FR[:3]), "keyless")
    monkeypatch.setenv("SMSPARTNER_API_KEY", "wrong-key-456")
    bad_key = cancel_campaign(campaign_id="keyless", return_state=True)
    message = str(bad_key.message)
    assert bad_key.is_failed() and "API key" in message
    assert "wrong-key-456" not in message and "\n" not in message
    assert [c.state for c in ledger().chunks("keyless")] == ["sent"]
    assert not simulator.state.sends[0]["cancelled"]


def _cli(campaign_env: Path, *args: str) -> subprocess.Popen[str]:
    return start_cli("flows.cancel_campaign", campaign_env, *args)


def test_command_line_prints_counts_last_and_fails_in_one_line(
    campaign_env: Path, simulator: Any
) -> None:
    send(write_csv(campaign_env / "r.csv", FR[:4]), "cli-cancel")
    good = _cli(campaign_env, "--campaign-id", "cli-cancel")
    bad = _cli(campaign_env, "--campaign-id", "no-such-campaign")
    out, err = good.communicate(timeout=120)
    assert good.returncode == 0, err[-2000:]
    *readable, last = out.strip().splitlines()
    counts = json.loads(last)  # the JSON line stays last; readable French lines before it
    assert readable and "cli-cancel" in readable[0], out
    assert not any(line.lstrip().startswith("{") for line in readable)
    assert not ENGLISH.findall(" ".join(readable[1:])), readable
    assert counts["cancelled"] == 1 and counts["recipients_cancelled"] == 4
    assert simulator.state.sends[0]["cancelled"]

    out, err = bad.communicate(timeout=120)
    assert bad.returncode != 0 and out.strip() == ""
    assert err.strip().splitlines() == [
        "error: Campagne « no-such-campaign » inconnue : aucun envoi n'a été fait sous cet "
        "identifiant. Copiez l'identifiant exact depuis le nom de l'exécution de la campagne "
        "(page Runs de Prefect), ou ouvrez le lien « Annuler cette campagne » de son résumé."
    ]
    assert "Traceback" not in err


def test_the_ledger_cancels_only_from_the_states_asked(tmp_path: Path) -> None:
    book = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite")
    plan = [lg.ChunkPlan(0, "FR", None, ("+33612345678",)), lg.ChunkPlan(1, "FR", None, ())]
    assert book.create_plan("c", "s", plan)
    claim = book.claim("c", 0, "someone:1:x", cost_per_recipient=0.045)
    assert claim.action == "send"
    # another run holds chunk 0: a cancel that expected it pending leaves it alone
    assert not book.mark_cancelled("c", 0, from_states=(ChunkState.pending,), reason="cancelled")
    assert book.chunk("c", 0).state == ChunkState.sending
    book.mark_sent("c", 0, message_id=1, nb_sms=1, cost=0.045, currency="EUR", texted_at=NOW)
    since = NOW - timedelta(days=1)
    assert book.recently_texted(["+33612345678"], since=since, exclude_campaign="other")
    assert book.mark_cancelled(
        "c", 0, from_states=(ChunkState.sent,), reason="cancelled", detail="d"
    )
    row = book.chunk("c", 0)
    assert (row.state, row.reason, row.detail) == ("cancelled", "cancelled", "d")
    assert not book.recently_texted(["+33612345678"], since=since, exclude_campaign="other")
    book.close()


def test_a_chunk_in_doubt_the_gateway_never_got_is_cancelled_in_the_ledger(
    tmp_path: Path, simulator: Any
) -> None:
    from tasks.cancel_io import cancel_chunk

    book = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite")
    slot = (NOW + timedelta(hours=2)).isoformat()
    assert book.create_plan("c", "s", [lg.ChunkPlan(0, "FR", slot, ("+33612345678",))])
    book.mark_in_doubt("c", 0, doubt_from=NOW, detail="connection lost")
    with SMSPartnerClient(TEST_KEY, simulator.url) as client:
        # Before its slot, "not found" proves nothing: a scheduled send may be invisible until
        # then, so the ledger must not say it was never sent.
        early = cancel_chunk(client, book, book.chunk("c", 0), NOW)
        assert (early.outcome, early.changed) == ("not_found", False)
        assert book.chunk("c", 0).state == ChunkState.in_doubt
        # A settle time after its slot, the gateway's "not found" shows it never landed.
        late = NOW + timedelta(hours=2, minutes=6)
        done = cancel_chunk(client, book, book.chunk("c", 0), late, settle=timedelta(minutes=5))
    assert (done.outcome, done.changed) == ("not_sent_cancelled", True)
    assert book.chunk("c", 0).state == ChunkState.cancelled
    assert [r["path"] for r in simulator.state.requests] == ["bulk-status-by-tag"] * 2
    book.close()


# -- one chunk's cancel, step by step (a fake gateway and ledger, no network) ------------------


class FakeGateway:
    """Answers ``status_by_tag`` with ``entries`` (None: code 4) and ``cancel`` with
    ``refusal`` (None: cancelled; 4: NotFound; 5, 6, 7: CancelError)."""

    def __init__(self, entries: list[Any] | None, refusal: int | None) -> None:
        self.entries, self.refusal = entries, refusal
        self.cancelled: list[int] = []

    def status_by_tag(self, tag: str) -> list[Any]:
        if self.entries is None:
            raise NotFound("unknown tag", code=4)
        return self.entries

    def cancel(self, message_id: int) -> None:
        if self.refusal == 4:
            raise NotFound("unknown message", code=4)
        if self.refusal is not None:
            raise CancelError("refused", code=self.refusal)
        self.cancelled.append(message_id)


class FakeLedger:
    """``mark_cancelled`` says ``moves`` (whether the chunk was still in a state asked)."""

    def __init__(self, moves: bool = True) -> None:
        self.moves = moves
        self.marked: list[tuple[str, ...]] = []

    def mark_cancelled(self, campaign_id: str, index: int, **kw: Any) -> bool:
        self.marked.append(tuple(str(s) for s in kw["from_states"]))
        return self.moves


def doubtful(hours: int) -> lg.ChunkRow:
    """A chunk left in doubt ``hours`` ago, its slot two hours ago."""
    row = chunk(ChunkState.in_doubt, NOW - timedelta(hours=2))
    return replace(row, doubt_from=NOW - timedelta(hours=hours))


def entry(message_id: int | None) -> StatusEntry:
    return StatusEntry("+33612345678", "Waiting", stop=False, date=None, message_id=message_id)


DOUBT = (ChunkState.sent, ChunkState.in_doubt)  # the states a chunk cancelled at the gateway leaves


@pytest.mark.parametrize(
    ("row", "entries", "refusal", "moves", "outcome", "changed", "asked"),
    [
        # a message id and time: the gateway is asked, and its answers are outcomes
        (chunk(), [], None, True, "cancelled", True, [42]),
        (chunk(), [], 4, True, "not_found", False, [42]),
        (chunk(), [], 5, True, "already_cancelled", True, [42]),
        (chunk(), [], 6, True, "too_late", False, [42]),
        (chunk(), [], 7, True, "already_sent", False, [42]),
        # no message id: the tag finds it, then the gateway is asked with the id found
        (chunk(message_id=None), [entry(None), entry(77)], None, True, "cancelled", True, [77]),
        (chunk(message_id=None), [entry(None)], None, True, "not_found", False, []),
        (chunk(message_id=None), None, None, True, "not_found", False, []),
        # in doubt, the tag unknown: it never landed once its settle time has passed, and
        # "not found" proves nothing before
        (doubtful(hours=3), None, None, True, "not_sent_cancelled", True, []),
        (doubtful(hours=0), None, None, True, "not_found", False, []),
        # in doubt and the tag shows it sent, but its slot has passed: nothing left to cancel
        (doubtful(hours=3), [entry(9)], None, True, "already_sent", False, []),
        # never sent: the ledger alone, unless another run claimed it meanwhile
        (chunk(ChunkState.pending), None, None, True, "not_sent_cancelled", True, []),
        (chunk(ChunkState.pending), None, None, False, "in_progress", False, []),
        # a sent chunk that reached nobody: nothing to ask
        (chunk(numbers=()), None, None, True, "nothing", False, []),
    ],
)
def test_cancel_chunk_asks_the_gateway_only_when_it_can_help(
    row: lg.ChunkRow,
    entries: list[Any] | None,
    refusal: int | None,
    moves: bool,
    outcome: str,
    changed: bool,
    asked: list[int],
) -> None:
    from tasks.cancel_io import cancel_chunk

    gateway, ledger = FakeGateway(entries, refusal), FakeLedger(moves)
    done = cancel_chunk(gateway, ledger, row, NOW)  # type: ignore[arg-type]
    assert (done.outcome, done.changed) == (outcome, changed)
    assert gateway.cancelled == (asked if refusal is None else [])
    assert (done.chunk_index, done.territory, done.slot, done.size) == (
        row.chunk_index,
        row.territory,
        row.slot,
        row.size,
    )
    if outcome in ("cancelled", "already_cancelled"):  # a sent chunk leaves the cap's record
        assert ledger.marked == [tuple(str(s) for s in DOUBT)]


# -- what the operator reads about a cancel ------------------------------------------------------

# Words of English a French page of the cancel must not show (the ids and "SMS Partner" aside).
ENGLISH = re.compile(
    r"\b(?:the|chunks?|cancel(?:led)?|sent|slot|gateway|ledger|recipients?|why|not|found|"
    r"already|run|nothing|more)\b",
    re.IGNORECASE,
)


def result(
    index: int, outcome: str, why: Why, *, size: int = 1, changed: bool = False
) -> ChunkCancel:
    slot = (NOW + timedelta(days=1)).isoformat()
    return ChunkCancel(index, "FR", slot, size, outcome, why.say("en"), changed, why)


@pytest.mark.parametrize(
    ("spared", "said"),
    [
        (0, "0 destinataire ne recevra pas le SMS"),
        (1, "1 destinataire ne recevra pas le SMS"),
        (2, "2 destinataires ne recevront pas le SMS"),
    ],
)
def test_the_cancel_artifact_is_french_with_its_plurals(spared: int, said: str) -> None:
    results = [
        result(0, "cancelled", Why("cancelled_at_gateway"), size=spared, changed=bool(spared)),
        result(1, "too_late", Why("too_close", {"left": "4 min 00 s", "notice": "5 min 00 s"})),
        result(2, "already_sent", Why("slot_passed")),
        result(3, "already_sent", Why("sent_at_once")),
    ]
    counts = count("cid-20251207-103031-ab31", results)
    page = markdown_cancel(counts, results, NOW, lang="fr")
    assert said in page
    assert "- 1 lot annulé chez SMS Partner" in page
    assert "- 2 lots déjà partis" in page and "- 1 lot trop proche" in page
    assert "son heure d'envoi est passée" in page and "parti tout de suite" in page
    assert "(heure de Paris)" in page  # times for people, not ISO strings
    assert "cid-20251207-103031-ab31" in page
    assert not ENGLISH.findall(page.replace("SMS Partner", "")), ENGLISH.findall(page)
    english = markdown_cancel(counts, results, NOW, lang="en")
    assert "2 chunks already sent" in english and "its slot has passed" in english
    assert ("1 recipient will" in english) is (spared == 1)


def test_the_cancel_says_what_to_do_next() -> None:
    done = count("c", [result(0, "cancelled", Why("cancelled_at_gateway"), changed=True)])
    assert summary_lines(done, "fr") == [
        "annulation de c : 1 lot annulé ; 0 lot non annulé ; 1 destinataire épargné",
        "Plus rien ne partira pour cette campagne.",
    ]
    assert summary_lines({**done, "recipients_cancelled": 2}, "en")[0].endswith(
        "2 recipients spared"
    )
    later = count("c", [result(0, "not_found", Why("not_visible_yet"))])
    assert any("Relancez l'annulation" in line for line in summary_lines(later, "fr"))
    assert unknown_campaign_line("demo-satisfaction-20251207-103031", "fr").startswith(
        "Campagne « demo-satisfaction-20251207-103031 » inconnue : aucun envoi"
    )


def test_what_can_still_be_cancelled_is_listed_by_slot_and_territory() -> None:
    soon, later = NOW + timedelta(minutes=4), NOW + timedelta(hours=3)
    chunks = [
        replace(chunk(slot=later), chunk_index=0, numbers=("+33612345678",) * 2),
        replace(chunk(slot=later), chunk_index=1, numbers=("+33612345679",) * 3),
        replace(chunk(slot=later), chunk_index=2, territory="GP"),
        replace(chunk(slot=soon), chunk_index=3),  # too late
        replace(chunk(slot=NOW - timedelta(hours=1)), chunk_index=4),  # gone
        replace(chunk(state=ChunkState.cancelled), chunk_index=5),
        replace(chunk(state=ChunkState.pending), chunk_index=6),  # never sent: a rerun would
        replace(chunk(state=ChunkState.in_doubt, slot=later), chunk_index=7),
    ]
    listed = what_can_be_cancelled(chunks, NOW)
    assert [(s.slot, s.territory, s.recipients) for s in listed] == [
        (later.isoformat(), "FR", 6),
        (later.isoformat(), "GP", 1),
        (None, "FR", 1),
    ]
    offer = markdown_offer("c-1", listed, "http://ui/run?parameters=x", "fr")
    assert "[Annuler cette campagne](http://ui/run?parameters=x)" in offer
    assert "France métropolitaine : 6 destinataires" in offer
    assert "Guadeloupe : 1 destinataire" in offer and "**pas encore envoyé**" in offer
    assert "boutons « Cancel » de Prefect" in offer
    words = offer.replace("(http://ui/run?parameters=x)", "").replace("SMS Partner", "")
    assert not ENGLISH.findall(words.replace("« Cancel »", "")), ENGLISH.findall(words)
    # Nothing left to call off: no offer at all.
    assert what_can_be_cancelled(chunks[3:6], NOW) == []
    assert markdown_offer("c-1", [], "http://ui", "fr") == ""
