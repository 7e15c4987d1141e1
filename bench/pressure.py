"""Benchmark: the contact-pressure look-up a campaign's plan makes, against reading the rows.

Run by hand: ``.venv/bin/python bench/pressure.py [--numbers N] [--earlier K]
[--ledger-url URL]`` (default: a fresh SQLite ledger in a temporary folder; a PostgreSQL or
MariaDB URL of an EMPTY database of your own, whose tables this run creates and fills).

A weekly survey's worst case: every number of this week's list was texted by ``--earlier``
other campaigns within the rules' windows. Measured, in one run:

- ``texted_counts`` (the ledger's answer to one rule: how many other campaigns per number), over
  all surveys and scoped to one survey (a join with the campaigns);
- the baseline: the same rows only read (``SELECT e164 ... WHERE e164 IN``), which any
  look-up must at least do.

Prints one JSON line: numbers, earlier, seconds (all surveys), survey_seconds, baseline_seconds,
and the ratios to the baseline (the figure to compare between versions and machines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from tasks import ledger as lg
from tasks.ledger.cap import record_texted
from tasks.ledger.schema import texted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--numbers", type=int, default=200_000)
    p.add_argument("--earlier", type=int, default=2, help="earlier campaigns texting each")
    p.add_argument("--ledger-url", default=None)
    args = p.parse_args()
    url = args.ledger_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-pressure-')}/l.sqlite"
    ledger = lg.Ledger(url, pseudonym_key=os.urandom(32))
    numbers = [f"+3361{i:07d}" for i in range(args.numbers)]
    now = datetime.now(UTC)
    for k in range(args.earlier):
        ledger.create_plan(f"earlier-{k}", f"survey-{k % 2}", [], credits_before=None)
        with ledger._write() as conn:
            for start in range(0, len(numbers), 50_000):
                part = numbers[start : start + 50_000]
                record_texted(conn, f"earlier-{k}", part, now - timedelta(days=3 + k))
    since = now - timedelta(days=90)

    def timed(fn: object) -> float:
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        return time.perf_counter() - started

    def baseline() -> None:
        with ledger.engine.connect() as conn:
            for start in range(0, len(numbers), 5000):
                part = numbers[start : start + 5000]
                conn.execute(select(texted.c.e164).where(texted.c.e164.in_(part))).all()

    base = timed(baseline)
    every = timed(lambda: ledger.texted_counts(numbers, since=since, exclude_campaign="new"))
    one = timed(
        lambda: ledger.texted_counts(
            numbers, since=since, exclude_campaign="new", survey_id="survey-0"
        )
    )
    ledger.close()
    print(
        json.dumps(
            {
                "numbers": args.numbers,
                "earlier": args.earlier,
                "seconds": round(every, 3),
                "survey_seconds": round(one, 3),
                "baseline_seconds": round(base, 3),
                "vs_baseline": round(every / base, 2),
                "survey_vs_baseline": round(one / base, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
