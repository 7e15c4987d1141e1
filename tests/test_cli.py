"""The command line is a contract: options, the JSON last line, exit codes, one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from helpers import SAMPLES, TEST_KEY, cli, one_clear_line


def test_sample_campaign_prints_the_json_summary_last(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    done = cli(
        campaign_env,
        "--survey-id",
        "s1",
        "--recipients",
        str(SAMPLES / "recipients.csv"),
        "--campaign-id",
        "cli-1",
        **env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "campaign_id",
        "loaded",
        "sent",
        "failed",
        "rejected",
        "nb_sms",
        "cost",
        "currency",
        "slots",
    ):
        assert key in summary
    assert summary["campaign_id"] == "cli-1" and summary["loaded"] == 30
    assert summary["loaded"] == summary["sent"] + summary["failed"] + sum(
        summary["rejected"].values()
    )
    assert summary["sent"] == len(set(simulator.state.accepted_numbers()))
    for slot in summary["slots"]:
        assert slot[-6] in "+-"  # ISO 8601 with an offset
    for name in ("summary.json", "chunks.csv", "rejects.csv"):
        assert (campaign_env / "data" / "reports" / "cli-1" / name).is_file()
    assert TEST_KEY not in done.stdout + done.stderr


def test_sqlite_source_from_the_command_line(campaign_env: Path, env: dict[str, str]) -> None:
    done = cli(
        campaign_env,
        "--survey-id",
        "s1",
        "--db-url",
        f"sqlite:///{SAMPLES / 'recipients.sqlite'}",
        "--query",
        "customers",
        "--dry-run",
        **env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["loaded"] > 0 and summary["sent"] == 0 and summary["dry_run"] is True


def test_missing_file(campaign_env: Path, env: dict[str, str]) -> None:
    done = cli(campaign_env, "--survey-id", "s", "--recipients", "nope.csv", **env)
    one_clear_line(done, "nope.csv")


def test_no_phone_column_says_how_to_name_it_without_quoting_the_file(
    campaign_env: Path, env: dict[str, str]
) -> None:
    (campaign_env / "r.csv").write_text("name;city\nAnne;Lyon\n")
    done = cli(campaign_env, "--survey-id", "s", "--recipients", "r.csv", **env)
    one_clear_line(done, "no phone column found", "2 columns", "--phone-column")
    assert "city" not in done.stderr and "Lyon" not in done.stderr


def test_invalid_key(campaign_env: Path, env: dict[str, str], simulator: Any) -> None:
    env["SMSPARTNER_API_KEY"] = "wrong-key-123"
    done = cli(
        campaign_env, "--survey-id", "s", "--recipients", str(SAMPLES / "recipients.csv"), **env
    )
    one_clear_line(done, "API key")
    assert "wrong-key-123" not in done.stderr + done.stdout
    assert simulator.state.sends == []


def test_gateway_unreachable(campaign_env: Path, env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env["SMSPARTNER_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    done = cli(
        campaign_env, "--survey-id", "s", "--recipients", str(SAMPLES / "recipients.csv"), **env
    )
    one_clear_line(done, "unreachable")


def test_bad_options_are_refused_plainly(campaign_env: Path, env: dict[str, str]) -> None:
    done = cli(
        campaign_env, "--survey-id", "s", "--recipients", "r.csv", "--chunk-size", "900", **env
    )
    one_clear_line(done, "chunk")
    done = cli(
        campaign_env, "--survey-id", "s", "--recipients", "r.csv", "--campaign-id", "../etc", **env
    )
    one_clear_line(done, "campaign id")


def test_the_limits_options_come_from_the_model_with_its_defaults() -> None:
    """One source of fields and defaults: the UI's form and the command line cannot drift."""
    from flows.cli import model_from_args
    from flows.parameters import Limits
    from flows.survey_campaign import parse_args

    base = ["--survey-id", "s", "--recipients", "r.csv"]
    assert model_from_args(Limits, parse_args(base)) == Limits()
    every = {
        "max_cost": "12.5", "cost_per_sms": "0.05", "concurrency": "3", "chunk_size": "100",
        "frequency_cap_days": "0", "lead_minutes": "20", "retry_backoff": "0.5",
        "max_attempts": "2", "read_timeout": "9", "settle_seconds": "60",
        "settle_wait_seconds": "0", "ledger_outage_seconds": "5", "global_limit": "gcl",
    }  # fmt: skip
    assert set(every) == set(Limits.model_fields)
    options = [x for name, v in every.items() for x in (f"--{name.replace('_', '-')}", v)]
    limits = model_from_args(Limits, parse_args(base + options))
    assert limits == Limits.model_validate(every)
