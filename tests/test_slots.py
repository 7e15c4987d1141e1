"""Delivery windows (tasks/slots.py) against compliance.md section 2.

The property tests compare the interval arithmetic of tasks.slots with a brute-force reference
written here from compliance.md alone: read each instant on every clock (recipient zones, then
Paris for the gateway hold) and check weekday, holiday list and wall time, 5 minutes at a time.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jours_feries_france import JoursFeries

from tasks.outcomes import TERRITORIES
from tasks.slots import (
    DEFAULT_POLICY,
    HORIZON_DAYS,
    PARIS,
    TERRITORY_ZONES,
    SlotDecision,
    WindowPolicy,
    earliest_slot,
    explain_slot,
    holiday_name,
    is_allowed,
    plan_slot,
    to_api_schedule,
    window_close,
)

# --- an independent reference, from compliance.md sections 2-4 ------------------------------

REF_ZONES = {
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
REF_SUBDIVS = {
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
ALL_DAYS = frozenset(range(7))
_TICK = timedelta(microseconds=1)


@functools.cache
def ref_holidays(territory: str, year: int, alsace: bool) -> frozenset[date]:
    subdivs = (None, "57", "6AE") if territory == "FR" and alsace else REF_SUBDIVS[territory]
    days: set[date] = set()
    for subdiv in subdivs:
        days |= set(holidays.France(years=year, subdiv=subdiv))
    return frozenset(days)


def ref_clocks(territory: str, policy: WindowPolicy) -> list[tuple[ZoneInfo, str, bool]]:
    if territory not in REF_ZONES:  # foreign number: Paris window only
        return [(PARIS_REF, "FR", False)]
    alsace = territory == "FR" and policy.alsace_moselle
    clocks = [(ZoneInfo(name), territory, alsace) for name in REF_ZONES[territory]]
    if policy.gateway_hold:
        clocks.append((PARIS_REF, "FR", False))
    return clocks


PARIS_REF = ZoneInfo("Europe/Paris")


def ref_allowed(instant: datetime, territory: str, policy: WindowPolicy) -> bool:
    for zone, holiday_territory, alsace in ref_clocks(territory, policy):
        local = instant.astimezone(zone)
        if local.weekday() not in policy.weekdays:
            return False
        if policy.holidays and local.date() in ref_holidays(holiday_territory, local.year, alsace):
            return False
        if not policy.start <= local.time() < policy.end:
            return False
    return True


def ref_round_up(instant: datetime) -> datetime:
    utc = instant.astimezone(UTC)
    if utc.minute % 5 == 0 and utc.second == 0 and utc.microsecond == 0:
        return utc
    floor = utc.replace(minute=utc.minute - utc.minute % 5, second=0, microsecond=0)
    return floor + timedelta(minutes=5)


def grid(start: datetime, stop: datetime) -> list[datetime]:
    """5-minute instants from ``start`` (rounded up) while < ``stop``."""
    points, current = [], ref_round_up(start)
    while current < stop:
        points.append(current)
        current += timedelta(minutes=5)
    return points


def paris(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def last_sunday(year: int, month: int) -> date:
    day = date(year, month, 31)
    return day - timedelta(days=(day.weekday() - 6) % 7)


# --- strategies -----------------------------------------------------------------------------

uniform_instants = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2040, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
# DST changes are two days a year: aim at them on purpose, or uniform draws would hardly see them.
dst_instants = st.builds(
    lambda year, month, shift: datetime.combine(last_sunday(year, month), time(1), UTC) + shift,
    st.integers(2024, 2040),
    st.sampled_from([3, 10]),
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
)
instants = st.one_of(uniform_instants, dst_instants)

POLICIES = [
    DEFAULT_POLICY,
    WindowPolicy(end=time(22, 0)),
    WindowPolicy(weekdays=ALL_DAYS),
    WindowPolicy(holidays=False),
    WindowPolicy(gateway_hold=False),
    WindowPolicy(alsace_moselle=True),
    # Wall times inside the DST gap and the repeated hour, to exercise the conversions.
    WindowPolicy(
        start=time(2, 30), end=time(3, 30), weekdays=ALL_DAYS, gateway_hold=False, horizon_days=3
    ),
    WindowPolicy(start=time(7, 3), end=time(9, 58), weekdays=frozenset({0, 6}), horizon_days=4),
]
policies = st.sampled_from(POLICIES)
territories = st.sampled_from(TERRITORIES)


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(after=instants, territory=territories, policy=policies)
def test_earliest_slot_is_the_first_allowed_five_minute_instant(
    after: datetime, territory: str, policy: WindowPolicy
) -> None:
    slot = earliest_slot(after, territory, policy)
    limit = after + timedelta(days=policy.horizon_days)
    if slot is None:
        assert not any(ref_allowed(p, territory, policy) for p in grid(after, limit + _TICK))
        return
    assert slot.tzinfo is PARIS
    assert after <= slot <= limit
    assert (slot.minute % 5, slot.second, slot.microsecond) == (0, 0, 0)
    assert slot.astimezone(UTC).minute % 5 == 0
    assert ref_allowed(slot, territory, policy)
    assert is_allowed(slot, territory, policy)
    assert not any(ref_allowed(p, territory, policy) for p in grid(after, slot))


@settings(max_examples=200, deadline=None)
@given(instant=instants, territory=territories, policy=policies)
def test_window_close_ends_the_open_stretch(
    instant: datetime, territory: str, policy: WindowPolicy
) -> None:
    allowed = ref_allowed(instant, territory, policy)
    assert is_allowed(instant, territory, policy) == allowed
    close = window_close(instant, territory, policy)
    assert (close is not None) == allowed
    if close is None:
        return
    assert close > instant
    assert not ref_allowed(close, territory, policy)
    assert ref_allowed(close - _TICK, territory, policy)
    assert all(ref_allowed(p, territory, policy) for p in grid(instant, close))


@settings(max_examples=200, deadline=None)
@given(
    now=instants,
    territory=st.sampled_from((*TERRITORIES, "BE")),
    policy=policies,
    lead=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(hours=2)),
    fanout=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=3)),
    margin=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)),
    allow_immediate=st.booleans(),
)
def test_plan_slot_sends_at_once_only_inside_the_window_else_schedules_ahead(
    now: datetime,
    territory: str,
    policy: WindowPolicy,
    lead: timedelta,
    fanout: timedelta,
    margin: timedelta,
    allow_immediate: bool,
) -> None:
    decision = plan_slot(
        now,
        territory,
        policy,
        lead=lead,
        fanout=fanout,
        margin=margin,
        allow_immediate=allow_immediate,
    )
    assert decision.territory == territory
    assert decision.explanation
    span = fanout + margin
    # Window boundaries are whole minutes and closed stretches last hours: a one-minute walk
    # over the span sees any closure inside it.
    minutes = int(span / timedelta(minutes=1)) + 1
    stays_open = ref_allowed(now, territory, policy) and all(
        ref_allowed(now + k * timedelta(minutes=1), territory, policy)
        for k in range(minutes)
        if k * timedelta(minutes=1) < span
    )
    if span > timedelta(0):
        stays_open = stays_open and ref_allowed(now + span - _TICK, territory, policy)
    assert decision.at_once == (allow_immediate and stays_open)
    if decision.at_once:
        assert decision.slot is None
        return
    if decision.slot is None:
        assert "no allowed slot" in decision.explanation
        return
    slot = decision.slot
    assert slot.tzinfo is PARIS
    assert slot >= now + lead > now
    assert (slot.minute % 5, slot.second, slot.microsecond) == (0, 0, 0)
    assert ref_allowed(slot, territory, policy)
    assert not any(ref_allowed(p, territory, policy) for p in grid(now + lead, slot))
    if slot.replace(fold=1 - slot.fold).utcoffset() == slot.utcoffset():  # not a repeated hour
        fields = to_api_schedule(slot)
        day, month, year = map(int, str(fields["scheduledDeliveryDate"]).split("/"))
        hour, minute = int(fields["time"]), int(fields["minute"])
        assert datetime(year, month, day, hour, minute, tzinfo=PARIS) == slot


# --- DST changes (last Sunday of March and October) -----------------------------------------


def test_saturday_evening_before_spring_change_waits_for_monday_summer_time() -> None:
    slot = earliest_slot(paris(2026, 3, 28, 19, 58), "FR")
    assert slot == paris(2026, 3, 30, 8, 0)
    assert slot is not None and slot.astimezone(UTC) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)


def test_saturday_evening_before_autumn_change_waits_for_monday_winter_time() -> None:
    slot = earliest_slot(paris(2026, 10, 24, 20, 0), "FR")
    assert slot is not None and slot.astimezone(UTC) == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)


def test_open_sunday_on_dst_days_still_runs_08_to_20_wall_time() -> None:
    sundays = WindowPolicy(weekdays=ALL_DAYS)
    spring = earliest_slot(paris(2026, 3, 28, 20, 0), "FR", sundays)
    assert spring is not None and spring.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    close = window_close(spring, "FR", sundays)
    assert close is not None and close.astimezone(UTC) == datetime(2026, 3, 29, 18, 0, tzinfo=UTC)
    autumn = earliest_slot(paris(2026, 10, 24, 20, 0), "FR", sundays)
    assert autumn is not None and autumn.astimezone(UTC) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    close = window_close(autumn, "FR", sundays)
    # 08:00-20:00 of the 25-hour day is still 12 hours of wall time.
    assert close is not None and close - autumn == timedelta(hours=12)


def test_window_starting_in_the_spring_gap_opens_when_the_clock_jumps() -> None:
    policy = WindowPolicy(start=time(2, 30), weekdays=ALL_DAYS, gateway_hold=False)
    slot = earliest_slot(datetime(2026, 3, 29, 0, 0, tzinfo=UTC), "FR", policy)
    # 02:30 does not exist that night: 02:00 CET is followed by 03:00 CEST (01:00 UTC).
    assert slot is not None and slot.astimezone(UTC) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert not is_allowed(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "FR", policy)


def test_repeated_autumn_hour_is_open_on_both_passes() -> None:
    policy = WindowPolicy(start=time(2, 0), end=time(2, 30), weekdays=ALL_DAYS)
    first = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST
    # Compare in UTC: Python never finds a repeated-hour wall time equal to another zone's.
    slot = earliest_slot(first - timedelta(minutes=1), "FR", policy)
    assert slot is not None and slot.astimezone(UTC) == first
    close = window_close(first, "FR", policy)
    assert close is not None and close.astimezone(UTC) == first + timedelta(minutes=30)
    second = earliest_slot(first + timedelta(minutes=30), "FR", policy)
    assert second is not None and second.astimezone(UTC) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="repeated hour"):
        to_api_schedule(second)


def test_reunion_overlap_with_paris_follows_paris_dst() -> None:
    # Réunion is UTC+4 all year; 20:00 there is 17:00 Paris in winter, 18:00 in summer.
    assert window_close(paris(2026, 3, 28, 10, 0), "RE") == paris(2026, 3, 28, 17, 0)
    assert window_close(paris(2026, 3, 30, 10, 0), "RE") == paris(2026, 3, 30, 18, 0)
    assert window_close(paris(2026, 10, 24, 10, 0), "RE") == paris(2026, 10, 24, 18, 0)
    assert window_close(paris(2026, 10, 26, 10, 0), "RE") == paris(2026, 10, 26, 17, 0)


# --- holidays ------------------------------------------------------------------------------

NATIONAL_2026 = [
    (date(2026, 1, 1), "Jour de l'an", date(2026, 1, 2)),
    (date(2026, 4, 6), "Lundi de Pâques", date(2026, 4, 7)),
    (date(2026, 5, 1), "Fête du Travail", date(2026, 5, 2)),
    (date(2026, 5, 8), "Fête de la Victoire", date(2026, 5, 9)),
    (date(2026, 5, 14), "Ascension", date(2026, 5, 15)),
    (date(2026, 5, 25), "Lundi de Pentecôte", date(2026, 5, 26)),
    (date(2026, 7, 14), "Fête nationale", date(2026, 7, 15)),
    (date(2026, 8, 15), "Assomption", date(2026, 8, 17)),  # a Saturday: Sunday follows
    (date(2026, 11, 1), "Toussaint", date(2026, 11, 2)),  # a Sunday
    (date(2026, 11, 11), "Armistice", date(2026, 11, 12)),
    (date(2026, 12, 25), "Noël", date(2026, 12, 26)),
]


@pytest.mark.parametrize(("day", "name", "next_day"), NATIONAL_2026)
@pytest.mark.parametrize("territory", TERRITORIES)
def test_national_holidays_close_every_territory(
    day: date, name: str, next_day: date, territory: str
) -> None:
    assert holiday_name(day, territory) is not None
    assert name in (holiday_name(day, territory) or "")
    zone = TERRITORY_ZONES[territory][0]
    assert not is_allowed(datetime.combine(day, time(12), ZoneInfo(zone)), territory)


@pytest.mark.parametrize(("day", "name", "next_day"), NATIONAL_2026)
def test_national_holiday_in_metropolitan_france_moves_to_next_working_day(
    day: date, name: str, next_day: date
) -> None:
    assert holiday_name(day, "FR") == name
    after = datetime.combine(day, time(9), PARIS)
    assert earliest_slot(after, "FR") == datetime.combine(next_day, time(8), PARIS)


@pytest.mark.parametrize(
    ("territory", "zone", "day", "next_allowed"),
    [
        # 28 May is Saint-Martin's day: +590 numbers skip both.
        ("GP", "America/Guadeloupe", date(2026, 5, 27), date(2026, 5, 29)),
        ("MQ", "America/Martinique", date(2026, 5, 22), date(2026, 5, 23)),
        ("GF", "America/Cayenne", date(2026, 6, 10), date(2026, 6, 11)),
        ("RE", "Indian/Reunion", date(2027, 12, 20), date(2027, 12, 21)),
        ("YT", "Indian/Mayotte", date(2026, 4, 27), date(2026, 4, 28)),
    ],
)
def test_abolition_day_closes_its_territory_only(
    territory: str, zone: str, day: date, next_allowed: date
) -> None:
    tz = ZoneInfo(zone)
    assert holiday_name(day, territory) == "Abolition de l'esclavage"
    start_of_day = datetime.combine(day, time(0), tz)
    slot = earliest_slot(start_of_day, territory)
    assert slot is not None
    assert slot.astimezone(tz).date() == next_allowed
    assert not is_allowed(datetime.combine(day, time(14), tz), territory)
    # Metropolitan France works that day.
    assert holiday_name(day, "FR") is None
    assert is_allowed(datetime.combine(day, time(14), PARIS), "FR")


def test_caribbean_slot_opens_at_0800_local_which_is_afternoon_in_paris() -> None:
    slot = earliest_slot(local("America/Cayenne", 2026, 6, 10, 0, 0), "GF")
    assert slot == local("America/Cayenne", 2026, 6, 11, 8, 0)
    assert slot == paris(2026, 6, 11, 13, 0)


def test_guadeloupe_number_avoids_saint_barthelemy_and_saint_martin_days() -> None:
    assert holiday_name(date(2026, 10, 9), "GP") == "Abolition de l'esclavage"  # BL
    assert holiday_name(date(2026, 5, 28), "GP") == "Abolition de l'esclavage"  # MF
    assert holiday_name(date(2026, 3, 12), "GP") == "Mi-Carême"  # 971
    assert not is_allowed(local("America/Guadeloupe", 2026, 10, 9, 10, 0), "GP")


def test_alsace_moselle_option_adds_good_friday_and_26_december_to_fr_only() -> None:
    alsace = WindowPolicy(alsace_moselle=True)
    good_friday = paris(2026, 4, 3, 12, 0)
    assert is_allowed(good_friday, "FR")
    assert not is_allowed(good_friday, "FR", alsace)
    assert holiday_name(date(2026, 4, 3), "FR", alsace) == "Vendredi saint"
    assert earliest_slot(paris(2026, 4, 3, 9, 0), "FR", alsace) == paris(2026, 4, 4, 8, 0)
    # 26 December 2026 is a Saturday, then Sunday: Alsace-Moselle waits for Monday.
    assert earliest_slot(paris(2026, 12, 25, 9, 0), "FR") == paris(2026, 12, 26, 8, 0)
    assert earliest_slot(paris(2026, 12, 25, 9, 0), "FR", alsace) == paris(2026, 12, 28, 8, 0)
    assert holiday_name(date(2026, 12, 26), "FR", alsace) == "Saint-Étienne"
    # The gateway hold follows the national list: Réunion works on Good Friday either way.
    assert is_allowed(good_friday, "RE", alsace)


def test_holiday_name_wants_a_date_and_a_known_territory() -> None:
    with pytest.raises(ValueError, match="not a datetime"):
        holiday_name(paris(2026, 5, 14, 12, 0), "FR")
    with pytest.raises(ValueError, match="unknown territory"):
        holiday_name(date(2026, 5, 14), "BE")


# --- independent holiday list (etalab's jours-feries-france) ---------------------------------

JFF_ZONES = {
    "GP": ("Guadeloupe", "Saint-Barthélémy", "Saint-Martin"),
    "MQ": ("Martinique",),
    "GF": ("Guyane",),
    "RE": ("La Réunion",),
    "YT": ("Mayotte",),
    "PM": ("Saint-Pierre-et-Miquelon",),
    "NC": ("Nouvelle-Calédonie",),
    "PF": ("Polynésie Française",),
    "WF": ("Wallis-et-Futuna",),
}
YEARS = range(2020, 2041)


def days_with_holiday(territory: str, year: int, policy: WindowPolicy) -> set[date]:
    day, found = date(year, 1, 1), set()
    while day.year == year:
        if holiday_name(day, territory, policy) is not None:
            found.add(day)
        day += timedelta(days=1)
    return found


def jff_days(zones: tuple[str, ...], year: int) -> set[date]:
    return {day for zone in zones for day in JoursFeries.for_year(year, zone).values()}


def test_metropolitan_and_alsace_moselle_lists_equal_jours_feries_france() -> None:
    alsace = WindowPolicy(alsace_moselle=True)
    for year in YEARS:
        assert days_with_holiday("FR", year, DEFAULT_POLICY) == jff_days(("Métropole",), year)
        assert days_with_holiday("FR", year, alsace) == jff_days(("Alsace-Moselle",), year)


@pytest.mark.parametrize("territory", list(JFF_ZONES))
def test_overseas_lists_contain_jours_feries_france(territory: str) -> None:
    exact = {"GF", "RE", "YT", "PM"}  # compliance.md section 3: the two libraries agree there
    no_gateway = WindowPolicy(gateway_hold=False)
    zone = ZoneInfo(TERRITORY_ZONES[territory][0])
    for year in YEARS:
        theirs = jff_days(JFF_ZONES[territory], year)
        ours = days_with_holiday(territory, year, DEFAULT_POLICY)
        assert theirs <= ours
        if territory in exact:
            assert ours == theirs
        # And the window really is shut on those days, on the recipient's clock.
        for day in theirs:
            assert not is_allowed(datetime.combine(day, time(12), zone), territory, no_gateway)


# --- evenings, weekends and Tahiti -----------------------------------------------------------


def test_new_years_eve_at_1958_waits_past_new_years_day() -> None:
    after = paris(2026, 12, 31, 19, 58)  # Thursday
    slot = earliest_slot(after, "FR")
    assert slot == paris(2027, 1, 2, 8, 0)  # Saturday: 1 January is a holiday
    text = explain_slot(after, "FR", slot)
    assert text.startswith("19:58 is too late for the last 5-minute slot before 20:00")
    assert text.endswith("next allowed slot Saturday 2 January 08:00 (Paris)")


def test_last_slot_of_the_day_is_1955() -> None:
    assert earliest_slot(paris(2026, 5, 15, 19, 51), "FR") == paris(2026, 5, 15, 19, 55)
    assert not is_allowed(paris(2026, 5, 15, 20, 0), "FR")
    assert window_close(paris(2026, 5, 15, 19, 59, 59), "FR") == paris(2026, 5, 15, 20, 0)


def test_saturday_1959_waits_for_monday_or_tuesday_after_whit_monday() -> None:
    assert earliest_slot(paris(2026, 5, 16, 19, 59), "FR") == paris(2026, 5, 18, 8, 0)
    assert earliest_slot(paris(2026, 5, 23, 19, 59), "FR") == paris(2026, 5, 26, 8, 0)


def test_tahiti_in_paris_summer_never_overlaps_the_gateway_window() -> None:
    for day in range(1, 32):
        assert earliest_slot(paris(2026, 7, day, 12, 0), "PF") is None
    decision = plan_slot(paris(2026, 7, 6, 12, 0), "PF")
    assert isinstance(decision, SlotDecision)
    assert (decision.territory, decision.at_once, decision.slot) == ("PF", False, None)
    assert "no allowed slot within 14 days" in decision.explanation
    assert "do not overlap" in decision.explanation


def test_tahiti_without_gateway_hold_uses_polynesian_hours() -> None:
    no_hold = WindowPolicy(gateway_hold=False)
    slot = earliest_slot(paris(2026, 7, 6, 12, 0), "PF", no_hold)  # midnight in Tahiti
    assert slot == local("Pacific/Tahiti", 2026, 7, 6, 8, 0)
    # Gambier (UTC-9) reaches 20:00 when Tahiti (UTC-10) is at 19:00: the intersection ends.
    assert window_close(slot, "PF", no_hold) == local("Pacific/Tahiti", 2026, 7, 6, 19, 0)


def test_tahiti_in_paris_winter_has_one_hour_of_overlap() -> None:
    slot = earliest_slot(paris(2026, 1, 6, 12, 0), "PF")
    assert slot == paris(2026, 1, 6, 19, 0) == local("Pacific/Tahiti", 2026, 1, 6, 8, 0)
    assert window_close(slot, "PF") == paris(2026, 1, 6, 20, 0)
    assert explain_slot(paris(2026, 1, 6, 12, 0), "PF", slot).endswith(
        "next allowed slot Tuesday 6 January 08:00 Tahiti time (19:00 Paris)"
    )


def test_reunion_window_is_the_intersection_of_both_clocks() -> None:
    monday = paris(2026, 1, 12, 6, 0)  # 09:00 in Réunion, but too early in Paris
    assert earliest_slot(monday, "RE") == paris(2026, 1, 12, 8, 0)
    assert window_close(paris(2026, 1, 12, 10, 0), "RE") == local("Indian/Reunion", 2026, 1, 12, 20)
    assert window_close(paris(2026, 7, 13, 10, 0), "RE") == paris(2026, 7, 13, 18, 0)
    no_hold = WindowPolicy(gateway_hold=False)
    assert earliest_slot(paris(2026, 1, 12, 3, 0), "RE", no_hold) == paris(2026, 1, 12, 5, 0)


# --- policy variants -------------------------------------------------------------------------


def test_policy_end_at_2200() -> None:
    late = WindowPolicy(end=time(22, 0))
    assert is_allowed(paris(2026, 5, 15, 21, 0), "FR", late)
    assert not is_allowed(paris(2026, 5, 15, 21, 0), "FR")
    assert earliest_slot(paris(2026, 5, 15, 21, 51), "FR", late) == paris(2026, 5, 15, 21, 55)
    assert earliest_slot(paris(2026, 5, 15, 21, 58), "FR", late) == paris(2026, 5, 16, 8, 0)


def test_policy_allowing_sundays() -> None:
    sunday = paris(2026, 5, 17, 10, 0)
    assert not is_allowed(sunday, "FR")
    assert is_allowed(sunday, "FR", WindowPolicy(weekdays=ALL_DAYS))


def test_policy_ignoring_holidays() -> None:
    ascension = paris(2026, 5, 14, 10, 0)
    assert not is_allowed(ascension, "FR")
    assert is_allowed(ascension, "FR", WindowPolicy(holidays=False))
    assert holiday_name(date(2026, 5, 14), "FR", WindowPolicy(holidays=False)) == "Ascension"


def test_horizon_is_inclusive_and_configurable() -> None:
    sunday_0800 = paris(2026, 5, 17, 8, 0)
    assert earliest_slot(sunday_0800, "FR", WindowPolicy(horizon_days=1)) == paris(2026, 5, 18, 8)
    sunday_0759 = sunday_0800 - timedelta(minutes=1)
    assert earliest_slot(sunday_0759, "FR", WindowPolicy(horizon_days=1)) is None
    assert earliest_slot(sunday_0759, "FR") == paris(2026, 5, 18, 8)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="before its end"):
        WindowPolicy(start=time(20, 0), end=time(8, 0))
    with pytest.raises(ValueError, match="weekdays"):
        WindowPolicy(weekdays=frozenset({7}))
    policy = WindowPolicy(weekdays={0, 1, 2})  # type: ignore[arg-type]
    assert hash(policy) == hash(WindowPolicy(weekdays=frozenset({0, 1, 2})))


# --- contract errors --------------------------------------------------------------------------


def test_naive_datetime_and_unknown_territory_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        earliest_slot(datetime(2026, 5, 15, 10, 0), "FR")
    with pytest.raises(ValueError, match="timezone-aware"):
        is_allowed(datetime(2026, 5, 15, 10, 0), "FR")
    with pytest.raises(ValueError, match=r"unknown territory 'BE'.*FR, GP"):
        earliest_slot(paris(2026, 5, 15, 10, 0), "BE")
    with pytest.raises(ValueError, match="unknown territory"):
        is_allowed(paris(2026, 5, 15, 10, 0), "fr")
    with pytest.raises(ValueError, match="unknown territory"):
        plan_slot(paris(2026, 5, 15, 10, 0), "Belgium")
    with pytest.raises(ValueError, match="lead must be positive"):
        plan_slot(paris(2026, 5, 15, 10, 0), "FR", lead=timedelta(0))


def test_result_is_in_paris_whatever_the_input_zone() -> None:
    after = local("Indian/Reunion", 2026, 5, 15, 12, 0)
    slot = earliest_slot(after, "RE")
    assert slot is not None and slot.tzinfo is PARIS and slot == after


# --- plan_slot, explanations, API fields ------------------------------------------------------


def test_plan_slot_sends_now_when_the_window_has_room() -> None:
    decision = plan_slot(paris(2026, 5, 15, 10, 0), "FR", fanout=timedelta(minutes=30))
    assert decision.at_once and decision.slot is None
    assert "sending now" in decision.explanation


def test_plan_slot_schedules_when_the_fanout_would_cross_the_close() -> None:
    now = paris(2026, 5, 15, 19, 20, 13)
    decision = plan_slot(now, "FR", fanout=timedelta(minutes=30))
    assert not decision.at_once
    # The window is still open: the scheduled slot may be later the same evening.
    assert decision.slot == paris(2026, 5, 15, 19, 35)
    assert "too soon to send everything at once" in decision.explanation


def test_plan_slot_at_once_boundary_is_fanout_plus_margin_before_the_close() -> None:
    # Window closes at 20:00; 30 min of fan-out + 15 min of margin fit exactly from 19:15.
    fits = plan_slot(paris(2026, 5, 15, 19, 15), "FR", fanout=timedelta(minutes=30))
    assert fits.at_once
    late = plan_slot(paris(2026, 5, 15, 19, 15, 1), "FR", fanout=timedelta(minutes=30))
    assert not late.at_once and late.slot == paris(2026, 5, 15, 19, 30)


def test_plan_slot_without_immediate_keeps_the_lead() -> None:
    now = paris(2026, 5, 15, 10, 0, 1)
    decision = plan_slot(now, "FR", allow_immediate=False, lead=timedelta(minutes=10))
    assert decision.slot == paris(2026, 5, 15, 10, 15)


def test_plan_slot_for_a_foreign_number_uses_the_paris_window() -> None:
    decision = plan_slot(paris(2026, 5, 14, 10, 0), "BE", WindowPolicy(gateway_hold=False))
    assert decision.slot == paris(2026, 5, 15, 8, 0)
    assert decision.explanation.startswith("foreign number (BE): the Paris window applies")
    assert "Ascension" in decision.explanation


def test_explanations_an_operator_can_read() -> None:
    ascension = paris(2026, 5, 14, 10, 0)
    assert explain_slot(ascension, "FR", earliest_slot(ascension, "FR")) == (
        "Thursday 14 May is Ascension Day (Ascension); "
        "next allowed slot Friday 15 May 08:00 (Paris)"
    )
    sunday = paris(2026, 3, 15, 10, 0)
    assert (
        explain_slot(sunday, "FR", earliest_slot(sunday, "FR"))
        == "Sunday: no marketing SMS; next allowed slot Monday 16 March 08:00 (Paris)"
    )
    cayenne = local("America/Cayenne", 2026, 6, 10, 9, 0)
    text = explain_slot(cayenne, "GF", earliest_slot(cayenne, "GF"))
    assert text == (
        "Wednesday 10 June is Abolition of Slavery (Abolition de l'esclavage) in French Guiana; "
        "next allowed slot Thursday 11 June 08:00 Cayenne time (13:00 Paris)"
    )
    early = paris(2026, 1, 12, 6, 0)
    assert explain_slot(early, "RE", earliest_slot(early, "RE")).startswith(
        "gateway hold: 06:00 in Paris is before the 08:00-20:00 window"
    )


@pytest.mark.parametrize(
    ("slot", "expected"),
    [
        (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), ("01/07/2026", 8, 0)),
        (datetime(2026, 1, 2, 18, 55, tzinfo=UTC), ("02/01/2026", 19, 55)),
        (local("Indian/Reunion", 2026, 12, 1, 12, 5), ("01/12/2026", 9, 5)),
    ],
)
def test_api_schedule_fields_are_paris_date_hour_minute(
    slot: datetime, expected: tuple[str, int, int]
) -> None:
    fields = to_api_schedule(slot)
    assert (fields["scheduledDeliveryDate"], fields["time"], fields["minute"]) == expected


def test_api_schedule_refuses_what_the_gateway_cannot_read() -> None:
    with pytest.raises(ValueError, match="5-minute boundary"):
        to_api_schedule(paris(2026, 5, 15, 8, 3))
    with pytest.raises(ValueError, match="5-minute boundary"):
        to_api_schedule(paris(2026, 5, 15, 8, 5, 30))
    with pytest.raises(ValueError, match="timezone-aware"):
        to_api_schedule(datetime(2026, 5, 15, 8, 5))


# --- one home for the planning horizon --------------------------------------------------------


def _cli_horizon() -> int:
    from flows.survey_campaign import parse_args

    return int(parse_args(["--survey-id", "s", "--recipients", "r.csv"]).horizon_days)


def _form_horizon() -> int:
    from flows.parameters import DeliveryWindow

    return DeliveryWindow().horizon_days


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda: WindowPolicy().horizon_days, id="window policy"),
        pytest.param(lambda: DEFAULT_POLICY.horizon_days, id="default policy"),
        pytest.param(_form_horizon, id="UI form"),
        pytest.param(_cli_horizon, id="command line"),
    ],
)
def test_every_planning_horizon_default_is_the_one_in_slots(where: Any) -> None:
    assert where() == HORIZON_DAYS == 14  # README: "--horizon-days N ... (14)"
