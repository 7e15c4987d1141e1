"""The never-text store: nobody who said no (STOP, an opposition list, an erasure) is ever
texted, whatever a run is given; only keyed hashes are kept; resumes text nobody removed.

Store tests run on SQLite, PostgreSQL and MariaDB (the ledger fixture of ``test_ledger``); the
campaign tests run the real flow against the simulator over HTTP.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import PLAN_CREDITS as CREDITS
from helpers import PLAN_NOW as NOW
from helpers import cancel_chunk, identity, mobiles, start_cli, summary_of, texted, write_csv
from helpers import cleaned_rows as _cleaned
from helpers import plan_request as _request
from helpers import run_flow as run
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from flows.erase_person import erase_person
from flows.parameters import Limits
from flows.survey_campaign import RecipientSource, send_survey_campaign
from tasks import ledger as lg
from tasks import plan as pl
from tasks import privacy as pv
from tasks import row_columns as cols
from tasks import rows_file, runtime
from tasks.nevertext import NeverText, Origin, digester
from tasks.numbers import masking
from tasks.outcomes import ChunkState
from tasks.steps.prepare import write_plan


@pytest.fixture(autouse=True)
def _own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the pseudonym key file and the data folder go here


def forms(e164: str) -> list[str]:
    """How a French number may sit in a database: E.164, digits, national, bare."""
    digits = e164.lstrip("+")
    return [e164, digits, "0" + digits[2:], digits[2:]]


# -- the hash ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(600_000_000, 799_999_999), min_size=2, max_size=20, unique=True),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
def test_a_digest_recognises_a_number_under_its_key_only(
    nsns: list[int], key: bytes, other: bytes
) -> None:
    numbers = [f"+33{n}" for n in nsns]
    digest = digester(key)
    found = [digest(n) for n in numbers]
    assert len(set(found)) == len(numbers)  # two people never share one
    assert found == [digester(key)(n) for n in numbers]  # the same key recognises them again
    for n, d in zip(numbers, found, strict=True):
        assert not any(form in d for form in forms(n))
        assert len(d) == 20 and int(d, 16) >= 0
        if other != key:
            assert digester(other)(n) != d


# -- the store, on three databases ------------------------------------------------------------


def test_each_source_is_kept_and_new_people_are_counted(ledger: lg.Ledger) -> None:
    store = NeverText(ledger)
    people = mobiles(5)
    assert store.add(people[:3], Origin.gateway, "STOP list") == 3
    assert store.add(people[1:], Origin.erasure, "erased on request") == 2  # two new people
    assert store.add(people[1:], Origin.erasure) == 0  # already there from that source
    assert store.counts() == {"gateway_stop": 3, "erasure": 4, "people": 5}
    assert store.among([*people, "+33699999999"]) == set(people)
    sources = {e.source for e in store.entries_of(people[1])}
    assert sources == {"gateway_stop", "erasure"}


def test_no_full_number_reaches_the_database_bytes(ledger: lg.Ledger) -> None:
    people = mobiles(300, start=4_242_000)
    NeverText(ledger).add(people, Origin.imported, "opposition list")
    raw = database_bytes(ledger, "never_text")
    assert raw, "the table's bytes were not found"
    hits = [f for n in people for f in forms(n)[:3] if f.encode() in raw]
    assert not hits, hits[:3]


def database_bytes(led: lg.Ledger, table: str) -> bytes:
    """What the database keeps on disk for ``table`` (a SQLite file and its journal)."""
    dialect = led.engine.dialect.name
    if dialect == "sqlite":
        base = Path(led.url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in base.parent.glob(base.name + "*"))
    from sqlalchemy import text

    with led.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if dialect == "postgresql":
            conn.execute(text("CHECKPOINT"))
            home = conn.execute(text("SHOW data_directory")).scalar()
            rel = conn.execute(text(f"SELECT pg_relation_filepath('{table}')")).scalar()
            files = [Path(str(home)) / str(rel)]
        else:
            conn.execute(text(f"FLUSH TABLES {table} FOR EXPORT"))
            conn.execute(text("UNLOCK TABLES"))
            home = conn.execute(text("SELECT @@datadir")).scalar()
            name = conn.execute(text("SELECT DATABASE()")).scalar()
            files = list((Path(str(home)) / str(name)).glob(f"{table}.*"))
    if not all(f.exists() for f in files):
        pytest.skip("the database's files are not readable from here")
    return b"".join(f.read_bytes() for f in files)


def test_another_key_is_refused_rather_than_recognising_nobody(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    NeverText(lg.Ledger(url, pseudonym_key=os.urandom(32))).add(mobiles(1), Origin.manual)
    other = NeverText(lg.Ledger(url, pseudonym_key=os.urandom(32)))
    with pytest.raises(lg.PseudonymKeyError, match="SURVEY_PSEUDONYM_KEY"):
        other.among(mobiles(1))


def test_a_lock_is_held_by_one_holder_at_a_time(ledger: lg.Ledger) -> None:
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with ledger.lock("report c1"):
            held.set()
            time.sleep(0.4)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    with ledger.lock("report c1"):
        order.append("second in")
    with ledger.lock("report c2"):  # another name is another lock
        order.append("other")
    thread.join()
    assert order == ["first out", "second in", "other"]


# -- pure rules of a resume -------------------------------------------------------------------


def chunk(index: int, state: str, numbers: list[str]) -> lg.ChunkRow:
    return replace(cancel_chunk(state, numbers=tuple(numbers)), chunk_index=index)


def test_unsent_chunks_lose_opted_out_and_removed_numbers_sent_ones_keep_theirs() -> None:
    a, b, c, d, e = mobiles(5)
    existing = [
        chunk(0, ChunkState.sent, [a, b]),
        chunk(1, ChunkState.pending, [c, d]),
        chunk(2, ChunkState.failed, [e]),
        chunk(3, ChunkState.in_doubt, [b, d]),  # may have landed: untouched
    ]
    rows = pd.DataFrame({cols.E164: [a, c, e, None]})  # b and d left the input
    why = pl.withdrawals(existing, rows, never={a, e})
    assert why == {d: lg.NOT_IN_INPUT, e: lg.OPTED_OUT_SINCE}
    after = pl.without(existing, why)
    assert [x.numbers for x in after] == [(a, b), (c,), (), (b, d)]
    assert after[1].refused == {d: lg.NOT_IN_INPUT} and after[2].refused == {e: lg.OPTED_OUT_SINCE}
    assert pl.withdrawals([chunk(0, ChunkState.sent, [a])], rows, never={a}) == {}


def test_who_left_the_input_is_withdrawn_and_planned_again_once_back(tmp_path: Path) -> None:
    led = lg.Ledger(f"sqlite:///{tmp_path}/ledger.sqlite", pseudonym_key=os.urandom(32))
    three = ["06 12 34 56 78", "07 81 23 45 67", "06 98 76 54 32"]
    resume = _request(resume_changed_input=True)
    write_plan(led, _cleaned(three), CREDITS, _request(), NOW)
    write_plan(led, _cleaned(three[:2]), CREDITS, resume, NOW)
    planned = {n for c in led.chunks("c1") for n in c.numbers}
    assert planned == {"+33612345678", "+33781234567"}  # nothing sent yet: the third is out
    write_plan(led, _cleaned(three), CREDITS, resume, NOW)
    planned = {n for c in led.chunks("c1") for n in c.numbers}
    assert planned == {"+33612345678", "+33781234567", "+33698765432"}  # back, planned again
    assert sum(c.size for c in led.chunks("c1")) == 3  # nobody twice


# -- campaigns --------------------------------------------------------------------------------


def store_of(campaign_env: Path) -> NeverText:
    return NeverText(runtime.open_ledger(os.environ["SURVEY_LEDGER_URL"]))


def test_an_erased_person_is_not_texted_by_a_run_that_names_its_own_list(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = mobiles(12)
    assert erase_person(phone=SecretStr("06 10 00 00 04"), return_state=True).is_completed()
    simulator.state.add_stop(people[5])
    own = campaign_env / "company-list.csv"
    own.write_text("telephone\n06 10 00 00 08\n", encoding="utf-8")
    other = campaign_env / "worker-list.csv"  # the worker's own, as SURVEY_SUPPRESSION_LIST
    other.write_text("phone\n+33610000009\n", encoding="utf-8")
    monkeypatch.setenv("SURVEY_SUPPRESSION_LIST", str(other))
    summary = run(write_csv(campaign_env / "r.csv", people), suppression_list=str(own))
    identity(summary)
    blocked = {people[4], people[5], people[8], people[9]}
    assert summary["rejected"] == {"opted_out": 4}
    assert set(texted(simulator)) == set(people) - blocked
    # what the run was given stays in the store for every later run, of any worker
    assert store_of(campaign_env).among(people) == blocked
    monkeypatch.delenv("SURVEY_SUPPRESSION_LIST")
    again = run(
        write_csv(campaign_env / "r2.csv", people),
        campaign_id="no-list-named",
        limits=Limits(frequency_cap_days=0),
    )
    assert again["rejected"] == {"opted_out": 4} and again["sent"] == 8


def test_the_clear_list_of_earlier_versions_is_imported_once_then_removed(
    campaign_env: Path, simulator: Any
) -> None:
    people = mobiles(6)
    legacy = campaign_env / "data" / "state" / "suppression.csv"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("phone\n+33610000001\n06 10 00 00 02\n", encoding="utf-8")
    summary = run(write_csv(campaign_env / "r.csv", people))
    assert summary["rejected"] == {"opted_out": 2}
    assert not legacy.exists()  # full numbers no longer kept in clear
    assert store_of(campaign_env).counts() == {"import": 2, "people": 2}


def test_a_resume_on_a_shortened_list_texts_nobody_who_was_removed(
    campaign_env: Path, simulator: Any
) -> None:
    people = mobiles(45)
    # The first run sends nothing: the gateway refuses every chunk for credits (code 11).
    simulator.state.add_canned(
        "sondage/to/send", {"success": False, "code": 11, "message": "Crédits insuffisants"}
    )
    state = send_survey_campaign(
        survey_id="satisfaction-q4",
        recipients=RecipientSource(path=str(write_csv(campaign_env / "r.csv", people))),
        campaign_id="shorter",
        return_state=True,
    )
    first = summary_of(state)
    assert state.name == "Incomplete" and first["sent"] == 0 and first["failed"] == 45
    simulator.state.clear_canned()
    kept = people[:25]
    simulator.state.add_stop(kept[3])  # and one of those left said STOP meanwhile
    resumed = run(
        write_csv(campaign_env / "r.csv", kept), campaign_id="shorter", resume_changed_input=True
    )
    identity(resumed)
    assert set(texted(simulator)) == set(kept) - {kept[3]}
    assert resumed["loaded"] == 25 and resumed["sent"] == 24
    assert resumed["rejected"] == {"opted_out": 1}
    assert resumed["nb_sms"] == resumed["sent"]


def test_a_resume_counts_everyone_the_campaign_texted_across_its_runs(
    campaign_env: Path, simulator: Any
) -> None:
    people = mobiles(45)
    first = run(write_csv(campaign_env / "r.csv", people), campaign_id="across")
    assert first["sent"] == 45
    shorter = people[:20] + mobiles(5, start=900)
    resumed = run(
        write_csv(campaign_env / "r.csv", shorter), campaign_id="across", resume_changed_input=True
    )
    identity(resumed)
    assert Counter(texted(simulator)) == Counter(people + shorter[20:])  # nobody twice
    assert resumed["sent"] == 50 == resumed["nb_sms"]  # as the gateway counted
    assert resumed["loaded"] == 50


# -- erasure --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["object", "str", "string[python]", "int64"])
def test_erasure_finds_the_person_in_any_column_of_a_rows_file(
    campaign_env: Path, dtype: str
) -> None:
    person = "+33612345678"
    note = [612345678, 611111111] if dtype == "int64" else ["rappeler le 06 12 34 56 78", "-"]
    frame = pd.DataFrame({"nom": ["A", "B"], "note": pd.Series(note).astype(dtype)})
    frame[cols.E164] = ["+33611111111", "+33622222222"]
    path = Path(rows_file.save_rows(frame, "c1"))
    counts = pv.erase_from_file(path, masking.person_pattern(person), masking.scrubber(person))
    assert counts.rows_removed == 1
    left = rows_file.load_rows(str(path))
    assert list(left["nom"]) == ["B"]
    assert not any(f in path.read_bytes().decode("latin-1") for f in forms(person)[2:3])


# -- the command line ---------------------------------------------------------------------


def test_the_command_imports_checks_and_exports_without_a_number(
    campaign_env: Path, env: dict[str, str]
) -> None:
    listed = campaign_env / "opposition.csv"
    listed.write_text("numero\n06 10 00 00 01\n+33 6 10 00 00 02\n", encoding="utf-8")

    def cli(*args: str) -> tuple[int, str, str]:
        done = start_cli("flows.never_text", campaign_env, *args, **env)
        out, err = done.communicate(timeout=120)
        return done.returncode, out, err

    code, out, _ = cli("import", str(listed), "--reason", "opposition 2026")
    assert code == 0 and json.loads(out.splitlines()[-1])["added"] == 2
    code, out, _ = cli("check", "--phone", "0610000002")
    found = json.loads(out.splitlines()[-1])
    assert found["never_text"] and found["sources"][0]["reason"] == "opposition 2026"
    assert "0610000002" not in out and "+33610000002" not in out
    code, out, _ = cli("check", "--phone", "0610000003")
    assert json.loads(out.splitlines()[-1])["never_text"] is False
    code, out, _ = cli("export", str(campaign_env / "audit.csv"))
    audit = (campaign_env / "audit.csv").read_text(encoding="utf-8")
    assert code == 0 and audit.count("\n") == 3
    assert not any(f in audit for n in mobiles(3) for f in forms(n)[:3])
    code, _, err = cli("forget-import", "--reason", "opposition 2026")
    assert code == 2 and "--yes" in err  # a usage error: nothing was done
    bad = campaign_env / "bad.csv"
    bad.write_text("secret=hunter2\n", encoding="utf-8")
    code, _, err = cli("import", str(bad))
    assert code == 1 and "hunter2" not in err and err.count("\n") == 1
