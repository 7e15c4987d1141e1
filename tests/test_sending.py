"""The settle phase: chunks left in doubt are driven again when due, and never past the bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.sending import ChunkResult, settle_deferred

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def test_a_chunk_is_driven_again_when_due_and_settles() -> None:
    clock = Clock()
    driven: list[tuple[int, datetime]] = []

    def drive(index: int) -> ChunkResult:
        driven.append((index, clock.now()))
        return ChunkResult(index, "sent", 10)

    results = settle_deferred(
        {3: T0 + timedelta(seconds=5)},
        drive=drive,
        until=T0 + timedelta(seconds=60),
        workers=2,
        now=clock.now,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    assert driven == [(3, T0 + timedelta(seconds=5))]
    assert [r.state for r in results] == ["sent"]


def test_chunks_that_never_settle_stop_at_the_bound() -> None:
    clock = Clock()
    looks: list[datetime] = []

    def drive(index: int) -> ChunkResult:
        looks.append(clock.now())
        clock.sleep(3)  # a look that takes longer than the chunk's next due time
        return ChunkResult(index, "in_doubt", 10, deferred_until=clock.now() - timedelta(seconds=1))

    results = settle_deferred(
        {0: T0},
        drive=drive,
        until=T0 + timedelta(seconds=20),
        workers=1,
        now=clock.now,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    assert looks and max(looks) <= T0 + timedelta(seconds=20)
    assert results[0].deferred_until is not None  # still in doubt, for a rerun or the follow-up


def test_a_chunk_due_after_the_bound_is_left_in_doubt_without_waiting() -> None:
    clock = Clock()
    said: list[str] = []
    results = settle_deferred(
        {1: T0 + timedelta(hours=30)},  # a scheduled slot tomorrow
        drive=lambda i: ChunkResult(i, "sent", 1),
        until=T0 + timedelta(minutes=15),
        workers=1,
        now=clock.now,
        sleep=clock.sleep,
        say=said.append,
    )
    assert results == [] and clock.now() == T0 and said == []


def test_a_stop_ends_the_settle_phase() -> None:
    clock = Clock()
    results = settle_deferred(
        {0: T0, 1: T0},
        drive=lambda i: ChunkResult(i, "pending", 1, stop_campaign="the gateway refused the key"),
        until=T0 + timedelta(minutes=15),
        workers=1,
        now=clock.now,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    assert results and results[0].stop_campaign
