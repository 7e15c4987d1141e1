"""The pure pieces of the follow-up's tasks."""

from __future__ import annotations

from tasks.delivery import doubt_counts
from tasks.outcomes import ChunkState


def test_doubt_counts_bucket_each_chunk_by_its_state_once_settled() -> None:
    states = [
        ChunkState.sent,
        ChunkState.failed,
        ChunkState.in_doubt,
        ChunkState.sent,
        ChunkState.sending,
    ]
    assert doubt_counts(states) == {"confirmed_sent": 2, "not_sent": 1, "still_in_doubt": 2}


def test_doubt_counts_without_chunks_in_doubt_are_all_zero() -> None:
    assert doubt_counts([]) == {"confirmed_sent": 0, "not_sent": 0, "still_in_doubt": 0}
