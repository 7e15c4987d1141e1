"""Who a campaign asks, at plan time (``tasks/audience.py``, ``tasks/plan.py``): a survey per
segment, the contact-pressure rules, the sample's draw and its exclusion window, a resumed
campaign keeping its draw. The ledger's answers come in as plain functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.parameters import Audience
from tasks import plan as pl
from tasks.accounting import check_identity, count_outcomes, row_outcomes
from tasks.audience import (
    MAX_QUOTA_VALUES,
    AudienceError,
    AudiencePlan,
    assign_surveys,
    key,
    parse_survey_map,
    quota_column_problem,
)
from tasks.numbers import parse_loose
from tasks.outcomes import NOT_SAMPLED, RECENTLY_SURVEYED
from tasks.pressure import first_rule_reached, parse_rule, rules_for
from tasks.row_columns import E164, REASON, RULE, SURVEY
from tasks.sample import SampleSpec
from tasks.slots import WindowPolicy

NOW = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Paris: the window is open
RULES = pl.PlanRules(
    chunk_size=2,
    concurrency=4,
    lead=timedelta(minutes=10),
    margin=timedelta(minutes=5),
    cap_days=0,
    policy=WindowPolicy(),
    allow_immediate=True,
)
PHONES = [f"+336123456{i:02d}" for i in range(40)]


def rows_of(phones: Sequence[str], **columns: Sequence[object]) -> pd.DataFrame:
    frame = pd.DataFrame({"phone": list(phones), **{k: list(v) for k, v in columns.items()}})
    return pl.clean_rows(frame, "phone", allow_foreign=False)


class Counts:
    """The ledger's texts by other campaigns: number -> [(when, survey)]."""

    def __init__(self, texts: dict[str, list[tuple[datetime, str]]] | None = None) -> None:
        self.texts = texts or {}
        self.asked: list[tuple[int, datetime, str | None]] = []

    def __call__(
        self, numbers: Iterable[str], since: datetime, survey: str | None
    ) -> dict[str, int]:
        wanted = list(numbers)
        self.asked.append((len(wanted), since, survey))
        out = {}
        for n in wanted:
            k = sum(1 for at, s in self.texts.get(n, []) if at >= since and survey in (None, s))
            if k:
                out[n] = k
        return out


def lookups(counts: Counts, draw: Any = None) -> pl.Lookups:
    return pl.Lookups(
        texted_since=lambda numbers, since: set(),
        observed_price=lambda: None,
        texted_counts=counts,
        earlier_draw=draw,
    )


def plan(rows: pd.DataFrame, audience: AudiencePlan, counts: Counts | None = None, **kw: Any):
    counts = counts or Counts()
    return pl.plan_rows(
        rows,
        kw.pop("existing", []),
        set(),
        RULES,
        NOW,
        lambda numbers, since: set(),
        audience=audience,
        lookups=lookups(counts, kw.pop("draw", None)),
        survey_id="MAIN",
    )


# -- a survey per segment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fr=ENQ_FR,en=ENQ_EN", {"fr": "ENQ_FR", "en": "ENQ_EN"}),
        (" FR = ENQ_FR ; Créole=ENQ_CR ", {"fr": "ENQ_FR", "creole": "ENQ_CR"}),
        ("=ENQ_VIDE", {"": "ENQ_VIDE"}),
        ({"es": "ENQ_ES"}, {"es": "ENQ_ES"}),
        (None, {}),
    ],
)
def test_a_survey_map_is_read_as_the_operator_writes_it(text: Any, expected: dict) -> None:
    assert parse_survey_map(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("fr", "illisible"),
        ("fr=", "invalide"),
        ("fr=ENQ 1", "invalide"),
        ("fr=A,FR=B", "deux enquêtes"),
    ],
)
def test_a_bad_survey_map_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_survey_map(text)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(
            lambda v: "=" not in v and "," not in v and ";" not in v and "\n" not in v and key(v)
        ),
        st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
        max_size=5,
    )
)
@settings(max_examples=60)
def test_every_value_of_a_written_map_reaches_its_survey(mapping: dict[str, str]) -> None:
    folded = {key(v): s for v, s in mapping.items()}
    if len(folded) != len(mapping):  # two spellings of one value: refused unless same survey
        return
    text = ",".join(f"{v}={s}" for v, s in mapping.items())
    assert assign_surveys(list(mapping), parse_survey_map(text), None, "langue") == list(
        mapping.values()
    )


def test_a_value_without_a_survey_stops_the_plan_or_takes_the_default() -> None:
    rows = rows_of(PHONES[:4], langue=["fr", "en", "es", "es"])
    strict = AudiencePlan(
        survey_by="langue", survey_map={"fr": "F", "en": "E"}, default_survey=False
    )
    with pytest.raises(AudienceError, match=r"« es » \(2 lignes\).*rien n'a été envoyé"):
        plan(rows, strict)
    out = plan(rows, replace(strict, default_survey=True))
    by_survey = {c.survey_id: c.numbers for c in out.plan}
    assert by_survey == {"F": (PHONES[0],), "E": (PHONES[1],), None: (PHONES[2], PHONES[3])}
    assert list(out.rows[SURVEY]) == ["F", "E", None, None]


def test_a_missing_segment_column_is_one_line() -> None:
    with pytest.raises(pl.CampaignError, match="colonne « langue » n'est pas dans le fichier"):
        plan(rows_of(PHONES[:2]), AudiencePlan(survey_by="langue", survey_map={"fr": "F"}))


def test_chunks_never_mix_surveys_and_keep_their_size() -> None:
    langs = ["fr", "en"] * 5
    out = plan(
        rows_of(PHONES[:10], langue=langs),
        AudiencePlan(survey_by="langue", survey_map={"fr": "F", "en": "E"}),
    )
    assert all(len(c.numbers) <= RULES.chunk_size for c in out.plan)
    for c in out.plan:
        assert {langs[PHONES.index(n)] for n in c.numbers} == {"fr" if c.survey_id == "F" else "en"}
    assert sorted(n for c in out.plan for n in c.numbers) == sorted(PHONES[:10])


# -- contact-pressure rules --------------------------------------------------------------------


def test_each_skip_is_under_the_first_rule_reached_and_a_survey_rule_counts_its_survey() -> None:
    a, b, c, d = PHONES[:4]
    counts = Counts(
        {
            a: [(NOW - timedelta(days=3), "OTHER")],  # the cap (1 in 30 days)
            b: [(NOW - timedelta(days=40), "MAIN"), (NOW - timedelta(days=60), "OTHER")],
            c: [(NOW - timedelta(days=40), "OTHER"), (NOW - timedelta(days=60), "OTHER")],
            d: [(NOW - timedelta(days=200), "MAIN")],  # outside every window
        }
    )
    rules = rules_for(30, ["quarter=2/90", "same=1/180:survey"])
    out = plan(rows_of([a, b, c, d]), AudiencePlan(rules=rules), counts)
    assert list(out.rows[REASON].fillna("")) == [RECENTLY_SURVEYED] * 3 + [""]
    # b: 2 in 90 days (quarter) and MAIN within 180 (same): the first rule in order wins
    assert list(out.rows[RULE].fillna("")) == ["cap", "quarter", "quarter", ""]
    assert {s for _, _, s in counts.asked} == {None, "MAIN"}
    assert [n for ch in out.plan for n in ch.numbers] == [d]


def test_a_survey_rule_alone_skips_only_who_had_this_survey() -> None:
    a, b = PHONES[:2]
    counts = Counts({a: [(NOW - timedelta(days=10), "MAIN")], b: [(NOW - timedelta(days=10), "X")]})
    out = plan(rows_of([a, b]), AudiencePlan(rules=(parse_rule("same=1/180:survey"),)), counts)
    assert list(out.rows[RULE].fillna("")) == ["same", ""]


# -- the sample --------------------------------------------------------------------------------


def audience(**spec: Any) -> AudiencePlan:
    return AudiencePlan(sample=SampleSpec(**spec), seed=7)


@given(st.integers(1, 40), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_a_sample_draws_its_size_and_every_row_ends_with_one_outcome(size: int, seed: int) -> None:
    rows = rows_of(PHONES, agence=[f"A{i % 3}" for i in range(40)])
    out = plan(rows, replace(audience(size=size), seed=seed))
    planned = [n for c in out.plan for n in c.numbers]
    assert len(planned) == size == out.sample["drawn"]
    assert (out.rows[REASON] == NOT_SAMPLED).sum() == 40 - size
    assert out.new_draw is not None and sorted(out.new_draw) == sorted(planned)
    counted = count_outcomes(row_outcomes(out.rows, [], dry_run=True))
    check_identity(counted)  # loaded = sent + failed + rejected
    assert counted.loaded == 40


def test_the_same_seed_gives_the_same_draw_and_quotas_hold() -> None:
    rows = rows_of(PHONES, agence=[f"A{i % 4}" for i in range(40)])
    first = plan(rows, audience(size=12, quota_by="agence", quota=2))
    again = plan(rows.copy(), audience(size=12, quota_by="agence", quota=2))
    assert first.new_draw == again.new_draw and len(first.new_draw) == 8  # 4 agencies x 2
    assert first.sample["short"] is True and first.sample["quota_by"] == "agence"
    assert all(cell["drawn"] <= 2 for cell in first.sample["cells"].values())


def test_nobody_surveyed_within_the_exclusion_window_is_drawn() -> None:
    recent = set(PHONES[:30])
    counts = Counts({n: [(NOW - timedelta(days=20), "X")] for n in recent})
    out = plan(rows_of(PHONES), audience(size=20, exclude_days=90), counts)
    drawn = {n for c in out.plan for n in c.numbers}
    assert drawn == set(PHONES[30:]) and out.sample["eligible"] == 10
    details = out.rows.loc[out.rows[E164].isin(recent), "_detail"]
    assert details.str.contains("within 90 days").all()


def test_a_resumed_campaign_keeps_its_recorded_draw() -> None:
    record = {"population": 40, "drawn": 3, "seed": 99}
    kept = set(PHONES[5:8])
    out = plan(
        rows_of(PHONES), audience(size=10), draw=lambda numbers: (record, kept & set(numbers))
    )
    assert {n for c in out.plan for n in c.numbers} == kept
    assert out.new_draw is None and out.sample == record
    assert (out.rows[REASON] == NOT_SAMPLED).sum() == 37


# -- the form and the command line -------------------------------------------------------------


def test_the_form_turns_into_the_planners_settings() -> None:
    who = Audience(
        sample="10 %",
        quota="proportionnel",
        seed=5,
        pressure_rules="quarter=2/90\nsame=1/180:survey",
        survey_by="langue",
        survey_map="fr=ENQ_FR, en=ENQ_EN",
    ).plan(frequency_cap_days=30)
    assert who.sample == SampleSpec(percent=10.0, proportional=True, seed=5)
    assert who.seed == 5 and [r.label for r in who.rules] == [
        "cap=1/30",
        "quarter=2/90",
        "same=1/180:survey",
    ]
    assert who.survey_map == {"fr": "ENQ_FR", "en": "ENQ_EN"}
    plain = Audience().plan(frequency_cap_days=0)  # the defaults: today's behaviour
    assert (plain.sample, plain.rules, plain.survey_by) == (None, (), None)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"sample": "dix"}, "sample"),
        ({"pressure_rules": ["x=0/30"]}, "au moins 1"),
        ({"survey_by": "langue"}, "correspondance"),
        ({"quota": "proportionnel"}, "taille"),
        ({"pressure_rules": ["a=1/30", "a=2/60"]}, "deux fois"),
    ],
)
def test_a_bad_audience_setting_is_refused_in_one_line(fields: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Audience(**fields).plan(30)


def test_the_command_line_takes_the_audience_options_by_their_contract_names() -> None:
    from flows.survey_campaign import _audience, parse_args

    args = parse_args(
        [
            "--survey-id", "S", "--recipients", "x.csv", "--sample", "10%", "--quota-by",
            "agence", "--quota", "proportional", "--sample-exclude-days", "180", "--seed", "42",
            "--pressure-rule", "quarter=2/90", "--pressure-rule", "same=1/180:survey",
            "--witnesses", "data/temoins.csv", "--witnesses-only", "--survey-by", "langue",
            "--survey-map", "fr=ENQ_FR,en=ENQ_EN", "--frequency-cap-days", "14",
        ]
    )  # fmt: skip
    who = _audience(args)
    assert (who.sample, who.quota_by, who.quota, who.seed) == ("10%", "agence", "proportional", 42)
    assert who.witnesses == "data/temoins.csv" and who.witnesses_only
    planned = who.plan(args.frequency_cap_days)
    assert [r.label for r in planned.rules] == ["cap=1/14", "quarter=2/90", "same=1/180:survey"]
    assert planned.sample is not None and planned.sample.exclude_days == 180


@pytest.mark.parametrize(
    "option",
    [["--sample", "beaucoup"], ["--pressure-rule", "trimestre"], ["--survey-by", "langue"]],
)
def test_a_bad_audience_option_is_a_usage_error_in_one_line(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.survey_campaign import main

    assert main(["--survey-id", "S", "--recipients", "x.csv", *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (["Nord", "Sud", "Nord", ""], None),
        ([f"06 12 34 56 {i:02d}" for i in range(10)], "numéros de téléphone"),
        ([f"client-{i}" for i in range(MAX_QUOTA_VALUES + 1)], "valeurs différentes"),
        ([f"A{i}" for i in range(MAX_QUOTA_VALUES)], None),
    ],
)
def test_a_quota_column_names_groups_never_people(values: list[str], words: str | None) -> None:
    why = quota_column_problem("col", values, lambda v: parse_loose(v) is not None)
    assert why is None if words is None else words in why


def test_quotas_by_the_phone_column_are_refused_before_any_send() -> None:
    rows = rows_of(PHONES[:10], tel=PHONES[:10])
    with pytest.raises(pl.CampaignError, match="numéros de téléphone") as caught:
        plan(rows, audience(size=5, quota_by="tel", quota=1))
    assert not any(n in str(caught.value) for n in PHONES)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_each_skip_is_judged_as_the_claims_judge_it(per_number: list[tuple[int, int]]) -> None:
    """The plan's bulk judgement agrees with ``first_rule_reached`` (the claim's) per number."""
    rules = rules_for(0, ["deux=2/30", "trois=3/90"])
    numbers = PHONES[: len(per_number)]
    texts = {
        n: [(NOW - timedelta(days=10), f"S{k}") for k in range(a)]
        + [(NOW - timedelta(days=60), f"T{k}") for k in range(b)]
        for n, (a, b) in zip(numbers, per_number, strict=False)
    }

    class Distinct(Counts):  # each text is another campaign's
        def __call__(self, wanted: Iterable[str], since: datetime, survey: str | None) -> dict:
            return {
                n: k
                for n in wanted
                if (k := sum(1 for at, _ in self.texts.get(n, []) if at >= since))
            }

    out = plan(rows_of(numbers), AudiencePlan(rules=rules), Distinct(texts))
    for number, rule in zip(
        numbers, out.rows[RULE] if RULE in out.rows else [None] * len(numbers), strict=True
    ):
        since = {r.name: NOW - timedelta(days=r.days) for r in rules}
        counts = {name: sum(1 for at, _ in texts[number] if at >= s) for name, s in since.items()}
        expected = first_rule_reached(counts, rules)
        assert (rule if isinstance(rule, str) else None) == expected
