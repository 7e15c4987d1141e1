"""What one answer to a send proves: accepted, refused, or unknown (it may have landed).

A POST that reached the gateway may have been acted on whatever came back, so an answer is
evidence only for what it says for certain:

- **accepted**: a well-formed JSON object with ``success`` true, no error code, and the
  ``message_id`` the API documents for every accepted send;
- **refused**: a well-formed JSON object with ``success`` false and a code the API documents,
  an HTTP 429, or a call that failed before any byte of the request was written (refused, DNS,
  connect timeout, the TLS handshake of a new connection): nothing landed, it may be sent again;
- **unknown**: everything else - a read timeout, any TLS or protocol error or reset once the
  request started to be written (on a new or a reused connection), any 5xx, a redirect, a body
  that is not the JSON the API documents (HTML, empty, truncated, too large, not an object,
  ``success`` missing), an undocumented code, a success without its message id. It may have
  landed: only the status endpoints, after a settle time, can say.

``classify`` is the one place that decides what an answer proves, and ``may_have_landed`` the
one place that decides what a call without a whole answer proves; both are pure and tested as
tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from smspartner._parse import as_float, as_int, error_list, first
from smspartner.errors import mask_phone_numbers
from smspartner.models import Exchange

__all__ = [
    "ACCOUNT_CODES",
    "SEND_CODES",
    "Ending",
    "Exchange",
    "Kind",
    "Refusal",
    "SendOutcome",
    "classify",
    "may_have_landed",
]


class Kind(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"


class Refusal(StrEnum):
    """Why nothing landed, as far as the caller must act differently."""

    ACCOUNT = "account"  # key missing/wrong, account disabled/blocked, API or IP not allowed
    CREDITS = "credits"  # code 11
    RATE_LIMITED = "rate_limited"  # HTTP 429
    NOT_CONNECTED = "not_connected"  # the request never left this machine
    SLOT = "slot"  # codes 22/23: the gateway refuses this hour or day
    CONTENT = "content"  # code 9 and every other documented per-request code


# smspartner-api.md section 12, "SMS sending" (992 is a stray line of the docs, kept: it
# refuses the sender, it does not accept anything).
SEND_CODES: Final = frozenset(
    {1, 2, 4, 9, 10, 11, 13, 14, 15, 20, 22, 23, 30, 40, 42, 43, 44, 45, 46, 47, 48, 49, 50}
    | {51, 52, 55, 90, 96, 500, 992}
)
# Codes after which no send of this account can succeed: the campaign stops.
ACCOUNT_CODES: Final = frozenset({1, 10, 20, 30, 40, 96})
_SLOT_CODES: Final = frozenset({22, 23})
_MAX_REASON: Final = 200


class Ending(StrEnum):
    """How a call ended without a whole HTTP answer (the client tells them apart by type, never
    by an error's text)."""

    REFUSED = "refused"  # no TCP connection: refused, unreachable
    DNS = "dns"  # the gateway's name did not resolve
    CONNECT_TIMEOUT = "connect_timeout"
    TLS = "tls"  # any TLS failure: handshake, certificate, a record that is not TLS, an alert
    RESET = "reset"  # the connection was reset or closed by the other side
    PROTOCOL = "protocol"  # bytes that are not HTTP where HTTP was expected
    READ_TIMEOUT = "read_timeout"  # no answer within the read timeout
    CUT = "cut"  # the answer's body ended early or its chunked framing broke
    TOO_LARGE = "too_large"  # the answer passed the body cap
    DEADLINE = "deadline"  # the answer was not whole within the call's deadline
    OTHER = "other"  # anything else the HTTP stack raised


# What can fail while connecting, before the request is written. Any of them after the first
# byte of the request was written (a TLS error on an established or reused connection, a reset,
# plain bytes where a TLS record was expected) may come after the gateway acted on it.
_CONNECTING: Final = frozenset(
    {Ending.REFUSED, Ending.DNS, Ending.CONNECT_TIMEOUT, Ending.TLS, Ending.RESET, Ending.PROTOCOL}
)


def may_have_landed(ending: Ending, written: bool) -> bool:
    """Whether a call that ended this way may have reached the gateway.

    ``written``: the first byte of the request was handed to the connection. Only a failure
    before that proves nothing left; an ending that needs an answer to have started (a read
    timeout, a cut or oversized body, the deadline) or one not understood is "may have landed"
    whatever ``written`` says, so a wrong flag can only ever err on the safe side.
    """
    return written or ending not in _CONNECTING


@dataclass(frozen=True)
class SendOutcome:
    kind: Kind
    reason: str  # one line for people: masked numbers, never the key
    refusal: Refusal | None = None
    code: int | None = None
    http_status: int | None = None
    message_id: int | None = None
    nb_sms: int | None = None
    cost: float | None = None
    currency: str | None = None
    scheduled: str | None = None
    errors: tuple[tuple[str, str], ...] = ()  # the validation list, unmasked, for code 9
    retry_after: float | None = None


def classify(exchange: Exchange) -> SendOutcome:
    """Decide what an answer to ``POST sondage/to/send`` proves."""
    status = exchange.status
    if status is None or exchange.failure:
        if not exchange.connected:
            return _refused(Refusal.NOT_CONNECTED, exchange.failure or "could not connect")
        return _unknown(exchange.failure or "no answer", status)
    if status == 429:
        return SendOutcome(
            Kind.REFUSED,
            "HTTP 429, rate limited",
            Refusal.RATE_LIMITED,
            http_status=429,
            retry_after=exchange.retry_after,
        )
    if status >= 500:
        return _unknown(f"HTTP {status}", status)
    if not 200 <= status < 500 or 300 <= status < 400:
        return _unknown(f"HTTP {status}", status)
    body = _json_object(exchange.content)
    if body is None:
        what = "an empty answer" if not exchange.content.strip() else "an answer that is not JSON"
        return _unknown(f"HTTP {status} with {what}", status)
    success = body.get("success")
    code = as_int(body.get("code"))
    if success is True and 200 <= status < 300 and code in (None, 200):
        return _accepted(body, status)
    if success is not False or code is None or code not in SEND_CODES:
        return _unknown(f"HTTP {status}: not an answer the API documents (code {code})", status)
    return _refused_by_code(body, status, code)


def _accepted(body: dict[str, Any], status: int) -> SendOutcome:
    message_id = as_int(first(body, "message_id", "messageId"))
    if message_id is None or message_id <= 0:
        return _unknown(f"HTTP {status}: success without a message id", status)
    scheduled = body.get("scheduledDeliveryDate")
    return SendOutcome(
        Kind.ACCEPTED,
        "accepted",
        http_status=status,
        message_id=message_id,
        nb_sms=as_int(first(body, "nb_sms", "nbSMS", "nbSms")),
        cost=as_float(body.get("cost")),
        currency=str(body["currency"]) if body.get("currency") else None,
        scheduled=str(scheduled) if scheduled else None,
    )


def _refused_by_code(body: dict[str, Any], status: int, code: int) -> SendOutcome:
    errors = error_list(body)
    text = f"code {code}"
    message = body.get("message")
    if message:
        text += f": {message}"
    if errors:
        text += f"; {errors[0][0]}: {errors[0][1]}"
    return SendOutcome(
        Kind.REFUSED,
        _line(text),
        _refusal_of(code),
        code=code,
        http_status=status,
        errors=tuple(errors),
    )


def _refusal_of(code: int) -> Refusal:
    """What the caller must do differently after a documented refusal code."""
    if code in ACCOUNT_CODES:
        return Refusal.ACCOUNT
    if code == 11:
        return Refusal.CREDITS
    if code in _SLOT_CODES:
        return Refusal.SLOT
    return Refusal.CONTENT


def _refused(refusal: Refusal, reason: str) -> SendOutcome:
    return SendOutcome(Kind.REFUSED, _line(reason), refusal)


def _unknown(reason: str, status: int | None) -> SendOutcome:
    return SendOutcome(Kind.UNKNOWN, _line(reason), http_status=status)


def _line(text: str) -> str:
    text = mask_phone_numbers(" ".join(str(text).split()))
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(content.decode("utf-8-sig")) if content.strip() else None
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: not an answer
        return None
    return body if isinstance(body, dict) else None
