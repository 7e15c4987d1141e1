"""Tests for tasks.recipients: every source, every bad input an operator can give, and the promise
that a database is only read.

PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) tests skip when the server does not
answer, except on CI (CI=true) where a missing server is a failure.
"""

from __future__ import annotations

import csv
import socket
import sqlite3
import time
import unicodedata
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import openpyxl
import pandas as pd
import pytest
from helpers import MARIADB_URLS, PG_URLS, execute, require_server, scalar
from helpers import recipients_error_of as error_of
from helpers import write_input as write
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tasks.recipients import (
    PHONE_COLUMN_CANDIDATES,
    RecipientsError,
    find_phone_column,
    load_recipients,
    load_suppression_list,
    mask_db_url,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SAMPLE_SQLITE = SAMPLES / "recipients.sqlite"
SAMPLE_XLSX = SAMPLES / "recipients.xlsx"

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def rows(df: pd.DataFrame) -> list[list[str]]:
    return df.astype(object).values.tolist()


def assert_contract(df: pd.DataFrame) -> None:
    """What every caller relies on: strings only, nothing missing, index 0..n-1."""
    assert isinstance(df.index, pd.RangeIndex)
    assert df.index.start == 0 and df.index.step == 1
    for column in df.columns:
        assert pd.api.types.is_object_dtype(df[column]) or pd.api.types.is_string_dtype(df[column])
        assert all(isinstance(v, str) for v in df[column].tolist()), column


def closed_port() -> int:
    """A local port nothing listens on (bound then released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_each_delimiter(tmp_path: Path, delimiter: str) -> None:
    lines = [["id", "Téléphone", "ville"], ["1", "0612345678", "Lyon"], ["2", "", "Paris"]]
    path = write(tmp_path, "r.csv", "\n".join(delimiter.join(line) for line in lines) + "\n")
    df = load_recipients(path=path)
    assert_contract(df)
    assert list(df.columns) == ["id", "Téléphone", "ville"]
    assert rows(df) == [["1", "0612345678", "Lyon"], ["2", "", "Paris"]]


def test_csv_values_stay_as_written(tmp_path: Path) -> None:
    text = "phone;note\n0612345678;NA\n612345678.0;null\n+33 6 12 34 56 78;  spaced \n007;N/A\n"
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert rows(df) == [
        ["0612345678", "NA"],
        ["612345678.0", "null"],
        ["+33 6 12 34 56 78", "  spaced "],
        ["007", "N/A"],
    ]


def test_csv_utf8_bom_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "\ufefftéléphone;nom\n0612345678;Léa\n")
    df = load_recipients(path=path)
    assert list(df.columns) == ["téléphone", "nom"]
    assert find_phone_column(list(df.columns)) == "téléphone"


def test_csv_windows_1252_as_french_excel_writes_it(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "Téléphone;Prénom\r\n0612345678;Chloé\r\n", "cp1252")
    df = load_recipients(path=path)
    assert list(df.columns) == ["Téléphone", "Prénom"]
    assert rows(df) == [["0612345678", "Chloé"]]


def test_csv_windows_1252_byte_after_a_plain_ascii_start(tmp_path: Path) -> None:
    # Encoding is guessed from the first 64 KiB; an accent further down must still be read.
    body = "".join(f"{i};06123456{i % 100:02d};Paris\n" for i in range(5000))
    path = write(
        tmp_path, "r.csv", ("id;tel;ville\n" + body + "9999;0700000000;Orléans\n"), "cp1252"
    )
    df = load_recipients(path=path)
    assert len(df) == 5001
    assert df["ville"].iloc[-1] == "Orléans"


def test_csv_utf16_with_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "r.txt", "tel\tnom\n0612345678\tZoé\n", "utf-16")
    assert rows(load_recipients(path=path)) == [["0612345678", "Zoé"]]


def test_csv_quoted_fields_with_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    text = (
        'id;"nom; prénom";phone;note\n'
        '1;"Dupont; Jean";"06 12 34 56 78";"dit ""bonjour"""\n'
        '2;"Martin, Léa";0712345678;"ligne 1\nligne 2"\n'
    )
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert list(df.columns) == ["id", "nom; prénom", "phone", "note"]
    assert rows(df) == [
        ["1", "Dupont; Jean", "06 12 34 56 78", 'dit "bonjour"'],
        ["2", "Martin, Léa", "0712345678", "ligne 1\nligne 2"],
    ]


def test_csv_blank_lines_between_rows_are_rows_trailing_ones_are_not(tmp_path: Path) -> None:
    # Blank lines before the header are skipped; between rows they are rows of empty cells
    # (counted, then rejected as empty); after the last row they are nothing.
    text = "\n\nid;phone\n\n1;0612345678\n;\n\n2;0712345678\n\n\n"
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert rows(df) == [
        ["", ""],
        ["1", "0612345678"],
        ["", ""],
        ["", ""],
        ["2", "0712345678"],
    ]
    assert_contract(df)


def test_csv_trailing_empty_columns_are_dropped(tmp_path: Path) -> None:
    text = "id;phone;;\n1;0612345678;;\n2;0712345678;;\n"
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert list(df.columns) == ["id", "phone"]
    assert rows(df) == [["1", "0612345678"], ["2", "0712345678"]]


@pytest.mark.parametrize(
    "text",
    [
        # Without care, pandas would make "id" the index and shift every column left...
        "id;phone\n1;0612345678;\n2;0712345678;\n",
        # ...or refuse the file when only a later line has the extra delimiter.
        "id;phone\n1;0612345678\n2;0712345678;;\n",
    ],
)
def test_csv_trailing_delimiter_on_data_lines_only(tmp_path: Path, text: str) -> None:
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert list(df.columns) == ["id", "phone"]
    assert rows(df) == [["1", "0612345678"], ["2", "0712345678"]]


def test_csv_unnamed_column_with_data_is_kept(tmp_path: Path) -> None:
    text = "id;;phone\n1;x;0612345678\n"
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert list(df.columns) == ["id", "Unnamed: 1", "phone"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("id;phone\n1;0612345678\n2;0712345678;oops\n", 3),
        ("id;phone\n\n1;0612345678;\n2;07;;oops\n", 4),  # line numbers count blank lines
    ],
)
def test_csv_extra_field_with_data_is_an_error_not_silent_loss(
    tmp_path: Path, text: str, line: int
) -> None:
    message = error_of(path=write(tmp_path, "r.csv", text))
    assert f"line {line} has" in message and "the header has 2" in message


def test_csv_header_spaces_are_trimmed(tmp_path: Path) -> None:
    text = "  id ; Téléphone  ;\tville \n1;0612345678;Lyon\n"
    df = load_recipients(path=write(tmp_path, "r.csv", text))
    assert list(df.columns) == ["id", "Téléphone", "ville"]


def test_csv_single_column_without_delimiter(tmp_path: Path) -> None:
    df = load_recipients(path=write(tmp_path, "r.csv", "mobile\n0612345678\n07 12 34 56 78\n"))
    assert rows(df) == [["0612345678"], ["07 12 34 56 78"]]


def test_csv_duplicate_headers_get_distinct_names(tmp_path: Path) -> None:
    df = load_recipients(path=write(tmp_path, "r.csv", "phone,phone\n06,07\n"))
    assert list(df.columns) == ["phone", "phone.1"]


def test_csv_a_million_rows_quickly(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id;prénom;Téléphone;email\n")
        handle.writelines(
            f"{i};Camille;06 12 {i % 100:02d} {i % 97:02d} {i % 89:02d};c{i}@example.org\n"
            for i in range(1_000_000)
        )
    started = time.perf_counter()
    df = load_recipients(path=path)
    elapsed = time.perf_counter() - started
    assert len(df) == 1_000_000
    assert df["id"].iloc[-1] == "999999"
    assert df["Téléphone"].iloc[1] == "06 12 01 01 01"
    assert elapsed < 15, f"1M rows took {elapsed:.1f} s"


_CELL_ALPHABET = "abcXYZéèàçÉœ€\u00a00123456789 +.-'\",;|\t\n\r#"
_cells = st.one_of(
    st.text(alphabet=_CELL_ALPHABET, max_size=12),
    st.sampled_from(["", "NA", "null", "0612345678", "612345678.0", "+33 6 12 34 56 78"]),
)
# Headers hold no delimiter: with one, tiny files like "a;,a" are ambiguous even to a person
# (quoted headers with delimiters are covered by an example test).
_headers = (
    st.text(alphabet="abcdefghéTélphon_ 0123456789#()°'\"", min_size=1, max_size=10)
    .map(str.strip)
    .filter(lambda h: any(c.isalpha() for c in h) and not h.startswith("Unnamed"))
)


@st.composite
def _tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    headers = draw(st.lists(_headers, min_size=1, max_size=5, unique=True))
    body = draw(
        st.lists(
            st.lists(_cells, min_size=len(headers), max_size=len(headers)), min_size=1, max_size=8
        )
    )
    return headers, body


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    table=_tables(),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_csv_round_trip_property(
    tmp_path: Path, table: tuple[list[str], list[list[str]]], delimiter: str, encoding: str
) -> None:
    """Whatever a spreadsheet writes (quotes, delimiters, newlines inside cells) reads back."""
    headers, body = table
    if encoding == "cp1252":
        # Windows-1252 bytes that also happen to be valid UTF-8 ("É" + no-break space is "ɠ")
        # are read as UTF-8: nothing in the bytes can tell. Real French text is never both.
        written = "".join(headers + [cell for row in body for cell in row])
        assume(written.isascii() or not _is_utf8(written.encode("cp1252")))
    path = tmp_path / "prop.csv"
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(headers)
        writer.writerows(body)
    # A row whose cells are all empty or spaces is a blank line to a person: a row between
    # rows (its recipient must be counted), nothing after the last row.
    filled = [i for i, row in enumerate(body) if any(cell.strip() for cell in row)]
    expected = body[: filled[-1] + 1] if filled else []
    if not expected:
        with pytest.raises(RecipientsError):
            load_recipients(path=path)
        return
    df = load_recipients(path=path)
    assert list(df.columns) == headers
    assert rows(df) == expected


# --------------------------------------------------------------------------------------------
# Excel
# --------------------------------------------------------------------------------------------


def make_workbook(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    first = workbook.active
    assert first is not None
    first.title = "Clients"
    first.append([None])  # a blank line above the header
    first.append(["id", " Téléphone ", "score", "visite", None, None])
    first.append([1, 612345678, 12.5, pd.Timestamp("2024-05-01").to_pydatetime(), None, None])
    first.append([2, "0612345678", 3.0, pd.Timestamp("2024-05-01 13:30").to_pydatetime()])
    first.append([None, None, None])  # a blank row in the middle
    first.append([3, 612345678.0, None, None])
    first.append([4, 33612345678, True, None])
    first["F9"].number_format = "0.00"  # formatting alone widens the sheet
    second = workbook.create_sheet("Archive 2023")
    second.append(["mobile", "nom"])
    second.append([699999999, "Léo"])
    workbook.save(path)
    return path


def test_xlsx_first_sheet_numbers_without_float_artefacts(tmp_path: Path) -> None:
    df = load_recipients(path=make_workbook(tmp_path / "r.xlsx"))
    assert_contract(df)
    assert list(df.columns) == ["id", "Téléphone", "score", "visite"]
    assert rows(df) == [
        ["1", "612345678", "12.5", "2024-05-01"],
        ["2", "0612345678", "3", "2024-05-01 13:30:00"],
        ["", "", "", ""],  # the blank row in the middle is a row, as in a CSV
        ["3", "612345678", "", ""],
        ["4", "33612345678", "TRUE", ""],
    ]


def test_xlsx_named_sheet(tmp_path: Path) -> None:
    df = load_recipients(path=make_workbook(tmp_path / "r.xlsx"), sheet="Archive 2023")
    assert rows(df) == [["699999999", "Léo"]]


def test_xlsx_missing_sheet_counts_the_available_ones(tmp_path: Path) -> None:
    # The sheets' names are the file's content: counted, no longer listed.
    message = error_of(path=make_workbook(tmp_path / "r.xlsx"), sheet="Clients 2024")
    assert "'Clients 2024'" in message and "2 sheets" in message
    assert "'Clients'" not in message and "Archive" not in message


def test_xlsx_sample_file() -> None:
    df = load_recipients(path=SAMPLE_XLSX)
    assert_contract(df)
    assert list(df.columns) == ["N° client", "Prénom", "Portable", "Ville", "Dernière visite"]
    assert find_phone_column(list(df.columns)) == "Portable"
    phones = df["Portable"].tolist()
    assert phones[0] == "612345801"  # typed as a number: no ".0"
    assert "06 12 34 58 02" in phones and "" in phones
    assert df["Dernière visite"].iloc[0] == "2025-01-04"
    archive = load_recipients(path=SAMPLE_XLSX, sheet="Archive 2023")
    assert find_phone_column(list(archive.columns)) == "Téléphone"


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_sqlite_sample_by_table_name() -> None:
    df = load_recipients(db_url=sqlite_url(SAMPLE_SQLITE), query="customers")
    assert_contract(df)
    assert list(df.columns) == ["id", "first_name", "phone", "email", "last_visit"]
    assert len(df) == 40
    assert df["id"].tolist() == [str(i) for i in range(1, 41)]  # row order kept
    assert find_phone_column(list(df.columns)) == "phone"
    phones = df["phone"].tolist()
    assert phones[0] == "06 12 34 57 01" and "612345707.0" in phones
    assert phones[19] == ""  # NULL
    assert len(set(phones)) < len(phones)  # the sample has duplicates


def test_sqlite_select_query_with_percent_and_colon_literals() -> None:
    query = (
        "SELECT id, phone, 'a:b' AS tag FROM customers "
        "WHERE phone LIKE '06 12%' AND first_name <> 'x;y' ORDER BY id DESC;"
    )
    df = load_recipients(db_url=sqlite_url(SAMPLE_SQLITE), query=query)
    assert list(df.columns) == ["id", "phone", "tag"]
    assert df["phone"].str.startswith("06 12").all()
    assert df["tag"].eq("a:b").all()
    assert [int(i) for i in df["id"]] == sorted((int(i) for i in df["id"]), reverse=True)


def make_sqlite(path: Path, n: int = 5) -> Path:
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "order" (id INTEGER, phone INTEGER, price REAL, note TEXT)')
        db.executemany(
            'INSERT INTO "order" VALUES (?, ?, ?, ?)',
            [(i, 600000000 + i if i % 3 else None, i + 0.5, f"n{i}") for i in range(n)],
        )
        db.execute("CREATE TABLE Clients (phone TEXT)")
        db.execute("INSERT INTO Clients VALUES ('0612345678')")
    return path


def test_sqlite_table_name_is_quoted_and_types_become_strings(tmp_path: Path) -> None:
    # "order" is an SQL keyword: it only works if the loader quotes the name.
    df = load_recipients(db_url=sqlite_url(make_sqlite(tmp_path / "db.sqlite")), query="order")
    assert rows(df)[:3] == [
        ["0", "", "0.5", "n0"],
        ["1", "600000001", "1.5", "n1"],
        ["2", "600000002", "2.5", "n2"],
    ]


def test_sqlite_chunked_read_of_a_table_bigger_than_chunksize(tmp_path: Path) -> None:
    url = sqlite_url(make_sqlite(tmp_path / "db.sqlite", n=2_500))
    df = load_recipients(db_url=url, query='SELECT * FROM "order" ORDER BY id', chunksize=1000)
    assert len(df) == 2_500
    assert df["id"].tolist() == [str(i) for i in range(2_500)]
    assert_contract(df)


def test_sqlite_write_statements_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    url = sqlite_url(make_sqlite(tmp_path / "db.sqlite"))
    for query in (
        'DELETE FROM "order"',
        'UPDATE "order" SET note = 1',
        'DROP TABLE "order"',
        'INSERT INTO "order" VALUES (9, 9, 9, 9)',
        'SELECT * FROM "order"; DROP TABLE "order"',
        'SELECT * INTO other FROM "order"',
        "order; DROP TABLE Clients",
        "PRAGMA writable_schema = 1",
    ):
        message = error_of(db_url=url, query=query)
        assert "refusing" in message, query
    assert len(load_recipients(db_url=url, query="order")) == 5
    assert len(load_recipients(db_url=url, query="Clients")) == 1


def test_sqlite_query_failure_names_the_database_error(tmp_path: Path) -> None:
    url = sqlite_url(make_sqlite(tmp_path / "db.sqlite"))
    message = error_of(db_url=url, query="SELECT nope FROM Clients")
    assert message.startswith("the query failed") and "no such column: nope" in message


def test_sqlite_missing_database_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    message = error_of(db_url=sqlite_url(missing), query="customers")
    assert "not found" in message
    assert not missing.exists()


def test_query_returning_no_rows_is_an_empty_campaign(tmp_path: Path) -> None:
    url = sqlite_url(make_sqlite(tmp_path / "db.sqlite"))
    frame = load_recipients(db_url=url, query="SELECT * FROM Clients WHERE 1 = 0")
    assert len(frame) == 0 and len(frame.columns) > 0
    assert find_phone_column(list(frame.columns))


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> str:
    return require_server("PostgreSQL on 127.0.0.1:5432", PG_URLS)


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    name = f"recipients_test_{uuid.uuid4().hex[:10]}"
    execute(
        pg_url,
        f"CREATE TABLE {name} (id integer, phone bigint, label text, amount numeric(8, 2),"
        " seen date, ok boolean)",
        f"INSERT INTO {name} VALUES (1, 612345678, 'a:b 100%', 12.50, '2024-01-02', true),"
        " (2, NULL, NULL, NULL, NULL, NULL)",
        f"INSERT INTO {name} SELECT i, 600000000 + i, 'x', 1, NULL, false"
        " FROM generate_series(3, 2500) AS i",
        f"CREATE SEQUENCE {name}_seq",
    )
    yield name
    execute(pg_url, f"DROP TABLE IF EXISTS {name}", f"DROP SEQUENCE IF EXISTS {name}_seq")


@pytest.mark.postgres
def test_postgres_table_name_with_a_plain_postgresql_url(pg_url: str, pg_table: str) -> None:
    assert pg_url.startswith("postgresql://")  # rewritten to psycopg 3 by the loader
    df = load_recipients(db_url=pg_url, query=pg_table)
    assert_contract(df)
    assert rows(df)[:2] == [
        ["1", "612345678", "a:b 100%", "12.50", "2024-01-02", "true"],
        ["2", "", "", "", "", ""],  # NULL bigint is "", never "nan" nor "612345678.0"
    ]


@pytest.mark.postgres
def test_postgres_chunked_read_of_a_table_bigger_than_chunksize(pg_url: str, pg_table: str) -> None:
    query = f"SELECT id, phone FROM {pg_table} ORDER BY id"
    df = load_recipients(db_url=pg_url, query=query, chunksize=1000)
    assert len(df) == 2500
    assert df["id"].tolist() == [str(i) for i in range(1, 2501)]
    assert df["phone"].iloc[-1] == "600002500"


@pytest.mark.postgres
def test_postgres_select_with_literals_and_casts(pg_url: str, pg_table: str) -> None:
    query = (
        f"SELECT id::text AS id, label FROM {pg_table} "
        "WHERE label LIKE 'a:b 1%' AND label <> 'x;y' -- a comment; with a semicolon\n"
    )
    assert rows(load_recipients(db_url=pg_url, query=query)) == [["1", "a:b 100%"]]


@pytest.mark.postgres
def test_postgres_loader_never_writes(pg_url: str, pg_table: str) -> None:
    refused = (
        f"DELETE FROM {pg_table}",
        f"delete from {pg_table} where id > 0",
        f"UPDATE {pg_table} SET phone = NULL",
        f"DROP TABLE {pg_table}",
        f"TRUNCATE {pg_table}",
        f"WITH gone AS (DELETE FROM {pg_table} RETURNING *) SELECT * FROM gone",
        f"SELECT 1; DELETE FROM {pg_table}",
        f"SELECT 'a\\', 1; DELETE FROM {pg_table}; --'",
        f"SELECT * INTO {pg_table}_copy FROM {pg_table}",
    )
    for query in refused:
        assert "refusing" in error_of(db_url=pg_url, query=query), query
    assert scalar(pg_url, f"SELECT count(*) FROM {pg_table}") == 2500
    assert scalar(pg_url, f"SELECT to_regclass('{pg_table}_copy') IS NULL") is True


@pytest.mark.postgres
def test_postgres_read_only_transaction_stops_a_select_that_writes(
    pg_url: str, pg_table: str
) -> None:
    # nextval() passes the keyword check; only the read-only transaction can stop it.
    message = error_of(db_url=pg_url, query=f"SELECT nextval('{pg_table}_seq')")
    assert "read-only transaction" in message
    assert scalar(pg_url, f"SELECT is_called FROM {pg_table}_seq") is False


@pytest.mark.postgres
def test_postgres_failed_query_message_masks_the_password(pg_url: str, pg_table: str) -> None:
    # The test server trusts local connections, so a password in the URL is accepted and ignored.
    with_password = pg_url.replace("@", ":Sup3r-secret@", 1)
    message = error_of(db_url=with_password, query=f"SELECT missing_column FROM {pg_table}")
    assert message.startswith("the query failed")
    assert "missing_column" in message
    assert "Sup3r-secret" not in message and "***" in message


# --------------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb_url() -> str:
    return require_server("MariaDB on 127.0.0.1:3306", MARIADB_URLS)


@pytest.fixture
def mariadb_table(mariadb_url: str) -> Iterator[str]:
    name = f"recipients_test_{uuid.uuid4().hex[:10]}"
    values = ", ".join(f"({i}, {600000000 + i}, 'x')" for i in range(3, 1201))
    execute(
        mariadb_url,
        f"CREATE TABLE {name} (id integer, phone bigint, label varchar(40))",
        f"INSERT INTO {name} VALUES (1, 612345678, 'a:b 100%'), (2, NULL, NULL), {values}",
        f"CREATE SEQUENCE {name}_seq",
    )
    yield name
    execute(mariadb_url, f"DROP TABLE IF EXISTS {name}", f"DROP SEQUENCE IF EXISTS {name}_seq")


@pytest.mark.mariadb
def test_mariadb_table_name_and_query(mariadb_url: str, mariadb_table: str) -> None:
    assert mariadb_url.startswith("mysql://")  # rewritten to PyMySQL by the loader
    df = load_recipients(db_url=mariadb_url, query=mariadb_table, chunksize=500)
    assert_contract(df)
    assert len(df) == 1200
    assert rows(df)[:2] == [["1", "612345678", "a:b 100%"], ["2", "", ""]]
    query = f"SELECT id, label FROM {mariadb_table} WHERE label LIKE 'a:b 1%'"
    assert rows(load_recipients(db_url=mariadb_url, query=query)) == [["1", "a:b 100%"]]


@pytest.mark.mariadb
def test_mariadb_loader_never_writes(mariadb_url: str, mariadb_table: str) -> None:
    for query in (
        f"DELETE FROM {mariadb_table}",
        f"REPLACE INTO {mariadb_table} VALUES (1, 1, 'x')",
        f"SELECT 'x\\'', 1; DELETE FROM {mariadb_table}; -- '",
        f"SELECT * FROM {mariadb_table} INTO OUTFILE '/tmp/leak.csv'",
    ):
        assert "refusing" in error_of(db_url=mariadb_url, query=query), query
    # NEXTVAL passes the keyword check; the read-only transaction stops it.
    message = error_of(db_url=mariadb_url, query=f"SELECT NEXTVAL({mariadb_table}_seq)")
    assert "READ ONLY" in message
    assert scalar(mariadb_url, f"SELECT count(*) FROM {mariadb_table}") == 1200


# --------------------------------------------------------------------------------------------
# Unreachable databases and URLs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_unreachable_database_message_masks_the_password(scheme: str) -> None:
    url = f"{scheme}://alice:Sup3r-secret@127.0.0.1:{closed_port()}/test"
    message = error_of(db_url=url, query="customers")
    assert message.startswith("cannot connect to the database")
    assert "alice:***@127.0.0.1" in message
    assert "Sup3r-secret" not in message


def test_require_server_skips_locally_and_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    down = (f"postgresql://postgres@127.0.0.1:{closed_port()}/test",)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_server("PostgreSQL", down)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_server("PostgreSQL", down)


def test_invalid_and_unsupported_database_urls() -> None:
    assert "not a valid database URL" in error_of(db_url="not a url", query="t")
    message = error_of(db_url="oracle://scott:tiger-pw@db.example/orcl", query="t")
    assert message.startswith("unsupported database URL") and "tiger-pw" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("mysql+pymysql://root:p%40ss@127.0.0.1/test", "mysql+pymysql://root:***@127.0.0.1/test"),
        ("sqlite:///data/samples/recipients.sqlite", "sqlite:///data/samples/recipients.sqlite"),
        ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=***"),
        ("not a url u:pw@", "not a url u:pw@"),
        ("weird://user:pw@[::1", "weird://user:***@[::1"),
    ],
)
def test_mask_db_url(url: str, expected: str) -> None:
    assert mask_db_url(url) == expected


@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
    password=st.text(min_size=4, max_size=20).filter(lambda p: p.strip() == p and p != ""),
    scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "mysql", "mariadb+pymysql"]),
)
def test_mask_db_url_never_shows_the_password(user: str, password: str, scheme: str) -> None:
    masked = mask_db_url(f"{scheme}://{user}:{quote(password, safe='')}@db.internal:5432/crm")
    assert masked == f"{scheme}://{user}:***@db.internal:5432/crm"


# --------------------------------------------------------------------------------------------
# Bad input: one clear line each
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in error_of(path=tmp_path / "nope.csv")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a directory" in error_of(path=tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in error_of(path=write(tmp_path, "r.csv", b""))
    assert "empty" in error_of(path=write(tmp_path, "r.xlsx", b""))


def test_blank_file(tmp_path: Path) -> None:
    assert "empty" in error_of(path=write(tmp_path, "r.csv", "\n\n  \n"))


def test_header_only(tmp_path: Path) -> None:
    assert "no data rows" in error_of(path=write(tmp_path, "r.csv", "id;phone\n"))
    assert "no data rows" in error_of(path=write(tmp_path, "r2.csv", "id;phone\n;\n\n"))


def test_header_only_workbook(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "phone"])
    workbook.save(tmp_path / "r.xlsx")
    assert "no data rows" in error_of(path=tmp_path / "r.xlsx")


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02"


def test_binary_file_named_csv(tmp_path: Path) -> None:
    assert "PNG image" in error_of(path=write(tmp_path, "r.csv", PNG))
    assert "not a text file" in error_of(path=write(tmp_path, "r2.csv", b"id\x00\x01\x02phone"))


def test_png_or_plain_zip_named_xlsx(tmp_path: Path) -> None:
    assert "not a valid .xlsx" in error_of(path=write(tmp_path, "r.xlsx", PNG))
    with zipfile.ZipFile(tmp_path / "z.xlsx", "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    assert "not a valid .xlsx" in error_of(path=tmp_path / "z.xlsx")
    truncated = write(tmp_path, "t.xlsx", b"PK\x03\x04" + b"\x00" * 40)
    assert "not a valid .xlsx" in error_of(path=truncated)


def test_csv_text_named_xlsx(tmp_path: Path) -> None:
    assert "perhaps a CSV" in error_of(path=write(tmp_path, "r.xlsx", "id;phone\n1;06\n"))


def test_undecodable_encoding(tmp_path: Path) -> None:
    # 0x81 and 0x8d are neither UTF-8 nor Windows-1252.
    message = error_of(path=write(tmp_path, "r.csv", b"id;phone\n1;\x81\x8d\n"))
    assert "cannot decode" in message and "UTF-8" in message


def test_mixed_encodings_are_refused_rather_than_garbled(tmp_path: Path) -> None:
    content = "id;ville\n1;Orléans\n".encode() + "2;Orléans\n".encode("cp1252")
    assert "mixes UTF-8 and Windows-1252" in error_of(path=write(tmp_path, "r.csv", content))


@pytest.mark.parametrize("name", ["r.json", "r.ods", "recipients"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    message = error_of(path=write(tmp_path, name, "id;phone\n1;06\n"))
    assert "unsupported file type" in message and ".csv" in message and ".xlsx" in message


def test_old_xls_format(tmp_path: Path) -> None:
    assert "save it as .xlsx" in error_of(path=write(tmp_path, "r.xls", b"\xd0\xcf\x11\xe0"))


def test_source_arguments(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "r.csv", "phone\n06\n")
    db = sqlite_url(SAMPLE_SQLITE)
    assert "exactly one" in error_of()
    assert "exactly one" in error_of(path="", db_url="")
    assert "exactly one" in error_of(path=csv_path, db_url=db, query="customers")
    assert "query is needed" in error_of(db_url=db)
    assert "query is needed" in error_of(db_url=db, query="  ")
    assert "query applies to a database" in error_of(path=csv_path, query="customers")
    assert "sheet applies" in error_of(path=csv_path, sheet="Clients")
    assert "sheet applies" in error_of(db_url=db, query="customers", sheet="Clients")
    assert "chunksize" in error_of(db_url=db, query="customers", chunksize=0)


def test_password_not_in_message_when_query_is_missing() -> None:
    message = error_of(db_url="postgresql://u:Sup3r-secret@127.0.0.1/db")
    assert "Sup3r-secret" not in message and "u:***@" in message


def test_statement_that_is_neither_a_table_nor_a_select() -> None:
    message = error_of(db_url=sqlite_url(SAMPLE_SQLITE), query="my customers")
    assert "refusing a query that starts with MY" in message


# --------------------------------------------------------------------------------------------
# find_phone_column
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Téléphone",
        "TELEPHONE",
        "telephone",
        "Tél.",
        "TEL",
        "tel",
        "Portable",
        "PORTABLE",
        "Mobile",
        "GSM",
        "Numéro",
        "numero",
        "Numéro de téléphone",
        "N° de téléphone",
        "N° tél",
        "phone",
        "Phone Number",
        "phone_number",
        "phoneNumber",
        "MSISDN",
        "msisdn",
        "Téléphone portable",
        "tel_mobile",
        "Cell Phone",
        "  Mobile  ",
    ],
)
def test_find_phone_column_usual_headers(header: str) -> None:
    assert find_phone_column(["id", "Nom", header, "email"]) == header


def test_find_phone_column_prefers_a_mobile_column_over_a_generic_one() -> None:
    assert find_phone_column(["Téléphone", "Portable", "email"]) == "Portable"
    assert find_phone_column(["Numéro", "tel"]) == "tel"  # "Numéro" alone is the last resort


def test_find_phone_column_preferred() -> None:
    columns = ["Téléphone", "Mobile pro", "email"]
    assert find_phone_column(columns, "Mobile pro") == "Mobile pro"
    assert find_phone_column(columns, "mobile PRO") == "Mobile pro"
    assert find_phone_column(columns, "telephone") == "Téléphone"
    assert find_phone_column(columns, None) == "Téléphone"
    assert find_phone_column(columns, "") == "Téléphone"


# The columns' names are the file's first line: a file given by mistake would put its first
# line (a password, a key) in the run's log. They used to be listed; now they are counted.


def test_find_phone_column_preferred_missing_counts_the_columns() -> None:
    with pytest.raises(RecipientsError) as info:
        find_phone_column(["client_ref", "Téléphone fixe"], "portable")
    message = str(info.value)
    assert "'portable'" in message  # what the operator typed
    assert "2 columns" in message and "--phone-column" in message
    assert "client_ref" not in message and "fixe" not in message


def test_find_phone_column_none_counts_the_columns() -> None:
    with pytest.raises(RecipientsError) as info:
        find_phone_column(["id", "first_name", "email"])
    message = str(info.value)
    assert "no phone column" in message and "3 columns" in message
    assert "--phone-column" in message and "Phone column" in message
    assert "'id'" not in message and "first_name" not in message and "email" not in message


def test_find_phone_column_headerless_file_does_not_leak_a_number() -> None:
    with pytest.raises(RecipientsError) as info:
        find_phone_column(["1001", "Camille", "0612345678"])
    message = str(info.value)
    assert "Camille" not in message and "1001" not in message and "345" not in message
    assert "header line missing" in message


def test_find_phone_column_echoes_a_long_typed_name_shortened() -> None:
    with pytest.raises(RecipientsError) as info:
        find_phone_column(["a"], "x" * 500)
    message = str(info.value)
    assert "x" * 39 in message and "x" * 41 not in message and "the only column" in message


def _variants(candidate: str) -> st.SearchStrategy[str]:
    def strip_accents(text: str) -> str:
        decomposed = unicodedata.normalize("NFKD", text)
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch))

    return st.tuples(
        st.sampled_from([str.lower, str.upper, str.title, lambda s: s]),
        st.booleans(),
        st.sampled_from([" ", "_", "-", ".", ""]),
        st.sampled_from(["", " ", "  "]),
    ).map(
        lambda t: (
            t[3] + t[0](strip_accents(candidate) if t[1] else candidate).replace(" ", t[2]) + t[3]
        )
    )


@given(data=st.data(), candidate=st.sampled_from(PHONE_COLUMN_CANDIDATES))
def test_find_phone_column_ignores_case_accents_and_separators(
    data: st.DataObject, candidate: str
) -> None:
    header = data.draw(_variants(candidate))
    assert find_phone_column(["id", "prénom", header, "email"]) == header


# --------------------------------------------------------------------------------------------
# reading an opt-out list
# --------------------------------------------------------------------------------------------


def test_number_list_one_per_line_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, "stop.txt", "0612345678\n+33 7 81 23 45 67\n\n06.12.34.56.79\n")
    assert load_suppression_list(path).numbers == {"+33612345678", "+33781234567", "+33612345679"}


def test_number_list_csv_with_header_picks_the_phone_column(tmp_path: Path) -> None:
    path = write(tmp_path, "stop.csv", "date;Téléphone;motif\n2024-01-02;06 12 34 56 78;STOP\n")
    assert load_suppression_list(path).numbers == {"+33612345678"}


def test_number_list_without_header_picks_the_column_of_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "stop.csv", "Camille,0612345678\nLouis,+33781234567\n")
    assert load_suppression_list(path).numbers == {"+33612345678", "+33781234567"}


def test_number_list_single_column_with_header_bom_and_cp1252(tmp_path: Path) -> None:
    listed = load_suppression_list(write(tmp_path, "a.csv", "\ufeffnumero\n0612345678\n"))
    assert listed.numbers == {"+33612345678"}
    path = write(tmp_path, "b.csv", "Numéro à exclure\r\n0612345678\r\n", "cp1252")
    assert load_suppression_list(path).numbers == {"+33612345678"}


def test_number_list_from_a_workbook(tmp_path: Path) -> None:
    listed = load_suppression_list(make_workbook(tmp_path / "stop.xlsx"))
    assert listed.numbers == {"+33612345678"}


def test_number_list_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecipientsError, match="empty"):
        load_suppression_list(write(tmp_path, "stop.csv", b""))
    with pytest.raises(RecipientsError, match="no phone number below"):
        load_suppression_list(write(tmp_path, "stop2.csv", "phone\n"))


def test_number_list_bad_input(tmp_path: Path) -> None:
    with pytest.raises(RecipientsError, match="file not found"):
        load_suppression_list(tmp_path / "missing.csv")
    with pytest.raises(RecipientsError, match="directory"):
        load_suppression_list(tmp_path)
    with pytest.raises(RecipientsError, match="PNG"):
        load_suppression_list(write(tmp_path, "stop.csv", PNG))
    with pytest.raises(RecipientsError, match="no column of .* holds phone numbers"):
        load_suppression_list(write(tmp_path, "names.csv", "name;email\njean;j@example.org\n"))
