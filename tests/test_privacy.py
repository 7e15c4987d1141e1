"""Retention and erasure: pseudonyms in the ledger, the purge, and erasing one person.

The flows run through the real Prefect engine against the simulator over HTTP, on a real
ledger (SQLite, and PostgreSQL for the ledger's own part).
"""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import fresh_database, start_cli
from helpers import run_flow as run
from hypothesis import given
from hypothesis import strategies as st

from flows.erase_person import erase_person
from flows.follow_up import follow_up_campaign
from flows.purge_personal_data import main as purge_main
from tasks import ledger as lg
from tasks import runtime
from tasks.nevertext import NeverText
from tasks.numbers import masking
from tasks.outcomes import ChunkState

KEY = bytes(range(32))

# -- pure rules ------------------------------------------------------------------------------


@given(st.from_regex(r"\+33[67][0-9]{8}", fullmatch=True), st.binary(min_size=16, max_size=64))
def test_a_pseudonym_fits_the_ledger_and_is_never_a_number(e164: str, key: bytes) -> None:
    alias = lg.pseudonym(e164, key)
    assert len(alias) == 20 and lg.is_pseudonym(alias) and not alias.startswith("+")
    assert alias == lg.pseudonym(e164, key) and alias != lg.pseudonym(e164, key + b"x")
    assert not lg.is_pseudonym(e164)


SEPARATORS = st.sampled_from(["", " ", ".", "-", "\u00a0", "\u200b"])


@given(
    st.integers(0, 99_999_999),
    st.sampled_from(["+33", "0033", "33", "+33 (0)", "0", ""]),
    SEPARATORS,
    st.sampled_from(["", "tel: ", "Numéro ", '"', ";", "\u200b", "<td>"]),
    st.sampled_from(["", " invalide", '"', ";", "</td>", ","]),
)
def test_a_person_is_found_and_masked_however_the_number_is_written(
    tail: int, prefix: str, sep: str, before: str, after: str
) -> None:
    nsn = f"6{tail:08d}"
    written = prefix + sep.join([nsn[0], *(nsn[i : i + 2] for i in range(1, 9, 2))])
    text = f"{before}{written}{after}"
    masked = masking.scrubber("+33" + nsn)(text)
    assert masked != text and nsn[1:7] not in re.sub(r"\D", "", masked)
    other = f"+33{int(nsn) + 1}"  # another person: left alone
    assert masking.scrubber(other)(text) == text


def test_masking_leaves_decimals_dates_and_ids_alone() -> None:
    text = '{"cost": 0.123456789, "at": "2025-03-01T10:00:00+01:00", "id": 612345678}'
    assert masking.mask_numbers(text) == text
    assert masking.mask_numbers("call 06 12 34 56 78 now") == "call +33 6 •• •• •• 78 now"


# -- the ledger ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


def numbers(n: int) -> tuple[str, ...]:
    return tuple(f"+3361{i:07d}" for i in range(n))


def test_a_purged_campaign_keeps_its_outcomes_and_still_counts_for_the_cap(
    ledger_url: str,
) -> None:
    led = lg.Ledger(ledger_url, pseudonym_key=KEY)
    people = numbers(6)
    plan = [lg.ChunkPlan(0, "FR", None, people[:3]), lg.ChunkPlan(1, "FR", None, people[3:])]
    led.create_plan("old", "s", plan)
    claim = led.claim("old", 0, "me", cost_per_recipient=0.05, cap_days=30)
    led.set_aside("old", 0, {people[2]: f"numéro {people[2]} invalide"})
    at = datetime.now(UTC)
    led.mark_sent("old", 0, message_id=7, nb_sms=2, cost=0.1, currency="EUR", texted_at=at,
                  reserved=claim.reserved)  # fmt: skip
    led.mark_failed("old", 1, "gateway_unavailable", "nothing landed")
    before = {c.chunk_index: c for c in led.chunks("old")}

    later = datetime.now(UTC) + timedelta(seconds=1)
    scan = led.purge_scan(later)
    assert scan.due == ["old"]
    done = led.purge_campaign("old", later, masking.mask_numbers)
    assert done == {"chunks": 2, "numbers": 6, "texted": 2}
    after = {c.chunk_index: c for c in led.chunks("old")}
    assert (after[0].state, after[0].tag, after[0].cost, after[0].nb_sms, after[0].size) == (
        ChunkState.sent, before[0].tag, 0.1, 2, 2,
    )  # fmt: skip
    assert after[1].state == ChunkState.cancelled and after[1].reason == "gateway_unavailable"
    stored = json.dumps([c.__dict__ for c in after.values()], default=str)
    assert not any(n in stored or n[3:] in stored for n in people)
    assert led.purge_scan(later).purged == ["old"]  # idempotent
    assert led.purge_campaign("old", later, masking.mask_numbers) == {
        "chunks": 0, "numbers": 0, "texted": 0,
    }  # fmt: skip

    # Another campaign on the same people within the cap: the sent ones are set aside.
    since = datetime.now(UTC) - timedelta(days=30)
    assert led.recently_texted(people, since=since, exclude_campaign="new") == set(people[:2])
    led.create_plan("new", "s", [lg.ChunkPlan(0, "FR", None, people)])
    claimed = led.claim("new", 0, "me", cost_per_recipient=0.05, cap_days=30)
    assert set(claimed.chunk.held) == set(people[:2])
    # A rerun of the purged campaign that did not re-identify its input plans nobody twice.
    led.extend_plan("old", [lg.ChunkPlan(2, "FR", None, people)])
    assert led.chunk("old", 2).state == ChunkState.cancelled and led.chunk("old", 2).numbers == ()
    assert led.reidentify(led.chunks("old"), people)[0].numbers == people[:2]
    led.close()

    with pytest.raises(lg.PseudonymKeyError, match="not the one"):
        lg.Ledger(ledger_url, pseudonym_key=b"another key, 32 bytes long......").recently_texted(
            people, since=since, exclude_campaign="x"
        )


def test_a_campaign_with_a_chunk_to_settle_is_not_purged(tmp_path: Path) -> None:
    led = lg.Ledger(f"sqlite:///{tmp_path}/l.sqlite", pseudonym_key=KEY)
    led.create_plan("busy", "s", [lg.ChunkPlan(0, "FR", None, numbers(2))])
    led.claim("busy", 0, "me", cost_per_recipient=0.05)
    led.mark_in_doubt("busy", 0, doubt_from=datetime.now(UTC), detail="timeout")
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert led.purge_scan(later).unfinished == ["busy"]
    assert led.purge_campaign("busy", later, masking.mask_numbers) is None
    assert led.chunk("busy", 0).numbers == numbers(2)


def test_the_key_file_is_created_once_private(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv(lg.PSEUDONYM_KEY_ENV, raising=False)
    path = tmp_path / "state" / "pseudonym.key"
    key = runtime.pseudonym_key(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert runtime.pseudonym_key(path) == key
    monkeypatch.setenv(lg.PSEUDONYM_KEY_ENV, "k" * 40)
    assert runtime.pseudonym_key(path) == b"k" * 40


# -- the flows on the simulator --------------------------------------------------------------

HEADER = "id;name;mobile\n"


def write_csv(path: Path, cells: list[str]) -> Path:
    lines = [f"{i};Client {i};{n}" for i, n in enumerate(cells, start=1)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def send(path: Path, campaign_id: str) -> dict[str, Any]:
    return run(path, survey_id="satisfaction", campaign_id=campaign_id)


def accepted(simulator: Any) -> Counter[str]:
    return Counter(simulator.state.accepted_numbers())


def test_purge_then_rerun_sends_nothing_and_the_cap_still_holds(
    campaign_env: Path, simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    people = list(numbers(20))
    cells = [n.replace("+33", "0") for n in people] + ["01 42 68 53 00", people[0]]
    source = write_csv(campaign_env / "r.csv", cells)
    first = send(source, "purge-me")
    assert first["sent"] == 20 and sum(first["rejected"].values()) == 2
    report = campaign_env / "data" / "reports" / "purge-me"
    summary_before = (report / "summary.json").read_text()

    assert purge_main(["--older-than-days", "0"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["campaigns_purged"] == 1 and counts["numbers_pseudonymised"] == 20
    assert counts["files_removed"] >= 2  # the rows file and rejects.csv (and its .xlsx)
    assert not (campaign_env / "data" / "state" / "purge-me").exists()
    assert not (report / "rejects.csv").exists()
    assert (report / "summary.json").read_text() == summary_before
    assert (report / "chunks.csv").exists() and (report / "report.html").exists()
    for path in (campaign_env / "data").rglob("*"):
        if path.is_file() and path.name != "pseudonym.key":
            text = path.read_bytes().decode("latin-1")
            assert not any(n[3:] in text for n in people), path
            assert "42 68 53 00" not in text, path
    led = lg.Ledger(f"sqlite:///{campaign_env}/ledger.sqlite")
    chunk = led.chunks("purge-me")[0]
    assert (
        chunk.state == ChunkState.sent
        and chunk.size == 20
        and all(map(lg.is_pseudonym, chunk.numbers))
    )
    assert purge_main(["--older-than-days", "0"]) == 0  # idempotent
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["campaigns_purged"] == again["files_removed"] == again["files_rewritten"] == 0

    sends = len(simulator.state.sends)
    send(source, "purge-me")  # the same campaign again, the same input: nobody twice
    assert len(simulator.state.sends) == sends and max(accepted(simulator).values()) == 1

    other = send(source, "next-week")  # another campaign within the cap
    assert other["rejected"].get("recently_surveyed") == 20 and other["sent"] == 0
    assert len(simulator.state.sends) == sends


PERSON = "+33612345678"
FORMS = [
    PERSON,
    "0612345678",
    "06 12 34 56 78",
    "06.12.34.56.78",
    "33612345678",
    "612345678",
    "12345678",  # the last 8 digits: every form above contains them
    "12 34 56 78",
    "12.34.56.78",
]


def _texts(path: Path) -> Iterator[tuple[str, str]]:
    raw = path.read_bytes()
    if raw[:2] == b"PK":  # a workbook: its parts are compressed
        with zipfile.ZipFile(path) as book:
            for name in book.namelist():
                yield f"{path}:{name}", book.read(name).decode("utf-8", "replace")
        return
    yield str(path), raw.decode("latin-1")
    yield str(path), raw.decode("utf-8", "replace")


def test_erasing_a_person_leaves_only_a_hash_in_the_never_text_store(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_url = f"sqlite:///{campaign_env}/data/state/ledger.sqlite"
    monkeypatch.setenv("SURVEY_LEDGER_URL", ledger_url)
    others = [f"+3361{i:07d}" for i in range(19)]
    cells = ["06 12 34 56 78", *others, "06.12.34.56.78"]  # the person, then again as a duplicate
    send(write_csv(campaign_env / "r.csv", cells), "erase-me")
    assert follow_up_campaign(campaign_id="erase-me", return_state=True).is_completed()
    report = campaign_env / "data" / "reports" / "erase-me"
    assert "06.12.34.56.78" in (report / "rejects.csv").read_text(encoding="utf-8-sig")

    done = start_cli("flows.erase_person", campaign_env, "--phone", "0033 6 12 34 56 78")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert not any(f in out + err for f in FORMS)
    assert "+33 6 •• •• •• 78" in out
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["ledger_chunks"] == 1 and counts["rows_removed"] >= 2
    assert counts["suppression_added"] is True

    for path in sorted((campaign_env / "data").rglob("*")):
        if path.is_file():  # the ledger's own bytes included: nowhere in clear
            for where, text in _texts(path):
                assert not any(f in text for f in FORMS), where
    with sqlite3.connect(f"{campaign_env}/data/state/ledger.sqlite") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # our own tables
                assert not any(f in str(v) for v in row for f in FORMS), table
        sent = db.execute("SELECT numbers, size, state FROM chunks").fetchone()
    assert sent[1] == 20 and sent[2] == "sent"  # the chunk's outcome and counts stay
    kept = {n for n in sent[0].split(",")}
    assert set(others) <= kept and len(kept - set(others)) == 1  # the pseudonym
    led = runtime.open_ledger(ledger_url)
    assert len(led.recently_texted([PERSON], since=datetime.now(UTC) - timedelta(days=1),
                                   exclude_campaign="x")) == 1  # fmt: skip
    assert NeverText(led).among([PERSON, others[0]]) == {PERSON}  # never texted again
    led.close()

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["erase-person"]))
        )
    assert runs and all(not any(f in json.dumps(r.parameters) for f in FORMS) for r in runs)


def test_erase_flow_refuses_what_is_not_a_number(campaign_env: Path) -> None:
    from pydantic import SecretStr

    state = erase_person(phone=SecretStr("hello"), return_state=True)
    assert state.is_failed() and "cannot be read" in (state.message or "")


def test_witness_sends_keep_no_number_after_a_purge_or_an_erasure(ledger_url: str) -> None:
    from sqlalchemy import insert, select

    from tasks.ledger.schema import witness_sends

    led = lg.Ledger(ledger_url, pseudonym_key=KEY)
    people = numbers(3)
    staff = ("+33612349990", "+33612349991")
    led.create_plan("old", "s", [lg.ChunkPlan(0, "FR", None, people)])
    claim = led.claim("old", 0, "me", cost_per_recipient=0.05)
    led.mark_sent("old", 0, message_id=7, nb_sms=3, cost=0.1, currency="EUR",
                  texted_at=datetime.now(UTC), reserved=claim.reserved)  # fmt: skip
    with led._write() as conn:
        for i, e164 in enumerate(staff):
            conn.execute(
                insert(witness_sends).values(
                    campaign_id="old", survey_id="s", mode="campaign", e164=e164,
                    tag=f"tm{i:018d}", state="sent", updated_at=datetime.now(UTC),
                )
            )  # fmt: skip

    def stored() -> list[str]:
        with led.engine.connect() as conn:
            return list(conn.execute(select(witness_sends.c.e164)).scalars())

    led.erase_number(staff[0], masking.mask_numbers)  # a staff member who left
    assert staff[0] not in stored() and staff[1] in stored()
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert led.purge_campaign("old", later, masking.mask_numbers) is not None
    assert not any(n.startswith("+") for n in stored()) and len(stored()) == 2
    led.close()
