"""The one family of expected failures: what the operator reads when a campaign cannot go on.

Every failure a user can cause or meet in normal life (bad input, an unknown campaign id, a
refusal, credits too short, a full disk, a ledger outage past its bound, a purge racing a
report) is an ``OperatorError``. It carries a ``Problem``: one line, phone numbers masked,
written for the operator (what happened and the next step), the exit code, and the campaign's
JSON summary when there is one. A task raises it (the task shows Failed with that line in the
run graph); the flow ends with it (``flows.ending``); the command line prints it and exits with
``exit_code``. No traceback is shown for it, in the UI or on the terminal: a traceback is for
the bugs this family does not cover.

```
OperatorError                      exit 1   tasks/errors.py (SurveyError: its older name)
├── UsageError                     exit 2   tasks/errors.py: a bad option or parameter,
│                                           refused before anything ran
├── CampaignIncomplete             exit 3   tasks/errors.py: the campaign ran, but rows
│                                           ended failed or in doubt
├── CampaignError                           tasks/plan.py: bad input or configuration
├── AudienceError                           tasks/audience.py: a segment without a survey
├── DrawUnreadable                          tasks/ledger/draws.py: a sample's recorded draw
│                                           cannot be read back
├── WitnessListError                        tasks/witnesses.py: a witness list that cannot
│                                           be read
├── CampaignStopped                         tasks/runtime.py: the campaign cannot go on
├── CreditsShort                            tasks/money.py: credits or budget do not cover it
├── RecipientsError                         tasks/recipients/: a bad file, sheet, query, source
├── RemoteFileError                         tasks/recipients/remote.py: a file at an address
│                                           that cannot be fetched
├── SQLUnreadable (also ValueError)         tasks/recipients/sql_guard.py: SQL the guard
│                                           cannot read for certain
├── DbUrlError (also ValueError)            tasks/dburl.py: a database URL that cannot be read
├── LedgerUnavailable                       tasks/ledger/model.py: unreachable past its bound
│   └── PseudonymKeyError                   tasks/ledger/pseudonyms.py: the key is missing,
│                                           malformed or not the ledger's
├── ReportError                             tasks/steps/report.py: the report cannot be written
├── UnknownCampaign                         tasks/steps/report.py: an id the ledger does not know
└── AlertsError                             tasks/alerts/: the automations cannot be created
```
A subclass without an exit code exits 1. The gateway's own failures (``smspartner.errors``) are
not in this family: a step turns them into one with ``gateway_problem``.

Masking: a ``Problem`` is made only by ``Problem.of``, which masks the line with ``mask`` (the
numbers masker of ``tasks.numbers.masking``, except inside the campaign ids this process knows)
unless the caller says the line holds no personal data (``personal=False``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from smspartner.errors import AuthError, SMSPartnerError, TransportError
from smspartner.models import public_url
from tasks.numbers.masking import mask_phone_numbers

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


# Only Problem.of holds it: a Problem made any other way raises (see Problem.__post_init__).
_MASKING_PATH = object()


@dataclass(frozen=True)
class Problem:
    """What the operator reads when a campaign cannot go on: the masked one ``line``, the
    ``exit_code`` of the command line, and the campaign's JSON ``summary`` when there is one
    (what was done, or would have been sent, before it stopped). Made by ``Problem.of``."""

    line: str
    exit_code: int = 1
    summary: dict[str, Any] | None = field(default=None, compare=False)
    _path: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The line must have gone through the masking path: a Problem is shown as it is.
        if self._path is not _MASKING_PATH:
            raise TypeError("a Problem is made by Problem.of, which masks its line")

    @classmethod
    def of(
        cls,
        message: object,
        *,
        exit_code: int = 1,
        summary: dict[str, Any] | None = None,
        personal: bool = True,
        default: str = "failed",
    ) -> Problem:
        """The problem said by ``message``: its first line, masked (``mask``) unless
        ``personal=False``: a line made by this tool of counts, amounts and campaign ids only,
        which masking would spoil ("1 234 567 destinataires" reads like a number)."""
        line = one_line(message, default)
        return cls(mask(line) if personal else line, exit_code, summary, _MASKING_PATH)

    def with_summary(self, summary: dict[str, Any] | None) -> Problem:
        """The same problem with the campaign's summary (known only once the run ends)."""
        return replace(self, summary=summary)


class OperatorError(Exception):
    """An expected failure, said in one masked line: ``problem`` (also ``message``,
    ``summary`` and ``exit_code``, for the callers that read them one by one)."""

    exit_code: ClassVar[int] = 1
    problem: Problem

    def __init__(
        self,
        message: object,
        *,
        summary: dict[str, Any] | None = None,
        personal: bool = True,
    ) -> None:
        """``personal=False``: a line made by this tool of counts, amounts and campaign ids
        only, which masking would spoil ("1 234 567 destinataires" reads like a number)."""
        self.problem = Problem.of(
            message,
            exit_code=self.exit_code,
            summary=summary,
            personal=personal,
            default=type(self).__name__,
        )
        super().__init__(self.problem.line)

    @property
    def message(self) -> str:
        return str(self.args[0])

    @property
    def summary(self) -> dict[str, Any] | None:
        return self.problem.summary

    @summary.setter
    def summary(self, summary: dict[str, Any] | None) -> None:
        self.problem = self.problem.with_summary(summary)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across processes with its summary
        return (_rebuild, (type(self), self.message, self.summary))


# The older name of OperatorError, kept so that code, pickles and notes written before the
# rename still work (a pickled error names its class). New code says OperatorError.
SurveyError = OperatorError


def _rebuild(
    kind: type[OperatorError], message: str, summary: dict[str, Any] | None
) -> OperatorError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    # The line was masked when the error was first made: not masked twice.
    error.problem = Problem.of(
        message, exit_code=kind.exit_code, summary=summary, personal=False, default=message
    )
    return error


class UsageError(OperatorError):
    """A bad option or parameter: nothing ran."""

    exit_code: ClassVar[int] = 2


class CampaignIncomplete(OperatorError):
    """The campaign ran, but some rows ended failed or in doubt: not a success."""

    exit_code: ClassVar[int] = 3


def gateway_problem(exc: SMSPartnerError, base_url: str) -> str:
    """One line for the operator, for every flow; the client's messages never hold the key or a
    full number, and the URL is shown without any credential in it."""
    if isinstance(exc, AuthError):
        return f"the gateway refused the API key (code {exc.code})"
    if isinstance(exc, TransportError):
        return f"gateway unreachable at {public_url(base_url)}: {exc}"  # no credentials
    return f"gateway error: {exc}"
