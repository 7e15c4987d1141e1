"""Build the synthetic sample inputs recipients.sqlite and recipients.xlsx next to this script.

Run with `.venv/bin/python data/samples/make_samples.py`. The output is byte-for-byte the same on
every run (fixed zip timestamps and workbook dates), so regenerating does not dirty git.

Everyone here is made up: e-mails are on example.org (reserved by RFC 2606), the UK mobile is in
Ofcom's range for drama (07700 900xxx). Phone cells are deliberately messy, the way customer
databases and spreadsheets really are: every format people type, duplicates, landlines, overseas
and foreign mobiles, empty cells and text that is not a number.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import zipfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent
SQLITE_PATH = HERE / "recipients.sqlite"
XLSX_PATH = HERE / "recipients.xlsx"
FIXED_TIME = dt.datetime(2025, 1, 6, 9, 0, 0)

# (first_name, phone as stored, last_visit): None is SQL NULL.
CUSTOMERS: list[tuple[str, str | None, str | None]] = [
    ("Camille", "06 12 34 57 01", "2025-01-04"),
    ("Louis", "+33 6 12 34 57 02", "2024-12-20"),
    ("Léa", "0033612345703", "2024-11-02"),
    ("Hugo", "06.12.34.57.04", "2025-01-02"),
    ("Chloé", "0612345705", "2024-10-15"),
    ("Lucas", "612345706", "2024-09-30"),  # leading zero lost in a spreadsheet
    ("Manon", "612345707.0", "2024-12-01"),  # spreadsheet float
    ("Jules", "+33 (0)6 12 34 57 08", None),
    ("Emma", "07 81 23 57 09", "2024-12-24"),
    ("Gabriel", "06-12-34-57-10", "2025-01-03"),
    ("Inès", "+33612345701", "2024-12-28"),  # same number as Camille, other format
    ("Arthur", "0612345705", "2024-08-19"),  # same number as Chloé, same format
    ("Jade", "01 42 68 57 13", "2024-07-07"),  # landline (Paris)
    ("Raphaël", "04 78 12 57 14", "2024-11-11"),  # landline (Lyon)
    ("Louise", "09 72 10 57 15", "2024-10-01"),  # VoIP
    ("Adam", "0690 12 57 16", "2024-12-12"),  # Guadeloupe mobile, written nationally
    ("Alice", "+262 692 12 57 17", "2024-12-13"),  # Réunion mobile
    ("Maël", "+44 7700 900118", "2024-06-06"),  # UK mobile (foreign)
    ("Lina", "", "2024-05-05"),  # empty
    ("Paul", None, None),  # NULL
    ("Rose", "n/a", "2024-04-04"),  # text
    ("Nathan", "6.12345722E+08", "2024-03-03"),  # scientific notation: digits are gone
    ("Ambre", "0612345723 / 0712345723", "2024-02-02"),  # two numbers in one cell
    ("Tom", "06 12 34", "2024-01-01"),  # too short
    ("Julia", "0800 12 57 25", "2024-12-02"),  # toll-free
    ("Noah", "tel:+33612345726", "2024-12-03"),
    ("Anna", " 06 12 34 57 27 ", "2024-12-04"),  # stray spaces
    ("Ethan", "+33 7 12 34 57 28", "2024-12-05"),
    ("Zoé", "0712345729", "2024-12-06"),
    ("Léo", "06 12 34 57 30", "2024-12-07"),
    ("Mia", "0696 12 57 31", "2024-12-08"),  # Martinique mobile
    ("Sacha", "0639 12 57 32", "2024-12-09"),  # Mayotte mobile
    ("Nina", "+689 87 12 57 33", "2024-12-10"),  # French Polynesia mobile
    ("Eden", "06 12 34 57 34", "2024-12-11"),
    ("Lou", "06 12 34 57 35", None),
    ("Timéo", "0612345736", "2024-12-14"),
    ("Clara", "+33 6 12 34 57 37", "2024-12-15"),
    ("Axel", "07 12 34 57 38", "2024-12-16"),
    ("Agathe", "06 12 34 57 39", "2024-12-17"),
    ("Victor", "06 12 34 57 30", "2024-12-18"),  # same number as Léo
]


def email_for(first_name: str, customer_id: int) -> str:
    plain = first_name.lower().translate(str.maketrans("éèëïîôç", "eeeiioc"))
    return f"{plain}.{customer_id}@example.org"


def build_sqlite(path: Path) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE customers ("
            " id INTEGER PRIMARY KEY, first_name TEXT NOT NULL, phone TEXT,"
            " email TEXT, last_visit TEXT)"
        )
        db.executemany(
            "INSERT INTO customers (id, first_name, phone, email, last_visit)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (i, name, phone, email_for(name, i), visit)
                for i, (name, phone, visit) in enumerate(CUSTOMERS, start=1)
            ],
        )
    with sqlite3.connect(path) as db:
        db.execute("VACUUM")


# Spreadsheet rows: phones typed as numbers lose their leading zero and come back as floats.
SHEET_ROWS: list[tuple[int, str, object, str, dt.date | None]] = [
    (501, "Camille", 612345801, "Paris", dt.date(2025, 1, 4)),
    (502, "Louis", "06 12 34 58 02", "Lyon", dt.date(2024, 12, 20)),
    (503, "Léa", 612345803.0, "Lille", dt.date(2024, 11, 2)),
    (504, "Hugo", "+33 6 12 34 58 04", "Nantes", None),
    (505, "Chloé", "0612345805", "Rennes", dt.date(2024, 10, 15)),
    (506, "Lucas", 33612345806, "Bordeaux", dt.date(2024, 9, 30)),
    (507, "Manon", "01 42 68 58 07", "Paris", dt.date(2024, 12, 1)),  # landline
    (508, "Jules", None, "Nice", dt.date(2024, 12, 24)),
    (509, "Emma", 612345801, "Metz", dt.date(2025, 1, 3)),  # same number as Camille
    (510, "Gabriel", "0690 12 58 10", "Pointe-à-Pitre", dt.date(2024, 12, 28)),
    (511, "Inès", "07 81 23 58 11", "Strasbourg", dt.date(2024, 8, 19)),
    (512, "Arthur", "à rappeler", "Dijon", dt.date(2024, 7, 7)),
]
ARCHIVE_ROWS: list[tuple[str, object]] = [
    ("Raphaël", 612345890),
    ("Louise", "07 12 34 58 91"),
    ("Adam", "+262 692 12 58 92"),
]


def build_xlsx(path: Path) -> None:
    workbook = openpyxl.Workbook()
    clients = workbook.active
    assert clients is not None
    clients.title = "Clients"
    clients.append(["N° client", "Prénom", "Portable", "Ville", "Dernière visite"])
    for row in SHEET_ROWS:
        clients.append(list(row))
    for cell in clients["E"][1:]:
        cell.number_format = "DD/MM/YYYY"
    archive = workbook.create_sheet("Archive 2023")
    archive.append(["Prénom", "Téléphone"])
    for archived in ARCHIVE_ROWS:
        archive.append(list(archived))
    workbook.properties.creator = "make_samples.py"
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    workbook.save(path)
    _freeze_zip_times(path)


def _freeze_zip_times(path: Path) -> None:
    """Rewrite the zip with fixed timestamps so the file is reproducible.

    openpyxl stamps the save time into docProps/core.xml whatever the properties say.
    """
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    entries = [
        (info, re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, data))
        if info.filename == "docProps/core.xml"
        else (info, data)
        for info, data in entries
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            frozen = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            frozen.compress_type = zipfile.ZIP_DEFLATED
            frozen.external_attr = 0o644 << 16
            target.writestr(frozen, data)


def main() -> None:
    build_sqlite(SQLITE_PATH)
    build_xlsx(XLSX_PATH)
    print(f"wrote {SQLITE_PATH.name} ({len(CUSTOMERS)} customers) and {XLSX_PATH.name}")


if __name__ == "__main__":
    main()
