"""Fan-out benchmark: 1,000,000 recipients (2,000 chunks) against the simulator at 100 ms a call.

Measured in one run, on this machine:
- the project's fan-out (the send phase of a real flow run: ledger claims, Prefect task runs,
  HTTP calls through one pooled client per worker thread);
- the ideal: chunks x latency / concurrency;
- a sequential loop of POSTs like the vendor's sample code (a new connection per call, no
  pool), measured on a sample of chunks and scaled.

Prints one JSON line: recipients, seconds, ideal_seconds, sequential_seconds, vs_ideal, speedup,
peak_rss_mb (plus the details) and the phases around the sends: server_start_seconds (Prefect's
temporary server, started by the bench so that it is not counted in the flow), prepare_seconds
(whichever of PREPARE_TASKS ran: prepare-campaign, or the steps it was split into),
send_seconds (the summary's), report_seconds (tasks read-credits and write-report),
settle_seconds (settle-in-doubt), flow_seconds, and task_seconds (seconds per task name).
Targets: vs_ideal <= 1.5 and speedup >= 10; prepare_seconds + report_seconds < 20 % of
send_seconds and peak RSS < 600 MB at 1,000,000 recipients; 3,000,000 completes under 1.5 GB
peak RSS.

Run from a folder outside the repository (e.g. /tmp):

    .venv/bin/python bench/fanout.py [--recipients 1000000] [--concurrency 16] [--latency-ms 100]
        [--ledger-url postgresql://...] [--opt-outs 10000]
    .venv/bin/python bench/fanout.py --recipients 100000     # how the phases grow: small,
    .venv/bin/python bench/fanout.py --recipients 3000000    # and large (under 1.5 GB peak RSS)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The project's packages from this clone's root, not from bench/ (the bench then works in a
# temporary folder of its own).
sys.path[0] = str(REPO)
KEY = "bench-key"
# The steps before the sends: one task once, several since the flow was split (whichever ran).
PREPARE_TASKS = (
    "prepare-campaign",
    "load-recipients",
    "clean-numbers",
    "suppress",
    "check-credits",
    "plan-campaign",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(port: int, latency_ms: float, recipients: int) -> subprocess.Popen[bytes]:
    from smspartner.simulator import start_process

    args = ["--port", str(port), "--api-key", KEY, "--credits", str(recipients * 1.0)]
    try:
        proc, _ = start_process(*args, "--latency-ms", str(latency_ms), cwd=REPO)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return proc


def sequential(url: str, chunks: list[list[str]]) -> float:
    """The vendor sample's way: requests.post with a JSON string, one call after the other."""
    import requests

    started = time.perf_counter()
    for i, numbers in enumerate(chunks):
        data = json.dumps(
            {
                "apiKey": KEY,
                "phoneNumbers": ",".join(numbers),
                "sondageIdent": "bench",
                "tag": f"seq-{i}",
            }
        )
        r = requests.post(
            f"{url}/sondage/to/send",
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        if not r.json().get("success"):
            raise SystemExit(f"sequential baseline call failed: {r.text[:200]}")
    return time.perf_counter() - started


def start_server() -> tuple[Any, float]:
    """Prefect's temporary server, started here and timed: the flow then finds PREFECT_API_URL
    set and starts none of its own, so flow_seconds holds only the flow's work."""
    from prefect.server.api.server import SubprocessASGIServer

    started = time.perf_counter()
    server = SubprocessASGIServer()
    server.start()
    return server, time.perf_counter() - started


def phases(flow_run_id: Any) -> dict[str, float]:
    """Seconds per task name (send batches and the like summed), read back from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    totals: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                limit=200,
                offset=offset,
            )
            for run in runs:
                if run.start_time and run.end_time:
                    seconds = (run.end_time - run.start_time).total_seconds()
                else:
                    seconds = run.total_run_time.total_seconds()
                name = "send-chunks" if run.name.startswith("send-chunk") else run.name
                name = re.sub(r"-[0-9a-f]+$", "", name)  # Prefect suffixes the names: "-1a2"
                totals[name] = totals.get(name, 0.0) + seconds
            if len(runs) < 200:
                return totals
            offset += len(runs)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--recipients", type=int, default=1_000_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument(
        "--ledger-url",
        help="the ledger's SQLAlchemy URL (default: a new SQLite file in a temporary folder)",
    )
    p.add_argument("--sequential-sample", type=int, default=50, help="chunks timed sequentially")
    p.add_argument(
        "--frequency-cap-days",
        type=int,
        default=0,
        help="the campaign's frequency cap (0: off; on, every claim reserves under one lock)",
    )
    p.add_argument(
        "--opt-outs",
        type=int,
        default=10_000,
        help="an opt-out list of this many other people, named for the run (0: none)",
    )
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    os.chdir(work)
    port = free_port()
    sim = start_simulator(port, args.latency_ms, args.recipients)
    url = f"http://127.0.0.1:{port}/v1"
    os.environ.update(
        {
            "SMSPARTNER_BASE_URL": url,
            "SMSPARTNER_API_KEY": KEY,
            "SURVEY_LEDGER_URL": args.ledger_url or f"sqlite:///{work}/ledger.sqlite",
            "PREFECT_HOME": str(work / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    os.environ.pop("PREFECT_API_URL", None)
    server, server_start = start_server()
    os.environ["PREFECT_API_URL"] = server.api_url
    csv = work / "recipients.csv"
    # written as a stream: a list of every number would count in the flow's peak RSS
    with csv.open("w") as fh:
        fh.write("phone\n")
        fh.writelines(f"+336{i:08d}\n" for i in range(args.recipients))
    if args.opt_outs:
        # other people than the recipients: the sends stay the same, the look-ups are paid
        with (work / "opt-outs.csv").open("w") as fh:
            fh.write("phone\n")
            fh.writelines(f"+3369{i:07d}\n" for i in range(args.opt_outs))
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.survey_campaign import send_survey_campaign

        started = time.perf_counter()
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            state = run_flow(send_survey_campaign, csv, work, args)
        total = time.perf_counter() - started
        if not state.is_completed():
            raise SystemExit(f"campaign failed: {state.message}")
        summary = state.result()
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            tasks = phases(state.state_details.flow_run_id)
        chunk_count = sum(summary["chunks"].values())
        # other numbers than the campaign's: the simulator puts some of those on its STOP list
        sample = [
            [f"+337{i:03d}{j:05d}" for j in range(500)] for i in range(args.sequential_sample)
        ]
        seq_sample = sequential(url, sample)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        server.stop()
    seconds = summary["send_seconds"]
    ideal = chunk_count * args.latency_ms / 1000 / args.concurrency
    seq = seq_sample * chunk_count / args.sequential_sample
    print(
        json.dumps(
            {
                "recipients": args.recipients,
                "chunks": chunk_count,
                "concurrency": args.concurrency,
                "latency_ms": args.latency_ms,
                "sent": summary["sent"],
                "seconds": round(seconds, 2),
                "server_start_seconds": round(server_start, 2),
                "prepare_seconds": round(sum(tasks.get(n, 0.0) for n in PREPARE_TASKS), 2),
                "send_seconds": round(seconds, 2),
                "settle_seconds": round(tasks.get("settle-in-doubt", 0.0), 2),
                "report_seconds": round(
                    tasks.get("read-credits", 0.0) + tasks.get("write-report", 0.0), 2
                ),
                "flow_seconds": round(total, 2),
                "task_seconds": {n: round(s, 2) for n, s in sorted(tasks.items())},
                "ideal_seconds": round(ideal, 2),
                "sequential_seconds": round(seq, 2),
                "sequential_sampled_chunks": args.sequential_sample,
                "vs_ideal": round(seconds / ideal, 3),
                "speedup": round(seq / seconds, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )
    return 0


def run_flow(flow: Any, csv: Path, work: Path, args: argparse.Namespace) -> Any:
    from flows.survey_campaign import DeliveryWindow, Limits, RecipientSource

    return flow(
        survey_id="bench",
        recipients=RecipientSource(path=str(csv)),
        campaign_id=f"bench-fanout-{work.name[-8:].lower()}",
        # the bench measures throughput whatever the clock says: no hold, schedule or cap
        window=DeliveryWindow(preset="af2m_2026", gateway_hold=False, allow_immediate=True),
        limits=Limits(concurrency=args.concurrency, frequency_cap_days=args.frequency_cap_days),
        suppression_list=str(work / "opt-outs.csv") if args.opt_outs else None,
        return_state=True,
    )


if __name__ == "__main__":
    sys.exit(main())
