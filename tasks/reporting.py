"""The campaign report: files for the operator, Prefect artifacts for the UI.

Files under ``data/reports/<campaign>/`` keep full numbers where the operator needs them
(``rejects.csv``, to fix the source); everything the Prefect UI shows is aggregated or masked.
CSV cells that a spreadsheet would read as a formula are neutralised.
"""

from __future__ import annotations

import csv
import json
import os
import string
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from tasks import ledger as lg
from tasks.campaign import DETAIL, E164, OUTCOME, REASON, ROW, TERRITORY, Counts
from tasks.numbers import mask_number
from tasks.outcomes import FAILED, REJECTED, SENT

_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Stop a spreadsheet from running a cell as a formula (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it once written: a reader (another run, a
    browser) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([neutralise(h) for h in header])
        for row in rows:
            writer.writerow([neutralise("" if v is None else v) for v in row])


def territory_table(rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Outcome counts per territory (rows without a territory are under 'unknown')."""
    table: dict[str, dict[str, int]] = {}
    territories = rows[TERRITORY].fillna("unknown")
    for (territory, outcome), n in Counter(zip(territories, rows[OUTCOME], strict=True)).items():
        table.setdefault(str(territory), {SENT: 0, FAILED: 0, REJECTED: 0})[outcome] = n
    return dict(sorted(table.items()))


def chunk_records(chunks: Sequence[lg.ChunkRow]) -> list[dict[str, Any]]:
    return [
        {
            "index": c.chunk_index,
            "size": c.size,
            "territory": c.territory,
            "slot": c.slot or "at once",
            "tag": c.tag,
            "message_id": c.message_id,
            "nb_sms": c.nb_sms,
            "cost": c.cost,
            "state": c.state,
            "reason": c.reason,
            "refused": len(c.refused),
        }
        for c in chunks
    ]


def build_summary(
    *,
    campaign_id: str,
    survey_id: str,
    counts: Counts,
    chunks: Sequence[lg.ChunkRow],
    rows: pd.DataFrame,
    decisions: Mapping[str, str],
    credits_before: float | None,
    credits_after: float | None,
    currency: str,
    dry_run: bool,
    duration: float,
    report_dir: Path,
    estimated_cost: float | None = None,
) -> dict[str, Any]:
    """The JSON summary: the CLI's last line and summary.json."""
    sent_chunks = [c for c in chunks if c.state == lg.SENT]
    slots = sorted({c.slot for c in chunks if c.slot and c.state != lg.CANCELLED})
    summary: dict[str, Any] = {
        "campaign_id": campaign_id,
        "survey_id": survey_id,
        **counts.as_dict(),
        "nb_sms": int(sum(c.nb_sms or 0 for c in sent_chunks)),
        "cost": round(sum(c.cost or 0.0 for c in sent_chunks), 4),
        # True when some of that cost is an estimate: chunks confirmed through the status
        # endpoint, priced at what the gateway charged this campaign elsewhere.
        "cost_estimated": any(c.cost_estimated for c in sent_chunks),
        "currency": currency,
        "slots": slots,
        "sent_at_once": any(c.slot is None and c.state == lg.SENT for c in chunks),
        "chunks": dict(sorted(Counter(c.state for c in chunks).items())),
        "territories": territory_table(rows),
        "slot_explanations": dict(decisions),
        "credits_before": credits_before,
        "credits_after": credits_after,
        "dry_run": dry_run,
        "duration_seconds": round(duration, 3),
        "report_dir": str(report_dir),
    }
    if dry_run:
        summary["would_send"] = counts.rejected.get("dry_run", 0)
        summary["estimated_cost"] = estimated_cost
    return summary


def write_files(
    report_dir: Path,
    summary: Mapping[str, Any],
    chunks: Sequence[lg.ChunkRow],
    rows: pd.DataFrame,
    source_columns: Sequence[str],
) -> dict[str, Path]:
    """summary.json, chunks.csv, rejects.csv (original row + reason, full numbers)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": report_dir / "summary.json",
        "chunks": report_dir / "chunks.csv",
        "rejects": report_dir / "rejects.csv",
    }
    with atomic_path(paths["summary"]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    records = chunk_records(chunks)
    header = (
        list(records[0])
        if records
        else [
            "index",
            "size",
            "territory",
            "slot",
            "tag",
            "message_id",
            "nb_sms",
            "cost",
            "state",
            "reason",
            "refused",
        ]
    )
    write_csv(paths["chunks"], header, ([r[h] for h in header] for r in records))
    not_sent = rows[rows[OUTCOME] != SENT]
    write_csv(
        paths["rejects"],
        ["row", *source_columns, "outcome", "reason", "detail", "e164"],
        (
            [r[ROW], *(r[c] for c in source_columns), r[OUTCOME], r[REASON], r[DETAIL], r[E164]]
            for r in not_sent.to_dict("records")
        ),
    )
    return paths


def markdown_summary(summary: Mapping[str, Any], rows: pd.DataFrame) -> str:
    """What the run's page in the Prefect UI shows: aggregates only, numbers masked."""
    lines = [
        f"# Survey campaign `{summary['campaign_id']}`"
        + (" (dry run)" if summary["dry_run"] else ""),
        "",
        f"Survey `{summary['survey_id']}` - {summary['loaded']} rows loaded in "
        f"{summary['duration_seconds']:.1f} s.",
        "",
        "| outcome | rows |",
        "|---|---:|",
        f"| sent | {summary['sent']} |",
        f"| failed | {summary['failed']} |",
        f"| rejected | {sum(summary['rejected'].values())} |",
        "",
    ]
    if summary["rejected"]:
        lines += ["| rejected because | rows |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in summary["rejected"].items()]
        lines.append("")
    if summary["failed_reasons"]:
        lines += ["| failed because | rows |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in summary["failed_reasons"].items()]
        lines.append("")
    lines += ["| territory | sent | failed | rejected |", "|---|---:|---:|---:|"]
    lines += [
        f"| {t} | {c.get(SENT, 0)} | {c.get(FAILED, 0)} | {c.get(REJECTED, 0)} |"
        for t, c in summary["territories"].items()
    ]
    lines += ["", "## Delivery slots", ""]
    if summary["slot_explanations"]:
        lines += [f"- **{t}**: {why}" for t, why in summary["slot_explanations"].items()]
    else:
        lines.append("- nothing to plan")
    lines += [
        "",
        "## Cost",
        "",
        f"- SMS: {summary['nb_sms']}, cost: {summary['cost']:.3f} {summary['currency']}",
    ]
    if summary.get("estimated_cost") is not None:
        lines.append(
            f"- estimated cost if sent: {summary['estimated_cost']:.3f} {summary['currency']}"
        )
    lines.append(
        f"- credits before: {_money(summary['credits_before'])}, after: "
        f"{_money(summary['credits_after'])} {summary['currency']}"
    )
    examples = rows.loc[rows[OUTCOME] == REJECTED, [E164, REASON]].dropna().head(5)
    if len(examples):
        lines += ["", "Examples of rejected numbers (masked):", ""]
        lines += [f"- {mask_number(str(e))}: {r}" for e, r in examples.itertuples(index=False)]
    lines += ["", f"Full report: `{summary['report_dir']}`"]
    return "\n".join(lines)


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def artifact_key(campaign_id: str, suffix: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    base = "".join(ch if ch in _KEY_CHARS else "-" for ch in campaign_id.lower()).strip("-")
    return f"{base[:60].strip('-')}-{suffix}"
