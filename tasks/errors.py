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

from typing import Any, ClassVar

from smspartner.errors import mask_phone_numbers


def one_line(text: object, default: str = "failed") -> str:
    """The first non-empty line of a text."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else default


class SurveyError(Exception):
    """An expected failure, said in one masked line. ``summary`` is the campaign's JSON summary
    when there is one (what was done, or would have been sent, before it stopped)."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: object, *, summary: dict[str, Any] | None = None) -> None:
        super().__init__(mask_phone_numbers(one_line(message, type(self).__name__)))
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
