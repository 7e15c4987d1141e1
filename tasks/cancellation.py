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

``decide`` is the pure rule (``now`` explicit); ``cancel_chunk`` does the I/O for one chunk; the
Prefect tasks the cancel flow runs come last.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from smspartner import CancelError, NotFound, SMSPartnerClient, SMSPartnerError
from tasks import ledger as lg
from tasks import runtime
from tasks.campaign import report_dir
from tasks.errors import SurveyError
from tasks.files import write_text_atomic
from tasks.i18n import DEFAULT_LANG, Lang, label, number, territory_name, text, when
from tasks.outcomes import (
    CAMPAIGN_CANCELLED,
    CANCEL_ALREADY,
    CANCEL_ALREADY_SENT,
    CANCEL_DONE,
    CANCEL_IN_PROGRESS,
    CANCEL_NOT_FOUND,
    CANCEL_NOT_SENT,
    CANCEL_OUTCOMES,
    CANCEL_TOO_LATE,
    gateway_problem,
)
from tasks.reporting import artifact_key
from tasks.runs import masked_errors
from tasks.sendcore import SendPolicy, Slot, evidence_after

NOTICE = timedelta(minutes=5)
SETTLE = SendPolicy().settle  # "not found" proves "never landed" only this long after

# Actions of ``decide`` that still need the gateway or the ledger.
ASK_GATEWAY = "ask_gateway"
LEDGER_ONLY = "ledger_only"
LOOK_UP_TAG = "look_up_tag"
NOTHING = "nothing"  # a sent chunk that reached nobody (every number refused)

_NEVER_SENT = (lg.PENDING, lg.FAILED)


@dataclass(frozen=True)
class Decision:
    action: str  # one of the actions above, or a final outcome from CANCEL_OUTCOMES
    detail: str


def decide(chunk: lg.ChunkRow, now: datetime, notice: timedelta = NOTICE) -> Decision:
    """What to do with one chunk when its campaign is called off at ``now`` (aware)."""
    if chunk.state == lg.CANCELLED:
        return Decision(CANCEL_ALREADY, "cancelled before")
    if chunk.state == lg.SENDING:
        return Decision(CANCEL_IN_PROGRESS, "another run is sending it; cancel again afterwards")
    if chunk.state in _NEVER_SENT:
        return Decision(LEDGER_ONLY, "never sent")
    if chunk.state == lg.SENT and not chunk.numbers:
        return Decision(NOTHING, "every number was refused: nothing to cancel")
    if chunk.slot is None:
        if chunk.state == lg.IN_DOUBT:
            return Decision(LOOK_UP_TAG, "may have been sent at once")
        return Decision(CANCEL_ALREADY_SENT, "sent at once")
    left = datetime.fromisoformat(chunk.slot) - now
    if left <= timedelta(0):
        return Decision(
            CANCEL_ALREADY_SENT if chunk.state == lg.SENT else LOOK_UP_TAG, "its slot has passed"
        )
    if left <= notice:
        # An in-doubt chunk this close to its slot cannot be cancelled either way; the tag
        # lookup only says whether it will go out.
        return Decision(
            CANCEL_TOO_LATE if chunk.state == lg.SENT else LOOK_UP_TAG,
            f"{_minutes(left)} before its slot, the gateway needs more than {_minutes(notice)}",
        )
    if chunk.state == lg.IN_DOUBT or chunk.message_id is None:
        return Decision(LOOK_UP_TAG, "no message id yet")
    return Decision(ASK_GATEWAY, f"{_minutes(left)} before its slot")


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


def cancel_chunk(
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    chunk: lg.ChunkRow,
    now: datetime,
    notice: timedelta = NOTICE,
    settle: timedelta = SETTLE,
) -> ChunkCancel:
    """Decide, ask the gateway when it can still help, and record the result in the ledger.

    NotFound and CancelError are outcomes; any other gateway error propagates (key, network).
    A chunk in doubt that the gateway does not show is cancelled in the ledger only once "not
    found" proves it never landed (a settle time after its attempt, or after its slot): before
    that it may still go out, and the ledger must not say otherwise.
    """
    decision = decide(chunk, now, notice)
    action, detail = decision.action, decision.detail

    def result(outcome: str, why: str, changed: bool = False) -> ChunkCancel:
        return ChunkCancel(
            chunk.chunk_index, chunk.territory, chunk.slot, chunk.size, outcome, why, changed
        )

    if action == LEDGER_ONLY:
        done = ledger.mark_cancelled(
            chunk.campaign_id,
            chunk.chunk_index,
            from_states=_NEVER_SENT,
            reason=CAMPAIGN_CANCELLED,
            detail="campaign cancelled before this chunk was sent",
        )
        if done:
            return result(CANCEL_NOT_SENT, detail, changed=True)
        return result(CANCEL_IN_PROGRESS, "another run claimed it meanwhile; cancel again")
    if action == NOTHING:
        return result(NOTHING, detail)
    message_id = chunk.message_id
    if action == LOOK_UP_TAG:
        try:
            entries = client.status_by_tag(chunk.tag)
        except NotFound:
            entries = []
        doubt_from = chunk.doubt_from or chunk.updated_at or now
        settled = now >= evidence_after(doubt_from, Slot.from_ledger(chunk.slot), settle)
        if not entries and chunk.state == lg.IN_DOUBT and not settled:
            return result(
                CANCEL_NOT_FOUND,
                "not visible at the gateway yet: it may still go out; run the cancel again later",
            )
        if not entries:
            if chunk.state == lg.IN_DOUBT and ledger.mark_cancelled(
                chunk.campaign_id,
                chunk.chunk_index,
                from_states=(lg.IN_DOUBT,),
                reason=CAMPAIGN_CANCELLED,
                detail="campaign cancelled; the gateway never got it",
            ):
                return result(CANCEL_NOT_SENT, "the gateway never got it", changed=True)
            return result(CANCEL_NOT_FOUND, "the gateway does not know its tag")
        found = next((e.message_id for e in entries if e.message_id is not None), None)
        if found is None:
            return result(CANCEL_NOT_FOUND, "sent, but the gateway gave no message id to cancel")
        message_id = found
        redo = decide(_with_message_id(chunk, found), now, notice)
        if redo.action != ASK_GATEWAY:
            return result(redo.action, redo.detail)
    elif action != ASK_GATEWAY:
        return result(action, detail)
    assert message_id is not None
    try:
        client.cancel(message_id)
    except NotFound:
        return result(CANCEL_NOT_FOUND, "the gateway does not know its message id (code 4)")
    except CancelError as exc:
        if exc.code == CancelError.ALREADY_CANCELLED:
            changed = _record(ledger, chunk, "already cancelled at the gateway (code 5)")
            return result(CANCEL_ALREADY, "already cancelled at the gateway (code 5)", changed)
        if exc.code == CancelError.TOO_LATE:
            return result(CANCEL_TOO_LATE, "the gateway says less than 5 minutes left (code 6)")
        return result(CANCEL_ALREADY_SENT, "the gateway says it was already sent (code 7)")
    changed = _record(ledger, chunk, "cancelled at the gateway before its slot")
    return result(CANCEL_DONE, "cancelled at the gateway", changed)


def _record(ledger: lg.Ledger, chunk: lg.ChunkRow, detail: str) -> bool:
    return ledger.mark_cancelled(
        chunk.campaign_id,
        chunk.chunk_index,
        from_states=(lg.SENT, lg.IN_DOUBT),
        reason=CAMPAIGN_CANCELLED,
        detail=detail,
    )


def _with_message_id(chunk: lg.ChunkRow, message_id: int) -> lg.ChunkRow:
    return lg.ChunkRow(**{**chunk.__dict__, "message_id": message_id, "state": lg.SENT})


def cancel_chunks(
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    chunks: Sequence[lg.ChunkRow],
    now: datetime,
    *,
    workers: int = 8,
) -> list[ChunkCancel]:
    """``cancel_chunk`` for every chunk, nearest slot first, ``workers`` calls in flight.

    On a gateway error (key, network) the calls not yet started are dropped and the error
    propagates; what was cancelled before it is in the ledger, and running again resumes.
    """
    ordered = sorted(chunks, key=lambda c: (c.slot is None, c.slot or "", c.chunk_index))
    if not ordered:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(ordered))))
    try:
        futures = [pool.submit(cancel_chunk, client, ledger, c, now) for c in ordered]
        results = [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return sorted(results, key=lambda r: r.chunk_index)


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


def write_cancel(
    report_dir: Path, counts: dict[str, Any], results: Sequence[ChunkCancel], at: datetime
) -> Path:
    """``cancel.json``: the counts and one line per chunk (no phone number in it)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "cancel.json"
    data = {**counts, "at": at.isoformat(), "chunks": [asdict(r) for r in results]}
    # A unique temporary name: two cancels at once never publish each other's half-written file.
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


# -- tasks -------------------------------------------------------------------------------------


@task(name="cancel-chunks", cache_policy=NO_CACHE)
@masked_errors
def cancel_task(
    campaign_id: str, ledger_url: str, key_block: str | None = None
) -> list[ChunkCancel]:
    """Cancel what can still be cancelled, chunk by chunk, and record it in the ledger. A
    gateway that cannot be reached (or refuses the key) is a ``SurveyError`` saying how far it
    got; what was cancelled before it stays cancelled, and running again resumes."""
    ledger = runtime.shared_ledger(ledger_url)
    chunks = ledger.chunks(campaign_id)
    base_url = runtime.gateway_url()
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            return cancel_chunks(client, ledger, chunks, datetime.now(UTC))
    except SMSPartnerError as exc:
        done = sum(1 for c in ledger.chunks(campaign_id) if c.state == lg.CANCELLED)
        raise SurveyError(
            f"{gateway_problem(exc, base_url)}; {done} of {len(chunks)} "
            "chunks are cancelled so far, run the cancel again"
        ) from None


@task(name="report-cancel", cache_policy=NO_CACHE)
@masked_errors
def report_task(
    campaign_id: str, results: list[ChunkCancel], lang: Lang = DEFAULT_LANG
) -> dict[str, Any]:
    """cancel.json and the markdown artifact."""
    at = datetime.now(UTC)
    counts = count(campaign_id, results)
    write_cancel(report_dir(campaign_id), counts, results, at)
    create_markdown_artifact(
        key=artifact_key(campaign_id, "cancel"),
        markdown=markdown_cancel(counts, results, at, lang=lang),
        description=text(lang, "artifact.cancel"),
    )
    return counts


__all__ = [
    "NOTICE",
    "ChunkCancel",
    "Decision",
    "cancel_chunk",
    "cancel_chunks",
    "cancel_task",
    "count",
    "decide",
    "markdown_cancel",
    "report_task",
    "write_cancel",
]
