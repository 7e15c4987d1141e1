"""Random samples with quotas (tasks.sample): the draw a survey team can predict and audit.

"Survey 400 of this week's 12,000, at most 150 per territory, never someone surveyed in the last
6 months": exact sizes, quotas never exceeded, nobody within the exclusion window drawn, the same
seed giving the same draw whatever the file's order, proportional shares kept, and every row
either drawn or not (``loaded = sent + failed + rejected`` keeps holding).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.sample import (
    MAX_SEED,
    Draw,
    SampleSpec,
    apportion,
    draw,
    parse_quota,
    parse_size,
    requested_size,
)

CELLS = ["971", "972", "974", "FR", ""]  # territories, and a row without one

rows_st = st.lists(st.tuples(st.sampled_from(CELLS), st.booleans()), max_size=120)
seed_st = st.integers(0, MAX_SEED)


def keys_of(n: int) -> list[str]:
    return [f"+336{10_000_000 + i:08d}" for i in range(n)]


def split(rows: list[tuple[str, bool]]) -> tuple[list[str], list[bool]]:
    return [c for c, _ in rows], [e for _, e in rows]


def per_cell(cells: list[str], positions: list[int]) -> Counter[str]:
    return Counter(cells[i] for i in positions)


def eligible_per_cell(cells: list[str], eligible: list[bool]) -> Counter[str]:
    return Counter(c for c, e in zip(cells, eligible, strict=True) if e)


def check_invariants(d: Draw, cells: list[str], eligible: list[bool]) -> None:
    """What holds of every draw: only eligible people, each row drawn or not, a JSON record
    whose counts add up."""
    assert d.drawn == sorted(set(d.drawn))
    assert all(eligible[i] for i in d.drawn), "someone within the exclusion window was drawn"
    assert sorted(d.drawn + d.not_drawn()) == list(range(len(cells)))
    rec = json.loads(json.dumps(d.record))
    assert rec == d.record
    assert rec["population"] == len(cells)
    assert rec["eligible"] == sum(eligible)
    assert rec["drawn"] == len(d.drawn)
    assert sum(c["drawn"] for c in rec["cells"].values()) == len(d.drawn)
    assert sum(c["population"] for c in rec["cells"].values()) == len(cells)
    assert dict(per_cell(cells, d.drawn)) == {
        k: v["drawn"] for k, v in rec["cells"].items() if v["drawn"]
    }


# -- sizes and quotas ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(rows_st, st.integers(1, 150), seed_st)
def test_an_exact_size_draws_that_many_or_every_eligible(
    rows: list[tuple[str, bool]], size: int, seed: int
) -> None:
    cells, eligible = split(rows)
    d = draw(cells, eligible, SampleSpec(size=size), seed)
    check_invariants(d, cells, eligible)
    assert len(d.drawn) == min(size, sum(eligible))
    assert d.record["short"] is (size > sum(eligible))
    assert d.record["limited_by"] == ("eligible" if size > sum(eligible) else None)


@settings(max_examples=300, deadline=None)
@given(rows_st, st.one_of(st.none(), st.integers(1, 150)), st.integers(1, 30), seed_st)
def test_a_quota_is_never_exceeded_and_the_size_is_all_it_allows(
    rows: list[tuple[str, bool]], size: int | None, quota: int, seed: int
) -> None:
    cells, eligible = split(rows)
    d = draw(cells, eligible, SampleSpec(size=size, quota=quota, quota_by="territory"), seed)
    check_invariants(d, cells, eligible)
    assert all(n <= quota for n in per_cell(cells, d.drawn).values())
    allowed = sum(min(quota, n) for n in eligible_per_cell(cells, eligible).values())
    assert len(d.drawn) == (allowed if size is None else min(size, allowed))
    if size is not None and allowed < size:
        assert d.record["short"] is True
        assert d.record["limited_by"] == ("eligible" if sum(eligible) < size else "quota")


def test_the_issue_s_example_at_most_150_per_territory() -> None:
    rng = random.Random(1)
    cells = rng.choices(["FR", "971", "972", "974"], weights=[80, 7, 7, 6], k=12_000)
    eligible = [rng.random() > 0.2 for _ in cells]  # a fifth surveyed within 6 months
    spec = SampleSpec(size=400, quota=150, quota_by="territory", exclude_days=182)
    d = draw(cells, eligible, spec, seed=2024, keys=keys_of(len(cells)))
    check_invariants(d, cells, eligible)
    assert len(d.drawn) == 400 and d.record["short"] is False
    assert max(per_cell(cells, d.drawn).values()) <= 150
    assert d.record["quota"] == 150 and d.record["exclude_days"] == 182


def test_quotas_too_tight_for_the_size_make_a_short_draw_that_says_so() -> None:
    cells = ["A"] * 50 + ["B"] * 50
    d = draw(cells, [True] * 100, SampleSpec(size=30, quota=10), seed=5)
    assert len(d.drawn) == 20
    assert d.record["short"] is True and d.record["limited_by"] == "quota"
    assert d.record["size"] == 30


@settings(max_examples=300, deadline=None)
@given(rows_st, st.integers(1, 150), seed_st)
def test_proportional_keeps_each_value_within_one_of_its_exact_share(
    rows: list[tuple[str, bool]], size: int, seed: int
) -> None:
    cells, eligible = split(rows)
    d = draw(cells, eligible, SampleSpec(size=size, proportional=True), seed)
    check_invariants(d, cells, eligible)
    k = min(size, sum(eligible))
    assert len(d.drawn) == k
    population = Counter(cells)
    available = eligible_per_cell(cells, eligible)
    got = per_cell(cells, d.drawn)
    assert all(got[c] <= available[c] for c in population)
    exact = {c: Fraction(k * population[c], len(cells)) for c in population}
    if all(available[c] >= -(-exact[c].numerator // exact[c].denominator) for c in population):
        for c in population:  # eligible allows every exact share rounded up
            assert abs(got[c] - exact[c]) < 1, (c, got[c], exact[c])


def test_proportional_gives_what_a_short_value_cannot_take_to_the_others() -> None:
    cells = ["FR"] * 80 + ["974"] * 20
    eligible = [True] * 80 + [True] * 2 + [False] * 18  # la Réunion: two people eligible only
    d = draw(cells, eligible, SampleSpec(size=50, proportional=True), seed=3)
    got = per_cell(cells, d.drawn)
    assert got == {"FR": 48, "974": 2}


def test_apportion_by_largest_remainders() -> None:
    assert apportion(10, [6, 3, 1], [10, 10, 10]) == [6, 3, 1]
    assert apportion(7, [5, 3, 2], [9, 9, 9]) == [4, 2, 1]  # 3.5, 2.1, 1.4: the .5 wins
    assert apportion(10, [5, 3, 2], [1, 10, 10]) == [1, 5, 4]  # the first takes its cap only
    assert apportion(100, [1, 1], [3, 4]) == [3, 4]  # more seats than people: everyone
    assert apportion(0, [1, 2], [5, 5]) == [0, 0]


# -- percentages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "population", "asked"),
    [
        (10.0, 12_000, 1_200),
        (2.5, 100, 3),  # half up, not to the even
        (0.1, 30, 1),  # at least one
        (100.0, 7, 7),
        (33.3, 1_000, 333),
        (50.0, 0, 0),
    ],
)
def test_a_percentage_is_of_the_population_rounded_half_up(
    percent: float, population: int, asked: int
) -> None:
    assert requested_size(SampleSpec(percent=percent), population) == asked


def test_a_percentage_draws_from_the_eligible_and_says_when_they_are_too_few() -> None:
    cells = ["FR"] * 100
    d = draw(cells, [i < 5 for i in range(100)], SampleSpec(percent=10.0), seed=1)
    assert d.record["size"] == 10 and d.record["percent"] == 10.0
    assert d.drawn == [0, 1, 2, 3, 4] and d.record["limited_by"] == "eligible"


# -- the same seed, the same draw ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rows_st, st.integers(1, 150), seed_st, st.randoms(use_true_random=False))
def test_the_same_seed_draws_the_same_people_whatever_the_file_s_order(
    rows: list[tuple[str, bool]], size: int, seed: int, shuffler: random.Random
) -> None:
    cells, eligible = split(rows)
    keys = keys_of(len(rows))
    spec = SampleSpec(size=size, quota=7)
    first = draw(cells, eligible, spec, seed, keys=keys)
    assert draw(cells, eligible, spec, seed, keys=keys) == first
    order = list(range(len(rows)))
    shuffler.shuffle(order)
    again = draw(
        [cells[i] for i in order],
        [eligible[i] for i in order],
        spec,
        seed,
        [keys[i] for i in order],
    )
    assert {keys[order[i]] for i in again.drawn} == {keys[i] for i in first.drawn}
    assert again.record == first.record


def test_another_seed_draws_other_people() -> None:
    cells = ["FR"] * 1_000
    drawn = {
        tuple(draw(cells, [True] * 1_000, SampleSpec(size=50), seed=s).drawn) for s in range(5)
    }
    assert len(drawn) == 5


def test_everyone_eligible_is_as_likely_to_be_drawn() -> None:
    # 4,000 draws of 10 among 40: each person is drawn a quarter of the time (1,000 times; a
    # binomial's standard deviation is 27, so 850..1150 fails a fair draw once in 10^7).
    cells, eligible = ["A"] * 20 + ["B"] * 20, [True] * 40
    counts = np.zeros(40, dtype=int)
    for s in range(4_000):
        counts[draw(cells, eligible, SampleSpec(size=10), seed=s).drawn] += 1
    assert counts.min() > 850 and counts.max() < 1_150, counts


# -- no size: a quota or an exclusion alone --------------------------------------------------


def test_an_exclusion_window_alone_draws_every_eligible_person() -> None:
    eligible = [True, False, True, False]
    d = draw(["FR"] * 4, eligible, SampleSpec(exclude_days=180), seed=0)
    assert d.drawn == [0, 2] and d.not_drawn() == [1, 3]
    assert d.record["size"] is None and d.record["short"] is False


def test_no_rows_make_an_empty_draw() -> None:
    d = draw([], [], SampleSpec(size=10, quota=2), seed=0)
    assert d.drawn == [] and d.record["short"] is True and d.record["cells"] == {}


def test_rows_and_flags_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same lengths"):
        draw(["FR"], [True, True], SampleSpec(size=1), seed=0)


# -- what the operator types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("400", (400, None)),
        (" 12 000 ", (12_000, None)),
        ("12\u202f000", (12_000, None)),
        ("10%", (None, 10.0)),
        ("10,5 %", (None, 10.5)),
        ("100%", (None, 100.0)),
    ],
)
def test_a_size_is_a_count_or_a_percentage(typed: str, parsed: tuple[object, object]) -> None:
    assert parse_size(typed) == parsed


@pytest.mark.parametrize(
    "typed", ["", "0", "-5", "10.5", "abc", "0%", "150%", "%", "dix", "nan%", "１２"]
)
def test_a_size_that_cannot_be_read_is_refused_in_one_french_line(typed: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(typed)
    message = str(info.value)
    assert message.startswith("--sample") and "\n" not in message


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [("150", 150), ("proportional", "proportional"), ("Proportionnel", "proportional")],
)
def test_a_quota_is_a_count_or_proportional(typed: str, parsed: object) -> None:
    assert parse_quota(typed) == parsed


@pytest.mark.parametrize("typed", ["", "0", "-1", "1.5", "prop", "beaucoup"])
def test_a_quota_that_cannot_be_read_is_refused_in_one_french_line(typed: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quota(typed)
    assert str(info.value).startswith("--quota") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "option"),
    [
        (SampleSpec(size=10, percent=5.0), "--sample"),
        (SampleSpec(size=0), "--sample"),
        (SampleSpec(percent=0.0), "--sample"),
        (SampleSpec(size=10, quota=5, proportional=True), "--quota"),
        (SampleSpec(quota=0), "--quota"),
        (SampleSpec(proportional=True), "--quota proportional"),
        (SampleSpec(exclude_days=-1), "--sample-exclude-days"),
        (SampleSpec(quota_by="agence"), "--quota-by"),
        (SampleSpec(size=10, quota_by=" "), "--quota-by"),
        (SampleSpec(size=10, seed=-1), "--seed"),
        (SampleSpec(size=10, seed=MAX_SEED + 1), "--seed"),
    ],
)
def test_settings_that_contradict_each_other_are_refused(spec: SampleSpec, option: str) -> None:
    with pytest.raises(ValueError) as info:
        spec.validate()
    assert str(info.value).startswith(option) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "applies"),
    [
        (SampleSpec(), False),
        (SampleSpec(seed=4), False),
        (SampleSpec(size=400), True),
        (SampleSpec(quota=150, quota_by="agence"), True),  # at most 150 per agency, all else
        (SampleSpec(exclude_days=180), True),
    ],
)
def test_without_a_size_quota_or_window_nobody_is_left_out(spec: SampleSpec, applies: bool) -> None:
    assert spec.validate().applies is applies
