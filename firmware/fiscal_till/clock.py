"""Dates and times as the protocol carries them (ints 20261127 and 143005) and calendar arithmetic.

The RTC is any object with `datetime()` returning machine.RTC's 8-tuple
(year, month, day, weekday, hours, minutes, seconds, subseconds).  Day numbers count days since
2000-01-01 (day 0), so "days to deadline" and back-filling closed days are plain subtraction.
"""

_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def valid_date(d):
    y = d // 10000
    m = d // 100 % 100
    day = d % 100
    if y < 2000 or y > 2099 or m < 1 or m > 12 or day < 1:
        return False
    return day <= (29 if m == 2 and is_leap(y) else _MDAYS[m - 1])


def valid_time(t):
    return t // 10000 < 24 and t // 100 % 100 < 60 and t % 100 < 60


def day_number(d):
    """Days from 2000-01-01 to date d (CCYYMMDD int)."""
    y = d // 10000
    m = d // 100 % 100
    n = (y - 2000) * 365 + (y - 1997) // 4 - (y - 1901) // 100 + (y - 1601) // 400
    for i in range(m - 1):
        n += _MDAYS[i]
    if m > 2 and is_leap(y):
        n += 1
    return n + d % 100 - 1


def from_day_number(n):
    y = 2000
    while True:
        yl = 366 if is_leap(y) else 365
        if n < yl:
            break
        n -= yl
        y += 1
    m = 0
    while True:
        ml = 29 if m == 1 and is_leap(y) else _MDAYS[m]
        if n < ml:
            break
        n -= ml
        m += 1
    return y * 10000 + (m + 1) * 100 + n + 1


def now(rtc):
    """(date, time) ints from an RTC."""
    t = rtc.datetime()
    return t[0] * 10000 + t[1] * 100 + t[2], t[4] * 10000 + t[5] * 100 + t[6]
