"""Dead numbers retired: a number "Not delivered" in K campaigns in a row goes into the never-text
store as undeliverable for D days, and comes out once delivered again.

The rule is table- and property-tested (``tasks/retire.py``); the store's history, expiry and
release run on real SQLite, PostgreSQL and MariaDB ledgers; the follow-up runs end to end
against the simulator over HTTP.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from helpers import TEST_KEY, mobiles, start_cli, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from flows.follow_up import follow_up_campaign
from flows.parameters import Limits, RetireAfter, RetireDays
from flows.survey_campaign import RecipientSource, send_survey_campaign
from tasks import ledger as lg
from tasks import retire as rt
from tasks import runtime
from tasks.delivery import (
    ChunkDelivery,
    FollowUp,
    aggregate,
    markdown_delivery,
    number_statuses,
    tally_chunk,
)
from tasks.ledger.model import aware
from tasks.ledger.schema import delivery_history
from tasks.nevertext import NeverText, Origin
from tasks.retire import Held, Reading, Verdict, verdict

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
D, N, W, OT = "delivered", "not_delivered", "waiting", "other"


def readings(*statuses: str) -> list[Reading]:
    """One reading per campaign, a week apart, in the order given."""
    return [Reading(f"c{i}", T0 + timedelta(days=7 * i), s) for i, s in enumerate(statuses)]


# -- the rule ------------------------------------------------------------------------------------

LATER = T0 + timedelta(days=30)
IN_FORCE = Held("c1", LATER + timedelta(days=100))
EXPIRED = Held("c1", LATER - timedelta(days=1))


@pytest.mark.parametrize(
    ("statuses", "held", "after", "expected"),
    [
        ((), None, 2, Verdict.keep),  # nothing read yet
        ((N,), None, 2, Verdict.keep),  # one campaign is not a streak
        ((N, N), None, 2, Verdict.retire),
        ((N, W, OT, N), None, 2, Verdict.retire),  # waiting and other neither count nor break
        ((N, D, N), None, 2, Verdict.keep),  # a delivery breaks the streak
        ((D, N, N), None, 2, Verdict.retire),  # only the last K count
        ((N, N), None, 3, Verdict.keep),
        ((N, N, N), None, 3, Verdict.retire),
        ((N,), None, 1, Verdict.retire),
        ((N, N, N, N), None, 0, Verdict.keep),  # 0: never retire
        ((N, N), IN_FORCE, 2, Verdict.keep),  # already retired
        ((N, N), EXPIRED, 2, Verdict.keep),  # expired: the same streak does not retire again
        ((N, N, N), EXPIRED, 2, Verdict.retire),  # a campaign after it does
        ((N, N, D), IN_FORCE, 2, Verdict.release),  # delivered again
        ((N, N, D), EXPIRED, 2, Verdict.release),  # its stale entry goes too
        ((N, N, D, W), IN_FORCE, 2, Verdict.release),
        ((N, N, D), IN_FORCE, 0, Verdict.release),  # retiring off: still released
        ((D,), None, 2, Verdict.keep),  # nothing to release
        ((W, OT), IN_FORCE, 2, Verdict.keep),
        ((N, N), Held("c0", None), 2, Verdict.keep),  # an entry without an end always blocks
    ],
)
def test_the_streak_rule(
    statuses: tuple[str, ...], held: Held | None, after: int, expected: Verdict
) -> None:
    assert verdict(readings(*statuses), held, after=after, now=LATER) == expected


def test_the_campaigns_order_is_theirs_not_the_order_the_statuses_were_read() -> None:
    history = readings(N, N, D)
    shuffled = [history[2], history[0], history[1]]
    assert verdict(shuffled, IN_FORCE, after=2, now=LATER) == Verdict.release
    # The delivered campaign came first: re-reading it later releases nobody.
    early = [Reading("c9", T0 - timedelta(days=7), D), *readings(N, N)]
    assert verdict(early, IN_FORCE, after=2, now=LATER) == Verdict.keep


def reference(statuses: list[str], held: bool, after: int) -> Verdict:
    """The rule said the long way: the definite statuses only, then their tail."""
    said = [s for s in statuses if s in (D, N)]
    if said and said[-1] == D:
        return Verdict.release if held else Verdict.keep
    if after and len(said) >= after and set(said[-after:]) == {N} and not held:
        return Verdict.retire
    return Verdict.keep


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([D, N, W, OT]), max_size=12),
    st.booleans(),
    st.integers(0, 5),
)
def test_any_history_gets_the_verdict_of_its_definite_statuses(
    statuses: list[str], held: bool, after: int
) -> None:
    entry = IN_FORCE if held else None
    got = verdict(readings(*statuses), entry, after=after, now=LATER)
    assert got == reference(statuses, held, after)
    # waiting and other, anywhere, change nothing
    definite_only = [s for s in statuses if s in (D, N)]
    assert verdict(readings(*definite_only), entry, after=after, now=LATER) == got


def test_expiry_and_settings() -> None:
    assert rt.expiry(T0, 180) == T0 + timedelta(days=180)
    assert not Held("c", T0).blocks(T0) and Held("c", T0).blocks(T0 - timedelta(seconds=1))
    assert rt.settings_problem(2, 180) is None and rt.settings_problem(0, 1) is None
    assert "--retire-after" in (rt.settings_problem(-1, 180) or "")
    assert "--retire-after" in (rt.settings_problem(rt.MAX_AFTER + 1, 180) or "")
    assert "--retire-days" in (rt.settings_problem(2, 0) or "")
    # the form's bounds are the command line's
    after, days = (get_args(kind)[1].metadata for kind in (RetireAfter, RetireDays))
    assert [m.le for m in after if hasattr(m, "le")] == [rt.MAX_AFTER]
    assert [m.le for m in days if hasattr(m, "le")] == [rt.MAX_DAYS]


# -- per-number statuses and the follow-up's summary ---------------------------------------------


def chunk(numbers: tuple[str, ...], survey_id: str | None = None) -> lg.ChunkRow:
    row = lg.ChunkRow(
        campaign_id="c",
        chunk_index=0,
        tag="t",
        territory="FR",
        slot=None,
        numbers=numbers,
        refused={},
        state="sent",
        reason=None,
        detail=None,
        owner=None,
        message_id=7,
        nb_sms=1,
        cost=0.1,
        currency="EUR",
        attempts=1,
    )
    if survey_id is not None:
        object.__setattr__(row, "survey_id", survey_id)  # the field another change adds
    return row


def test_each_recipient_gets_one_bucket_and_no_number_reaches_the_files(tmp_path: Path) -> None:
    from smspartner import StatusEntry
    from tasks.delivery_io import write_follow_up

    a, b, c = mobiles(3)
    at = datetime(2025, 3, 1, 9, tzinfo=UTC)
    entries = [StatusEntry(a, "Delivered", False, at, 7), StatusEntry(b, "ko", False, at, 7)]
    first = tally_chunk(chunk((a, b, c)), entries, source="message")
    assert first.statuses == ((a, D), (b, N), (c, OT))  # not listed: other
    again = tally_chunk(chunk((b,)), [StatusEntry(b, "Delivered", False, at, 7)], source="tag")
    # Sent twice by one campaign: the status that says most wins.
    assert number_statuses([first, again]) == [(a, D), (b, D), (c, OT)]
    result = aggregate("c", [first, again], checked_at=at)
    path = write_follow_up(tmp_path, result, [first, again])
    for written in (path, tmp_path / "delivery.csv"):
        assert not any(n in written.read_text(encoding="utf-8-sig") for n in (a, b, c))


def delivery(index: int, survey_id: str | None, delivered: int) -> ChunkDelivery:
    counts = {D: delivered, N: 1, W: 0, OT: 0}
    return ChunkDelivery(index, "FR", delivered + 1, counts, (), "message", survey_id=survey_id)


def test_several_surveys_each_get_their_figures_one_survey_keeps_the_summary_as_it_was() -> None:
    at = datetime(2025, 3, 1, 9, tzinfo=UTC)
    mixed = [delivery(0, "ENQ_EN", 4), delivery(1, None, 10), delivery(2, "ENQ_EN", 1)]
    result = aggregate("c", mixed, checked_at=at, survey_id="ENQ_FR")
    assert result.as_counts()["surveys"] == {
        "ENQ_EN": {D: 5, N: 2, W: 0, OT: 0},
        "ENQ_FR": {D: 10, N: 1, W: 0, OT: 0},
    }
    assert "| `ENQ_EN` | 5 | 2 | 0 | 0 |" in markdown_delivery(result)
    alone = aggregate("c", [delivery(0, None, 3)], checked_at=at, survey_id="ENQ_FR")
    assert "surveys" not in alone.as_counts()
    assert tally_chunk(chunk(("+33610000001",), "ENQ_EN"), [], source="tag").survey_id == "ENQ_EN"


def test_the_summary_says_how_many_were_retired_and_released_in_french() -> None:
    counts = {D: 10, N: 2, W: 0, OT: 0}
    result = FollowUp("c1", 1, counts, {"FR": counts}, retired=2, released=1)
    assert result.as_counts()["retired"] == 2 and result.as_counts()["released"] == 1
    fr = markdown_delivery(result)
    assert "## Numéros qui ne reçoivent plus les SMS" in fr
    assert "non délivrés lors de plusieurs campagnes de suite) : 2" in fr
    assert "de nouveau joignables (délivrés depuis) : 1" in fr
    assert "Numbers no longer reached" in markdown_delivery(result, lang="en")


# -- the store, on three databases -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def days(self, n: float) -> None:
        self.now += timedelta(days=n)


@pytest.fixture
def clocked(ledger_url: str) -> Any:
    """A ledger on each database whose clock the test moves, and that clock."""
    clock = Clock()
    led = lg.Ledger(ledger_url, clock=clock, pseudonym_key=os.urandom(32))
    yield led, clock
    led.close()


def follow(store: NeverText, clock: Clock, campaign: str, statuses: dict[str, str]) -> Any:
    """One follow-up pass of a new campaign, a week after the previous one."""
    clock.days(7)
    return store.record_deliveries(campaign, statuses.items(), after=2, days=180)


def test_two_campaigns_not_delivered_retire_a_number_until_it_is_delivered_again(
    clocked: Any,
) -> None:
    led, clock = clocked
    store = NeverText(led)
    a, b, c, stop = mobiles(4, start=5_000)
    store.add([stop], Origin.reply, "STOP reply")
    first = follow(store, clock, "c1", {a: N, b: N, c: D, stop: N})
    assert first == {"recorded": 4, "retired": 0, "released": 0}
    assert follow(store, clock, "c2", {a: W, b: D, stop: W}) == {
        "recorded": 3,
        "retired": 0,
        "released": 0,
    }
    # a: not delivered, waiting (no count), not delivered: two in a row
    later = follow(store, clock, "c3", {a: N, b: N, c: N, stop: N})
    assert later["retired"] == 2  # a, and the STOP one (its own entry keeps it apart)
    assert store.among([a, b, c, stop]) == {a, stop}
    assert store.undeliverable_among([a, b, c, stop]) == {a}  # the STOP one stays "opted out"
    [entry] = [e for e in store.entries_of(a) if e.source == Origin.undeliverable]
    assert entry.campaign_id == "c3" and entry.reason == "not delivered in 2 successive campaigns"
    assert store.counts() == {"stop_reply": 1, "undeliverable": 2, "people": 2}

    # The same campaign read again the next day changes nothing.
    clock.days(1)
    again = store.record_deliveries("c3", {a: N, b: N}.items(), after=2, days=180)
    assert again == {"recorded": 0, "retired": 0, "released": 0}

    # Delivered in a later campaign: out; the STOP reply's entry never leaves.
    out = follow(store, clock, "c4", {a: D, stop: D})
    assert out == {"recorded": 2, "retired": 0, "released": 2}
    assert store.among([a, b, c, stop]) == {stop}
    assert store.undeliverable_among([a, stop]) == set()
    assert store.counts() == {"stop_reply": 1, "people": 1}


def test_an_undeliverable_entry_stops_blocking_after_its_days(clocked: Any) -> None:
    led, clock = clocked
    store = NeverText(led)
    [a] = mobiles(1, start=6_000)
    follow(store, clock, "c1", {a: N})
    follow(store, clock, "c2", {a: N})
    assert store.undeliverable_among([a]) == {a}
    clock.days(179)
    assert store.among([a]) == {a}
    clock.days(2)  # past 180 days
    assert store.among([a]) == set() and store.undeliverable_among([a]) == set()
    assert store.entries_of(a) == [] and store.counts() == {"people": 0}
    assert [e.source for e in store.entries()] == ["undeliverable"]  # the audit still shows it
    # Reading the old campaign again does not retire it anew; a new "Not delivered" does.
    assert store.record_deliveries("c2", [(a, N)], after=2, days=180)["retired"] == 0
    assert follow(store, clock, "c3", {a: N})["retired"] == 1
    [entry] = store.entries_of(a)
    assert entry.campaign_id == "c3"
    assert aware(entry.expires_at) == clock.now + timedelta(days=180)


def test_the_history_keeps_keyed_values_and_goes_with_an_erasure_and_the_purge(
    clocked: Any,
) -> None:
    led, clock = clocked
    store = NeverText(led)
    people = mobiles(5, start=7_000)
    follow(store, clock, "old", dict.fromkeys(people, N))
    follow(store, clock, "new", dict.fromkeys(people, N))
    with led.engine.connect() as conn:
        rows = conn.execute(select(delivery_history)).all()
    assert len(rows) == 10
    assert all(len(r.digest) == 20 and not r.digest.startswith("+") for r in rows)
    assert not any(n.lstrip("+") in str(r) for r in rows for n in people)

    assert store.forget_history(people[:1]) == 2
    purged = store.purge_history(clock.now - timedelta(days=3))  # "old" only
    assert purged == {"history": 4, "expired": 0}
    with led.engine.connect() as conn:
        left = conn.execute(select(delivery_history.c.campaign_id)).scalars().all()
    assert sorted(left) == ["new"] * 4
    clock.days(400)
    assert store.purge_history(clock.now - timedelta(days=30)) == {"history": 4, "expired": 5}


def test_an_older_ledger_gets_the_expiry_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite"
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE never_text (digest VARCHAR(40) NOT NULL, source VARCHAR(16) NOT "
                "NULL, reason VARCHAR(200), campaign_id VARCHAR(120), added_at DATETIME NOT "
                "NULL, PRIMARY KEY (digest, source))"
            )
        )
    engine.dispose()
    store = NeverText(lg.Ledger(url, pseudonym_key=os.urandom(32)))
    [a] = mobiles(1)
    store.add([a], Origin.manual, "by hand")
    assert store.among([a]) == {a} and store.entries_of(a)[0].expires_at is None


# -- end to end, against the simulator -----------------------------------------------------------


def at_rate(simulator: Any, rate: float) -> None:
    """The simulator's share of "Not delivered" numbers: which ones is fixed by each number,
    and read when a status is asked for."""
    simulator.state.not_delivered_rate = rate


def outcome(simulator: Any, number: str, rate: float) -> tuple[str, bool]:
    at_rate(simulator, rate)
    status, stop = simulator.state.planned_outcome(number)
    return str(status), bool(stop)


def people_for(simulator: Any) -> tuple[str, str, str]:
    """a: not delivered at a rate of 0.3 and 0.6; b: delivered at 0.3, not at 0.6; c: always
    delivered; none of them ever replies STOP."""
    pool = [n for n in mobiles(400, start=8_000) if not outcome(simulator, n, 0.0)[1]]
    a = next(n for n in pool if outcome(simulator, n, 0.3)[0] == "Not delivered")
    b = next(
        n
        for n in pool
        if outcome(simulator, n, 0.3)[0] == "Delivered"
        and outcome(simulator, n, 0.6)[0] == "Not delivered"
    )
    c = next(n for n in pool if outcome(simulator, n, 0.6)[0] == "Delivered")
    return a, b, c


def campaign(path: Path, campaign_id: str, **more: Any) -> dict[str, Any]:
    state = send_survey_campaign(
        survey_id="satisfaction",
        recipients=RecipientSource(path=str(path)),
        campaign_id=campaign_id,
        limits=Limits(frequency_cap_days=0),  # the same people, every week
        return_state=True,
        **more,
    )
    assert state.is_completed(), state.message
    return dict(state.result())


def past_every_slot(simulator: Any, campaigns: tuple[str, ...]) -> None:
    """The simulator's clock past the campaigns' last slot and its delivery delay."""
    ledger = lg.Ledger(os.environ["SURVEY_LEDGER_URL"])
    slots = [
        datetime.fromisoformat(c.slot) for cid in campaigns for c in ledger.chunks(cid) if c.slot
    ]
    ledger.close()
    ahead = (max(slots, default=simulator.state.now()) - simulator.state.now()).total_seconds()
    simulator.state.advance(max(ahead, 0) + simulator.state.delivery_delay_s + 1)


def follow_up(campaign_id: str, **kwargs: Any) -> dict[str, Any]:
    state = follow_up_campaign(campaign_id=campaign_id, return_state=True, **kwargs)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, dict)
    return result


@pytest.mark.usefixtures("open_all_day")
def test_not_delivered_in_two_follow_ups_is_retired_and_a_later_delivery_releases_it(
    campaign_env: Path, simulator: Any
) -> None:
    a, b, c = people_for(simulator)
    simulator.state.delivery_delay_s = 3600  # the reports wait for the test's clock
    path = write_csv(campaign_env / "r.csv", [a, b, c])
    for cid in ("week-1", "week-2", "week-3"):  # three weekly campaigns, all sent
        campaign(path, cid)
    store = NeverText(runtime.open_ledger(os.environ["SURVEY_LEDGER_URL"]))

    waiting = follow_up("week-1")  # no delivery report yet: nothing is decided
    assert waiting["waiting"] == 3 and waiting["retired"] == 0
    past_every_slot(simulator, ("week-1", "week-2", "week-3"))

    at_rate(simulator, 0.3)
    first = follow_up("week-1")
    assert (first["delivered"], first["not_delivered"], first["retired"]) == (2, 1, 0)
    assert store.among([a, b, c]) == set()

    at_rate(simulator, 0.6)
    second = follow_up("week-2")
    assert (second["not_delivered"], second["retired"], second["released"]) == (2, 1, 0)
    assert store.undeliverable_among([a, b, c]) == {a}  # b: only once
    assert store.among([a, b, c]) == {a}
    # The next campaign skips it, with its own reason (not an opt-out), and texts the others.
    # (A dry run: the simulator's clock was moved past every slot, the planner's is today's.)
    fourth = campaign(path, "week-4", dry_run=True)
    assert fourth["rejected"] == {"undeliverable": 1, "dry_run": 2}
    assert simulator.state.accepted_numbers().count(a) == 3  # weeks 1-3, not week 4
    report = campaign_env / "data" / "reports" / "week-2"
    saved = (report / "follow_up.json").read_text(encoding="utf-8")
    assert json.loads(saved)["retired"] == 1
    for n in (a, b, c):
        assert n not in saved and n[3:] not in saved

    at_rate(simulator, 0.0)
    third = follow_up("week-3")  # delivered again: back among the reachable
    assert (third["delivered"], third["retired"], third["released"]) == (3, 0, 1)
    assert store.among([a, b, c]) == set() == store.undeliverable_among([a, b, c])


@pytest.mark.usefixtures("open_all_day")
def test_retiring_settings_from_the_flow_and_the_command_line(
    campaign_env: Path, simulator: Any
) -> None:
    [a] = mobiles(1, start=9_000)
    campaign(write_csv(campaign_env / "r.csv", [a]), "once")
    past_every_slot(simulator, ("once",))
    at_rate(simulator, 1.0)
    assert follow_up("once", retire_after=1, retire_days=3)["retired"] == 1
    [entry] = NeverText(runtime.open_ledger(os.environ["SURVEY_LEDGER_URL"])).entries_of(a)
    assert entry.source == "undeliverable"
    expires = aware(entry.expires_at)
    assert expires is not None
    left = expires - datetime.now(UTC)
    assert timedelta(days=2, hours=23) < left <= timedelta(days=3)

    bad = start_cli("flows.follow_up", campaign_env, "--campaign-id", "once", "--retire-days", "0")
    out, err = bad.communicate(timeout=120)
    assert bad.returncode == 2 and out == ""
    assert err.strip().splitlines() == ["error: --retire-days must be between 1 and 3650"]
    assert TEST_KEY not in err
