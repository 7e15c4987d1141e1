"""Fault matrix: each ambiguous gateway fault, alone and all together, on a campaign of 10,000.

For each fault: start the simulator with it, run the campaign from the command line, then (faults
off, the settle time passed) run it again with the same id, and count on the simulator's record
how many recipients were texted twice, how many never, and how many chunks the ledger had in
doubt after each run. Prints one JSON line per fault; with ``--repo`` it runs the flow of
another checkout (e.g. an older commit, to compare) against this checkout's simulator.

    .venv/bin/python bench/faults.py [--recipients 10000] [--repo PATH] [--settle 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)
KEY = "bench-key"

from bench.fanout import free_port  # noqa: E402 - after the import path is set
from smspartner.simulator import start_process  # noqa: E402

FAULTS: dict[str, list[str]] = {
    "status lags behind lost answers": ["--drop-after-accept-rate", "0.3", "--status-lag-s", "2"],
    "slower than the read timeout": ["--slow-send-s", "2", "--slow-send-rate", "0.3"],
    "garbage after accepting (HTML 200/502, empty, truncated, no id)": ["--garbage-rate", "0.3"],
    "2xx without message id": ["--garbage-rate", "0.3", "--garbage-kinds", "no_message_id"],
    "HTML from a proxy that never forwarded": ["--garbage-before-rate", "0.3"],
    "all together": [
        *("--drop-after-accept-rate", "0.1", "--status-lag-s", "2"),
        *("--slow-send-s", "2", "--slow-send-rate", "0.1", "--garbage-rate", "0.1"),
        *("--garbage-before-rate", "0.1", "--error-5xx-rate", "0.05"),
        *("--rate-limit-rate", "0.05", "--retry-after", "0.05", "--reset-rate", "0.05"),
    ],
}


def simulator(port: int, faults: list[str], recipients: int) -> subprocess.Popen[bytes]:
    args = ["--port", str(port), "--api-key", KEY, "--credits", str(recipients), "--seed", "7"]
    try:
        proc, _ = start_process(*args, *faults, cwd=REPO, stderr=subprocess.DEVNULL)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return proc


def admin(port: int, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_sim/{path}", data=data)
    with urllib.request.urlopen(request, timeout=30) as answer:  # loopback only
        return dict(json.loads(answer.read()))


def campaign(repo: Path, work: Path, port: int, csv: Path, settle: float) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "SMSPARTNER_API_KEY": KEY,
        "SMSPARTNER_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "SURVEY_LEDGER_URL": f"sqlite:///{work}/ledger.sqlite",
    }
    args = ["--survey-id", "faults", "--recipients", str(csv), "--campaign-id", "faults"]
    args += ["--retry-backoff", "0.05", "--concurrency", "8"]
    help_text = subprocess.run(
        [sys.executable, "-m", "flows.survey_campaign", "--help"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if "--settle-seconds" in help_text:
        args += ["--settle-seconds", str(settle), "--read-timeout", "1"]
        args += ["--settle-wait-seconds", str(5 * settle)]
    done = subprocess.run(
        [sys.executable, "-m", "flows.survey_campaign", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else "failed"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--settle", type=float, default=4.0)
    args = parser.parse_args()
    numbers = [f"+3367{i:07d}" for i in range(args.recipients)]
    for name, faults in FAULTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            csv = work / "r.csv"
            csv.write_text("phone\n" + "\n".join(numbers) + "\n")
            port = free_port()
            sim = simulator(port, faults, args.recipients)
            try:
                first = campaign(args.repo, work, port, csv, args.settle)
                after_first = Counter(admin(port, "state")["accepted_numbers"])  # type: ignore[arg-type]
                doubt_first = _count_doubt(work)
                admin(port, "faults", {})
                time.sleep(args.settle)
                campaign(args.repo, work, port, csv, args.settle)
                after_rerun = Counter(admin(port, "state")["accepted_numbers"])  # type: ignore[arg-type]
                line = {
                    "fault": name,
                    "recipients": args.recipients,
                    "first_run": "ok" if first != "failed" else "failed",
                    "texted_twice_after_first": sum(c > 1 for c in after_first.values()),
                    "missing_after_first": sum(1 for n in numbers if n not in after_first),
                    "texted_twice_after_rerun": sum(c > 1 for c in after_rerun.values()),
                    "missing_after_rerun": sum(1 for n in numbers if n not in after_rerun),
                    "in_doubt_chunks_after_first": doubt_first,
                    "in_doubt_chunks_after_rerun": _count_doubt(work),
                }
            finally:
                sim.terminate()
                sim.wait()
            print(json.dumps(line), flush=True)


def _count_doubt(work: Path) -> int:
    db = sqlite3.connect(work / "ledger.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM chunks WHERE state = 'in_doubt'").fetchone()[0])
    finally:
        db.close()


if __name__ == "__main__":
    main()
