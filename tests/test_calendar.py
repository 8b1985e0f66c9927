"""protocol.calendar: YYYYMMDD days, HHMMSS times, packed-BCD dates and periods, as the host side reads them."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import calendar

DAYS = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))


def test_a_day_is_a_yyyymmdd_int():
    assert calendar.from_date(dt.date(2026, 1, 5)) == 20260105
    assert calendar.to_date(20260105) == dt.date(2026, 1, 5)
    assert calendar.iso(20260105) == "2026-01-05"


@pytest.mark.parametrize("bad", [20260229, 20261301, 20260100, 20260431, 0])
def test_only_real_calendar_days_are_valid(bad):
    assert not calendar.valid_date(bad) and calendar.as_date(bad) is None
    with pytest.raises(ValueError):
        calendar.to_date(bad)


def test_leap_days_are_real():
    assert calendar.valid_date(20240229) and calendar.next_day(20240228) == 20240229
    assert calendar.next_day(20240229) == 20240301 and calendar.next_day(20261231) == 20270101


@given(DAYS, st.integers(-4000, 4000))
def test_day_arithmetic_agrees_with_datetime(day, n):
    d = calendar.from_date(day)
    assert calendar.add_days(d, n) == calendar.from_date(day + dt.timedelta(days=n))
    assert calendar.days_between(d, calendar.add_days(d, n)) == n
    assert calendar.to_date(d) == day and calendar.iso(d) == day.isoformat()


def test_each_day_lists_every_day_both_ends_included():
    assert list(calendar.each_day(20240227, 20240302)) == [20240227, 20240228, 20240229, 20240301, 20240302]
    assert list(calendar.each_day(20260105, 20260105)) == [20260105]
    assert list(calendar.each_day(20260106, 20260105)) == []


@pytest.mark.parametrize("text, day", [("2026-01-05", 20260105), (" 20260105 ", 20260105), ("2026-1-5", 20260105)])
def test_parse_day_reads_iso_or_compact(text, day):
    assert calendar.parse_day(text) == day


@pytest.mark.parametrize("bad", ["2026-02-30", "05.01.2026", "", "tomorrow"])
def test_parse_day_refuses_what_is_not_a_day(bad):
    with pytest.raises(ValueError):
        calendar.parse_day(bad)


def test_times_are_hhmmss_ints():
    assert calendar.time_text(93000) == "09:30:00" and calendar.hour_of(235959) == 23
    assert calendar.valid_time(0) and calendar.valid_time(235959)
    assert not any(calendar.valid_time(t) for t in (240000, 236000, 235960, -1))


@given(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31, 23, 59, 59)))
def test_a_moment_is_a_day_and_a_time(moment):
    moment = moment.replace(microsecond=0)
    d, t = calendar.from_datetime(moment)
    assert calendar.valid_date(d) and calendar.valid_time(t)
    assert calendar.to_datetime(d, t) == moment


def test_bcd_date_is_ccyymmdd_packed():
    assert calendar.date_to_bcd(dt.date(2024, 3, 15)) == b"\x20\x24\x03\x15"
    assert calendar.bcd_to_date(b"\x20\x24\x03\x15") == dt.date(2024, 3, 15)
    assert calendar.bcd_day(b"\x20\x26\x01\x05") == 20260105


@pytest.mark.parametrize("bad", [b"\x20\x24\x13\x0a", b"\x20\x24\x02\x30", b"\x20\x24\x03"])
def test_bcd_dates_that_are_not_days_are_refused(bad):
    with pytest.raises(ValueError):
        calendar.bcd_to_date(bad)
    assert calendar.bcd_day(bad) is None


@given(DAYS)
def test_bcd_round_trip(day):
    raw = calendar.date_to_bcd(day)
    assert len(raw) == 4 and calendar.bcd_to_date(raw) == day
    assert calendar.bcd_day(raw) == calendar.from_date(day)


@pytest.mark.parametrize("day, months, last", [(20260115, calendar.MONTHLY, 20260131),
                                               (20240210, calendar.MONTHLY, 20240229),
                                               (20261231, calendar.MONTHLY, 20261231),
                                               (20260115, calendar.QUARTERLY, 20260331),
                                               (20260501, calendar.QUARTERLY, 20260630),
                                               (20261001, calendar.QUARTERLY, 20261231)])
def test_a_period_ends_on_the_last_day_of_its_month_or_quarter(day, months, last):
    assert calendar.period_last_day(day, months) == last


def test_day_of_next_month_crosses_the_year():
    assert calendar.day_of_next_month(20260131, 15) == 20260215
    assert calendar.day_of_next_month(20261231, 15) == 20270115


def test_seconds_of_day_counts_from_midnight():
    assert [calendar.seconds_of_day(t) for t in (0, 59, 100, 10000, 235959)] == [0, 59, 60, 3600, 86399]
