"""The simulator DUT backends of the conformance suite (entry points `fiscal_toolkit.duts`, pyproject.toml):

    sim        InProcessDut: the firmware (fiscal_till) on CPython in this process, on hw_sim devices
    mpy        SimTillDut: testbed.simtill.SimTill over its pty, the .mpy firmware under MicroPython
    simtill    the same SimTill with the firmware on CPython

They implement conformance.dut.Dut's hooks, and its Bureau with the bureau's own library (gateway): the
suite itself never imports the simulator or the bureau.  The demo card set (TEST keys) is theirs, with the
odd cards the security cases insert.
"""

from __future__ import annotations

import tempfile
import time as _time
from pathlib import Path

import serial

from conformance.dut import CAPABILITIES, OTHER_FISCAL_CARD_NO, Bureau, ControlLimits, Dut, DutError, PowerCut, Profile
from conformance.model import STALE_ROLL
from gateway import issuance
from hw_sim.board import SimBoard
from hw_sim.cards.fiscal import FiscalCard
from hw_sim.cards.management import ManagementCard
from hw_sim.cards.user import UserCard
from hw_sim.nor_flash import PowerLoss
from hw_sim.rtc import ManualRTC
from protocol import frame
from testbed import bureau, demo_cards, flash_damage
from testbed.simtill import SimTill

VIRTUAL_STEP_MS = 10  # InProcessDut: the firmware's clock moves this much per HAL step (see there)


# ---------------------------------------------------------------------------------------------- the bureau
class SimBureau(Bureau):
    """conformance.dut.Bureau by the tax hall of testbed.bureau: one visit, one authenticated user-card
    session on `slot`, opened when first needed."""

    def __init__(self, slot, keystore, profile: Profile) -> None:
        self.slot = slot
        self.keystore = keystore
        self.profile = profile
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = bureau.open_session(self.slot, self.keystore)
        return self._session

    def sell_roll(self, code, start, end, *, genuine=True):
        p = self.profile
        hall = bureau.Bureau(self.slot, self.keystore, machine_no=p.machine_no,
                             fiscal_card_no=p.fiscal_card_no if genuine else OTHER_FISCAL_CARD_NO)
        hall.sell_roll(start, end, code)

    def verify_pending(self):
        return self.session.verify_pending()

    def clear(self, recno, report, limits: ControlLimits):
        self.session.clear(recno, report, issuance.Limits(*limits))

    def rewrite_clear(self, limits: ControlLimits, forgery=0):
        s = self.session
        recno = s.declarations()[-1][0]
        s.set_declaration_status(recno, 1)
        ((recno, report),) = [r for r in s.verify_pending() if r[0] == recno]
        record = bytearray(issuance.issue_controls(self.keystore, report, limits=issuance.Limits(*limits)))
        if forgery:
            record[-forgery] ^= 0x01  # one byte of MAC2 (the record's last 4 bytes)
        s.put_controls(bytes(record))
        s.set_declaration_status(recno, 2)

    def mark_cleared(self):
        s = self.session
        for recno, status, _ in s.declarations():
            if status == 1:
                s.set_declaration_status(recno, 2)


class _Simulated(Dut):
    """A simulated device with the demo cards (its profile testbed.demo_cards.profile() unless given): the
    bureau's side is the user slot's card, with the keys of `keystore()`."""

    def __init__(self, profile: Profile | None = None) -> None:
        super().__init__(profile or demo_cards.profile())

    def _bureau(self):
        return SimBureau(self._slot("user"), self.keystore(), self.profile)

    def test_keys(self):
        keys = self.keystore()
        return None if keys is None else bool(getattr(keys, "test_mode", False))

    def keystore(self):
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------- demo cards
class _DemoCards:
    """The demo card set and the odd cards the security cases insert."""

    def __init__(self, machine_no: str, seed: int = 1) -> None:
        self.machine_no = machine_no
        self.set = demo_cards.demo_cards(seed, management_pin=None)
        self.user = None  # the device's own user card, when it is not the demo set's (SimTillDut)

    def card(self, which: str):
        d, s = demo_cards, self.set
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
            user = s.user if self.user is None else self.user
            user.state.last_roll = issuance.issue_roll(s.keystore, fiscal_card_no=OTHER_FISCAL_CARD_NO,
                                                machine_no=self.machine_no, code=Profile.roll_code,
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


# ---------------------------------------------------------------------------------------------- in-process
class InProcessDut(_Simulated):
    """The firmware (fiscal_till) on CPython in this process, on one hw_sim board (hw_sim.board.SimBoard):
    NOR flash, card slots with the demo cards, RAM nvram, the mains and a clock the suite sets (it does
    not tick).  The mutants patch the firmware's classes around it."""

    name = "sim"
    capabilities = frozenset(CAPABILITIES)

    def __init__(self, profile: Profile | None = None, *, seed: int = 1, flash_sectors: int = 512,
                 workdir: str | Path | None = None) -> None:  # state in memory: no workdir
        super().__init__(profile)
        self.cards = _DemoCards(self.profile.machine_no, seed)
        self.board = SimBoard.in_memory(
            self.cards.set.fiscal, self.cards.set.user, rtc=ManualRTC(), flash_sectors=flash_sectors,
            identity={"machine_no": self.profile.machine_no, "model": demo_cards.MODEL,
                      "non_fiscal": self.profile.non_fiscal})
        self.flash, self.nvram, self.rtc, self.mains = (self.board.flash, self.board.nvram, self.board.rtc,
                                                        self.board.mains)
        self.slots = self.board.slots
        self.server = None
        self._boot()

    def _boot(self) -> None:
        try:
            self.server = self.board.boot(ticks_ms=self._ticks)
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
        self.rtc.set(date, time)

    def _advance(self, delta):
        self.rtc.t += delta

    def _power_cycle(self):
        self.server = None
        self._boot()

    def _cut_power_at(self, step, after):
        self.board.cut_power_at(step, after)

    def _damage_flash(self, spec):
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
class SimTillDut(_Simulated):
    """testbed.simtill.SimTill over its pty: interpreter "micropython" (the real firmware image) or
    "cpython".  A fresh state folder per device."""

    def __init__(self, profile: Profile | None = None, *, interpreter: str = "micropython",
                 workdir: str | Path | None = None) -> None:
        super().__init__(profile)
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


def cpython_simtill(profile: Profile | None = None, *, workdir: str | Path | None = None) -> SimTillDut:
    """The `simtill` backend: SimTill with the firmware on CPython."""
    return SimTillDut(profile, interpreter="cpython", workdir=workdir)
