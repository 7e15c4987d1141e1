"""What the simulated gateway knows, and how it changes: credits, sends, the STOP list, the
requests seen, canned answers, its clock, and the recipients' fates.

Thread-safe: one lock (``SimulatorState.lock``) guards all of it. Time comes from ``clock`` plus
``advance(seconds)``, so tests never sleep. Recipients stay ``Waiting`` until the send's delivery
time (scheduled time, else reception) plus ``delivery_delay_s``; then a hash of the number decides
``Delivered`` or ``Not delivered`` (share ``not_delivered_rate``) and, for delivered ones, a STOP
reply (share ``stop_rate``), which also puts the number on the STOP list at that moment.

The public methods are what tests and the admin endpoints use; the ones below "for the
endpoints" are called by ``api.py`` with the lock held.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from smspartner.simulator.faults import FaultConfig, draw, status_sees

__all__ = ["DEFAULT_API_KEY", "SimulatorState", "to_e164"]

DEFAULT_API_KEY: Final = "sim-test-key"
_NATIONAL_MOBILE: Final = re.compile(r"^0[67]\d{8}$")
_INTERNATIONAL: Final = re.compile(r"^\+[1-9]\d{7,14}$")
_SEPARATORS: Final = re.compile(r"[ .\-]")


def to_e164(number: str) -> str | None:
    """E.164 form of a number the gateway accepts (French national mobile or international)."""
    compact = _SEPARATORS.sub("", number.strip())
    if _NATIONAL_MOBILE.match(compact):
        return "+33" + compact[1:]
    if _INTERNATIONAL.match(compact):
        return compact
    return None


@dataclass
class Send:
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
class Stop:
    id: int
    number: str
    created_at: datetime


@dataclass
class Canned:
    status: int
    payload: bytes
    headers: dict[str, str]
    content_type: str


def _unit_interval(number: str, salt: bytes) -> float:
    digest = hashlib.sha256(salt + number.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


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
        self.next_message_id = 1000
        self._next_stop_id = 1
        self.connections_opened = 0
        self._reset()

    # --- configuration and inspection --------------------------------------------------------

    def _reset(self) -> None:
        with self.lock:
            self.credits = self._initial_credits
            self._offset = timedelta(0)
            self.sent: list[Send] = []  # every accepted send, in order
            self._unsettled: list[Send] = []  # sends whose STOP replies are not due yet
            self.stops: dict[str, Stop] = {}  # by E.164, in the order they were added
            self._requests: list[dict[str, Any]] = []
            self._canned: dict[str, deque[Canned]] = {}
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
            self.rng = random.Random(value.seed)

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
            return [s.to_dict() for s in self.sent]

    def accepted_numbers(self) -> list[str]:
        """Every number (E.164) of every accepted, non-cancelled send, once per time texted."""
        with self.lock:
            return [n for s in self.sent if not s.cancelled for n in s.e164]

    @property
    def stop_list(self) -> list[str]:
        """A copy of the STOP list (E.164), with the STOP replies due by now; change it with
        ``add_stop`` or by assigning a new list."""
        with self.lock:
            self.settle(self.now())
            return list(self.stops)

    @stop_list.setter
    def stop_list(self, numbers: Iterable[str]) -> None:
        with self.lock:
            self.stops = {}
            for number in numbers:
                self.add_stop(number)

    def add_stop(self, number: str) -> int:
        """Put a number on the STOP list; returns its stop id (the existing one if listed)."""
        e164 = to_e164(number)
        if e164 is None:
            raise ValueError("not a phone number the gateway accepts")
        with self.lock:
            return self.add_stop_at(e164, self.now())

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
                queue.append(Canned(status, payload, dict(headers or {}), content_type))

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
            self.settle(now)
            return {
                "now": now.isoformat(),
                "credits": round(self.credits, 6),
                "currency": self.currency,
                "sends": self.sends,
                "stop_list": list(self.stops),
                "accepted_numbers": self.accepted_numbers(),
                "requests": self.requests,
                "connections_opened": self.connections_opened,
                "faults": asdict(self.faults),
            }

    # --- for the endpoints (api.py), with the lock held ----------------------------------------

    def draw(self, rate: float) -> bool:
        return draw(self.rng, rate)

    def take_canned(self, path: str) -> Canned | None:
        """The next canned answer queued for ``path``, if any (it is used up)."""
        canned = self._canned.get(path)
        return canned.popleft() if canned else None

    def add_stop_at(self, e164: str, when: datetime) -> int:
        existing = self.stops.get(e164)
        if existing is not None:
            return existing.id
        stop = Stop(self._next_stop_id, e164, when)
        self._next_stop_id += 1
        self.stops[e164] = stop
        return stop.id

    def record_send(self, send: Send) -> None:
        """Keep an accepted send (it took ``next_message_id``, which moves on)."""
        self.next_message_id += 1
        self.sent.append(send)
        self._unsettled.append(send)

    def settle(self, now: datetime) -> None:
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
                    self.add_stop_at(number, self._due(send))
            send.settled = True
        self._unsettled = waiting

    def recipient(self, send: Send, number: str, now: datetime) -> tuple[str, bool, datetime]:
        """(status, replied STOP, date) of one recipient of ``send`` as of ``now``."""
        due = self._due(send)
        if now < due:
            return "Waiting", False, send.received_at
        status, stop = self.planned_outcome(number)
        return status, stop, due

    def visible(self, send: Send, now: datetime) -> bool:
        """Whether the status endpoints see this send yet (the lag and hide faults)."""
        return status_sees(self.faults, send.received_at, send.scheduled_at, now)

    def log_request(
        self, method: str, path: str, params: Mapping[str, str], status: object
    ) -> None:
        self._requests.append(
            {
                "method": method,
                "path": path,
                "params": {k: v for k, v in params.items() if k.lower() != "apikey"},
                "status": status,
                "at": self.now().isoformat(),
            }
        )

    def _due(self, send: Send) -> datetime:
        return send.delivery_at + timedelta(seconds=self.delivery_delay_s)
