"""Hostile and careless inputs: opt-out lists that would silently suppress nobody, queries that
slip past the read-only guard, numbers quoted by error messages, files that cost minutes of CPU
or gigabytes of memory, and blank rows that vanish from the count.

PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) tests skip when the server does not
answer, except on CI (CI=true) where a missing server is a failure.
"""

from __future__ import annotations

import re
import sqlite3
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import phonenumbers
import pytest
from helpers import MARIADB_URLS, PG_URLS, execute, require_server, scalar
from helpers import recipients_error_of as error_of
from helpers import write_input as write
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.recipients as recipients
from tasks.numbers import mask_numbers_in_text, numbers_in_entry
from tasks.plan import clean_rows
from tasks.recipients import (
    RecipientsError,
    SuppressionList,
    limits,
    load_recipients,
    load_suppression_list,
    sql_refusal,
    xlsx_size_problem,
)
from tasks.row_columns import REASON

# Valid French mobiles, one per test purpose, all distinct.
A, B, C, D, E = (f"+336123450{n}" for n in ("30", "31", "33", "38", "39"))


def refusal(path: Path) -> str:
    with pytest.raises(RecipientsError) as info:
        load_suppression_list(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def no_full_number(text: str, *numbers: str) -> bool:
    """No 9-digit run of any of ``numbers`` survives in ``text`` (separators ignored)."""
    digits = re.sub(r"\D", "", text)
    return not any(
        n[i : i + 9] in digits
        for n in (re.sub(r"\D", "", x) for x in numbers)
        for i in range(len(n) - 8)
    )


# --------------------------------------------------------------------------------------------
# 1. The opt-out list
# --------------------------------------------------------------------------------------------


def test_headerless_list_uses_the_column_of_numbers_not_a_customer_id(tmp_path: Path) -> None:
    # The old rule took the leftmost column with six digits: the customer id, suppressing nobody.
    path = write(tmp_path, "stop.csv", "100234,0612345030\n100235,06 12 34 50 31\n")
    assert load_suppression_list(path) == SuppressionList(
        numbers=frozenset({A, B}), read=2, column=2
    )


def test_entries_give_every_number_they_hold_whatever_is_written_around(tmp_path: Path) -> None:
    text = (
        "Téléphone;motif\n"
        "0612345038;0612345039;double\n"  # quoted below: two numbers in one cell
        "06 12 34 50 33 (STOP);stop\n"
        "+33 6 12 34 50 30 ext 1;stop\n"
        "06.12.34.50.31 poste 12;stop\n"
        "+44 7911 123456;foreign\n"  # an opt-out is never narrower than a send abroad
        "01 23 45 67 89;landline\n"
        "0690 12 34 56 (stop);overseas\n"
    ).replace("0612345038;0612345039", '"0612345038;0612345039"')
    result = load_suppression_list(write(tmp_path, "stop.csv", text))
    assert result.numbers == {
        D,
        E,
        C,
        A,
        B,
        "+447911123456",
        "+33123456789",
        "+590690123456",
    }
    assert (result.read, result.column) == (7, 1)


def test_list_from_a_workbook_with_spreadsheet_floats(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    # A blank row is skipped; a row with a client but no number would refuse the list.
    for row in (["client", "numéro"], [1, 612345030], [None, None], [2, "06 12 34 50 31 STOP"]):
        sheet.append(row)
    workbook.save(tmp_path / "stop.xlsx")
    result = load_suppression_list(tmp_path / "stop.xlsx")
    assert result.numbers == {A, B} and result.read == 2


@pytest.mark.parametrize(
    "text",
    [
        "name;email\njean;j@example.org\nléa;l@example.org\n",
        "100234\n100235\n100236\n",  # customer ids only, no header
        "id,ref\n100234,A-1\n100235,A-2\n",
    ],
)
def test_a_list_without_a_column_of_numbers_is_refused(tmp_path: Path, text: str) -> None:
    assert "no column of" in refusal(write(tmp_path, "stop.csv", text))


def test_a_list_with_unreadable_entries_is_refused_naming_its_rows(tmp_path: Path) -> None:
    # Fail closed: any entry that gives no number refuses the list (it used to take more than
    # half of them), and the message names rows, never what they hold.
    text = "Portable\n0612345030\nSTOP\nvoir dossier\n12 34\n"
    message = refusal(write(tmp_path, "stop.csv", text))
    assert "rows 3, 4 and 5" in message
    assert not any(s in message for s in ("Portable", "STOP", "voir dossier", "12 34"))
    assert no_full_number(message, A)


def test_missing_unreadable_or_empty_list(tmp_path: Path) -> None:
    assert "file not found" in refusal(tmp_path / "missing.csv")
    assert "directory" in refusal(tmp_path)
    # A list that suppresses nobody is refused (it used to be read as an empty list).
    assert "is empty" in refusal(write(tmp_path, "empty.csv", b""))
    assert "is empty" in refusal(write(tmp_path, "blank.csv", "\n \n"))
    assert "header line but no phone number" in refusal(write(tmp_path, "h.csv", "phone\n"))


def _metropolitan(national: str) -> bool:
    """A valid +33 number: 06 39 is Mayotte's range (+262 639), 06 90-06 97 the Caribbean's,
    Guiana's and Réunion's, and phonenumbers' metadata moves ranges between them."""
    return phonenumbers.is_valid_number(phonenumbers.parse(f"+33{national}"))


# Metropolitan mobiles.
_national = (
    st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"6{n:08d}").filter(_metropolitan)
)
_formats = st.sampled_from(
    [
        lambda nsn: f"0{nsn}",
        lambda nsn: f"+33{nsn}",
        lambda nsn: "0" + " ".join([nsn[0], *(nsn[i : i + 2] for i in range(1, 9, 2))]),
        lambda nsn: "0" + ".".join([nsn[0], *(nsn[i : i + 2] for i in range(1, 9, 2))]),
        lambda nsn: f"+33 (0){nsn}",
    ]
)
_notes = st.sampled_from(["", " (STOP)", " STOP", " ext 12", " poste 3", " x7", " - désinscrit"])


@settings(max_examples=60, deadline=None)
@given(
    numbers=st.lists(st.tuples(_national, _formats, _notes), min_size=1, max_size=3),
    separator=st.sampled_from([";", ",", " / ", " | "]),
)
def test_every_number_of_an_entry_is_found_whatever_its_notes(
    numbers: list[tuple[str, object, str]], separator: str
) -> None:
    entry = separator.join(fmt(nsn) + note for nsn, fmt, note in numbers)  # type: ignore[operator]
    assert set(numbers_in_entry(entry)) == {f"+33{nsn}" for nsn, _, _ in numbers}


# --------------------------------------------------------------------------------------------
# 2. The read-only guard
# --------------------------------------------------------------------------------------------

DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite")


@pytest.mark.parametrize(
    ("query", "dialects", "refused"),
    [
        ("SELECT id, phone FROM t WHERE label = 'a;b' -- done; really", DIALECTS, None),
        ("SELECT 'x /*! INTO OUTFILE */ # $$' AS a FROM t", DIALECTS, None),
        ("SELECT a /* a plain comment */ FROM t", DIALECTS, None),
        ("SELECT $$a;b$$ AS a, $q$it's$q$ AS b, id::text FROM t", ("postgresql",), None),
        ("SELECT [a;b] FROM t", ("sqlite",), None),
        ("SELECT * FROM t /*! INTO OUTFILE '/tmp/x' */", DIALECTS, "executable comment"),
        ("SELECT * FROM t /*M! INTO OUTFILE '/tmp/x' */", DIALECTS, "executable comment"),
        ("SELECT /*+ MAX_EXECUTION_TIME(0) */ * FROM t", DIALECTS, "hint"),
        ("SELECT 1 #'\n INTO OUTFILE '/tmp/x' -- '", ("mysql", "mariadb"), "'#'"),
        ("SELECT 1 --'' INTO OUTFILE '/tmp/x'", ("mysql", "mariadb"), "'--'"),
        ("SELECT $$'$$ AS a; DELETE FROM t; -- '", ("postgresql",), "several statements"),
        ("SELECT $a$ AS x", ("postgresql",), "unclosed dollar quote"),
        ("SELECT 1$a$'$a$; DELETE FROM t; --'", ("postgresql",), "'$' inside a word"),
        ("SELECT $ FROM t", ("postgresql",), "opens no dollar quote"),
        ("SELECT $a(') , 1; DELETE FROM t; --'", ("sqlite",), "'$'"),
        ("SELECT 1 /* /* */ ' */ ; DELETE FROM t; -- '", DIALECTS, "comment inside a comment"),
        ("SELECT 'open", DIALECTS, "unclosed string"),
        ('SELECT "open FROM t', DIALECTS, "unclosed quoted name"),
        ("SELECT 1 /* open", DIALECTS, "unclosed comment"),
        ("SELECT 'a\\', 1; DELETE FROM t; -- '", DIALECTS, "several statements"),
        ("SELECT * FROM t INTO OUTFILE '/tmp/x'", DIALECTS, "INTO"),
        ("SELECT * INTO copy FROM t", DIALECTS, "INTO"),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", DIALECTS, "DELETE"),
        ("DELETE FROM t", DIALECTS, "starts with DELETE"),
        ("SELECT 1\x00", DIALECTS, "NUL"),
        ("SELECT # FROM t", ("oracle",), "'#'"),  # another server: every doubtful character
    ],
)
def test_sql_guard_table(query: str, dialects: tuple[str, ...], refused: str | None) -> None:
    for dialect in dialects:
        verdict = sql_refusal(query, dialect)
        if refused is None:
            assert verdict is None, (dialect, verdict)
        else:
            assert verdict is not None and verdict.startswith("refusing"), dialect
            assert refused in verdict, (dialect, verdict)


def _quoted(text: str) -> str:
    """A string literal read alike with and without backslash escapes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


_any_text = st.text(st.characters(blacklist_characters="\x00"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(inside=_any_text, dialect=st.sampled_from(DIALECTS))
def test_text_inside_a_literal_never_changes_the_verdict(inside: str, dialect: str) -> None:
    query = f"SELECT id, phone FROM t WHERE label = {_quoted(inside)} AND id > 0"
    assert sql_refusal(query, dialect) is None
    if dialect == "postgresql" and "$x$" not in inside:
        assert sql_refusal(f"SELECT $x${inside}$x$ AS label FROM t", dialect) is None


_WRITES = ("INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "TRUNCATE", "GRANT", "INTO")


@settings(max_examples=150, deadline=None)
@given(
    before=st.lists(_any_text, max_size=3),
    after=st.lists(_any_text, max_size=3),
    keyword=st.sampled_from(_WRITES).flatmap(
        lambda w: st.sampled_from([w, w.lower(), w.capitalize()])
    ),
    dialect=st.sampled_from(DIALECTS),
)
def test_a_write_keyword_outside_literals_is_always_refused(
    before: list[str], after: list[str], keyword: str, dialect: str
) -> None:
    parts = [_quoted(t) for t in before] + [keyword] + [_quoted(t) for t in after]
    query = "SELECT " + " , ".join(parts) + " FROM t"
    assert sql_refusal(query, dialect) is not None


@pytest.fixture(scope="module")
def pg_url() -> str:
    return require_server("PostgreSQL on 127.0.0.1:5432", PG_URLS)


@pytest.fixture(scope="module")
def mariadb_url() -> str:
    return require_server("MariaDB on 127.0.0.1:3306", MARIADB_URLS)


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    name = f"hostile_{uuid.uuid4().hex[:10]}"
    execute(
        pg_url,
        f"CREATE TABLE {name} (id integer, phone text)",
        f"INSERT INTO {name} VALUES (1, '0612345030')",
    )
    yield name
    execute(pg_url, f"DROP TABLE IF EXISTS {name}", f"DROP TABLE IF EXISTS {name}_copy")


@pytest.mark.mariadb
def test_mariadb_executable_comments_and_hash_comments_never_reach_the_server(
    mariadb_url: str, tmp_path: Path
) -> None:
    leak = Path(f"/tmp/recipients-leak-{uuid.uuid4().hex}.csv")
    try:
        for query in (
            f"SELECT 1 AS phone /*! INTO OUTFILE '{leak}' */",
            f"SELECT 1 AS phone /*M! INTO OUTFILE '{leak}' */",
            f"SELECT 1 AS phone #'\n INTO OUTFILE '{leak}' -- '",
            f"SELECT 1 AS phone --'' INTO OUTFILE '{leak}'",
        ):
            assert error_of(db_url=mariadb_url, query=query).startswith("refusing"), query
            assert not leak.exists(), query  # the server wrote nothing: it never saw the query
    finally:
        leak.unlink(missing_ok=True)
    # What the guard can read still runs: comments, and the same characters inside literals.
    query = "SELECT '#/*!*/' AS label, 1 AS phone -- a comment\n"
    assert load_recipients(db_url=mariadb_url, query=query).values.tolist() == [["#/*!*/", "1"]]


@pytest.mark.postgres
def test_postgres_dollar_quotes_are_read_as_the_server_reads_them(
    pg_url: str, pg_table: str
) -> None:
    for query in (
        f"SELECT $$'$$ AS a; DELETE FROM {pg_table}; -- '",
        f"SELECT $$'$$ AS a INTO {pg_table}_copy FROM {pg_table} -- '",
        f"SELECT $q$ AS a FROM {pg_table}",
    ):
        assert error_of(db_url=pg_url, query=query).startswith("refusing"), query
    assert scalar(pg_url, f"SELECT count(*) FROM {pg_table}") == 1
    assert scalar(pg_url, f"SELECT to_regclass('{pg_table}_copy') IS NULL") is True
    df = load_recipients(db_url=pg_url, query=f"SELECT $$a;b$$ AS label, phone FROM {pg_table}")
    assert df.values.tolist() == [["a;b", "0612345030"]]


def _timeout_message(**kwargs: object) -> tuple[str, float]:
    started = time.monotonic()
    message = error_of(statement_timeout_s=1, **kwargs)
    return message, time.monotonic() - started


@pytest.mark.postgres
def test_postgres_statement_timeout(pg_url: str) -> None:
    message, took = _timeout_message(db_url=pg_url, query="SELECT pg_sleep(5) AS phone")
    assert "the recipients query ran longer than 1 s" in message
    assert took < 4


@pytest.mark.mariadb
def test_mariadb_statement_timeout(mariadb_url: str) -> None:
    message, took = _timeout_message(db_url=mariadb_url, query="SELECT SLEEP(5) AS phone")
    assert "the recipients query ran longer than 1 s" in message
    assert took < 4


def test_sqlite_statement_timeout(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "db.sqlite").close()
    endless = (
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    )
    message, took = _timeout_message(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", query=endless)
    assert "the recipients query ran longer than 1 s" in message
    assert took < 4


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "300"])
def test_statement_timeout_must_be_a_positive_number(tmp_path: Path, bad: object) -> None:
    sqlite3.connect(tmp_path / "db.sqlite").close()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert "statement_timeout_s" in error_of(db_url=url, query="SELECT 1", statement_timeout_s=bad)


# --------------------------------------------------------------------------------------------
# 3. No full number in an error message
# --------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_database_error_quoting_a_number_is_masked(pg_url: str) -> None:
    message = error_of(db_url=pg_url, query="SELECT '06 12 34 50 12'::bigint AS phone")
    assert "invalid input syntax for type bigint" in message
    assert no_full_number(message, "0612345012")
    assert "06 •• •• •• 12" in message


def test_file_and_workbook_errors_quoting_a_number_are_masked(tmp_path: Path) -> None:
    assert no_full_number(error_of(path=tmp_path / "0612345012.csv"), "0612345012")
    workbook = openpyxl.Workbook()
    workbook.save(tmp_path / "r.xlsx")
    message = error_of(path=tmp_path / "r.xlsx", sheet="06.12.34.50.12")
    assert "not found" in message and no_full_number(message, "0612345012")


_separators = st.sampled_from([" ", "\u00a0", "\u202f", ".", "-", "/", "\u2013", "", "  "])


@settings(max_examples=200, deadline=None)
@given(
    digits=st.text("0123456789", min_size=9, max_size=15),
    plus=st.booleans(),
    seps=st.lists(_separators, min_size=15, max_size=15),
    left=st.text(st.characters(blacklist_categories=["Nd"]), max_size=20),
    right=st.text(st.characters(blacklist_categories=["Nd"]), max_size=20),
)
def test_no_nine_digit_run_of_a_number_survives_masking(
    digits: str, plus: bool, seps: list[str], left: str, right: str
) -> None:
    written = ("+" if plus else "") + "".join(d + s for d, s in zip(digits, seps, strict=False))
    masked = mask_numbers_in_text(f"{left}{written.rstrip()}{right}")
    assert no_full_number(masked, digits)


def test_masking_keeps_short_numbers_and_addresses() -> None:
    text = "line 12 of /tmp/pytest-3/r.csv: 300 s on 10.123.45.67:5432"
    assert mask_numbers_in_text(text) == text


# --------------------------------------------------------------------------------------------
# 4. Inputs that cost time or memory out of proportion
# --------------------------------------------------------------------------------------------


def _quick_error(call: object, *args: object, **kwargs: object) -> str:
    started = time.monotonic()
    with pytest.raises(RecipientsError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    assert time.monotonic() - started < 10, "the error must come within seconds"
    return str(info.value)


@pytest.mark.timeout(60)
def test_one_line_of_200000_values_is_refused_at_once(tmp_path: Path) -> None:
    # Short repeated values: pandas names duplicate headers in quadratic time (290 s here).
    path = write(tmp_path, "one-line.csv", ";".join(str(i % 10) for i in range(200_000)) + "\n")
    message = _quick_error(load_recipients, path=path)
    assert "200,000 fields" in message and f"{recipients.MAX_COLUMNS:,}" in message
    assert "200,000 fields" in _quick_error(load_suppression_list, path)


@pytest.mark.timeout(60)
def test_a_csv_with_too_many_cells_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_CELLS", 1_000)  # the real bound: 20 million cells
    path = write(tmp_path, "r.csv", "id;phone\n" + "1;0612345030\n" * 600)
    assert "more than 1,000 cells" in _quick_error(load_recipients, path=path)
    assert (
        len(load_recipients(path=write(tmp_path, "ok.csv", "id;phone\n" + "1;06\n" * 400))) == 400
    )


def _workbook_with_sheet_xml(path: Path, rewrite: object) -> Path:
    """A real workbook whose first sheet's XML went through ``rewrite``."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "phone"])
    sheet.append([1, "0612345030"])
    workbook.save(path.with_suffix(".orig.xlsx"))
    with (
        zipfile.ZipFile(path.with_suffix(".orig.xlsx")) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = rewrite(data)  # type: ignore[operator]
            target.writestr(info.filename, data)
    return path


def _peak_memory_of_error(call: object, *args: object, **kwargs: object) -> tuple[str, int]:
    tracemalloc.start()
    try:
        message = _quick_error(call, *args, **kwargs)
        return message, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(60)
def test_xlsx_declaring_a_huge_sheet_is_refused_before_loading(tmp_path: Path) -> None:
    # Read-only openpyxl pads every row to the declared width: 17 billion cells from 6 KB.
    path = _workbook_with_sheet_xml(
        tmp_path / "huge.xlsx",
        lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', xml),
    )
    message, peak = _peak_memory_of_error(load_recipients, path=path)
    assert "declares 1,048,576 rows x 16,384 columns" in message
    assert peak < 30 * 2**20


@pytest.mark.timeout(60)
def test_xlsx_zip_bomb_is_refused_by_its_uncompressed_size(tmp_path: Path) -> None:
    rows = b"<row><c t='inlineStr'><is><t>0612345030</t></is></c></row>" * 200_000
    path = _workbook_with_sheet_xml(
        tmp_path / "bomb.xlsx", lambda xml: xml.replace(b"</sheetData>", rows + b"</sheetData>")
    )
    assert path.stat().st_size < 2**20
    message, peak = _peak_memory_of_error(load_recipients, path=path)
    assert "inflates" in message and "times" in message
    assert peak < 30 * 2**20


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([("xl/worksheets/sheet1.xml", 300 << 20, 30 << 20)], None),  # a big real workbook
        ([("xl/worksheets/sheet1.xml", 4 << 20, 1 << 10)], None),  # small: whatever the ratio
        ([("xl/worksheets/sheet1.xml", 1200 << 20, 1 << 20)], "inflates to 1,200 MiB"),
        ([("a.xml", 600 << 20, 100 << 20), ("b.xml", 600 << 20, 100 << 20)], "inflates to"),
        ([("xl/sharedStrings.xml", 64 << 20, 64 << 10)], "inflates 1,024 times"),
    ],
)
def test_xlsx_size_problem_table(members: list[tuple[str, int, int]], problem: str | None) -> None:
    found = xlsx_size_problem(members)
    assert found is None if problem is None else (found is not None and problem in found)


@pytest.mark.timeout(60)
def test_xlsx_with_too_many_columns_or_cells_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["phone", *(f"c{i}" for i in range(recipients.MAX_COLUMNS))])
    workbook.save(tmp_path / "wide.xlsx")
    assert "1,001 fields" in _quick_error(load_recipients, path=tmp_path / "wide.xlsx")
    # A sheet whose dimension lies (says A1): its cells are counted as they come.
    monkeypatch.setattr(limits, "MAX_CELLS", 1_000)
    rows = b"".join(b"<row><c><v>612345030</v></c><c><v>1</v></c></row>" for _ in range(600))
    path = _workbook_with_sheet_xml(
        tmp_path / "lying.xlsx",
        lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1"', xml).replace(
            b"</sheetData>", rows + b"</sheetData>"
        ),
    )
    assert "more than 1,000 cells" in _quick_error(load_recipients, path=path)


# --------------------------------------------------------------------------------------------
# 5. Blank rows count
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("phone\n0612345030\n\n0612345031\n\n\n", "phone"),
        ("id;phone\n1;0612345030\n\n2;0612345031\n\n", "phone"),
        ("id;phone\n1;0612345030\n;\n2;0612345031\n;\n", "phone"),
    ],
)
def test_a_blank_line_between_rows_is_a_row_rejected_as_empty(
    tmp_path: Path, text: str, column: str
) -> None:
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert len(df) == 3  # header, then three rows up to the last one; trailing blanks are not rows
    cleaned = clean_rows(df, column, allow_foreign=False)
    assert cleaned[REASON].tolist() == [None, "empty", None]
    assert len(cleaned) == len(df)


def test_a_blank_row_between_workbook_rows_is_a_row(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["phone"], ["0612345030"], [None], ["0612345031"], [None], [None]):
        sheet.append(row)
    workbook.save(tmp_path / "r.xlsx")
    df = load_recipients(path=tmp_path / "r.xlsx")
    assert clean_rows(df, "phone", allow_foreign=False)[REASON].tolist() == [None, "empty", None]
