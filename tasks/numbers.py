"""Phone numbers: from what people type in a spreadsheet to an E.164 number and a territory.

Two paths give the same answer (compliance.md section 5):

- ``normalize_number`` is the reference, one value at a time: repairs and rejections that must
  happen before ``phonenumbers`` sees the text, then parse, validate, number type and territory.
- ``clean_numbers`` is the fast path for a whole column. It works on each text (each distinct
  value of other cells), recognises the usual French and overseas shapes (``06 12 34 56 78``,
  ``+33612345678``, ``0033 6…``, ``612345678``, ``+590 690…``) with numpy operations on the
  characters and a prefix table, and hands everything else to ``normalize_number`` (once per
  distinct text). The prefix table is not written by hand: it is derived from phonenumbers'
  own metadata patterns (``_prefix_table``), so a metadata update moves it along, and a range
  it cannot decide goes to the reference.

``mark_duplicates``, ``mask_number`` and ``parse_loose`` are the small rules around them;
``clean_column`` is ``clean_numbers`` then ``mark_duplicates`` without the frames between.

Choices where compliance.md leaves room:

- An invalid +33 number with 9 digits is read again under each overseas code (+590, +596,
  +594, +262, +508) and kept if exactly one of them accepts it. That covers the documented
  0690/0691/0692/0693/0694/0696/0697/0639 prefixes, the newer 0709x ranges, and overseas
  landlines (``0590 12 34 56`` is then ``not_mobile``, not ``invalid``).
- Reasons follow their order in tasks/outcomes.py: a foreign landline is ``not_mobile``, a cell
  with letters and two numbers is ``not_a_number``.
- Numbers of non-geographic networks (satellite, region "001") are ``foreign`` even when
  foreign numbers are allowed: they have no country, hence no sending hours.
"""

from __future__ import annotations

import importlib
import math
import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import numpy as np
import pandas as pd
import phonenumbers
from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType

from tasks.outcomes import (
    DUPLICATE,
    EMPTY,
    FOREIGN,
    INVALID,
    MULTIPLE_NUMBERS,
    NOT_A_NUMBER,
    NOT_MOBILE,
    TERRITORIES,
)

# The regex parser behind ``re``, to read phonenumbers' patterns (see _DigitAutomaton). It is
# private: without it the fast path only loses its prefix table and asks the reference.
_sre_parser: Any
_sre: Any
try:
    _sre_parser = importlib.import_module("re._parser")
    _sre = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - CPython 3.11+ has both
    _sre_parser = _sre = None

COLUMNS = ("e164", "territory", "reason")


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


# --- The fast path ---------------------------------------------------------------------------

# The fast path reads each distinct text as a row of characters in a numpy matrix, after the
# reference's own first steps (NFKC, strip, tel:, ".0") on the few texts they can change. It
# rejects any text with a letter (not_a_number), and reads texts made only of digits, one
# leading "+" and separators phonenumbers skips (space, dot, dash, parentheses) whose digits are
#     [+33 | 0033 | 33] [0] NSN   or   (+cc | 00cc) [0] NSN   (cc: 262, 590, 594, 596)
# with NSN 9 digits, the first not 0: phonenumbers parses them as +33 NSN or +cc NSN, and then
# the country code and the NSN's first digits decide everything (the prefix table). Read as +33
# with too few digits, a text is invalid. Everything else (foreign numbers, two numbers in a
# cell, "/", other lengths…) goes to the reference.
_FAST_WIDTH = 24  # characters; longer texts go to the reference
_PAD, _DIGIT_CHAR, _SEPARATOR, _PLUS, _LETTER, _OTHER = range(6)
_CHAR_CLASS = np.full(129, _OTHER, dtype=np.int8)  # ASCII, and 128 for every char above
_CHAR_CLASS[0] = _PAD
_CHAR_CLASS[ord("0") : ord("9") + 1] = _DIGIT_CHAR
_CHAR_CLASS[[ord(c) for c in " .-()"]] = _SEPARATOR
_CHAR_CLASS[ord("+")] = _PLUS
_CHAR_CLASS[[ord(c) for c in string.ascii_letters]] = _LETTER
_MAX_DIGITS = 18  # read as an int64
# 10**k for every digit count a text of _FAST_WIDTH characters has (past 18 they wrap, as
# numpy's own int64 powers do; those texts are never read as a number)
_POWERS_OF_10 = 10 ** np.arange(_FAST_WIDTH + 1, dtype=np.int64)
_BLOCK = 1 << 15  # texts per block: its character matrices stay in the processor's cache
# Country codes whose 9-digit NSNs the fast path reads: France and the overseas territories
# written with their own code (+590 690…, 00262 692…).
_FAST_CODES = (33, 262, 590, 594, 596)
_TABLE_DEPTH = 5  # NSN prefixes up to 5 digits (0639 01…, 0693 12…); deeper ranges go slow
# Characters str.strip() removes at the ends (ASCII); a text with them is prepared first.
_STRIPPED = np.array([chr(c).isspace() for c in range(128)] + [True])
# Counts per text in one sum over its characters, one digit in base _COUNT_BASE per count
# (a text has at most _FAST_WIDTH characters, fewer than the base).
_COUNT_BITS = 5
_COUNT_BASE = 1 << _COUNT_BITS
# "." counts 1; past ASCII, "," and ":" count a whole base (the text is prepared first).
_REDO_MARKS = np.zeros(129, dtype=np.int32)
_REDO_MARKS[[ord(","), ord(":"), 128]] = _COUNT_BASE
_REDO_MARKS[ord(".")] = 1
# Letters, others, non-NUL characters, "+" and digits: the k-th count weighs _COUNT_BASE**k.
_COUNTS = (
    (_CHAR_CLASS == _LETTER)
    + (_CHAR_CLASS == _OTHER) * _COUNT_BASE
    + (np.arange(129) != 0) * _COUNT_BASE**2
    + (_CHAR_CLASS == _PLUS) * _COUNT_BASE**3
    + (_CHAR_CLASS == _DIGIT_CHAR) * _COUNT_BASE**4
).astype(np.int32)


@dataclass(frozen=True)
class _Outcome:
    """What every NSN under one prefix gives: accepted under ``cc``, or rejected."""

    cc: int | None
    territory: str | None
    reason: str | None


_INVALID = _Outcome(None, None, INVALID)
_NOT_A_NUMBER = _Outcome(None, None, NOT_A_NUMBER)


class _Unsupported(Exception):
    """A metadata pattern uses regex syntax the prefix analysis does not model."""


class _DigitAutomaton:
    """A metadata pattern (``national_number_pattern``, matched in full) as an automaton over
    digits, to tell whether it accepts every completion of a prefix, none, or some."""

    def __init__(self, pattern: str) -> None:
        if _sre_parser is None:
            raise _Unsupported("re._parser is not available")
        self._edges: list[list[tuple[frozenset[int] | None, int]]] = []
        start = self._node()
        self._accept = self._sequence(_sre_parser.parse(pattern), start)
        self.start = self._closure({start})
        self._steps: dict[tuple[frozenset[int], int], frozenset[int]] = {}
        self._all: dict[tuple[frozenset[int], int], bool] = {}
        self._none: dict[tuple[frozenset[int], int], bool] = {}

    def _node(self) -> int:
        self._edges.append([])
        return len(self._edges) - 1

    def _arc(self, source: int, digits: frozenset[int] | None) -> int:
        target = self._node()
        self._edges[source].append((digits, target))
        return target

    def _sequence(self, items: Any, node: int) -> int:
        for op, av in items:
            if op is _sre.LITERAL:
                node = self._arc(node, _digit_set([(op, av)]))
            elif op is _sre.IN:
                node = self._arc(node, _digit_set(av))
            elif op is _sre.SUBPATTERN:
                node = self._sequence(av[-1], node)
            elif op is _sre.BRANCH:
                end = self._node()
                for alternative in av[1]:
                    self._edges[self._sequence(alternative, node)].append((None, end))
                node = end
            elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
                low, high, body = av
                for _ in range(low):
                    node = self._sequence(body, node)
                if high == _sre.MAXREPEAT:
                    loop = self._arc(node, None)
                    self._edges[self._sequence(body, loop)].append((None, loop))
                    node = loop
                else:
                    end = self._node()
                    for _ in range(high - low):
                        self._edges[node].append((None, end))
                        node = self._sequence(body, node)
                    self._edges[node].append((None, end))
                    node = end
            else:
                raise _Unsupported(str(op))
        return node

    def _closure(self, nodes: set[int]) -> frozenset[int]:
        todo, seen = list(nodes), set(nodes)
        while todo:
            for digits, target in self._edges[todo.pop()]:
                if digits is None and target not in seen:
                    seen.add(target)
                    todo.append(target)
        return frozenset(seen)

    def step(self, state: frozenset[int], digit: int) -> frozenset[int]:
        key = (state, digit)
        if key not in self._steps:
            targets = {t for n in state for d, t in self._edges[n] if d is not None and digit in d}
            self._steps[key] = self._closure(targets)
        return self._steps[key]

    def accepts_all(self, state: frozenset[int], remaining: int) -> bool:
        key = (state, remaining)
        if key not in self._all:
            self._all[key] = (
                self._accept in state
                if remaining == 0
                else all(self.accepts_all(self.step(state, d), remaining - 1) for d in range(10))
            )
        return self._all[key]

    def accepts_none(self, state: frozenset[int], remaining: int) -> bool:
        key = (state, remaining)
        if key not in self._none:
            self._none[key] = (
                self._accept not in state
                if remaining == 0
                else all(self.accepts_none(self.step(state, d), remaining - 1) for d in range(10))
            )
        return self._none[key]

    def decided(self, state: frozenset[int], remaining: int) -> bool:
        """Whether all completions by ``remaining`` digits from ``state`` match alike."""
        return self.accepts_all(state, remaining) or self.accepts_none(state, remaining)


def _digit_set(items: Any) -> frozenset[int]:
    """The digits a character class (or one literal) of a parsed pattern accepts."""
    digits: set[int] = set()
    negate = False
    for op, av in items:
        if op is _sre.LITERAL:
            digits |= {int(chr(av))} if chr(av).isdigit() and av < 128 else set()
        elif op is _sre.RANGE:
            digits |= {d for d in range(10) if av[0] <= ord(str(d)) <= av[1]}
        elif op is _sre.CATEGORY and av is _sre.CATEGORY_DIGIT:
            digits |= set(range(10))
        elif op is _sre.NEGATE:
            negate = True
        else:
            raise _Unsupported(str(op))
    return frozenset(set(range(10)) - digits if negate else digits)


def _patterns_behind(country_codes: list[int]) -> list[str]:
    """Every pattern phonenumbers may consult to validate, type and place a number of these
    country codes (a superset: an extra pattern only makes the table split more)."""
    patterns: set[str] = set()
    for cc in country_codes:
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if metadata is None:
                continue
            if metadata.leading_digits:  # matched as a prefix when picking the region
                patterns.add(f"(?:{metadata.leading_digits})\\d*")
            for name in dir(metadata):
                desc = getattr(metadata, name)
                if isinstance(desc, phonenumbers.PhoneNumberDesc) and desc.national_number_pattern:
                    patterns.add(desc.national_number_pattern)
    return sorted(patterns)


@cache
def _prefix_table() -> tuple[np.ndarray, tuple[_Outcome, ...], bool]:
    """Outcome code per (country code of ``_FAST_CODES``, NSN prefix of ``_TABLE_DEPTH`` digits),
    0 meaning "ask the reference", derived from phonenumbers' own metadata.

    A prefix goes in the table when every pattern phonenumbers consults for a number of that
    country code (and, for +33, of the overseas codes it may be repaired to) matches all of the
    prefix's 9-digit completions or none of them: then they all get the outcome of any one of
    them, which the reference computes. Other prefixes are split into their ten children, down
    to ``_TABLE_DEPTH`` digits; what is still undecided there goes to the reference.
    """
    codes = np.zeros((len(_FAST_CODES), 10**_TABLE_DEPTH), dtype=np.int16)
    outcomes = [_Outcome(None, None, None), _INVALID, _NOT_A_NUMBER]  # code 0: not in the table
    for row, country_code in enumerate(_FAST_CODES):
        behind = [33, *_OVERSEAS_COUNTRY_CODES] if country_code == 33 else [country_code]
        try:
            automata = [_DigitAutomaton(p) for p in _patterns_behind(behind)]
        except _Unsupported:  # a metadata update we cannot model: leave it to the reference
            continue

        def walk(
            prefix: str,
            states: list[frozenset[int]],
            country_code: int = country_code,
            row: int = row,
            automata: list[_DigitAutomaton] = automata,
        ) -> None:
            remaining = _FR_NSN_LENGTH - len(prefix)
            if not all(a.decided(s, remaining) for a, s in zip(automata, states, strict=True)):
                if len(prefix) < _TABLE_DEPTH:
                    for digit in range(10):
                        walk(
                            f"{prefix}{digit}",
                            [a.step(s, digit) for a, s in zip(automata, states, strict=True)],
                        )
                return
            nsn = prefix.ljust(_FR_NSN_LENGTH, "0")
            number = _resolved(PhoneNumber(country_code=country_code, national_number=int(nsn)))
            p = _outcome(number, allow_foreign=False)
            cc = number.country_code if isinstance(number, PhoneNumber) else None
            if p.e164 is not None and p.e164 != f"+{cc}{nsn}":
                return  # not expected: leave the range to the reference
            outcome = _Outcome(cc if p.e164 else None, p.territory, p.reason)
            if outcome not in outcomes:
                outcomes.append(outcome)
            span = 10 ** (_TABLE_DEPTH - len(prefix))
            start = int(prefix) * span
            codes[row, start : start + span] = outcomes.index(outcome)

        for first in range(1, 10):  # an NSN never starts with 0
            walk(str(first), [a.step(a.start, first) for a in automata])

    # Whether a +33 reading with fewer than 9 significant digits is invalid: French NSNs have 9
    # digits, none starting with 0 (and the overseas repair needs 9 significant digits too).
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("FR")
    general = metadata.general_desc if metadata is not None else None
    if general is None or not general.national_number_pattern:
        return codes, tuple(outcomes), False
    try:
        automaton = _DigitAutomaton(general.national_number_pattern)
    except _Unsupported:
        return codes, tuple(outcomes), False
    short_is_invalid = tuple(general.possible_length) == (_FR_NSN_LENGTH,)
    short_is_invalid &= automaton.accepts_none(
        automaton.step(automaton.start, 0), _FR_NSN_LENGTH - 1
    )
    return codes, tuple(outcomes), short_is_invalid


def _distinct_texts(raw: pd.Series) -> tuple[np.ndarray, list[str | Parsed], bool]:
    """Codes of ``raw`` into slots of values (distinct ones, but for texts), each slot's value
    as text or outcome, and whether they are all texts. Missing values get code -1."""
    if raw.dtype == object:
        strings = infer_dtype(raw, skipna=True) in ("string", "empty")
    else:
        strings = isinstance(raw.dtype, pd.StringDtype)
    if strings:
        # One slot per row: factorizing a million mostly distinct strings costs more than the
        # fast path spends on repeated ones (the reference's answers are remembered).
        values = raw.to_numpy(dtype=object)
        missing = pd.isna(values)
        codes = np.arange(len(values))
        if missing.any():
            codes[missing] = -1
            values = np.where(missing, "", values)  # a slot no row points to
        return codes, values.tolist(), True
    if is_numeric_dtype(raw.dtype) and not is_bool_dtype(raw.dtype):
        codes, numbers = pd.factorize(raw, use_na_sentinel=True)
        return codes, [_as_text(u) for u in numbers.tolist()], False
    # Mixed cells: factorize would merge 1, 1.0 and True, which are not the same cell. Parsed
    # outcomes are hashable and never equal to a string, so they factorize apart.
    keys = np.empty(len(raw), dtype=object)
    keys[:] = [_as_text(v) for v in raw.to_numpy(dtype=object)]
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    return codes, uniques.tolist(), False


def _char_matrix(texts: list[str], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Code points of the first ``width`` characters of each text (0-padded), and lengths."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    chars = np.array(texts, dtype=f"<U{width}").view(np.uint32)
    return chars.reshape(len(texts), width), lengths


def _digits_value(chars: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """The digits of each row read as one integer (meaningful up to 18 digits)."""
    value = np.zeros(len(chars), dtype=np.int64)
    # Horner, one column of characters at a time (transposed: each column is contiguous).
    columns, digits = chars.astype(np.uint8).T.copy(), digit.T.copy()
    for column, is_digit in zip(columns, digits, strict=True):
        if is_digit.any():
            value = np.where(is_digit, value * 10 + (column.astype(np.int64) - ord("0")), value)
    return value


def _fast(texts: list[str | Parsed]) -> tuple[np.ndarray, np.ndarray]:
    """Outcome code of each text (0 = ask the reference) and its NSN where the code accepts."""
    code, nsn, _ = _fast_blocks(texts, all_text=False)
    return code, nsn


def _fast_blocks(
    texts: list[str | Parsed], *, all_text: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_fast``, and each text's digits as an integer where it is exactly "+" and digits (no
    leading 0), else -1: where that integer is the E.164's, the text is its own E.164."""
    if len(texts) <= _BLOCK:
        return _fast_block(texts, all_text)
    parts = [_fast_block(texts[i : i + _BLOCK], all_text) for i in range(0, len(texts), _BLOCK)]
    code, nsn, exact = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return code, nsn, exact


def _fast_block(
    texts: list[str | Parsed], all_text: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_fast_blocks`` on one block of texts (``all_text``: no Parsed among them)."""
    n = len(texts)
    table, outcomes, short_is_invalid = _prefix_table()
    if all_text:  # a column of strings, the usual case: skip two passes in Python
        decided = np.zeros(n, dtype=bool)
        strs = cast(list[str], list(texts))  # a copy: repaired texts replace originals below
    else:
        decided = np.fromiter((isinstance(t, Parsed) for t in texts), dtype=bool, count=n)
        strs = [t if isinstance(t, str) else "" for t in texts]
    chars, lengths = _char_matrix(strs, _FAST_WIDTH)
    # Past ASCII every character is alike (128): such a text is normalized below (NBSP,
    # full-width digits, digits of other scripts), then read again.
    np.minimum(chars, 128, out=chars)

    # What the reference does first (NFKC, strip, tel:, ".0"), only where it can change the text.
    last = chars[np.arange(n), np.clip(lengths - 1, 0, _FAST_WIDTH - 1)]
    redo = _STRIPPED[chars[:, 0]] | _STRIPPED[last]
    marks = _REDO_MARKS[chars].sum(axis=1, dtype=np.int32)
    # Past ASCII, "," or ":"; or one "." (a float has one; 06.12.34.56.78 is left alone).
    redo |= (lengths > _FAST_WIDTH) | (marks >= _COUNT_BASE) | (marks == 1)
    redo_rows = np.flatnonzero(redo)
    if redo_rows.size:
        for i in redo_rows:
            strs[i] = _repaired(_normalized(strs[i]))
        fresh, lengths[redo_rows] = _char_matrix([strs[i] for i in redo_rows], _FAST_WIDTH)
        chars[redo_rows] = np.minimum(fresh, 128)
    kind = _CHAR_CLASS[chars]
    # Each text's letters, others, non-NUL characters, "+" and digits, counted in one sum.
    counts = _COUNTS[chars].sum(axis=1, dtype=np.int32)
    letters, others, filled, pluses, digit_count = (
        (counts >> (_COUNT_BITS * k)) & (_COUNT_BASE - 1) for k in range(5)
    )
    # Letters are rejected before anything else looks at the digits.
    code = np.zeros(n, dtype=np.int16)
    code[(letters > 0) & ~decided] = outcomes.index(_NOT_A_NUMBER)

    # Texts of digits and separators, with at most one "+", first: their digits as an integer.
    digits_only = (lengths <= _FAST_WIDTH) & ~decided
    digits_only &= filled == lengths  # a NUL in the text reads as padding
    digits_only &= (others == 0) & (letters == 0)
    keep = (kind == _DIGIT_CHAR) | (kind == _PLUS)
    plus = pluses == 1
    first = kind[np.arange(n), keep.argmax(axis=1)]
    length = digit_count + pluses - plus  # digits
    digits_only &= (pluses == 0) | (plus & (first == _PLUS))
    digits_only &= (length >= 1) & (length <= _MAX_DIGITS)
    value = _digits_value(chars, kind == _DIGIT_CHAR)
    # The first k digits as a number, for k up to the longest prefix of a shape.
    tops = [value // _POWERS_OF_10[np.maximum(length - k, 0)] for k in range(7)]

    def lead_is(digits: str) -> np.ndarray:
        """Whether the digits start with ``digits`` (leading zeros count)."""
        return (length >= len(digits)) & (tops[len(digits)] == int(digits or "0"))

    nsn = value % 10**_FR_NSN_LENGTH
    row = np.full(n, -1, dtype=np.int64)  # which of _FAST_CODES, -1 when no shape matches
    for which, cc in enumerate(_FAST_CODES):
        shapes = [(f"+{cc}", True), (f"+{cc}0", True), (f"00{cc}", False), (f"00{cc}0", False)]
        if cc == 33:  # written for France: no prefix, trunk 0, or 33 without its "+"
            shapes += [("", False), ("0", False), ("33", False), ("330", False)]
        for shape, with_plus in shapes:
            digits = shape.lstrip("+")
            matches = (length == len(digits) + _FR_NSN_LENGTH) & (plus == with_plus)
            row[matches & lead_is(digits)] = which
    shaped = digits_only & (row >= 0) & (nsn >= 10 ** (_FR_NSN_LENGTH - 1))
    code[shaped] = table[row[shaped], nsn[shaped] // 10 ** (_FR_NSN_LENGTH - _TABLE_DEPTH)]

    # Read as +33 (without "+" or "00" the country code is +33 anyway) with fewer than 9
    # significant digits after the 33: no 9-digit French or overseas NSN can come out of it.
    if short_is_invalid:
        after_33 = value % _POWERS_OF_10[np.maximum(length - 2, 0)]
        national = ~plus & ~lead_is("00") & (length >= 1) & (value < 10 ** (_FR_NSN_LENGTH - 1))
        international = plus & lead_is("33") & (after_33 < 10 ** (_FR_NSN_LENGTH - 1))
        single = digits_only & (length < _DIGITS_OF_TWO_NUMBERS)
        code[single & (national | international)] = outcomes.index(_INVALID)
    exact = digits_only & ~redo & plus & (lengths == length + 1) & (chars[:, 1] != ord("0"))
    return code, nsn, np.where(exact, value, -1)


def clean_numbers(raw: pd.Series, *, allow_foreign: bool = False) -> pd.DataFrame:
    """Vectorised/fast path: returns a DataFrame with the same index as `raw` and columns
    e164, territory, reason (None/NaN where not applicable). Must give exactly the same result
    as normalize_number on every value."""
    codes, values, _ = _clean(raw, allow_foreign)
    columns = {
        name: pd.Series(v[codes], index=raw.index, dtype="str")
        for name, v in zip(COLUMNS, values, strict=True)
    }
    return pd.DataFrame(columns, index=raw.index)


def clean_column(
    raw: pd.Series, *, allow_foreign: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``mark_duplicates(clean_numbers(raw))`` as three object arrays by position (e164,
    territory, reason; None where missing), without the frames in between."""
    codes, (e164, territory, reason), keys = _clean(raw, allow_foreign)
    reasons = reason[codes]
    # Duplicates by integer keys (one per E.164): hashing ints, not a million strings.
    key = keys[codes]
    accepted = key >= 0
    reasons[accepted & pd.Series(key).duplicated(keep="first").to_numpy()] = DUPLICATE
    return e164[codes], territory[codes], reasons


def _clean(
    raw: pd.Series, allow_foreign: bool
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Codes of ``raw`` into the slots of ``_distinct_texts`` plus a last slot for missing
    values (code -1); per slot its e164, territory and reason (object arrays), and an integer
    key that is the same for two slots exactly when they are accepted with the same E.164 (-1:
    not accepted)."""
    codes, texts, all_text = _distinct_texts(raw)
    _, outcomes, _ = _prefix_table()
    code, nsn, exact = _fast_blocks(texts, all_text=all_text)

    n = len(texts)
    cc = np.array([o.cc or 0 for o in outcomes], dtype=np.int64)[code]
    value = cc * 10**_FR_NSN_LENGTH + nsn
    accepted = cc > 0
    keyed = np.array([o.cc is not None and o.reason is None for o in outcomes])[code]
    keys = np.full(n + 1, -1, dtype=np.int64)
    keys[:n][keyed] = value[keyed]
    e164 = np.full(n + 1, None, dtype=object)
    # Where the text already is that E.164, the source's own string: one object for both
    # columns, which the rows' pickle then writes once and reads back once.
    own = accepted & (exact == value)
    if own.any():
        e164[:n][own] = np.array(texts, dtype=object)[own]
    made = np.flatnonzero(accepted & ~own)
    e164[made] = [f"+{v}" for v in value[made].tolist()]
    with_missing = np.append(code, -1)
    territory = np.array([o.territory for o in outcomes] + [None], dtype=object)[with_missing]
    reason = np.array([o.reason for o in outcomes] + [EMPTY], dtype=object)[with_missing]

    odd: dict[str, int] = {}
    known: dict[str, Parsed] = {}
    for i in np.flatnonzero(code == 0).tolist():
        text = texts[i]
        if isinstance(text, Parsed):
            p = text
        elif text in known:  # a text repeated in its own slots: asked once
            p = known[text]
        else:
            p = known[text] = normalize_number(text, allow_foreign=allow_foreign)
        e164[i], territory[i], reason[i] = p.e164, p.territory, p.reason
        if p.e164 is not None and p.reason is None:
            keys[i] = _e164_key(p.e164, odd)
    return codes, (e164, territory, reason), keys


_ODD_KEYS = 10**18  # above any 18-digit number
_KEY_DIGITS = re.compile(r"[1-9][0-9]{0,17}")


def _e164_key(e164: str, odd: dict[str, int]) -> int:
    """An E.164's digits as an integer, equal to the fast path's ``cc * 10**9 + nsn``; a text of
    another form (not expected from phonenumbers) gets a key of its own."""
    digits = e164[1:]
    if e164[:1] == "+" and _KEY_DIGITS.fullmatch(digits):
        return int(digits)
    return odd.setdefault(e164, _ODD_KEYS + len(odd))


# --- Around the numbers ----------------------------------------------------------------------


def mark_duplicates(cleaned: pd.DataFrame) -> pd.DataFrame:
    """Copy of `cleaned` where rows whose e164 equals an earlier accepted row's e164 get reason
    'duplicate' (and keep their e164 so a report can show it); first occurrence wins; rejected
    rows are never duplicates."""
    out = cleaned.copy(deep=False)  # copy-on-write: only the reason column is new
    accepted = (out["reason"].isna() & out["e164"].notna()).to_numpy()
    e164 = pd.Series(out["e164"].to_numpy(dtype=object))  # positions, whatever the index
    repeated = e164.where(accepted).duplicated(keep="first").to_numpy() & accepted
    reason = out["reason"].to_numpy(dtype=object, copy=True)
    reason[repeated] = DUPLICATE
    # Same index object: assigned by position, even where labels repeat.
    out["reason"] = pd.Series(reason, index=out.index, dtype=out["reason"].dtype)
    return out


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


# --- Opt-out entries -------------------------------------------------------------------------


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


# Digits with what people put between them (spaces of every kind, dots, dashes, slashes,
# parentheses): a phone number as it may appear in a database's or a library's message.
_NUMBER_IN_TEXT = re.compile(r"\+?\d(?:[\s.\-/()\u2010-\u2015\u2212]*\d)+")
_MASKED_FROM = 7  # digits; shorter runs are counts, line numbers, years
_KEPT_HEAD, _KEPT_TAIL = 2, 2
# A database host in a connection error ("10.123.45.67") is no number of 4 groups of 1-3.
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def mask_numbers_in_text(text: str) -> str:
    """``text`` with the middle digits of every run of 7+ digits (separators allowed between
    them) replaced by "•": '... "06 12 34 50 12"' -> '... "06 •• •• •• 12"'. At most the
    first two digits (three after a "+") and the last two of a number survive."""

    def mask(match: re.Match[str]) -> str:
        value = match.group(0)
        digits = sum(ch.isdigit() for ch in value)
        if digits < _MASKED_FROM or _IPV4.fullmatch(value):
            return value
        head = _KEPT_HEAD + value.startswith("+")
        out, seen = [], 0
        for ch in value:
            if ch.isdigit():
                seen += 1
                out.append(ch if seen <= head or seen > digits - _KEPT_TAIL else "•")
            else:
                out.append(ch)
        return "".join(out)

    return _NUMBER_IN_TEXT.sub(mask, text)
