"""The till's host-link UART on a real pty, and an optional rfc2217 server in front of it.

PtyUART: the till holds the pty master through machine.UART's interface (readinto, write, any); a
host opens `path`, the slave, exactly as it would open /dev/ttyUSB0.  The slave is in raw mode so every
byte passes untouched (no echo, no CR/LF mapping, no ^C).  We keep our own slave descriptor open for
the life of the UART: without it the master reads EIO whenever no host has the port open.

Pacing (optional) makes what the till sends take the time it takes on a real line: 10 bits per byte
(start, 8 data, stop), so a 4112-byte frame at 115200 baud arrives over ~0.357 s.  Bytes go out in
slices of PACE_SLICE_S of line time, each released when the line would start carrying it: a one-slice
transmit FIFO, so write() returns while the line still carries the last slice and the till computes its
next reply meanwhile, as with a real UART.  Bytes reach the host at most one slice early.  What the host
sends is not paced: the host's own UART does that on real hardware.

A write the host does not read for STALL_S (the pty buffer is full) is dropped and counted, as bytes
sent to a line nobody listens on are lost.

Rfc2217Server: rfc2217://127.0.0.1:PORT reaches the same slave, the way ser2net serves a real till
over the network.  Loopback only: the simulator is not a network service.  The server reads the slave only
while a client is connected; like a real serial port, the pty and the rfc2217 server must not be used by
two hosts at once.
"""

from __future__ import annotations

import fcntl
import os
import select
import selectors
import socket
import struct
import termios
import threading
import time
import tty

from serial import rfc2217

STALL_S = 1.0
BITS_PER_BYTE = 10
PACE_SLICE_S = 0.005  # pacing granularity


class PtyUART:
    def __init__(self, baud: int = 115200, pace: bool = False) -> None:
        if baud <= 0:
            raise ValueError("baud rate must be positive, got %r" % (baud,))
        self.baud = baud
        self.pace = pace
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._closed = threading.Event()
        self._line_free = 0.0  # monotonic time when the line will have carried everything released
        self._chunk = max(1, int(baud / BITS_PER_BYTE * PACE_SLICE_S))
        self.tx_bytes = 0
        self.tx_dropped = 0

    def fileno(self) -> int:
        """The master: readable when the host has sent something."""
        return self._master

    def any(self) -> int:
        buf = fcntl.ioctl(self._master, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def readinto(self, buf) -> int | None:
        """What the host sent, at most len(buf) bytes; None when nothing is waiting (machine.UART)."""
        try:
            n = os.readv(self._master, [buf])
        except (BlockingIOError, OSError):
            return None  # EAGAIN, or EIO while the pty is closing
        return n or None

    def write(self, buf) -> int:
        mv = memoryview(buf).cast("B")
        step = self._chunk if self.pace else max(len(mv), 1)
        sent = 0
        for i in range(0, len(mv), step):
            chunk = mv[i:i + step]
            if self.pace:
                self._wait_line(len(chunk))
            n = self._write_all(chunk)
            sent += n
            if n < len(chunk):
                break
        self.tx_bytes += sent
        self.tx_dropped += len(mv) - sent
        return len(mv)

    def _wait_line(self, n: int) -> None:
        now = time.monotonic()
        start = max(now, self._line_free)  # when the line starts carrying these n bytes
        self._line_free = start + n * BITS_PER_BYTE / self.baud
        if start > now:
            self._closed.wait(start - now)

    def _write_all(self, chunk: memoryview) -> int:
        """Bytes of `chunk` written: all of them, unless the host stopped reading for STALL_S."""
        done = 0
        stalled_since = None
        while done < len(chunk) and not self._closed.is_set():
            try:
                n = os.write(self._master, chunk[done:])
            except BlockingIOError:
                n = 0
            except OSError:
                break
            if n:
                done += n
                stalled_since = None
                continue
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > STALL_S:
                break
            select.select([], [self._master], [], 0.05)
        return done

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        os.close(self._master)
        os.close(self._slave)


class _PortSettings:
    """What PortManager expects of a serial port; a pty has no line settings or modem lines to honour."""

    baudrate = 115200
    bytesize = 8
    parity = "N"
    stopbits = 1
    xonxoff = False
    rtscts = False
    dtr = True
    rts = True
    break_condition = False
    cts = True
    dsr = True
    ri = False
    cd = True

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def reset_input_buffer(self) -> None:
        termios.tcflush(self._fd, termios.TCIFLUSH)

    def reset_output_buffer(self) -> None:
        pass


class _Connection:
    """PortManager writes telnet replies from our thread only, but wants a `write()`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


class Rfc2217Server:
    """rfc2217://127.0.0.1:PORT in front of a pty slave; one client at a time, the newest wins."""

    def __init__(self, slave_path: str, port: int = 0) -> None:
        self._fd = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self.url = "rfc2217://127.0.0.1:%d" % self.port
        self._wake_r, self._wake_w = os.pipe()
        self._client: socket.socket | None = None
        self._manager: rfc2217.PortManager | None = None
        self._thread = threading.Thread(target=self._run, name="rfc2217-%d" % self.port, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, self._accept)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    key.data(sel)
        finally:
            self._drop_client(sel)
            sel.close()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        self._drop_client(sel)
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        termios.tcflush(self._fd, termios.TCIFLUSH)  # what the till said to an earlier client
        self._client = sock
        self._manager = rfc2217.PortManager(_PortSettings(self._fd), _Connection(sock))
        sel.register(sock, selectors.EVENT_READ, self._from_client)
        sel.register(self._fd, selectors.EVENT_READ, self._from_till)  # only while served: see the header

    def _drop_client(self, sel: selectors.BaseSelector) -> None:
        if self._client is not None:
            sel.unregister(self._client)
            sel.unregister(self._fd)
            self._client.close()
            self._client = self._manager = None

    def _from_client(self, sel: selectors.BaseSelector) -> None:
        assert self._client is not None and self._manager is not None
        try:
            data = self._client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop_client(sel)
            return
        payload = b"".join(self._manager.filter(data))
        if payload:
            os.set_blocking(self._fd, True)
            try:
                os.write(self._fd, payload)
            finally:
                os.set_blocking(self._fd, False)

    def _from_till(self, sel: selectors.BaseSelector) -> None:
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, OSError):
            return
        assert self._client is not None and self._manager is not None
        try:
            self._client.sendall(b"".join(self._manager.escape(data)))
        except OSError:
            self._drop_client(sel)

    def close(self) -> None:
        if self._wake_w < 0:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._wake_r, self._wake_w, self._fd):
            os.close(fd)
        self._wake_w = -1
        self._listener.close()
