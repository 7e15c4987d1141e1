"""Calling a campaign off, chunk by chunk: the gateway asked when it can still help, the ledger
told, ``cancel.json`` written. No Prefect: the tasks are in ``tasks/steps/cancel.py``, the rule
(``decide``) in ``tasks/cancellation.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from smspartner import CancelError, NotFound, SMSPartnerClient
from tasks import ledger as lg
from tasks.cancellation import (
    ASK_GATEWAY,
    LEDGER_ONLY,
    LOOK_UP_TAG,
    NEVER_SENT,
    NOTICE,
    SETTLE,
    ChunkCancel,
    Why,
    decide,
)
from tasks.files import write_text_atomic
from tasks.outcomes import (
    CAMPAIGN_CANCELLED,
    CANCEL_ALREADY,
    CANCEL_ALREADY_SENT,
    CANCEL_DONE,
    CANCEL_IN_PROGRESS,
    CANCEL_NOT_FOUND,
    CANCEL_NOT_SENT,
    CANCEL_TOO_LATE,
    ChunkState,
)
from tasks.sendcore import Slot, evidence_after
from tasks.witnesses import WitnessCancel


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
    if decision.action == LEDGER_ONLY:
        return _cancel_never_sent(ledger, chunk, decision.why)
    if decision.action == LOOK_UP_TAG:
        found = _message_id_by_tag(client, ledger, chunk, now, notice, settle)
        if isinstance(found, ChunkCancel):
            return found
        return _cancel_at_gateway(client, ledger, chunk, found)
    if decision.action != ASK_GATEWAY:  # a final outcome, or NOTHING
        return _result(chunk, decision.action, decision.why)
    assert chunk.message_id is not None  # decide asks the gateway only with one
    return _cancel_at_gateway(client, ledger, chunk, chunk.message_id)


def _result(chunk: lg.ChunkRow, outcome: str, why: Why, changed: bool = False) -> ChunkCancel:
    """One chunk's result; its ``detail`` in English for cancel.json, ``why`` for people."""
    return ChunkCancel(
        chunk.chunk_index,
        chunk.territory,
        chunk.slot,
        chunk.size,
        outcome,
        why.say("en"),
        changed,
        why,
    )


def _cancel_never_sent(ledger: lg.Ledger, chunk: lg.ChunkRow, why: Why) -> ChunkCancel:
    """A chunk that never reached the gateway: cancelled in the ledger only, unless another run
    claimed it meanwhile."""
    done = ledger.mark_cancelled(
        chunk.campaign_id,
        chunk.chunk_index,
        from_states=NEVER_SENT,
        reason=CAMPAIGN_CANCELLED,
        detail=Why("cancelled_in_ledger").say("en"),
    )
    if done:
        return _result(chunk, CANCEL_NOT_SENT, why, changed=True)
    return _result(chunk, CANCEL_IN_PROGRESS, Why("claimed_meanwhile"))


def _message_id_by_tag(
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    chunk: lg.ChunkRow,
    now: datetime,
    notice: timedelta,
    settle: timedelta,
) -> ChunkCancel | int:
    """The message id the gateway shows for the chunk's tag, when it can still be cancelled;
    else the chunk's outcome (not found yet, never got it, too late...)."""
    try:
        entries = client.status_by_tag(chunk.tag)
    except NotFound:
        entries = []
    if not entries:
        return _not_at_gateway(ledger, chunk, now, settle)
    found = next((e.message_id for e in entries if e.message_id is not None), None)
    if found is None:
        return _result(chunk, CANCEL_NOT_FOUND, Why("no_message_id_given"))
    redo = decide(_with_message_id(chunk, found), now, notice)
    if redo.action != ASK_GATEWAY:
        return _result(chunk, redo.action, redo.why)
    return found


def _not_at_gateway(
    ledger: lg.Ledger, chunk: lg.ChunkRow, now: datetime, settle: timedelta
) -> ChunkCancel:
    """A chunk whose tag the gateway does not show: an in-doubt chunk is cancelled in the ledger
    once that proves it never landed (its settle time passed), not before."""
    doubt_from = chunk.doubt_from or chunk.updated_at or now
    settled = now >= evidence_after(doubt_from, Slot.from_ledger(chunk.slot), settle)
    if chunk.state == ChunkState.in_doubt and not settled:
        return _result(chunk, CANCEL_NOT_FOUND, Why("not_visible_yet"))
    if chunk.state == ChunkState.in_doubt and ledger.mark_cancelled(
        chunk.campaign_id,
        chunk.chunk_index,
        from_states=(ChunkState.in_doubt,),
        reason=CAMPAIGN_CANCELLED,
        detail="campaign cancelled; the gateway never got it",
    ):
        return _result(chunk, CANCEL_NOT_SENT, Why("never_got_it"), changed=True)
    return _result(chunk, CANCEL_NOT_FOUND, Why("tag_unknown"))


def _cancel_at_gateway(
    client: SMSPartnerClient, ledger: lg.Ledger, chunk: lg.ChunkRow, message_id: int
) -> ChunkCancel:
    """Ask the gateway to cancel the message; its refusals (codes 4 to 7) are outcomes."""
    try:
        client.cancel(message_id)
    except NotFound:
        return _result(chunk, CANCEL_NOT_FOUND, Why("message_unknown"))
    except CancelError as exc:
        if exc.code == CancelError.ALREADY_CANCELLED:
            why = Why("already_cancelled_gateway")
            return _result(chunk, CANCEL_ALREADY, why, _record(ledger, chunk, why.say("en")))
        if exc.code == CancelError.TOO_LATE:
            return _result(chunk, CANCEL_TOO_LATE, Why("gateway_too_late"))
        return _result(chunk, CANCEL_ALREADY_SENT, Why("gateway_already_sent"))
    changed = _record(ledger, chunk, "cancelled at the gateway before its slot")
    return _result(chunk, CANCEL_DONE, Why("cancelled_at_gateway"), changed)


def _record(ledger: lg.Ledger, chunk: lg.ChunkRow, detail: str) -> bool:
    return ledger.mark_cancelled(
        chunk.campaign_id,
        chunk.chunk_index,
        from_states=(ChunkState.sent, ChunkState.in_doubt),
        reason=CAMPAIGN_CANCELLED,
        detail=detail,
    )


def _with_message_id(chunk: lg.ChunkRow, message_id: int) -> lg.ChunkRow:
    return lg.ChunkRow(**{**chunk.__dict__, "message_id": message_id, "state": ChunkState.sent})


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


def write_cancel(
    report_dir: Path,
    counts: dict[str, Any],
    results: Sequence[ChunkCancel],
    at: datetime,
    witnesses: Sequence[WitnessCancel] = (),
) -> Path:
    """``cancel.json``: the counts and one line per chunk (no phone number in it), and one per
    witness's send (``witness_sends``, numbers masked) when the campaign texted witnesses."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "cancel.json"
    data = {**counts, "at": at.isoformat(), "chunks": [asdict(r) for r in results]}
    if witnesses:
        data["witness_sends"] = [asdict(w) for w in witnesses]
    # A unique temporary name: two cancels at once never publish each other's half-written file.
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path
