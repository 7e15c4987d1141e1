"""Opt-out entries: every number in one entry of a list people keep by hand.

An opt-out must never be narrower than the send: an entry is read as a recipient cell is, then
again for what people write around numbers in such lists (two numbers in a cell, ``(STOP)``,
extensions). Pure: no I/O, no clock.
"""

from __future__ import annotations

import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat

from tasks.numbers.fast import clean_numbers
from tasks.numbers.reference import (
    _DIGIT,
    _DIGITS_OF_A_NUMBER,
    _LIST_SPLIT,
    Parsed,
    _as_text,
    _normalized,
    _repaired,
    _resolved,
    parse_loose,
)


def numbers_in_entry(raw: object) -> tuple[str, ...]:
    """E.164 of every valid number (any type, any region) in one entry of an opt-out list.

    An opt-out must never be narrower than the send: the cell is first read exactly as a
    recipient cell is (``parse_loose``); what that refuses is read again for what people write
    around numbers in such lists. Two numbers in one cell are both kept, and trailing notes
    (``(STOP)``, ``ext 1``, ``poste 12``) are dropped: phonenumbers' matcher finds numbers in
    text and reads extensions, which do not change which line a number reaches.
    """
    whole = parse_loose(raw)
    if whole is not None:
        return (whole,)
    text = _as_text(raw)
    if isinstance(text, Parsed):
        return ()
    text = _repaired(_normalized(text))
    if len(_DIGIT.findall(text)) < _DIGITS_OF_A_NUMBER:
        return ()
    found: list[str] = []
    for fragment in _LIST_SPLIT.split(text):
        one = parse_loose(fragment)
        if one is not None:
            found.append(one)
        elif len(_DIGIT.findall(fragment)) >= _DIGITS_OF_A_NUMBER:
            found.extend(_numbers_in_text(fragment))
    if not found:  # a separator of the list split one number ("06/12/34/56/78 (STOP)")
        found = _numbers_in_text(text)
    return tuple(dict.fromkeys(found))


def _numbers_in_text(text: str) -> list[str]:
    """Valid numbers phonenumbers' matcher finds in free text, extensions dropped."""
    found = []
    for match in phonenumbers.PhoneNumberMatcher(
        text, "FR", leniency=phonenumbers.Leniency.POSSIBLE
    ):
        number = PhoneNumber(
            country_code=match.number.country_code,
            national_number=match.number.national_number,
            italian_leading_zero=match.number.italian_leading_zero,
            number_of_leading_zeros=match.number.number_of_leading_zeros,
        )
        resolved = _resolved(number)
        if isinstance(resolved, PhoneNumber):
            found.append(phonenumbers.format_number(resolved, PhoneNumberFormat.E164))
    return found


def numbers_in_entries(raw: pd.Series) -> list[tuple[str, ...]]:
    """``numbers_in_entry`` of every value, the usual shapes through the fast path."""
    cleaned = clean_numbers(raw, allow_foreign=True)["e164"].tolist()
    slow: dict[object, tuple[str, ...]] = {}
    out: list[tuple[str, ...]] = []
    for value, e164 in zip(raw.tolist(), cleaned, strict=True):
        if isinstance(e164, str):
            out.append((e164,))
            continue
        key = value if isinstance(value, str) else repr(value)
        if key not in slow:
            slow[key] = numbers_in_entry(value)
        out.append(slow[key])
    return out
