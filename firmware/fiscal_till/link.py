"""Sans-IO host link: bytes in, whole frames out; replies encoded into a buffer the caller owns.

The frame layout and the resynchronisation rule are specified in protocol/frame.py; this is the
firmware's own implementation of them (tests prove both agree, frame by frame and byte by byte).

    dec = FrameDecoder()
    n = uart.readinto(mv[:dec.room()])  # never feed more than room()
    dec.feed(mv[:n])
    while True:
        f = dec.next_frame()           # None: need more bytes
        if f is None: break
        kind, command, rid, status, payload = f

The receive buffer is allocated once; feed() raises ValueError when given more than room(), which is
always at least one maximum frame once the frames already buffered have been taken out.
"""

import struct

from .crc import crc8, crc32

try:
    from micropython import const
except ImportError:
    def const(x):  # type: ignore[misc]
        return x

SOF = const(0xA5)
KIND_REQUEST = const(0x51)
KIND_REPLY = const(0x52)
KIND_KEEPALIVE = const(0x4B)
HEADER_LEN = const(12)
TRAILER_LEN = const(4)
OVERHEAD = const(16)
MAX_PAYLOAD = const(4096)
MAX_FRAME = const(4112)


class FrameDecoder:
    """Hunts for frames in a byte stream; counts what it had to throw away."""

    def __init__(self, max_payload=MAX_PAYLOAD, extra=512):
        self.max_payload = max_payload
        self._buf = bytearray(max_payload + OVERHEAD + extra)
        self._start = 0
        self._end = 0
        self.discarded = 0  # bytes dropped while hunting for SOF or after a failed check
        self.bad_header = 0
        self.bad_crc = 0

    def room(self):
        return len(self._buf) - (self._end - self._start)

    def feed(self, data):
        n = len(data)
        if n > self.room():
            raise ValueError("feed more than room()")
        buf = self._buf
        if self._end + n > len(buf):
            live = self._end - self._start
            buf[0:live] = buf[self._start:self._end]
            self._start = 0
            self._end = live
        buf[self._end:self._end + n] = data
        self._end += n

    def buffered(self):
        return self._end - self._start

    def reset(self):
        """Drop everything buffered (after a line break or port reopen)."""
        self.discarded += self._end - self._start
        self._start = self._end = 0

    def next_frame(self):
        """Return (kind, command, rid, status, payload) for the next good frame, or None for more bytes."""
        buf = self._buf
        while True:
            s = self._start
            e = self._end
            while s < e and buf[s] != SOF:
                s += 1
            self.discarded += s - self._start
            self._start = s
            if e - s < HEADER_LEN:
                return None
            kind = buf[s + 1]
            length = buf[s + 9] << 8 | buf[s + 10]
            if (crc8(buf, s, s + 11) != buf[s + 11] or length > self.max_payload
                    or (kind != KIND_REQUEST and kind != KIND_REPLY and kind != KIND_KEEPALIVE)):
                self.bad_header += 1
                self._drop_one()
                continue
            total = HEADER_LEN + length + TRAILER_LEN
            if e - s < total:
                return None
            p = s + HEADER_LEN + length
            got = buf[p] << 24 | buf[p + 1] << 16 | buf[p + 2] << 8 | buf[p + 3]
            if crc32(memoryview(buf)[s:p]) != got:
                self.bad_crc += 1
                self._drop_one()
                continue
            command = buf[s + 2]
            rid, status = struct.unpack_from(">IH", buf, s + 3)
            payload = bytes(buf[s + HEADER_LEN:p])
            self._start = s + total
            if self._start == self._end:
                self._start = self._end = 0
            return kind, command, rid, status, payload

    def _drop_one(self):
        self._start += 1
        self.discarded += 1


def finish_frame(buf, kind, command, rid, status, length):
    """Write header and CRC around a payload already placed at buf[12:12+length]; returns frame size."""
    if length > MAX_PAYLOAD or length < 0:
        raise ValueError("payload length")
    buf[0] = SOF
    buf[1] = kind
    buf[2] = command
    struct.pack_into(">IHH", buf, 3, rid, status, length)
    buf[11] = crc8(buf, 0, 11)
    p = HEADER_LEN + length
    struct.pack_into(">I", buf, p, crc32(memoryview(buf)[0:p]))
    return p + TRAILER_LEN


def build_frame(kind, command, rid, status, payload):
    """A whole frame as bytes (allocates; for hosts and tests)."""
    n = len(payload)
    buf = bytearray(HEADER_LEN + n + TRAILER_LEN)
    buf[HEADER_LEN:HEADER_LEN + n] = payload
    finish_frame(buf, kind, command, rid, status, n)
    return bytes(buf)
