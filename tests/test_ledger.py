"""The send ledger's promises, on SQLite and on the real PostgreSQL and MariaDB."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import ledger as lg
from tasks.outcomes import ChunkState


def plan(n_chunks: int, size: int = 3) -> list[lg.ChunkPlan]:
    return [
        lg.ChunkPlan(i, "FR", None, tuple(f"+3361{i:03d}{j:04d}" for j in range(size)))
        for i in range(n_chunks)
    ]


def test_a_plan_is_written_once(ledger: lg.Ledger) -> None:
    assert ledger.create_plan("c1", "survey", plan(3))
    assert not ledger.create_plan("c1", "survey", plan(5))  # a concurrent first run lost
    assert [c.chunk_index for c in ledger.chunks("c1")] == [0, 1, 2]
    tags = {c.tag for c in ledger.chunks("c1")}
    assert len(tags) == 3 and all(len(t) <= 20 and t == t.lower() and " " not in t for t in tags)


def test_only_one_of_many_concurrent_claimants_sends(ledger: lg.Ledger) -> None:
    ledger.create_plan("race", "survey", plan(1))

    def claim(i: int) -> str:
        return ledger.claim("race", 0, f"{lg.owner_token('x')}-{i}", cost_per_recipient=0.05).action

    with ThreadPoolExecutor(16) as pool:
        actions = list(pool.map(claim, range(32)))
    assert actions.count("send") == 1
    assert set(actions) <= {"send", "busy"}


def test_a_halted_campaign_sends_no_further_chunk(ledger: lg.Ledger) -> None:
    ledger.create_plan("halted", "survey", plan(3))
    owner = lg.owner_token("h")
    assert ledger.claim("halted", 0, owner, cost_per_recipient=0.05).action == "send"
    ledger.halt("halted", "insufficient_credits")
    refused = ledger.claim("halted", 1, owner, cost_per_recipient=0.05)
    assert refused.action == "skip"
    assert ledger.chunk("halted", 1).state == ChunkState.failed
    assert ledger.chunk("halted", 1).reason == "insufficient_credits"
    # the chunk claimed before the halt may have landed: it is not failed but reconciled
    assert ledger.chunk("halted", 0).state == ChunkState.sending
    assert ledger.claim("halted", 0, owner, cost_per_recipient=0.05).action == "reconcile"


def test_a_failed_chunk_is_sent_again_by_a_rerun(ledger: lg.Ledger) -> None:
    ledger.create_plan("again", "survey", plan(1))
    first = ledger.claim("again", 0, lg.owner_token("a"), cost_per_recipient=0.05)
    ledger.mark_failed("again", 0, "gateway_unavailable", "503")
    second = ledger.claim("again", 0, lg.owner_token("b"), cost_per_recipient=0.05)
    assert (first.action, second.action) == ("send", "send")
    assert second.chunk.attempts == 2 and second.chunk.reason is None
    assert second.chunk.numbers == first.chunk.numbers


def test_claims_in_two_processes_never_both_send(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.sqlite"
    led = lg.Ledger(url)
    led.create_plan("procs", "survey", plan(200, size=1))
    script = (
        "import sys; from tasks import ledger as lg\n"
        "led = lg.Ledger(sys.argv[1])\n"
        "won = [i for i in range(200) if led.claim('procs', i, lg.owner_token(sys.argv[2]),"
        " cost_per_recipient=0.05).action == 'send']\n"
        "print(' '.join(map(str, won)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, name],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for name in ("a", "b")
    ]
    won = [set(map(int, p.communicate(timeout=120)[0].split())) for p in procs]
    assert not won[0] & won[1]
    assert won[0] | won[1] == set(range(200))


def test_a_dead_claimant_leaves_the_chunk_to_be_reconciled(ledger: lg.Ledger) -> None:
    ledger.create_plan("crash", "survey", plan(1))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    ghost = f"{socket.gethostname()}:{dead.stdout.strip()}:gone"
    assert ledger.claim("crash", 0, ghost, cost_per_recipient=0.05).action == "send"
    # its process is gone: the next run must look the tag up before resending
    assert ledger.claim("crash", 0, lg.owner_token("next"), cost_per_recipient=0.05).action == (
        "reconcile"
    )


def test_a_claim_on_another_host_waits_for_its_lease(tmp_path: Path) -> None:
    led = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite", lease=timedelta(seconds=0))
    led.create_plan("lease", "survey", plan(1))
    assert led.claim("lease", 0, "other-host:1:x", cost_per_recipient=0.05).action == "send"
    assert led.claim("lease", 0, lg.owner_token("me"), cost_per_recipient=0.05).action == (
        "reconcile"
    )
    longer = lg.Ledger(f"sqlite:///{tmp_path}/l2.sqlite", lease=timedelta(minutes=5))
    longer.create_plan("lease", "survey", plan(1))
    assert longer.claim("lease", 0, "other-host:1:x", cost_per_recipient=0.05).action == "send"
    assert longer.claim("lease", 0, lg.owner_token("me"), cost_per_recipient=0.05).action == "busy"


def test_sent_chunks_are_skipped_and_recorded_per_recipient(ledger: lg.Ledger) -> None:
    ledger.create_plan("done", "survey", plan(2))
    owner = lg.owner_token("r")
    assert ledger.claim("done", 0, owner, cost_per_recipient=0.05).action == "send"
    now = datetime.now(UTC)
    ledger.mark_sent("done", 0, message_id=7, nb_sms=3, cost=0.15, currency="EUR", texted_at=now)
    ledger.mark_sent("done", 0, message_id=7, nb_sms=3, cost=0.15, currency="EUR", texted_at=now)
    assert ledger.claim("done", 0, lg.owner_token("r2"), cost_per_recipient=0.05).action == "skip"
    numbers = ledger.chunk("done", 0).numbers
    since = now - timedelta(days=1)
    assert ledger.recently_texted(numbers, since=since, exclude_campaign="other") == set(numbers)
    assert ledger.recently_texted(numbers, since=since, exclude_campaign="done") == set()


def test_budget_uses_observed_price_once_known(ledger: lg.Ledger) -> None:
    ledger.create_plan("price", "survey", plan(4, size=10))
    owner = lg.owner_token("r")
    assert ledger.claim("price", 0, owner, cost_per_recipient=0.01, max_cost=2.0).action == "send"
    # the gateway says a recipient costs 0.08, not the 0.01 estimated
    ledger.mark_sent(
        "price", 0, message_id=1, nb_sms=10, cost=0.8, currency="EUR", texted_at=datetime.now(UTC)
    )
    assert ledger.claim("price", 1, owner, cost_per_recipient=0.01, max_cost=2.0).action == "send"
    refused = ledger.claim("price", 2, owner, cost_per_recipient=0.01, max_cost=2.0)
    assert refused.action == "skip" and refused.chunk.reason == "budget_exceeded"


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=12),
    price=st.floats(min_value=0.01, max_value=0.2),
    cap=st.floats(min_value=0.0, max_value=20.0),
)
def test_claims_never_commit_more_than_the_cap(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], price: float, cap: float
) -> None:
    led = lg.Ledger(f"sqlite:///{tmp_path_factory.mktemp('cap')}/l.sqlite")
    chunks = [
        lg.ChunkPlan(i, "FR", None, tuple(f"+3361{i:03d}{j:04d}" for j in range(n)))
        for i, n in enumerate(sizes)
    ]
    led.create_plan("cap", "survey", chunks)
    owner = lg.owner_token("r")
    committed = 0.0
    for c in chunks:
        if led.claim(
            "cap", c.chunk_index, owner, cost_per_recipient=price, max_cost=cap
        ).action == ("send"):
            committed += len(c.numbers) * price
    assert committed <= cap + 1e-6
    led.close()


def test_the_frequency_cap_compares_instants_whatever_the_time_zone(ledger: lg.Ledger) -> None:
    from zoneinfo import ZoneInfo

    ledger.create_plan("tz", "survey", plan(1, size=1))
    paris = datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))  # 07:00 UTC
    ledger.mark_sent("tz", 0, message_id=1, nb_sms=1, cost=0.05, currency="EUR", texted_at=paris)
    (number,) = ledger.chunk("tz", 0).numbers
    just_before = datetime(2026, 7, 1, 6, 59, tzinfo=UTC)
    just_after = datetime(2026, 7, 1, 7, 1, tzinfo=UTC)
    assert ledger.recently_texted([number], since=just_before, exclude_campaign="x") == {number}
    assert ledger.recently_texted([number], since=just_after, exclude_campaign="x") == set()
    assert ledger.campaigns_texted_since(just_before) == ["tz"]


# -- the claim decision's own tables are in test_ledger_model.py (no database needed) -----------

A = lg.ClaimAction


def _db_error(kind: type[Exception], text: str, invalidated: bool = False) -> Exception:
    from sqlalchemy.exc import DBAPIError

    error = kind("SELECT 1", {}, Exception(text))
    if isinstance(error, DBAPIError):
        error.connection_invalidated = invalidated
    return error


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        ("operational: connection refused", True),
        ("operational: server closed the connection unexpectedly", True),
        ("operational: database is locked", True),
        ("interface: connection already closed", True),
        ("dbapi invalidated", True),
        ("operational: attempt to write a readonly database", False),
        ("operational: no such table: chunks", False),
        ("database: file is not a database", False),
        ("integrity: duplicate key", False),
        ("programming: syntax error", False),
        ("value error", False),
    ],
)
def test_is_outage_table(error: str, outage: bool) -> None:
    from sqlalchemy import exc

    kind, _, text = error.partition(": ")
    built: Exception = {
        "operational": lambda: _db_error(exc.OperationalError, text),
        "interface": lambda: _db_error(exc.InterfaceError, text),
        "dbapi invalidated": lambda: _db_error(exc.DBAPIError, "gone", invalidated=True),
        "database": lambda: _db_error(exc.DatabaseError, text),
        "integrity": lambda: _db_error(exc.IntegrityError, text),
        "programming": lambda: _db_error(exc.ProgrammingError, text),
        "value error": lambda: ValueError("x"),
    }[kind]()
    assert lg.is_outage(built) is outage


def test_a_retried_claim_whose_commit_was_lost_is_recognised_as_ours(ledger: lg.Ledger) -> None:
    ledger.create_plan("token", "survey", plan(1))
    owner = lg.owner_token("t")
    kwargs = {
        "cost_per_recipient": 0.05,
        "max_cost": 10.0,  # the locked path
        "credits": None,
        "rules": (),
        "ends_within": timedelta(minutes=2),
    }
    first = ledger._claim("token", 0, owner, "tok-1", **kwargs)  # type: ignore[arg-type]
    again = ledger._claim("token", 0, owner, "tok-1", **kwargs)  # type: ignore[arg-type]
    other = ledger._claim("token", 0, owner, "tok-2", **kwargs)  # type: ignore[arg-type]
    assert (first.action, again.action, other.action) == (A.SEND, A.SEND, A.RECONCILE)


def test_the_cap_is_reserved_at_claim_and_given_back_when_nothing_landed(
    ledger: lg.Ledger,
) -> None:
    shared = ("+33611000001", "+33611000002")
    ledger.create_plan("first", "s", [lg.ChunkPlan(0, "FR", None, (*shared, "+33611000003"))])
    ledger.create_plan("second", "s", [lg.ChunkPlan(0, "FR", None, (*shared, "+33611000004"))])
    one = ledger.claim("first", 0, lg.owner_token("a"), cost_per_recipient=0.05, cap_days=30)
    assert one.chunk.numbers == (*shared, "+33611000003") and one.reserved
    # the first campaign has not even sent yet: its reservation holds the shared people
    two = ledger.claim("second", 0, lg.owner_token("b"), cost_per_recipient=0.05, cap_days=30)
    assert two.chunk.numbers == ("+33611000004",)
    assert set(two.chunk.held) == set(shared) and set(two.chunk.held.values()) == {"cap:first"}
    # the first campaign's chunk certainly did not land: the people are free again
    ledger.mark_failed("first", 0, "gateway_error", "code 9: survey unknown")
    since = datetime.now(UTC) - timedelta(days=1)
    assert ledger.recently_texted(shared, since=since, exclude_campaign="third") == set()
    assert ledger.recently_texted(["+33611000004"], since=since, exclude_campaign="x") == {
        "+33611000004"
    }


def test_an_old_ledger_gets_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the chunks table as the previous version created it
        db.execute(
            "CREATE TABLE chunks (campaign_id VARCHAR(120), chunk_index INTEGER, tag VARCHAR(20),"
            " territory VARCHAR(16), slot VARCHAR(40), numbers TEXT, refused TEXT, size INTEGER,"
            " state VARCHAR(16), reason VARCHAR(64), detail TEXT, owner VARCHAR(200),"
            " claimed_at DATETIME, reserved_cost FLOAT, message_id BIGINT, nb_sms INTEGER,"
            " cost FLOAT, currency VARCHAR(8), attempts INTEGER, updated_at DATETIME,"
            " PRIMARY KEY (campaign_id, chunk_index))"
        )
        db.execute(
            "INSERT INTO chunks VALUES ('old', 0, 'abc-000000', 'FR', NULL, '+33611000001', NULL,"
            " 1, 'in_doubt', 'in_doubt', 'lost', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1,"
            " '2026-11-30 10:00:00')"
        )
    led = lg.Ledger(f"sqlite:///{path}")
    (row,) = led.chunks("old")
    assert row.state == ChunkState.in_doubt and row.doubt_from is None and row.held == {}
    led.close()


# -- the key handed in, and what a failed statement says ----------------------------------------


def test_the_key_is_asked_for_once_and_only_when_needed(tmp_path: Path) -> None:
    asked: list[int] = []

    def key() -> bytes:
        asked.append(1)
        return b"k" * 32

    led = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite", pseudonym_key=key)
    led.create_plan("k", "survey", plan(1))
    assert led.claim("k", 0, lg.owner_token("k"), cost_per_recipient=0.05, cap_days=30).reserved
    assert asked == []  # a ledger that never purged needs no key
    led.erase_number("+33610000000", str)
    led.erase_number("+33610000001", str)
    assert asked == [1]
    led.close()


def test_a_ledger_handed_no_key_says_so_when_it_needs_one(tmp_path: Path) -> None:
    led = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite")
    assert led.create_plan("k", "survey", plan(1))  # no key needed for this
    with pytest.raises(lg.PseudonymKeyError, match="no pseudonym key was handed"):
        led.erase_number("+33610000000", str)
    led.close()


def test_a_failed_statement_never_echoes_its_parameters(ledger: lg.Ledger) -> None:
    """SQLAlchemy leaves the bound values (phone numbers) out of its message; what the database
    itself quotes (PostgreSQL's failing row) is masked by the operator's one line instead."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from tasks.ledger.schema import texted

    row = {"e164": "+33612345678", "campaign_id": "x", "texted_at": None}  # NOT NULL refused
    with pytest.raises(IntegrityError) as caught, ledger.engine.begin() as conn:
        conn.execute(insert(texted), [row])
    said = str(caught.value)
    assert "[SQL parameters hidden" in said and "[parameters:" not in said
