"""The bounds an input is held to before it is read in full (one home: read them as
``limits.MAX_CELLS``, so a test or a caller that changes one changes it everywhere)."""

from __future__ import annotations

# Past these, a file is refused before it is read in full. A million recipients with twenty
# columns fit; a one-line list of 200,000 numbers, or a workbook declaring 17 billion cells, not.
MAX_COLUMNS = 1_000
MAX_CELLS = 20_000_000
