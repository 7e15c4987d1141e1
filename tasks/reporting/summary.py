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

from tasks.accounting import Counts
from tasks.ledger.model import ChunkRow
from tasks.outcomes import DRY_RUN, FAILED, REJECTED, SENT, ChunkState
from tasks.row_columns import OUTCOME, TERRITORY

# int stays int and float stays float (a cost of 0 is written 0, as it always was)
Number = int | float


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
) -> CampaignSummary:
    """The campaign's summary: the CLI's last line and summary.json."""
    sent_chunks = [c for c in chunks if c.state == ChunkState.sent]
    return CampaignSummary(
        campaign_id=campaign_id,
        survey_id=survey_id,
        **counts.as_dict(),
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
    )


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
    "CampaignSummary",
    "Number",
    "as_mapping",
    "build_summary",
    "slot_plan",
    "territory_table",
]
