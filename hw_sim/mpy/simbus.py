"""Device side of the board bus: the till's UART, RTC, flash, card slots, nvram and printer reached over
stdin/stdout.

The wire format, channels and HAL ops are specified in hw_sim/bus.py (the host side); tests hold both
sides to the same byte literals.  MicroPython code: buffers are allocated once and small (Bus explains
how UART and flash data avoid staging copies), and the host is trusted to keep to the spec (a pipe does
not corrupt bytes).

    bus = Bus(sys.stdin.buffer, sys.stdout.buffer)
    board = Board(uart=BusUART(bus), rtc=BusRTC(bus), flash=BusFlash(bus), fiscal_slot=BusSlot(bus, 0),
                  user_slot=BusSlot(bus, 1), nvram=BusNvram(bus), printer=BusPrinter(bus), ...)
    bus.send(CONTROL, b"READY")
    while True:
        bus.pump()                     # blocks for one message; raises PowerOff at EOF
        ... serve the UART ...

UART bytes that arrive while the device waits for a HAL reply are queued; a queue overflow drops the
newest bytes and counts them in `overruns`, as a UART's receive FIFO would.  A device fault comes back
as OSError(errno) with the host device's errno.  PowerOff is a BaseException, like the end of power: the
firmware's own `except Exception` must not swallow it.
"""

import gc
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
FLASH_CHUNK = const(4096)
_QUEUE = const(8192)

OP_RTC_GET = const(0x01)
OP_RTC_SET = const(0x02)
OP_FLASH_READ = const(0x10)
OP_FLASH_WRITE = const(0x11)
OP_FLASH_IOCTL = const(0x12)
OP_SLOT_PRESENT = const(0x20)
OP_SLOT_POWER_ON = const(0x21)
OP_SLOT_POWER_OFF = const(0x22)
OP_SLOT_TRANSMIT = const(0x23)
OP_NV_GET = const(0x30)
OP_NV_PUT = const(0x31)
OP_NV_DELETE = const(0x32)
OP_PRINTER_WRITE = const(0x40)

_RESULT_OK = const(0)
_RESULT_FAULT = const(3)
_RESULT_ERRNO = (0, 19, 22, 5)  # OK, UNKNOWN_OP -> ENODEV, BAD_ARGS -> EINVAL, FAULT -> EIO
_EIO = const(5)
_EINVAL = const(22)
_NO_OFFSET = const(0xFFFFFFFF)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_DATETIME = ">HBBBBBBI"
_mem_alloc = getattr(gc, "mem_alloc", None)  # MicroPython only; the tests run this module on CPython too
_REQ = const(3)  # where a HAL request starts in the transmit buffer: after its channel header
_TX_ROOM = const(512)  # args + data of a request sent in one write; longer data follows separately
_SMALL = const(512)  # reply data other than a flash read: APDU responses (<= 258), ATRs, nvram values


class PowerOff(BaseException):
    """The host closed the bus: the board lost power."""


class Bus:
    """Theory of operation: the device keeps no message-sized staging buffer.  UART data is read from
    stdin straight into the receive queue, a FLASH_READ reply straight into the caller's buffer, and
    other replies (APDU responses, ATRs, nvram values) into a small buffer; a request is one write when
    its args and data fit the small transmit buffer, else the data follows from the caller's buffer.
    So a 4 KiB sector crosses the bus without a copy, and the bus costs ~10 KiB of heap, most of it the
    UART queue."""

    def __init__(self, rx, tx):
        self._rx = rx
        self._tx = tx
        self._hdr = bytearray(3)  # received header; its first two bytes also take a reply's op and result
        self._hdrv = memoryview(self._hdr)
        self._htx = bytearray(3)  # header of a UART message sent
        self._req = bytearray(_REQ + 1 + _TX_ROOM)  # header + op + args (+ data when it fits)
        self._reqv = memoryview(self._req)
        self._argv = self._reqv[_REQ + 1:]
        self._small = bytearray(_SMALL)
        self._smallv = memoryview(self._small)
        self._q = bytearray(_QUEUE)
        self._qv = memoryview(self._q)
        self._qs = 0
        self._qe = 0
        self.overruns = 0
        self.heap_peak = 0  # highest gc.mem_alloc() seen at a HAL call (bench_till_mpy.py reads it)

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

    def _skip(self, n):
        while n:
            k = min(n, _SMALL)
            self._read_exact(self._smallv[:k])
            n -= k

    def _take(self, n):
        """The next n bytes of the stream: a view of the small buffer (valid until the next read), or a
        new buffer for an unusually long reply."""
        mv = self._smallv[:n] if n <= _SMALL else memoryview(bytearray(n))
        self._read_exact(mv)
        return mv

    def _header(self):
        self._read_exact(self._hdrv)
        n = self._hdr[1] << 8 | self._hdr[2]
        if n > MAX_DATA:
            raise OSError(_EIO, "bus")
        return self._hdr[0], n

    def _next(self):
        """Read messages until one that is not UART (UART data goes to the queue); (channel, length) of
        that one, its data not yet read."""
        while True:
            channel, n = self._header()
            if channel != UART:
                return channel, n
            self._enqueue_stream(n)

    def receive(self):
        """Block for one message: (channel, memoryview of its data, valid until the next receive)."""
        channel, n = self._header()
        return channel, self._take(n)

    def pump(self):
        """Wait for one message and take it in: UART bytes are queued, anything else is dropped."""
        channel, n = self._header()
        if channel == UART:
            self._enqueue_stream(n)
        else:
            self._skip(n)
        return channel

    # ---- HAL calls ---------------------------------------------------------------------------------
    def args(self):
        """The request buffer after the op byte: write a call's args here, then call(op, n)."""
        return self._argv

    def call(self, op, n=0, tail=None, into=None):
        """One HAL call with `n` args bytes already in args(), then `tail` (bytes-like) after them.
        Returns the reply data: read into `into` (which it must fill exactly) if given, else a memoryview
        valid until the next call.  Errors as OSError(errno)."""
        if _mem_alloc is not None:
            a = _mem_alloc()
            if a > self.heap_peak:
                self.heap_peak = a
        k = 0 if tail is None else len(tail)
        if n + k + 1 > MAX_DATA:
            raise ValueError("HAL request too long")
        d = self._req
        inline = k <= _TX_ROOM - n
        if k and inline:
            d[_REQ + 1 + n:_REQ + 1 + n + k] = tail
        m = n + k + 1
        d[0] = HAL
        d[1] = m >> 8
        d[2] = m & 0xFF
        d[_REQ] = op
        if inline:
            self._tx.write(self._reqv[:_REQ + m])  # header and request in one write
        else:
            self._tx.write(self._reqv[:_REQ + 1 + n])
            self._tx.write(tail)
        while True:
            channel, m = self._next()
            if channel == HAL:
                break
            self._skip(m)
        if m < 2:
            self._skip(m)
            raise OSError(_EIO, "bus")
        self._read_exact(self._hdrv[:2])
        m -= 2
        if self._hdr[0] != op:
            self._skip(m)
            raise OSError(_EIO, "bus")
        r = self._hdr[1]
        if r != _RESULT_OK:
            data = self._take(m)
            # (errno, text): .errno is set under CPython too, where the tests run this module
            if r == _RESULT_FAULT and m >= 2:
                raise OSError(data[0] << 8 | data[1], "device")
            raise OSError(_RESULT_ERRNO[r] if r < len(_RESULT_ERRNO) else _EIO, "bus")
        if into is None:
            return self._take(m)
        if m != len(into):
            self._skip(m)
            raise OSError(_EIO, "bus")
        self._read_exact(into)
        return into

    # ---- UART receive queue ------------------------------------------------------------------------
    def _room(self, n):
        """Make the queue's free space contiguous if `n` bytes would not fit after its end."""
        if self._qe + n > _QUEUE and self._qs:
            live = self._qe - self._qs
            self._q[0:live] = self._q[self._qs:self._qe]
            self._qs = 0
            self._qe = live

    def _enqueue_stream(self, n):
        self._room(n)
        k = min(n, _QUEUE - self._qe)
        self._read_exact(self._qv[self._qe:self._qe + k])
        self._qe += k
        if n > k:  # the FIFO is full: the rest is lost
            self._skip(n - k)
            self.overruns += n - k

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

    def datetime(self, value=None):
        bus = self._bus
        if value is None:
            return struct.unpack(_DATETIME, bus.call(OP_RTC_GET))
        sub = value[7] if len(value) > 7 else 0
        struct.pack_into(_DATETIME, bus.args(), 0, value[0], value[1], value[2], value[3], value[4],
                         value[5], value[6], sub)
        bus.call(OP_RTC_SET, 12)


class BusFlash:
    """The fiscal-memory flash as an extended block device (readblocks / writeblocks / ioctl), like
    rp2.Flash or esp32.Partition; the NOR model lives in hw_sim.  Geometry is asked once and kept."""

    def __init__(self, bus):
        self._bus = bus
        self.block_count = self._ioctl(_IOCTL_BLOCK_COUNT, 0)
        self.block_size = self._ioctl(_IOCTL_BLOCK_SIZE, 0)

    def readblocks(self, block_num, buf, offset=0):
        bus = self._bus
        bs = self.block_size
        mv = memoryview(buf)
        n = len(mv)
        done = 0
        while done < n:
            k = min(n - done, FLASH_CHUNK)
            a = offset + done
            struct.pack_into(">IIH", bus.args(), 0, block_num + a // bs, a % bs, k)
            bus.call(OP_FLASH_READ, 10, None, mv[done:done + k])  # straight into the caller's buffer
            done += k

    def writeblocks(self, block_num, buf, offset=None):
        bus = self._bus
        bs = self.block_size
        mv = memoryview(buf)
        n = len(mv)
        done = 0
        while done < n:
            if offset is None:  # simple protocol: whole blocks, each erased by the host first
                k = min(n - done, bs)
                blk, off = block_num + done // bs, _NO_OFFSET
            else:
                k = min(n - done, FLASH_CHUNK)
                a = offset + done
                blk, off = block_num + a // bs, a % bs
            struct.pack_into(">II", bus.args(), 0, blk, off)
            bus.call(OP_FLASH_WRITE, 8, mv[done:done + k])
            done += k

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        return self._ioctl(op, arg)

    def _ioctl(self, op, arg):
        bus = self._bus
        struct.pack_into(">Bi", bus.args(), 0, op, arg or 0)
        data = bus.call(OP_FLASH_IOCTL, 5)
        if len(data) < 4:
            return None
        return struct.unpack(">i", data)[0]


class BusSlot:
    """A card reader slot (0 fiscal, 1 user): present / power_on / power_off / transmit.  A card pulled
    out or mute raises OSError(ENODEV / ETIMEDOUT) as the host slot does."""

    def __init__(self, bus, slot):
        self._bus = bus
        self.slot = slot

    def _call(self, op, tail=None):
        bus = self._bus
        bus.args()[0] = self.slot
        return bus.call(op, 1, tail)

    def present(self):
        return self._call(OP_SLOT_PRESENT)[0] == 1

    def power_on(self):
        atr = self._call(OP_SLOT_POWER_ON)
        return bytes(atr) if len(atr) else None

    reset = power_on

    def power_off(self):
        self._call(OP_SLOT_POWER_OFF)

    def transmit(self, apdu):
        return bytes(self._call(OP_SLOT_TRANSMIT, apdu))


class BusNvram:
    """The board's small durable memory (fiscal_till.nvram's contract) kept by hw_sim in a folder."""

    def __init__(self, bus):
        self._bus = bus

    def _key(self, key):
        k = key.encode()
        n = len(k)
        if not 0 < n < 256:
            raise OSError(_EINVAL, "nvram key")
        a = self._bus.args()
        a[0] = n
        a[1:1 + n] = k
        return n + 1

    def get(self, key):
        data = self._bus.call(OP_NV_GET, self._key(key))
        return bytes(data[1:]) if data[0] else None

    def put(self, key, value):
        self._bus.call(OP_NV_PUT, self._key(key), value)

    def delete(self, key):
        self._bus.call(OP_NV_DELETE, self._key(key))


class BusPrinter:
    """The receipt printer: write(bytes) -> count; paper out or a fault raises OSError(errno)."""

    def __init__(self, bus):
        self._bus = bus

    def write(self, buf):
        self._bus.call(OP_PRINTER_WRITE, 0, buf)
        return len(buf)
