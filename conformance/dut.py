"""Devices under test: one interface, interchangeable backends named in one table (the python-can way).

    dut = open_dut("sim")                      # in-process firmware on simulated hardware (testbed)
    dut = open_dut("mpy", workdir=tmp)         # the firmware under MicroPython (testbed)
    dut = open_dut("serial", "/dev/ttyUSB0")   # a vendor's board: the serial link only
    frames = dut.exchange(frame_bytes)         # bytes out, reply frames in (with evidence logged)

The backends are the entry points of group `fiscal_toolkit.duts` (pyproject.toml), loaded only when named,
so a third party adds one by declaring an entry point and this package imports no simulator.  A backend is
a callable `(profile=None, *, workdir=None, ...) -> Dut`; `workdir` is a folder it may keep state in.

The public methods (`exchange`, `request`, the controls) keep the evidence log and check capabilities;
each backend implements small hooks (`_exchange`, `_set_clock`, `_bureau` ...).  A case that needs a
capability the device lacks is reported "not tested" by the runner, never "passed".

Capabilities:
    reset        a fresh factory-state device for every case (new simulator state)
    power        power_cycle(): cut the power and boot again on the same state
    power_loss   cut_power_at(step): the power fails inside the next request, at a given HAL step
    clock        set_clock(date, time), advance(): the lab controls the RTC
    cards        insert / remove / pull cards in the two slots (simulated cards or a lab jig)
    bureau       the bureau's side of the user card (sell rolls, clear declarations) with its keys: `Bureau`
    flash        damage_flash(spec): fiscal memory damaged while the device is off, then a boot (a case's
                 `flash:` step: flip_init, truncate: N, erase_last_sector, format_cut: N with tear)
    boot_power_loss  a power cut inside the boot itself (format_cut)
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from protocol import commands
from protocol import frame
from protocol.rules import THRESHOLDS

CAPABILITIES = ("reset", "power", "power_loss", "clock", "cards", "bureau", "flash", "boot_power_loss")
HANG_GUARD_S = 600.0  # one exchange never waits longer, keep-alives or not
ENTRY_POINTS = "fiscal_toolkit.duts"  # the table of DUT backends (pyproject.toml)
OTHER_FISCAL_CARD_NO = bytes.fromhex("3201000000000099")  # rolls "made for another fiscal card"
_MUTATING = frozenset(c.code for c in commands.COMMANDS if c.mutating)


class DutError(Exception):
    """The device cannot do what a step asked (missing capability, device off, link failure)."""


class PowerCut(Exception):
    """The power failed inside a request, as scheduled: no reply came."""


@dataclass
class Profile:
    """What the suite must know about the device's issued cards and declared thresholds (the lab's
    certification profile; the simulators use the demo card set of testbed.demo_cards).  The warning and
    service-life thresholds default to the rules catalogue's (protocol/rules.py)."""
    machine_no: str = "1234567890123456"
    fiscal_card_no: bytes = bytes.fromhex("3201000000000001")
    taxpayer_no: str = "91440101MA5CXXXX1X"
    deadline: int = 20260131
    single_limit: int = 1_000_000
    cumulative_limit: int = 50_000_000
    return_limit: int = 2_000_000
    tax_items: tuple = (1, 2)
    card_valid_from: int = 20260101
    card_valid_to: int = 20301231
    warn_days: int = THRESHOLDS["WARN_DEADLINE_DAYS"]
    warn_invoices: int = THRESHOLDS["WARN_ROLL_INVOICES"]
    service_years: int = THRESHOLDS["SERVICE_LIFE_YEARS"]
    non_fiscal: bool = True
    roll_code: str = "1440012345"


class ControlLimits(NamedTuple):
    """Clear-unlock control data the bureau writes: the new invoice deadline (YYYYMMDD), limits in fen."""
    deadline: int
    single_limit: int
    cumulative_limit: int
    return_limit: int


class Bureau:
    """The bureau's side of the user card in the device's user slot, as the suite needs it: one
    authenticated session with the keys of the device's cards (capability `bureau`).  The simulator
    backends implement it with the bureau's own library (testbed.duts); a lab's jig with its own."""

    def sell_roll(self, code: str, start: int, end: int, *, genuine: bool = True) -> None:
        """Write a roll of invoices start..end for this till to the user card.  genuine=False: a roll made
        for another fiscal card (OTHER_FISCAL_CARD_NO), so its MAC fails on this till."""
        raise NotImplementedError

    def verify_pending(self) -> list:
        """[(record number, report)] of the declarations pending on the user card, each verified; a report
        has `ok` and `problems`."""
        raise NotImplementedError

    def clear(self, recno: int, report, limits: ControlLimits) -> None:
        """Clear-unlock data answering a verified pending declaration; the declaration marked cleared."""
        raise NotImplementedError

    def rewrite_clear(self, limits: ControlLimits, forgery: int = 0) -> None:
        """Control data for the last declaration written again (a replay); forgery n > 0: the n-th byte
        from the record's end (its MAC2) flipped."""
        raise NotImplementedError

    def mark_cleared(self) -> None:
        """Every pending declaration marked cleared, without new control data."""
        raise NotImplementedError


@dataclass
class Evidence:
    """One exchange on the link: what was sent and what came back, hex."""
    sent: str
    received: list = field(default_factory=list)
    note: str = ""


class Dut:
    """The device-under-test interface.  Backends override the `_hooks`."""

    name = "dut"
    capabilities: frozenset = frozenset()

    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile or Profile()
        self.evidence: list[Evidence] = []
        self.timeout = 5.0
        self.hang_guard = HANG_GUARD_S
        self.keepalives = 0  # keep-alive frames of our requests seen
        self.rid_floor = 0  # the largest request id this device has executed as far as we know
        self._silence: float | None = None  # request(timeout=...): the silence this host allows

    # ---- the link -----------------------------------------------------------------------------------
    def exchange(self, data: bytes, *, expect: int = 1, timeout: float | None = None, note: str = "") -> list[dict]:
        """Send raw bytes; collect reply frames until `expect` arrived or the timeout.  PowerCut if the
        device lost power on the way."""
        ev = Evidence(data.hex(), [], note)
        self.evidence.append(ev)
        frames = self._exchange(data, expect, self.timeout if timeout is None else timeout)
        ev.received = [frame.reply(f["command"], f["rid"], f["status"], f["payload"]).hex() for f in frames]
        return frames

    def request(self, command: int, rid: int, payload: bytes, *, timeout: float | None = None) -> dict | None:
        """One request; its reply frame (kind/command/rid/status/payload) or None if none came."""
        self._silence = timeout
        try:
            frames = self.exchange(frame.request(command, rid, payload), timeout=timeout)
        finally:
            self._silence = None
        for f in frames:
            if f["kind"] == frame.KIND_REPLY and f["rid"] == rid and f["command"] == command:
                if command in _MUTATING:
                    self.rid_floor = max(self.rid_floor, rid)
                elif command == 0x02 and f["status"] == 0:
                    try:
                        self.rid_floor = max(self.rid_floor, commands.StatusReply.parse(f["payload"]).last_rid)
                    except Exception:  # noqa: BLE001 - a malformed status is the case's business
                        pass
                return f
        return None

    def _collect(self, read, data: bytes, expect: int, timeout: float) -> list[dict]:
        """Reply frames read with `read()` until `expect` arrived.  `timeout` is the silence allowed: a
        keep-alive for a request in `data` (same COMMAND and RID) restarts it; `hang_guard` bounds the
        whole wait.  Keep-alives are never replies and are not returned."""
        pending = {(f["command"], f["rid"]) for f in frame.FrameReceiver().feed(data)
                   if f["kind"] == frame.KIND_REQUEST}
        out: list[dict] = []
        start = _time.monotonic()
        guard = start + max(self.hang_guard, timeout)
        deadline = start + timeout
        while len(out) < expect and _time.monotonic() < min(deadline, guard):
            for f in self.receiver.feed(read()):
                if f["kind"] == frame.KIND_REPLY:
                    out.append(f)
                elif f["kind"] == frame.KIND_KEEPALIVE and (f["command"], f["rid"]) in pending:
                    self.keepalives += 1
                    deadline = _time.monotonic() + timeout
        return out

    def _exchange(self, data: bytes, expect: int, timeout: float) -> list[dict]:
        raise NotImplementedError

    # ---- controls: each checks the capability, then calls the hook ----------------------------------
    def need(self, cap: str) -> None:
        if cap not in self.capabilities:
            raise DutError("%s has no %s capability" % (self.name, cap))

    def set_clock(self, date: int, time: int = 90000) -> None:
        self.need("clock")
        self._set_clock(date, time)

    def advance(self, **kw) -> None:
        self.need("clock")
        self._advance(_dt.timedelta(**kw))

    def power_cycle(self) -> None:
        self.need("power")
        self._power_cycle()

    def cut_power_at(self, step: int, after: bool = False) -> None:
        """The power fails at HAL step `step` of the next request (before it, or just after it)."""
        self.need("power_loss")
        self._cut_power_at(step, after)

    def damage_flash(self, spec: dict) -> None:
        """Switch off, damage fiscal memory as `spec` says (a case's `flash:` step; the simulators do it
        with testbed/flash_damage.py), switch on."""
        self.need("flash")
        self._damage_flash(spec)

    def card_remove(self, slot: str):
        self.need("cards")
        return self._slot(slot).remove()

    def card_insert(self, slot: str, which: str) -> None:
        """which: fiscal | user | management | foreign_fiscal | reissued_fiscal | foreign_user |
        expired_management | twin_fiscal | user_refused_roll (docs/CONFORMANCE.md)"""
        self.need("cards")
        s = self._slot(slot)
        if s.present():
            s.remove()
        s.insert(self._card(which))

    def card_pull_after(self, slot: str, n: int = 0, executed: bool = False) -> None:
        self.need("cards")
        self._slot(slot).pull_after(n, executed=executed)

    def bureau(self) -> Bureau:
        """An authenticated bureau session on the card in the user slot."""
        self.need("bureau")
        return self._bureau()

    def test_keys(self) -> bool | None:
        """Whether the bureau keys the suite holds for this device are the published TEST keys (None: it
        holds none)."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # hooks
    def _set_clock(self, date, time):
        raise DutError("no clock control")

    def _advance(self, delta):
        raise DutError("no clock control")

    def _power_cycle(self):
        raise DutError("no power control")

    def _cut_power_at(self, step, after):
        raise DutError("no power-loss control")

    def _damage_flash(self, spec):
        raise DutError("no flash control")

    def _slot(self, slot):
        raise DutError("no card control")

    def _card(self, which):
        raise DutError("no card control")

    def _bureau(self) -> Bureau:
        raise DutError("no bureau side")


# ---------------------------------------------------------------------------------------------- serial
class SerialDut(Dut):
    """A vendor's board on a serial port or any pyserial URL: the link only, no controls."""

    capabilities = frozenset()
    persistent = True  # one board for the whole run: the runner closes it at the end

    def __init__(self, url: str, profile: Profile | None = None, *, baudrate: int = 115200) -> None:
        super().__init__(profile)
        import serial
        self.name = url
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.02)
        except (serial.SerialException, OSError, ValueError) as e:
            raise DutError("cannot open %s: %s" % (url, e)) from None
        self.receiver = frame.FrameReceiver()
        # one board for the whole run, which may have executed requests before it: cases resume their
        # request ids above its last executed one (GET_STATUS.last_rid; read-only, any id will do)
        try:
            self.request(0x02, 1, b"")
        except (OSError, ValueError):
            pass

    def _exchange(self, data, expect, timeout):
        self.port.write(data)
        self.port.flush()
        return self._collect(lambda: self.port.read(self.port.in_waiting or 1), data, expect, timeout)

    def close(self) -> None:
        self.port.close()


# ---------------------------------------------------------------------------------------------- the table
def backend_names() -> list[str]:
    """The names of the DUT backends installed (entry points of group `fiscal_toolkit.duts`)."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINTS)})


def _backend(name: str):
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINTS) if ep.name == name]
    if not found:
        raise DutError("there is no DUT backend %r; the known ones are %s, or give a serial port or pyserial URL"
                       % (name, ", ".join(backend_names())))
    return found[0].load()


def open_dut(name: str, *args, **options) -> Dut:
    """One device of backend `name` (its entry point loaded now, not before)."""
    return _backend(name)(*args, **options)


def _is_port(spec: str) -> bool:
    """A serial port or pyserial URL rather than a backend name: a path, a URL, or a COM port."""
    return "/" in spec or "\\" in spec or ":" in spec or spec.upper().startswith("COM")


def dut_factory(spec: str, *, workdir: str | Path | None = None, profile: Profile | None = None):
    """A function making a device for one case: a backend's name (backend_names()), or a serial port or
    pyserial URL, which is one board opened once for the whole run."""
    if spec not in backend_names() and _is_port(spec):
        return _one_board(_backend("serial"), spec, profile)
    make = _backend(spec)
    if getattr(make, "persistent", False):
        raise DutError("the %s backend needs the port itself: --dut /dev/ttyUSB0 or a pyserial URL" % spec)
    return lambda: make(profile, workdir=workdir)


def _one_board(make, url: str, profile: Profile | None):
    shared: list = []

    def board():  # one board, one open port, for the whole run
        if not shared:
            shared.append(make(url, profile))
        return shared[0]
    return board
