"""The one family of expected failures: what the operator reads when a campaign cannot go on.

Every failure a user can cause or meet in normal life (bad input, an unknown campaign id, a
refusal, credits too short, a full disk, a ledger outage past its bound, a purge racing a
report) is a ``SurveyError``. Its ``str()`` is one line, phone numbers masked, written for the
operator: what happened and the next step. A task raises it (the task shows Failed with that
line in the run graph); the flow ends with it (``flows.ending``); the command line prints it and
exits with ``exit_code``. No traceback is shown for it, in the UI or on the terminal: a
traceback is for the bugs this family does not cover.

```
SurveyError                 exit 1
├── UsageError              exit 2   a bad option or parameter, refused before anything ran
└── CampaignIncomplete      exit 3   the campaign ran, but rows ended failed or in doubt
```
Other modules subclass these (``RecipientsError``, ``CampaignError``, ``LedgerUnavailable``...).
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from smspartner.errors import mask_phone_numbers

# The campaign ids this process has met (validated, or made for a new campaign). An id is a
# name the operator chose or the tool made, shown as the run's name: not personal data, and its
# date digits ("demo-20250107-103012-ab31") must stay readable where a phone number is masked.
_KNOWN_IDS: set[str] = set()
_KNOWN_LOCK = threading.Lock()
_MAX_KNOWN = 10_000  # a process meets a handful; a bound all the same


def known_id(campaign_id: str) -> str:
    """Remember ``campaign_id`` as a campaign's id (left as it is in an error's line)."""
    with _KNOWN_LOCK:
        if len(_KNOWN_IDS) < _MAX_KNOWN:
            _KNOWN_IDS.add(campaign_id)
    return campaign_id


def mask(text: str) -> str:
    """``text`` with its phone numbers masked, except inside the campaign ids this process
    knows (a number typed in a message is masked; ``campaign demo-20250107-103012-ab31`` is
    not)."""
    with _KNOWN_LOCK:
        ids = sorted((i for i in _KNOWN_IDS if i in text), key=len, reverse=True)
    if not ids:
        return mask_phone_numbers(text)
    # An id counts only as a whole word of id characters, not as part of a longer one.
    pattern = re.compile(
        r"(?<![A-Za-z0-9._-])(?:" + "|".join(map(re.escape, ids)) + r")(?![A-Za-z0-9_-])"
    )
    out, at = [], 0
    for found in pattern.finditer(text):
        out += [mask_phone_numbers(text[at : found.start()]), found.group(0)]
        at = found.end()
    return "".join([*out, mask_phone_numbers(text[at:])])


def one_line(text: object, default: str = "failed") -> str:
    """The first non-empty line of a text."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else default


class SurveyError(Exception):
    """An expected failure, said in one masked line. ``summary`` is the campaign's JSON summary
    when there is one (what was done, or would have been sent, before it stopped)."""

    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: object,
        *,
        summary: dict[str, Any] | None = None,
        personal: bool = True,
    ) -> None:
        """``personal=False``: a line made by this tool of counts, amounts and campaign ids
        only, which masking would spoil ("1 234 567 destinataires" reads like a number)."""
        line = one_line(message, type(self).__name__)
        super().__init__(mask(line) if personal else line)
        self.summary = summary

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across processes with its summary
        return (_rebuild, (type(self), self.message, self.summary))


def _rebuild(kind: type[SurveyError], message: str, summary: dict[str, Any] | None) -> SurveyError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.summary = summary
    return error


class UsageError(SurveyError):
    """A bad option or parameter: nothing ran."""

    exit_code: ClassVar[int] = 2


class CampaignIncomplete(SurveyError):
    """The campaign ran, but some rows ended failed or in doubt: not a success."""

    exit_code: ClassVar[int] = 3
