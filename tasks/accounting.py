"""Accounting, pure: every row that enters a run leaves with exactly one outcome.

``row_outcomes`` gives each row its outcome from its reject reason or its chunk's state in the
ledger; ``count_outcomes`` counts them and enforces, on every run, the identity

    loaded == sent + failed + sum(rejected)

(``check_identity``): a row counted twice or lost fails the run loudly instead of reporting
wrong numbers.

It is NOT the report (``tasks/steps/report.py`` and ``tasks/reporting/`` render these counts), nor
where the chunks are read (the caller hands them in). No I/O, no clock, no Prefect.
Imported by the report step, the follow-up and the reporting modules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.ledger.model import WITHDRAWN, ChunkRow
from tasks.outcomes import (
    CAMPAIGN_CANCELLED,
    DRY_RUN,
    FAILED,
    GATEWAY_REJECTED,
    NOT_PLANNED,
    OPTED_OUT,
    RECENTLY_SURVEYED,
    REJECTED,
    SENT,
    ChunkState,
)
from tasks.pressure import CAP, split_held
from tasks.row_columns import DETAIL, E164, OUTCOME, REASON

CAP_RULE = CAP  # the frequency cap's contact-pressure rule (--frequency-cap-days)
# What a group of numbers in the ledger says: (outcome, reason, detail).
_Word = tuple[str, str | None, str | None]


def row_outcomes(rows: pd.DataFrame, chunks: Sequence[ChunkRow], *, dry_run: bool) -> pd.DataFrame:
    """Fill each row's outcome from its reject reason or its chunk's state."""
    known, which, groups = _last_words(chunks)
    reasons = rows[REASON].to_numpy(dtype=object, copy=True)
    details = rows[DETAIL].to_numpy(dtype=object, copy=True)
    accepted = np.array([r is None for r in reasons], dtype=bool)
    found = _found(known, rows[E164].to_numpy(dtype=object), accepted)
    del known  # at a million rows every transient index counts in the peak
    in_chunk = found >= 0
    group = which[found[in_chunk]]
    # Outcomes as small codes first, the strings once at the end. A row rejected before
    # planning says REJECTED as a plain str, as numpy's np.full(..., REJECTED) always made it.
    kinds = (str(REJECTED), SENT, FAILED, REJECTED)
    code_of: dict[str, int] = {SENT: 1, FAILED: 2, REJECTED: 3}
    outcome_code = np.zeros(len(rows), dtype=np.int8)
    outcome_code[in_chunk] = np.array([code_of[g[0]] for g in groups], dtype=np.int8)[group]
    for column, values in ((1, reasons), (2, details)):
        per_group = np.empty(len(groups), dtype=object)
        per_group[:] = [g[column] for g in groups]
        values[in_chunk] = per_group[group]
    lost = accepted & ~in_chunk
    if dry_run:
        reasons[lost] = DRY_RUN
    else:  # accepted but in no chunk: cannot happen unless the ledger lost it; say so
        outcome_code[lost] = code_of[FAILED]
        reasons[lost] = NOT_PLANNED
    outcomes = np.array(kinds, dtype=object)[outcome_code]
    rows = rows.copy(deep=False)  # the caller's frame is left as it was
    # As lists: pandas infers the columns' dtypes from lists as it always did here.
    for name, values in ((OUTCOME, outcomes), (REASON, reasons), (DETAIL, details)):
        rows[name] = values.tolist()
    return rows


def _last_words(chunks: Sequence[ChunkRow]) -> tuple[pd.Index, np.ndarray, list[_Word]]:
    """Each number's last word, in ledger order (a later chunk, then its refused and held
    numbers, overrides): the numbers (unique), the group each one's word is in, the groups.
    One group per (chunk numbers | refused | held) entry, repeated over its numbers."""
    numbers: list[str] = []
    groups: list[_Word] = []
    sizes: list[int] = []
    for c in chunks:
        numbers.extend(c.numbers)
        groups.append(_chunk_word(c))
        sizes.append(len(c.numbers))
        for n, message in c.refused.items():
            numbers.append(n)
            why = OPTED_OUT if message in WITHDRAWN else GATEWAY_REJECTED
            groups.append((REJECTED, why, message))
            sizes.append(1)
        for n, value in c.held.items():
            numbers.append(n)
            rule, other = held_by(value)
            by = "frequency cap" if rule == CAP_RULE else f"rule {rule}"
            groups.append((REJECTED, RECENTLY_SURVEYED, f"held by campaign {other} ({by})"))
            sizes.append(1)
    which = np.repeat(np.arange(len(groups)), sizes)
    known = pd.Index(numbers, dtype=object)
    del numbers  # at a million rows every transient list counts in the peak
    if not known.is_unique:  # the hash table is_unique builds serves get_indexer later
        last = ~known.duplicated(keep="last")
        known, which = known[last], which[last]
    return known, which, groups


def held_by(value: str) -> tuple[str, str]:
    """(rule, campaign) of a chunk's ``held`` value: who set the number aside, by which
    contact-pressure rule. An old value (a plain campaign id) was the frequency cap's."""
    rule, campaign = split_held(str(value))
    return rule or CAP_RULE, campaign


def _chunk_word(c: ChunkRow) -> _Word:
    """What a chunk's state says of its own numbers."""
    if c.state == ChunkState.sent:
        return SENT, None, None
    if c.state == ChunkState.cancelled:  # the operator called it off: nobody failed to send it
        return REJECTED, CAMPAIGN_CANCELLED, None
    return FAILED, c.reason or c.state, c.detail


def _found(known: pd.Index, e164: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """Per row, the position of its number among ``known`` (-1: rejected, or in no chunk)."""
    found = np.full(len(e164), -1, dtype=np.int64)
    wanted = e164[accepted]
    if len(known) == len(wanted) and np.array_equal(known.to_numpy(), wanted):
        # One territory, first run: the chunks hold the accepted rows in source order, so no
        # hash lookup of a million strings is needed (checked, not assumed).
        found[accepted] = np.arange(len(wanted))
    elif len(known):
        found[accepted] = known.get_indexer(wanted)
    return found


@dataclass(frozen=True)
class Counts:
    loaded: int
    sent: int
    failed: int
    rejected: dict[str, int]
    failed_reasons: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "sent": self.sent,
            "failed": self.failed,
            "rejected": dict(self.rejected),
            "failed_reasons": dict(self.failed_reasons),
        }


def count_outcomes(rows: pd.DataFrame) -> Counts:
    # One factorize of the outcomes, then counts by code: no comparison of a million strings
    # per outcome.
    codes, names = pd.factorize(rows[OUTCOME].to_numpy(dtype=object), use_na_sentinel=False)
    per = np.bincount(codes, minlength=len(names))
    where = {name: i for i, name in enumerate(names.tolist()) if isinstance(name, str)}
    reasons = rows[REASON].to_numpy(dtype=object)

    def by_reason(outcome: str) -> dict[str, int]:
        if outcome not in where:
            return {}
        return dict(sorted(Counter(reasons[codes == where[outcome]].tolist()).items()))

    counts = Counts(
        loaded=len(rows),
        sent=int(per[where[SENT]]) if SENT in where else 0,
        failed=int(per[where[FAILED]]) if FAILED in where else 0,
        rejected=by_reason(REJECTED),
        failed_reasons=by_reason(FAILED),
    )
    check_identity(counts)
    return counts


def check_identity(counts: Counts) -> None:
    total = counts.sent + counts.failed + sum(counts.rejected.values())
    if total != counts.loaded:
        raise AssertionError(
            f"accounting identity broken: loaded {counts.loaded} != sent {counts.sent} "
            f"+ failed {counts.failed} + rejected {sum(counts.rejected.values())}"
        )


__all__ = ["CAP_RULE", "Counts", "check_identity", "count_outcomes", "held_by", "row_outcomes"]
