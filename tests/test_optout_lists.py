"""Local opt-out lists fail closed, and no error quotes what an input file holds.

A person on an opt-out list must never be texted. These pin:

- entries in any script's decimal digits (Arabic-Indic, Devanagari, full-width...) read as the
  same E.164 as in ASCII, in opt-out lists and recipients alike;
- one entry that gives no phone number refuses the whole list, as does a list with no entry;
  the message names the rows (as a spreadsheet numbers them), never their text;
- the recipients' "no phone column" error, and the file errors around it, quote no header, cell,
  sheet name or byte of the file (a credentials file given by mistake must not reach the log).
"""

from __future__ import annotations

import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tasks.numbers import (
    clean_column,
    clean_numbers,
    normalize_number,
    numbers_in_entries,
    numbers_in_entry,
    parse_loose,
)
from tasks.plan import clean_rows
from tasks.recipients import (
    RecipientsError,
    SuppressionList,
    find_phone_column,
    limits,
    load_recipients,
    load_suppression_list,
    xlsx_size_problem,
)
from tasks.recipients.text import _csv_error
from tasks.row_columns import E164, REASON

# Synthetic numbers, all valid, all distinct.
A, B, C, D = "+33612345030", "+33612345031", "+33781234533", "+33123456738"


def _decimal_zeros() -> list[str]:
    """The "0" of every set of ten decimal digits Unicode has (ASCII's first)."""
    zeros = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.decimal(chr(code), None) == 0 and all(
            unicodedata.decimal(chr(code + i), None) == i for i in range(10)
        ):
            zeros.append(chr(code))
    return zeros


ZEROS = _decimal_zeros()
ARABIC_INDIC, PERSIAN, DEVANAGARI, FULL_WIDTH = "\u0660", "\u06f0", "\u0966", "\uff10"


def in_script(text: str, zero: str) -> str:
    """``text`` with its ASCII digits written in the script whose zero is ``zero``."""
    return text.translate({ord("0") + i: chr(ord(zero) + i) for i in range(10)})


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(RecipientsError) as info:
        load_suppression_list(path)
    message = str(info.value)
    assert "\n" not in message, "an operator message is one line"
    return message


def quotes_nothing_of(message: str, path: Path, *, shortest: int = 4) -> bool:
    """No cell of the file (of ``shortest`` characters or more) appears in ``message``, and no
    seven-digit run of it either (numbers are masked anyway; rows are named by number)."""
    text = path.read_text("utf-8", errors="replace")
    cells = {c.strip() for line in text.splitlines() for c in re.split(r"[;,\t|]", line)}
    if any(len(cell) >= shortest and cell in message for cell in cells):
        return False
    digits = re.sub(r"\D", "", text)
    return not any(digits[i : i + 7] in re.sub(r"\D", "", message) for i in range(len(digits) - 6))


# Secrets a file given by mistake holds, and that must never reach a message (hence the log).
SECRETS = ("hunter2", "AKIAIOSFODNN7EXAMPLE", "s3cr3t-T0ken", "root:$6$salt$hash")


# --------------------------------------------------------------------------------------------
# Digits of every script
# --------------------------------------------------------------------------------------------


def test_unicode_has_many_digit_scripts() -> None:
    assert len(ZEROS) > 50 and ZEROS[0] == "0"
    assert {ARABIC_INDIC, PERSIAN, DEVANAGARI, FULL_WIDTH} <= set(ZEROS)


def test_entries_in_arabic_indic_devanagari_and_full_width_digits_are_suppressed(
    tmp_path: Path,
) -> None:
    # They used to be "unreadable" and dropped: those people were texted.
    text = (
        "téléphone\n"
        f"{in_script('06 12 34 50 30', ARABIC_INDIC)}\n"
        f"{in_script('06.12.34.50.31', PERSIAN)}\n"
        f"{in_script('+33 7 81 23 45 33', DEVANAGARI)}\n"
        f"{in_script('0033 1 23 45 67 38', FULL_WIDTH)}\n"
        "06 12 34 50 30\n"
    )
    listed = load_suppression_list(write(tmp_path, "stop.csv", text))
    assert listed == SuppressionList(frozenset({A, B, C, D}), read=5, column=1)


def test_recipients_in_other_scripts_are_read_like_ascii(tmp_path: Path) -> None:
    text = "nom;portable\n" + "".join(
        f"p{i};{in_script('06 12 34 50 30', zero)}\n"
        for i, zero in enumerate(("0", ARABIC_INDIC, DEVANAGARI, FULL_WIDTH))
    )
    frame = load_recipients(path=write(tmp_path, "r.csv", text))
    cleaned = clean_rows(frame, "portable", allow_foreign=False)
    assert cleaned[E164].tolist() == [A] * 4
    assert cleaned[REASON].tolist() == [None, "duplicate", "duplicate", "duplicate"]


# Numbers as people write them: national, +33, 0033, spaces, dots, dashes, parentheses.
_nsn = st.sampled_from(["6", "7", "1", "2", "3", "4", "5", "9"]).flatmap(
    lambda first: st.integers(0, 10**8 - 1).map(lambda n: f"{first}{n:08d}")
)
_written: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [
        lambda n: f"0{n}",
        lambda n: f"+33{n}",
        lambda n: f"0033{n}",
        lambda n: "0" + " ".join([n[0], *(n[i : i + 2] for i in range(1, 9, 2))]),
        lambda n: "0" + ".".join([n[0], *(n[i : i + 2] for i in range(1, 9, 2))]),
        lambda n: "0" + "-".join([n[0], *(n[i : i + 2] for i in range(1, 9, 2))]),
        lambda n: f"+33 (0){n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:]}",
        lambda n: f"(0{n[0]}) {n[1:]}",
    ]
)
_zero = st.sampled_from(ZEROS)


@settings(max_examples=300, deadline=None)
@given(nsn=_nsn, written=_written, zero=_zero, wide_plus=st.booleans())
def test_any_digit_script_reads_back_to_the_same_e164(
    nsn: str, written: Callable[[str], str], zero: str, wide_plus: bool
) -> None:
    ascii_text = written(nsn)
    e164 = parse_loose(ascii_text)
    assume(e164 is not None)
    text = in_script(ascii_text, zero)
    if wide_plus:
        text = text.replace("+", "\uff0b")
    assert parse_loose(text) == e164
    assert numbers_in_entry(text) == (e164,)
    assert normalize_number(text) == normalize_number(ascii_text)
    # The fast path, on object and pandas string columns (pandas 3 reads text as str).
    for dtype in (object, "string", "str"):
        column = pd.Series([text, ascii_text], dtype=dtype)
        assert numbers_in_entries(column) == [(e164,), (e164,)]
        found = [v if isinstance(v, str) else None for v in clean_numbers(column)["e164"]]
        assert found == [normalize_number(ascii_text).e164] * 2
        e164s, _, reasons = clean_column(column, allow_foreign=True)
        if normalize_number(ascii_text, allow_foreign=True).reason is None:
            assert e164s.tolist() == [e164, e164] and reasons[1] == "duplicate"


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(st.tuples(_nsn, _written, _zero), min_size=1, max_size=6),
    header=st.sampled_from(["", "phone\n", "Téléphone\n", "numéro\n"]),
)
def test_a_list_in_any_digit_script_suppresses_the_same_numbers(
    entries: list[tuple[str, Callable[[str], str], str]], header: str
) -> None:
    expected = {parse_loose(written(nsn)) for nsn, written, _ in entries}
    assume(None not in expected)
    text = header + "".join(f"{in_script(written(nsn), zero)}\n" for nsn, written, zero in entries)
    with tempfile.TemporaryDirectory() as folder:
        listed = load_suppression_list(write(Path(folder), "stop.csv", text))
    assert listed.numbers == expected
    assert listed.read == len(entries)


# --------------------------------------------------------------------------------------------
# Fail closed
# --------------------------------------------------------------------------------------------


def test_one_unreadable_entry_among_many_refuses_the_list(tmp_path: Path) -> None:
    # The old rule took a list as long as at most half of it was unreadable.
    good = [f"06 12 34 {n // 100:02d} {n % 100:02d}" for n in range(200)]
    lines = ["Portable", *good[:55], f"password={SECRETS[0]}", *good[55:]]
    path = write(tmp_path, "stop.csv", "\n".join(lines) + "\n")
    message = refusal(path)
    assert "row 57 holds no readable phone number" in message
    assert quotes_nothing_of(message, path)
    assert not any(secret in message for secret in SECRETS)


def test_the_message_names_rows_never_their_text(tmp_path: Path) -> None:
    lines = ["Mobile", "0612345030"]
    bad_rows = [3, 5, 6, 8, 9, 10, 12]
    for row in range(3, 13):
        lines.append(SECRETS[row % len(SECRETS)] if row in bad_rows else f"061234{row:04d}")
    path = write(tmp_path, "stop.csv", "\n".join(lines) + "\n")
    message = refusal(path)
    assert "rows 3, 5, 6, 8, 9 and 2 others hold no readable phone number" in message
    assert "correct or delete those rows" in message
    assert quotes_nothing_of(message, path)
    assert not any(secret in message for secret in SECRETS) and "Mobile" not in message


def test_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path: Path) -> None:
    # Blank lines are ignored, not errors, yet count as rows; a quoted cell on two lines is
    # one row; a header line is row 1.
    text = '\n\nphone\n0612345030\n\n"06 12\n34 50 31"\n \nunknown\n0612345033\n\n'
    assert "row 8 holds" in refusal(write(tmp_path, "stop.csv", text))
    fixed = write(tmp_path, "fixed.csv", text.replace("unknown\n", "\n"))
    assert load_suppression_list(fixed).numbers == {A, B, "+33612345033"}


def test_rows_of_a_workbook_are_its_sheet_rows(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = SECRETS[0]
    sheet["B3"], sheet["C3"] = "client", "portable"  # two blank rows above the header
    sheet["B4"], sheet["C4"] = SECRETS[1], 612345030
    sheet["B7"], sheet["C7"] = SECRETS[2], "voir dossier"
    workbook.save(tmp_path / "stop.xlsx")
    message = refusal(tmp_path / "stop.xlsx")
    assert "row 7 holds no readable phone number in column 3" in message
    assert not any(secret in message for secret in SECRETS) and "voir" not in message


@pytest.mark.parametrize(
    "content",
    [
        f"password={SECRETS[0]}\n",
        f"aws_secret_access_key = {SECRETS[1]}\n",
        f"{SECRETS[3]}:19000:0:99999:7:::\n",
        f"[database]\nuser=admin\npassword={SECRETS[0]}\ntoken={SECRETS[2]}\n",
    ],
)
@pytest.mark.parametrize("name", ["credentials", "config.ini", "stop.csv", ".env"])
def test_a_file_of_no_numbers_is_refused_without_quoting_it(
    tmp_path: Path, content: str, name: str
) -> None:
    # A one-line file used to be read as an empty list, its line logged as the column's name.
    path = write(tmp_path, name, content)
    message = refusal(path)
    assert "no column of" in message and "holds phone numbers" in message
    assert not any(secret in message for secret in SECRETS)
    assert "password" not in message and "admin" not in message
    assert quotes_nothing_of(message, path)


def test_a_one_line_file_of_words_is_a_header_with_no_entry(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, "config", "password=hunter\n"))
    assert "header line but no phone number" in message and "hunter" not in message


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "is empty"),
        ("\n\n  \n", "is empty"),
        (";;\n;\n", "is empty"),
        ("phone\n", "header line but no phone number"),
        ("phone\n\n\n", "header line but no phone number"),
        ("nom;téléphone\n", "header line but no phone number"),
    ],
)
def test_an_empty_or_header_only_list_is_refused(
    tmp_path: Path, content: str | bytes, said: str
) -> None:
    # These used to be lists that suppress nobody, read without a word.
    message = refusal(write(tmp_path, "stop.csv", content))
    assert said in message and "refusing the suppression list" in message
    assert "téléphone" not in message and "nom" not in message.split(":")[-1]


def test_an_empty_workbook_is_refused(tmp_path: Path) -> None:
    openpyxl.Workbook().save(tmp_path / "stop.xlsx")
    assert "is empty" in refusal(tmp_path / "stop.xlsx")


def test_a_header_with_digits_is_a_row_to_fix(tmp_path: Path) -> None:
    # A first row with a digit may be a mistyped number: never skipped as a header.
    message = refusal(write(tmp_path, "stop.csv", "06 12 34\n0612345030\n"))
    assert "row 1 holds" in message and "a header line holds no digits" in message


def test_a_two_column_list_uses_its_phone_column_and_ignores_the_other(tmp_path: Path) -> None:
    text = f"nom;telephone\n{SECRETS[0]};06 12 34 50 30\nMartin;+33 6 12 34 50 31\n;0781234533\n"
    listed = load_suppression_list(write(tmp_path, "stop.csv", text))
    assert listed == SuppressionList(frozenset({A, B, C}), read=3, column=2)
    assert SECRETS[0] not in repr(listed)  # nothing of the file is carried, hence logged
    # Headerless: the column of numbers is found by its content.
    text = f"{SECRETS[0]};06 12 34 50 30\n{SECRETS[2]};06 12 34 50 31\n"
    assert load_suppression_list(write(tmp_path, "bare.csv", text)).numbers == {A, B}


def test_a_row_with_no_number_in_the_phone_column_refuses_the_list(tmp_path: Path) -> None:
    # Not a blank line: a person is named, and their number is missing.
    path = write(tmp_path, "stop.csv", f"nom;telephone\nDupont;0612345030\n{SECRETS[0]};\n")
    message = refusal(path)
    assert "row 3 holds no readable phone number in column 2" in message
    assert SECRETS[0] not in message and "Dupont" not in message


def test_the_list_carries_no_content_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "stop.csv", "Téléphone;mot de passe secret\n0612345030;x\n")
    listed = load_suppression_list(path)
    assert listed == SuppressionList(frozenset({A}), read=1, column=1)
    assert "Téléphone" not in repr(listed) and "secret" not in repr(listed)


# --------------------------------------------------------------------------------------------
# The recipients' errors quote nothing of the file
# --------------------------------------------------------------------------------------------


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(RecipientsError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "content",
    [
        f"user;password\nadmin;{SECRETS[0]}\n",
        f"aws_access_key_id={SECRETS[1]}\naws_secret={SECRETS[2]}\n",
        f"{SECRETS[3]}:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n",
    ],
)
def test_no_phone_column_error_quotes_no_header(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, "recipients.csv", content)
    frame = load_recipients(path=path)
    message = error_of(lambda: find_phone_column(list(frame.columns)))
    assert message.startswith("no phone column found")
    assert "--phone-column" in message and re.search(r"\b(\d+ columns|only column)\b", message)
    assert not any(secret in message for secret in SECRETS)
    assert "password" not in message and "user" not in message
    assert quotes_nothing_of(message, path, shortest=3)
    # The operator's own column name may come back, shortened; the file's still do not.
    message = error_of(lambda: find_phone_column(list(frame.columns), "Portable pro"))
    assert "'Portable pro' not found" in message
    assert not any(secret in message for secret in SECRETS) and "password" not in message


def test_an_undecodable_byte_is_not_quoted(tmp_path: Path) -> None:
    message = error_of(lambda: load_recipients(path=write(tmp_path, "r.csv", b"phone\n\x81\x8d\n")))
    assert "cannot decode" in message and "0x81" not in message


def test_workbook_errors_quote_no_sheet_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = SECRETS[0]
    for row in (["phone", "x"], ["0612345030", "y"], ["0612345031", "z"]):
        sheet.append(row)
    workbook.create_sheet(SECRETS[2])
    workbook.save(tmp_path / "r.xlsx")
    message = error_of(lambda: load_recipients(path=tmp_path / "r.xlsx", sheet="Clients"))
    assert "'Clients' not found" in message and "2 sheets" in message
    assert not any(secret in message for secret in SECRETS)
    monkeypatch.setattr(limits, "MAX_CELLS", 4)
    message = error_of(lambda: load_recipients(path=tmp_path / "r.xlsx"))
    assert "declares 3 rows x 2 columns" in message and SECRETS[0] not in message


def test_a_zip_member_name_is_not_quoted() -> None:
    problem = xlsx_size_problem([(f"xl/{SECRETS[0]}.xml", 64 << 20, 64 << 10)])
    assert problem is not None and "1,024 times" in problem and SECRETS[0] not in problem


def test_a_parser_error_keeps_only_what_quotes_nothing(tmp_path: Path) -> None:
    message = str(_csv_error(tmp_path / "r.csv", ValueError(f"bad value {SECRETS[0]}")))
    assert "not a valid CSV file" in message and SECRETS[0] not in message
    safe = ValueError("Error tokenizing data. C error: Expected 2 fields in line 3, saw 4")
    assert "Expected 2 fields in line 3, saw 4" in str(_csv_error(Path("r.csv"), safe))
