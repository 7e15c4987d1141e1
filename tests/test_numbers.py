"""Phone numbers: what people type, what we send, what we reject and why (tasks/numbers/).

The table below is the contract in examples (compliance.md section 5); the hypothesis tests hold
the fast column path to the row-by-row reference on messy input of every kind.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tasks import errors, i18n
from tasks.numbers import (
    Parsed,
    clean_numbers,
    fast,
    mark_duplicates,
    mask_number,
    mask_numbers_in_text,
    mask_phone_numbers,
    normalize_number,
    parse_loose,
    prefix_table,
    reference,
)
from tasks.numbers.masking import is_campaign_id, is_phone_number
from tasks.outcomes import (
    CLEANING_REASONS,
    DUPLICATE,
    EMPTY,
    FOREIGN,
    INVALID,
    MULTIPLE_NUMBERS,
    NOT_A_NUMBER,
    NOT_MOBILE,
    TERRITORIES,
)
from tasks.plan import new_campaign_id

FR = "+33612345678"
NBSP, NNBSP = "\u00a0", "\u202f"

# (raw cell, expected E.164 or reject reason, expected territory). Synthetic numbers only.
CASES: list[tuple[object, str, str | None]] = [
    # Fine as they are for phonenumbers.
    ("0612345678", FR, "FR"),
    ("06 12 34 56 78", FR, "FR"),
    ("06.12.34.56.78", FR, "FR"),
    ("06-12-34-56-78", FR, "FR"),
    ("06/12/34/56/78", FR, "FR"),
    (NBSP.join(["06", "12", "34", "56", "78"]), FR, "FR"),
    (NNBSP.join(["06", "12", "34", "56", "78"]), FR, "FR"),
    ("０６１２３４５６７８", FR, "FR"),  # full-width digits
    ("＋３３６１２３４５６７８", FR, "FR"),  # full-width plus too
    # Decimal digits of other scripts, as phone keyboards set to Arabic, Persian or Hindi type.
    ("٠٦١٢٣٤٥٦٧٨", FR, "FR"),  # Arabic-Indic
    ("۰۶ ۱۲ ۳۴ ۵۶ ۷۸", FR, "FR"),  # Extended Arabic-Indic (Persian, Urdu)
    ("०६.१२.३४.५६.७८", FR, "FR"),  # Devanagari
    ("+٣٣ ٦ ١٢ ٣٤ ٥٦ ٧٨", FR, "FR"),
    ("‏٠٦٩٠ ١٢ ٣٤ ٥٦", "+590690123456", "GP"),  # with a right-to-left mark
    ("৬১২৩৪৫৬৭৮", FR, "FR"),  # Bengali, leading zero lost
    ("tel:+33612345678", FR, "FR"),
    ("TEL: 06 12 34 56 78", FR, "FR"),
    ("0033612345678", FR, "FR"),
    ("0033 6 12 34 56 78", FR, "FR"),
    ("33612345678", FR, "FR"),
    ("+33612345678", FR, "FR"),
    ("+33 6 12 34 56 78", FR, "FR"),
    ("+33 (0)6 12 34 56 78", FR, "FR"),
    ("(0)6 12 34 56 78", FR, "FR"),
    ("+330612345678", FR, "FR"),
    ("612345678", FR, "FR"),  # leading zero lost in a spreadsheet
    ("  06 12 34 56 78\t", FR, "FR"),
    ("\ufeff0612345678", FR, "FR"),  # byte order mark of the first cell
    ("06\u200b12345678", FR, "FR"),  # zero-width space pasted from a web page
    ("0612345678, ", FR, "FR"),  # a stray list separator is not a second number
    ("07 81 23 45 67", "+33781234567", "FR"),
    ("+33 7 81 23 45 67", "+33781234567", "FR"),
    # Spreadsheet floats, as text and as values.
    ("612345678.0", FR, "FR"),
    ("612345678,0", FR, "FR"),
    ("0612345678.00", FR, "FR"),
    (612345678.0, FR, "FR"),
    (612345678, FR, "FR"),
    (33612345678, FR, "FR"),
    (np.float64(612345678.0), FR, "FR"),
    # Not a number: scientific notation, letters, symbols, odd values.
    ("6.12345678E+08", NOT_A_NUMBER, None),
    ("6,12345678E+08", NOT_A_NUMBER, None),
    ("06 12 34 56 78 (mobile)", NOT_A_NUMBER, None),
    ("06 12 34 56 78 ext 12", NOT_A_NUMBER, None),
    ("0612345678x12", NOT_A_NUMBER, None),
    ("Tél : 06 12 34 56 78", NOT_A_NUMBER, None),
    ("0612345678#", NOT_A_NUMBER, None),
    ("*33612345678", NOT_A_NUMBER, None),
    ("0612345678~1", NOT_A_NUMBER, None),  # phonenumbers would read "~1" as an extension
    ("n/a", NOT_A_NUMBER, None),
    ("-", NOT_A_NUMBER, None),
    ("tel:", NOT_A_NUMBER, None),
    (6.5, NOT_A_NUMBER, None),
    (-612345678, NOT_A_NUMBER, None),
    (math.inf, NOT_A_NUMBER, None),
    (True, NOT_A_NUMBER, None),
    # Two numbers in one cell.
    ("0612345678, 0712345678", MULTIPLE_NUMBERS, None),
    ("06 12 34 56 78 / 07 81 23 45 67", MULTIPLE_NUMBERS, None),
    ("0612345678;0781234567", MULTIPLE_NUMBERS, None),
    ("0612345678 0781234567", MULTIPLE_NUMBERS, None),
    ("0612345678-0781234567", MULTIPLE_NUMBERS, None),
    ("06123456780781234567", INVALID, None),  # one run of 20 digits: nothing to split on
    ("+33612345678 +33781234567", MULTIPLE_NUMBERS, None),
    ("0612345678\n0781234567", MULTIPLE_NUMBERS, None),
    # Blank.
    ("", EMPTY, None),
    ("   ", EMPTY, None),
    (NBSP, EMPTY, None),
    (None, EMPTY, None),
    (float("nan"), EMPTY, None),
    (pd.NA, EMPTY, None),
    # Overseas mobiles, written nationally, with +33 or with their own code.
    ("0690123456", "+590690123456", "GP"),
    ("0690 12 34 56", "+590690123456", "GP"),
    ("690123456", "+590690123456", "GP"),
    ("+33 6 90 12 34 56", "+590690123456", "GP"),
    ("0033 690 12 34 56", "+590690123456", "GP"),
    ("+590 690 12 34 56", "+590690123456", "GP"),
    ("00590 690123456", "+590690123456", "GP"),
    ("0691 22 34 56", "+590691223456", "GP"),
    ("0696 12 34 56", "+596696123456", "MQ"),
    ("0697123456", "+596697123456", "MQ"),
    ("0694 12 34 56", "+594694123456", "GF"),
    ("0692 12 34 56", "+262692123456", "RE"),
    ("0693 12 34 56", "+262693123456", "RE"),
    ("+262 692 12 34 56", "+262692123456", "RE"),
    ("0639 01 23 45", "+262639012345", "YT"),
    ("+262 639 01 23 45", "+262639012345", "YT"),
    ("+508 55 12 34", "+508551234", "PM"),
    ("+687 75 12 34", "+687751234", "NC"),
    ("+689 87 12 34 56", "+68987123456", "PF"),
    ("+681 82 12 34", "+681821234", "WF"),
    # Valid, but not a mobile: landlines, overseas landlines, VoIP, toll-free, premium.
    ("01 23 45 67 89", NOT_MOBILE, None),
    ("05 12 34 56 78", NOT_MOBILE, None),
    ("0590 12 34 56", NOT_MOBILE, None),
    ("+590 590 12 34 56", NOT_MOBILE, None),
    ("0262 12 34 56", NOT_MOBILE, None),
    ("09 12 34 56 78", NOT_MOBILE, None),
    ("0800 12 34 56", NOT_MOBILE, None),
    ("08 91 23 45 67", NOT_MOBILE, None),
    ("0899 12 34 56", NOT_MOBILE, None),
    ("+32 12 34 56 78", NOT_MOBILE, None),  # a foreign landline is not a mobile first
    # Digits, but no valid number.
    ("0701234567", INVALID, None),
    ("07 12 34 56 78", INVALID, None),
    ("0612345", INVALID, None),
    ("06 12 34 56 7", INVALID, None),
    ("061234567890", INVALID, None),
    ("+33 6 12 34 56 7", INVALID, None),
    ("0 6 9 5", INVALID, None),
    ("0", INVALID, None),
    ("+590 612345678", INVALID, None),
    # Foreign mobiles.
    ("+32 470 12 34 56", FOREIGN, None),
    ("0032470123456", FOREIGN, None),
    ("+44 7400 123456", FOREIGN, None),
    ("+41 79 123 45 67", FOREIGN, None),
    ("+1 212 555 0123", FOREIGN, None),
]

FOREIGN_ALLOWED = [
    ("+32 470 12 34 56", "+32470123456", "BE"),
    ("0032470123456", "+32470123456", "BE"),
    ("+44 7400 123456", "+447400123456", "GB"),
    ("+41 79 123 45 67", "+41791234567", "CH"),
    ("+1 212 555 0123", "+12125550123", "US"),
    ("06 12 34 56 78", FR, "FR"),  # French numbers keep their territory
    ("+32 12 34 56 78", NOT_MOBILE, None),
]


def expected(value: str, territory: str | None) -> Parsed:
    if value.startswith("+"):
        return Parsed(value, territory, None)
    return Parsed(None, None, value)


def rows(frame: pd.DataFrame) -> list[Parsed]:
    """The frame's rows as Parsed values, NaN read as None."""
    return [
        Parsed(*(None if pd.isna(v) else v for v in row))
        for row in frame[["e164", "territory", "reason"]].itertuples(index=False)
    ]


def test_the_table_covers_every_reason_and_territory() -> None:
    reasons = {v for _, v, _ in CASES if not v.startswith("+")}
    territories = {t for _, _, t in CASES if t}
    assert reasons == set(CLEANING_REASONS)
    assert territories == set(TERRITORIES)
    assert len(CASES) >= 60


@pytest.mark.parametrize(("raw", "value", "territory"), CASES, ids=repr)
def test_normalize_number(raw: object, value: str, territory: str | None) -> None:
    assert normalize_number(raw) == expected(value, territory)


def test_clean_numbers_gives_the_table_on_a_column() -> None:
    raws = [raw for raw, _, _ in CASES]
    index = pd.Index([f"row{i}" for i in range(len(raws))])
    cleaned = clean_numbers(pd.Series(raws, index=index, dtype=object))
    assert list(cleaned.columns) == ["e164", "territory", "reason"]
    assert cleaned.index.equals(index)
    assert rows(cleaned) == [expected(v, t) for _, v, t in CASES]


@pytest.mark.parametrize(("raw", "value", "territory"), FOREIGN_ALLOWED, ids=repr)
def test_foreign_numbers_pass_when_allowed(raw: str, value: str, territory: str | None) -> None:
    assert normalize_number(raw, allow_foreign=True) == expected(value, territory)
    cleaned = clean_numbers(pd.Series([raw]), allow_foreign=True)
    assert rows(cleaned) == [expected(value, territory)]


def test_satellite_numbers_stay_foreign_even_when_foreign_is_allowed() -> None:
    # A non-geographic network has no country, so no sending hours to plan with.
    example = phonenumbers.example_number_for_non_geo_entity(881)
    assert example is not None
    assert phonenumbers.number_type(example) == phonenumbers.PhoneNumberType.MOBILE
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert normalize_number(e164, allow_foreign=True) == Parsed(None, None, FOREIGN)
    assert parse_loose(e164) == e164  # still a valid number for a stop list


def test_saint_barthelemy_and_saint_martin_are_planned_as_guadeloupe() -> None:
    # +590 numbers cannot be told apart; whatever phonenumbers says, the territory is GP.
    for region in ("BL", "MF"):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        assert example is not None
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        assert normalize_number(e164) == Parsed(e164, "GP", None)


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(["0612345678", None, "06 12 34 56 78", "0612345678", "x"]),  # pandas str
        pd.Series(["0612345678", None, "x"], dtype="string"),
        pd.Series([612345678.0, np.nan, 6.5, -1.0, 690123456.0]),
        pd.Series([612345678, None, 781234567], dtype="Int64"),
        pd.Series([612345678, 781234567]),
        pd.Series([1, 1.0, True, "1", None, np.nan, pd.NA, 612345678, "612345678"], dtype=object),
        pd.Series(["0612345678", None, "0612345678", "0690123456"], dtype="category"),
        pd.Series([True, False]),
        pd.Series([], dtype=object),
        pd.Series([], dtype=float),
    ],
    ids=lambda s: str(s.dtype),
)
def test_clean_numbers_agrees_with_the_reference_on_any_column_type(column: pd.Series) -> None:
    cleaned = clean_numbers(column)
    assert cleaned.index.equals(column.index)
    assert rows(cleaned) == [normalize_number(v) for v in column]


# --- The fast path agrees with the reference ------------------------------------------------

NSN_PREFIXES = ["6", "7", "60", "63", "639", "6390", "69", "690", "691", "692", "693", "694",
                "695", "696", "697", "698", "70", "708", "709", "7093", "73", "1", "2", "26",
                "262", "269", "3", "4", "5", "59", "590", "594", "596", "8", "80", "836", "89",
                "9"]  # fmt: skip
WRITTEN_AS = ["", "0", "+33", "+33 ", "+33 (0)", "+330", "0033", "0033 ", "00330", "33", "330",
              "+590", "+590 ", "+5900", "00590", "+262", "+594 ", "+596", "00596 0", "+508",
              "+32 ", "+44", "+1 ", "0032", "0", "00", "++33", "+ 33 ", "tel:", "TEL: +33",
              "(", "0 ", "3", "+3"]  # fmt: skip
SEPARATORS = ["", " ", ".", "-", "/", "  ", " - ", NBSP, NNBSP, "\t", "(", ")", "\u2013"]
DECORATIONS = ["", "", "", ".0", ",0", ". 0", " ", "\n", "x12", " (mobile)", "#", "E+08", ",",
               ", 07 81 23 45 67", " / 0781234567", "+33781234567", " 0781234567", "\u200e",
               "0", "00"]  # fmt: skip
FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
# The zero of a few scripts' decimal digits (Arabic-Indic, Persian, Devanagari, Bengali, Thai,
# mathematical bold, which NFKC already maps).
OTHER_ZEROS = ["\u0660", "\u06f0", "\u0966", "\u09e6", "\u0e50", "\U0001d7ce"]


def in_script(text: str, zero: str) -> str:
    return text.translate({ord("0") + i: chr(ord(zero) + i) for i in range(10)})


@st.composite
def messy_numbers(draw: st.DrawFn) -> str:
    """A number as people write it: a real prefix, random digits, any grouping and clutter."""
    prefix = draw(st.sampled_from(NSN_PREFIXES))
    size = draw(st.sampled_from([9, 9, 9, 9, 8, 10, 6, 12]))
    rest = draw(st.text("0123456789", min_size=max(size - len(prefix), 0), max_size=size))
    digits = (prefix + rest)[:size]
    cuts = sorted(draw(st.lists(st.integers(0, len(digits)), max_size=5)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    text = draw(st.sampled_from(SEPARATORS)).join(g for g in groups if g)
    text = draw(st.sampled_from(WRITTEN_AS)) + text
    text = draw(st.sampled_from(["", " ", "\ufeff", "'", "*", "-"])) + text
    text += draw(st.sampled_from(DECORATIONS))
    if draw(st.integers(0, 15)) == 0:
        text = text.translate(FULL_WIDTH)
    elif draw(st.integers(0, 15)) == 0:
        text = in_script(text, draw(st.sampled_from(OTHER_ZEROS)))
    return text


cells = st.one_of(
    messy_numbers(),
    messy_numbers(),
    messy_numbers(),
    st.text(max_size=16),
    st.text("0123456789 +.-()/,;", max_size=24),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10**12),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cells, min_size=1, max_size=40), st.booleans())
def test_fast_path_agrees_with_the_reference(values: list[object], allow_foreign: bool) -> None:
    column = pd.Series(values, dtype=object)
    cleaned = clean_numbers(column, allow_foreign=allow_foreign)
    assert rows(cleaned) == [normalize_number(v, allow_foreign=allow_foreign) for v in values]


@settings(max_examples=150, deadline=None)
@given(st.lists(messy_numbers(), min_size=1, max_size=40))
def test_fast_path_agrees_on_a_text_column(values: list[str]) -> None:
    cleaned = clean_numbers(pd.Series(values))  # pandas' own str dtype
    assert rows(cleaned) == [normalize_number(v) for v in values]


FAST_SHAPES = ["{n}", "0{n}", "+33{n}", "+330{n}", "0033{n}", "00330{n}", "33{n}", "330{n}",
               "+590{n}", "+5900{n}", "00590{n}", "+262{n}", "00262 0{n}", "+594 {n}",
               "+596 (0){n}", "0 {n}", "+33 {n}.0", " {n} "]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(10**8, 10**9 - 1), st.sampled_from(FAST_SHAPES)),
        min_size=1,
        max_size=60,
    )
)
def test_fast_path_agrees_on_every_nine_digit_range(pairs: list[tuple[int, str]]) -> None:
    # Any national significant number, in every shape the fast path reads without parsing.
    values = [shape.format(n=nsn) for nsn, shape in pairs]
    assert rows(clean_numbers(pd.Series(values))) == [normalize_number(v) for v in values]


def test_fast_path_gives_the_same_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Big columns are read in blocks; a block size of 7 makes this table span many of them.
    monkeypatch.setattr(fast, "_BLOCK", 7)
    raws = [raw for raw, _, _ in CASES]
    assert rows(clean_numbers(pd.Series(raws, dtype=object))) == [
        expected(v, t) for _, v, t in CASES
    ]


def test_fast_path_reads_the_usual_shapes_without_the_reference() -> None:
    # Guards the speed: these must be answered from the prefix table, not by phonenumbers.
    usual = ["0612345678", "06 12 34 56 78", "06.12.34.56.78", "+33612345678", "612345678",
             "+33 6 12 34 56 78", "0033612345678", "33612345678", "+33 (0)6 12 34 56 78",
             "612345678.0", "0690123456", "+590 690 12 34 56", "0123456789", "0712345678",
             "06 12 34 56", "06 12 34 56 78 (mobile)"]  # fmt: skip
    codes, _ = fast._fast(list(usual))
    assert codes.all()


def test_prefix_automata_match_like_the_regex_engine() -> None:
    patterns = prefix_table._patterns_behind([33, *reference._OVERSEAS_COUNTRY_CODES])
    assert patterns
    rng = np.random.default_rng(7)
    for pattern in patterns:
        automaton = prefix_table._DigitAutomaton(pattern)
        compiled = re.compile(pattern)
        samples = [
            "".join(map(str, rng.integers(0, 10, size))) for size in rng.integers(0, 12, 300)
        ]
        # Also strings that do match: a random prefix of a known matching string, completed.
        samples += [s[:k] + "0" * (len(s) - k) for s in samples if compiled.fullmatch(s)
                    for k in range(len(s))]  # fmt: skip
        for text in samples:
            state = automaton.start
            for c in text:
                state = automaton.step(state, int(c))
            accepted = automaton._accept in state
            assert accepted == bool(compiled.fullmatch(text)), (pattern, text)


def test_prefix_automata_refuse_syntax_they_do_not_model() -> None:
    # A metadata update with new regex syntax must send numbers to the reference, not guess.
    for pattern in ("6.\\d{7}", "(?=6)\\d{9}", "6\\d{8}$"):
        with pytest.raises(prefix_table._Unsupported):
            prefix_table._DigitAutomaton(pattern)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_prefix_automata_accept_what_the_pattern_generates(data: st.DataObject) -> None:
    patterns = prefix_table._patterns_behind([33, *reference._OVERSEAS_COUNTRY_CODES])
    pattern = data.draw(st.sampled_from(patterns))
    text = data.draw(st.from_regex(pattern, fullmatch=True))
    automaton = prefix_table._DigitAutomaton(pattern)
    state = automaton.start
    for c in text:
        state = automaton.step(state, int(c))
    assert automaton._accept in state


# --- Duplicates -------------------------------------------------------------------------------

POOL = ["0612345678", "+33 6 12 34 56 78", "0781234567", "+33781234567", "0690123456",
        "+590 690 12 34 56", "0123456789", "0701234567", "", "n/a", "0612345678, 0781234567",
        "+32470123456"]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(POOL), max_size=30), st.booleans(), st.booleans())
def test_mark_duplicates_keeps_the_first_of_each_number(
    raws: list[str], foreign: bool, repeated_labels: bool
) -> None:
    labels = [i % 3 for i in range(len(raws))] if repeated_labels else range(100, 100 + len(raws))
    index = pd.Index(labels, dtype="int64")
    cleaned = clean_numbers(pd.Series(raws, index=index, dtype=object), allow_foreign=foreign)
    before = cleaned.copy()
    marked = mark_duplicates(cleaned)

    pd.testing.assert_frame_equal(cleaned, before)  # the input is not modified
    assert marked.index.equals(cleaned.index)
    was = rows(cleaned)
    now = rows(marked)
    accepted_before = [p.e164 for p in was if p.reason is None]
    accepted_after = [p.e164 for p in now if p.reason is None]
    assert len(accepted_after) == len(set(accepted_after))
    assert set(accepted_after) == set(accepted_before)
    seen: set[str | None] = set()
    for old, new in zip(was, now, strict=True):
        if old.reason is not None:
            assert new == old  # rejected rows are never duplicates
        elif old.e164 in seen:
            assert new == Parsed(old.e164, old.territory, DUPLICATE)  # keeps its number
        else:
            seen.add(old.e164)
            assert new == old  # the first occurrence wins


def test_mark_duplicates_on_a_known_column() -> None:
    cleaned = clean_numbers(pd.Series(["", "06 12 34 56 78", "0612345678", "n/a", "+33612345678"]))
    marked = mark_duplicates(cleaned)
    assert rows(marked) == [
        Parsed(None, None, EMPTY),
        Parsed(FR, "FR", None),
        Parsed(FR, "FR", DUPLICATE),
        Parsed(None, None, NOT_A_NUMBER),
        Parsed(FR, "FR", DUPLICATE),
    ]
    assert mark_duplicates(marked).equals(marked)  # running it twice changes nothing
    as_objects = cleaned.astype(object).where(cleaned.notna(), None)  # None, not NaN
    assert rows(mark_duplicates(as_objects)) == rows(marked)


# --- Masking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+33612345678", "+33 6 •• •• •• 78"),
        ("+33781234567", "+33 7 •• •• •• 67"),
        ("+590690123456", "+590 690 •• •• 56"),
        ("+262639012345", "+262 639 •• •• 45"),
        ("+596696123456", "+596 696 •• •• 56"),
        ("+32470123456", "+32 •• •• 56"),
        ("+12125550123", "+1 •• •• 23"),
        ("+508551234", "+508 •• •• 34"),
        ("0612345678", "•••"),
        ("+33 6 12 34 56 78", "•••"),
        ("+33", "•••"),
        ("", "•••"),
        ("+999123456789", "•••"),  # no such country code
    ],
)
def test_mask_number(e164: str, masked: str) -> None:
    assert mask_number(e164) == masked


MASK_CODES = ["33", "590", "594", "596", "262", "508", "687", "32", "44", "1", "49", "41"]


@given(st.sampled_from(MASK_CODES), st.text("0123456789", min_size=4, max_size=12))
def test_mask_never_shows_more_than_the_last_two_digits(cc: str, nsn: str) -> None:
    e164 = f"+{cc}{nsn}"
    masked = mask_number(e164)
    if not 6 <= len(cc) + len(nsn) <= 15:  # not E.164
        assert masked == "•••"
        return
    shown = "".join(re.findall(r"[0-9]", masked))
    if cc == "33" and len(nsn) == 9:
        head = nsn[:1]  # 6 or 7: mobile or not, nothing about the subscriber
    elif cc in ("590", "594", "596", "262") and len(nsn) == 9:
        head = nsn[:3]  # the territory's mobile prefix
    else:
        head = ""
    assert masked.startswith(f"+{cc} ")
    assert shown == cc + head + nsn[-2:]


@given(st.one_of(st.text(max_size=30), st.none(), st.integers(), st.floats(), st.binary()))
def test_mask_never_raises_and_hides_garbage(value: object) -> None:
    masked = mask_number(value)  # type: ignore[arg-type]
    if not (isinstance(value, str) and re.fullmatch(r"\+[1-9][0-9]{5,14}", value)):
        assert masked == "•••"


# The one rule for numbers inside a text (tasks/numbers/masking.py, from smspartner.errors): the
# same decision for both spellings; each row: text, in place (reports of what was typed), compact
# (the gateway's messages and every OperatorError line).
TEXT_MASKS = [
    ("call 06 12 34 56 78 now", "call 06 •• •• •• 78 now", "call 06••••••78 now"),
    ("06.12.34.56.78", "06.••.••.••.78", "06••••••78"),
    ("+33 6 12 34 56 78", "+33 6 •• •• •• 78", "+336••••••78"),
    ("+33612345678", "+336••••••78", "+336••••••78"),
    (f"06{NNBSP}12{NNBSP}34{NNBSP}56{NNBSP}78", f"06{NNBSP}••{NNBSP}••{NNBSP}••{NNBSP}78",
     "06••••••78"),
    # A count or an amount as French formatting groups it is not a number, up to 8 digits ...
    (f"1{NNBSP}234{NNBSP}567 destinataires", None, None),
    (f"12{NNBSP}345{NNBSP}678 octets", None, None),
    (f"1{NNBSP}234{NNBSP}567,89 €", None, None),
    # ... but 9 digits are a French number's length, whatever the grouping.
    (f"612{NNBSP}345{NNBSP}678", f"61•{NNBSP}•••{NNBSP}•78", "61•••••78"),
    ("612 345 678", "61• ••• •78", "61•••••78"),
    # Short runs and addresses stay.
    ("line 12 of r.csv: 300 s on 10.123.45.67:5432", None, None),
    ("123456", None, None),
    ("1234567", "12•••67", "12•••67"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "in_place", "compact"), TEXT_MASKS)
def test_one_rule_two_spellings(text: str, in_place: str | None, compact: str | None) -> None:
    assert mask_numbers_in_text(text) == (in_place or text)
    assert mask_phone_numbers(text) == (compact or text)
    assert errors.mask(text) == (compact or text)  # what an OperatorError's line shows
    # Masking what is masked changes nothing.
    assert mask_numbers_in_text(in_place or text) == (in_place or text)
    assert mask_phone_numbers(compact or text) == (compact or text)


_no_digits = st.text(st.characters(blacklist_categories=["Nd"]), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    cc=st.sampled_from(MASK_CODES),
    nsn=st.text("0123456789", min_size=6, max_size=12),
    left=_no_digits,
    right=_no_digits,
)
def test_any_e164_number_in_any_text_is_masked(cc: str, nsn: str, left: str, right: str) -> None:
    e164 = f"+{cc}{nsn}"[:16]
    text = f"{left}{e164}{right}"
    for mask in (mask_numbers_in_text, mask_phone_numbers, errors.mask):
        shown = re.sub(r"\D", "", mask(text))
        assert e164[1:] not in shown, mask
        assert len(shown) <= 5  # at most "+" and 3 digits ahead, and the last two


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 99_999_999), st.sampled_from(["fr", "en"]))
def test_counts_as_the_reports_write_them_are_not_masked(count: int, lang: str) -> None:
    written = i18n.number(count, lang)  # type: ignore[arg-type]
    text = f"{written} destinataires, {written} octets"
    # French groups with U+202F ("12 345 678"), English with commas: neither is a number.
    assert mask_numbers_in_text(text) == text
    assert mask_phone_numbers(text) == text


@settings(max_examples=200, deadline=None)
@given(
    name=st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True),
    day=st.dates(),
    secs=st.integers(0, 86_399),
    tail=st.from_regex(r"[0-9a-f]{4}", fullmatch=True),
)
def test_campaign_ids_stay_as_typed_and_a_number_beside_them_is_masked(
    name: str, day: object, secs: int, tail: str
) -> None:
    stamp = f"{day:%Y%m%d}-{secs // 3600:02}{secs // 60 % 60:02}{secs % 60:02}"
    campaign = errors.known_id(f"{name}-{stamp}-{tail}")
    masked = errors.mask(f"campaign {campaign}: 06 12 34 56 78 refused")
    assert masked == f"campaign {campaign}: 06••••••78 refused"


# Campaign ids are names: never masked, in every form the tool makes them (tasks.plan.
# new_campaign_id, tasks.steps.runs.campaign_id_of_run) and as an operator types them, a
# mistyped one included, by every masker of texts, whether this process met the id or not. A
# phone number beside one, or inside one, still is masked (the number wins over the id).
CAMPAIGN_ID_WORDS = [
    ("demo-satisfaction-20251207-103031-ab31", True),
    ("demo-satisfaction-20251207-103031", True),  # the tail forgotten: quoted back as typed
    ("demo-satisfaction-20251207-1030-31", True),
    ("enquete-2024-20250607-093000-4821", True),  # digits in the stem, digits in the tail
    ("mairie-juin-20250607", True),
    ("later-3fa2c1", True),
    ("rappel-0612345678", False),
    ("rappel-06-12-34-56-78", False),
    ("r-06-12-34-56-78-20251207-103031-ab12", False),
    ("a0612345678", False),
    ("0612345678", False),  # no letter: a number
    ("20251207-103031", False),
]


@pytest.mark.parametrize(("word", "is_id"), CAMPAIGN_ID_WORDS)
def test_which_words_read_as_campaign_ids(word: str, is_id: bool) -> None:
    assert is_campaign_id(word) is is_id
    text = f"Campagne « {word} » inconnue : 06 12 34 56 78."
    for mask in (mask_phone_numbers, mask_numbers_in_text):
        shown = mask(text)
        assert (word in shown) is is_id, shown
        assert no_digits_in_common(shown, "0612345678")


def no_digits_in_common(text: str, number: str) -> bool:
    """False when a 9-digit run of ``number`` survives in ``text`` (separators ignored)."""
    digits = re.sub(r"\D", "", text)
    return not any(number[i : i + 9] in digits for i in range(len(number) - 8))


_stems = st.from_regex(r"[A-Za-z][A-Za-z0-9 _.-]{0,30}", fullmatch=True)
_RUNS = re.compile(r"\d(?:[.-]*\d)*")


@settings(max_examples=300, deadline=None)
@given(
    survey=_stems,
    at=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2098, 12, 30)),
    run=st.uuids(),
    form=st.sampled_from(["new", "scheduled", "manual", "no_tail"]),
)
def test_campaign_ids_of_every_form_the_tool_makes_are_never_masked(
    survey: str, at: datetime, run: uuid.UUID, form: str
) -> None:
    made = new_campaign_id(survey, at.replace(tzinfo=UTC))
    stem = made.rsplit("-", 1)[0]  # <survey>-<date>-<time>
    assume(not any(is_phone_number(r) for r in _RUNS.findall(stem.rsplit("-", 2)[0])))
    cid = {
        "new": made,
        "scheduled": f"{stem}-{str(run)[:6]}",  # a scheduled run's: its deployment's id
        "manual": f"{stem}-{str(run)[:8]}",  # a manual run's: its flow run's id
        "no_tail": stem,  # mistyped
    }[form]
    text = f"Campagne « {cid} » inconnue ; appelez le 06 12 34 56 78."
    assert mask_phone_numbers(text) == f"Campagne « {cid} » inconnue ; appelez le 06••••••78."
    assert mask_numbers_in_text(text) == text.replace("12 34 56", "•• •• ••")
    assert errors.mask(f"campagne {cid}.") == f"campagne {cid}."


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text("0123456789", min_size=9, max_size=15),
    plus=st.booleans(),
    seps=st.lists(st.sampled_from([" ", NBSP, NNBSP, ".", "-", "/", "", "  "]), min_size=15),
    cid=st.sampled_from([w for w, is_id in CAMPAIGN_ID_WORDS if is_id]),
    glue=st.sampled_from([" ", "", ": ", " « ", "-", "."]),
    before=st.booleans(),
)
def test_a_number_next_to_a_campaign_id_is_still_masked(
    digits: str, plus: bool, seps: list[str], cid: str, glue: str, before: bool
) -> None:
    written = ("+" if plus else "") + "".join(d + s for d, s in zip(digits, seps, strict=False))
    written = written.strip()
    text = f"{written}{glue}{cid}" if before else f"{cid}{glue}{written}"
    for mask in (mask_phone_numbers, mask_numbers_in_text, errors.mask):
        assert no_digits_in_common(mask(text), digits), (mask, text, mask(text))


# --- Loose parsing, for stop and suppression lists -------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0612345678", FR),
        ("33612345678", FR),
        ("+33 (0)6 12 34 56 78", FR),
        (612345678.0, FR),
        ("0690123456", "+590690123456"),
        ("01 23 45 67 89", "+33123456789"),  # landlines are kept: no mobile filter
        ("0800 12 34 56", "+33800123456"),
        ("+32 470 12 34 56", "+32470123456"),  # nor a foreign filter
        ("٠١ ٢٣ ٤٥ ٦٧ ٨٩", "+33123456789"),  # digits of any script
        ("०६१२३४५६७८", FR),
        ("0701234567", None),
        ("06 12 34 56 78 (mobile)", None),
        ("0612345678, 0781234567", None),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_loose(raw: object, e164: str | None) -> None:
    assert parse_loose(raw) == e164
