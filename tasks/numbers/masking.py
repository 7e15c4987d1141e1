"""THE masker for what tasks/ shows the operator: one number, or every number in a text.

- ``mask_number(e164)``: how a report, a log or the UI shows one number it holds whole
  (``+33 6 •• •• •• 78``).
- ``mask_numbers_in_text(text)``: any text that may quote what someone typed (a cell, a file
  name, a driver's or a library's error). It keeps each number's shape (``06 •• •• •• 12``).
- ``mask_phone_numbers(text)``: the same rule as ``mask_numbers_in_text``, each number written
  again without separators (``06••••••12``): the spelling of the gateway package's own
  messages and of every ``OperatorError`` line (``tasks.errors.mask``, which also leaves
  campaign ids as typed).
- ``mask_numbers(text, known)`` / ``scrubber(e164)``: a file this tool stored earlier (a
  report, a log), scrubbed on purge or erasure. Stricter about what it touches, since it
  rewrites kept files: only a run that parses as a valid number, or whose digits are one of the
  campaign's own numbers (``number_forms``) or the erased person's; each becomes
  ``mask_number``'s form.

What counts as a phone number in a text shown to the operator is decided in ONE place,
``smspartner.errors.is_phone_number``: the gateway package masks its own messages and cannot
import tasks/, so tasks/ imports its rule rather than keeping a second one. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import phonenumbers

from smspartner.errors import is_phone_number, mask_phone_numbers
from tasks.numbers.reference import _FR_NSN_LENGTH, parse_loose

_HIDDEN = "•••"
_E164 = re.compile(r"\+([1-9][0-9]{5,14})")
_SHOWN_WITH_PREFIX = ("590", "594", "596", "262")  # overseas mobiles: +590 690 •• •• 56
_MIN_MASKED_NSN = 4  # with fewer digits the last two would be most of the number


def mask_number(e164: str) -> str:
    """What the UI may show: '+33612345678' -> '+33 6 •• •• •• 78'; '+590690123456' ->
    '+590 690 •• •• 56' style; any other E.164 keeps country code and the last 2 digits only.
    Never raises; masks garbage to '•••'."""
    m = _E164.fullmatch(e164) if isinstance(e164, str) else None
    if m is None:
        return _HIDDEN
    digits = m.group(1)
    cc = next(
        (
            digits[:k]
            for k in (1, 2, 3)
            if int(digits[:k]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
        ),
        None,
    )
    if cc is None:
        return _HIDDEN
    nsn = digits[len(cc) :]
    if len(nsn) < _MIN_MASKED_NSN:
        return _HIDDEN
    if cc == "33" and len(nsn) == _FR_NSN_LENGTH:
        return f"+33 {nsn[0]} •• •• •• {nsn[-2:]}"
    if cc in _SHOWN_WITH_PREFIX and len(nsn) == _FR_NSN_LENGTH:
        return f"+{cc} {nsn[:3]} •• •• {nsn[-2:]}"
    return f"+{cc} •• •• {nsn[-2:]}"


def mask_numbers_in_text(text: str) -> str:
    """``text`` with the middle digits of every phone number in it replaced by "•", each
    number keeping its shape: '... "06 12 34 50 12"' -> '... "06 •• •• •• 12"'. At most the
    first two digits (three after a "+") and the last two of a number survive; counts of fewer
    than 7 digits, French thousands groupings ("1 234 567") and IPv4 addresses are left alone
    (the rule: ``smspartner.errors.is_phone_number``)."""
    return mask_phone_numbers(text, in_place=True)


# -- scrubbing stored files (retention, erasure) ---------------------------------------------------
# The same masked form (``mask_number``) for numbers found in files the tool wrote earlier: a
# stored text is scrubbed when it holds any valid number, or one of the campaign's own numbers
# in any of the ways people write it.

# Separators people (and our own spreadsheet guard, U+200B) put between a number's digits.
_SEP = r"[\s.\-()/\u00a0\u202f\u200b]*"
# A run of digits and separators long enough to be a phone number.
_RUN = re.compile(r"(?<![\w])\+?\d[\d\s.\-()/\u00a0\u202f]{6,}\d(?![\w])")
_DECIMAL = re.compile(r"\d+\.\d+")
# Territories people also write under +33 (compliance.md section 5).
_ALSO_33 = frozenset({262, 508, 590, 594, 596, 681, 687, 689})


def _digits(value: str) -> str:
    return _SEP.join(re.escape(d) for d in value)


def person_pattern(e164: str) -> re.Pattern[str]:
    """Every way one number is written: ``+33612345678``, ``0033 6…``, ``33612345678``,
    ``+33 (0)6…``, ``06 12 34 56 78``, ``06.12.34.56.78``, ``612345678`` (pure)."""
    parsed = phonenumbers.parse(e164, None)
    cc, nsn = str(parsed.country_code), str(parsed.national_number)
    codes = [cc, "33"] if parsed.country_code in _ALSO_33 else [cc]
    international = "|".join(_digits(c) for c in codes)
    prefix = rf"(?:(?:\+|00)?{_SEP}(?:{international}){_SEP}(?:\(?0\)?)?{_SEP}|0{_SEP})?"
    return re.compile(rf"(?<!\d){prefix}{_digits(nsn)}(?!\d)")


def scrubber(e164: str) -> Callable[[str], str]:
    """A function that masks one person's number wherever it is in a text (pure)."""
    pattern, masked = person_pattern(e164), mask_number(e164)
    return lambda text: pattern.sub(masked, text)


def number_forms(numbers: Iterable[str]) -> frozenset[str]:
    """The digits of each number as people write it (international, 00, national, bare)."""
    forms: set[str] = set()
    for e164 in numbers:
        try:
            parsed = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            continue
        cc, nsn = str(parsed.country_code), str(parsed.national_number)
        forms.update({cc + nsn, "00" + cc + nsn, "0" + nsn, nsn, cc + "0" + nsn})
    return frozenset(forms)


def mask_numbers(text: str, known: frozenset[str] = frozenset()) -> str:
    """``text`` with every phone number masked: any digit run written like a number (a ``+`` or
    a leading 0) that is a valid number, or whose digits are one of ``known`` (pure). Decimals
    (``0.123456789``) are left alone."""

    def mask(match: re.Match[str]) -> str:
        run = match.group(0)
        digits = re.sub(r"\D", "", run)
        if not 8 <= len(digits) <= 15 or _DECIMAL.fullmatch(run):
            return run
        if digits not in known and not run.startswith(("+", "0")):
            return run
        e164 = parse_loose(run)
        if e164 is None and digits in known:
            return "•••"
        return run if e164 is None else mask_number(e164)

    return _RUN.sub(mask, text)


def has_number(text: str, known: frozenset[str] = frozenset()) -> bool:
    return mask_numbers(text, known) != text


__all__ = [
    "has_number",
    "is_phone_number",
    "mask_number",
    "mask_numbers",
    "mask_numbers_in_text",
    "mask_phone_numbers",
    "number_forms",
    "person_pattern",
    "scrubber",
]
