"""Reading the gateway's answers, tolerantly: fields, dates, statuses, and what a read proves.

Pure: bytes and mappings in, nouns (``models``) or errors (``errors``) out; no HTTP stack, no
clock except the one ``Retry-After`` date that is relative to now. Section 18 of
``smspartner-api.md`` lists the spellings tolerated here: ``statut``/``status``,
``stopSms``/``stopSMS`` as booleans or ``"0"``/``"1"``, dates as ``Y-m-d H:i:s`` (Paris time) or
Unix timestamps, ids and amounts as strings, ``nb_sms``/``nbSMS``, ``error``/``errors``.

Private to the package: ``outcome.py`` (sends) and ``client.py`` (every other call) use it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

from smspartner.errors import (
    AuthError,
    CancelError,
    InsufficientCredits,
    NotFound,
    RateLimited,
    Rejected,
    ServerError,
    SMSPartnerError,
    TransportError,
)
from smspartner.models import PARIS, Credits, Exchange, StatusEntry, StopEntry

_LOCAL_DATETIME_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_NUMERIC_RE: Final = re.compile(r"^\d+(\.\d+)?$")

DELIVERED: Final = "Delivered"
NOT_DELIVERED: Final = "Not delivered"
WAITING: Final = "Waiting"
# Lower-cased spellings seen in the docs (list endpoints, the error page, operator DLR codes).
_STATUS_ALIASES: Final = {
    "delivered": DELIVERED,
    "delivrd": DELIVERED,
    "not delivered": NOT_DELIVERED,
    "undeliv": NOT_DELIVERED,
    "rejectd": NOT_DELIVERED,
    "expired": NOT_DELIVERED,
    "ko": NOT_DELIVERED,
    "waiting": WAITING,
    "pending": WAITING,
    "enroute": WAITING,
    "acceptd": WAITING,
}


# --- fields -------------------------------------------------------------------------------------


def first(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present and not null (the API's alternate spellings)."""
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.lstrip("-").isdigit():
        return int(text)
    return None


def as_float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", "."))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "oui"}
    return False


def error_list(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The validation list as (elementId, message) pairs, whichever shape the answer used."""
    raw = first(body, "error", "errors")
    if isinstance(raw, Mapping):
        return [(str(k), str(v)) for k, v in raw.items()]
    if not isinstance(raw, list):
        return []
    found: list[tuple[str, str]] = []
    for item in raw:
        if isinstance(item, Mapping):
            found.append((str(item.get("elementId", "")), str(item.get("message", ""))))
        elif item is not None:
            found.append(("", str(item)))
    return found


# --- dates and statuses -------------------------------------------------------------------------


def parse_gateway_date(value: object) -> datetime | None:
    """A gateway date as an aware UTC datetime, or None when absent or unreadable.

    Accepts Unix timestamps (int, float or digit string; milliseconds too), ``Y-m-d H:i:s``
    strings (Paris wall-clock time, as the platform is French) and ISO 8601 with an offset.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_timestamp(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _NUMERIC_RE.match(text):
        return _from_timestamp(float(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not _LOCAL_DATETIME_RE.match(text):
            return None
        parsed = parsed.replace(tzinfo=PARIS)
    return parsed.astimezone(UTC)


def _from_timestamp(seconds: float) -> datetime | None:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def normalise_status(value: object) -> str:
    """``Delivered``, ``Not delivered`` or ``Waiting`` for any spelling of those, else the text."""
    text = "" if value is None else str(value).strip()
    return _STATUS_ALIASES.get(text.lower(), text)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), None if unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


# --- bodies -------------------------------------------------------------------------------------


def parse_credits(body: Mapping[str, Any]) -> Credits:
    credits = body.get("credits")
    if not isinstance(credits, Mapping):
        credits = body
    balance = as_float(first(credits, "balance", "solde"))
    if balance is None:
        raise SMSPartnerError("GET me: the answer holds no balance")
    return Credits(
        balance=balance,
        currency=str(credits.get("currency") or "EUR"),
        credit_sms=as_int(credits.get("creditSms")),
        to_send=as_int(credits.get("toSend")),
        raw=dict(body),
    )


def parse_status_item(item: Mapping[str, Any], message_id: int | None) -> StatusEntry:
    return StatusEntry(
        phone_number=str(first(item, "phoneNumber", "number", "phone_number") or ""),
        status=normalise_status(first(item, "statut", "status")),
        stop=as_bool(first(item, "stopSms", "stopSMS", "stop_sms", "stop")),
        date=parse_gateway_date(item.get("date")),
        message_id=as_int(first(item, "messageId", "message_id")) or message_id,
    )


def parse_status_list(body: Mapping[str, Any]) -> list[StatusEntry]:
    items = first(body, "StatutResponse_List", "StatusResponse_List", "statutResponseList")
    envelope_id = as_int(first(body, "message_id", "messageId"))
    if not isinstance(items, list):
        # An answer without its list proves nothing: never read it as "nobody" (a send looked up
        # this way would be taken for not landed).
        raise SMSPartnerError("the status answer holds no status list")
    return [parse_status_item(i, envelope_id) for i in items if isinstance(i, Mapping)]


def parse_stop_list(body: Mapping[str, Any]) -> list[StopEntry]:
    items = body.get("data")
    if not isinstance(items, list):
        return []
    return [
        StopEntry(
            id=as_int(item.get("id")),
            phone_number=str(first(item, "phoneNumber", "number") or ""),
            created_at=str(item["createdAt"]) if item.get("createdAt") else None,
        )
        for item in items
        if isinstance(item, Mapping)
    ]


# --- what an answer to a read (or a cancel) proves -----------------------------------------------


def interpret(
    where: str, exchange: Exchange, cancel: bool, secret: str
) -> dict[str, Any] | SMSPartnerError:
    """Map one HTTP answer to its JSON body or to the matching error (reads, cancels).

    ``secret`` (the API key) is starred out of any text of the answer quoted in the error."""
    if exchange.status is None or exchange.failure:
        return TransportError(
            exchange.failure or f"{where}: no answer", may_have_landed=exchange.connected
        )
    status = exchange.status
    body = _json_body(exchange.content)
    is_dict = isinstance(body, dict)
    code = as_int(body.get("code")) if is_dict else None

    def clean(text: object) -> str:
        return str(text).replace(secret, "***").strip() if text is not None else ""

    api_message = clean(body.get("message")) if is_dict else ""
    unusable = _unusable_answer(where, status, exchange.retry_after, code, api_message, is_dict)
    if unusable is not None:
        return unusable
    if 200 <= status < 300 and body.get("success") is not False and code in (None, 200):
        return dict(body)
    errors = [(clean(e), clean(m)) for e, m in error_list(body)]
    text = f"{where}: HTTP {status}, code {code}"
    if api_message:
        text += f": {api_message}"
    if errors:
        text += f"; {len(errors)} validation error(s), first {errors[0][0]}: {errors[0][1]}"
    error_type = error_type_of(code, status, cancel)
    return error_type(text, code=code, http_status=status, errors=errors)


def _json_body(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8-sig")) if content else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _unusable_answer(
    where: str,
    status: int,
    retry_after: float | None,
    code: int | None,
    api_message: str,
    is_dict: bool,
) -> SMSPartnerError | None:
    """The error for an answer that is not the API's JSON envelope: a 429, a 5xx, a redirect, or
    a body that is not a JSON object; None for an envelope to read."""
    if status == 429:
        return RateLimited(
            f"{where}: HTTP 429, rate limited",
            retry_after=retry_after,
            code=code,
        )
    if status >= 500:
        detail = api_message if is_dict else "the answer is not JSON"
        return ServerError(f"{where}: HTTP {status}, {detail}", code=code, http_status=status)
    if 300 <= status < 400:
        return SMSPartnerError(f"{where}: unexpected redirect (HTTP {status})", http_status=status)
    if not is_dict:
        plain_type = AuthError if status in (401, 403) else SMSPartnerError
        return plain_type(
            f"{where}: HTTP {status}, the answer is not a JSON object", http_status=status
        )
    return None


def error_type_of(code: int | None, status: int, cancel: bool) -> type[SMSPartnerError]:
    """Which error an API envelope that is not a success raises, by its code (for a cancel,
    codes 5 to 7 are the cancel's own refusals)."""
    if code in (1, 10) or (code is None and status in (401, 403)):
        return AuthError
    if code == 11:
        return InsufficientCredits
    if code == 4:
        return NotFound
    if cancel and code in (5, 6, 7):
        return CancelError
    if code is None:
        return SMSPartnerError
    return Rejected
