"""Issue 23 end to end: the send flow (real Prefect engine) against the gateway simulator on
127.0.0.1, with a ledger on disk. A two-language file reaches each person with their survey;
witnesses are texted once per campaign, outside the counts; a sample keeps its draw when the
campaign is resumed; two pressure rules each count their skips."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import identity, mobiles, run_flow

from flows.parameters import Audience

pytestmark = pytest.mark.usefixtures("campaign_env", "open_all_day")


def write(path: Path, rows: list[tuple[str, ...]], header: str) -> Path:
    path.write_text(header + "\n" + "\n".join(";".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def sends_by_number(simulator: Any) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for send in simulator.state.sends:
        for number in send["numbers"]:
            out.setdefault(number, []).append(send["survey_id"])
    return out


def test_a_two_language_file_reaches_each_person_with_their_survey(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(6)
    langs = ["fr", "en", "FR", "créole", "en", "es"]
    path = write(
        campaign_env / "langues.csv",
        [(n, lang) for n, lang in zip(numbers, langs, strict=True)],
        "mobile;langue",
    )
    who = Audience(survey_by="langue", survey_map="fr=ENQ_FR,en=ENQ_EN,creole=ENQ_CR")
    summary = run_flow(path, survey_id="ENQ_FR", audience=who, campaign_id="langs-1")
    identity(summary)
    texted = sends_by_number(simulator)
    expected = ["ENQ_FR", "ENQ_EN", "ENQ_FR", "ENQ_CR", "ENQ_EN", "ENQ_FR"]  # es: the default
    assert texted == {n: [survey] for n, survey in zip(numbers, expected, strict=True)}
    assert summary["surveys"]["ENQ_EN"]["sent"] == 2 and summary["surveys"]["ENQ_CR"]["sent"] == 1
    assert summary["surveys"]["ENQ_FR"]["sent"] == 3


def test_a_value_without_a_survey_stops_before_any_send(campaign_env: Path, simulator: Any) -> None:
    from flows.survey_campaign import RecipientSource, send_survey_campaign

    path = write(campaign_env / "l.csv", [(mobiles(1)[0], "es")], "mobile;langue")
    who = Audience(survey_by="langue", survey_map="fr=ENQ_FR", default_survey=False)
    state = send_survey_campaign(
        survey_id="ENQ_FR", recipients=RecipientSource(path=str(path)), audience=who,
        return_state=True,
    )  # fmt: skip
    assert state.is_failed() and "« es »" in (state.message or "")
    assert simulator.state.sends == []


def test_witnesses_are_texted_once_per_campaign_and_never_counted(
    campaign_env: Path, simulator: Any
) -> None:
    staff = mobiles(2, start=900)
    (campaign_env / "temoins.csv").write_text("mobile\n" + "\n".join(staff) + "\n")
    path = write(campaign_env / "r.csv", [(n,) for n in mobiles(5)], "mobile")
    who = Audience(witnesses=str(campaign_env / "temoins.csv"))
    first = run_flow(path, audience=who, campaign_id="wit-1")
    again = run_flow(path, audience=who, campaign_id="wit-1")  # a rerun: nobody twice
    texted = Counter(n for s in simulator.state.sends for n in s["numbers"])
    assert first["loaded"] == 5 and first["sent"] == 5 and first["witnesses"] == 2
    identity(first)
    assert again["sent"] == 5
    assert len(texted) == 7 and set(texted.values()) == {1}  # each witness and recipient once
    other = run_flow(path, audience=who, campaign_id="wit-2", limits={"frequency_cap_days": 0})
    assert other["witnesses"] == 2  # another campaign: the witnesses see it too


def test_witnesses_only_texts_them_alone(campaign_env: Path, simulator: Any) -> None:
    staff = mobiles(1, start=950)
    (campaign_env / "t.csv").write_text("mobile\n" + staff[0] + "\n")
    path = write(campaign_env / "r.csv", [(n,) for n in mobiles(4)], "mobile")
    who = Audience(witnesses=str(campaign_env / "t.csv"), witnesses_only=True)
    summary = run_flow(path, audience=who)
    assert summary["dry_run"] and summary["sent"] == 0 and summary["witnesses"] == 1
    assert [n for s in simulator.state.sends for n in s["numbers"]] == [staff[0]]


def test_a_resumed_sampled_campaign_keeps_its_draw(campaign_env: Path, simulator: Any) -> None:
    numbers = mobiles(20)
    path = write(
        campaign_env / "r.csv", [(n, f"A{i % 2}") for i, n in enumerate(numbers)], "mobile;agence"
    )
    who = Audience(sample="6", quota_by="agence", quota="3")
    first = run_flow(path, audience=who, campaign_id="smp-1")
    assert first["sent"] == 6 and first["rejected"]["not_sampled"] == 14
    assert first["sample"]["drawn"] == 6 and all(
        c["drawn"] == 3 for c in first["sample"]["cells"].values()
    )
    identity(first)
    # Resumed with another seed asked: the recorded draw stands, nobody new is texted.
    again = run_flow(path, audience=Audience(sample="6", seed=1), campaign_id="smp-1")
    assert again["sample"]["seed"] == first["sample"]["seed"]
    assert again["sent"] == 6 and again["rejected"]["not_sampled"] == 14
    assert len(simulator.state.accepted_numbers()) == 6


def test_each_pressure_rule_counts_its_own_skips(campaign_env: Path, simulator: Any) -> None:
    numbers = mobiles(6)
    run_flow(write(campaign_env / "a.csv", [(n,) for n in numbers[:2]], "mobile"),
             survey_id="S1", campaign_id="p-1", limits={"frequency_cap_days": 0})  # fmt: skip
    run_flow(write(campaign_env / "b.csv", [(n,) for n in numbers[1:4]], "mobile"),
             survey_id="S2", campaign_id="p-2", limits={"frequency_cap_days": 0})  # fmt: skip
    # numbers[1]: 2 campaigns; numbers[0]: S1 once; numbers[2], [3]: S2 once; [4], [5]: none
    who = Audience(pressure_rules=["deux=2/90", "meme=1/180:survey"])
    summary = run_flow(
        write(campaign_env / "c.csv", [(n,) for n in numbers], "mobile"),
        survey_id="S2", campaign_id="p-3", audience=who, limits={"frequency_cap_days": 0},
    )  # fmt: skip
    assert summary["pressure_skips"] == {"deux": 1, "meme": 2}
    assert summary["rejected"]["recently_surveyed"] == 3 and summary["sent"] == 3
    identity(summary)


def test_a_sample_larger_than_the_list_texts_everybody_and_says_so(
    campaign_env: Path, simulator: Any
) -> None:
    path = write(campaign_env / "r.csv", [(n,) for n in mobiles(4)], "mobile")
    summary = run_flow(path, audience=Audience(sample="50%"), campaign_id="smp-all")
    assert summary["sent"] == 2 and summary["rejected"] == {"not_sampled": 2}
    other = write(campaign_env / "o.csv", [(n,) for n in mobiles(4, start=100)], "mobile")
    summary = run_flow(other, audience=Audience(sample="10"), campaign_id="smp-big")
    assert summary["sent"] == 4 and summary["rejected"]["not_sampled"] == 0
    assert summary["sample"]["short"] is True and summary["sample"]["limited_by"] == "eligible"
