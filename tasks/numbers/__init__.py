"""Phone numbers: from what people type in a spreadsheet to an E.164 number and a territory.

What it is: the pure rules about numbers (rules kind: no Prefect, no I/O, no clock). Anything in
tasks/, flows/, bench/ or tests/ may import it; it imports only ``tasks.outcomes`` (the reject
reasons) and the gateway package's masker. What it is NOT: where numbers are stored (the
ledger), nor where opt-out lists are read (``tasks.recipients``).

Two paths give the same answer (compliance.md section 5):

- ``reference.py``: ``normalize_number`` one value at a time: repairs and rejections that must
  happen before ``phonenumbers`` sees the text, then parse, validate, number type and territory.
- ``fast.py``: ``clean_numbers`` for a whole column. It recognises the usual French and overseas
  shapes (``06 12 34 56 78``, ``+33612345678``, ``0033 6…``, ``612345678``, ``+590 690…``) with
  numpy operations on the characters and a prefix table (``prefix_table.py``, derived from
  phonenumbers' own metadata patterns, so a metadata update moves it along), and hands
  everything else to ``normalize_number`` once per distinct text. ``clean_column`` is
  ``clean_numbers`` then ``mark_duplicates`` without the frames between.
- ``entries.py``: every number in one entry of an opt-out list (``numbers_in_entry``).
- ``masking.py``: THE masker for what tasks/ shows the operator (``mask_number`` for one number,
  ``mask_numbers_in_text`` for a text).

Choices where compliance.md leaves room:

- An invalid +33 number with 9 digits is read again under each overseas code (+590, +596,
  +594, +262, +508) and kept if exactly one of them accepts it. That covers the documented
  0690/0691/0692/0693/0694/0696/0697/0639 prefixes, the newer 0709x ranges, and overseas
  landlines (``0590 12 34 56`` is then ``not_mobile``, not ``invalid``).
- Reasons follow their order in tasks/outcomes.py: a foreign landline is ``not_mobile``, a cell
  with letters and two numbers is ``not_a_number``.
- Numbers of non-geographic networks (satellite, region "001") are ``foreign`` even when
  foreign numbers are allowed: they have no country, hence no sending hours.

Entry points: ``normalize_number``, ``parse_loose``, ``clean_numbers``, ``clean_column``,
``mark_duplicates``, ``numbers_in_entry``, ``numbers_in_entries``, ``mask_number``,
``mask_numbers_in_text``. Underscored names are the package's own: import them from their
module, never through this face.
"""

from __future__ import annotations

from tasks.numbers.entries import numbers_in_entries, numbers_in_entry
from tasks.numbers.fast import COLUMNS, clean_column, clean_numbers, mark_duplicates
from tasks.numbers.masking import mask_number, mask_numbers_in_text, mask_phone_numbers
from tasks.numbers.reference import Parsed, normalize_number, parse_loose

__all__ = [
    "COLUMNS",
    "Parsed",
    "clean_column",
    "clean_numbers",
    "mark_duplicates",
    "mask_number",
    "mask_numbers_in_text",
    "mask_phone_numbers",
    "normalize_number",
    "numbers_in_entries",
    "numbers_in_entry",
    "parse_loose",
]
