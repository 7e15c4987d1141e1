"""How a run ends, as the operator sees it: the exit code, the JSON summary last on stdout, one
``error:`` line on stderr, and never a traceback for an expected outcome, on the terminal or in
the run's logs (what the Prefect UI shows). Each traceback case the issue found has a test here,
through the real engine: the command line in a subprocess against the test harness's server, or
the flow in-process.

Exit codes: 0 complete, 1 an error (or a stop before any send), 2 a usage error, 3 the campaign
ran but rows ended failed or in doubt.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, flow_runs_mentioning, logs_of

from flows.survey_campaign import Limits, RecipientSource, send_survey_campaign
from tasks.errors import SurveyError
from tasks.progress import Phase
from tasks.steps import progress

HEADER = "id;name;mobile\n"


def write_csv(path: Path, n: int, start: int = 0) -> Path:
    lines = [f"{i};Client {i};+3361{start + i:07d}" for i in range(n)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def command(module: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def send(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return command("flows.survey_campaign", cwd, "--survey-id", "s1", *args, **env)


def one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command exited ``code`` with exactly one ``error:`` line holding ``words``, and no
    traceback anywhere."""
    assert done.returncode == code, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def last_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["loaded"] == summary["sent"] + summary["failed"] + sum(
        summary["rejected"].values()
    )
    return summary


def flush_run_logs() -> None:
    """Send the log records this process still holds to the server (a run in-process; a
    command's process sends its own when it exits)."""
    from prefect.logging.handlers import APILogHandler

    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, APILogHandler):
                handler.flush()


def no_traceback_in_logs(text: str) -> list[Any]:
    """The runs that mention ``text`` (their name, parameters, state): none logged a traceback;
    returns them."""
    flush_run_logs()
    runs = flow_runs_mentioning(text)
    assert runs
    for run in runs:
        logs = logs_of(run.id)
        assert "Traceback" not in logs, logs[-3000:]
        assert "exited with unexpected exception" not in logs, logs[-3000:]
    return runs


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a failure could leave behind (half-written rows, probes, links)."""
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in {".tmp", ".link"} or p.name.startswith(".probe"))
    ]


# -- exit codes ------------------------------------------------------------------------------------


def test_a_complete_campaign_exits_0_with_its_summary_last(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    done = send(campaign_env, env, "--recipients", str(write_csv(campaign_env / "r.csv", 5)),
                "--campaign-id", "exit-0")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "error:" not in done.stderr and "Traceback" not in done.stderr
    assert last_json(done)["sent"] == 5


def test_an_incomplete_campaign_exits_3_with_its_summary_last_and_one_line(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    # The account looks rich; the gateway then runs out of credits (code 11) at the first send.
    simulator.state.add_canned(
        "sondage/to/send", {"success": False, "code": 11, "message": "Crédits insuffisants"}
    )
    done = send(campaign_env, env, "--recipients", str(write_csv(campaign_env / "r.csv", 40)),
                "--campaign-id", "exit-3", "--concurrency", "1")  # fmt: skip
    line = one_line(done, 3, "40 destinataires non envoyés : crédits insuffisants", "exit-3")
    assert line.endswith("Rechargez le compte SMS Partner, puis relancez la campagne exit-3.")
    summary = last_json(done)
    assert summary["failed"] == 40 and summary["failed_reasons"] == {"insufficient_credits": 40}
    [run] = no_traceback_in_logs("exit-3")
    assert (run.state.type.value, run.state.name) == ("FAILED", "Incomplete")
    assert run.state.message == line.removeprefix("error: ")


def test_usage_errors_exit_2(campaign_env: Path, env: dict[str, str]) -> None:
    csv = str(write_csv(campaign_env / "r.csv", 2))
    missing = command("flows.survey_campaign", campaign_env, "--recipients", csv, **env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr  # argparse's own
    one_line(send(campaign_env, env, "--recipients", csv, "--campaign-id", "a b"), 2, "campaign id")
    nowhere = send(campaign_env, env, "--recipients", "nowhere.csv")
    one_line(nowhere, 2, "introuvable", "nowhere.csv")


def test_an_error_exits_1_in_one_line(campaign_env: Path, env: dict[str, str]) -> None:
    csv = str(write_csv(campaign_env / "r.csv", 2))
    done = send(campaign_env, {**env, "SMSPARTNER_API_KEY": "wrong-key"}, "--recipients", csv,
                "--campaign-id", "bad-key")  # fmt: skip
    one_line(done, 1, "API key")
    assert done.stdout.strip() == ""  # nothing ran far enough to have a summary
    no_traceback_in_logs("bad-key")


def test_the_money_stop_exits_1_with_every_row_in_its_summary(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    simulator.state.credits = 0.045 * 10  # room for 10 of 30
    done = send(campaign_env, env, "--recipients", str(write_csv(campaign_env / "r.csv", 30)),
                "--campaign-id", "money-stop")  # fmt: skip
    one_line(done, 1, "Crédits insuffisants", "--send-within-credits")
    summary = last_json(done)
    assert summary["sent"] == 0 and summary["rejected"] == {"insufficient_credits": 30}
    assert simulator.state.sends == []
    [run] = no_traceback_in_logs("money-stop")
    assert run.state.type.value == "FAILED"


def test_the_approval_stop_exits_1_with_what_would_be_sent(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    done = send(campaign_env, env, "--recipients", str(write_csv(campaign_env / "r.csv", 3)),
                "--campaign-id", "held", "--approve-above-recipients", "1")  # fmt: skip
    one_line(done, 1, "Accord nécessaire", "3 destinataires, au-delà de 1", "--yes")
    assert last_json(done)["would_send"] == 3
    assert simulator.state.sends == []
    no_traceback_in_logs("held")


# -- the traceback cases ---------------------------------------------------------------------------


def test_a_missing_file_fails_its_task_and_the_run_in_one_line(
    campaign_env: Path, simulator: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(campaign_env / "gone.csv")),
        campaign_id="gone-file",
        return_state=True,
    )
    assert state.is_failed() and "gone.csv" in str(state.message)
    assert isinstance(state.result(raise_on_failure=False), SurveyError)
    [run] = no_traceback_in_logs("gone-file")
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
    load = [t for t in tasks if t.name.startswith("load-recipients")]
    assert [t.state.type.value for t in load] == ["FAILED"]  # Failed in the run graph
    assert load[0].state.message and "gone.csv" in load[0].state.message


@pytest.mark.parametrize("module", ["flows.follow_up", "flows.cancel_campaign"])
def test_an_unknown_campaign_id_is_one_line(
    module: str, campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    # A ledger that knows another campaign only.
    send(campaign_env, env, "--recipients", str(write_csv(campaign_env / "r.csv", 2)),
         "--campaign-id", "known-one")  # fmt: skip
    done = command(module, campaign_env, "--campaign-id", "never-sent-20250107-1030", **env)
    one_line(done, 1, "never-sent-20250107-1030")  # the id as typed, not masked
    no_traceback_in_logs("never-sent-20250107-1030")


def test_a_ledger_outage_past_its_bound_is_one_line(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    # Nothing listens on this port: every connection is refused, for longer than the bound.
    dead = "postgresql+psycopg://survey@127.0.0.1:9/ledger"
    done = send(campaign_env, {**env, "SURVEY_LEDGER_URL": dead}, "--recipients",
                str(write_csv(campaign_env / "r.csv", 2)), "--campaign-id", "no-ledger",
                "--ledger-outage-seconds", "2")  # fmt: skip
    one_line(done, 1, "unreachable for more than 2 s", "nothing was sent", "same id")
    assert simulator.state.sends == []


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny file system (tmpfs of 256 KiB) for the data folder: a write past it fails
    with ENOSPC, as on a full disk."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_planning_leaves_no_rows_behind(
    campaign_env: Path, env: dict[str, str], simulator: Any, full_disk: Path
) -> None:
    csv = write_csv(campaign_env / "r.csv", 20_000)
    done = send(campaign_env, {**env, "SURVEY_DATA_DIR": str(full_disk)}, "--recipients",
                str(csv), "--campaign-id", "disk-full")  # fmt: skip
    one_line(done, 1, "No space left on device", "nothing was sent")
    assert simulator.state.sends == []
    state = full_disk / "state" / "disk-full"
    assert not list(state.glob("rows*")) and leftovers(full_disk) == []
    no_traceback_in_logs("disk-full")


def test_a_purge_during_the_report_leaves_the_running_campaign_its_rows(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge (every finished campaign, retention 0) runs at the moment the campaign, its SMS
    sent, starts its report: it used to remove the run's rows and crash the run."""
    from flows.purge_personal_data import purge_personal_data

    purges: list[dict[str, Any]] = []
    real_phase = progress.phase

    def purge_as_the_report_starts(campaign_id: str, step: Phase, total: int = 0) -> None:
        real_phase(campaign_id, step, total)
        if step == Phase.reporting and not purges:
            purges.append(purge_personal_data(older_than_days=0))

    monkeypatch.setattr(progress, "phase", purge_as_the_report_starts)
    csv = write_csv(campaign_env / "r.csv", 30)
    state = send_survey_campaign(
        survey_id="s",
        recipients=RecipientSource(path=str(csv)),
        campaign_id="racing",
        limits=Limits(chunk_size=10),
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert purges and purges[0]["campaigns_purged"] == 1  # it did purge this very campaign
    summary = state.result()
    assert summary["sent"] == 30 == len(simulator.state.accepted_numbers())
    report = campaign_env / "data" / "reports" / "racing"
    assert json.loads((report / "summary.json").read_text())["sent"] == 30
    assert (report / "report.html").is_file()
    assert leftovers(campaign_env / "data") == []
    no_traceback_in_logs("racing")
