"""The fast path's prefix table, derived from phonenumbers' own metadata patterns.

For each country code the fast path reads (France and the overseas codes), every NSN prefix of
up to ``_TABLE_DEPTH`` digits whose 9-digit completions all give one outcome gets that outcome;
the rest is "ask the reference". A metadata update moves the table along; a pattern it cannot
model leaves the range to the reference. Pure: computed once per process (``_prefix_table``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import phonenumbers
from phonenumbers import PhoneNumber

from tasks.numbers.reference import _FR_NSN_LENGTH, _OVERSEAS_COUNTRY_CODES, _outcome, _resolved
from tasks.outcomes import (
    INVALID,
    NOT_A_NUMBER,
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


# Country codes whose 9-digit NSNs the fast path reads: France and the overseas territories
# written with their own code (+590 690…, 00262 692…).
_FAST_CODES = (33, 262, 590, 594, 596)
_TABLE_DEPTH = 5  # NSN prefixes up to 5 digits (0639 01…, 0693 12…); deeper ranges go slow


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
