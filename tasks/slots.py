"""Delivery windows: when a recipient of each French territory may receive a marketing SMS.

The rules are compliance.md section 2. A recipient may be texted at an instant when:

* on the recipient's own clock (every zone of the territory: French Polynesia uses the
  intersection of Tahiti, Marquesas and Gambier), the local date is an allowed weekday and not one
  of the territory's public holidays, and the local wall time is in ``[start, end)``;
* and, when ``gateway_hold`` is on, the same holds on the Paris clock with the metropolitan
  (national) holiday list, because SMS Partner holds marketing SMS on Paris time.

Decisions taken here, beyond compliance.md:

* The Paris gateway window uses the policy's hours, weekdays and holiday switch: one policy
  describes one window, read on two clocks.
* ``alsace_moselle`` only extends FR's own holiday list. The gateway hold follows the national
  list, so it does not change the window of the other territories.
* Wall times are read literally on DST days: an instant is inside the window when its local wall
  time is in ``[start, end)``. A start falling in the spring-forward gap therefore opens at the
  end of the gap, and a wall time repeated at fall-back is inside the window on both passes.
* Slots are returned in Europe/Paris (the gateway's clock), timezone-aware. They lie on the
  5-minute grid of UTC, which is also the grid of every zone used here (all offsets are multiples
  of 5 minutes, Marquesas -09:30 included). Compare them as instants; note that Python never
  finds a wall time of the repeated fall-back hour equal to a datetime of another zone (PEP 495),
  which only a policy opening between 02:00 and 03:00 on a Sunday can produce.
* "Within the horizon" means at most ``horizon_days`` days after the instant asked about.
* Numbers outside France and its territories (a two-letter region such as ``"BE"``) are refused
  by :func:`earliest_slot`, :func:`is_allowed` and :func:`window_close`, whose contract covers the
  ten territories. :func:`plan_slot` and :func:`explain_slot` accept them and apply the Paris
  window (the gateway hold: Paris time, metropolitan holidays), whatever ``gateway_hold`` says,
  since we do not know the recipient's clock.

Holiday lists are built once per (territory, year) and kept; day intervals are cached too, so
a call costs tens of microseconds (a 14-day search that finds nothing, a few hundred).

The computation works per local day: each clock's open interval of that day is turned into UTC,
the clocks' interval lists are intersected, and the first interval ending after the requested
instant gives the slot. Nothing steps minute by minute.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

import holidays

from smspartner.models import schedule_at
from tasks.outcomes import TERRITORIES

PARIS = ZoneInfo("Europe/Paris")

TERRITORY_ZONES: dict[str, tuple[str, ...]] = {
    "FR": ("Europe/Paris",),
    "GP": ("America/Guadeloupe",),
    "MQ": ("America/Martinique",),
    "GF": ("America/Cayenne",),
    "RE": ("Indian/Reunion",),
    "YT": ("Indian/Mayotte",),
    "PM": ("America/Miquelon",),
    "NC": ("Pacific/Noumea",),
    "PF": ("Pacific/Tahiti", "Pacific/Marquesas", "Pacific/Gambier"),
    "WF": ("Pacific/Wallis",),
}

# Holiday subdivisions of the `holidays` package (compliance.md sections 3 and 4). None is the
# national list. +590 numbers cannot be told apart between Guadeloupe, Saint-Barthélemy and
# Saint-Martin, so GP must avoid the holidays of all three.
_SUBDIVS: Mapping[str, tuple[str | None, ...]] = MappingProxyType(
    {
        "FR": (None,),
        "GP": ("971", "BL", "MF"),
        "MQ": ("972",),
        "GF": ("973",),
        "RE": ("974",),
        "YT": ("976",),
        "PM": ("PM",),
        "NC": ("NC",),
        "PF": ("PF",),
        "WF": ("WF",),
    }
)
_ALSACE_MOSELLE: tuple[str | None, ...] = (None, "57", "6AE")

# Copied at import so that a caller mutating TERRITORY_ZONES cannot change the rules mid-run.
_ZONES: Mapping[str, tuple[ZoneInfo, ...]] = MappingProxyType(
    {
        territory: tuple(ZoneInfo(name) for name in names)
        for territory, names in TERRITORY_ZONES.items()
    }
)
assert set(_ZONES) == set(TERRITORIES), "TERRITORY_ZONES must cover tasks.outcomes.TERRITORIES"

_PLACE = MappingProxyType(
    {
        "FR": "metropolitan France",
        "GP": "Guadeloupe, Saint-Barthélemy or Saint-Martin",
        "MQ": "Martinique",
        "GF": "French Guiana",
        "RE": "Réunion",
        "YT": "Mayotte",
        "PM": "Saint-Pierre-et-Miquelon",
        "NC": "New Caledonia",
        "PF": "French Polynesia",
        "WF": "Wallis-et-Futuna",
    }
)
_CITY = MappingProxyType(
    {
        "Europe/Paris": "Paris",
        "America/Guadeloupe": "Guadeloupe",
        "America/Martinique": "Martinique",
        "America/Cayenne": "Cayenne",
        "Indian/Reunion": "Réunion",
        "Indian/Mayotte": "Mayotte",
        "America/Miquelon": "Miquelon",
        "Pacific/Noumea": "Nouméa",
        "Pacific/Tahiti": "Tahiti",
        "Pacific/Marquesas": "Marquesas",
        "Pacific/Gambier": "Gambier",
        "Pacific/Wallis": "Wallis",
    }
)
# English names written out so explanations do not depend on the machine's locale.
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# How far ahead a slot may be planned (days): the form's and the command line's default come
# from here (flows/parameters.py, flows/survey_campaign.py).
HORIZON_DAYS: Final = 14
_STEP = timedelta(minutes=5)
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# No UTC offset exceeds 14 hours, so the instants whose wall time falls on a given local day lie
# within 14 hours of that day read as UTC.
_MAX_OFFSET = timedelta(hours=14)
_REGION = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class WindowPolicy:
    """When marketing SMS may be sent; the default is the strictest reading of every source."""

    start: time = time(8, 0)
    end: time = time(20, 0)  # exclusive: 19:55 is the last 5-minute slot
    weekdays: frozenset[int] = frozenset(range(6))  # Monday=0 .. Saturday=5
    holidays: bool = True  # exclude the territory's public holidays
    gateway_hold: bool = True  # also require the Paris window (metropolitan holidays)
    alsace_moselle: bool = False  # add Good Friday and 26 December for FR
    horizon_days: int = HORIZON_DAYS

    def __post_init__(self) -> None:
        # A set passed by a caller would make the policy unhashable (it is a cache key).
        object.__setattr__(self, "weekdays", frozenset(self.weekdays))
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window start and end are wall times: pass naive times")
        if not self.start < self.end:
            raise ValueError(f"window start {self.start} must be before its end {self.end}")
        if not self.weekdays <= set(range(7)):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        if self.horizon_days < 0:
            raise ValueError("horizon_days must not be negative")


DEFAULT_POLICY = WindowPolicy()


@dataclass(frozen=True)
class SlotDecision:
    """How one territory group is sent: at once, at a scheduled slot, or not at all."""

    territory: str
    at_once: bool  # send now without a schedule
    slot: datetime | None  # the scheduled slot in Europe/Paris (None if at_once or no slot)
    explanation: str  # words an operator understands


class _Clock(NamedTuple):
    """One clock a slot must satisfy: a zone and the holiday list read on it."""

    zone: ZoneInfo
    holidays_of: str  # territory whose holiday list applies
    alsace: bool
    gateway: bool  # the Paris clock of the gateway hold, not the recipient's


_GATEWAY = _Clock(PARIS, "FR", False, True)

Interval = tuple[datetime, datetime]  # [start, end) in UTC


# --- holidays -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _holiday_table(territory: str, year: int, alsace: bool, language: str) -> Mapping[date, str]:
    """Holidays of one territory and year, several names on one day joined by "; "."""
    subdivs = _ALSACE_MOSELLE if territory == "FR" and alsace else _SUBDIVS[territory]
    names: dict[date, list[str]] = {}
    for subdiv in subdivs:
        calendar = holidays.France(years=year, subdiv=subdiv, language=language)
        for day, joined in calendar.items():
            day_names = names.setdefault(day, [])
            for name in joined.split("; "):
                if name not in day_names:
                    day_names.append(name)
    return MappingProxyType({day: "; ".join(found) for day, found in sorted(names.items())})


def holiday_name(day: date, territory: str, policy: WindowPolicy = DEFAULT_POLICY) -> str | None:
    """French name of the public holiday on ``day`` in ``territory``, or None.

    This is the calendar, whatever ``policy.holidays`` says; the policy only matters through
    ``alsace_moselle`` (FR then also has Good Friday and 26 December).
    """
    if isinstance(day, datetime):
        raise ValueError("pass a date, not a datetime: holidays depend on the local date")
    _check_territory(territory)
    return _holiday_table(
        territory, day.year, territory == "FR" and policy.alsace_moselle, "fr"
    ).get(day)


def _english_holiday(day: date, clock: _Clock) -> str | None:
    return _holiday_table(clock.holidays_of, day.year, clock.alsace, "en_US").get(day)


# --- validation -----------------------------------------------------------------------------


def _check_territory(territory: str) -> None:
    if territory not in _ZONES:
        raise ValueError(
            f"unknown territory {territory!r}: expected one of {', '.join(TERRITORIES)}"
        )


def _require_aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def _clocks(
    territory: str, policy: WindowPolicy, *, foreign_ok: bool = False
) -> tuple[_Clock, ...]:
    if territory in _ZONES:
        alsace = territory == "FR" and policy.alsace_moselle
        own = tuple(_Clock(zone, territory, alsace, False) for zone in _ZONES[territory])
        # FR's own clock is Paris with a holiday list containing the national one: the gateway
        # hold would add nothing.
        if policy.gateway_hold and territory != "FR":
            return (*own, _GATEWAY)
        return own
    if foreign_ok and isinstance(territory, str) and _REGION.fullmatch(territory):
        return (_GATEWAY,)
    expected = f"one of {', '.join(TERRITORIES)}"
    if foreign_ok:
        expected += " or a foreign two-letter region code"
    raise ValueError(f"unknown territory {territory!r}: expected {expected}")


def _is_foreign(territory: str) -> bool:
    return territory not in _ZONES


# --- the window on one clock ----------------------------------------------------------------


def _day_open(clock: _Clock, day: date, policy: WindowPolicy) -> bool:
    if day.weekday() not in policy.weekdays:
        return False
    return not (
        policy.holidays and day in _holiday_table(clock.holidays_of, day.year, clock.alsace, "fr")
    )


def _clock_open(clock: _Clock, instant: datetime, policy: WindowPolicy) -> bool:
    local = instant.astimezone(clock.zone)
    return _day_open(clock, local.date(), policy) and policy.start <= local.time() < policy.end


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _first_true(low: datetime, high: datetime, predicate: Callable[[datetime], bool]) -> datetime:
    """First instant in (low, high] where ``predicate`` turns true (false at low, true at high)."""
    while high - low > _TICK:
        middle = low + (high - low) // 2
        if predicate(middle):
            high = middle
        else:
            low = middle
    return high


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@functools.lru_cache(maxsize=16384)
def _window_pieces(zone: ZoneInfo, day: date, start: time, end: time) -> tuple[Interval, ...]:
    """UTC intervals of the instants whose wall time on ``zone`` is in [start, end) on ``day``.

    While the UTC offset is ``o``, wall time is UTC + ``o``: the answer is, for each offset in
    force around that day, the part of [day+start-o, day+end-o) where ``o`` is in force. This
    assumes a zone changes its offset at most once in about two days, true of every zone here.
    """
    low = datetime.combine(day, start, tzinfo=UTC)  # wall times read as UTC for the arithmetic
    high = datetime.combine(day, end, tzinfo=UTC)
    pieces: list[Interval] = []
    for offset in {_offset(zone, low - _MAX_OFFSET), _offset(zone, high + _MAX_OFFSET)}:
        first, last = low - offset, high - offset

        def keeps(instant: datetime, offset: timedelta = offset) -> bool:
            return _offset(zone, instant) == offset

        first_ok, last_ok = keeps(first), keeps(last - _TICK)
        if first_ok and last_ok:
            pieces.append((first, last))
        elif first_ok:
            pieces.append((first, _first_true(first, last - _TICK, lambda u: not keeps(u))))
        elif last_ok:
            pieces.append((_first_true(first, last - _TICK, keeps), last))
    return tuple(_merge(pieces))


@functools.lru_cache(maxsize=16384)
def _clock_day(clock: _Clock, day: date, policy: WindowPolicy) -> tuple[Interval, ...]:
    if not _day_open(clock, day, policy):
        return ()
    return _window_pieces(clock.zone, day, policy.start, policy.end)


def _clock_intervals(
    clock: _Clock, since: datetime, until: datetime, policy: WindowPolicy
) -> list[Interval]:
    # One spare local day on each side: a fall-back at midnight makes a local date come twice.
    day = since.astimezone(clock.zone).date() - timedelta(days=1)
    last = until.astimezone(clock.zone).date() + timedelta(days=1)
    pieces: list[Interval] = []
    while day <= last:
        pieces.extend(_clock_day(clock, day, policy))
        day += timedelta(days=1)
    return _merge(pieces)


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def _open_intervals(
    clocks: tuple[_Clock, ...], since: datetime, until: datetime, policy: WindowPolicy
) -> list[Interval]:
    """Sorted, disjoint UTC intervals where every clock is open, covering [since, until]."""
    result = _clock_intervals(clocks[0], since, until, policy)
    for clock in clocks[1:]:
        result = _intersect(result, _clock_intervals(clock, since, until, policy))
    return _merge(result)


def _ceil_slot(instant: datetime) -> datetime:
    steps, remainder = divmod(instant - _EPOCH, _STEP)
    return instant if not remainder else _EPOCH + (steps + 1) * _STEP


def _earliest(after: datetime, clocks: tuple[_Clock, ...], policy: WindowPolicy) -> datetime | None:
    limit = after + timedelta(days=policy.horizon_days)
    for start, end in _open_intervals(clocks, after, limit, policy):
        if end <= after:
            continue
        candidate = _ceil_slot(max(start, after))
        if candidate > limit:
            return None
        if candidate < end:
            return candidate.astimezone(PARIS)
    return None


def _close(instant: datetime, clocks: tuple[_Clock, ...], policy: WindowPolicy) -> datetime | None:
    # An open stretch never outlasts one local day of a clock (end < 24:00), so a few days around
    # the instant are enough to see it whole.
    since, until = instant - timedelta(days=2), instant + timedelta(days=4)
    for start, end in _open_intervals(clocks, since, until, policy):
        if start <= instant < end:
            return end.astimezone(PARIS)
    return None


# --- public rules ---------------------------------------------------------------------------


def is_allowed(instant: datetime, territory: str, policy: WindowPolicy = DEFAULT_POLICY) -> bool:
    """Whether a recipient of ``territory`` may be texted at ``instant`` (timezone-aware)."""
    moment = _require_aware(instant, "instant")
    return all(_clock_open(clock, moment, policy) for clock in _clocks(territory, policy))


def earliest_slot(
    after: datetime, territory: str, policy: WindowPolicy = DEFAULT_POLICY
) -> datetime | None:
    """The earliest allowed instant >= ``after`` on a 5-minute boundary, in Europe/Paris.

    ``after`` must be timezone-aware and ``territory`` one of the ten codes of
    ``tasks.outcomes.TERRITORIES`` (ValueError otherwise). No lead margin is added. Returns None
    when no slot exists within ``policy.horizon_days`` days of ``after`` (Tahiti in summer under
    the gateway hold, for one).
    """
    moment = _require_aware(after, "after")
    return _earliest(moment, _clocks(territory, policy), policy)


def window_close(
    instant: datetime, territory: str, policy: WindowPolicy = DEFAULT_POLICY
) -> datetime | None:
    """When the window open at ``instant`` closes (first instant not allowed), in Europe/Paris.

    None when the window is closed at ``instant``.
    """
    moment = _require_aware(instant, "instant")
    return _close(moment, _clocks(territory, policy), policy)


# A schedule's lead time over now (the gateway refuses slots less than five minutes ahead) and
# the margin a slot keeps before the window closes (for the fan-out to finish inside it).
LEAD: Final = timedelta(minutes=10)
MARGIN: Final = timedelta(minutes=15)


def plan_slot(
    now: datetime,
    territory: str,
    policy: WindowPolicy = DEFAULT_POLICY,
    *,
    lead: timedelta = LEAD,
    fanout: timedelta = timedelta(0),
    margin: timedelta = MARGIN,
    allow_immediate: bool = True,
) -> SlotDecision:
    """Decide how a territory group is sent, as seen at ``now``.

    At once (no schedule) only when ``allow_immediate`` and the window is open at ``now`` and
    stays open for ``fanout + margin``: the whole fan-out then finishes inside it. Otherwise the
    slot is the earliest allowed 5-minute boundary at or after ``now + lead``, in Europe/Paris,
    so strictly in the future and still cancellable; ``slot`` is None when there is none within
    the horizon (report the group as ``no_slot``).

    ``territory`` may also be a foreign region code (``"BE"``) for numbers accepted by the
    foreign option: they get the Paris window (gateway hold: Paris time, metropolitan holidays),
    and the explanation says so.
    """
    moment = _require_aware(now, "now")
    if lead <= timedelta(0):
        raise ValueError("lead must be positive: a scheduled slot must be strictly in the future")
    if fanout < timedelta(0) or margin < timedelta(0):
        raise ValueError("fanout and margin must not be negative")
    clocks = _clocks(territory, policy, foreign_ok=True)
    prefix = _foreign_prefix(territory)
    close = _close(moment, clocks, policy)
    reason: str | None
    if close is not None:
        needed = fanout + margin
        open_until = f"window open until {_when(close, clocks, with_day=False)}"
        if not allow_immediate:
            reason = f"{open_until}, but immediate sending is off; scheduled {_minutes(lead)} ahead"
        elif close >= moment + needed:
            explanation = (
                f"{prefix}{open_until}, enough for the fan-out ({_minutes(fanout)}) and the margin "
                f"({_minutes(margin)}); sending now"
            )
            return SlotDecision(territory, True, None, explanation)
        else:
            reason = (
                f"{open_until}, too soon to send everything at once (needs {_minutes(needed)}: "
                f"fan-out {_minutes(fanout)} + margin {_minutes(margin)})"
            )
    else:
        reason = _reason(moment, clocks, policy)
    slot = _earliest(moment + lead, clocks, policy)
    explanation = prefix + _join(reason, _next_part(territory, slot, clocks, moment + lead, policy))
    return SlotDecision(territory, False, slot, explanation)


def explain_slot(
    after: datetime, territory: str, slot: datetime | None, policy: WindowPolicy = DEFAULT_POLICY
) -> str:
    """Why the earliest slot after ``after`` is ``slot``, in words an operator understands.

    Accepts foreign region codes like :func:`plan_slot` (Paris window).
    """
    moment = _require_aware(after, "after")
    if slot is not None:
        _require_aware(slot, "slot")
    clocks = _clocks(territory, policy, foreign_ok=True)
    reason = _reason(moment, clocks, policy)
    if reason is None:
        reason = "window open"
    return _foreign_prefix(territory) + _join(
        reason, _next_part(territory, slot, clocks, moment, policy)
    )


def to_api_schedule(slot: datetime) -> dict[str, str | int]:
    """The gateway's scheduling fields for ``slot``: Paris date, hour and minute. The client
    owns that format (``smspartner.schedule_at``); ValueError for what the gateway cannot read
    (a naive time, off a 5-minute boundary, the repeated hour of a DST fall-back)."""
    return schedule_at(slot)


# --- explanations ---------------------------------------------------------------------------


def _day_text(day: date) -> str:
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"


def _hm(value: datetime | time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def _minutes(span: timedelta) -> str:
    return f"{round(span.total_seconds() / 60)} min"


def _join(reason: str | None, rest: str) -> str:
    return rest if reason is None else f"{reason}; {rest}"


def _foreign_prefix(territory: str) -> str:
    if not _is_foreign(territory):
        return ""
    return (
        f"foreign number ({territory}): the Paris window applies "
        "(gateway hold: Paris time, metropolitan holidays); "
    )


def _city(clock: _Clock) -> str:
    return _CITY.get(clock.zone.key, clock.zone.key)


def _is_paris_only(clocks: tuple[_Clock, ...]) -> bool:
    return all(clock.zone is PARIS for clock in clocks)


def _when(instant: datetime, clocks: tuple[_Clock, ...], *, with_day: bool = True) -> str:
    """An instant as the recipient reads it, with Paris time beside it for overseas."""
    paris = instant.astimezone(PARIS)
    paris_text = f"{_day_text(paris.date())} {_hm(paris)}" if with_day else _hm(paris)
    if _is_paris_only(clocks):
        return f"{paris_text} (Paris)"
    clock = clocks[0]
    local = instant.astimezone(clock.zone)
    local_text = f"{_day_text(local.date())} {_hm(local)}" if with_day else _hm(local)
    same_day = local.date() == paris.date()
    beside = _hm(paris) if same_day else f"{_day_text(paris.date())} {_hm(paris)}"
    return f"{local_text} {_city(clock)} time ({beside} Paris)"


def _clock_reason(
    clock: _Clock, instant: datetime, policy: WindowPolicy, *, beside_recipient: bool
) -> str | None:
    """Why ``clock`` is closed at ``instant``, or None when it is open."""
    local = instant.astimezone(clock.zone)
    day = local.date()
    hold = where = time_where = place = ""
    if clock.gateway and beside_recipient:
        hold, where, time_where = "gateway hold: ", " in Paris", " in Paris"
        place = f" in {_PLACE['FR']}"
    elif clock.gateway:
        place = f" in {_PLACE['FR']}"  # a foreign number: say whose holiday it is
    elif clock.zone is not PARIS:
        where, time_where = f" in {_city(clock)}", f" {_city(clock)} time"
        place = f" in {_PLACE[clock.holidays_of]}"
    if day.weekday() not in policy.weekdays:
        return f"{hold}{_WEEKDAYS[day.weekday()]}{where}: no marketing SMS"
    if policy.holidays:
        french = _holiday_table(clock.holidays_of, day.year, clock.alsace, "fr").get(day)
        if french is not None:
            english = _english_holiday(day, clock)
            name = f"{english} ({french})" if english and english != french else french
            return f"{hold}{_day_text(day)} is {name}{place}"
    window = f"{_hm(policy.start)}-{_hm(policy.end)}"
    if local.time() < policy.start:
        return f"{hold}{_hm(local)}{time_where} is before the {window} window"
    if local.time() >= policy.end:
        return f"{hold}{_hm(local)}{time_where} is after the {window} window"
    return None


def _reason(instant: datetime, clocks: tuple[_Clock, ...], policy: WindowPolicy) -> str | None:
    """Why no slot starts at ``instant``: the first closed recipient clock, then the gateway."""
    beside = len(clocks) > 1
    reasons: list[str] = []
    for wanted in (False, True):
        for clock in clocks:
            if clock.gateway is wanted:
                found = _clock_reason(clock, instant, policy, beside_recipient=beside)
                if found is not None:
                    reasons.append(found)
                    break
    if reasons:
        return "; ".join(reasons)
    rounded = _ceil_slot(instant)
    for clock in clocks:
        if _clock_reason(clock, rounded, policy, beside_recipient=beside) is not None:
            local = instant.astimezone(clock.zone)
            city = "" if clock.zone is PARIS else f" {_city(clock)} time"
            hold = "gateway hold: " if clock.gateway and beside else ""
            return (
                f"{hold}{_hm(local)}{city} is too late for the last 5-minute slot before "
                f"{_hm(policy.end)}"
            )
    return None


def _next_part(
    territory: str,
    slot: datetime | None,
    clocks: tuple[_Clock, ...],
    after: datetime,
    policy: WindowPolicy,
) -> str:
    if slot is not None:
        return f"next allowed slot {_when(slot.astimezone(UTC), clocks)}"
    text = f"no allowed slot within {policy.horizon_days} days"
    if policy.gateway_hold and not _is_foreign(territory) and territory != "FR":
        own = _clocks(territory, dataclasses.replace(policy, gateway_hold=False))
        if _earliest(after, own, policy) is not None:
            text += (
                f": the {_city(own[0])} window and the Paris gateway window do not overlap "
                "in that period"
            )
    return text
