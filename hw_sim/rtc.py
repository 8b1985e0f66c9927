"""Simulated real-time clocks with machine.RTC's interface: SimRTC, an offset from the host clock (it ticks),
and ManualRTC, which reads what it was set to (tests, the conformance suite).

SimRTC rules:
- reading = host UTC clock + offset, shown as a naive wall-clock time (a till's RTC has no time zone);
- so the clock ticks by itself, and setting it or travelling in time only moves the offset;
- a new clock starts at the host's local wall time;
- the offset is written to `path` (JSON) on every change, so the clock survives a simulator restart the
  way a battery-backed RTC survives power-off.  Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import calendar
import json
import os
import threading
import time
from datetime import datetime as DateTime
from datetime import timedelta
from pathlib import Path

from protocol.calendar import from_date, to_datetime
from protocol.fileio import write_atomic


class SimRTC:
    def __init__(self, path: str | os.PathLike | None = None, clock=time.time) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            try:
                self._offset = float(json.loads(self.path.read_text(encoding="utf-8"))["offset_s"])
            except (ValueError, KeyError, TypeError):
                raise ValueError("%s does not hold an RTC offset; delete it to start the clock afresh"
                                 % self.path) from None
        else:
            self._offset = float(time.localtime().tm_gmtoff)
            self._save()

    @property
    def offset(self) -> float:
        """Seconds between this clock and the host's UTC clock."""
        return self._offset

    def now(self) -> DateTime:
        return DateTime(1970, 1, 1) + timedelta(seconds=self._clock() + self._offset)

    def datetime(self, value: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        """machine.RTC: no argument reads (y, m, d, weekday 0=Monday, h, mi, s, µs); a tuple sets it."""
        if value is None:
            t = self.now()
            return (t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, t.microsecond)
        y, mo, d, _wd, h, mi, s = value[:7]
        sub = value[7] if len(value) > 7 else 0
        self.set(DateTime(y, mo, d, h, mi, s, sub))
        return None

    def set(self, when: DateTime) -> None:
        """Set the clock to a naive wall-clock time; it keeps ticking from there."""
        target = calendar.timegm(when.timetuple()) + when.microsecond / 1e6
        self._move(target - self._clock())

    def advance(self, seconds: float) -> None:
        """Time travel: move the clock by `seconds` (negative goes back, as a flat battery would)."""
        self._move(self._offset + seconds)

    def _move(self, offset: float) -> None:
        with self._lock:
            self._offset = offset
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        write_atomic(self.path, (json.dumps({"offset_s": self._offset}) + "\n").encode("utf-8"),
                     durable=False, mode=0o666, tmp=self.path.with_suffix(".tmp"))


class ManualRTC:
    """A machine.RTC that does not tick: it reads what it was set to, for tests and the conformance
    suite, which must control the till's time exactly whatever the machine's speed.

    rtc = ManualRTC(datetime(2026, 1, 5, 9, 0))    rtc.set(20260105, 93000)    rtc.advance(days=1)
    rtc.t is the time (a naive datetime); rtc.date the date as YYYYMMDD."""

    def __init__(self, when: DateTime = DateTime(2026, 1, 5, 9, 0, 0)) -> None:
        self.t = when

    def datetime(self, value: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        """machine.RTC: no argument reads (y, m, d, weekday 0=Monday, h, mi, s, 0); a tuple sets it."""
        if value is None:
            t = self.t
            return (t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, 0)
        y, mo, d, _wd, h, mi, s = value[:7]
        self.t = DateTime(y, mo, d, h, mi, s)
        return None

    def set(self, date: int, time: int = 90000) -> None:
        """date YYYYMMDD, time HHMMSS (a till opens at nine unless told otherwise)."""
        self.t = to_datetime(date, time)

    def advance(self, **kw) -> None:
        """Move the clock by timedelta(**kw) (days=1, hours=-2 ...)."""
        self.t += timedelta(**kw)

    @property
    def date(self) -> int:
        return from_date(self.t)
