"""The campaign's summary, typed: the send command's last JSON line and ``summary.json``.

Its keys, their order and their JSON types are a contract (other tools read the line): the
fields below are declared in that order, and a key that only some campaigns have (a dry run's
``would_send``, an approval) is written only when it was given. Reading a summary written by an
older or newer version keeps the keys this one does not know.

:func:`build_summary` makes it whole from the campaign's counts, chunks and rows; the
renderers (markdown, HTML) read any summary as a mapping (:func:`as_mapping`), because a
``summary.json`` on disk may come from another version or a person's editor.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.accounting import CAP_RULE, Counts, count_outcomes, held_by
from tasks.ledger.model import ChunkRow
from tasks.outcomes import (
    DRY_RUN,
    FAILED,
    NOT_SAMPLED,
    RECENTLY_SURVEYED,
    REJECTED,
    SENT,
    ChunkState,
)
from tasks.row_columns import E164, OUTCOME, REASON, RULE, SURVEY, TERRITORY

# int stays int and float stays float (a cost of 0 is written 0, as it always was)
Number = int | float
SURVEY_FIGURES = ("sent", "failed", "rejected", "cost", "nb_sms")


class CampaignSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    campaign_id: str
    survey_id: str | None = None
    loaded: int = 0
    sent: int = 0
    failed: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)  # reason -> rows
    failed_reasons: dict[str, int] = Field(default_factory=dict)
    nb_sms: int = 0
    cost: Number = 0
    cost_estimated: bool = False  # some chunks priced at what the gateway charged elsewhere
    currency: str = "EUR"
    slots: list[str] = Field(default_factory=list)  # ISO 8601, the scheduled chunks'
    sent_at_once: bool = False
    chunks: dict[str, int] = Field(default_factory=dict)  # state -> chunks
    territories: dict[str, dict[str, int]] = Field(default_factory=dict)  # outcome counts
    slot_explanations: dict[str, str] = Field(default_factory=dict)
    slot_plan: dict[str, dict[str, Any]] | None = None  # absent from summaries before 13
    credits_before: Number | None = None
    credits_after: Number | None = None
    dry_run: bool = False
    duration_seconds: Number | None = None
    report_dir: str = ""
    would_send: int | None = None  # a dry run's
    estimated_cost: Number | None = None  # a dry run's
    send_seconds: Number | None = None
    plan: list[dict[str, Any]] | None = None  # a dry run's (or a held campaign's) chunks
    approval: dict[str, Any] | None = None  # decision, reasons, comment
    # Issue 23's audience figures, after the older keys so that their order holds.
    pressure_skips: dict[str, int] = Field(default_factory=dict)  # rule name -> rows set aside
    witnesses: int = 0  # staff numbers texted apart: in none of the counts above
    sample: dict[str, Any] | None = None  # the draw's record, when a sample was asked
    surveys: dict[str, dict[str, Number]] = Field(default_factory=dict)  # survey id -> figures

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def complete(self) -> bool:
        """Whether this is a send run's summary (not the bare one of a missing file)."""
        return "loaded" in self.model_fields_set

    def as_json(self) -> dict[str, Any]:
        """The contract's dict: every key given, in the declared order, then unknown ones."""
        return self.model_dump(mode="json", exclude_unset=True)

    def line(self) -> str:
        return json.dumps(self.as_json(), ensure_ascii=False)


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


def build_summary(
    *,
    campaign_id: str,
    survey_id: str,
    counts: Counts,
    chunks: Sequence[ChunkRow],
    rows: pd.DataFrame,
    decisions: Mapping[str, str],
    credits_before: float | None,
    credits_after: float | None,
    currency: str,
    dry_run: bool,
    duration: float,
    report_dir: Path,
    estimated_cost: float | None = None,
    witnesses: int = 0,
    sample: Mapping[str, Any] | None = None,
) -> CampaignSummary:
    """The campaign's summary: the CLI's last line and summary.json. ``witnesses``: how many
    staff numbers were texted apart; ``sample``: the draw's record (None: no sample asked)."""
    sent_chunks = [c for c in chunks if c.state == ChunkState.sent]
    counted = counts.as_dict()
    if sample is not None:  # a sample's campaign always says how many were not drawn
        counted["rejected"] = {**counted["rejected"], NOT_SAMPLED: 0, **counted["rejected"]}
    return CampaignSummary(
        campaign_id=campaign_id,
        survey_id=survey_id,
        **counted,
        nb_sms=int(sum(c.nb_sms or 0 for c in sent_chunks)),
        cost=round(sum(c.cost or 0.0 for c in sent_chunks), 4),
        # True when some of that cost is an estimate: chunks confirmed through the status
        # endpoint, priced at what the gateway charged this campaign elsewhere.
        cost_estimated=any(c.cost_estimated for c in sent_chunks),
        currency=currency,
        slots=sorted({c.slot for c in chunks if c.slot and c.state != ChunkState.cancelled}),
        sent_at_once=any(c.slot is None and c.state == ChunkState.sent for c in chunks),
        chunks=dict(sorted(Counter(str(c.state) for c in chunks).items())),
        territories=territory_table(rows),
        slot_explanations=dict(decisions),
        slot_plan=slot_plan((c.territory, c.slot, c.state) for c in chunks),
        credits_before=credits_before,
        credits_after=credits_after,
        dry_run=dry_run,
        duration_seconds=round(duration, 3),
        report_dir=str(report_dir),
        # A dry run's keys only on a dry run's line: a key given is a key written.
        **_dry_run_fields(counts, estimated_cost) if dry_run else {},
        # Rows are scanned only when there is something to find (a million rows otherwise).
        pressure_skips=pressure_skips(rows, chunks)
        if counted["rejected"].get(RECENTLY_SURVEYED)
        else {},
        witnesses=int(witnesses),
        # The record only when a sample was asked: a key given is a key written.
        **({"sample": dict(sample)} if sample is not None else {}),
        surveys=survey_table(rows, chunks, survey_id, counts),
    )


def pressure_skips(rows: pd.DataFrame, chunks: Sequence[ChunkRow]) -> dict[str, int]:
    """Rows set aside because people were surveyed recently, by contact-pressure rule: at plan
    time the row names its rule (``RULE``); at claim time the chunk's ``held`` value does
    (``tasks.pressure.split_held``). A skip that names no rule (a campaign planned before the
    rules, an old ``held`` value) was the frequency cap's. Their total is the rows rejected as
    recently surveyed, so the figures add up with ``rejected``."""
    if REASON not in rows or not len(rows):
        return {}
    skipped = rows[REASON].to_numpy(dtype=object) == RECENTLY_SURVEYED
    if not skipped.any():
        return {}
    numbers = (
        rows[E164].to_numpy(dtype=object)[skipped] if E164 in rows else [None] * int(skipped.sum())
    )
    named = rows[RULE].to_numpy(dtype=object)[skipped] if RULE in rows else [None] * len(numbers)
    # In ledger order, a later chunk's word wins, as tasks/accounting.py reads them.
    held = {n: v for c in chunks for n, v in c.held.items()}
    counts: Counter[str] = Counter()
    for number, rule in zip(numbers, named, strict=True):
        if isinstance(rule, str) and rule:
            counts[rule] += 1
        elif number in held:
            counts[held_by(held[number])[0]] += 1
        else:
            counts[CAP_RULE] += 1
    return dict(sorted(counts.items()))


def survey_table(
    rows: pd.DataFrame,
    chunks: Sequence[ChunkRow],
    survey_id: str,
    counted: Counts | None = None,
) -> dict[str, dict[str, Number]]:
    """Per survey id: its rows' outcomes (``SURVEY``; none: the campaign's ``survey_id``) and
    what its sent chunks cost. One entry for a one-survey campaign, by its id (its figures are
    the campaign's, ``counted``, when given)."""
    default = survey_id or "unknown"
    table: dict[str, dict[str, Number]] = {}
    if SURVEY in rows and rows[SURVEY].notna().any():
        column = rows[SURVEY].astype(object).where(rows[SURVEY].notna(), default)
        survey, names = pd.factorize(column.to_numpy(dtype=object))
        outcome, outcomes = pd.factorize(
            rows[OUTCOME].to_numpy(dtype=object), use_na_sentinel=False
        )
        width = max(1, len(outcomes))
        counts = np.bincount(survey * width + outcome, minlength=len(names) * width)
        for s, name in enumerate(names.tolist()):
            entry = table.setdefault(str(name), {k: 0 for k in SURVEY_FIGURES})
            for o, word in enumerate(outcomes.tolist()):
                if word in (SENT, FAILED, REJECTED):
                    entry[str(word)] = int(entry[str(word)]) + int(counts[s * width + o])
    elif len(rows):  # one survey: the campaign's own counts (no million-row pass)
        done = counted or count_outcomes(rows)
        figures = {
            "sent": done.sent,
            "failed": done.failed,
            "rejected": sum(done.rejected.values()),
        }
        table[default] = {k: figures.get(k, 0) for k in SURVEY_FIGURES}
    costs: dict[str, float] = {}
    for c in chunks:
        if c.state != ChunkState.sent:
            continue
        name = str(getattr(c, "survey_id", None) or default)
        entry = table.setdefault(name, {k: 0 for k in SURVEY_FIGURES})
        entry["nb_sms"] = int(entry["nb_sms"]) + int(c.nb_sms or 0)
        costs[name] = costs.get(name, 0) + (c.cost or 0.0)
    for name, cost in costs.items():
        table[name]["cost"] = round(cost, 4)
    return dict(sorted(table.items())) if table else {default: {k: 0 for k in SURVEY_FIGURES}}


def _dry_run_fields(counts: Counts, estimated_cost: float | None) -> dict[str, Any]:
    return {"would_send": counts.rejected.get(DRY_RUN, 0), "estimated_cost": estimated_cost}


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
        if state == ChunkState.cancelled:
            entry["cancelled"] = True
        elif slot is None:
            entry["at_once"] = True
        elif slot not in entry["slots"]:
            entry["slots"].append(slot)
    for entry in plan.values():
        entry["slots"].sort()
    return dict(sorted(plan.items()))


__all__ = [
    "CAP_RULE",
    "SURVEY_FIGURES",
    "CampaignSummary",
    "Number",
    "as_mapping",
    "build_summary",
    "pressure_skips",
    "slot_plan",
    "survey_table",
    "territory_table",
]
