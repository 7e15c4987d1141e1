"""The campaign report: files for the operator, Prefect artifacts for the UI.

Files under ``data/reports/<campaign>/`` keep full numbers where the operator needs them
(``rejects.csv`` / ``rejects.xlsx``, to fix the source); everything the Prefect UI shows is
aggregated or masked. Tables are written by :func:`tasks.spreadsheet.write_table`, which makes
them open cleanly in a French Excel and never lets a cell run as a formula.

What people read (the markdown summary) is French by default, English with ``lang="en"``;
summary keys, JSON, CSV column names and reason codes stay as they are (machine contracts).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks import ledger as lg
from tasks.campaign import DETAIL, E164, OUTCOME, REASON, ROW, TERRITORY, Counts
from tasks.files import atomic_path, write_text_atomic
from tasks.i18n import (
    DEFAULT_LANG,
    Lang,
    label,
    money,
    number,
    territory_cell,
    territory_name,
    text,
    when,
)
from tasks.numbers import mask_number
from tasks.outcomes import DRY_RUN, FAILED, REJECTED, SENT
from tasks.slots import TERRITORY_ZONES
from tasks.spreadsheet import write_table
from tasks.summary import CampaignSummary

ROWS_FILE = "rows.pkl"  # the rows a report was made of, beside it
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_PARIS = "Europe/Paris"
CHUNK_COLUMNS = (
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
)


def territory_table(rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Outcome counts per territory (rows without a territory are under 'unknown')."""
    table: dict[str, dict[str, int]] = {}
    # Codes, not a frame of pairs: a million rows count in a few arrays of integers.
    territory, territories = pd.factorize(rows[TERRITORY].fillna("unknown").to_numpy(dtype=object))
    outcome, outcomes = pd.factorize(rows[OUTCOME].to_numpy(dtype=object), use_na_sentinel=False)
    width = max(1, len(outcomes))
    pairs = territory * width + outcome
    counts = np.bincount(pairs)
    # In order of first row, as they come: pd.unique keeps that order, without a sort.
    for code in pd.unique(pairs).tolist():
        t, o = divmod(code, width)
        cell = table.setdefault(str(territories[t]), {SENT: 0, FAILED: 0, REJECTED: 0})
        cell[outcomes[o]] = int(counts[code])
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
) -> CampaignSummary:
    """The campaign's summary: the CLI's last line and summary.json."""
    sent_chunks = [c for c in chunks if c.state == lg.SENT]
    summary = CampaignSummary(
        campaign_id=campaign_id,
        survey_id=survey_id,
        **counts.as_dict(),
        nb_sms=int(sum(c.nb_sms or 0 for c in sent_chunks)),
        cost=round(sum(c.cost or 0.0 for c in sent_chunks), 4),
        # True when some of that cost is an estimate: chunks confirmed through the status
        # endpoint, priced at what the gateway charged this campaign elsewhere.
        cost_estimated=any(c.cost_estimated for c in sent_chunks),
        currency=currency,
        slots=sorted({c.slot for c in chunks if c.slot and c.state != lg.CANCELLED}),
        sent_at_once=any(c.slot is None and c.state == lg.SENT for c in chunks),
        chunks=dict(sorted(Counter(str(c.state) for c in chunks).items())),
        territories=territory_table(rows),
        slot_explanations=dict(decisions),
        slot_plan=slot_plan((c.territory, c.slot, c.state) for c in chunks),
        credits_before=credits_before,
        credits_after=credits_after,
        dry_run=dry_run,
        duration_seconds=round(duration, 3),
        report_dir=str(report_dir),
    )
    if dry_run:
        summary.would_send = counts.rejected.get(DRY_RUN, 0)
        summary.estimated_cost = estimated_cost
    return summary


def as_mapping(summary: CampaignSummary | Mapping[str, Any]) -> Mapping[str, Any]:
    """What the renderers read. They take any summary.json as it is on disk (one from an older
    version, a bare one, one a person edited), so they read a mapping, defensively."""
    return summary.as_json() if isinstance(summary, CampaignSummary) else summary


def slot_plan(
    chunks: Iterable[tuple[str, str | None, str | None]],
) -> dict[str, dict[str, Any]]:
    """How each territory's chunks go out, from (territory, slot, state) triples: at once
    (slot None), at which slots (ISO 8601), and whether some were cancelled.

    The structured twin of ``slot_explanations``, from which the reports word their sentences
    in any language. Also works on a dry run's ``plan`` (no state).
    """
    plan: dict[str, dict[str, Any]] = {}
    for territory, slot, state in chunks:
        entry = plan.setdefault(str(territory), {"at_once": False, "slots": [], "cancelled": False})
        if state == lg.CANCELLED:
            entry["cancelled"] = True
        elif slot is None:
            entry["at_once"] = True
        elif slot not in entry["slots"]:
            entry["slots"].append(slot)
    for entry in plan.values():
        entry["slots"].sort()
    return dict(sorted(plan.items()))


def _plan_of(summary: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The summary's slot plan (a dry run's from its ``plan``); territories that were planned
    but have no chunk map to None: they had no slot."""
    plan: dict[str, dict[str, Any] | None] = dict(summary.get("slot_plan") or {})
    if not plan and summary.get("plan"):
        plan.update(
            slot_plan((str(p.get("territory")), p.get("slot"), None) for p in summary["plan"])
        )
    for territory in summary.get("slot_explanations") or {}:
        plan.setdefault(territory, None)
    return dict(sorted(plan.items()))


def _slot_time(slot: str, zone: str, lang: Lang) -> str:
    moment = datetime.fromisoformat(slot)
    local = when(moment, zone, lang)
    if zone == _PARIS:
        return local
    # Overseas: the recipient's clock first, then the gateway's (the one the API is given).
    return text(lang, "slot.paris_too", local=local, paris=when(moment, _PARIS, lang))


def slot_sentence(territory: str, entry: Mapping[str, Any] | None, lang: Lang) -> str:
    """How one territory is sent, from its slot plan entry ("envoi programmé mardi 7 janvier
    13:00 (heure de La Réunion), soit mardi 7 janvier 10:00 (heure de Paris)")."""
    zones = TERRITORY_ZONES.get(territory)
    parts: list[str] = []
    if zones is None and len(territory) == 2 and territory.isupper():
        parts.append(text(lang, "slot.foreign", code=territory))
    if entry is None:
        return text(lang, "sep.list").join([*parts, text(lang, "slot.none")])
    zone = zones[0] if zones else _PARIS
    sent: list[str] = []
    if entry.get("at_once"):
        sent.append(text(lang, "slot.at_once"))
    for slot in entry.get("slots") or []:
        try:
            sent.append(text(lang, "slot.scheduled", when=_slot_time(str(slot), zone, lang)))
        except (TypeError, ValueError):
            sent.append(text(lang, "slot.scheduled", when=str(slot)))
    if not sent:
        sent.append(text(lang, "slot.cancelled" if entry.get("cancelled") else "slot.none"))
    elif entry.get("cancelled"):
        sent.append(text(lang, "slot.some_cancelled"))  # the rest was called off
    return text(lang, "sep.list").join([*parts, *sent])


def slot_sentences(
    summary: CampaignSummary | Mapping[str, Any], lang: Lang = DEFAULT_LANG
) -> dict[str, str]:
    """Territory name -> how it is sent. In English the slot planner's own explanation (it also
    says why) wins where there is one; other languages are worded from the slot plan."""
    summary = as_mapping(summary)
    explanations: Mapping[str, Any] = summary.get("slot_explanations") or {}
    if "slot_plan" not in summary and not summary.get("plan"):
        # A summary written before slot_plan existed: the planner's words are all there is.
        return {territory_name(t, lang): str(why) for t, why in explanations.items()}
    out: dict[str, str] = {}
    for territory, entry in _plan_of(summary).items():
        name = territory_name(territory, lang)
        why = explanations.get(territory)
        out[name] = str(why) if lang == "en" and why else slot_sentence(territory, entry, lang)
    return out


def write_files(
    report_dir: Path,
    summary: Mapping[str, Any],
    chunks: Sequence[lg.ChunkRow],
    rows: pd.DataFrame,
    source_columns: Sequence[str],
    *,
    rows_file: Path | None = None,
) -> dict[str, Path]:
    """summary.json; chunks and rejects (original row + reason, full numbers) as .csv + .xlsx;
    with ``rows_file``, the rows the report was made of as ``rows.pkl`` (a cancel or a
    follow-up rebuilds the report from it: tasks/report.py). Every file is replaced
    atomically, and a failure leaves no temporary file (tasks/files.py)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {"summary": report_dir / "summary.json"}
    if rows_file is not None:
        paths["rows"] = keep_file(rows_file, report_dir / ROWS_FILE)
    write_text_atomic(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    records = chunk_records(chunks)
    header = list(records[0]) if records else list(CHUNK_COLUMNS)
    paths["chunks"], paths["chunks_xlsx"] = write_table(
        report_dir / "chunks", header, ([r[h] for h in header] for r in records)
    )
    not_sent = rows[rows[OUTCOME] != SENT]
    paths["rejects"], paths["rejects_xlsx"] = write_table(
        report_dir / "rejects",
        ["row", *source_columns, "outcome", "reason", "detail", "e164"],
        (
            [r[ROW], *(r[c] for c in source_columns), r[OUTCOME], r[REASON], r[DETAIL], r[E164]]
            for r in not_sent.to_dict("records")
        ),
    )
    return paths


def keep_file(source: Path, path: Path) -> Path:
    """``source`` published as ``path``, atomically: a hard link where the file system allows
    it (no copy of a million rows), else a copy."""
    with atomic_path(path) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    return path


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _reason_cell(code: str, lang: Lang) -> str:
    words = label(lang, "reason", code)
    return code if words == code else f"{words} (`{code}`)"


def markdown_summary(
    summary: CampaignSummary | Mapping[str, Any], rows: pd.DataFrame, *, lang: Lang = DEFAULT_LANG
) -> str:
    """What the run's page in the Prefect UI shows: aggregates only, numbers masked."""
    summary = as_mapping(summary)
    currency = str(summary.get("currency") or "EUR")

    def n(value: float | int) -> str:
        return number(value, lang)

    title = text(lang, "campaign.title", campaign=f"`{summary['campaign_id']}`")
    lines = [
        "# " + title + (text(lang, "campaign.dry_run") if summary["dry_run"] else ""),
        "",
        text(
            lang,
            "campaign.loaded",
            survey=f"`{summary['survey_id']}`",
            rows=n(summary["loaded"]),
            seconds=number(round(float(summary["duration_seconds"]), 1), lang),
        ),
        "",
        _row(text(lang, "col.outcome"), text(lang, "col.rows")),
        "|---|---:|",
        _row(label(lang, "outcome", SENT), n(summary["sent"])),
        _row(label(lang, "outcome", FAILED), n(summary["failed"])),
        _row(label(lang, "outcome", REJECTED), n(sum(summary["rejected"].values()))),
        "",
    ]
    for key, column in (
        ("rejected", "col.rejected_because"),
        ("failed_reasons", "col.failed_because"),
    ):
        if summary[key]:
            lines += [_row(text(lang, column), text(lang, "col.rows")), "|---|---:|"]
            lines += [_row(_reason_cell(k, lang), n(v)) for k, v in summary[key].items()]
            lines.append("")
    lines += [
        _row(
            text(lang, "col.territory"),
            *(label(lang, "outcome", o) for o in (SENT, FAILED, REJECTED)),
        ),
        "|---|---:|---:|---:|",
    ]
    lines += [
        _row(
            territory_cell(t, lang),
            *(n(c.get(o, 0)) for o in (SENT, FAILED, REJECTED)),
        )
        for t, c in summary["territories"].items()
    ]
    lines += ["", "## " + text(lang, "slots.heading"), ""]
    colon = text(lang, "sep.colon")
    sentences = slot_sentences(summary, lang)
    if sentences:
        lines += [f"- **{name}**{colon}{why}" for name, why in sentences.items()]
    else:
        lines.append("- " + text(lang, "slots.nothing"))
    chunks: Mapping[str, Any] = summary.get("chunks") or {}
    if chunks:
        states = text(lang, "sep.list").join(
            f"{n(int(v))} {label(lang, 'state', str(k))}" for k, v in chunks.items()
        )
        lines += ["", text(lang, "summary.chunks", states=states)]
    cost = money(summary["cost"], currency, lang)
    if summary.get("cost_estimated"):
        cost += text(lang, "cost.partly_estimated")
    lines += [
        "",
        "## " + text(lang, "cost.heading"),
        "",
        "- " + text(lang, "cost.line", sms=n(summary["nb_sms"]), cost=cost),
    ]
    if summary.get("estimated_cost") is not None:
        lines.append(
            "- "
            + text(lang, "cost.estimated", cost=money(summary["estimated_cost"], currency, lang))
        )
    lines.append(
        "- "
        + text(
            lang,
            "cost.credits",
            before=money(summary["credits_before"], currency, lang),
            after=money(summary["credits_after"], currency, lang),
        )
    )
    examples = rows.loc[rows[OUTCOME] == REJECTED, [E164, REASON]].dropna().head(5)
    if len(examples):
        lines += ["", text(lang, "rejects.examples"), ""]
        lines += [
            f"- {mask_number(str(e))}{colon}{_reason_cell(str(r), lang)}"
            for e, r in examples.itertuples(index=False)
        ]
    lines += ["", text(lang, "report.full", path=f"`{summary['report_dir']}`")]
    return "\n".join(lines)


def artifact_key(campaign_id: str, suffix: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    base = "".join(ch if ch in _KEY_CHARS else "-" for ch in campaign_id.lower()).strip("-")
    return f"{base[:60].strip('-')}-{suffix}"


__all__ = [
    "CHUNK_COLUMNS",
    "ROWS_FILE",
    "artifact_key",
    "atomic_path",
    "build_summary",
    "chunk_records",
    "keep_file",
    "markdown_summary",
    "slot_plan",
    "slot_sentence",
    "slot_sentences",
    "territory_table",
    "write_files",
]
