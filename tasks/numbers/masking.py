"""THE masker for what tasks/ shows the operator: one number, or every number in a text.

- ``mask_number(e164)``: how a report, a log or the UI shows one number it holds whole
  (``+33 6 •• •• •• 78``).
- ``mask_numbers_in_text(text)``: any text that may quote what someone typed (a cell, a file
  name, a driver's or a library's error). It keeps each number's shape (``06 •• •• •• 12``).
- ``mask_phone_numbers(text)``: the same rule, each number written again without separators
  (``06••••••12``): the spelling of the gateway package's own messages and of every
  ``OperatorError`` line (``tasks.errors.mask``, which also leaves campaign ids as typed).

What counts as a phone number in a text is decided in ONE place,
``smspartner.errors.is_phone_number``: the gateway package masks its own messages and cannot
import tasks/, so tasks/ imports its rule rather than keeping a second one. Pure: no I/O.
"""

from __future__ import annotations

import re

import phonenumbers

from smspartner.errors import is_phone_number, mask_phone_numbers
from tasks.numbers.reference import _FR_NSN_LENGTH

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


__all__ = ["is_phone_number", "mask_number", "mask_numbers_in_text", "mask_phone_numbers"]
