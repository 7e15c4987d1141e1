"""How the send phase groups chunks into Prefect tasks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasks.plan import batch_chunks

indices = st.lists(st.integers(0, 10**6), unique=True, max_size=3000)


@given(indices, st.integers(1, 64), st.integers(1, 50))
def test_every_chunk_is_in_exactly_one_group_in_order(
    chunks: list[int], workers: int, most: int
) -> None:
    groups = batch_chunks(chunks, workers, most=most)
    assert [i for g in groups for i in g] == chunks
    assert all(1 <= len(g) <= most for g in groups)


@given(indices, st.integers(1, 64))
def test_no_group_is_more_than_a_workers_share_of_what_is_left(
    chunks: list[int], workers: int
) -> None:
    # so that when the last groups start, each is small and the workers finish together
    sizes = [len(g) for g in batch_chunks(chunks, workers)]
    assert sizes == sorted(sizes, reverse=True)
    left = len(chunks)
    for size in sizes:
        assert size <= max(1, left / workers)
        left -= size


@given(st.integers(0, 64), st.integers(1, 64))
def test_a_campaign_with_few_chunks_gets_one_task_per_chunk(n: int, workers: int) -> None:
    chunks = list(range(min(n, 2 * workers - 1)))
    assert batch_chunks(chunks, workers) == [[i] for i in chunks]


def test_a_large_campaign_runs_as_a_few_hundred_tasks() -> None:
    groups = batch_chunks(list(range(2000)), 16)
    assert 100 <= len(groups) <= 300  # instead of 2,000 task runs
