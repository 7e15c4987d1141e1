"""THE masker for what tasks/ shows the operator: one number, or every number in a text.

- ``mask_number(e164)``: how a report, a log or the UI shows one number it holds whole
  (``+33 6 •• •• •• 78``).
- ``mask_numbers_in_text(text)``: any text that may quote what someone typed (a cell, a file
  name, a driver's or a library's error). It keeps each number's shape (``06 •• •• •• 12``).
- ``mask_phone_numbers(text)``: the same rule as ``mask_numbers_in_text``, each number written
  again without separators (``06••••••12``): the spelling of every ``OperatorError`` line
  (``tasks.errors.mask``, which also leaves the campaign ids this process met as typed).

Campaign ids are never masked (``is_campaign_id``): an id is a name, shown as the run's name,
and the operator must read back what they typed. The ids the tool makes carry a date and a time
(``demo-20250107-103012-ab31``: 14 digits in one run) that the number rule alone would mask, so
both text maskers above leave a word shaped like a campaign id as it is, as long as every long
run of digits in it is a date (and time) stamp; a word with a phone number in it is masked whole
(the number wins over the id).
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

from smspartner.errors import is_phone_number
from smspartner.errors import mask_phone_numbers as _mask_runs
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
    than 7 digits, French thousands groupings ("1 234 567"), IPv4 addresses and campaign ids
    (``is_campaign_id``) are left alone (the number rule: ``smspartner.errors.is_phone_number``)."""
    return mask_phone_numbers(text, in_place=True)


# -- campaign ids: names, never masked ---------------------------------------------------------

# A word of a campaign id's characters (tasks.plan.validate_campaign_id), ending on a letter or a
# digit (a full stop after an id ends the sentence, not the id).
_ID_WORD = re.compile(r"(?<![A-Za-z0-9._-])[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# A run of digits inside such a word, as the number rule joins them ("." and "-" between).
_ID_RUN = re.compile(r"\d(?:[.-]*\d)*")
# The stamp of the ids the tool makes (tasks.plan.new_campaign_id, and a run's id in
# tasks.steps.runs.campaign_id_of_run): YYYYmmdd, then HHMMSS (or HHMM) and the tail's digits
# when the tail starts with one ("-20250107-103012-4821"), ending a run of digits; digits of the
# stem may come before it ("enquete-2024-20250107-..."). A phone number is never written as a
# calendar date of 8 digits followed by a separator.
_STAMP = re.compile(
    r"(?:\A|(?<=[.-]))(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[-_.](?:[01][0-9]|2[0-3])[0-5][0-9](?:[0-5][0-9])?)?"
    r"(?:-[0-9]{1,8})?\Z"
)
# What the number rule puts between digits. A word that begins or ends with a digit next to
# another number's digits ("06 12 34 56 78demo-...", "x06 12 34 56 78") is part of that number:
# not taken as an id, so the whole number is masked as one.
_SEPS = r"[\s.\-/()\u2010-\u2015\u2212]*"
_NUMBER_BEFORE = re.compile(rf"[0-9]{_SEPS}\Z")
_NUMBER_AFTER = re.compile(rf"{_SEPS}[0-9]")


def is_campaign_id(word: str) -> bool:
    """Whether ``word`` reads as a campaign id, left as it is by the text maskers: a word of an
    id's characters with a letter in it, every long run of digits in it a date stamp
    (``demo-satisfaction-20251207-103031-ab31``, ``later-3fa2c1``, ``enquete-20250607``). A word
    with a phone number in it (``rappel-0612345678``) is not one (pure)."""
    if not _ID_WORD.fullmatch(word) or not any(ch.isalpha() for ch in word):
        return False
    return all(_stamped_or_short(run.group(0)) for run in _ID_RUN.finditer(word))


def _stamped_or_short(run: str) -> bool:
    """A run of digits that is no phone number, or a date stamp after no phone number."""
    if not is_phone_number(run):
        return True
    stamp = _STAMP.search(run)
    return stamp is not None and not is_phone_number(run[: stamp.start()])


def mask_phone_numbers(text: str, *, in_place: bool = False) -> str:
    """``text`` with the middle digits of every phone number in it replaced by bullets, written
    again without separators (``06 12 34 56 78`` -> ``06••••••78``; ``in_place``: keeping its
    shape), the campaign ids in it left as they are (``is_campaign_id``)."""
    out: list[str] = []
    at = 0
    for found in _ID_WORD.finditer(text):
        word = found.group(0)
        if (
            not is_campaign_id(word)
            or (word[0].isdigit() and _NUMBER_BEFORE.search(text, 0, found.start()))
            or (word[-1].isdigit() and _NUMBER_AFTER.match(text, found.end()))
        ):
            continue
        out += [_mask_runs(text[at : found.start()], in_place=in_place), word]
        at = found.end()
    return "".join([*out, _mask_runs(text[at:], in_place=in_place)])


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
    "is_campaign_id",
    "is_phone_number",
    "mask_number",
    "mask_numbers",
    "mask_numbers_in_text",
    "mask_phone_numbers",
    "number_forms",
    "person_pattern",
    "scrubber",
]
