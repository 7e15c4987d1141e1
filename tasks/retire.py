"""Dead numbers retired: when a number's delivery history puts it in the never-text store, and
when it comes out again (pure: every input explicit, ``now`` included).

French operators may give a cancelled mobile number to someone else after 45 to 120 days: a
number that keeps coming back "Not delivered" is likely no longer our recipient's. The follow-up
records, per number and campaign, the delivery status it read (``tasks.nevertext`` keeps it by
the store's keyed digest, never the number); the rule below reads that history:

- only definite statuses count (``delivered``, ``not_delivered``); ``waiting`` and ``other``
  say nothing yet, so they neither count nor break a streak;
- the last ``after`` definite statuses, in the campaigns' order, all ``not_delivered``: the
  number is *retired* for ``days`` days (an ``undeliverable`` entry of the store);
- its latest definite status ``delivered``: its ``undeliverable`` entry is *released* (entries
  of other origins are never touched by this rule);
- an expired entry no longer blocks; the same streak does not retire the number again, a
  ``not_delivered`` from a campaign after it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tasks.outcomes import DELIVERED, NOT_DELIVERED

RETIRE_AFTER = 2  # K: successive "Not delivered" campaigns that retire a number
RETIRE_DAYS = 180  # D: how long a retired number stays out
MAX_AFTER = 20
MAX_DAYS = 3650
DEFINITE = frozenset({DELIVERED, NOT_DELIVERED})


@dataclass(frozen=True)
class Reading:
    """One campaign's delivery status of one number, as the follow-up last read it."""

    campaign_id: str
    campaign_at: datetime  # when the campaign was created: the campaigns' order
    status: str  # delivered, not_delivered, waiting or other


@dataclass(frozen=True)
class Held:
    """A number's ``undeliverable`` entry in the never-text store."""

    campaign_id: str | None
    expires_at: datetime | None  # None: an entry without an end, which always blocks

    def blocks(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class Verdict(StrEnum):
    keep = "keep"  # nothing to change
    retire = "retire"  # a new (or renewed) undeliverable entry
    release = "release"  # the undeliverable entry goes


def definite(readings: Iterable[Reading]) -> list[Reading]:
    """The readings that say something, in the campaigns' order (ties by campaign id)."""
    return sorted(
        (r for r in readings if r.status in DEFINITE), key=lambda r: (r.campaign_at, r.campaign_id)
    )


def verdict(
    readings: Iterable[Reading], held: Held | None, *, after: int, now: datetime
) -> Verdict:
    """What the store must do for one number, from its whole history (``after`` = 0: never
    retire; a delivered number is still released)."""
    said = definite(readings)
    if not said:
        return Verdict.keep
    last = said[-1]
    if last.status == DELIVERED:
        return Verdict.release if held is not None else Verdict.keep
    if after <= 0:
        return Verdict.keep
    streak = said[-after:]
    if len(streak) < after or any(r.status != NOT_DELIVERED for r in streak):
        return Verdict.keep
    if held is None:
        return Verdict.retire
    if held.blocks(now) or held.campaign_id == last.campaign_id:
        return Verdict.keep  # still retired, or the streak that retired it, seen again
    return Verdict.retire


def expiry(now: datetime, days: int) -> datetime:
    """When an entry made ``now`` stops blocking."""
    return now + timedelta(days=days)


def reason(after: int) -> str:
    """The reason kept with the entry (an audit reads it; as the store's other reasons)."""
    return f"not delivered in {after} successive campaigns"


def settings_problem(after: int, days: int) -> str | None:
    """Why the two settings cannot be used, in one line; None when they can."""
    if not 0 <= after <= MAX_AFTER:
        return f"--retire-after must be between 0 (never) and {MAX_AFTER}"
    if not 1 <= days <= MAX_DAYS:
        return f"--retire-days must be between 1 and {MAX_DAYS}"
    return None


__all__ = [
    "DEFINITE",
    "MAX_AFTER",
    "MAX_DAYS",
    "RETIRE_AFTER",
    "RETIRE_DAYS",
    "Held",
    "Reading",
    "Verdict",
    "definite",
    "expiry",
    "reason",
    "settings_problem",
    "verdict",
]
