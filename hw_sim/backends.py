"""How a SimTill runs its firmware: interchangeable backends behind one declared interface, named in one
table (like python-can's interfaces).

    backend = BACKENDS["micropython"](sim)      # boots the firmware on sim's board
    pump = Pump(backend)                        # hw_sim.pump: attach(), the callbacks, detach()

    cpython      InProcess: Board + Till + LinkServer in this process on the board's devices
                 (hw_sim.board.SimBoard.boot); the pump runs the main loop (`LinkServer.serve_uart`)
                 under the simulator's lock whenever the pty has bytes.
    micropython  Subprocess: `micropython -X heapsize=256k hw_sim/mpy/sim_main.py` running the firmware's
                 .mpy image (hw_sim.sim_image); the pump joins the pty and the board's devices to the
                 process's board bus (hw_sim.bus).  Writes to the process never block the pump: they are
                 buffered, and the pty is not read while the buffer is above HIGH_WATER, so a flooding host
                 meets back-pressure instead of a deadlock.

A backend gets the SimTill it runs on and uses only: uart (the pty), lock, log_path, board (SimBoard),
identity, state (folder), image and heapsize (micropython).  A power cut (PowerLoss from a device) turns
it off: `off` becomes True and it stays silent until the SimTill makes a new one (power_cycle).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import traceback
from pathlib import Path

from fiscal_till import server

from . import bus
from .nor_flash import PowerLoss
from .pump import Stopped, want
from .sim_config import SimTillError
from .sim_image import find_micropython, firmware_image_dir

HIGH_WATER = 64 * 1024
_MPY_DIR = Path(__file__).resolve().parent / "mpy"


class FirmwareBackend:
    """The interface every backend declares (SimTill and the pump call nothing else).

    ready     threading.Event, set once the firmware booted (or the till went off while booting)
    off       True after a power cut
    """

    name = "?"
    ready: threading.Event
    off: bool

    @classmethod
    def prepare(cls) -> Path | None:
        """Work done once per SimTill before the first boot; the result is `sim.image` (None: none)."""
        return None

    def attach(self, sel: selectors.BaseSelector) -> None:
        """Register this backend's descriptors and callbacks with the pump's selector."""
        raise NotImplementedError

    def detach(self) -> None:
        """The pump stopped: forget its selector."""
        raise NotImplementedError

    def cut(self) -> None:
        """Power cut: stop the firmware where it stands (nothing flushed), stop listening."""
        raise NotImplementedError

    def failure(self) -> str | None:
        """Why the firmware stopped by itself, or None while it runs or is merely off."""
        raise NotImplementedError

    def stop(self) -> None:
        """Clean power-off (the simulator closes)."""
        raise NotImplementedError


class InProcess(FirmwareBackend):
    """cpython backend: the firmware's objects live here, on the simulator's devices; the pump runs its
    main loop under the simulator's lock."""

    name = "cpython"

    def __init__(self, sim) -> None:
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
            raise Stopped("the firmware raised an exception; traceback in %s" % self.log_path) from None

    def _log(self) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(traceback.format_exc())

    def cut(self) -> None:
        """Power cut: the firmware's objects are dropped where they stand; the pty is no longer read."""
        self.off = True
        self.link = None
        if self._sel is not None:
            want(self._sel, self.uart.fileno(), 0, None)

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        self.link = None


class Subprocess(FirmwareBackend):
    """micropython backend: the firmware is a child process; its board bus meets the pty and the
    simulator's devices here."""

    name = "micropython"

    @classmethod
    def prepare(cls) -> Path:
        return firmware_image_dir()

    def __init__(self, sim) -> None:
        self.uart = sim.uart
        self.log_path = sim.log_path
        self.lock = sim.lock
        flash, fiscal_slot, user_slot, nvram = sim.board.hal_devices
        self.hal = bus.HalService(sim.board.rtc, flash=flash, slots=[fiscal_slot, user_slot], nvram=nvram,
                                  printer=sim.board.printer)
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
            raise Stopped(self.failure() or "the MicroPython firmware closed its bus")
        try:
            messages = self.rx.feed(data)
        except bus.BusError as e:
            self._broken = True
            stray = bytes(self.rx.buf[:300]).decode("utf-8", "replace")
            raise Stopped("the MicroPython firmware broke the board bus (%s); it wrote:\n%s"
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
        want(sel, self.uart.fileno(), selectors.EVENT_READ if len(self._out) < HIGH_WATER else 0,
              self._from_host)
        want(sel, self._stdin, selectors.EVENT_WRITE if self._out else 0, self._to_device)

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
                want(sel, fd, 0, None)
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


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


BACKENDS: dict[str, type[FirmwareBackend]] = {"cpython": InProcess, "micropython": Subprocess}
"""The firmware backends by interpreter name: SimTill(interpreter=...) and fiscal-sim --interpreter."""
