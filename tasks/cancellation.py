"""Calling a campaign off: what can still be cancelled, and what became of every chunk.

The gateway cancels a scheduled send only until five minutes before its time (code 6 after that,
7 once sent, 5 if already cancelled, 4 if unknown: smspartner-api.md section 4.5). So:

- a sent chunk whose slot is more than five minutes away is cancelled at the gateway, then in the
  ledger (its recipients leave the frequency cap's record: they were never texted);
- a chunk sent at once, or whose slot has passed, is ``already_sent``; one whose slot is five
  minutes away or less is ``too_late`` (not even tried: the gateway would refuse);
- a chunk that never reached the gateway (pending, failed) is cancelled in the ledger only, so a
  rerun of the campaign does not send it; one that may have reached it (in doubt) is looked up
  by tag first;
- a chunk another run is sending right now is left alone (``in_progress``): run the cancel again
  once that run has finished.

This module is the pure rule: ``decide`` (``now`` explicit), the counts and the markdown the UI
shows. ``cancel_chunk`` does the I/O for one chunk (``tasks/cancel_io.py``); the Prefect tasks
the cancel flow runs are in ``tasks/steps/cancel.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tasks.i18n import DEFAULT_LANG, Lang, label, number, territory_name, text, when
from tasks.ledger.model import ChunkRow
from tasks.outcomes import (
    CANCEL_ALREADY,
    CANCEL_ALREADY_SENT,
    CANCEL_IN_PROGRESS,
    CANCEL_NOT_FOUND,
    CANCEL_OUTCOMES,
    CANCEL_TOO_LATE,
    ChunkState,
)
from tasks.sendcore import SendPolicy

NOTICE = timedelta(minutes=5)
SETTLE = SendPolicy().settle  # "not found" proves "never landed" only this long after

# Actions of ``decide`` that still need the gateway or the ledger.
ASK_GATEWAY = "ask_gateway"
LEDGER_ONLY = "ledger_only"
LOOK_UP_TAG = "look_up_tag"
NOTHING = "nothing"  # a sent chunk that reached nobody (every number refused)

NEVER_SENT = (ChunkState.pending, ChunkState.failed)


@dataclass(frozen=True)
class ChunkAction:
    """What ``decide`` says to do with one chunk, and why (the detail the report shows)."""

    action: str  # one of the actions above, or a final outcome from CANCEL_OUTCOMES
    detail: str


def decide(chunk: ChunkRow, now: datetime, notice: timedelta = NOTICE) -> ChunkAction:
    """What to do with one chunk when its campaign is called off at ``now`` (aware)."""
    if chunk.state == ChunkState.cancelled:
        return ChunkAction(CANCEL_ALREADY, "cancelled before")
    if chunk.state == ChunkState.sending:
        return ChunkAction(CANCEL_IN_PROGRESS, "another run is sending it; cancel again afterwards")
    if chunk.state in NEVER_SENT:
        return ChunkAction(LEDGER_ONLY, "never sent")
    if chunk.state == ChunkState.sent and not chunk.numbers:
        return ChunkAction(NOTHING, "every number was refused: nothing to cancel")
    if chunk.slot is None:
        if chunk.state == ChunkState.in_doubt:
            return ChunkAction(LOOK_UP_TAG, "may have been sent at once")
        return ChunkAction(CANCEL_ALREADY_SENT, "sent at once")
    left = datetime.fromisoformat(chunk.slot) - now
    if left <= timedelta(0):
        return ChunkAction(
            CANCEL_ALREADY_SENT if chunk.state == ChunkState.sent else LOOK_UP_TAG,
            "its slot has passed",
        )
    if left <= notice:
        # An in-doubt chunk this close to its slot cannot be cancelled either way; the tag
        # lookup only says whether it will go out.
        return ChunkAction(
            CANCEL_TOO_LATE if chunk.state == ChunkState.sent else LOOK_UP_TAG,
            f"{_minutes(left)} before its slot, the gateway needs more than {_minutes(notice)}",
        )
    if chunk.state == ChunkState.in_doubt or chunk.message_id is None:
        return ChunkAction(LOOK_UP_TAG, "no message id yet")
    return ChunkAction(ASK_GATEWAY, f"{_minutes(left)} before its slot")


def _minutes(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return (
        f"{seconds // 60} min {seconds % 60:02d} s" if seconds < 3600 else f"{seconds / 3600:.1f} h"
    )


@dataclass(frozen=True)
class ChunkCancel:
    """What cancelling did with one chunk."""

    chunk_index: int
    territory: str
    slot: str | None
    size: int
    outcome: str  # one of CANCEL_OUTCOMES, or "nothing"
    detail: str
    changed: bool = False  # the ledger now says cancelled because of this run


def count(campaign_id: str, results: Iterable[ChunkCancel]) -> dict[str, Any]:
    """The JSON object the command prints: chunks per outcome, and recipients this run spared."""
    results = list(results)
    counts: dict[str, Any] = {"campaign_id": campaign_id}
    counts.update({o: sum(1 for r in results if r.outcome == o) for o in CANCEL_OUTCOMES})
    counts["recipients_cancelled"] = sum(r.size for r in results if r.changed)
    return counts


# What may still be sent or was: the operator has to look at these.
NOT_CANCELLED = (CANCEL_TOO_LATE, CANCEL_ALREADY_SENT, CANCEL_NOT_FOUND, CANCEL_IN_PROGRESS)


def markdown_cancel(
    counts: dict[str, Any],
    results: Sequence[ChunkCancel],
    at: datetime,
    *,
    lang: Lang = DEFAULT_LANG,
) -> str:
    """What the UI shows: counts, and the chunks that could not be cancelled and why."""

    def t(key: str, **values: object) -> str:
        return text(lang, f"cancel.{key}", **values)

    lines = [
        f"# {t('title', campaign=counts['campaign_id'])}",
        "",
        t(
            "spared",
            at=when(at, "Europe/Paris", lang),
            n=number(counts["recipients_cancelled"], lang),
        ),
        "",
        f"| {t('outcome')} | {t('chunks')} |",
        "|---|---:|",
    ]
    lines += [
        f"| {label(lang, 'cancel', o)} | {number(counts[o], lang)} |" for o in CANCEL_OUTCOMES
    ]
    kept = [r for r in results if r.outcome in NOT_CANCELLED]
    if kept:
        lines += [
            "",
            f"## {t('kept')}",
            "",
            f"| {t('chunk')} | {t('territory')} | {t('slot')} | {t('recipients')} | {t('why')} |",
            "|---:|---|---|---:|---|",
        ]
        lines += [
            f"| {r.chunk_index} | {territory_name(r.territory, lang)} | {r.slot or t('at_once')} "
            f"| {number(r.size, lang)} | {r.detail} |"
            for r in kept[:50]
        ]
        if len(kept) > 50:
            lines.append(f"| ... | | | | {t('more', n=len(kept) - 50)} |")
    return "\n".join(lines)
