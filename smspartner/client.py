"""A small, typed HTTP client for the SMS Partner API (https://api.smspartner.fr/v1).

One ``requests.Session`` per client (connection reuse, TLS verification on, explicit timeouts;
``_transport.py``). The API key travels only where the API wants it: in the JSON body of a POST
and in the query string of a GET. The client never logs a URL, a query string or a body, and
installs a filter on urllib3's loggers that redacts ``apiKey=...`` from the GET URLs urllib3 logs
at DEBUG.

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
seconds, whatever the server does. Answers are parsed tolerantly (``_parse.py``).

The nouns this module used to define (``Credits``, ``StatusEntry``, ``schedule_at``...) live in
``models.py`` and ``_parse.py``; they stay importable from here, for old imports and pickles.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Final

from smspartner._parse import (
    as_int,
    interpret,
    normalise_status,
    parse_credits,
    parse_gateway_date,
    parse_status_item,
    parse_status_list,
    parse_stop_list,
)
from smspartner._transport import Transport, ending_of
from smspartner.errors import (
    RateLimited,
    Rejected,
    ServerError,
    SMSPartnerError,
    TransportError,
)
from smspartner.models import (
    CONNECT_TIMEOUT,
    MAX_NUMBERS_PER_SEND,
    READ_TIMEOUT,
    TAG_PATTERN,
    Credits,
    Exchange,
    StatusEntry,
    StopEntry,
    public_url,
    schedule_at,
)
from smspartner.outcome import SendOutcome, classify

__all__ = [
    "MAX_NUMBERS_PER_SEND",
    "TAG_PATTERN",
    "Credits",
    "SMSPartnerClient",
    "SendOutcome",
    "StatusEntry",
    "StopEntry",
    "ending_of",
    "normalise_status",
    "parse_gateway_date",
    "public_url",
    "schedule_at",
]

log = logging.getLogger("smspartner")

_DATE_RE: Final = re.compile(r"^\d{2}/\d{2}/\d{4}$")


class _Secret:
    """Holds the API key so that repr(), vars() and debuggers show stars."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


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
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
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
        self.timeout = (float(connect_timeout), float(read_timeout))
        # A server that drips a byte per read timeout would otherwise hold a call for ever.
        self.deadline = float(deadline) if deadline else connect_timeout + 2 * read_timeout
        self.max_body = max_body  # SMS Partner's answers are a few kilobytes
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._rng = random.Random()
        self._transport = Transport(
            base_url,
            timeout=self.timeout,
            deadline=self.deadline,
            max_body=max_body,
            pool_size=pool_size,
        )
        # Any credentials in base_url became the session's auth; the URL shown has none.
        self.base_url = self._transport.base_url

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
        self._transport.close()

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
        body = self._survey_body(phone_numbers, survey_id, tag, schedule)
        answer = self._exchange("POST", "sondage/to/send", None, body)
        outcome = _without(self._key.get(), classify(answer))
        log.info("POST sondage/to/send -> %s (%s)", outcome.kind, outcome.reason)
        return outcome

    def _survey_body(
        self,
        phone_numbers: Sequence[str],
        survey_id: str,
        tag: str | None,
        schedule: Mapping[str, str | int] | None,
    ) -> dict[str, Any]:
        """The body of a send, or ``ValueError`` for what the gateway would refuse."""
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
            _check_tag(tag)
            body["tag"] = tag
        if schedule is not None:
            body.update(_check_schedule(schedule))
        return body

    def credits(self) -> Credits:
        """Account balance (``GET me``)."""
        return parse_credits(self._call("GET", "me"))

    def stop_list(self) -> list[StopEntry]:
        """Every number on the account's STOP list (``GET stop-sms/list``)."""
        return parse_stop_list(self._call("GET", "stop-sms/list"))

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
        return as_int(answer.get("stopId"))

    def remove_stop(self, stop_id: int) -> None:
        """Remove an entry of the STOP list by its id (``GET stop-sms/delete``)."""
        self._call("GET", "stop-sms/delete", params={"id": int(stop_id)})

    def status_by_tag(self, tag: str, *, page: int | None = None) -> list[StatusEntry]:
        """Statuses of every recipient of the sends tagged ``tag`` (``GET bulk-status-by-tag``).

        With ``page`` None, follows the pagination (``currentPage``/``total``, read as a count of
        entries) until all entries are read. Raises ``NotFound`` (code 4) for an unknown tag.
        """
        _check_tag(tag)
        if page is not None:
            answer = self._call("GET", "bulk-status-by-tag", params={"tag": tag, "page": page})
            return parse_status_list(answer)
        answer = self._call("GET", "bulk-status-by-tag", params={"tag": tag})
        return self._following_pages(tag, answer, parse_status_list(answer))

    def _following_pages(
        self, tag: str, answer: dict[str, Any], entries: list[StatusEntry]
    ) -> list[StatusEntry]:
        """``entries`` (the first page) and those of the pages after ``answer``."""
        while True:
            total = as_int(answer.get("total"))
            current = as_int(answer.get("currentPage"))
            if total is None or current is None or not entries or len(entries) >= total:
                return entries
            answer = self._call(
                "GET", "bulk-status-by-tag", params={"tag": tag, "page": current + 1}
            )
            batch = parse_status_list(answer)
            if not batch or as_int(answer.get("currentPage")) == current:
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
        entries = parse_status_list(answer)
        return [
            e if e.message_id is not None else replace(e, message_id=int(message_id))
            for e in entries
        ]

    def message_status(self, message_id: int, phone_number: str) -> StatusEntry:
        """Status of one recipient of one send (``GET message-status``)."""
        answer = self._call(
            "GET",
            "message-status",
            params={"messageId": int(message_id), "phoneNumber": phone_number},
        )
        entry = parse_status_item(answer, int(message_id))
        return entry if entry.phone_number else replace(entry, phone_number=phone_number)

    def multi_status(self, pairs: Iterable[tuple[str, int]]) -> list[StatusEntry]:
        """Statuses of up to 500 (phone number, message id) pairs (``POST multi-status``).

        Pairs the gateway does not know come back with their raw status text
        (``"Numéro introuvable"`` / ``"Number not found"``).
        """
        items = [{"phoneNumber": p, "messageId": int(m)} for p, m in pairs]
        if not 1 <= len(items) <= MAX_NUMBERS_PER_SEND:
            raise ValueError(f"multi_status takes 1 to {MAX_NUMBERS_PER_SEND} pairs")
        body = {"apiKey": self._key.get(), "SMSStatut_List": items}
        return parse_status_list(self._call("POST", "multi-status", body=body))

    def cancel(self, message_id: int) -> None:
        """Cancel a scheduled send (``GET message-cancel``).

        Raises ``NotFound`` (code 4) or ``CancelError`` (5 already cancelled, 6 less than five
        minutes before the send, 7 already sent).
        """
        self._call("GET", "message-cancel", params={"messageId": int(message_id)}, cancel=True)

    # --- reads and their retries -------------------------------------------------------------

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
        return interpret(f"{method} {path}", exchange, cancel, self._key.get())

    def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> Exchange:
        """One request on the wire; a GET carries the key in its query, a POST in its body."""
        query = {"apiKey": self._key.get(), **(params or {})} if method == "GET" else None
        return self._transport.exchange(method, path, query, body)


def _without(secret: str, outcome: SendOutcome) -> SendOutcome:
    """The outcome with the key starred out of the texts it quotes from the answer."""
    if secret not in outcome.reason and not any(secret in e + m for e, m in outcome.errors):
        return outcome
    return replace(
        outcome,
        reason=outcome.reason.replace(secret, "***"),
        errors=tuple(
            (e.replace(secret, "***"), m.replace(secret, "***")) for e, m in outcome.errors
        ),
    )


def _check_tag(tag: str) -> None:
    if not TAG_PATTERN.match(tag):
        raise ValueError(f"tag must match {TAG_PATTERN.pattern}, got {tag!r}")


def _check_schedule(schedule: Mapping[str, str | int]) -> dict[str, str | int]:
    """The schedule fields of a send, checked as the gateway would (``schedule_at`` builds them)."""
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
    hour = as_int(schedule["time"])
    minute = as_int(schedule["minute"])
    if hour is None or not 0 <= hour <= 24:
        raise ValueError("time must be an hour from 0 to 24")
    if minute is None or not 0 <= minute <= 55 or minute % 5:
        raise ValueError("minute must be 0 to 55 in steps of 5")
    return {"scheduledDeliveryDate": date, "time": hour, "minute": minute}
