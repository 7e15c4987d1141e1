"""The columns the pipeline adds to the source's own rows: the one rows frame that planning
fills (``tasks/plan.py``), accounting reads back (``tasks/accounting.py``), the rows file keeps
(``tasks/rows_file.py``) and the reports show.

Prefixed with ``_`` so they never clash with a column of the source. Names only: no pandas, no
rules.
"""

from __future__ import annotations

E164 = "_e164"  # the number in E.164; None when the row holds no usable number
TERRITORY = "_territory"  # the number's territory (its delivery window's rules)
REASON = "_reason"  # why the row was not sent (None: accepted, so far)
DETAIL = "_detail"  # the reason's words for the operator
OUTCOME = "_outcome"  # sent, failed or rejected, once the ledger has spoken
ROW = "_row"  # the row's number in the source (1-based; 0: not in this run's input)
SURVEY = "_survey"  # the survey the row is sent (None: the campaign's own survey_id)
RULE = "_rule"  # the contact-pressure rule that skipped the row (reason recently_surveyed)

__all__ = ["DETAIL", "E164", "OUTCOME", "REASON", "ROW", "RULE", "SURVEY", "TERRITORY"]
