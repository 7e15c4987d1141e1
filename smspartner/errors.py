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
    "mask_phone_numbers",
]

# A run of 7+ digits (optionally with a leading + and separators) is treated as a phone number.
# Not the narrow no-break space (U+202F): French number formatting groups counts and amounts
# with it ("1 234 567 destinataires"), and nobody types it inside a phone number.
_PHONE_RE = re.compile(r"\+?\d(?:(?:[^\S\u202f]|[.\-/()\u2010-\u2015\u2212])*\d){6,}")
_MAX_MESSAGE = 300


def mask_phone_numbers(text: str) -> str:
    """Replace the middle digits of anything that looks like a phone number with bullets."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        prefix = "+" if match.group(0).startswith("+") else ""
        head = digits[:3] if prefix else digits[:2]
        return f"{prefix}{head}{'•' * max(len(digits) - len(head) - 2, 1)}{digits[-2:]}"

    return _PHONE_RE.sub(_mask, text)


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
