"""Days and times as the wire, the cards and the journal carry them, for the host side.

    day:   YYYYMMDD as an int (20260105), what every layout's BcdDate decodes to
    time:  HHMMSS as an int (93000 is 09:30:00), BcdTime
    BCD:   CCYYMMDD as 4 packed-BCD bytes (2026-01-05 -> 20 26 01 05), what the card MACs cover

A day is valid when it is a real calendar day (20260229 is not); a time when HH < 24, MM < 60, SS < 60.
Day arithmetic goes through datetime.date, so months and leap years are never reckoned by hand.
Periods are calendar months or quarters (the filing modes): a period ends on the last day of its month
or of its quarter's third month.  The firmware has its own day numbers (MicroPython has no datetime).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache

BCD_DATE_LEN = 4
MONTHLY, QUARTERLY = 1, 3  # period lengths in months


# ---- days as YYYYMMDD ints ------------------------------------------------------------------------------
def to_date(d: int) -> dt.date:
    """The date of a YYYYMMDD int; ValueError unless a real calendar day, TypeError unless a number."""
    return dt.date(d // 10000, d // 100 % 100, d % 100)


def as_date(d: int) -> dt.date | None:
    """The date of a YYYYMMDD int, or None unless a real calendar day."""
    try:
        return to_date(d)
    except ValueError:
        return None


def from_date(d: dt.date) -> int:
    """YYYYMMDD int of a date (or datetime: its date)."""
    return d.year * 10000 + d.month * 100 + d.day


def valid_date(d: int) -> bool:
    """A YYYYMMDD int that is a real calendar day."""
    return as_date(d) is not None


def add_days(d: int, n: int) -> int:
    return from_date(to_date(d) + dt.timedelta(days=n))


def next_day(d: int) -> int:
    return add_days(d, 1)


def days_between(a: int, b: int) -> int:
    """Days from a to b (negative when b is before a)."""
    return (to_date(b) - to_date(a)).days


def each_day(start: int, end: int) -> Iterator[int]:
    """Every calendar day from start to end, both included (nothing when end < start)."""
    d, last = to_date(start), to_date(end)
    while d <= last:
        yield from_date(d)
        d += dt.timedelta(days=1)


def iso(d: int) -> str:
    """'YYYY-MM-DD' of a YYYYMMDD int, digit for digit (not validated: a device's bad date shows as is)."""
    return "%04d-%02d-%02d" % (d // 10000, d // 100 % 100, d % 100)


def parse_day(text: str) -> int:
    """YYYYMMDD int from 'YYYY-MM-DD' or 'YYYYMMDD' (as datetime.strptime reads them); ValueError otherwise."""
    s = str(text).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return from_date(dt.datetime.strptime(s, fmt).date())
        except ValueError:
            pass
    raise ValueError("not a date YYYY-MM-DD: %r" % (text,))


# ---- periods ---------------------------------------------------------------------------------------------
def period_last_day(d: int, months: int) -> int:
    """Last day of the period holding `d`: its month (months=1) or its calendar quarter (months=3)."""
    when = to_date(d)
    month = when.month if months == MONTHLY else (when.month + 2) // 3 * 3
    first_next = dt.date(when.year + 1, 1, 1) if month == 12 else dt.date(when.year, month + 1, 1)
    return from_date(first_next - dt.timedelta(days=1))


def day_of_next_month(d: int, day: int) -> int:
    """Day `day` of the month after the one holding d (20261231, 15 -> 20270115)."""
    when = to_date(d)
    y, m = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
    return from_date(dt.date(y, m, day))


# ---- times as HHMMSS ints -------------------------------------------------------------------------------
def valid_time(t: int) -> bool:
    return 0 <= t and t // 10000 < 24 and t // 100 % 100 < 60 and t % 100 < 60


def hour_of(t: int) -> int:
    return t // 10000


def seconds_of_day(t: int) -> int:
    """Seconds since midnight of an HHMMSS int."""
    return t // 10000 * 3600 + t // 100 % 100 * 60 + t % 100


def time_text(t: int) -> str:
    """'HH:MM:SS' of an HHMMSS int."""
    return "%02d:%02d:%02d" % (t // 10000, t // 100 % 100, t % 100)


def to_datetime(d: int, t: int) -> dt.datetime:
    """The moment of a day and a time; ValueError unless both are valid."""
    return dt.datetime(d // 10000, d // 100 % 100, d % 100, t // 10000, t // 100 % 100, t % 100)


def from_datetime(moment: dt.datetime) -> tuple[int, int]:
    """(YYYYMMDD, HHMMSS) of a moment; seconds' fractions are dropped."""
    return from_date(moment), moment.hour * 10000 + moment.minute * 100 + moment.second


# ---- packed BCD -----------------------------------------------------------------------------------------
def date_to_bcd(d: dt.date) -> bytes:
    """CCYYMMDD as 4 packed-BCD bytes (2024-03-15 -> 20 24 03 15)."""
    return bytes.fromhex(f"{d.year:04d}{d.month:02d}{d.day:02d}")


def bcd_to_date(b: bytes) -> dt.date:
    """Inverse of :func:`date_to_bcd`; ValueError on non-BCD nibbles, a wrong length or an impossible date."""
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise TypeError(f"BCD date must be bytes, not {type(b).__name__}")
    b = bytes(b)
    if len(b) != BCD_DATE_LEN:
        raise ValueError(f"BCD date must be {BCD_DATE_LEN} bytes, got {len(b)}")
    text = b.hex()
    if not text.isdigit():
        raise ValueError(f"not a packed-BCD date: {text}")
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


@lru_cache(maxsize=1024)
def bcd_day(raw: bytes) -> int | None:
    """YYYYMMDD int of packed-BCD bytes, or None unless every nibble is a digit and the day is real."""
    text = raw.hex()
    if not text.isdigit():
        return None
    value = int(text)
    return value if valid_date(value) else None
