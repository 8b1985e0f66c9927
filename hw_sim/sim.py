"""SimTill: a whole simulated till on a real pty, its firmware run by CPython in-process or by MicroPython.

    with SimTill(state_dir, interpreter="micropython", machine_no="1234567890123456") as sim:
        TillClient(sim.port)...                 # sim.port is the pty slave, e.g. /dev/pts/7

Simulated hardware only: the cards a new state folder gets come from a card set (CardSet, named in
config.json "cards"); hw_sim knows only "none" (empty slots).  testbed.simtill adds the demo card set and
the bureau's side (the `fiscal-sim` command runs that one).

The state folder is the till's non-volatile world:

    config.json     machine_no (16 digits, fixed at the factory), model, baud, cards, flash_sectors
                    (hw_sim.sim_config); created with defaults
    flash.img       the fiscal-memory NOR flash (flash_sectors x 4 KiB, default 512 = 2 MiB), written
                    through on every program and erase (hw_sim.nor_flash); flash.img.wear its erase counts
    cards/          fiscal.json, user.json: the cards in the two slots (hw_sim.persistent_slot), saved
                    after every command that changed them; a file is missing while its slot is empty.
                    Any other NAME.json is a card the set issued beside the slots (sim.spare_cards[NAME],
                    e.g. the demo inspector's management card)
    nvram/          the board's nvram, one file per key (hw_sim.nvram)
    printer.txt     everything the printer printed (hw_sim.printer)
    rtc.json        the RTC's offset from the host clock (hw_sim.rtc)
    firmware.log    MicroPython's stderr, or the traceback of an in-process firmware crash
    lock            held while a simulator runs, so two never share one state

Interpreters: one public class over interchangeable backends (hw_sim.backends.BACKENDS: "cpython"
in-process, "micropython" a subprocess), on one board assembly (hw_sim.board.SimBoard).

Control (tests, the conformance suite): `sim.rtc` (set(date, time) / set(datetime) / advance),
`sim.fiscal_slot` and `sim.user_slot` (insert / remove / mute / pull_after, and present / power_on /
transmit for a host-side reader; see PersistentSlot), `sim.flash` (cut_after(n, tear): a power-loss
schedule inside the flash), `sim.cut_power_at(step, after)` (a cut at a HAL step: hw_sim.mains),
`sim.nvram`, `sim.printer`, `sim.power_cycle()` (hw_sim.control: each call holds the lock).

Theory of operation: who runs when.  Firmware steps run on the pump thread (hw_sim.pump); the test thread
calls the control objects.  `sim.lock` serialises them: the pump holds it around each pass of the
in-process main loop (a whole request) and around each HAL call of the MicroPython firmware; every control
method takes it.  So a test never changes a card or the clock in the middle of a firmware step.

Power.  A PowerLoss from the flash model (a scheduled cut) is a power cut: the in-process firmware
object is dropped where it stands, the MicroPython process is killed while it waits for the torn call's
reply.  The till is then off (`powered` False, `failure` None): the pty stays open and silent.
`power_cycle()` cuts the power the same way (if it is on), powers the flash and the cards up again and
boots the firmware on the same state; bytes a host sent while the till was off are lost.
If the firmware dies, `failure` says why (exit status and the log's last lines), `check()` raises it,
and the pty stays open but silent, as a crashed till's port would.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from protocol.status import CAPABILITIES

from .backends import BACKENDS, FirmwareBackend
from .board import SECTOR_SIZE, SimBoard
from .cards import store
from .cards.slot import CardSlot
from .control import Locked, SimClock
from .nor_flash import NorFlash
from .nvram import FolderNvram
from .persistent_slot import PersistentSlot
from .printer import SimPrinter
from .pump import Pump
from .rtc import SimRTC
from .sim_config import SimTillError, load_config
from .uart import PtyUART, Rfc2217Server

INTERPRETERS = tuple(BACKENDS)
HEAPSIZE = "256k"
READY_TIMEOUT_S = 20.0

_CAPS = 1 << {name: bit for bit, name in CAPABILITIES.items()}["SIMULATOR"]
_SLOT_NAMES = ("fiscal", "user")


class CardSet:
    """Where a new state folder's cards come from (config.json "cards" names one).

    name         the config value
    non_fiscal   the cards are under TEST keys: the till says NON-FISCAL on every invoice (identity)
    issue(machine_no) -> {"fiscal": card, "user": card, other names: cards kept beside the slots};
                 called once, when the folder has no cards/ yet; {} leaves the slots empty"""

    name = "none"
    non_fiscal = False

    def issue(self, machine_no: str) -> dict:
        return {}


NO_CARDS = CardSet()


class SimTill:
    """A simulated till on `state_dir` (see the module's text).  `card_sets` names the card sets a new
    folder may be set up with (default: none); `default_cards` and `default_machine_no` are what a new
    folder gets when `cards` and `machine_no` are not given."""

    def __init__(self, state_dir: str | os.PathLike, interpreter: str = "cpython", *, baud: int | None = None,
                 pace: bool = False, rfc2217_port: int | None = None, machine_no: str | None = None,
                 cards: str | None = None, flash_sectors: int | None = None, heapsize: str = HEAPSIZE,
                 card_sets: tuple[CardSet, ...] = (NO_CARDS,), default_cards: str = NO_CARDS.name,
                 default_machine_no: str | None = None) -> None:
        if interpreter not in BACKENDS:
            raise SimTillError("unknown interpreter %r: choose %s" % (interpreter, " or ".join(BACKENDS)))
        self.card_sets = {c.name: c for c in card_sets}
        if cards is not None and cards not in self.card_sets:
            raise SimTillError("unknown card set %r: choose %s" % (cards, " or ".join(self.card_sets)))
        if baud is not None and baud <= 0:
            raise SimTillError("baud rate must be positive, got %d" % baud)
        self.state = Path(state_dir)
        self.interpreter = interpreter
        self.heapsize = heapsize  # MicroPython's -X heapsize; a board's is 256k
        self.state.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._exit = ExitStack()  # undoes whatever was set up, in reverse order
        self._exit.enter_context(_lock_state(self.state))
        self._firmware: FirmwareBackend | None = None
        self._pump: Pump | None = None
        self.spare_cards: dict = {}  # cards the card set issued beside the slots, by name
        try:
            self.config = load_config(self.state, machine_no, cards, flash_sectors, card_sets=tuple(self.card_sets),
                                      default_cards=default_cards, default_machine_no=default_machine_no)
            self.card_set = self.card_sets[self.config["cards"]]
            self.baud = baud or self.config["baud"]
            self._rtc = self._open_rtc()
            self._flash = self._open_flash()
            self._slots = [PersistentSlot(CardSlot(name=n), self.state / "cards" / (n + ".json"))
                           for n in _SLOT_NAMES]
            self._load_cards()
            self._nvram = FolderNvram(self.state / "nvram")
            self._printer = SimPrinter(self.state / "printer.txt")
            self.identity = {"machine_no": self.config["machine_no"], "model": self.config["model"],
                             "capabilities": _CAPS, "non_fiscal": self.card_set.non_fiscal}
            # the firmware's HAL (in-process board or the MicroPython process's bus) meets these: every
            # card command, flash program or erase and nvram write is a step of the mains
            self.board = SimBoard(flash=self._flash, fiscal_slot=self._slots[0], user_slot=self._slots[1],
                                  rtc=self._rtc, nvram=self._nvram, printer=self._printer, identity=self.identity)
            self.mains = self.board.mains
            self.rtc = SimClock(self._rtc, self.lock)
            self.flash = Locked(self._flash, self.lock)
            self.fiscal_slot, self.user_slot = [Locked(s, self.lock) for s in self._slots]
            self.nvram = Locked(self._nvram, self.lock)
            self.printer = Locked(self._printer, self.lock)
            self.uart = PtyUART(self.baud, pace)
            self._exit.callback(self.uart.close)
            self.rfc2217 = None
            if rfc2217_port is not None:
                self.rfc2217 = Rfc2217Server(self.uart.path, rfc2217_port)
                self._exit.callback(self.rfc2217.close)
            self.log_path = self.state / "firmware.log"
            self._image = BACKENDS[interpreter].prepare()
            self._exit.callback(self._halt)
            self._boot()
        except BaseException:
            self.close()
            raise

    def _open_rtc(self) -> SimRTC:
        try:
            return SimRTC(self.state / "rtc.json")
        except ValueError as e:
            raise SimTillError(str(e)) from None

    def _open_flash(self) -> NorFlash:
        """The NOR flash written through to flash.img (closed with the simulator)."""
        flash = NorFlash(sector_count=self.config["flash_sectors"], sector_size=SECTOR_SIZE)
        image = self.state / "flash.img"
        if image.exists() and image.stat().st_size != flash.size:  # attach() would blank it
            raise SimTillError("%s holds %d bytes, not the %d of this till's flash: it is damaged or "
                               "not this till's; move it away to start with a blank chip"
                               % (image, image.stat().st_size, flash.size))
        flash.attach(str(image))
        self._exit.callback(flash.close)
        return flash

    def _load_cards(self) -> None:
        folder = self.state / "cards"
        if not folder.exists():  # first start: the card set's cards, written whole or not at all
            cards = self.card_set.issue(self.config["machine_no"])
            if cards:
                tmp = self.state / "cards.new"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                for name, card in cards.items():
                    store.save_card(card, tmp / (name + ".json"))
                os.rename(tmp, folder)
        folder.mkdir(exist_ok=True)
        for path in sorted(folder.glob("*.json")):
            if path.stem not in _SLOT_NAMES:
                try:
                    self.spare_cards[path.stem] = store.load_card(path)
                except store.CardFileError as e:
                    raise SimTillError("%s: %s" % (path, e)) from None
        for slot in self._slots:
            slot.load()

    # ---- power ----------------------------------------------------------------------------------------
    def _boot(self) -> None:
        drain = bytearray(4096)
        while self.uart.readinto(drain):  # what a host sent while the till was off never arrived
            pass
        self._firmware = BACKENDS[self.interpreter](self)
        self._pump = Pump(self._firmware)
        self._wait_ready()

    def _halt(self) -> None:
        """Clean power-off (close): stop the pump, let the firmware go."""
        if self._pump is not None:
            self._pump.stop()
            self._pump = None
        if self._firmware is not None:
            self._firmware.stop()
            self._firmware = None

    def power_cycle(self) -> None:
        """Cut the power as a power failure would (nothing is flushed, the firmware stops where it is),
        then switch on again: flash and cards powered up, the firmware boots on the same state."""
        if self._pump is not None:
            self._pump.stop()  # not under the lock: the pump may be waiting for it
            self._pump = None
        with self.lock:
            if self._firmware is not None:
                self._firmware.cut()
                self._firmware = None
            self.mains.restore()
            self._flash.power_on()
            for slot in self._slots:
                slot.power_off()
        self._boot()

    def cut_power_at(self, step: int, after: bool = False) -> None:
        """The power fails at the firmware's `step`-th HAL step from now (0: the next one), before that
        step or just after it (its answer lost): the same mains count whichever interpreter runs the
        firmware.  The till is then off until power_cycle()."""
        with self.lock:
            self.board.cut_power_at(step, after)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self._firmware is not None
        while not self._firmware.ready.wait(0.02):
            if self.failure:
                raise SimTillError(self.failure)
            if time.monotonic() > deadline:
                raise SimTillError("the %s firmware did not start within %.0f s; see %s"
                                   % (self.interpreter, READY_TIMEOUT_S, self.log_path))

    # ---- what it is -----------------------------------------------------------------------------------
    @property
    def port(self) -> str:
        """The pty slave a host opens."""
        return self.uart.path

    @property
    def rfc2217_url(self) -> str | None:
        return self.rfc2217.url if self.rfc2217 else None

    @property
    def pid(self) -> int | None:
        """The firmware's process id under micropython; None when it runs in-process."""
        proc = getattr(self._firmware, "proc", None)
        return proc.pid if proc else None

    @property
    def image(self) -> Path | None:
        """The .mpy image the micropython backend runs."""
        return self._image

    @property
    def powered(self) -> bool:
        """False after a power cut (until power_cycle())."""
        return self._firmware is not None and not self._firmware.off

    @property
    def failure(self) -> str | None:
        """Why the firmware stopped, or None while it runs (or is merely powered off)."""
        pump, fw = self._pump, self._firmware
        return (pump.failure if pump else None) or (fw.failure() if fw else None)

    @property
    def alive(self) -> bool:
        return self.failure is None

    def check(self) -> None:
        if self.failure:
            raise SimTillError(self.failure)

    def close(self) -> None:
        self._exit.close()

    def __enter__(self) -> SimTill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _lock_state(state: Path):
    fh = open(state / "lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise SimTillError("state folder %s is in use by another simulator" % state) from None
    return fh
