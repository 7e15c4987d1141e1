"""The fast path: a whole column of phone numbers at once, with numpy and the prefix table.

``clean_numbers`` gives exactly what ``normalize_number`` (``reference.py``) gives on every
value; the usual French and overseas shapes are read on the characters as numpy matrices, the
rest is handed to the reference once per distinct text. ``clean_column`` is ``clean_numbers``
then ``mark_duplicates`` without the frames in between. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
import string
from typing import cast

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype

from tasks.numbers.prefix_table import (
    _FAST_CODES,
    _INVALID,
    _NOT_A_NUMBER,
    _TABLE_DEPTH,
    _prefix_table,
)
from tasks.numbers.reference import (
    _DIGITS_OF_TWO_NUMBERS,
    _FR_NSN_LENGTH,
    Parsed,
    _as_text,
    _normalized,
    _repaired,
    normalize_number,
)
from tasks.outcomes import (
    DUPLICATE,
    EMPTY,
)

COLUMNS = ("e164", "territory", "reason")


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
