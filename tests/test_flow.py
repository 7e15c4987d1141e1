"""The send flow end to end: real Prefect engine, real HTTP to the simulator, real ledger."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import TEST_KEY, identity, mobiles, texted, write_csv
from helpers import run_flow as run

from flows.survey_campaign import Limits, RecipientSource, send_survey_campaign
from tasks.errors import CampaignIncomplete, SurveyError


def test_clean_run_sends_each_valid_number_once(campaign_env: Path, simulator: Any) -> None:
    numbers = mobiles(1200)
    csv = write_csv(campaign_env / "r.csv", [n.replace("+33", "0") for n in numbers])
    summary = run(csv, campaign_id="clean-run")
    identity(summary)
    assert summary["sent"] == 1200 and summary["failed"] == 0 and summary["rejected"] == {}
    sent = texted(simulator)
    assert set(sent) == set(numbers) and max(sent.values()) == 1
    # 500 numbers at most per call: 1200 numbers need three calls
    assert sorted(len(s["numbers"]) for s in simulator.state.sends) == [200, 500, 500]
    assert summary["nb_sms"] == 1200
    assert summary["cost"] == pytest.approx(1200 * simulator.state.cost_per_sms)
    assert summary["credits_before"] - summary["credits_after"] == pytest.approx(summary["cost"])
    report = campaign_env / "data" / "reports" / "clean-run"
    assert json.loads((report / "summary.json").read_text())["sent"] == 1200
    assert (report / "chunks.csv").read_text().count("\n") == 4
    assert all(s["tag"] and len(s["tag"]) <= 20 for s in simulator.state.sends)


def test_a_large_campaign_sends_groups_of_chunks_each_once(
    campaign_env: Path, simulator: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    numbers = mobiles(3000)
    csv = write_csv(campaign_env / "r.csv", numbers)
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(csv)),
        campaign_id="grouped",
        limits=Limits(chunk_size=10, concurrency=3),
        return_state=True,
    )
    summary = state.result()
    identity(summary)
    assert summary["sent"] == 3000 and summary["chunks"] == {"sent": 300}
    assert Counter(texted(simulator).values()) == Counter({1: 3000})
    assert all(len(s["numbers"]) == 10 for s in simulator.state.sends)  # one call per chunk
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    names = sorted(r.name for r in runs if r.name.startswith("send-chunk"))
    assert 3 < len(names) < 300  # fewer task runs than chunks, more than workers
    assert "send-chunk-299" in names  # the last groups hold a single chunk
    covered = []
    for name in names:
        first, _, last = (
            name.removeprefix("send-chunks-").removeprefix("send-chunk-").partition("-")
        )
        covered.extend(range(int(first), int(last or first) + 1))
    assert sorted(covered) == list(range(300))


def test_messy_numbers_duplicates_and_reasons(campaign_env: Path, simulator: Any) -> None:
    rows = [
        "06 12 34 56 78",  # sent
        "+33 6 12 34 56 78",  # duplicate of the first
        "0033612345679",  # sent
        "01 42 68 53 00",  # landline
        "hello",  # not a number
        "",  # empty
        "0690 12 34 56",  # Guadeloupe mobile, sent as +590
        "+32 470 12 34 56",  # foreign
        "0612345680, 0712345681",  # two numbers
    ]
    summary = run(write_csv(campaign_env / "r.csv", rows), campaign_id="messy")
    identity(summary)
    assert summary["sent"] == 3
    assert summary["rejected"] == {
        "duplicate": 1,
        "not_mobile": 1,
        "not_a_number": 1,
        "empty": 1,
        "foreign": 1,
        "multiple_numbers": 1,
    }
    assert set(texted(simulator)) == {"+33612345678", "+33612345679", "+590690123456"}
    rejects = (campaign_env / "data" / "reports" / "messy" / "rejects.csv").read_text()
    assert "not_mobile" in rejects and "01 42 68 53 00" in rejects
    assert "Client 5" in rejects  # the original row is kept


def test_stop_listed_and_locally_suppressed_numbers_are_not_texted(
    campaign_env: Path, simulator: Any
) -> None:
    numbers = mobiles(10)
    simulator.state.add_stop("0610000003")  # national form on the gateway's list
    (campaign_env / "suppress.csv").write_text("phone\n+33 6 10 00 00 07\n")
    summary = run(
        write_csv(campaign_env / "r.csv", numbers),
        campaign_id="stops",
        suppression_list=str(campaign_env / "suppress.csv"),
    )
    identity(summary)
    assert summary["rejected"] == {"opted_out": 2}
    assert set(texted(simulator)) == set(numbers) - {"+33610000003", "+33610000007"}


def test_invalid_key_is_a_clear_error_and_nothing_is_sent(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSPARTNER_API_KEY", "not-the-right-key")
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(write_csv(campaign_env / "r.csv", mobiles(3)))),
        return_state=True,
    )
    assert state.is_failed()
    assert "API key" in state.message and "not-the-right-key" not in state.message
    assert simulator.state.sends == []


def test_rerun_with_same_campaign_id_sends_nothing_again(
    campaign_env: Path, simulator: Any
) -> None:
    csv = write_csv(campaign_env / "r.csv", mobiles(700) + ["bad"])
    first = run(csv, campaign_id="again")
    second = run(csv, campaign_id="again")
    identity(first)
    identity(second)
    assert first["sent"] == second["sent"] == 700
    assert second["rejected"] == {"not_a_number": 1}
    assert max(texted(simulator).values()) == 1 and len(simulator.state.sends) == 2


def test_dry_run_sends_nothing_and_reports_the_plan(campaign_env: Path, simulator: Any) -> None:
    summary = run(write_csv(campaign_env / "r.csv", mobiles(600)), dry_run=True, campaign_id="dry")
    identity(summary)
    assert simulator.state.sends == []
    assert summary["dry_run"] is True and summary["would_send"] == 600 and summary["sent"] == 0
    assert sum(c["size"] for c in summary["plan"]) == 600
    assert summary["estimated_cost"] == pytest.approx(600 * 0.045)
    # and a real run afterwards with the same id still sends everything
    real = run(write_csv(campaign_env / "r.csv", mobiles(600)), campaign_id="dry")
    assert real["sent"] == 600


def test_frequency_cap_skips_numbers_texted_by_another_campaign(
    campaign_env: Path, simulator: Any
) -> None:
    run(write_csv(campaign_env / "a.csv", mobiles(5)), campaign_id="week-1")
    summary = run(write_csv(campaign_env / "b.csv", mobiles(8)), campaign_id="week-2")
    identity(summary)
    assert summary["rejected"] == {"recently_surveyed": 5} and summary["sent"] == 3
    off = run(
        write_csv(campaign_env / "c.csv", mobiles(8)),
        campaign_id="week-3",
        limits=Limits(frequency_cap_days=0),
    )
    assert off["sent"] == 8


def stopped(path: Path, **kwargs: Any) -> tuple[Any, SurveyError]:
    """A run that ended Failed: its state and the error it ended with (its summary inside)."""
    kwargs.setdefault("survey_id", "satisfaction-q4")
    state = send_survey_campaign(
        recipients=RecipientSource(path=str(path)), return_state=True, **kwargs
    )
    assert state.is_failed(), state.message
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SurveyError) and state.message == error.message
    return state, error


def test_a_budget_cap_too_low_stops_before_any_send(campaign_env: Path, simulator: Any) -> None:
    csv = write_csv(campaign_env / "r.csv", mobiles(1000))
    _, error = stopped(csv, campaign_id="budget", limits=Limits(max_cost=30.0, chunk_size=250))
    assert error.summary is not None
    identity(error.summary)
    assert error.summary["sent"] == 0 and error.summary["rejected"] == {"budget_exceeded": 1000}
    assert simulator.state.sends == []
    # Told to, it sends what the cap covers (666 at 0.045 under 30) and rejects the rest.
    summary = run(
        csv,
        campaign_id="budget-within",
        limits=Limits(max_cost=30.0, chunk_size=250),
        send_within_credits=True,
    )
    identity(summary)
    assert summary["cost"] <= 30.0 and summary["sent"] == len(texted(simulator)) == 666
    assert summary["rejected"] == {"budget_exceeded": 334} and summary["failed"] == 0


def test_credits_too_low_stop_before_any_send(campaign_env: Path, simulator: Any) -> None:
    simulator.state.credits = 0.045 * 300  # room for 300 recipients only
    csv = write_csv(campaign_env / "r.csv", mobiles(1000))
    _, error = stopped(csv, campaign_id="credits", limits=Limits(chunk_size=250))
    assert error.summary is not None and error.summary["sent"] == 0
    assert error.summary["rejected"] == {"insufficient_credits": 1000}
    assert "Rechargez" in error.message and simulator.state.sends == []


def test_credits_running_out_at_the_gateway_end_the_run_incomplete(
    campaign_env: Path, simulator: Any
) -> None:
    # The account looks rich when the campaign starts; the gateway then says code 11.
    simulator.state.add_canned(
        "sondage/to/send", {"success": False, "code": 11, "message": "Crédits insuffisants"}
    )
    csv = write_csv(campaign_env / "r.csv", mobiles(1000))
    state, error = stopped(csv, campaign_id="short-later", limits=Limits(concurrency=1))
    assert isinstance(error, CampaignIncomplete) and error.exit_code == 3
    assert state.name == "Incomplete"
    assert error.message == (
        "1\u202f000 destinataires non envoyés : crédits insuffisants. Rechargez le compte SMS "
        "Partner, puis relancez la campagne short-later."
    )
    assert error.summary is not None and error.summary["failed"] == 1000
    # A rerun with the same id, credits back, sends them once and ends Completed.
    summary = run(csv, campaign_id="short-later", limits=Limits(concurrency=1))
    assert summary["sent"] == 1000 and max(texted(simulator).values()) == 1


def test_artifacts_exist_and_show_no_number_and_no_key(campaign_env: Path, simulator: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    numbers = mobiles(20) + ["01 42 68 53 00"]
    run(write_csv(campaign_env / "r.csv", numbers), campaign_id="Arte-Facts_1")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="arte-facts-1-"))
        )
    keys = {a.key for a in artifacts}
    assert {"arte-facts-1-summary", "arte-facts-1-chunks", "arte-facts-1-report"} <= keys
    text = json.dumps([a.data for a in artifacts], default=str)
    assert TEST_KEY not in text
    for n in numbers[:-1]:
        assert n not in text and "0" + n[3:] not in text
    assert "0142685300" not in text.replace(" ", "")


def test_a_query_that_finds_nobody_is_an_empty_campaign(campaign_env: Path, simulator: Any) -> None:
    from helpers import SAMPLES

    from flows.survey_campaign import SourceKind

    source = RecipientSource(
        kind=SourceKind.sql,
        path=None,
        db_url=f"sqlite:///{SAMPLES / 'recipients.sqlite'}",
        query="SELECT * FROM customers WHERE 1 = 0",
    )
    state = send_survey_campaign(
        survey_id="s", recipients=source, campaign_id="nobody", return_state=True
    )
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["loaded"] == 0 and summary["sent"] == 0 and simulator.state.sends == []


def test_a_prefect_global_limit_bounds_the_sends(campaign_env: Path, simulator: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    csv = write_csv(campaign_env / "r.csv", mobiles(300))
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(csv)),
        campaign_id="gcl-missing",
        limits=Limits(global_limit="no-such-limit"),
        return_state=True,
    )
    assert state.is_failed() and "no-such-limit" in state.message
    assert simulator.state.sends == []
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="smspartner-sends", limit=1)
        )
    summary = run(
        csv,
        campaign_id="gcl",
        limits=Limits(global_limit="smspartner-sends", chunk_size=100, concurrency=4),
    )
    assert summary["sent"] == 300 and len(simulator.state.sends) == 3


def test_sample_recipients_are_never_sent_through_the_real_gateway(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import SAMPLES

    # pointing at the real gateway: the run must stop before any request leaves the machine
    monkeypatch.setenv("SMSPARTNER_BASE_URL", "https://api.smspartner.fr/v1")
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(SAMPLES / "recipients.csv")),
        return_state=True,
    )
    assert state.is_failed() and "La liste d'exemple (data/samples)" in (state.message or "")
    assert "vrai SMS Partner" in (state.message or "")
