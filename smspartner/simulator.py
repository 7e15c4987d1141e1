"""A local stand-in for the SMS Partner API: a real HTTP server for tests and the demo.

It implements what our client uses, under ``/v1/``, validates like the documented API
(``smspartner-api.md``), records what it accepted, and injects faults on demand. Tests assert on
what it recorded (``SimulatorState.sends``, ``accepted_numbers()``, ``requests``), not on mocks.

Endpoints (JSON; HTTP 200 on success, 400 with the ``error`` list for codes 2, 9 and 90, and
HTTP 200 with ``success: false`` for every other API code, as the documented envelope shows):

- ``POST sondage/to/send`` (and ``POST send`` with ``message``): codes 1, 10, 2, 9, 11.
  Choices where the real API is undocumented or would need an account setting:
  a number on the STOP list rejects the whole request with code 9 and one error element per such
  number (``Le numéro est dans la liste STOP (+336...)``) instead of the real code 14; more than
  500 numbers is code 9 (not 50); the scheduled date is read in Europe/Paris time; quiet hours
  are not simulated (a send is "delivered" at its own time); one SMS is billed per recipient of a
  survey.
- ``GET me``, ``GET stop-sms/list``, ``POST stop-sms/add``, ``GET stop-sms/delete``.
- ``GET bulk-status-by-tag`` (``tag``, optional ``page``; ``status_page_size`` entries per page,
  ``total`` counts entries, dates as ``Y-m-d H:i:s`` Paris time), ``GET bulk-status``
  (dates as Unix-timestamp strings, ``stopSMS``), ``GET message-status`` (``statut``,
  ``stopSms``), ``POST multi-status`` (``stopSms`` as ``"0"``/``"1"``). Cancelled sends have no
  recipient statuses; status-by-tag entries carry no message id, as documented.
- ``GET message-cancel``: 3 missing id, 4 unknown, 5 already cancelled, 7 already sent (an
  immediate send, or the scheduled time has passed), 6 less than five minutes before the
  scheduled time; on success the cost is refunded.

Recipients stay ``Waiting`` until the send's delivery time (scheduled time, else reception) plus
``delivery_delay_s``; then a hash of the number decides ``Delivered`` or ``Not delivered``
(share ``not_delivered_rate``) and, for delivered ones, a STOP reply (share ``stop_rate``), which
also puts the number on the STOP list at that moment. Time comes from ``state.clock`` plus
``state.advance(seconds)``, so tests never sleep.

Faults (``FaultConfig``, all off by default). Plain ones: ``latency_ms``, ``error_5xx_rate``,
``rate_limit_rate`` (with ``retry_after``), ``reset_rate``, ``drop_after_accept_rate``. Ambiguous
ones, where the client cannot tell from the answer whether the send landed:

- ``status_lag_s``: the four status endpoints (by tag, bulk, message, multi) do not see a send
  until ``status_lag_s`` seconds (simulator time) after its reception; until then they answer as
  if it did not exist (code 4 ``Tag introuvable`` / ``Message introuvable``, or the pair as
  ``Numéro introuvable``). Cancel and ``me`` still see it.
- ``hide_scheduled``: the same, for a scheduled send until its scheduled time.
- ``slow_send_s`` / ``slow_send_rate``: that share of sends waits ``slow_send_s`` seconds of real
  time before being validated and recorded (``received_at`` is the time after the wait), then
  answers normally: a client with a shorter read timeout gives up, the send lands anyway.
- ``garbage_rate``: that share of sends is accepted and recorded, but answered with garbage of a
  kind drawn from ``garbage_kinds``: ``html200`` (a proxy page, HTTP 200), ``html502``, ``empty``
  (HTTP 200, no body), ``truncated`` (the first half of the JSON answer), ``no_message_id`` (the
  JSON answer without ``message_id``).
- ``garbage_before_rate``: the same answers, but nothing is recorded nor charged (a proxy that
  answered without forwarding).

Only a send that would have been accepted gets garbage; others are answered as usual. The seeded
draws, each made only when its rate is above 0 (so a seed replays as before these faults
existed): reset, 429, 5xx, then for a send request slow, and for a send that would be accepted
drop, garbage before, garbage after. Slow only delays; of the last three, the first drawn wins.

Admin endpoints (no key, outside ``/v1``): ``GET /_sim/state``, ``POST /_sim/faults`` (the
``FaultConfig`` fields; the faults become exactly what was posted), ``POST /_sim/credits``
``{"credits": x}``, ``POST /_sim/stop`` ``{"numbers": [...]}``, ``POST /_sim/advance``
``{"seconds": s}``, ``POST /_sim/canned`` ``{"path", "status", "body", "headers", "times"}``,
``POST /_sim/reset``.

The API key is never logged nor stored in the request log.

CLI: ``python -m smspartner.simulator --port 8765`` (see ``--help``); every fault is a flag, e.g.
``--status-lag-s 30 --hide-scheduled --slow-send-s 5 --slow-send-rate 0.1 --garbage-rate 0.1
--garbage-kinds html200,truncated --garbage-before-rate 0.05``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_API_KEY",
    "GARBAGE_KINDS",
    "FaultConfig",
    "SimulatorServer",
    "SimulatorState",
    "main",
    "run_simulator",
    "to_e164",
]

log = logging.getLogger("smspartner.simulator")

DEFAULT_API_KEY: Final = "sim-test-key"
PARIS: Final = ZoneInfo("Europe/Paris")
MAX_NUMBERS: Final = 500
CANCEL_NOTICE: Final = timedelta(minutes=5)
CANCELLED_MESSAGE: Final = "L'envoi du SMS a été annulé."
_NATIONAL_MOBILE: Final = re.compile(r"^0[67]\d{8}$")
_INTERNATIONAL: Final = re.compile(r"^\+[1-9]\d{7,14}$")
_SEPARATORS: Final = re.compile(r"[ .\-]")
_DATE: Final = re.compile(r"^\d{2}/\d{2}/\d{4}$")
_PHONES: Final = "children[phoneNumbers].data"
_SEND_PATHS: Final = frozenset({"sondage/to/send", "send"})
GARBAGE_KINDS: Final = ("html200", "html502", "empty", "truncated", "no_message_id")
_BAD_GATEWAY: Final = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
_PROXY_PAGE: Final = (
    b"<html><head><title>Request blocked</title></head><body><h1>Request blocked</h1>"
    b"<p>This request was stopped by the network security gateway.</p></body></html>"
)


def to_e164(number: str) -> str | None:
    """E.164 form of a number the gateway accepts (French national mobile or international)."""
    compact = _SEPARATORS.sub("", number.strip())
    if _NATIONAL_MOBILE.match(compact):
        return "+33" + compact[1:]
    if _INTERNATIONAL.match(compact):
        return compact
    return None


@dataclass
class FaultConfig:
    """Faults injected into ``/v1`` requests; rates are shares of requests in [0, 1]."""

    latency_ms: float = 0  # sleep before handling each request
    error_5xx_rate: float = 0.0  # answered 500/502/503 before doing anything
    rate_limit_rate: float = 0.0  # answered 429 with Retry-After before doing anything
    retry_after: float = 1.0
    reset_rate: float = 0.0  # connection closed before handling (nothing recorded)
    drop_after_accept_rate: float = 0.0  # sends accepted AND recorded, then no answer
    seed: int | None = None
    # The ambiguous ones (see the module docstring):
    status_lag_s: float = 0.0  # status endpoints do not see a send this long after reception
    hide_scheduled: bool = False  # nor a scheduled send before its scheduled time
    slow_send_s: float = 0.0  # real seconds a slow send waits before it is recorded
    slow_send_rate: float = 0.0
    garbage_rate: float = 0.0  # sends recorded, answered with garbage
    garbage_kinds: list[str] = field(default_factory=lambda: list(GARBAGE_KINDS))
    garbage_before_rate: float = 0.0  # garbage answered, nothing recorded

    def __post_init__(self) -> None:
        # Checked here so the admin endpoint and the CLI refuse a typo instead of crashing later.
        if isinstance(self.garbage_kinds, str):
            raise TypeError("garbage_kinds must be a list")
        self.garbage_kinds = list(self.garbage_kinds)
        unknown = sorted(set(self.garbage_kinds) - set(GARBAGE_KINDS))
        if unknown or not self.garbage_kinds:
            raise ValueError(f"garbage_kinds must be some of {list(GARBAGE_KINDS)}: {unknown}")


@dataclass
class _Send:
    message_id: int
    kind: str
    tag: str | None
    numbers: list[str]
    e164: list[str]
    survey_id: str | None
    message: str | None
    schedule: dict[str, Any] | None
    scheduled_at: datetime | None
    nb_sms: int
    cost: float
    received_at: datetime
    cancelled: bool = False
    settled: bool = False

    @property
    def delivery_at(self) -> datetime:
        return self.scheduled_at or self.received_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "tag": self.tag,
            "numbers": list(self.numbers),
            "survey_id": self.survey_id,
            "message": self.message,
            "schedule": dict(self.schedule) if self.schedule is not None else None,
            "scheduled_at": self.scheduled_at.isoformat() if self.scheduled_at else None,
            "nb_sms": self.nb_sms,
            "cost": self.cost,
            "received_at": self.received_at.isoformat(),
            "cancelled": self.cancelled,
        }


@dataclass
class _Stop:
    id: int
    number: str
    created_at: datetime


@dataclass
class _Canned:
    status: int
    payload: bytes
    headers: dict[str, str]
    content_type: str


@dataclass
class _Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as-is instead of JSON-encoding ``body``
    content_type: str = "application/json"
    close: str | None = None  # "reset" or "drop": close the connection without answering

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def _fail(code: int, message: str, status: int = 200) -> _Reply:
    return _Reply(status, {"success": False, "code": code, "message": message})


def _invalid(errors: list[tuple[str, str]], code: int = 9) -> _Reply:
    items = [{"elementId": element, "message": text} for element, text in errors]
    return _Reply(400, {"success": False, "code": code, "error": items})


def _paris(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _unit_interval(number: str, salt: bytes) -> float:
    digest = hashlib.sha256(salt + number.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _int_field(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _sms_segments(message: str) -> int:
    # Approximation of the GSM 7-bit rule (160, then 153 per part); enough for a simulator.
    return 1 if len(message) <= 160 else math.ceil(len(message) / 153)


class SimulatorState:
    """Everything the simulated gateway knows. Thread-safe: one lock guards all of it."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        credits: float = 100.0,
        cost_per_sms: float = 0.045,
        currency: str = "EUR",
        stop_list: Iterable[str] = (),
        faults: FaultConfig | None = None,
        delivery_delay_s: float = 2.0,
        not_delivered_rate: float = 0.05,
        stop_rate: float = 0.02,
        status_page_size: int = 1000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.api_keys: set[str] = set(api_keys)
        self.cost_per_sms = cost_per_sms
        self.currency = currency
        self.delivery_delay_s = delivery_delay_s
        self.not_delivered_rate = not_delivered_rate
        self.stop_rate = stop_rate
        self.status_page_size = status_page_size
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._initial_credits = float(credits)
        self._initial_stops = list(stop_list)
        self._initial_faults = faults or FaultConfig()
        self._next_message_id = 1000
        self._next_stop_id = 1
        self.connections_opened = 0
        self._reset()

    # --- configuration and inspection --------------------------------------------------------

    def _reset(self) -> None:
        with self.lock:
            self.credits = self._initial_credits
            self._offset = timedelta(0)
            self._sends: list[_Send] = []
            self._unsettled: list[_Send] = []  # sends whose STOP replies are not due yet
            self._stops: dict[str, _Stop] = {}  # by E.164, in the order they were added
            self._requests: list[dict[str, Any]] = []
            self._canned: dict[str, deque[_Canned]] = {}
            self.faults = FaultConfig(**asdict(self._initial_faults))
            self.stop_list = self._initial_stops

    def reset(self) -> None:
        """Back to the configuration given at construction (message ids keep increasing)."""
        self._reset()

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        with self.lock:
            self._faults = value
            self._rng = random.Random(value.seed)

    def now(self) -> datetime:
        """The simulator's current time (``clock()`` plus everything ``advance`` added)."""
        with self.lock:
            return self.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward."""
        with self.lock:
            self._offset += timedelta(seconds=seconds)

    @property
    def sends(self) -> list[dict[str, Any]]:
        """A copy of every accepted send, in order (cancelled ones included, flagged)."""
        with self.lock:
            return [s.to_dict() for s in self._sends]

    def accepted_numbers(self) -> list[str]:
        """Every number (E.164) of every accepted, non-cancelled send, once per time texted."""
        with self.lock:
            return [n for s in self._sends if not s.cancelled for n in s.e164]

    @property
    def stop_list(self) -> list[str]:
        """A copy of the STOP list (E.164), with the STOP replies due by now; change it with
        ``add_stop`` or by assigning a new list."""
        with self.lock:
            self._settle(self.now())
            return list(self._stops)

    @stop_list.setter
    def stop_list(self, numbers: Iterable[str]) -> None:
        with self.lock:
            self._stops = {}
            for number in numbers:
                self.add_stop(number)

    def add_stop(self, number: str) -> int:
        """Put a number on the STOP list; returns its stop id (the existing one if listed)."""
        e164 = to_e164(number)
        if e164 is None:
            raise ValueError("not a phone number the gateway accepts")
        with self.lock:
            return self._add_stop(e164, self.now())

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every ``/v1`` request seen: method, path, params (without apiKey), status, at."""
        with self.lock:
            return [dict(r) for r in self._requests]

    def add_canned(
        self,
        path: str,
        body: Any,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``/v1/<path>`` with this body, before any fault.

        ``body`` is JSON-encoded unless it is ``str`` or ``bytes`` (served as-is, e.g. an HTML
        error page). Nothing else happens for those requests (nothing is recorded as sent).
        """
        content_type = "text/html"
        if isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            content_type = "application/json"
        with self.lock:
            queue = self._canned.setdefault(path.strip("/"), deque())
            for _ in range(times):
                queue.append(_Canned(status, payload, dict(headers or {}), content_type))

    def clear_canned(self) -> None:
        """Drop every canned answer still queued."""
        with self.lock:
            self._canned.clear()

    def planned_outcome(self, number: str) -> tuple[str, bool]:
        """(final status, replied STOP) this number will get once delivered; deterministic."""
        if _unit_interval(number, b"delivery") < self.not_delivered_rate:
            return "Not delivered", False
        return "Delivered", _unit_interval(number, b"stop") < self.stop_rate

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_sim/state`` answers."""
        with self.lock:
            now = self.now()
            self._settle(now)
            return {
                "now": now.isoformat(),
                "credits": round(self.credits, 6),
                "currency": self.currency,
                "sends": self.sends,
                "stop_list": list(self._stops),
                "accepted_numbers": self.accepted_numbers(),
                "requests": self.requests,
                "connections_opened": self.connections_opened,
                "faults": asdict(self.faults),
            }

    # --- internals ---------------------------------------------------------------------------

    def _add_stop(self, e164: str, when: datetime) -> int:
        existing = self._stops.get(e164)
        if existing is not None:
            return existing.id
        stop = _Stop(self._next_stop_id, e164, when)
        self._next_stop_id += 1
        self._stops[e164] = stop
        return stop.id

    def _due(self, send: _Send) -> datetime:
        return send.delivery_at + timedelta(seconds=self.delivery_delay_s)

    def _settle(self, now: datetime) -> None:
        """STOP replies of sends delivered by ``now`` reach the STOP list."""
        # Only the sends not settled yet are looked at: a gateway with a million recipients on
        # record must still answer in its configured latency, not in proportion to its history.
        waiting = []
        for send in self._unsettled:
            if send.cancelled or send.settled:
                continue
            if now < self._due(send):
                waiting.append(send)
                continue
            for number in send.e164:
                if self.planned_outcome(number)[1]:
                    self._add_stop(number, self._due(send))
            send.settled = True
        self._unsettled = waiting

    def _recipient(self, send: _Send, number: str, now: datetime) -> tuple[str, bool, datetime]:
        due = self._due(send)
        if now < due:
            return "Waiting", False, send.received_at
        status, stop = self.planned_outcome(number)
        return status, stop, due

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def _record(self, method: str, path: str, params: Mapping[str, str], status: object) -> None:
        self._requests.append(
            {
                "method": method,
                "path": path,
                "params": {k: v for k, v in params.items() if k.lower() != "apikey"},
                "status": status,
                "at": self.now().isoformat(),
            }
        )

    # --- the API -----------------------------------------------------------------------------

    def handle_api(self, method: str, path: str, query: Mapping[str, str], raw: bytes) -> _Reply:
        """Answer one ``/v1/<path>`` request (latency already applied by the caller)."""
        path = path.strip("/")
        with self.lock:
            reply = self._intercept(path)
            faults = self.faults
            slow = (
                reply is None
                and method == "POST"
                and path in _SEND_PATHS
                and faults.slow_send_s > 0
                and self._draw(faults.slow_send_rate)
            )
            if not slow:
                return self._finish(method, path, query, raw, reply)
        # Outside the lock, so the rest of the gateway answers meanwhile; the send is validated
        # and recorded only when the wait is over, as on a platform slower than our timeout.
        time.sleep(faults.slow_send_s)
        with self.lock:
            return self._finish(method, path, query, raw, None)

    def _finish(
        self, method: str, path: str, query: Mapping[str, str], raw: bytes, reply: _Reply | None
    ) -> _Reply:
        if reply is None:
            reply = self._answer(method, path, query, raw)
        self._record(method, path, query, reply.close or reply.status)
        return reply

    def _intercept(self, path: str) -> _Reply | None:
        """A canned answer or a fault that answers before the request is looked at, if any."""
        canned = self._canned.get(path)
        if canned:
            answer = canned.popleft()
            return _Reply(
                answer.status,
                raw=answer.payload,
                headers=answer.headers,
                content_type=answer.content_type,
            )
        faults = self.faults
        if self._draw(faults.reset_rate):
            return _Reply(close="reset")
        if self._draw(faults.rate_limit_rate):
            return _Reply(
                429,
                {"success": False, "code": 429, "message": "Too many requests"},
                headers={"Retry-After": f"{faults.retry_after:g}"},
            )
        if self._draw(faults.error_5xx_rate):
            return self._rng.choice(
                [
                    _fail(500, "Internal server error", 500),
                    _Reply(502, raw=_BAD_GATEWAY, content_type="text/html"),
                    _Reply(503, raw=b"Service Unavailable", content_type="text/plain"),
                ]
            )
        return None

    def _answer(self, method: str, path: str, query: Mapping[str, str], raw: bytes) -> _Reply:
        route = _ROUTES.get(path)
        if route is None:
            return _fail(404, "Not found", 404)
        if route[0] != method:
            return _fail(405, "Method not allowed", 405)
        if method == "POST":
            try:
                params = json.loads(raw.decode("utf-8")) if raw else {}
            except (UnicodeDecodeError, ValueError):
                return _fail(90, "JSON malformé", 400)
            if not isinstance(params, dict):
                return _fail(90, "JSON malformé", 400)
        else:
            params = dict(query)
        key = params.get("apiKey")
        if not key:
            return _fail(1, "La clé API est requise")
        if key not in self.api_keys:
            return _fail(10, "Clé API incorrecte")
        now = self.now()
        self._settle(now)
        return route[1](self, params, now)

    def _send(self, params: Mapping[str, Any], now: datetime, kind: str) -> _Reply:
        raw_numbers = params.get("phoneNumbers")
        if raw_numbers is None or (isinstance(raw_numbers, str) and not raw_numbers.strip()):
            return _fail(2, "Le numéro de téléphone est requis", 400)
        errors: list[tuple[str, str]] = []
        numbers: list[str] = []
        if isinstance(raw_numbers, str):
            numbers = [n.strip() for n in raw_numbers.split(",")]
        else:
            errors.append((_PHONES, "phoneNumbers must be a comma-separated string"))
        if len(numbers) > MAX_NUMBERS:
            errors.append((_PHONES, f"Maximum {MAX_NUMBERS} numbers per request"))
        content_key = "sondageIdent" if kind == "survey" else "message"
        content = params.get(content_key)
        if not isinstance(content, str) or not content.strip():
            what = "Survey identifier" if kind == "survey" else "Message"
            errors.append((f"children[{content_key}].data", f"{what} is required"))
        tag = params.get("tag")
        if tag is not None and (
            not isinstance(tag, str)
            or not 1 <= len(tag) <= 20
            or re.search(r"\s", tag)
            or tag != tag.lower()
        ):
            errors.append(
                ("children[tag].data", "Tag: max 20 characters, no spaces, lowercase only")
            )
        scheduled_at, schedule = self._check_schedule(params, now, errors)
        e164: list[str] = []
        if len(numbers) <= MAX_NUMBERS:
            stopped = self._stops
            for number in numbers:
                normalised = to_e164(number)
                if normalised is None:
                    errors.append((_PHONES, f"Invalid phone number ({number})"))
                elif normalised in stopped:
                    errors.append((_PHONES, f"Le numéro est dans la liste STOP ({number})"))
                else:
                    e164.append(normalised)
        if errors:
            return _invalid(errors)
        per_number = 1 if kind == "survey" else _sms_segments(str(content))
        nb_sms = per_number * len(e164)
        cost = round(nb_sms * self.cost_per_sms, 6)
        if cost > self.credits + 1e-9:
            return _fail(11, "Crédits insuffisants")
        faults = self.faults
        drop = self._draw(faults.drop_after_accept_rate)
        body: dict[str, Any] = {
            "success": True,
            "code": 200,
            "message_id": self._next_message_id,
            "nb_sms": nb_sms,
            "cost": round(cost, 4),
            "currency": self.currency,
        }
        if scheduled_at is not None:
            body["scheduledDeliveryDate"] = _paris(scheduled_at)
        if not drop and self._draw(faults.garbage_before_rate):
            return self._garbage(body)  # a proxy answered; the gateway never saw the request
        self.credits = round(self.credits - cost, 6)
        send = _Send(
            message_id=self._next_message_id,
            kind=kind,
            tag=tag,
            numbers=numbers,
            e164=e164,
            survey_id=str(content) if kind == "survey" else None,
            message=str(content) if kind == "sms" else None,
            schedule=schedule,
            scheduled_at=scheduled_at,
            nb_sms=nb_sms,
            cost=cost,
            received_at=now,
        )
        self._next_message_id += 1
        self._sends.append(send)
        self._unsettled.append(send)
        if drop:
            return _Reply(close="drop")
        if self._draw(faults.garbage_rate):
            return self._garbage(body)
        return _Reply(200, body)

    def _garbage(self, body: Mapping[str, Any]) -> _Reply:
        """An answer that says nothing reliable about ``body``, the send's real answer."""
        kind = self._rng.choice(self.faults.garbage_kinds)
        if kind == "html200":
            return _Reply(200, raw=_PROXY_PAGE, content_type="text/html")
        if kind == "html502":
            return _Reply(502, raw=_BAD_GATEWAY, content_type="text/html")
        if kind == "empty":
            return _Reply(200, raw=b"")
        if kind == "truncated":
            whole = _Reply(200, body).payload()
            return _Reply(200, raw=whole[: len(whole) // 2])
        return _Reply(200, {k: v for k, v in body.items() if k != "message_id"})

    def _check_schedule(
        self, params: Mapping[str, Any], now: datetime, errors: list[tuple[str, str]]
    ) -> tuple[datetime | None, dict[str, Any] | None]:
        date = params.get("scheduledDeliveryDate")
        if date in (None, ""):
            return None, None
        schedule = {k: params.get(k) for k in ("scheduledDeliveryDate", "time", "minute")}
        hour, minute = params.get("time"), params.get("minute")
        start = len(errors)
        if hour in (None, ""):
            errors.append(("children[time].data", "Hour is required"))
        if minute in (None, ""):
            errors.append(("children[minute].data", "Minute is required"))
        day: datetime | None = None
        if not isinstance(date, str) or not _DATE.match(date):
            errors.append(("children[scheduledDeliveryDate].data", f"Invalid date ({date})"))
        else:
            try:
                day = datetime.strptime(date, "%d/%m/%Y")
            except ValueError:
                errors.append(("children[scheduledDeliveryDate].data", f"Invalid date ({date})"))
        hour_value, minute_value = _int_field(hour), _int_field(minute)
        if hour not in (None, "") and (hour_value is None or not 0 <= hour_value <= 24):
            errors.append(("children[time].data", "Hour must be between 0 and 24"))
        if minute not in (None, "") and (
            minute_value is None or not 0 <= minute_value <= 55 or minute_value % 5
        ):
            errors.append(
                (
                    "children[minute].data",
                    "Minutes must be between 0 and 55 in intervals of 5 minutes",
                )
            )
        if len(errors) > start or day is None or hour_value is None or minute_value is None:
            return None, schedule
        local = (day + timedelta(hours=hour_value, minutes=minute_value)).replace(tzinfo=PARIS)
        scheduled_at = local.astimezone(UTC)
        if scheduled_at < now:
            errors.append(
                (
                    "children[scheduledDeliveryDate].data",
                    f"The date ({date} {hour_value:02d}:{minute_value:02d}) is earlier than "
                    "the current date.",
                )
            )
            return None, schedule
        return scheduled_at, schedule

    def _survey_send(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        return self._send(params, now, "survey")

    def _sms_send(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        return self._send(params, now, "sms")

    def _me(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        pending = sum(s.nb_sms for s in self._sends if not s.cancelled and s.delivery_at > now)
        balance = f"{self.credits:.3f}"
        sms_left = int(self.credits / self.cost_per_sms) if self.cost_per_sms > 0 else 0
        return _Reply(
            200,
            {
                "success": True,
                "code": 200,
                "user": {"username": "simulator@example.invalid", "firstname": "Sim"},
                "credits": {
                    "creditSms": sms_left,
                    "creditSmsECO": sms_left,
                    "creditHlr": 0,
                    "toSend": pending,
                    "solde": balance,
                    "currency": self.currency,
                    "balance": balance,
                },
            },
        )

    def _stop_list(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        data = [
            {"id": s.id, "phoneNumber": s.number, "createdAt": _paris(s.created_at)}
            for s in self._stops.values()
        ]
        return _Reply(200, {"success": True, "code": 200, "nbData": len(data), "data": data})

    def _stop_add(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        number = params.get("phoneNumber")
        if not isinstance(number, str) or not number.strip():
            return _fail(2, "Le numéro de téléphone est requis", 400)
        e164 = to_e164(number)
        if e164 is None:
            return _invalid([("children[phoneNumber].data", f"Invalid phone number ({number})")])
        if e164 in self._stops:
            return _fail(3, "Le numéro est déjà dans la liste STOP")
        return _Reply(200, {"success": True, "code": 200, "stopId": self._add_stop(e164, now)})

    def _stop_delete(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        stop_id = _int_field(params.get("id"))
        if stop_id is None:
            return _fail(3, "L'identifiant est requis")
        for stop in self._stops.values():
            if stop.id == stop_id:
                del self._stops[stop.number]
                return _Reply(200, {"success": True, "code": 200})
        return _fail(4, "Identifiant introuvable")

    def _visible(self, send: _Send, now: datetime) -> bool:
        """Whether the status endpoints see this send yet (the lag and hide faults)."""
        faults = self.faults
        if now - send.received_at < timedelta(seconds=faults.status_lag_s):
            return False
        return not (faults.hide_scheduled and send.scheduled_at and now < send.scheduled_at)

    def _find_send(
        self, params: Mapping[str, Any], seen_at: datetime | None = None
    ) -> _Send | _Reply:
        """The send named by ``messageId``; with ``seen_at``, only if a status endpoint sees it."""
        raw_id = params.get("messageId")
        if raw_id in (None, ""):
            return _fail(3, "L'identifiant du message est requis")
        message_id = _int_field(raw_id)
        for send in self._sends:
            if send.message_id == message_id:
                if seen_at is not None and not self._visible(send, seen_at):
                    break
                return send
        return _fail(4, "Message introuvable")

    def _by_tag(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        tag = params.get("tag")
        if not tag:
            return _fail(3, "Le tag est requis")
        tagged = [s for s in self._sends if s.tag == tag and self._visible(s, now)]
        if not tagged:
            return _fail(4, "Tag introuvable")
        page = max(_int_field(params.get("page")) or 1, 1)
        rows = [(s, n) for s in tagged if not s.cancelled for n in s.e164]
        size = max(self.status_page_size, 1)
        entries = []
        for send, number in rows[(page - 1) * size : page * size]:
            status, stop, when = self._recipient(send, number, now)
            entries.append(
                {"phoneNumber": number, "status": status, "stopSMS": stop, "date": _paris(when)}
            )
        return _Reply(
            200,
            {
                "success": True,
                "code": 200,
                "currentPage": page,
                "total": len(rows),
                "StatutResponse_List": entries,
            },
        )

    def _bulk_status(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        found = self._find_send(params, now)
        if isinstance(found, _Reply):
            return found
        entries = []
        for number in [] if found.cancelled else found.e164:
            status, stop, when = self._recipient(found, number, now)
            entries.append(
                {
                    "phoneNumber": number,
                    "status": status,
                    "stopSMS": stop,
                    "date": str(int(when.timestamp())),
                }
            )
        return _Reply(
            200,
            {
                "success": True,
                "code": 200,
                "message_id": str(found.message_id),
                "StatutResponse_List": entries,
            },
        )

    def _message_status(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        number = params.get("phoneNumber")
        if not number:
            return _fail(2, "Le numéro de téléphone est requis")
        found = self._find_send(params, now)
        if isinstance(found, _Reply):
            return found
        e164 = to_e164(str(number))
        if found.cancelled or e164 not in found.e164:
            return _fail(4, "Numéro introuvable")
        status, stop, when = self._recipient(found, e164, now)
        return _Reply(
            200,
            {
                "success": True,
                "code": 200,
                "number": e164,
                "messageId": str(found.message_id),
                "stopSms": stop,
                "date": _paris(when),
                "statut": status,
                "cost": self.cost_per_sms,
                "countryCode": "FR" if e164.startswith("+33") else "",
                "currency": self.currency,
            },
        )

    def _multi_status(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        pairs = params.get("SMSStatut_List", params.get("SMSStatus_List"))
        if not isinstance(pairs, list) or not pairs:
            return _fail(2, "La liste des numéros est requise", 400)
        if len(pairs) > MAX_NUMBERS:
            return _fail(50, f"Maximum {MAX_NUMBERS} numéros", 400)
        by_id = {s.message_id: s for s in self._sends if not s.cancelled and self._visible(s, now)}
        answers = []
        for pair in pairs:
            pair = pair if isinstance(pair, dict) else {}
            number, message_id = pair.get("phoneNumber"), _int_field(pair.get("messageId"))
            send = by_id.get(message_id) if message_id is not None else None
            e164 = to_e164(str(number)) if number else None
            if send is None or e164 not in send.e164:
                answers.append(
                    {
                        "success": False,
                        "code": 4,
                        "phoneNumber": number,
                        "messageId": pair.get("messageId"),
                        "status": "Numéro introuvable",
                    }
                )
                continue
            status, stop, when = self._recipient(send, e164, now)
            answers.append(
                {
                    "success": True,
                    "code": 200,
                    "phoneNumber": number,
                    "messageId": send.message_id,
                    "status": status,
                    "date": str(int(when.timestamp())),
                    "stopSms": "1" if stop else "0",
                    "isSpam": "0",
                }
            )
        return _Reply(200, {"success": True, "code": 200, "StatutResponse_List": answers})

    def _cancel(self, params: Mapping[str, Any], now: datetime) -> _Reply:
        found = self._find_send(params)
        if isinstance(found, _Reply):
            return found
        if found.cancelled:
            return _fail(5, "L'envoi a déjà été annulé")
        if found.scheduled_at is None or found.scheduled_at <= now:
            return _fail(7, "Le SMS a déjà été envoyé")
        if found.scheduled_at - now < CANCEL_NOTICE:
            return _fail(6, "Annulation impossible moins de 5 minutes avant l'envoi")
        found.cancelled = True
        self.credits = round(self.credits + found.cost, 6)
        return _Reply(
            200, {"success": True, "code": 200, "message": "L'envoi du SMS a été annulé."}
        )

    # --- admin -------------------------------------------------------------------------------

    def handle_admin(self, method: str, path: str, raw: bytes) -> _Reply:
        """Answer one ``/_sim/<path>`` request."""
        path = path.strip("/")
        if method == "GET" and path == "state":
            return _Reply(200, self.snapshot())
        if method != "POST":
            return _fail(405, "Method not allowed", 405)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            return _fail(90, "Malformed JSON", 400)
        if not isinstance(body, dict):
            return _fail(90, "Malformed JSON", 400)
        try:
            if path == "faults":
                known = {f.name for f in fields(FaultConfig)}
                unknown = set(body) - known
                if unknown:
                    return _fail(400, f"Unknown fault fields: {sorted(unknown)}", 400)
                try:
                    self.faults = FaultConfig(**body)
                except (TypeError, ValueError) as exc:
                    return _fail(400, f"Bad faults: {exc}", 400)
            elif path == "credits":
                with self.lock:
                    self.credits = float(body["credits"])
            elif path == "stop":
                for number in body.get("numbers", []):
                    self.add_stop(str(number))
            elif path == "advance":
                self.advance(float(body["seconds"]))
            elif path == "canned":
                self.add_canned(
                    str(body["path"]),
                    body.get("body"),
                    status=int(body.get("status", 200)),
                    headers=body.get("headers"),
                    times=int(body.get("times", 1)),
                )
            elif path == "reset":
                self.reset()
            else:
                return _fail(404, "Not found", 404)
        except (KeyError, TypeError, ValueError) as exc:
            return _fail(400, f"Bad request: {type(exc).__name__}", 400)
        return _Reply(200, {"success": True, "code": 200})


_Route = tuple[str, Callable[[SimulatorState, Mapping[str, Any], datetime], _Reply]]
_ROUTES: Final[dict[str, _Route]] = {
    "sondage/to/send": ("POST", SimulatorState._survey_send),
    "send": ("POST", SimulatorState._sms_send),
    "me": ("GET", SimulatorState._me),
    "stop-sms/list": ("GET", SimulatorState._stop_list),
    "stop-sms/add": ("POST", SimulatorState._stop_add),
    "stop-sms/delete": ("GET", SimulatorState._stop_delete),
    "bulk-status-by-tag": ("GET", SimulatorState._by_tag),
    "bulk-status": ("GET", SimulatorState._bulk_status),
    "message-status": ("GET", SimulatorState._message_status),
    "multi-status": ("POST", SimulatorState._multi_status),
    "message-cancel": ("GET", SimulatorState._cancel),
}


# --- HTTP plumbing -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool reuses connections
    # Headers and body go out in two writes; with Nagle on, the body waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if split.path.startswith("/_sim/"):
            reply = state.handle_admin(method, split.path[len("/_sim/") :], raw)
        elif split.path.startswith("/v1/"):
            latency = state.faults.latency_ms
            if latency > 0:
                time.sleep(latency / 1000)
            reply = state.handle_api(method, split.path[len("/v1/") :], query, raw)
        else:
            reply = _fail(404, "Not found", 404)
        if reply.close:
            self._abort()
            return
        payload = reply.payload()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", f"{reply.content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a read timeout shorter than a slow send): expected.
            log.debug("client gone before the answer to %s", split.path)
            self.close_connection = True

    def _abort(self) -> None:
        # Linger 0 makes close() send a RST: the client sees a dead connection, not an answer.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line holds the query string, hence the key: log the path only.
        log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        # http.server's own messages may quote the raw request line; keep them out of logs.
        return


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        with self.state.lock:
            self.state.connections_opened += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts in tests) are expected; no traceback on stderr.
        log.debug("connection error from a client", exc_info=True)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SimulatorServer:
    """Runs the simulator on ``host:port`` (port 0 picks a free one) in a daemon thread."""

    def __init__(
        self, state: SimulatorState | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state or SimulatorState()
        self.host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``SMSPartnerClient``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.port}/_sim"

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._port), self.state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="smspartner-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_open_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def run_simulator(**state_kwargs: Any) -> Iterator[SimulatorServer]:
    """A started simulator on a free port of 127.0.0.1, stopped on exit."""
    with SimulatorServer(SimulatorState(**state_kwargs)) as server:
        yield server


# --- CLI ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smspartner.simulator", description="Local SMS Partner API simulator."
    )
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted API key (repeatable; default {DEFAULT_API_KEY!r})",
    )
    parser.add_argument("--credits", type=float, default=100.0, help="balance in EUR")
    parser.add_argument("--cost-per-sms", type=float, default=0.045)
    parser.add_argument("--stop", action="append", default=[], metavar="NUMBER")
    parser.add_argument("--delivery-delay-s", type=float, default=2.0)
    parser.add_argument("--status-page-size", type=int, default=1000)
    defaults = FaultConfig()
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
    parser.add_argument("--error-5xx-rate", type=float, default=defaults.error_5xx_rate)
    parser.add_argument("--rate-limit-rate", type=float, default=defaults.rate_limit_rate)
    parser.add_argument("--retry-after", type=float, default=defaults.retry_after)
    parser.add_argument("--reset-rate", type=float, default=defaults.reset_rate)
    parser.add_argument(
        "--drop-after-accept-rate", type=float, default=defaults.drop_after_accept_rate
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--status-lag-s", type=float, default=defaults.status_lag_s)
    parser.add_argument("--hide-scheduled", action="store_true")
    parser.add_argument("--slow-send-s", type=float, default=defaults.slow_send_s)
    parser.add_argument("--slow-send-rate", type=float, default=defaults.slow_send_rate)
    parser.add_argument("--garbage-rate", type=float, default=defaults.garbage_rate)
    parser.add_argument(
        "--garbage-kinds",
        type=_kinds,
        default=defaults.garbage_kinds,
        metavar="KIND,...",
        help=f"comma list of {','.join(GARBAGE_KINDS)} (default all)",
    )
    parser.add_argument("--garbage-before-rate", type=float, default=defaults.garbage_before_rate)
    return parser


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    try:
        FaultConfig(garbage_kinds=kinds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return kinds


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    faults = FaultConfig(
        latency_ms=args.latency_ms,
        error_5xx_rate=args.error_5xx_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        reset_rate=args.reset_rate,
        drop_after_accept_rate=args.drop_after_accept_rate,
        seed=args.seed,
        status_lag_s=args.status_lag_s,
        hide_scheduled=args.hide_scheduled,
        slow_send_s=args.slow_send_s,
        slow_send_rate=args.slow_send_rate,
        garbage_rate=args.garbage_rate,
        garbage_kinds=args.garbage_kinds,
        garbage_before_rate=args.garbage_before_rate,
    )
    state = SimulatorState(
        api_keys=args.api_keys or (DEFAULT_API_KEY,),
        credits=args.credits,
        cost_per_sms=args.cost_per_sms,
        stop_list=args.stop,
        faults=faults,
        delivery_delay_s=args.delivery_delay_s,
        status_page_size=args.status_page_size,
    )
    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with SimulatorServer(state, host=args.host, port=args.port) as server:
        print(f"SMS Partner simulator listening on {server.url}", flush=True)
        if not args.api_keys:
            print(f"Using the default API key {DEFAULT_API_KEY!r}", file=sys.stderr, flush=True)
        while not stopping.wait(0.5):
            pass
    return 0


def start_process(
    *args: str, timeout: float = 30.0, **popen: Any
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m smspartner.simulator ARGS`` as a process of its own and return it
    with its URL once it listens (the demo, ``make server`` and the benchmarks use it).
    ``popen`` goes to ``subprocess.Popen`` (cwd, env, stderr...); stdout is read here."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smspartner.simulator", *args], stdout=subprocess.PIPE, **popen
    )
    assert proc.stdout is not None
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)  # a child that hangs must not hang its parent
    line = (got[0] if got else b"").decode(errors="replace")
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line.strip() or 'no answer'}")
    return proc, line.rsplit(" ", 1)[-1].strip()


if __name__ == "__main__":
    sys.exit(main())
