"""A campaign's sample in the ledger (tasks.ledger.draws): a resumed campaign keeps its draw.

On SQLite, PostgreSQL and MariaDB (the ``ledger`` fixture): the draw comes back as saved, the
first of two concurrent first runs wins and the other uses its draw, only keyed values of the
drawn numbers are kept, an erased person and a purged campaign leave it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from helpers import fresh_database, mobiles
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from tcp_proxy import TcpProxy
from test_never_text import database_bytes, forms

from tasks import ledger as lg
from tasks.ledger.draws import Draws, DrawUnreadable, SaveEnding, drawn_mask, save_ending
from tasks.sample import SampleSpec, draw


@pytest.fixture(autouse=True)
def _own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the pseudonym key file goes here


def a_draw(people: list[str], size: int, seed: int = 11) -> tuple[dict, list[str]]:
    cells = ["FR" if i % 3 else "974" for i in range(len(people))]
    d = draw(cells, [True] * len(people), SampleSpec(size=size, quota_by="territory"), seed, people)
    return d.record, [people[i] for i in d.drawn]


def test_a_saved_draw_comes_back_as_it_was(ledger: lg.Ledger) -> None:
    people = mobiles(60)
    record, chosen = a_draw(people, 20)
    draws = Draws(ledger)
    assert draws.load("c1") is None
    assert draws.save("c1", record, chosen) is True
    found = draws.load("c1")
    assert found is not None
    back, drawn = found
    assert back == record
    assert len(drawn) == 20 and not drawn.purged
    assert drawn.members(people) == set(chosen)
    assert chosen[0] in drawn and "+33699999999" not in drawn and "h0123" not in drawn
    assert drawn_mask(drawn, people).tolist() == [p in chosen for p in people]
    assert draws.load("c2") is None  # another campaign has no draw


def test_a_resume_in_another_process_recognises_the_same_people(ledger_url: str) -> None:
    key = os.urandom(32)
    people = mobiles(30)
    record, chosen = a_draw(people, 10)
    first = lg.Ledger(ledger_url, pseudonym_key=key)
    assert Draws(first).save("c1", record, chosen)
    first.close()
    later = lg.Ledger(ledger_url, pseudonym_key=key)
    found = Draws(later).load("c1")
    assert found is not None and found[1].members(people) == set(chosen)
    stranger = lg.Ledger(ledger_url, pseudonym_key=os.urandom(32))
    with pytest.raises(lg.PseudonymKeyError):  # another key would recognise nobody: refused
        Draws(stranger).load("c1")
    later.close()
    stranger.close()


def test_the_first_writer_wins_and_the_other_run_uses_its_draw(ledger: lg.Ledger) -> None:
    people = mobiles(80)
    tries = [a_draw(people, 25, seed=s) for s in range(6)]
    barrier = threading.Barrier(len(tries))
    results: list[bool] = [False] * len(tries)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = Draws(ledger).save("c1", *tries[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    winner = tries[results.index(True)]
    found = Draws(ledger).load("c1")
    assert found is not None
    assert found[0] == winner[0] and found[1].members(people) == set(winner[1])
    assert Draws(ledger).save("c1", *tries[0]) is False  # a rerun never replaces it


def test_an_empty_draw_is_a_draw(ledger: lg.Ledger) -> None:
    record, _ = a_draw([], 10)
    assert Draws(ledger).save("c1", record, []) is True
    found = Draws(ledger).load("c1")
    assert found is not None and len(found[1]) == 0 and found[1].members(mobiles(3)) == set()


def test_a_draw_holds_numbers_only(ledger: lg.Ledger) -> None:
    with pytest.raises(ValueError, match="E.164"):
        Draws(ledger).save("c1", {}, ["0612345678"])
    assert Draws(ledger).load("c1") is None  # nothing half written


def test_no_drawn_number_reaches_the_database_bytes(ledger: lg.Ledger) -> None:
    people = mobiles(300, start=5_353_000)
    Draws(ledger).save("c1", {"drawn": 300}, people)
    raw = database_bytes(ledger, "sample_drawn")
    assert raw, "the table's bytes were not found"
    hits = [f for n in people for f in forms(n)[:3] if f.encode() in raw]
    assert not hits, hits[:3]


def test_an_erased_person_leaves_every_draw(ledger: lg.Ledger) -> None:
    people = mobiles(10)
    draws = Draws(ledger)
    draws.save("c1", {"drawn": 10}, people)
    draws.save("c2", {"drawn": 5}, people[:5])
    assert draws.forget([people[0], "+33699999999"]) == 2
    for cid in ("c1", "c2"):
        found = draws.load(cid)
        assert found is not None and people[0] not in found[1] and people[1] in found[1]


def test_a_purged_campaign_keeps_its_figures_not_its_people(ledger: lg.Ledger) -> None:
    people = mobiles(10)
    record, chosen = a_draw(people, 4)
    draws = Draws(ledger)
    draws.save("c1", record, chosen)
    draws.save("c2", record, chosen)
    assert draws.forget_campaign("c1") == 4
    found = draws.load("c1")
    assert found is not None
    assert found[0] == record and found[1].purged and found[1].members(people) == set()
    other = draws.load("c2")
    assert other is not None and other[1].members(people) == set(chosen)


def test_an_unreadable_record_stops_in_one_french_line(ledger: lg.Ledger) -> None:
    Draws(ledger).save("c1", {"drawn": 0}, [])
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE sample_draws SET record = 'not json' WHERE campaign_id = 'c1'"))
    with pytest.raises(DrawUnreadable) as info:
        Draws(ledger).load("c1")
    assert "illisible" in str(info.value) and "\n" not in str(info.value)


class _Invalidated(OperationalError):
    connection_invalidated = True


@pytest.mark.parametrize(
    ("error", "ending"),
    [
        (None, SaveEnding.saved),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), SaveEnding.taken),
        (OperationalError("INSERT", {}, Exception("server closed the connection")), "retry"),
        (OperationalError("INSERT", {}, Exception("timeout expired")), SaveEnding.retry),
        (_Invalidated("COMMIT", {}, Exception("connection lost")), SaveEnding.retry),
        (OperationalError("INSERT", {}, Exception("attempt to write a readonly database")), "fail"),
        (OperationalError("INSERT", {}, Exception("no such table: sample_draws")), "fail"),
        (ProgrammingError("INSERT", {}, Exception("syntax error")), SaveEnding.fail),
        (ValueError("garbage"), SaveEnding.fail),
    ],
)
def test_every_way_a_save_can_end_is_decided(error: BaseException | None, ending: str) -> None:
    assert save_ending(error) == ending


def test_a_save_rides_through_a_ledger_outage(tmp_path: Path) -> None:
    gen = fresh_database("postgresql", tmp_path)
    url = next(gen)
    try:
        with TcpProxy("127.0.0.1", 5432) as proxy:
            led = lg.Ledger(
                url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
                pseudonym_key=os.urandom(32),
                outage=30.0,
            )
            people = mobiles(40)
            record, chosen = a_draw(people, 12)
            draws = Draws(led)
            proxy.cut()
            result: list[bool] = []
            saver = threading.Thread(target=lambda: result.append(draws.save("c1", record, chosen)))
            saver.start()
            time.sleep(1.5)
            assert not result  # still waiting for the ledger
            proxy.restore()
            saver.join(timeout=30)
            assert result == [True]
            found = draws.load("c1")
            assert found is not None and found[1].members(people) == set(chosen)
            led.close()
    finally:
        next(gen, None)
