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

from protocol import commands
from protocol import frame
from hw_sim.mains import Mains, stepped_board

CAPABILITIES = ("reset", "power", "power_loss", "clock", "cards", "bureau", "flash", "boot_power_loss")
HANG_GUARD_S = 600.0  # one exchange never waits longer, keep-alives or not
VIRTUAL_STEP_MS = 10  # InProcessDut: the firmware's clock moves this much per HAL step (see there)
_MUTATING = frozenset(c.code for c in commands.COMMANDS if c.mutating)


class DutError(Exception):
    """The device cannot do what a step asked (missing capability, device off, link failure)."""


class PowerCut(Exception):
    """The power failed inside a request, as scheduled: no reply came."""


@dataclass
class Profile:
    """What the suite must know about the device's issued cards and declared thresholds (the lab's
    certification profile; the simulators use the demo card set of testbed.demo_cards)."""
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
        """Switch off, damage fiscal memory as `spec` says (conformance/flash_damage.py), switch on."""
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
        from testbed import demo_cards
        self.demo = demo_cards
        self.machine_no = machine_no
        self.set = demo_cards.demo_cards(seed, management_pin=None)
        self.user = None  # the device's own user card, when it is not the demo set's (SimTillDut)

    def card(self, which: str):
        from gateway import issuance
        from hw_sim.cards.fiscal import FiscalCard
        from hw_sim.cards.management import ManagementCard
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
            other = issuance.issue_fiscal_card(s.keystore, taxpayer=d.TAXPAYER, machine_no="9999999999999999",
                                        card_no=bytes.fromhex("3201000000000099"), user_card_no=d.USER_CARD_NO,
                                        valid_from=d.VALID_FROM, valid_to=d.VALID_TO, limits=d.LIMITS,
                                        tax_items=d.TAX_ITEMS)
            return FiscalCard.issued(other)
        if which == "expired_management":  # genuine TEST-key card, valid only until the day before START
            md = issuance.issue_management_card(s.keystore, card_no=bytes.fromhex("4401000000000077"),
                                         inspector_no="440100000777", bureau_code=d.TAXPAYER.bureau_code,
                                         valid_from=20250101, valid_to=20260104, pin=None)
            return ManagementCard.issued(md)
        if which == "twin_fiscal":  # this till's fiscal card number, registered by another till: another PIN
            return d.CardRig(seed=99).register().cards.fiscal
        if which == "user_refused_roll":  # our user card left with a roll for another fiscal card in EF07
            from conformance.model import STALE_ROLL
            from conformance.runner import OTHER_FISCAL_CARD_NO
            user = s.user if self.user is None else self.user
            user.state.last_roll = issuance.issue_roll(s.keystore, fiscal_card_no=OTHER_FISCAL_CARD_NO,
                                                machine_no=self.machine_no, code=demo_roll_code(),
                                                start=STALE_ROLL[0], end=STALE_ROLL[1])
            return user
        if which == "foreign_user":
            other = issuance.issue_user_card(s.keystore, taxpayer=issuance.Taxpayer(
                taxpayer_no="91110000XXXXXXXX9X", taxpayer_id="110000000000009", name="别家 (TEST)",
                bureau_code="111000000000"), card_no=bytes.fromhex("1101100000000009"),
                tills=[("8888888888888888", bytes.fromhex("1101000000000009"))],
                valid_from=d.VALID_FROM, valid_to=d.VALID_TO, tax_items=d.TAX_ITEMS)
            return UserCard.issued(other)
        raise DutError("unknown card %r" % which)


def demo_roll_code() -> str:
    return Profile.roll_code


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
        flash, fiscal_slot, user_slot, nvram = stepped_board(self.mains, self.flash, self.slots["fiscal"],
                                                             self.slots["user"], self.nvram)
        return Board(rtc=self.rtc, flash=flash, fiscal_slot=fiscal_slot, user_slot=user_slot, nvram=nvram,
                     printer=None,
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
            self.server = LinkServer(Till(self._board()), ticks_ms=self._ticks)
        except PowerLoss:
            self.server = None
        if self.server is not None:
            self.server.out = _KeepAlives(self._ticks)

    def firmware(self):
        return self.server.till if self.server else None

    def _ticks(self) -> int:
        """The firmware's millisecond clock: virtual, VIRTUAL_STEP_MS per HAL step (card command, flash
        program or erase, nvram write), so long work takes long on it whatever the machine's speed."""
        return self.mains.steps * VIRTUAL_STEP_MS

    def _exchange(self, data, expect, timeout):
        from hw_sim.nor_flash import PowerLoss
        if self.server is None:
            raise PowerCut("the device is off")
        out = []
        ka = self.server.out
        try:
            for i in range(0, len(data), 1024):
                self.server.feed(data[i:i + 1024])
                while True:
                    ka.begin()
                    r = self.server.poll()
                    if r is None:
                        break
                    f = frame.parse_frame(bytes(r))
                    self.keepalives += len(ka.times)
                    if self._silence is not None and ka.longest_silence() > self._silence * 1000:
                        continue  # a host allowing that much silence gave up before this reply
                    out.append(f)
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


class _KeepAlives:
    """InProcessDut's UART for keep-alives: the virtual time of each one sent during a request."""

    def __init__(self, ticks) -> None:
        self.ticks = ticks
        self.start = 0
        self.times: list[int] = []

    def begin(self) -> None:
        self.start = self.ticks()
        self.times = []

    def write(self, data) -> int:
        f = frame.parse_frame(bytes(data))
        assert f["kind"] == frame.KIND_KEEPALIVE and not f["payload"], "the till wrote a stray frame"
        self.times.append(self.ticks())
        return len(data)

    def longest_silence(self) -> int:
        """Milliseconds, virtual: the longest gap from the request through its keep-alives to the reply."""
        marks = [self.start] + self.times + [self.ticks()]
        return max(b - a for a, b in zip(marks, marks[1:]))


# ---------------------------------------------------------------------------------------------- SimTill
class SimTillDut(Dut):
    """hw_sim.sim.SimTill over its pty: interpreter "micropython" (the real firmware image) or
    "cpython".  A fresh state folder per device."""

    def __init__(self, profile: Profile | None = None, *, interpreter: str = "micropython",
                 workdir: str | Path | None = None) -> None:
        super().__init__(profile)
        from testbed.simtill import SimTill
        self.name = "mpy" if interpreter == "micropython" else "simtill"
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fc-dut-")
            workdir = self._tmp.name
        state = Path(workdir) / ("till-%d" % _time.monotonic_ns())
        self.sim = SimTill(state, interpreter)
        caps = {"reset", "power", "power_loss", "clock", "bureau", "flash"}
        if hasattr(self.sim, "fiscal_slot") and hasattr(self.sim, "user_slot"):
            caps.add("cards")
        self.capabilities = frozenset(caps)
        import serial
        self.port = serial.serial_for_url(self.sim.port, baudrate=115200, timeout=0.02)
        self.receiver = frame.FrameReceiver()
        self.cards = _DemoCards(self.profile.machine_no)
        self.cards.user = self.sim.user_slot.card
        # the simulator's own management card has an inspector PIN the link cannot carry; the suite's
        # demo management card (same TEST keys, no PIN) stands in for it
        self._own = {"fiscal": self.sim.fiscal_slot.card, "user": self.sim.user_slot.card}
        self.timeout = 10.0

    def _exchange(self, data, expect, timeout):
        if not self.sim.powered:
            raise PowerCut("the device is off")
        self.port.write(data)
        self.port.flush()

        def read():
            chunk = self.port.read(self.port.in_waiting or 1)
            if not chunk and not self.sim.powered:
                raise PowerCut("power failed during the request")
            return chunk
        return self._collect(read, data, expect, timeout)

    def _set_clock(self, date, time):
        self.sim.rtc.set(date, time)

    def _advance(self, delta):
        self.sim.rtc.advance(delta.total_seconds())

    def _power_cycle(self):
        self.sim.power_cycle()
        self.receiver = frame.FrameReceiver()
        self.port.reset_input_buffer()

    def _cut_power_at(self, step, after):
        self.sim.cut_power_at(step, after)  # the mains of hw_sim.sim: the HAL steps of either interpreter

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
