"""Contact-pressure rules: their text form, who they hold, and the guarantee across campaigns
that overlap, on SQLite and the real PostgreSQL and MariaDB; a chunk's own survey at the gateway.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import OPEN_ALL_DAY, TEST_KEY
from hypothesis import given
from hypothesis import strategies as st

from smspartner import SMSPartnerClient
from tasks import ledger as lg
from tasks.outcomes import ChunkState
from tasks.pressure import (
    CAP,
    PressureRule,
    Text,
    counts_by_rule,
    first_rule_reached,
    held_value,
    holder,
    parse_rule,
    rules_for,
    split_held,
)
from tasks.sending import SendSettings, send_chunk_once
from tasks.slots import WindowPolicy

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
CAP30 = PressureRule("cap", 1, 30)
SURVEY2 = PressureRule("survey", 2, 90, this_survey=True)

# -- the text form ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("cap=1/30", CAP30),
        ("survey=2/90:survey", SURVEY2),
        (" meme_enquete=1/180:survey ", PressureRule("meme_enquete", 1, 180, this_survey=True)),
        ("Wait-6m=1/180", PressureRule("Wait-6m", 1, 180)),
        ("x=10/36500", PressureRule("x", 10, 36500)),
    ],
)
def test_a_rule_is_read_from_its_text(text: str, rule: PressureRule) -> None:
    assert parse_rule(text) == rule
    assert parse_rule(rule.label) == rule


@pytest.mark.parametrize(
    "text",
    [
        "",
        "cap",
        "cap=1",
        "cap=0/30",  # a limit of 0 would hold everybody
        "cap=1/0",
        "cap=1/36501",  # past a century a window has no start date
        "cap=-1/30",
        "cap=1/30:all",
        "cap=1/30:survey:survey",
        "c a p=1/30",
        "enquête=1/30",
        "cap=١/30",  # Arabic-Indic digit: not a number the operator typed on purpose
        "cap:x=1/30",
        "=1/30",
        "cap=1.5/30",
        "cap=1/30\nsurvey=1/90",
    ],
)
def test_bad_text_is_refused_in_one_french_line_quoting_the_form(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_rule(text)
    said = str(refused.value)
    assert "\n" not in said and "règle de pression" in said and "NOM=LIMITE/JOURS" in said


NAMES = st.from_regex(r"\A[A-Za-z0-9_-]{1,20}\Z")
CAMPAIGNS = st.from_regex(r"\A[A-Za-z0-9._-]{1,40}\Z")
RULES = st.builds(
    PressureRule,
    name=NAMES,
    limit=st.integers(1, 10_000),
    days=st.integers(1, 36_500),
    this_survey=st.booleans(),
)


@given(RULES)
def test_a_rule_reads_back_from_its_label(rule: PressureRule) -> None:
    assert parse_rule(rule.label) == rule


@given(NAMES, CAMPAIGNS)
def test_who_held_a_number_reads_back(rule: str, campaign: str) -> None:
    assert split_held(held_value(rule, campaign)) == (rule, campaign)


@given(CAMPAIGNS)
def test_an_older_ledgers_held_value_is_the_cap(campaign: str) -> None:
    assert split_held(campaign) == (CAP, campaign)


@pytest.mark.parametrize(
    ("cap_days", "texts", "labels"),
    [
        (0, [], []),  # the cap off and no rule: nobody is held, as before
        (30, [], ["cap=1/30"]),
        (30, ["survey=2/90:survey"], ["cap=1/30", "survey=2/90:survey"]),
        (0, ["survey=2/90:survey"], ["survey=2/90:survey"]),
        (30, ["a=1/7", "cap=2/60"], ["cap=2/60", "a=1/7"]),  # a written cap takes its place
        (0, ["b=1/7", "a=1/7"], ["b=1/7", "a=1/7"]),  # the operator's order is kept
    ],
)
def test_the_campaigns_rules(cap_days: int, texts: list[str], labels: list[str]) -> None:
    assert [r.label for r in rules_for(cap_days, texts)] == labels


@pytest.mark.parametrize(
    "texts", [["a=1/7", "a=2/90:survey"], ["cap=1/7", "cap=1/30"], ["a=1/7", "oops"]]
)
def test_two_rules_of_one_name_or_a_bad_one_are_refused(texts: list[str]) -> None:
    with pytest.raises(ValueError) as refused:
        rules_for(30, texts)
    assert "\n" not in str(refused.value) and "règle de pression" in str(refused.value)


# -- who a rule holds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "reached"),
    [
        ({}, None),
        ({"cap": 0, "survey": 1}, None),
        ({"cap": 1}, "cap"),
        ({"survey": 2}, "survey"),
        ({"cap": 1, "survey": 5}, "cap"),  # the first in order is the one counted
        ({"survey": 3, "other": 1}, "survey"),  # an unknown name counts for nothing
    ],
)
def test_the_first_rule_reached(counts: dict[str, int], reached: str | None) -> None:
    assert first_rule_reached(counts, (CAP30, SURVEY2)) == reached


@given(
    st.lists(RULES, max_size=5, unique_by=lambda r: r.name),
    st.dictionaries(NAMES, st.integers(0, 20_000), max_size=6),
)
def test_a_rule_is_reached_only_at_its_limit_and_only_the_first(
    rules: list[PressureRule], counts: dict[str, int]
) -> None:
    reached = first_rule_reached(counts, rules)
    at_limit = [r.name for r in rules if counts.get(r.name, 0) >= r.limit]
    assert reached == (at_limit[0] if at_limit else None)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.mark.parametrize(
    ("texts", "survey", "held"),
    [
        ([], "S", None),
        ([Text("a", ago(31), "S")], "S", None),  # past the cap, one of two for the survey
        ([Text("a", ago(29), "T")], "S", ("cap", "a")),
        ([Text("a", ago(60), "S"), Text("b", ago(45), "S")], "S", ("survey", "b")),
        ([Text("a", ago(60), "S"), Text("b", ago(45), "T")], "S", None),  # another survey
        ([Text("a", ago(60), "S"), Text("b", ago(91), "S")], "S", None),  # out of the window
        ([Text("a", ago(60), "S"), Text("b", ago(45), "S")], "T", None),
        ([Text("a", ago(60), "S"), Text("a", ago(40), "S")], "S", None),  # one campaign, once
        (
            [Text("a", ago(60), "S"), Text("b", ago(50), "S"), Text("c", ago(1), "S")],
            "S",
            ("cap", "c"),
        ),
        ([Text("b", ago(-2), "T")], "S", ("cap", "b")),  # reserved for a slot to come
        ([Text("a", ago(60), None), Text("b", ago(45), None)], "S", None),  # survey unknown
    ],
)
def test_who_holds_a_number(texts: list[Text], survey: str, held: tuple[str, str] | None) -> None:
    assert holder(texts, (CAP30, SURVEY2), NOW, survey) == held


def test_the_counts_per_rule_are_those_of_each_window() -> None:
    texts = [Text("a", ago(100), "S"), Text("b", ago(60), "S"), Text("c", ago(10), "T")]
    wide = PressureRule("any", 5, 365)
    assert counts_by_rule(texts, (CAP30, SURVEY2, wide), NOW, "S") == {
        "cap": 1,
        "survey": 1,
        "any": 3,
    }


# -- two overlapping campaigns on a real ledger -------------------------------------------------

GROUPS = {  # numbers by what earlier campaigns did to them
    "A1": [f"+3361100{i:04d}" for i in range(6)],  # survey S 60 days ago
    "A2": [f"+3361200{i:04d}" for i in range(6)],  # survey S 60 and 45 days ago
    "C": [f"+3361300{i:04d}" for i in range(6)],  # survey T 10 days ago
    "D": [f"+3361400{i:04d}" for i in range(6)],  # survey S 100 days ago
    "E": [f"+3361500{i:04d}" for i in range(6)],  # survey S 60, survey T 50 days ago
    "F": [f"+3361600{i:04d}" for i in range(6)],  # nobody
}
EARLIER = [  # (campaign, its survey, days ago, groups it texted)
    ("old-a", "S", 60, ("A1", "A2", "E")),
    ("old-b", "S", 45, ("A2",)),
    ("old-c", "T", 10, ("C",)),
    ("old-d", "S", 100, ("D",)),
    ("old-e", "T", 50, ("E",)),
]
RULE_TEXTS = ["survey=2/90:survey"]  # with --frequency-cap-days 30: cap=1/30 first


def earlier_campaigns(url: str, now: datetime) -> None:
    for campaign, survey, days, groups in EARLIER:
        then = now - timedelta(days=days)
        old = lg.Ledger(url, clock=functools.partial(lambda at: at, then))
        numbers = tuple(n for g in groups for n in GROUPS[g])
        old.create_plan(campaign, survey, [lg.ChunkPlan(0, "FR", None, numbers)])
        assert old.claim(campaign, 0, lg.owner_token(campaign), cost_per_recipient=0.05).reserved
        old.mark_sent(
            campaign,
            0,
            message_id=1,
            nb_sms=1,
            cost=0.05,
            currency="EUR",
            texted_at=then,
            reserved=True,
        )
        old.close()


def test_two_overlapping_campaigns_never_take_anyone_past_a_rule(ledger_url: str) -> None:
    now = datetime.now(UTC)
    earlier_campaigns(ledger_url, now)
    everyone = [n for g in GROUPS.values() for n in g]
    # Both campaigns plan everybody, in chunks of 6 mixing the groups. The second campaign's
    # default survey is U, but its chunks send survey S (a segment's survey): its own rule
    # counts the texts of S.
    mixed = [everyone[i::6] for i in range(6)]
    plans = {
        "new-1": ("S", [lg.ChunkPlan(i, "FR", None, tuple(c)) for i, c in enumerate(mixed)]),
        "new-2": ("U", [lg.ChunkPlan(i, "FR", None, tuple(c), "S") for i, c in enumerate(mixed)]),
    }
    rules = rules_for(30, RULE_TEXTS)
    workers = {cid: lg.Ledger(ledger_url) for cid in plans}  # two workers, one each
    for cid, (survey, plan) in plans.items():
        assert workers[cid].create_plan(cid, survey, plan)

    def claim(job: tuple[str, int]) -> lg.Claim:
        cid, index = job
        return workers[cid].claim(
            cid, index, lg.owner_token(cid), cost_per_recipient=0.05, rules=rules
        )

    jobs = [(cid, i) for i in range(6) for cid in plans]  # interleaved
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(claim, jobs))
    assert all(c.action is lg.ClaimAction.SEND and c.reserved for c in claims)
    chunks = [c for cid in plans for c in workers[cid].chunks(cid)]
    taken = Counter(n for c in chunks for n in c.numbers)
    held = {(c.campaign_id, n): split_held(v) for c in chunks for n, v in c.held.items()}
    group_of = {n: g for g, numbers in GROUPS.items() for n in numbers}
    for_group: dict[str, Counter[str]] = {g: Counter() for g in GROUPS}
    for n in everyone:
        for_group[group_of[n]].update(["sent"] * taken[n])
    for (_, n), (rule, _) in held.items():
        for_group[group_of[n]].update([rule])
    six = len(GROUPS["F"])
    assert for_group == {
        "A1": Counter(sent=six, cap=six),  # one S text in 90 days: the first campaign has it
        "A2": Counter(survey=2 * six),  # two S texts in 90 days: nobody has it
        "C": Counter(cap=2 * six),  # texted 10 days ago: nobody has it
        "D": Counter(sent=six, cap=six),
        "E": Counter(sent=six, cap=six),  # its second text was of survey T
        "F": Counter(sent=six, cap=six),
    }
    # Each skip names the campaign that held it: the latest one its rule counted.
    for (cid, n), (rule, by) in held.items():
        if group_of[n] == "A2":
            assert (rule, by) == ("survey", "old-b")
        elif group_of[n] == "C":
            assert (rule, by) == ("cap", "old-c")
        else:
            assert (rule, by) == ("cap", ({*plans} - {cid}).pop())
    # The ledger as a planner reads it: nobody past a limit, whoever looks.
    reader = workers["new-1"]
    within_cap = reader.texted_counts(
        everyone, since=now - timedelta(days=30), exclude_campaign="nobody"
    )
    of_s = reader.texted_counts(
        everyone, since=now - timedelta(days=90), exclude_campaign="nobody", survey_id="S"
    )
    assert max(within_cap.values()) == 1 and max(of_s.values()) == 2
    assert set(within_cap) == set(everyone) - set(GROUPS["A2"])
    # The second campaign's texts are recorded under the survey its chunks send.
    of_u = reader.texted_counts(
        everyone, since=now - timedelta(days=1), exclude_campaign="nobody", survey_id="U"
    )
    assert of_u == {}
    for led in workers.values():
        led.close()


def test_the_cap_alone_still_holds_as_before(ledger_url: str) -> None:
    led = lg.Ledger(ledger_url)
    shared = ("+33611000001", "+33611000002")
    led.create_plan("first", "s", [lg.ChunkPlan(0, "FR", None, shared)])
    led.create_plan("second", "s", [lg.ChunkPlan(0, "FR", None, (*shared, "+33611000004"))])
    led.claim("first", 0, lg.owner_token("a"), cost_per_recipient=0.05, cap_days=30)
    two = led.claim("second", 0, lg.owner_token("b"), cost_per_recipient=0.05, cap_days=30)
    assert two.chunk.numbers == ("+33611000004",)
    assert {n: split_held(v) for n, v in two.chunk.held.items()} == {
        n: ("cap", "first") for n in shared
    }
    led.close()


def test_an_older_ledgers_texts_count_for_their_campaigns_survey(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    led = lg.Ledger(f"sqlite:///{path}")
    led.create_plan("old", "S", [lg.ChunkPlan(0, "FR", None, ("+33611000001",))])
    led.claim("old", 0, lg.owner_token("o"), cost_per_recipient=0.05)
    led.close()
    with sqlite3.connect(path) as db:  # the texted table as the previous version had it
        db.execute("ALTER TABLE texted DROP COLUMN survey_id")
        db.execute("ALTER TABLE chunks DROP COLUMN survey_id")
    led = lg.Ledger(f"sqlite:///{path}")
    since = datetime.now(UTC) - timedelta(days=1)
    counts = led.texted_counts(
        ["+33611000001", "+33611000002"], since=since, exclude_campaign="new", survey_id="S"
    )
    assert counts == {"+33611000001": 1}
    assert (
        led.texted_counts(["+33611000001"], since=since, exclude_campaign="new", survey_id="T")
        == {}
    )
    assert led.chunks("old")[0].survey_id is None
    led.close()


# -- a chunk's survey at the gateway -------------------------------------------------------------


def test_a_chunk_sends_its_own_survey_and_the_ledger_records_it(
    ledger_url: str, simulator: Any
) -> None:
    french = tuple(f"+3362000{i:04d}" for i in range(3))
    english = tuple(f"+3362100{i:04d}" for i in range(3))
    led = lg.Ledger(ledger_url)
    plan = [
        lg.ChunkPlan(0, "FR", None, french),  # the campaign's survey
        lg.ChunkPlan(1, "FR", None, english, "ENQ_EN"),
    ]
    assert led.create_plan("langs", "ENQ_FR", plan)
    settings = SendSettings(
        campaign_id="langs",
        survey_id="ENQ_FR",
        base_url=simulator.url,
        ledger_url=ledger_url,
        owner=lg.owner_token("langs"),
        cost_per_recipient=0.045,
        policy=WindowPolicy(**OPEN_ALL_DAY),
        rules=rules_for(30, ["survey=1/90:survey"]),
    )
    with SMSPartnerClient(TEST_KEY, simulator.url) as client:
        results = [
            send_chunk_once(settings, i, client=client, ledger=led, sleep=lambda _: None)
            for i in range(2)
        ]
    assert [r.state for r in results] == [ChunkState.sent] * 2
    surveys = {n: s["survey_id"] for s in simulator.state.sends for n in s["numbers"]}
    assert surveys == {**dict.fromkeys(french, "ENQ_FR"), **dict.fromkeys(english, "ENQ_EN")}
    assert [c.survey_id for c in led.chunks("langs")] == [None, "ENQ_EN"]
    since = datetime.now(UTC) - timedelta(days=1)
    everyone = [*french, *english]
    for survey, numbers in (("ENQ_FR", french), ("ENQ_EN", english)):
        counts = led.texted_counts(everyone, since=since, exclude_campaign="x", survey_id=survey)
        assert counts == dict.fromkeys(numbers, 1)
    led.close()
