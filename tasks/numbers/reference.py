"""The reference path: one value at a time, built straight on phonenumbers.

Repairs and rejections that must happen before ``phonenumbers`` sees the text (NFKC, ``tel:``,
spreadsheet floats, letters, two numbers in a cell), then parse, validate, number type and
territory. ``normalize_number`` is the contract the fast path (``fast.py``) is held to;
``parse_loose`` reads any valid number (for opt-out lists). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType

from tasks.outcomes import (
    EMPTY,
    FOREIGN,
    INVALID,
    MULTIPLE_NUMBERS,
    NOT_A_NUMBER,
    NOT_MOBILE,
    TERRITORIES,
)


@dataclass(frozen=True)
class Parsed:
    """Outcome for one raw value: ``e164`` and ``territory`` when accepted, else ``reason``."""

    e164: str | None
    territory: str | None
    reason: str | None


def _rejected(reason: str) -> Parsed:
    return Parsed(None, None, reason)


# --- Text repairs and rejections that must happen before phonenumbers sees the value ---------

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# +590 also covers Saint-Barthélemy and Saint-Martin, which cannot be told apart by number.
_TERRITORY_OF_REGION = {t: t for t in TERRITORIES} | {"BL": "GP", "MF": "GP"}
# A French number that is invalid under +33 may be an overseas one written nationally
# (0690…, 0639…, +33 690…); these regions share the French trunk prefix and 9-digit plan.
_OVERSEAS_COUNTRY_CODES = sorted(
    {phonenumbers.country_code_for_region(r) for r in ("GP", "MQ", "GF", "RE", "YT", "PM")}
)
_FR_NSN_LENGTH = 9

_TEL_PREFIX = re.compile(r"^tel\s*:\s*", re.IGNORECASE)
# Spreadsheets turn 0612345678 into the float 612345678.0 (French locales write 612345678,0).
_SPREADSHEET_FLOAT = re.compile(r"^([0-9]+)[.,]0+$")
# Between two numbers people put a list separator, or start the second one with "+".
_LIST_SPLIT = re.compile(r"[,;|&/\\\n\r\t]|(?<=[0-9)])\s*(?=\+)")
_LIST_EDGES = ",;|&/\\"
_DIGITS_OF_A_NUMBER = 6  # a fragment with fewer digits is a grouping, not a second number
# No single number has 18 digits, even written 00 <cc> (0) <15 digits>.
_DIGITS_OF_TWO_NUMBERS = 18
# What may remain around the digits: separators phonenumbers skips. Anything else (including
# "~", "#", "*" and "x", which phonenumbers reads as extensions or ignores) is not a number.
_ALLOWED = re.compile(r"^[0-9\s+().\[\]/\-\u2010-\u2015\u2212]*$")
_DIGIT = re.compile(r"[0-9]")
_SEPARATED = re.compile(r"[0-9][^0-9]+[0-9]")  # digits in more than one group
_SPACES = re.compile(r"\s+")


def _as_text(raw: object) -> str | Parsed:
    """The text of a cell, or the outcome already decided by its type (NA, float, bool…)."""
    if raw is None or raw is pd.NA or raw is pd.NaT:
        return _rejected(EMPTY)
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool | np.bool_):
        return _rejected(NOT_A_NUMBER)
    if isinstance(raw, int | np.integer):
        return str(int(raw)) if int(raw) >= 0 else _rejected(NOT_A_NUMBER)
    if isinstance(raw, float | np.floating):
        value = float(raw)
        if math.isnan(value):
            return _rejected(EMPTY)
        # 612345678.0 is a number that lost its leading zero; 6.5, -6e8 or inf are not.
        if not math.isfinite(value) or not value.is_integer() or value < 0:
            return _rejected(NOT_A_NUMBER)
        return str(int(value))
    return _rejected(NOT_A_NUMBER)


def _normalized(text: str) -> str:
    """``text`` in NFKC (full-width digits and "+", NBSP), every decimal digit of any script in
    ASCII (Arabic-Indic ``٠٦…``, Devanagari ``०६…``...), without invisible marks, stripped."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        # BOM, zero-width space, LRM/RLM: pasted from web pages and phones along with numbers.
        text = "".join(
            _ascii_digit(c) for c in text if c.isascii() or unicodedata.category(c) != "Cf"
        )
    return text.strip()


def _ascii_digit(c: str) -> str:
    """``c``, or the ASCII digit of a decimal digit of another script (a phone keyboard set to
    Arabic or Hindi types those): read otherwise, an opt-out written so would suppress nobody."""
    if c.isascii():
        return c
    value = unicodedata.decimal(c, None)
    return c if value is None else "0123456789"[value]


def _repaired(text: str) -> str:
    """Normalized ``text`` without a ``tel:`` prefix, and a spreadsheet float's ".0"."""
    if text[:3].lower() == "tel":
        text = _TEL_PREFIX.sub("", text)
    if "." in text or "," in text:
        text = _SPREADSHEET_FLOAT.sub(r"\1", text)
    return text


def _cleaned_text(text: str) -> str | Parsed:
    """Repair or reject ``text`` before parsing: the result is safe to give to phonenumbers."""
    text = _normalized(text)
    if not text:
        return _rejected(EMPTY)
    text = _repaired(text)
    # Letters would become keypad digits ("(mobile)" -> 662453); this also catches 6.12E+08.
    if any(c.isalpha() for c in text):
        return _rejected(NOT_A_NUMBER)
    fragments = _LIST_SPLIT.split(text)
    long_fragments = sum(len(_DIGIT.findall(f)) >= _DIGITS_OF_A_NUMBER for f in fragments)
    digits = len(_DIGIT.findall(text))
    if long_fragments >= 2 or (digits >= _DIGITS_OF_TWO_NUMBERS and _SEPARATED.search(text)):
        return _rejected(MULTIPLE_NUMBERS)
    text = text.strip(_LIST_EDGES).strip()
    if not digits or not _ALLOWED.match(text):
        return _rejected(NOT_A_NUMBER)
    return _SPACES.sub(" ", text)


# --- The reference path ----------------------------------------------------------------------


def _overseas(number: PhoneNumber) -> PhoneNumber | None:
    """The overseas number an invalid +33 number stands for, if exactly one territory has it.

    Same as re-parsing the national form (0690…) with the territory's region: they all use the
    trunk prefix 0 and keep the 9 digits after it.
    """
    if number.italian_leading_zero or len(str(number.national_number)) != _FR_NSN_LENGTH:
        return None
    found = []
    for cc in _OVERSEAS_COUNTRY_CODES:
        candidate = PhoneNumber(country_code=cc, national_number=number.national_number)
        if phonenumbers.is_valid_number(candidate):
            found.append(candidate)
    return found[0] if len(found) == 1 else None


def _resolved(number: PhoneNumber) -> PhoneNumber | str:
    """The valid number (any type, any region) ``number`` stands for, else the reject reason."""
    if number.extension:  # cannot happen after _cleaned_text; never send to a guessed number
        return INVALID
    if number.country_code == 33 and not phonenumbers.is_valid_number(number):
        number = _overseas(number) or number
    if not phonenumbers.is_valid_number(number):
        return INVALID
    return number


def _parse(text: str) -> PhoneNumber | str:
    """A valid number (any type, any region) parsed from cleaned text, else the reject reason."""
    try:
        number = phonenumbers.parse(text, "FR")
    except NumberParseException:
        return INVALID
    return _resolved(number)


def _outcome(number: PhoneNumber | str, allow_foreign: bool) -> Parsed:
    """Accept a mobile of France or its territories (or abroad if allowed); say why not."""
    if isinstance(number, str):
        return _rejected(number)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return _rejected(NOT_MOBILE)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    territory = _TERRITORY_OF_REGION.get(region or "")
    if territory is not None:
        return Parsed(e164, territory, None)
    # "001" is a non-geographic network (satellite, global services): no country, no clock.
    if allow_foreign and region is not None and region.isalpha():
        return Parsed(e164, region, None)
    return _rejected(FOREIGN)


def normalize_number(raw: object, *, allow_foreign: bool = False) -> Parsed:
    """Reference, row-by-row path built straight on phonenumbers (repairs, parse, validate,
    type, territory)."""
    text = _as_text(raw)
    if isinstance(text, str):
        text = _cleaned_text(text)
    if isinstance(text, Parsed):
        return text
    return _outcome(_parse(text), allow_foreign)


def parse_loose(raw: object) -> str | None:
    """E.164 for any valid number in any format (for stop lists / suppression lists: no mobile
    or foreign filtering), else None."""
    text = _as_text(raw)
    if isinstance(text, str):
        text = _cleaned_text(text)
    if isinstance(text, Parsed):
        return None
    number = _parse(text)
    if isinstance(number, str):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
