"""Benchmark: load + clean + dedupe a million messy phone numbers, against row-by-row parsing.

Run by hand: ``.venv/bin/python bench/phone_numbers.py [--rows N] [--seed S] [--sample N]``.

1. A child process writes a seeded CSV of ``--rows`` recipients (phone, name, email) with the
   mess real files have: every usual French format, overseas numbers written nationally or
   with +33, landlines, VoIP, foreign numbers, spreadsheet floats, blanks, letters, two numbers
   in a cell, scientific notation, and repeated numbers. (A child, so the measured process's
   peak memory is the pipeline's, not the generator's.)
2. Measured: the project's path, end to end from the file: ``load_recipients`` (or plain
   pandas if the loader is absent), ``clean_numbers``, ``mark_duplicates``.
3. Baseline: ``normalize_number`` row by row, timed on a seeded sample of ``--sample`` rows and
   scaled to all rows, plus the same load and dedupe.
4. Correctness on every row: the reference outcome of each distinct raw value (computed once
   with ``normalize_number``), deduplicated first-wins in plain Python, against the fast path.

Prints one JSON line: rows, seconds, baseline_seconds, speedup, mismatches, peak_rss_mb and
details (phase timings, the same figures in CPU time of the process, which a busy machine
disturbs less than wall-clock time, distinct values, outcome counts).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tasks.numbers import clean_numbers, mark_duplicates, normalize_number
from tasks.outcomes import DUPLICATE

PHONE = "telephone"

# National significant numbers (9 digits) by kind: (weight, prefixes, country code).
_FR_MOBILE = ["60", "61", "62", "64", "65", "66", "67", "68", "63", "695", "698", "699"] + [
    f"7{d}" for d in "3456789"
]
_OVERSEAS = [("690", "590"), ("6912", "590"), ("692", "262"), ("6931", "262"), ("694", "594"),
             ("696", "596"), ("697", "596"), ("63901", "262")]  # fmt: skip
_LANDLINE = ["1", "2", "3", "4", "5", "9", "80", "89", "590", "262"]
_FOREIGN = [("32", "47", 9), ("44", "74", 10), ("49", "151", 11), ("41", "79", 9),
            ("1", "212", 10), ("34", "6", 9)]  # fmt: skip
_INVALID = ["70", "71", "72", "6", "7"]  # 070/071/072, or too short (8 digits)


def _digits(rng: random.Random, prefix: str, size: int) -> str:
    return prefix + "".join(rng.choices("0123456789", k=size - len(prefix)))


def _pairs(nsn: str) -> list[str]:
    return [nsn[i : i + 2] for i in range(1, len(nsn), 2)]


def _subscriber(rng: random.Random) -> tuple[str, str, str]:
    """(kind, country code, national significant number)."""
    roll = rng.random()
    if roll < 0.87:
        return "fr", "33", _digits(rng, rng.choice(_FR_MOBILE), 9)
    if roll < 0.91:
        prefix, cc = rng.choice(_OVERSEAS)
        return "overseas", cc, _digits(rng, prefix, 9)
    if roll < 0.95:
        return "fr", "33", _digits(rng, rng.choice(_LANDLINE), 9)
    if roll < 0.962:
        cc, prefix, size = rng.choice(_FOREIGN)
        return "foreign", cc, _digits(rng, prefix, size)
    prefix = rng.choice(_INVALID)
    return "fr", "33", _digits(rng, prefix, 9 if len(prefix) == 2 else 8)


_FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
# (weight, format) for French and overseas numbers; `o` is True for overseas numbers.
_FORMATS: list[tuple[float, Callable[[str, str, bool], str]]] = [
    (0.33, lambda cc, n, o: "0" + n),
    (0.20, lambda cc, n, o: " ".join(["0" + n[0], *_pairs(n)])),
    (0.12, lambda cc, n, o: f"+{cc}{n}"),
    (
        0.07,
        lambda cc, n, o: f"+{cc} {n[:3] if o else n[0]} " + " ".join(_pairs(n)[1 if o else 0 :]),
    ),
    (0.05, lambda cc, n, o: ".".join(["0" + n[0], *_pairs(n)])),
    (0.05, lambda cc, n, o: n),  # leading zero lost in a spreadsheet
    (0.02, lambda cc, n, o: f"+33 {n}" if o else f"33{n}"),
    (0.02, lambda cc, n, o: f"00{cc}{n}"),
    (0.02, lambda cc, n, o: f"+{cc} (0){n[0]} " + " ".join(_pairs(n))),
    (0.02, lambda cc, n, o: f"{n}.0"),  # spreadsheet float
    (0.02, lambda cc, n, o: "-".join(["0" + n[0], *_pairs(n)])),
    (0.01, lambda cc, n, o: "\u00a0".join(["0" + n[0], *_pairs(n)])),
    (0.01, lambda cc, n, o: f" 0{n} "),
    (0.005, lambda cc, n, o: f"tel:+{cc}{n}"),
    (0.003, lambda cc, n, o: ("0" + n).translate(_FULL_WIDTH)),
    (0.003, lambda cc, n, o: " ".join(["0" + n[0], *_pairs(n)]) + " (mobile)"),
    (0.003, lambda cc, n, o: f"{int(n) / 1e8:.8f}E+08"),  # scientific notation
]
_FORMAT_WEIGHTS = [w for w, _ in _FORMATS]
_FOREIGN_FORMATS: list[Callable[[str, str], str]] = [
    lambda cc, n: f"+{cc}{n}",
    lambda cc, n: f"+{cc} {n[:3]} {n[3:6]} {n[6:]}",
    lambda cc, n: f"00{cc}{n}",
]
_GARBAGE = ["", "", " ", "n/a", "inconnu", "-", "0", "pas de tel", "???", "00000000000"]


def _cell(rng: random.Random, kind: str, cc: str, nsn: str, other: str) -> str:
    roll = rng.random()
    if roll < 0.01:
        return rng.choice(_GARBAGE)
    if roll < 0.015:
        return f"0{nsn}{rng.choice([', ', ' / ', ';'])}0{other}"  # two numbers in one cell
    if kind == "foreign":
        return rng.choice(_FOREIGN_FORMATS)(cc, nsn)
    fmt = rng.choices(_FORMATS, weights=_FORMAT_WEIGHTS)[0][1]
    return fmt(cc, nsn, kind == "overseas")


def write_csv(path: Path, rows: int, seed: int) -> None:
    """A seeded recipients file: ~15 % of rows repeat an earlier subscriber."""
    rng = random.Random(seed)
    subscribers = [_subscriber(rng) for _ in range(max(1, int(rows * 0.85)))]
    picks = list(range(len(subscribers)))
    picks += rng.choices(range(len(subscribers)), k=rows - len(picks))
    rng.shuffle(picks)
    phones = []
    for i in picks:
        kind, cc, nsn = subscribers[i]
        other = subscribers[rng.randrange(len(subscribers))][2]
        phones.append(_cell(rng, kind, cc, nsn, other))
    frame = pd.DataFrame(
        {
            "nom": [f"Client {i}" for i in range(rows)],
            PHONE: phones,
            "email": [f"client{i}@example.org" for i in range(rows)],
        }
    )
    frame.to_csv(path, index=False)


def _load(path: Path) -> tuple[pd.DataFrame, str]:
    try:
        from tasks.recipients import load_recipients
    except ImportError:
        return pd.read_csv(path, dtype=str, keep_default_na=False), "pandas.read_csv"
    return load_recipients(path=path), "tasks.recipients.load_recipients"


def _reference_dedupe(outcomes: list[tuple[str | None, str | None, str | None]]) -> list[tuple]:
    seen: set[str] = set()
    out = []
    for e164, territory, reason in outcomes:
        if reason is None and e164 is not None:
            if e164 in seen:
                reason = DUPLICATE
            seen.add(e164)
        out.append((e164, territory, reason))
    return out


def _none(value: object) -> object:
    return None if value is None or (isinstance(value, float) and value != value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--sample", type=int, default=100_000, help="rows timed for the baseline")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # child: write and exit
    args = parser.parse_args()
    if args.write is not None:
        write_csv(args.write, args.rows, args.seed)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipients.csv"
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--rows", str(args.rows),
             "--seed", str(args.seed), "--write", str(path)],
            check=True,
        )  # fmt: skip

        # Wall clock (t) and this process's CPU time (c): the machine may be shared.
        t0, c0 = time.perf_counter(), time.process_time()
        frame, loader = _load(path)
        t1, c1 = time.perf_counter(), time.process_time()
        cleaned = clean_numbers(frame[PHONE])
        t2, c2 = time.perf_counter(), time.process_time()
        final = mark_duplicates(cleaned)
        t3, c3 = time.perf_counter(), time.process_time()
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    raw = frame[PHONE]
    rows = len(raw)
    sample_size = min(args.sample, rows)
    sample = raw.sample(n=sample_size, random_state=args.seed).tolist()
    t4, c4 = time.perf_counter(), time.process_time()
    for value in sample:
        normalize_number(value)
    scale = rows / max(sample_size, 1)
    loop_seconds = (time.perf_counter() - t4) * scale
    loop_cpu = (time.process_time() - c4) * scale
    # The same load and dedupe around the row-by-row loop.
    baseline_seconds = (t1 - t0) + loop_seconds + (t3 - t2)
    baseline_cpu = (c1 - c0) + loop_cpu + (c3 - c2)

    reference = {v: normalize_number(v) for v in raw.unique()}
    expected = _reference_dedupe(
        [(p.e164, p.territory, p.reason) for p in map(reference.__getitem__, raw)]
    )
    columns = final[["e164", "territory", "reason"]]
    got = [tuple(map(_none, t)) for t in columns.itertuples(index=False, name=None)]
    mismatches = sum(a != b for a, b in zip(got, expected, strict=True))

    seconds, cpu = t3 - t0, c3 - c0
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(seconds, 3),
                "baseline_seconds": round(baseline_seconds, 3),
                "speedup": round(baseline_seconds / seconds, 1),
                "mismatches": mismatches,
                "peak_rss_mb": round(peak_rss_mb, 1),  # after the measured path
                "peak_rss_mb_after_check": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
                "baseline_sampled_rows": sample_size,
                "load_seconds": round(t1 - t0, 3),
                "clean_seconds": round(t2 - t1, 3),
                "dedupe_seconds": round(t3 - t2, 3),
                "baseline_row_by_row_seconds": round(loop_seconds, 3),
                "cpu_seconds": round(cpu, 3),
                "baseline_cpu_seconds": round(baseline_cpu, 3),
                "cpu_speedup": round(baseline_cpu / cpu, 1),
                "loader": loader,
                "distinct_values": len(reference),
                "outcomes": dict(Counter(r if r else "accepted" for *_, r in expected)),
            }
        )
    )


if __name__ == "__main__":
    main()
