"""A small, typed HTTP client for the SMS Partner API (https://api.smspartner.fr/v1).

One ``requests.Session`` per client (connection reuse, TLS verification on, explicit timeouts).
The API key travels only where the API wants it: in the JSON body of a POST and in the query
string of a GET. The client never logs a URL, a query string or a body, and installs a filter on
urllib3's loggers that redacts ``apiKey=...`` from the GET URLs urllib3 logs at DEBUG.

Retries of reads happen here, in one place; a send is never retried here:

- GETs (and the read-only POST ``multi-status``) are idempotent: retried on transport errors,
  HTTP 429 and 5xx, with bounded exponential backoff and full jitter, honouring ``Retry-After``.
  A ``Retry-After`` longer than ``max_backoff`` is not slept on: ``RateLimited`` is raised so the
  caller's scheduler, not a blocked thread, does the long wait.
- ``send_survey`` makes exactly one request and returns what its answer proves
  (``smspartner.outcome``: accepted, refused, or unknown); it raises nothing for what the
  gateway or the network did. The caller owns the one retry policy of sends, and must settle an
  unknown send through ``status_by_tag`` before sending that chunk again.

Every answer is read within ``max_body`` bytes and every request ends within ``deadline``
seconds, whatever the server does.

Answers are parsed tolerantly (see section 18 of ``smspartner-api.md``): ``statut``/``status``,
``stopSms``/``stopSMS`` as booleans or ``"0"``/``"1"``, dates as ``Y-m-d H:i:s`` (Paris time) or
Unix timestamps, ids and amounts as strings, ``nb_sms``/``nbSMS``, ``error``/``errors``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

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
from smspartner.outcome import (
    Ending,
    Exchange,
    SendOutcome,
    _as_float,
    _as_int,
    _error_list,
    _first,
    classify,
    may_have_landed,
)

__all__ = [
    "MAX_NUMBERS_PER_SEND",
    "TAG_PATTERN",
    "Credits",
    "SMSPartnerClient",
    "SendOutcome",
    "StatusEntry",
    "StopEntry",
    "normalise_status",
    "parse_gateway_date",
    "schedule_at",
]

log = logging.getLogger("smspartner")

PARIS: Final = ZoneInfo("Europe/Paris")
MAX_NUMBERS_PER_SEND: Final = 500
TAG_PATTERN: Final = re.compile(r"^[a-z0-9_-]{1,20}$")
_DATE_RE: Final = re.compile(r"^\d{2}/\d{2}/\d{4}$")
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


# --- log redaction -----------------------------------------------------------------------------

_URLLIB3_LOGGERS: Final = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)
_APIKEY_IN_TEXT: Final = re.compile(r"""(?i)(api_?key["']?\s*[=:]\s*["']?)[^&\s'",}]+""")


class RedactApiKey(logging.Filter):
    """Rewrites a record whose message holds ``apiKey=...`` so the value reads ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        if "apikey" in text.lower() or "api_key" in text.lower():
            record.msg = _APIKEY_IN_TEXT.sub(r"\1***", text)
            record.args = None
        return True


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


class _Watch:
    """One call on the wire. Holds the whole-call deadline: a timer that shuts the call's socket
    down when it passes, so a server dripping its status line or headers a byte at a time (each
    within the read timeout) cannot hold a worker past the deadline. And whether the request's
    first byte was written: a failure before that proves nothing left, any failure after it may
    come after the gateway acted (``smspartner.outcome.may_have_landed``)."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.expired = False
        self.written = False
        self._timer: threading.Timer | None = None

    def arm(self, sock: socket.socket | None) -> None:
        if sock is None or self._timer is not None:
            return

        def expire() -> None:
            self.expired = True
            with contextlib.suppress(OSError):  # already closed: nothing left to stop
                sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(max(0.0, self.until - time.monotonic()), expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


_calls = threading.local()  # the current call's _Watch, per worker thread


class _Watched:
    """Records on the current call's watch when the request starts to be written, and arms its
    deadline once the request is out, before the answer is read."""

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is None:
            # A new plain-HTTP connection is opened lazily by the first write: open it (and for
            # HTTPS the pool already did, handshake included) before anything counts as written.
            self.connect()  # type: ignore[attr-defined]
        watch = getattr(_calls, "watch", None)
        if watch is not None:
            watch.written = True
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        watch = getattr(_calls, "watch", None)
        if watch is not None:
            watch.arm(self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """Requests' adapter with connections that honour the whole-call deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


def install_log_redaction() -> None:
    """Attach ``RedactApiKey`` to urllib3's loggers (idempotent).

    urllib3 logs ``"GET /v1/me?apiKey=... HTTP/1.1" 200`` at DEBUG; logger-level filters run
    before any handler, so every handler sees the redacted text.
    """
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactApiKey) for f in logger.filters):
            logger.addFilter(RedactApiKey())


install_log_redaction()


# --- parsed answers ----------------------------------------------------------------------------


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


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "oui"}
    return False


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


def _parse_credits(body: Mapping[str, Any]) -> Credits:
    credits = body.get("credits")
    if not isinstance(credits, Mapping):
        credits = body
    balance = _as_float(_first(credits, "balance", "solde"))
    if balance is None:
        raise SMSPartnerError("GET me: the answer holds no balance")
    return Credits(
        balance=balance,
        currency=str(credits.get("currency") or "EUR"),
        credit_sms=_as_int(credits.get("creditSms")),
        to_send=_as_int(credits.get("toSend")),
        raw=dict(body),
    )


def _parse_status_item(item: Mapping[str, Any], message_id: int | None) -> StatusEntry:
    return StatusEntry(
        phone_number=str(_first(item, "phoneNumber", "number", "phone_number") or ""),
        status=normalise_status(_first(item, "statut", "status")),
        stop=_as_bool(_first(item, "stopSms", "stopSMS", "stop_sms", "stop")),
        date=parse_gateway_date(item.get("date")),
        message_id=_as_int(_first(item, "messageId", "message_id")) or message_id,
    )


def _parse_status_list(body: Mapping[str, Any]) -> list[StatusEntry]:
    items = _first(body, "StatutResponse_List", "StatusResponse_List", "statutResponseList")
    envelope_id = _as_int(_first(body, "message_id", "messageId"))
    if not isinstance(items, list):
        # An answer without its list proves nothing: never read it as "nobody" (a send looked up
        # this way would be taken for not landed).
        raise SMSPartnerError("the status answer holds no status list")
    return [_parse_status_item(i, envelope_id) for i in items if isinstance(i, Mapping)]


def _parse_stop_list(body: Mapping[str, Any]) -> list[StopEntry]:
    items = body.get("data")
    if not isinstance(items, list):
        return []
    return [
        StopEntry(
            id=_as_int(item.get("id")),
            phone_number=str(_first(item, "phoneNumber", "number") or ""),
            created_at=str(item["createdAt"]) if item.get("createdAt") else None,
        )
        for item in items
        if isinstance(item, Mapping)
    ]


def _retry_after(value: str | None) -> float | None:
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


# Exception types for each ending, most specific first (NameResolutionError is a
# NewConnectionError, which is a ConnectTimeoutError; RemoteDisconnected is both a reset and an
# HTTPException; a TLS failure wrapped in a reset is TLS).
_ENDING_TYPES: Final[tuple[tuple[Ending, tuple[type[BaseException], ...]], ...]] = (
    (Ending.DNS, (urllib3.exceptions.NameResolutionError, socket.gaierror)),
    (Ending.REFUSED, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)),
    (
        Ending.CONNECT_TIMEOUT,
        (urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout),
    ),
    (Ending.TLS, (ssl.SSLError, urllib3.exceptions.SSLError, requests.exceptions.SSLError)),
    (
        Ending.READ_TIMEOUT,
        (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError),
    ),
    (Ending.CUT, (http.client.IncompleteRead, requests.exceptions.ChunkedEncodingError)),
    (Ending.RESET, (ConnectionError,)),
    (
        Ending.PROTOCOL,
        (
            http.client.HTTPException,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.HeaderParsingError,
        ),
    ),
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and those it wraps (requests wraps urllib3, which wraps the socket's)."""
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(found) < 16:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is f for f in found):
            continue
        found.append(item)
        todo.append(getattr(item, "reason", None))  # MaxRetryError, NewConnectionError...
        todo.extend(item.args)
        todo.extend((item.__cause__, item.__context__))
    return found


def ending_of(exc: BaseException) -> Ending:
    """How a call ended, from the types of the exception and of what it wraps (pure; never from
    an error's text, which OpenSSL words the same before and after the request is written)."""
    causes = _causes(exc)
    for ending, types in _ENDING_TYPES:
        if any(isinstance(cause, types) for cause in causes):
            return ending
    return Ending.OTHER


_SAID: Final = {
    Ending.REFUSED: "connection refused",
    Ending.DNS: "name not found",
    Ending.CONNECT_TIMEOUT: "connect timeout",
    Ending.TLS: "TLS error",
    Ending.RESET: "connection reset",
    Ending.PROTOCOL: "an answer that is not HTTP",
    Ending.READ_TIMEOUT: "read timeout",
    Ending.CUT: "answer cut",
    Ending.TOO_LARGE: "answer too large",
    Ending.DEADLINE: "deadline passed",
    Ending.OTHER: "transport error",
}


def _lost(where: str, exc: BaseException, written: bool, read_timeout: float) -> Exchange:
    """The exchange of a call that raised before its answer came (never the exception's text,
    which holds the URL and so the key)."""
    ending = ending_of(exc)
    landed = may_have_landed(ending, written)
    if ending is Ending.READ_TIMEOUT:
        what = f"no answer within {read_timeout:g}s"
    elif not landed:
        what = f"could not connect ({_SAID[ending]})"
    else:
        what = f"connection lost after sending ({_SAID[ending]})"
    return Exchange(None, connected=landed, failure=f"{where}: {what}")


class _Secret:
    """Holds the API key so that repr(), vars() and debuggers show stars."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


# --- the client --------------------------------------------------------------------------------


class SMSPartnerClient:
    """Client for the parts of the SMS Partner API a survey campaign needs.

    Thread-safe for concurrent calls (one pooled session, no per-call state on the object).
    """

    DEFAULT_BASE_URL = "https://api.smspartner.fr/v1"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        pool_size: int = 32,
        deadline: float | None = None,
        max_body: int = 1 << 20,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key is empty")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        connect_timeout, read_timeout = timeout
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive: the client never waits forever")
        self._key = _Secret(api_key)
        # Credentials in the URL (a proxy's or a gateway's basic auth) become the session's auth
        # and leave the URL, which messages, logs and repr show.
        split = urlsplit(base_url)
        self.base_url = public_url(base_url).rstrip("/")
        self.timeout = (float(connect_timeout), float(read_timeout))
        # A server that drips a byte per read timeout would otherwise hold a call for ever.
        self.deadline = float(deadline) if deadline else connect_timeout + 2 * read_timeout
        self.max_body = max_body  # SMS Partner's answers are a few kilobytes
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._rng = random.Random()
        self._session = requests.Session()
        # The environment (proxies, CA bundle) is read once here rather than on every request:
        # requests re-reads it per call, which cost more CPU than the call on a busy fan-out.
        self._session.proxies = requests.utils.get_environ_proxies(self.base_url)
        self._session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._session.trust_env = False
        if split.username or split.password:
            self._session.auth = (split.username or "", split.password or "")
        self._session.headers.update(
            {
                "Accept": "application/json",
                # No compression: the body cap counts the bytes a decoder would hand us.
                "Accept-Encoding": "identity",
                "User-Agent": "sms-survey-campaigns/smspartner",
            }
        )
        # urllib3 must not retry on its own: retrying lives in _call, in one layer.
        adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        install_log_redaction()

    def __repr__(self) -> str:
        return f"SMSPartnerClient(base_url={self.base_url!r})"

    def __enter__(self) -> SMSPartnerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    # --- endpoints ---------------------------------------------------------------------------

    def send_survey(
        self,
        phone_numbers: Sequence[str],
        survey_id: str,
        *,
        tag: str | None = None,
        schedule: Mapping[str, str | int] | None = None,
    ) -> SendOutcome:
        """Send survey ``survey_id`` to up to 500 numbers (``POST sondage/to/send``), once.

        Raises ``ValueError`` before any network call for inputs the gateway would refuse;
        otherwise returns what the answer proves (``smspartner.outcome.classify``). An
        ``unknown`` outcome may have landed: look the ``tag`` up with ``status_by_tag``, after a
        settle time, before sending again.
        """
        if isinstance(phone_numbers, str | bytes):
            raise TypeError("phone_numbers must be a sequence of numbers, not one string")
        numbers = [str(n).strip() for n in phone_numbers]
        if not 1 <= len(numbers) <= MAX_NUMBERS_PER_SEND:
            raise ValueError(
                f"a send holds 1 to {MAX_NUMBERS_PER_SEND} numbers, got {len(numbers)}"
            )
        for position, number in enumerate(numbers):
            if not number or "," in number:
                raise ValueError(f"phone number at position {position} is empty or has a comma")
        if not survey_id or not str(survey_id).strip():
            raise ValueError("survey_id is empty")
        body: dict[str, Any] = {
            "apiKey": self._key.get(),
            "phoneNumbers": ",".join(numbers),
            "sondageIdent": str(survey_id).strip(),
        }
        if tag is not None:
            if not TAG_PATTERN.match(tag):
                raise ValueError(f"tag must match {TAG_PATTERN.pattern}, got {tag!r}")
            body["tag"] = tag
        if schedule is not None:
            body.update(_check_schedule(schedule))
        outcome = classify(self._exchange("POST", "sondage/to/send", None, body))
        secret = self._key.get()
        if secret in outcome.reason or any(secret in e + m for e, m in outcome.errors):
            outcome = replace(
                outcome,
                reason=outcome.reason.replace(secret, "***"),
                errors=tuple(
                    (e.replace(secret, "***"), m.replace(secret, "***")) for e, m in outcome.errors
                ),
            )
        log.info("POST sondage/to/send -> %s (%s)", outcome.kind, outcome.reason)
        return outcome

    def credits(self) -> Credits:
        """Account balance (``GET me``)."""
        return _parse_credits(self._call("GET", "me"))

    def stop_list(self) -> list[StopEntry]:
        """Every number on the account's STOP list (``GET stop-sms/list``)."""
        return _parse_stop_list(self._call("GET", "stop-sms/list"))

    def add_stop(self, phone_number: str) -> int | None:
        """Add a number to the STOP list; its stop id, or None if already listed (code 3)."""
        if not phone_number or not phone_number.strip():
            raise ValueError("phone_number is empty")
        body = {"apiKey": self._key.get(), "phoneNumber": phone_number.strip()}
        try:
            answer = self._call("POST", "stop-sms/add", body=body)
        except Rejected as exc:
            if exc.code == 3:  # "already in the stop list": the state we wanted
                return None
            raise
        return _as_int(answer.get("stopId"))

    def remove_stop(self, stop_id: int) -> None:
        """Remove an entry of the STOP list by its id (``GET stop-sms/delete``)."""
        self._call("GET", "stop-sms/delete", params={"id": int(stop_id)})

    def status_by_tag(self, tag: str, *, page: int | None = None) -> list[StatusEntry]:
        """Statuses of every recipient of the sends tagged ``tag`` (``GET bulk-status-by-tag``).

        With ``page`` None, follows the pagination (``currentPage``/``total``, read as a count of
        entries) until all entries are read. Raises ``NotFound`` (code 4) for an unknown tag.
        """
        if not TAG_PATTERN.match(tag):
            raise ValueError(f"tag must match {TAG_PATTERN.pattern}, got {tag!r}")
        if page is not None:
            answer = self._call("GET", "bulk-status-by-tag", params={"tag": tag, "page": page})
            return _parse_status_list(answer)
        answer = self._call("GET", "bulk-status-by-tag", params={"tag": tag})
        entries = _parse_status_list(answer)
        while True:
            total = _as_int(answer.get("total"))
            current = _as_int(answer.get("currentPage"))
            if total is None or current is None or not entries or len(entries) >= total:
                return entries
            answer = self._call(
                "GET", "bulk-status-by-tag", params={"tag": tag, "page": current + 1}
            )
            batch = _parse_status_list(answer)
            if not batch or _as_int(answer.get("currentPage")) == current:
                # The gateway ignored the page parameter or ran dry: stop rather than loop.
                log.warning(
                    "GET bulk-status-by-tag: pagination stopped at %d of %d entries",
                    len(entries),
                    total,
                )
                return entries
            entries.extend(batch)

    def status_by_message(self, message_id: int) -> list[StatusEntry]:
        """Statuses of every recipient of one send (``GET bulk-status``)."""
        answer = self._call("GET", "bulk-status", params={"messageId": int(message_id)})
        entries = _parse_status_list(answer)
        return [
            e if e.message_id is not None else _with_message_id(e, int(message_id)) for e in entries
        ]

    def message_status(self, message_id: int, phone_number: str) -> StatusEntry:
        """Status of one recipient of one send (``GET message-status``)."""
        answer = self._call(
            "GET",
            "message-status",
            params={"messageId": int(message_id), "phoneNumber": phone_number},
        )
        entry = _parse_status_item(answer, int(message_id))
        return entry if entry.phone_number else _with_phone(entry, phone_number)

    def multi_status(self, pairs: Iterable[tuple[str, int]]) -> list[StatusEntry]:
        """Statuses of up to 500 (phone number, message id) pairs (``POST multi-status``).

        Pairs the gateway does not know come back with their raw status text
        (``"Numéro introuvable"`` / ``"Number not found"``).
        """
        items = [{"phoneNumber": p, "messageId": int(m)} for p, m in pairs]
        if not 1 <= len(items) <= MAX_NUMBERS_PER_SEND:
            raise ValueError(f"multi_status takes 1 to {MAX_NUMBERS_PER_SEND} pairs")
        body = {"apiKey": self._key.get(), "SMSStatut_List": items}
        return _parse_status_list(self._call("POST", "multi-status", body=body))

    def cancel(self, message_id: int) -> None:
        """Cancel a scheduled send (``GET message-cancel``).

        Raises ``NotFound`` (code 4) or ``CancelError`` (5 already cancelled, 6 less than five
        minutes before the send, 7 already sent).
        """
        self._call("GET", "message-cancel", params={"messageId": int(message_id)}, cancel=True)

    # --- transport ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        cancel: bool = False,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            outcome = self._attempt(method, path, params, body, cancel)
            if isinstance(outcome, dict):
                return outcome
            wait = self._retry_wait(outcome, attempt)
            if wait is None or attempt >= self.max_retries:
                raise outcome
            attempt += 1
            log.warning(
                "%s %s: %s, retry %d/%d in %.2fs",
                method,
                path,
                type(outcome).__name__,
                attempt,
                self.max_retries,
                wait,
            )
            self._sleep(wait)

    def _retry_wait(self, error: SMSPartnerError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this failure must not be retried here."""
        jitter = self._rng.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
        if isinstance(error, RateLimited):
            if error.retry_after is None:
                return jitter
            return error.retry_after if error.retry_after <= self.max_backoff else None
        if isinstance(error, TransportError):
            return jitter  # every call through here is a read: retrying it sends nothing
        if isinstance(error, ServerError):
            return jitter
        return None

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        cancel: bool,
    ) -> dict[str, Any] | SMSPartnerError:
        exchange = self._exchange(method, path, params, body)
        return _interpret(f"{method} {path}", exchange, cancel, self._key)

    def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> Exchange:
        """One HTTP request and its answer as received, nothing raised: no requests exception
        (whose text holds the URL and so the key) reaches the caller. The body is read within
        ``max_body`` bytes and the whole call within ``deadline`` seconds, so a huge or dripping
        answer cannot hold memory or a worker."""
        where = f"{method} {path}"
        query = {"apiKey": self._key.get(), **(params or {})} if method == "GET" else None
        started = time.monotonic()
        watch = _calls.watch = _Watch(started + self.deadline)
        try:
            exchange = self._exchange_within(where, method, path, query, body, watch, started)
        finally:
            watch.cancel()
            _calls.watch = None
        if watch.expired:  # armed once the request is out: what it did is unknown
            failure = f"{where}: answer not complete within {self.deadline:g}s"
            landed = may_have_landed(Ending.DEADLINE, watch.written)
            exchange = replace(exchange, connected=landed, failure=failure)
        elapsed = time.monotonic() - started
        log.debug("%s %s -> %s in %.3fs", method, path, exchange.status, elapsed)
        return exchange

    def _exchange_within(
        self,
        where: str,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        watch: _Watch,
        started: float,
    ) -> Exchange:
        try:
            response = self._session.request(
                method,
                f"{self.base_url}/{path}",
                params=query,
                json=dict(body) if body is not None else None,
                timeout=self.timeout,
                allow_redirects=False,  # a redirect would carry the key to another URL
                stream=True,
            )
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            exchange = _lost(where, exc, watch.written, self.timeout[1])
        else:
            exchange = self._read(where, response, watch, started)
        return exchange

    def _read(
        self, where: str, response: requests.Response, watch: _Watch, started: float
    ) -> Exchange:
        status = response.status_code
        retry_after = _retry_after(response.headers.get("Retry-After"))
        parts: list[bytes] = []
        size = 0
        failure = ""
        ending: Ending | None = None
        try:
            while True:
                if time.monotonic() - started > self.deadline:
                    failure = f"{where}: answer not complete within {self.deadline:g}s"
                    ending = Ending.DEADLINE
                    break
                block = response.raw.read1(65536)
                if not block:
                    break
                size += len(block)
                if size > self.max_body:
                    failure = f"{where}: answer larger than {self.max_body} bytes"
                    ending = Ending.TOO_LARGE
                    break
                parts.append(block)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            ending = ending_of(exc)
            how = "" if ending is Ending.CUT else f" ({_SAID[ending]})"
            failure = f"{where}: answer cut{how}"
        finally:
            response.close()
        landed = ending is None or may_have_landed(ending, watch.written)
        return Exchange(status, b"".join(parts), retry_after, connected=landed, failure=failure)


def _with_message_id(entry: StatusEntry, message_id: int) -> StatusEntry:
    return StatusEntry(entry.phone_number, entry.status, entry.stop, entry.date, message_id)


def _with_phone(entry: StatusEntry, phone_number: str) -> StatusEntry:
    return StatusEntry(phone_number, entry.status, entry.stop, entry.date, entry.message_id)


def _check_schedule(schedule: Mapping[str, str | int]) -> dict[str, str | int]:
    expected = {"scheduledDeliveryDate", "time", "minute"}
    if set(schedule) != expected:
        raise ValueError(f"schedule needs exactly the keys {sorted(expected)}")
    date = str(schedule["scheduledDeliveryDate"]).strip()
    if not _DATE_RE.match(date):
        raise ValueError("scheduledDeliveryDate must be dd/mm/YYYY")
    try:
        datetime.strptime(date, "%d/%m/%Y")
    except ValueError:
        raise ValueError("scheduledDeliveryDate is not a calendar date") from None
    hour = _as_int(schedule["time"])
    minute = _as_int(schedule["minute"])
    if hour is None or not 0 <= hour <= 24:
        raise ValueError("time must be an hour from 0 to 24")
    if minute is None or not 0 <= minute <= 55 or minute % 5:
        raise ValueError("minute must be 0 to 55 in steps of 5")
    return {"scheduledDeliveryDate": date, "time": hour, "minute": minute}


def _interpret(
    where: str, exchange: Exchange, cancel: bool, key: _Secret
) -> dict[str, Any] | SMSPartnerError:
    """Map one HTTP answer to its JSON body or to the matching error (reads, cancels)."""
    if exchange.status is None or exchange.failure:
        return TransportError(
            exchange.failure or f"{where}: no answer", may_have_landed=exchange.connected
        )
    status, content = exchange.status, exchange.content
    try:
        body: Any = json.loads(content.decode("utf-8-sig")) if content else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    is_dict = isinstance(body, dict)
    code = _as_int(body.get("code")) if is_dict else None
    secret = key.get()

    def clean(text: object) -> str:
        return str(text).replace(secret, "***").strip() if text is not None else ""

    api_message = clean(body.get("message")) if is_dict else ""
    if status == 429:
        return RateLimited(
            f"{where}: HTTP 429, rate limited",
            retry_after=exchange.retry_after,
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
    if 200 <= status < 300 and body.get("success") is not False and code in (None, 200):
        return dict(body)
    errors = [(clean(e), clean(m)) for e, m in _error_list(body)]
    text = f"{where}: HTTP {status}, code {code}"
    if api_message:
        text += f": {api_message}"
    if errors:
        text += f"; {len(errors)} validation error(s), first {errors[0][0]}: {errors[0][1]}"
    error_type: type[SMSPartnerError]
    if code in (1, 10) or (code is None and status in (401, 403)):
        error_type = AuthError
    elif code == 11:
        error_type = InsufficientCredits
    elif code == 4:
        error_type = NotFound
    elif cancel and code in (5, 6, 7):
        error_type = CancelError
    elif code is None:
        error_type = SMSPartnerError
    else:
        error_type = Rejected
    return error_type(text, code=code, http_status=status, errors=errors)
