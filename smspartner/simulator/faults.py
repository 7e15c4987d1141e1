"""The faults the simulator injects into ``/v1`` requests, all off by default (``FaultConfig``).

Plain ones: ``latency_ms``, ``error_5xx_rate``, ``rate_limit_rate`` (with ``retry_after``),
``reset_rate``, ``drop_after_accept_rate``. Ambiguous ones, where the client cannot tell from the
answer whether the send landed:

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
``api.py`` makes the draws in that order; this module says what each fault answers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from smspartner.simulator.reply import Reply, fail

__all__ = ["GARBAGE_KINDS", "FaultConfig"]

GARBAGE_KINDS: Final = ("html200", "html502", "empty", "truncated", "no_message_id")
_BAD_GATEWAY: Final = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
_PROXY_PAGE: Final = (
    b"<html><head><title>Request blocked</title></head><body><h1>Request blocked</h1>"
    b"<p>This request was stopped by the network security gateway.</p></body></html>"
)


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


def draw(rng: random.Random, rate: float) -> bool:
    """One seeded draw; none at all for a rate of 0, so a seed replays whatever faults are off."""
    return rate > 0 and rng.random() < rate


def early_fault(faults: FaultConfig, rng: random.Random) -> Reply | None:
    """A reset, a 429 or a 5xx that answers before the request is looked at, if one is drawn."""
    if draw(rng, faults.reset_rate):
        return Reply(close="reset")
    if draw(rng, faults.rate_limit_rate):
        return Reply(
            429,
            {"success": False, "code": 429, "message": "Too many requests"},
            headers={"Retry-After": f"{faults.retry_after:g}"},
        )
    if draw(rng, faults.error_5xx_rate):
        return rng.choice(
            [
                fail(500, "Internal server error", 500),
                Reply(502, raw=_BAD_GATEWAY, content_type="text/html"),
                Reply(503, raw=b"Service Unavailable", content_type="text/plain"),
            ]
        )
    return None


def garbage(faults: FaultConfig, rng: random.Random, body: Mapping[str, Any]) -> Reply:
    """An answer that says nothing reliable about ``body``, the send's real answer."""
    kind = rng.choice(faults.garbage_kinds)
    if kind == "html200":
        return Reply(200, raw=_PROXY_PAGE, content_type="text/html")
    if kind == "html502":
        return Reply(502, raw=_BAD_GATEWAY, content_type="text/html")
    if kind == "empty":
        return Reply(200, raw=b"")
    if kind == "truncated":
        whole = Reply(200, body).payload()
        return Reply(200, raw=whole[: len(whole) // 2])
    return Reply(200, {k: v for k, v in body.items() if k != "message_id"})


def status_sees(
    faults: FaultConfig, received_at: datetime, scheduled_at: datetime | None, now: datetime
) -> bool:
    """Whether the status endpoints see a send yet (the lag and hide faults)."""
    if now - received_at < timedelta(seconds=faults.status_lag_s):
        return False
    return not (faults.hide_scheduled and scheduled_at and now < scheduled_at)
