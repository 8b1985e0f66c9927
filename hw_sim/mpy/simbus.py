"""Device side of the board bus: the till's UART and RTC reached over stdin/stdout.

The wire format, channels and HAL ops are specified in hw_sim/bus.py (the host side); tests hold both
sides to the same byte literals.  MicroPython code: buffers are allocated once, the UART path reuses
them, and the host is trusted to keep to the spec (a pipe does not corrupt bytes).

    bus = Bus(sys.stdin.buffer, sys.stdout.buffer)
    uart, rtc = BusUART(bus), BusRTC(bus)
    bus.send(CONTROL, b"READY")
    while True:
        bus.pump()                     # blocks for one message; raises PowerOff at EOF
        ... serve the UART ...

UART bytes that arrive while the device waits for a HAL reply are queued; a queue overflow drops the
newest bytes and counts them in `overruns`, as a UART's receive FIFO would.
"""

import struct

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

UART = const(0)
HAL = const(1)
CONTROL = const(2)
MAX_DATA = const(8192)
_QUEUE = const(8192)

OP_RTC_GET = const(0x01)
OP_RTC_SET = const(0x02)

_RESULT_OK = const(0)
_RESULT_ERRNO = (0, 19, 22, 5)  # OK, UNKNOWN_OP -> ENODEV, BAD_ARGS -> EINVAL, FAULT -> EIO
_EIO = const(5)
_DATETIME = ">HBBBBBBI"


class PowerOff(Exception):
    """The host closed the bus: the board lost power."""


class Bus:
    def __init__(self, rx, tx):
        self._rx = rx
        self._tx = tx
        self._hdr = bytearray(3)  # received header
        self._hdrv = memoryview(self._hdr)
        self._htx = bytearray(3)  # sent header
        self._data = bytearray(MAX_DATA)
        self._datav = memoryview(self._data)
        self._q = bytearray(_QUEUE)
        self._qs = 0
        self._qe = 0
        self.overruns = 0

    # ---- transport ---------------------------------------------------------------------------------
    def send(self, channel, data):
        n = len(data)
        if n > MAX_DATA:
            raise ValueError("bus message too long")
        struct.pack_into(">BH", self._htx, 0, channel, n)
        self._tx.write(self._htx)
        if n:
            self._tx.write(data)

    def _read_exact(self, mv):
        got = 0
        n = len(mv)
        while got < n:
            r = self._rx.readinto(mv[got:])
            if not r:
                raise PowerOff()
            got += r

    def receive(self):
        """Block for one message: (channel, memoryview of its data, valid until the next receive)."""
        self._read_exact(self._hdrv)
        channel = self._hdr[0]
        n = self._hdr[1] << 8 | self._hdr[2]
        if n > MAX_DATA:
            raise OSError(_EIO)
        data = self._datav[:n]
        self._read_exact(data)
        return channel, data

    def pump(self):
        """Wait for one message and take it in: UART bytes are queued, anything else is dropped."""
        channel, data = self.receive()
        if channel == UART:
            self._enqueue(data)
        return channel

    # ---- HAL calls ---------------------------------------------------------------------------------
    def call(self, op, args=b""):
        """One HAL call; returns the reply data (valid until the next receive).  Errors as OSError(errno)."""
        req = self._datav  # the request is sent before anything is received into the same buffer
        req[0] = op
        req[1:1 + len(args)] = args
        self.send(HAL, req[:1 + len(args)])
        while True:
            channel, data = self.receive()
            if channel == UART:
                self._enqueue(data)
            elif channel == HAL:
                break
        if len(data) < 2 or data[0] != op:
            raise OSError(_EIO)
        if data[1] != _RESULT_OK:
            raise OSError(_RESULT_ERRNO[data[1]] if data[1] < len(_RESULT_ERRNO) else _EIO)
        return data[2:]

    # ---- UART receive queue ------------------------------------------------------------------------
    def _enqueue(self, data):
        q = self._q
        if self._qe + len(data) > len(q):
            live = self._qe - self._qs
            q[0:live] = q[self._qs:self._qe]
            self._qs = 0
            self._qe = live
        n = min(len(data), len(q) - self._qe)
        q[self._qe:self._qe + n] = data[:n]
        self._qe += n
        self.overruns += len(data) - n

    def queued(self):
        return self._qe - self._qs

    def dequeue_into(self, buf):
        n = min(len(buf), self._qe - self._qs)
        buf[0:n] = self._q[self._qs:self._qs + n]
        self._qs += n
        if self._qs == self._qe:
            self._qs = self._qe = 0
        return n


class BusUART:
    """machine.UART over channel 0: readinto returns None when nothing is queued."""

    def __init__(self, bus):
        self._bus = bus

    def any(self):
        return self._bus.queued()

    def readinto(self, buf):
        return self._bus.dequeue_into(buf) or None

    def write(self, buf):
        mv = memoryview(buf)
        for i in range(0, len(mv), MAX_DATA):
            self._bus.send(UART, mv[i:i + MAX_DATA])
        return len(mv)


class BusRTC:
    """machine.RTC over HAL ops RTC_GET and RTC_SET: the clock lives in hw_sim."""

    def __init__(self, bus):
        self._bus = bus
        self._args = bytearray(12)

    def datetime(self, value=None):
        if value is None:
            return struct.unpack(_DATETIME, self._bus.call(OP_RTC_GET))
        sub = value[7] if len(value) > 7 else 0
        struct.pack_into(_DATETIME, self._args, 0, value[0], value[1], value[2], value[3], value[4],
                         value[5], value[6], sub)
        self._bus.call(OP_RTC_SET, self._args)
