"""The nouns of the SMS Partner API: what a request may hold and what its answers become, and
the gateway's URL as people may see it (``public_url``).

Pure: no HTTP stack, no clock. ``client.py`` checks requests against these limits and
``_parse.py`` builds these objects from answers; callers receive them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

__all__ = [
    "MAX_NUMBERS_PER_SEND",
    "PARIS",
    "TAG_PATTERN",
    "Credits",
    "Exchange",
    "StatusEntry",
    "StopEntry",
    "public_url",
    "schedule_at",
]

PARIS: Final = ZoneInfo("Europe/Paris")  # the gateway reads and writes wall-clock Paris time
MAX_NUMBERS_PER_SEND: Final = 500
# How long the client waits to connect and for an answer (seconds), unless told otherwise: the one
# home of both (tasks/ sends with ``READ_TIMEOUT`` too, and connects with ``CONNECT_TIMEOUT``).
CONNECT_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 30.0
TAG_PATTERN: Final = re.compile(r"^[a-z0-9_-]{1,20}$")


# --- requests -----------------------------------------------------------------------------------


def schedule_at(when: datetime) -> dict[str, str | int]:
    """The ``schedule`` mapping for ``send_survey`` that delivers at ``when`` (aware datetime).

    The gateway reads the date in Paris wall-clock time and only on 5-minute boundaries;
    ``ValueError`` otherwise, and for the repeated hour of the autumn DST change.
    """
    if when.tzinfo is None:
        raise ValueError("the slot must be timezone-aware")
    local = when.astimezone(PARIS)
    if local.minute % 5 or local.second or local.microsecond:
        raise ValueError(f"slot {local.isoformat()} is not on a 5-minute boundary")
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        # A wall time in the repeated hour of the autumn change names two instants.
        raise ValueError(f"slot {local.isoformat()} falls in the repeated hour of a DST change")
    return {
        "scheduledDeliveryDate": local.strftime("%d/%m/%Y"),
        "time": local.hour,
        "minute": local.minute,
    }


def public_url(url: str) -> str:
    """The URL without any user or password in it, for messages and logs."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        if ":" in (parts.hostname or ""):
            netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<gateway URL>"


# --- answers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """What one HTTP request produced, before any reading of its meaning.

    ``status`` is None when no HTTP answer came; ``connected`` is False only when the request
    certainly never left (``may_have_landed`` said no: the call failed before its first byte was
    written); ``failure`` says what went wrong on the wire (timeout, reset, body too large or
    too slow), in one line without the key.
    """

    status: int | None
    content: bytes = b""
    retry_after: float | None = None
    connected: bool = True
    failure: str = ""


@dataclass(frozen=True)
class Credits:
    """Account balance (``GET me``)."""

    balance: float
    currency: str
    credit_sms: int | None
    to_send: int | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StatusEntry:
    """Delivery status of one recipient."""

    phone_number: str
    status: str  # "Delivered" | "Not delivered" | "Waiting" | the raw text for anything else
    stop: bool
    date: datetime | None  # UTC, aware
    message_id: int | None


@dataclass(frozen=True)
class StopEntry:
    """One number on the account's STOP list."""

    id: int | None
    phone_number: str
    created_at: str | None
