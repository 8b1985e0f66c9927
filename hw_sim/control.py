"""The simulator's devices seen from the test thread: every call holds the simulator's lock, so a test
never changes a card or the clock in the middle of a firmware step (hw_sim.sim, "who runs when").

    sim.flash = Locked(flash, lock)      every method call and attribute write holds `lock`
    sim.rtc = SimClock(rtc, lock)        the RTC with the setters tests want
"""

from __future__ import annotations

import datetime

from protocol.calendar import to_datetime


class Locked:
    """A device seen from the test thread: every method call and attribute write holds `lock`."""

    def __init__(self, obj, lock) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_lock", lock)

    def __getattr__(self, name: str):
        value = getattr(self._obj, name)
        if not callable(value) or isinstance(value, type):
            return value
        lock = self._lock

        def locked(*args, **kw):
            with lock:
                return value(*args, **kw)
        return locked

    def __setattr__(self, name: str, value) -> None:
        with self._lock:
            setattr(self._obj, name, value)

    def __repr__(self) -> str:
        return "<locked %r>" % (self._obj,)


class SimClock(Locked):
    """sim.rtc: the board's RTC (hw_sim.rtc.SimRTC) with the setters tests want.

    set(20260105, 90000) or set(datetime(...)); advance(seconds) or advance(days=1, hours=2); date: the
    date as YYYYMMDD."""

    def set(self, when, time: int = 0) -> None:
        if isinstance(when, int):
            when = to_datetime(when, time)
        with self._lock:
            self._obj.set(when)

    def advance(self, seconds: float = 0.0, **kw) -> None:
        with self._lock:
            self._obj.advance(seconds + datetime.timedelta(**kw).total_seconds())

    @property
    def date(self) -> int:
        t = self._obj.now()
        return t.year * 10000 + t.month * 100 + t.day
