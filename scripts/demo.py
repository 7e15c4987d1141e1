"""`make demo`: a whole campaign on the sample data against the bundled simulator.

No account, no credits: the simulator runs on a free port of 127.0.0.1 for the length of the
demo and is stopped afterwards. Nothing is sent to the real gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from smspartner.simulator import start_process
from tasks.i18n import DEFAULT_LANG, Lang, label, plural, text
from tasks.reporting import slot_sentences
from tasks.reporting.terminal import readable_lines

REPO = Path(__file__).resolve().parents[1]
DEMO_KEY = "sim-test-key"  # the simulator's built-in key; not a real credential
LANG: Lang = DEFAULT_LANG  # the demo speaks as the campaigns do: French


def start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    try:
        proc, url = start_process(
            "--port", "0", "--credits", "50", "--stop", "+33612345627", cwd=REPO
        )
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    print(text(LANG, "demo.simulator", url=url))
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
        print(text(LANG, "demo.running", path="data/samples/recipients.csv"), flush=True)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.survey_campaign",
                "--survey-id",
                "demo-satisfaction",
                "--recipients",
                "data/samples/recipients.csv",
                # Two staff phones receive the real SMS too, outside the counts (witnesses).
                "--witnesses",
                "data/samples/temoins.csv",
                "--lang",
                LANG,
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
        print(text(LANG, "demo.failed", code=done.returncode), file=sys.stderr)
        return done.returncode
    last = done.stdout.strip().splitlines()[-1]
    print()
    print("\n".join(demo_lines(json.loads(last), LANG)))
    print()
    print(last)
    return 0


def demo_lines(summary: dict[str, Any], lang: Lang) -> list[str]:
    """The campaign's readable summary, with the rows rejected by reason and how each
    territory is sent."""
    lines = readable_lines(summary, lang, "send")
    colon = text(lang, "sep.colon")
    rejected = summary.get("rejected") or {}
    if rejected:
        lines.append(text(lang, "demo.rejected"))
        lines += [
            f"  - {label(lang, 'reason', r)}{colon}{plural(lang, 'count.rows', n)}"
            for r, n in rejected.items()
        ]
    sentences = slot_sentences(summary, lang)
    if sentences:
        lines.append(text(lang, "slots.heading") + colon.rstrip())
        lines += [f"  - {name}{colon}{why}" for name, why in sentences.items()]
    files = "summary.json, report.html, chunks.csv/.xlsx, rejects.csv/.xlsx"
    lines.append(text(lang, "demo.files", folder=summary.get("report_dir", ""), files=files))
    return lines


if __name__ == "__main__":
    sys.exit(main())
