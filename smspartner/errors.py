"""Typed errors raised by the SMS Partner client, so a caller can catch at the level it needs.

```
SMSPartnerError(Exception)   .code (API code), .http_status, .retryable,
│                            .errors [(elementId, message)]
├── TransportError           no whole answer: refused, DNS, timeout, TLS, reset   (retryable)
│                            .may_have_landed: False only for a failure before the request's first
│                            byte was written (refused, DNS, connect timeout, the TLS handshake of
│                            a new connection); True once it started to be written, whatever came
│                            next (a TLS or protocol error, a reset - on a new or a reused
│                            connection - a read timeout, a cut answer). Decided by the error's
│                            type and that moment (``outcome.may_have_landed``), never its text.
├── RateLimited              HTTP 429, .retry_after seconds or None                (retryable)
├── ServerError              HTTP 5xx, or a non-JSON error page                    (retryable)
├── AuthError                codes 1 (key missing), 10 (key wrong), HTTP 401/403   (fatal)
├── InsufficientCredits      code 11                                (fatal for the campaign)
├── NotFound                 code 4: message id or tag unknown to the gateway
├── CancelError              cancel codes 5 (already cancelled), 6 (< 5 min before the send),
│                            7 (already sent); .code tells which
└── Rejected                 code 9 and the other per-request codes (2, 3, 50, ...), with .errors
```

``retryable`` says whether trying again later can help; it does not say whether the client
already retried. The client retries in exactly one place (see ``client.py``); a POST that may have
landed is never retried blindly: reconcile it through its tag first.

Messages are short, never contain the API key or a URL, and mask phone numbers; the raw
validation list stays available on ``.errors`` for the caller that must know which number failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "AuthError",
    "CancelError",
    "InsufficientCredits",
    "NotFound",
    "RateLimited",
    "Rejected",
    "SMSPartnerError",
    "ServerError",
    "TransportError",
    "is_phone_number",
    "mask_phone_numbers",
]

# THE rule for a phone number inside a text, for the gateway package and for tasks/ (which
# imports it through tasks/numbers/masking.py): a run of digits with what people put between
# them (spaces of every kind, dots, dashes, slashes, parentheses), a "+" first or not, holding
# 7+ digits. Shorter runs are counts, line numbers, years. Two shapes are not numbers although
# long enough: a database host in a connection error ("10.123.45.67"), and a count or amount
# French formatting groups by thousands with the narrow no-break space U+202F
# ("1 234 567 destinataires"), up to 8 digits: nobody types a phone number so, and a
# 9-digit run is a French number's length, masked whatever its grouping.
_PHONE_RE = re.compile(r"\+?\d(?:[\s.\-/()\u2010-\u2015\u2212]*\d)+")
_MASKED_FROM = 7  # digits
_KEPT_HEAD, _KEPT_TAIL = 2, 2  # digits left visible (one more in the head after a "+")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_GROUPED_COUNT = re.compile(r"[0-9]{1,2}\u202f[0-9]{3}\u202f[0-9]{3}")
_MAX_MESSAGE = 300


def is_phone_number(run: str) -> bool:
    """Whether a run found by the rule above is a phone number (not a count, not an address)."""
    digits = sum(ch.isdigit() for ch in run)
    return not (digits < _MASKED_FROM or _IPV4.fullmatch(run) or _GROUPED_COUNT.fullmatch(run))


def mask_phone_numbers(text: str, *, in_place: bool = False) -> str:
    """``text`` with the middle digits of every phone number in it replaced by bullets.

    Two spellings of one rule: by default (the gateway's own messages) a number is written
    again without its separators, ``06 12 34 56 78`` -> ``06••••••78``; ``in_place`` keeps its
    shape, ``06 •• •• •• 78``, for a text that quotes what someone typed. Either way at most the
    first two digits (three after a "+") and the last two survive."""
    render = _masked_in_place if in_place else _masked_compact

    def _mask(match: re.Match[str]) -> str:
        run = match.group(0)
        return render(run) if is_phone_number(run) else run

    return _PHONE_RE.sub(_mask, text)


def _masked_compact(run: str) -> str:
    digits = re.sub(r"\D", "", run)
    prefix = "+" if run.startswith("+") else ""
    head = digits[: _KEPT_HEAD + 1] if prefix else digits[:_KEPT_HEAD]
    return f"{prefix}{head}{'•' * max(len(digits) - len(head) - _KEPT_TAIL, 1)}{digits[-2:]}"


def _masked_in_place(run: str) -> str:
    digits = sum(ch.isdigit() for ch in run)
    head = _KEPT_HEAD + run.startswith("+")
    out, seen = [], 0
    for ch in run:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= head or seen > digits - _KEPT_TAIL else "•")
        else:
            out.append(ch)
    return "".join(out)


class SMSPartnerError(Exception):
    """Any failure talking to SMS Partner."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        errors: Iterable[tuple[str, str]] = (),
        retryable: bool | None = None,
    ) -> None:
        message = mask_phone_numbers(message)
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.errors: list[tuple[str, str]] = list(errors)
        if retryable is not None:
            self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"http_status={self.http_status!r})"
        )


class TransportError(SMSPartnerError):
    """No usable HTTP answer: refused, reset, timed out, a TLS or protocol error, a cut answer.

    ``may_have_landed`` is False only when the call failed before any byte of the request was
    written."""

    retryable = True

    def __init__(self, message: str, *, may_have_landed: bool) -> None:
        super().__init__(message)
        self.may_have_landed = may_have_landed

    def __repr__(self) -> str:
        return f"TransportError({self.message!r}, may_have_landed={self.may_have_landed!r})"


class RateLimited(SMSPartnerError):
    """HTTP 429: the gateway refused the request before handling it."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, code: int | None = None) -> None:
        super().__init__(message, code=code, http_status=429)
        self.retry_after = retry_after


class ServerError(SMSPartnerError):
    """HTTP 5xx: the gateway failed; for a POST it may or may not have acted."""

    retryable = True


class AuthError(SMSPartnerError):
    """The API key is missing or wrong (codes 1 and 10)."""


class InsufficientCredits(SMSPartnerError):
    """The account balance does not cover the send (code 11)."""


class NotFound(SMSPartnerError):
    """The gateway does not know this message id or tag (code 4)."""


class CancelError(SMSPartnerError):
    """A scheduled send could not be cancelled: code 5, 6 or 7 (see the module docstring)."""

    ALREADY_CANCELLED = 5
    TOO_LATE = 6
    ALREADY_SENT = 7


class Rejected(SMSPartnerError):
    """The gateway refused the request's content (code 9 and other per-request codes)."""
