"""Devices under test: one interface, interchangeable backends (the python-can way).

    dut = open_dut("sim")                      # in-process firmware on simulated hardware
    dut = open_dut("mpy", workdir=tmp)         # the firmware under MicroPython (hw_sim.sim.SimTill)
    dut = open_dut("/dev/ttyUSB0")             # a vendor's board: the serial link only
    frames = dut.exchange(frame_bytes)         # bytes out, reply frames in (with evidence logged)

The public methods (`exchange`, `request`, the controls) keep the evidence log and check capabilities;
each backend implements small hooks (`_write`, `_read_frames`, `_set_clock` ...).  A case that needs a
capability the device lacks is reported "not tested" by the runner, never "passed".

Capabilities:
    reset        a fresh factory-state device for every case (new simulator state)
    power        power_cycle(): cut the power and boot again on the same state
    power_loss   cut_power_at(step): the power fails inside the next request, at a given HAL step
    clock        set_clock(date, time), advance(): the lab controls the RTC
    cards        insert / remove / pull cards in the two slots (simulated cards or a lab jig)
    bureau       the bureau's side of the user card (sell rolls, clear declarations) with its keys
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

from protocol import frame
from hw_sim.mains import Mains, Stepped

CAPABILITIES = ("reset", "power", "power_loss", "clock", "cards", "bureau", "flash")


class DutError(Exception):
    """The device cannot do what a step asked (missing capability, device off, link failure)."""


class PowerCut(Exception):
    """The power failed inside a request, as scheduled: no reply came."""


@dataclass
class Profile:
    """What the suite must know about the device's issued cards and declared thresholds (the lab's
    certification profile; the simulators use the demo card set of hw_sim.cards.demo)."""
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
    warn_days: int = 7
    warn_invoices: int = 20
    service_years: int = 5
    non_fiscal: bool = True
    roll_code: str = "1440012345"


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
        frames = self.exchange(frame.request(command, rid, payload), timeout=timeout)
        for f in frames:
            if f["kind"] == frame.KIND_REPLY and f["rid"] == rid and f["command"] == command:
                return f
        return None

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
        """Switch off, damage fiscal memory as `spec` says (conformance/flash_damage.py), switch on."""
        self.need("flash")
        self._damage_flash(spec)

    def card_remove(self, slot: str):
        self.need("cards")
        return self._slot(slot).remove()

    def card_insert(self, slot: str, which: str) -> None:
        """which: fiscal | user | management | foreign_fiscal | reissued_fiscal | foreign_user"""
        self.need("cards")
        s = self._slot(slot)
        if s.present():
            s.remove()
        s.insert(self._card(which))

    def card_pull_after(self, slot: str, n: int = 0, executed: bool = False) -> None:
        self.need("cards")
        self._slot(slot).pull_after(n, executed=executed)

    def bureau(self):
        """An authenticated bureau session on the card in the user slot (gateway.usercard)."""
        self.need("bureau")
        from gateway.readers import SimReader
        from gateway.usercard import UserCardSession
        s = UserCardSession(SimReader(self._slot("user")), self.keystore())
        s.open()
        s.authenticate()
        return s

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

    def keystore(self):
        raise DutError("no bureau keys")


# ---------------------------------------------------------------------------------------------- demo cards
class _DemoCards:
    """The demo card set and the odd cards the security cases insert."""

    def __init__(self, machine_no: str, seed: int = 1) -> None:
        from hw_sim.cards import demo
        self.demo = demo
        self.machine_no = machine_no
        self.set = demo.demo_cards(seed, management_pin=None)

    def card(self, which: str):
        from gateway import issuance as I
        from hw_sim.cards.fiscal import FiscalCard
        from hw_sim.cards.user import UserCard
        d, s = self.demo, self.set
        if which == "fiscal":
            return s.fiscal
        if which == "user":
            return s.user
        if which == "management":
            return s.management
        if which == "reissued_fiscal":  # the same card personalised again: not registered
            return FiscalCard.issued(s.fiscal_data)
        if which == "foreign_fiscal":
            other = I.issue_fiscal_card(s.keystore, taxpayer=d.TAXPAYER, machine_no="9999999999999999",
                                        card_no=bytes.fromhex("3201000000000099"), user_card_no=d.USER_CARD_NO,
                                        valid_from=d.VALID_FROM, valid_to=d.VALID_TO, limits=d.LIMITS,
                                        tax_items=d.TAX_ITEMS)
            return FiscalCard.issued(other)
        if which == "foreign_user":
            other = I.issue_user_card(s.keystore, taxpayer=I.Taxpayer(
                taxpayer_no="91110000XXXXXXXX9X", taxpayer_id="110000000000009", name="别家 (TEST)",
                bureau_code="111000000000"), card_no=bytes.fromhex("1101100000000009"),
                tills=[("8888888888888888", bytes.fromhex("1101000000000009"))],
                valid_from=d.VALID_FROM, valid_to=d.VALID_TO, tax_items=d.TAX_ITEMS)
            return UserCard.issued(other)
        raise DutError("unknown card %r" % which)


# ---------------------------------------------------------------------------------------------- in-process
class _Clock:
    """A machine.RTC the suite controls exactly (it does not tick)."""

    def __init__(self) -> None:
        self.t = _dt.datetime(2026, 1, 5, 9, 0, 0)

    def datetime(self, value=None):
        if value is None:
            t = self.t
            return (t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, 0)
        y, m, d, _wd, h, mi, s = value[:7]
        self.t = _dt.datetime(y, m, d, h, mi, s)


class InProcessDut(Dut):
    """The firmware (fiscal_till) on CPython in this process, on hw_sim devices: NOR flash, card slots
    with the demo cards, RAM nvram and a clock the suite sets.  `patch` is applied around every firmware
    call (the mutants use it)."""

    name = "sim"
    capabilities = frozenset(CAPABILITIES)

    def __init__(self, profile: Profile | None = None, *, seed: int = 1, flash_sectors: int = 512) -> None:
        super().__init__(profile)
        from fiscal_till.nvram import RamNvram
        from hw_sim.cards.slot import CardSlot
        from hw_sim.nor_flash import NorFlash
        self.cards = _DemoCards(self.profile.machine_no, seed)
        self.flash = NorFlash(sector_count=flash_sectors, sector_size=4096)
        self.slots = {"fiscal": CardSlot(self.cards.set.fiscal, name="fiscal"),
                      "user": CardSlot(self.cards.set.user, name="user")}
        self.rtc = _Clock()
        self.nvram = RamNvram()
        self.mains = Mains()
        self.server = None
        self._boot()

    def _board(self):
        from fiscal_till.hal import Board
        m = self.mains
        return Board(rtc=self.rtc, flash=Stepped(self.flash, m, {"writeblocks", "ioctl"}),
                     fiscal_slot=Stepped(self.slots["fiscal"], m, {"transmit"}),
                     user_slot=Stepped(self.slots["user"], m, {"transmit"}),
                     nvram=Stepped(self.nvram, m, {"put", "delete"}), printer=None,
                     identity={"machine_no": self.profile.machine_no, "model": "FTK-1 SIM",
                               "non_fiscal": self.profile.non_fiscal})

    def _boot(self) -> None:
        from fiscal_till.device import Till
        from fiscal_till.server import LinkServer
        from hw_sim.nor_flash import PowerLoss
        for slot in self.slots.values():
            slot.power_off()
        self.mains.off = False
        self.mains.at = None
        try:
            self.server = LinkServer(Till(self._board()))
        except PowerLoss:
            self.server = None

    def firmware(self):
        return self.server.till if self.server else None

    def _exchange(self, data, expect, timeout):
        from hw_sim.nor_flash import PowerLoss
        if self.server is None:
            raise PowerCut("the device is off")
        out = []
        try:
            for i in range(0, len(data), 1024):
                self.server.feed(data[i:i + 1024])
                while (r := self.server.poll()) is not None:
                    out.append(frame.parse_frame(bytes(r)))
        except PowerLoss:
            self.server = None
            raise PowerCut("power failed during the request") from None
        return out

    def _set_clock(self, date, time):
        self.rtc.t = _dt.datetime(date // 10000, date // 100 % 100, date % 100, time // 10000,
                                  time // 100 % 100, time % 100)

    def _advance(self, delta):
        self.rtc.t += delta

    def _power_cycle(self):
        self.server = None
        self._boot()

    def _cut_power_at(self, step, after):
        self.mains.at = self.mains.steps + step
        self.mains.after = after

    def _damage_flash(self, spec):
        from conformance import flash_damage
        self.server = None
        cut = flash_damage.apply(self.flash, self.nvram.data.clear, spec)
        if cut is not None:
            self.flash.cut_after(*cut)
            self._boot()  # the first-boot format, cut
            self.flash.power_on()
        self._boot()

    def _slot(self, slot):
        return self.slots[slot]

    def _card(self, which):
        return self.cards.card(which)

    def keystore(self):
        return self.cards.set.keystore


# ---------------------------------------------------------------------------------------------- SimTill
class SimTillDut(Dut):
    """hw_sim.sim.SimTill over its pty: interpreter "micropython" (the real firmware image) or
    "cpython".  A fresh state folder per device."""

    def __init__(self, profile: Profile | None = None, *, interpreter: str = "micropython",
                 workdir: str | Path | None = None) -> None:
        super().__init__(profile)
        from hw_sim.sim import SimTill
        self.name = "mpy" if interpreter == "micropython" else "simtill"
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fc-dut-")
            workdir = self._tmp.name
        state = Path(workdir) / ("till-%d" % _time.monotonic_ns())
        self.sim = SimTill(state, interpreter)
        caps = {"reset", "power", "clock", "bureau", "flash"}
        if hasattr(self.sim, "fiscal_slot") and hasattr(self.sim, "user_slot"):
            caps.add("cards")
        self.capabilities = frozenset(caps)
        import serial
        self.port = serial.serial_for_url(self.sim.port, baudrate=115200, timeout=0.02)
        self.receiver = frame.FrameReceiver()
        self.cards = _DemoCards(self.profile.machine_no)
        # the simulator's own management card has an inspector PIN the link cannot carry; the suite's
        # demo management card (same TEST keys, no PIN) stands in for it
        self._own = {"fiscal": self.sim.fiscal_slot.card, "user": self.sim.user_slot.card}
        self.timeout = 10.0

    def _exchange(self, data, expect, timeout):
        if not self.sim.powered:
            raise PowerCut("the device is off")
        self.port.write(data)
        self.port.flush()
        out: list[dict] = []
        deadline = _time.monotonic() + timeout
        while len(out) < expect and _time.monotonic() < deadline:
            chunk = self.port.read(self.port.in_waiting or 1)
            if not chunk and not self.sim.powered:
                raise PowerCut("power failed during the request")
            out += [f for f in self.receiver.feed(chunk) if f["kind"] == frame.KIND_REPLY]
        return out

    def _set_clock(self, date, time):
        self.sim.rtc.set(date, time)

    def _advance(self, delta):
        self.sim.rtc.advance(delta.total_seconds())

    def _power_cycle(self):
        self.sim.power_cycle()
        self.receiver = frame.FrameReceiver()
        self.port.reset_input_buffer()

    def _damage_flash(self, spec):
        from conformance import flash_damage
        if "format_cut" in spec:
            raise DutError("no power-loss control inside the boot")
        with self.sim.lock:  # the firmware is idle between requests; it boots again on the result
            flash_damage.apply(self.sim._flash, None, spec)
        self._power_cycle()

    def _slot(self, slot):
        return self.sim.fiscal_slot if slot == "fiscal" else self.sim.user_slot

    def _card(self, which):
        if which in self._own and self._own[which] is not None:
            return self._own[which]  # the till's own cards, wherever the case put them
        return self.cards.card(which)

    def keystore(self):
        return self.sim.keystore

    def close(self) -> None:
        try:
            self.port.close()
        finally:
            self.sim.close()
            if self._tmp is not None:
                self._tmp.cleanup()


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

    def _exchange(self, data, expect, timeout):
        self.port.write(data)
        self.port.flush()
        out: list[dict] = []
        deadline = _time.monotonic() + timeout
        while len(out) < expect and _time.monotonic() < deadline:
            out += [f for f in self.receiver.feed(self.port.read(self.port.in_waiting or 1))
                    if f["kind"] == frame.KIND_REPLY]
        return out

    def close(self) -> None:
        self.port.close()


def dut_factory(spec: str, *, workdir: str | Path | None = None, profile: Profile | None = None):
    """A function making a device for one case: "sim", "mpy", "simtill" or a port / URL."""
    if spec == "sim":
        return lambda: InProcessDut(profile)
    if spec in ("mpy", "micropython"):
        return lambda: SimTillDut(profile, interpreter="micropython", workdir=workdir)
    if spec == "simtill":
        return lambda: SimTillDut(profile, interpreter="cpython", workdir=workdir)
    shared: list = []

    def serial_dut():  # one board, one open port, for the whole run
        if not shared:
            shared.append(SerialDut(spec, profile))
        return shared[0]
    return serial_dut
