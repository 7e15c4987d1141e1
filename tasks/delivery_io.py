"""Delivery follow-up I/O: asking the gateway about each sent chunk, and writing the
follow-up's files (``follow_up.json``, ``delivery.csv`` / ``delivery.xlsx``). No Prefect: the
tasks are in ``tasks/steps/follow_up.py``, the rules in ``tasks/delivery.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from smspartner import NotFound, SMSPartnerClient
from tasks.delivery import DELIVERY_COLUMNS, ChunkDelivery, FollowUp, tally_chunk
from tasks.files import write_text_atomic
from tasks.ledger import ChunkRow
from tasks.outcomes import DELIVERY_STATUSES
from tasks.reporting.tables import write_table


def check_chunk(client: SMSPartnerClient, chunk: ChunkRow) -> ChunkDelivery:
    """Statuses of one sent chunk: by message id when the ledger has it, else by tag.

    A chunk the gateway does not know (code 4) counts as ``other`` with the reason kept; any other
    gateway error propagates, since it would hit every chunk alike (key, network).
    """
    if chunk.message_id is not None:
        try:
            entries = client.status_by_message(chunk.message_id)
            return tally_chunk(chunk, entries, source="message")
        except NotFound:
            pass  # the tag may still find it (e.g. a message id recorded from a lost answer)
    try:
        entries = client.status_by_tag(chunk.tag)
    except NotFound:
        return tally_chunk(chunk, [], source="tag", problem="unknown to the gateway (code 4)")
    return tally_chunk(chunk, entries, source="tag")


def check_chunks(
    client: SMSPartnerClient, chunks: Sequence[ChunkRow], *, workers: int = 8
) -> list[ChunkDelivery]:
    """``check_chunk`` for each chunk, ``workers`` calls in flight, in the chunks' order."""
    if not chunks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
        return list(pool.map(lambda c: check_chunk(client, c), chunks))


def write_follow_up(
    report_dir: Path, result: FollowUp, deliveries: Sequence[ChunkDelivery]
) -> Path:
    """``follow_up.json`` (the totals and one line per chunk, STOP numbers masked) and the same
    chunks as ``delivery.csv`` / ``delivery.xlsx`` for a spreadsheet."""
    report_dir.mkdir(parents=True, exist_ok=True)
    data = result.as_dict()
    data["chunks"] = [
        {
            # The recipients' own statuses hold their numbers: counts only, as for STOP.
            **{k: v for k, v in asdict(d).items() if k not in ("stops", "statuses")},
            "stops": len(d.stops),
        }
        for d in deliveries
    ]
    path = write_text_atomic(
        report_dir / "follow_up.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    )
    write_table(
        report_dir / "delivery",
        DELIVERY_COLUMNS,
        (
            [
                d.chunk_index,
                d.territory,
                d.size,
                *(d.counts.get(b, 0) for b in DELIVERY_STATUSES),
                len(d.stops),
                d.source,
                d.last_status_at,
                d.problem,
            ]
            for d in deliveries
        ),
    )
    return path
