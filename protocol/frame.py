"""Host-link frame: what crosses the serial line between a till and its host (a POS or a bureau station).

    offset size field
    0      1    SOF      0xA5
    1      1    KIND     0x51 'Q' request, 0x52 'R' reply, 0x4B 'K' keep-alive (till to host, empty)
    2      1    COMMAND  command code (a reply echoes its request's)
    3      4    RID      request id, chosen by the host; a reply echoes it
    7      2    STATUS   0 in requests; in replies the status word (protocol.errors)
    9      2    LENGTH   payload bytes, 0..MAX_PAYLOAD
    11     1    HCRC     CRC-8 (poly 0x07, init 0) over bytes 0..10
    12     LENGTH       PAYLOAD
    12+L   4    CRC      CRC-32 (IEEE, as zlib/binascii) over bytes 0..11+L

Why a header CRC: a false SOF inside noise would otherwise announce up to 4 KiB of "payload" and stall the
receiver until that many bytes arrived; with HCRC a false header is rejected at byte 12.

Receiving (the rule both codecs follow): hunt for SOF, discarding every other byte; once 12 bytes are
buffered check HCRC, KIND and LENGTH <= MAX_PAYLOAD, else drop the SOF byte and hunt again from the next
byte; once the whole frame is buffered check CRC, else drop the SOF byte and hunt again (the real frame may
start inside the bad one).  A frame that passes is delivered and consumed whole.  Nothing in a frame that
fails a check is answered: its fields cannot be trusted, and the host retries with the same RID.

Keep-alive.  While a request runs longer than a short while (a multi-year back-fill of daily records,
a recovery, a long read-out on a slow board) the till sends keep-alive frames: KIND 0x4B 'K', the
COMMAND and RID of the request, STATUS 0, LENGTH 0, at least every KEEPALIVE_INTERVAL_MS (250 ms) until
the reply (as Datecs printers send SYN while busy).  A request that is answered within the interval gets
none.  A keep-alive is never a reply: it carries no status and no data, and a host must not take it
for one.  A host restarts its reply timer on each keep-alive of its pending request (same COMMAND and
RID), still bounding the whole wait by a hang guard of its own, and ignores keep-alives of any other
request.  Keep-alives go from till to host only; the till ignores any it receives.  Example, for
ISSUE_INVOICE (0x20) with RID 0x01020304:  a5 4b 20 01 02 03 04 00 00 00 00 c3 dc fe 40 a3.

Overhead is 16 bytes, so a full READ_JOURNAL reply moves 4088 journal bytes in 4112 wire bytes (0.994).
"""

from __future__ import annotations

import zlib

import construct as cs

SOF = 0xA5
KIND_REQUEST = 0x51
KIND_REPLY = 0x52
KIND_KEEPALIVE = 0x4B  # the till is still working on the request (COMMAND and RID echo it), no payload
KINDS = (KIND_REQUEST, KIND_REPLY, KIND_KEEPALIVE)
KEEPALIVE_INTERVAL_MS = 250  # while busy the till sends a keep-alive at least this often
HEADER_LEN = 12
TRAILER_LEN = 4
OVERHEAD = HEADER_LEN + TRAILER_LEN
MAX_PAYLOAD = 4096


def _crc8_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc << 1 ^ 0x07) & 0xFF if crc & 0x80 else crc << 1 & 0xFF
        table[i] = crc
    return bytes(table)


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, init 0, no reflection (CRC-8/SMBUS; check("123456789") == 0xF4)."""
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC, the one in zlib and MicroPython's binascii (check("123456789") == 0xCBF43926)."""
    return zlib.crc32(data) & 0xFFFFFFFF


HeaderFields = cs.Struct(
    "sof" / cs.Const(bytes([SOF])),
    "kind" / cs.OneOf(cs.Int8ub, list(KINDS)),
    "command" / cs.Int8ub,
    "rid" / cs.Int32ub,
    "status" / cs.Int16ub,
    "length" / cs.Int16ub,
)

Frame = cs.Struct(
    "header" / cs.RawCopy(HeaderFields),
    cs.Check(cs.this.header.value.length <= MAX_PAYLOAD),
    "hcrc" / cs.Checksum(cs.Int8ub, crc8, cs.this.header.data),
    "payload" / cs.Bytes(cs.this.header.value.length),
    "crc" / cs.Checksum(
        cs.Int32ub, crc32, lambda ctx: ctx.header.data + bytes([ctx.hcrc]) + ctx.payload
    ),
)


def build_frame(kind: int, command: int, rid: int, status: int, payload: bytes) -> bytes:
    """One frame's bytes.  Raises construct errors on out-of-range fields or an oversize payload."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload %d bytes > MAX_PAYLOAD %d" % (len(payload), MAX_PAYLOAD))
    head = dict(kind=kind, command=command, rid=rid, status=status, length=len(payload))
    return Frame.build(dict(header=dict(value=head), hcrc=None, payload=payload, crc=None))


def parse_frame(data: bytes) -> dict:
    """Parse exactly one frame; returns kind, command, rid, status, payload.  Raises on any check."""
    f = Frame.parse(data)
    h = f.header.value
    if len(data) != HEADER_LEN + h.length + TRAILER_LEN:
        raise cs.StreamError("trailing bytes after frame")
    return dict(kind=h.kind, command=h.command, rid=h.rid, status=h.status, payload=f.payload)


def request(command: int, rid: int, payload: bytes = b"") -> bytes:
    return build_frame(KIND_REQUEST, command, rid, 0, payload)


def reply(command: int, rid: int, status: int, payload: bytes = b"") -> bytes:
    return build_frame(KIND_REPLY, command, rid, status, payload)


def decode(buf: bytes | bytearray) -> tuple[int, dict | None]:
    """pymodbus-style stream decoding: (used, frame).  The caller drops `used` bytes from the front.

    used > 0 with frame None: garbage or a failed frame was skipped, call again; used == 0 with frame
    None: need more bytes; frame not None: one good frame, `used` bytes long.
    """
    used, f, _why = _decode(buf)
    return used, f


def _decode(buf: bytes | bytearray) -> tuple[int, dict | None, str]:
    start = buf.find(bytes([SOF]))
    if start < 0:
        return len(buf), None, "garbage"
    if start:
        return start, None, "garbage"
    if len(buf) < HEADER_LEN:
        return 0, None, ""
    length = buf[9] << 8 | buf[10]
    if crc8(bytes(buf[:11])) != buf[11] or length > MAX_PAYLOAD or buf[1] not in KINDS:
        return 1, None, "header"
    total = HEADER_LEN + length + TRAILER_LEN
    if len(buf) < total:
        return 0, None, ""
    try:
        return total, parse_frame(bytes(buf[:total])), ""
    except (cs.ConstructError, ValueError):
        return 1, None, "crc"


class FrameReceiver:
    """Accumulates bytes and returns frames by the rule of `decode()`: the host side's receiver.

    Counts what it threw away, as the firmware's FrameDecoder does: `discarded` bytes in all, of which
    `bad_header` false or damaged headers and `bad_crc` whole frames that failed their CRC-32.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.discarded = 0
        self.bad_header = 0
        self.bad_crc = 0

    def feed(self, data: bytes) -> list[dict]:
        self.buf += data
        frames = []
        while self.buf:
            used, frame, why = _decode(self.buf)
            if used == 0:
                break
            del self.buf[:used]
            if frame is not None:
                frames.append(frame)
                continue
            self.discarded += used
            if why == "header":
                self.bad_header += 1
            elif why == "crc":
                self.bad_crc += 1
        return frames
