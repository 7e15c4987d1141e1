"""`make demo`: a whole campaign on the sample data against the bundled simulator.

No account, no credits: the simulator runs on a free port of 127.0.0.1 for the length of the
demo and is stopped afterwards. Nothing is sent to the real gateway.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from smspartner.simulator import start_process
from tasks.reporting import CampaignSummary

REPO = Path(__file__).resolve().parents[1]
DEMO_KEY = "sim-test-key"  # the simulator's built-in key; not a real credential


def start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    try:
        proc, url = start_process(
            "--port", "0", "--credits", "50", "--stop", "+33612345627", cwd=REPO
        )
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    print(f"SMS Partner simulator listening on {url}")
    return proc, url


def main() -> int:
    sim, url = start_simulator()
    state = REPO / "data" / "state"
    state.mkdir(parents=True, exist_ok=True)
    ledger = state / "demo-ledger.sqlite"
    for leftover in state.glob("demo-ledger.sqlite*"):
        leftover.unlink()  # each demo starts afresh, so the frequency cap does not hide it
    env = {
        **os.environ,
        "SMSPARTNER_BASE_URL": url,
        "SMSPARTNER_API_KEY": DEMO_KEY,
        "SURVEY_LEDGER_URL": f"sqlite:///{ledger}",
        "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(state / "prefect-home")),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)  # a temporary local Prefect server, not someone's cloud
    try:
        print("Running a survey campaign on data/samples/recipients.csv ...", flush=True)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.survey_campaign",
                "--survey-id",
                "demo-satisfaction",
                "--recipients",
                "data/samples/recipients.csv",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    if done.returncode != 0:
        print(f"demo failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    last = done.stdout.strip().splitlines()[-1]
    s = CampaignSummary.model_validate_json(last)
    print()
    print(f"Campaign {s.campaign_id}")
    print(f"  loaded   {s.loaded}")
    print(f"  sent     {s.sent}")
    print(f"  failed   {s.failed}")
    for reason, n in s.rejected.items():
        print(f"  rejected {n:>3}  {reason}")
    print(f"  SMS      {s.nb_sms}, cost {s.cost:.3f} {s.currency}")
    print(f"  slots    {', '.join(s.slots) or 'sent at once'}")
    for territory, why in s.slot_explanations.items():
        print(f"    {territory}: {why}")
    files = "summary.json, report.html, chunks.csv/.xlsx, rejects.csv/.xlsx"
    print(f"  report   {s.report_dir}/ ({files})")
    print()
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
