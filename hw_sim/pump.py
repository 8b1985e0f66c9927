"""The simulator's pump thread: it waits on the firmware backend's descriptors (the pty, a process's pipes)
and runs their callbacks until stopped (hw_sim.sim, "who runs when").

    pump = Pump(backend)      # backend.attach(selector) registers (fd, events, callback) entries
    pump.stop()               # wakes the thread, joins it, backend.detach()
    pump.failure              # why the thread ended early (a backend raised Stopped), or None

A backend's callback raises Stopped to say the firmware stopped (the message is the report); any other
exception is the pump's own failure, reported with its traceback.
"""

from __future__ import annotations

import os
import selectors
import threading
import traceback


class Stopped(Exception):
    """The firmware stopped; the message is the report."""


class Pump:
    """The pump thread: waits on the backend's descriptors and runs their callbacks until stopped."""

    def __init__(self, firmware) -> None:
        self.failure: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._firmware = firmware
        firmware.attach(self.sel)
        self._thread = threading.Thread(target=self._run, name="simtill-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                for key, events in self.sel.select():
                    if key.data is None:
                        return
                    key.data(events)
        except Stopped as e:
            self.failure = str(e)
        except Exception:
            self.failure = "the simulator's pump failed:\n" + traceback.format_exc()

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(10)
        self._firmware.detach()
        self.sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def want(sel: selectors.BaseSelector, fd: int, events: int, callback) -> None:
    """Register, modify or unregister `fd` so `sel` waits for exactly `events` (0: not at all)."""
    try:
        key = sel.get_key(fd)
    except (KeyError, ValueError):
        if events:
            sel.register(fd, events, callback)
        return
    if not events:
        sel.unregister(fd)
    elif key.events != events:
        sel.modify(fd, events, callback)
