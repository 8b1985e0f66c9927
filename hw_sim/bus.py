"""Board bus: how hw_sim owns the board of a till whose firmware runs in a MicroPython subprocess.

The firmware process has no devices of its own.  Its stdin (host -> device) and stdout (device -> host)
carry one multiplexed byte stream of messages:

    offset size   field
    0      1      CHANNEL
    1      2      LENGTH   big-endian, 0..MAX_DATA
    3      LENGTH DATA

    channel 0  UART     the till's host-link UART.  host -> device: bytes a POS sent to the till;
                        device -> host: bytes the till transmits.  Chunking carries no meaning.
    channel 1  HAL      remote calls to the board's devices; the device is the caller.
                        request  [op u8][args]          device -> host
                        reply    [op u8][result u8][data]  host -> device
                        One call is outstanding at a time (the firmware is single-threaded); UART
                        bytes that arrive while the device waits for a reply are queued, not lost.
    channel 2  CONTROL  device -> host: b"READY" once the firmware is up and serving.
                        host -> device: nothing yet.  Closing stdin is power-off.

HAL ops (ranges reserved so later devices slot in without renumbering):

    0x01 RTC_GET   args -         data DATETIME
    0x02 RTC_SET   args DATETIME  data -
    0x10-0x1F      fiscal-memory flash blocks (reserved)
    0x20-0x2F      card slots: power on, APDU, presence (reserved)

    DATETIME  year u16, month, day, weekday (0 = Monday), hours, minutes, seconds u8,
              subseconds u32 (microseconds): machine.RTC's 8-tuple in 12 bytes
    result    0 OK, 1 UNKNOWN_OP, 2 BAD_ARGS, 3 FAULT (the device failed: the firmware must cope)

Why a bus and not in-process stubs: faults (power cuts, torn flash writes, mute cards) are injected on
the host side, where tests can reach them, and the firmware meets them through the same HAL calls a
real board answers.  Why no checksums: a pipe does not corrupt bytes; a message that breaks these rules
means the firmware program is broken (or printed to stdout), so `BusError` ends the simulation.

This module is the host side and does no I/O.  The device side is hw_sim/mpy/simbus.py; tests hold
both to the same byte literals.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

UART = 0
HAL = 1
CONTROL = 2
CHANNELS = (UART, HAL, CONTROL)

HEADER_LEN = 3
MAX_DATA = 8192  # the largest DATA either side sends; the device's receive buffer is this size

READY = b"READY"

OP_RTC_GET = 0x01
OP_RTC_SET = 0x02

RESULT_OK = 0
RESULT_UNKNOWN_OP = 1
RESULT_BAD_ARGS = 2
RESULT_FAULT = 3

_HEADER = struct.Struct(">BH")
_DATETIME = struct.Struct(">HBBBBBBI")

Message = tuple[int, bytes]
DateTuple = tuple[int, int, int, int, int, int, int, int]


class BusError(Exception):
    """The stream broke the bus rules: the firmware process is not speaking the bus."""


def encode(channel: int, data: bytes | bytearray = b"") -> bytes:
    if channel not in CHANNELS:
        raise ValueError("unknown bus channel %d" % channel)
    if len(data) > MAX_DATA:
        raise ValueError("bus message of %d bytes > MAX_DATA %d" % (len(data), MAX_DATA))
    return _HEADER.pack(channel, len(data)) + bytes(data)


def encode_uart(data: bytes | bytearray) -> bytes:
    """UART bytes of any length, split into as many channel-0 messages as needed."""
    return b"".join(encode(UART, data[i:i + MAX_DATA]) for i in range(0, len(data), MAX_DATA))


def decode(buf: bytes | bytearray) -> tuple[int, Message | None]:
    """(used, message): used == 0 means "need more bytes"; the caller drops `used` from the front."""
    if len(buf) < HEADER_LEN:
        return 0, None
    channel, length = _HEADER.unpack_from(buf)
    if channel not in CHANNELS or length > MAX_DATA:
        raise BusError("not a bus message: %s... (did the firmware print to stdout?)"
                       % bytes(buf[:16]).hex(" "))
    end = HEADER_LEN + length
    if len(buf) < end:
        return 0, None
    return end, (channel, bytes(buf[HEADER_LEN:end]))


class BusReceiver:
    """Accumulates the device's stdout and returns whole messages."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self.buf += data
        out: list[Message] = []
        while True:
            used, msg = decode(self.buf)
            if msg is None:
                return out
            del self.buf[:used]
            out.append(msg)


def pack_datetime(t: tuple[int, ...]) -> bytes:
    return _DATETIME.pack(*t)


def unpack_datetime(data: bytes) -> DateTuple:
    return _DATETIME.unpack(data)  # type: ignore[return-value]


def rpc_request(op: int, args: bytes = b"") -> bytes:
    return bytes([op]) + args


def rpc_reply(op: int, result: int, data: bytes = b"") -> bytes:
    return bytes([op, result]) + data


class HalService:
    """Answers the device's HAL calls from the board devices hw_sim owns.  Sans-IO: request in, reply out.

    Later devices add ops with `register(op, handler)`; a handler takes the args bytes and returns the
    reply data, raising ValueError for bad args (BAD_ARGS) or OSError for a device fault (FAULT).
    """

    def __init__(self, rtc) -> None:
        self.rtc = rtc
        self._ops: dict[int, Callable[[bytes], bytes]] = {}
        self.register(OP_RTC_GET, self._rtc_get)
        self.register(OP_RTC_SET, self._rtc_set)

    def register(self, op: int, handler: Callable[[bytes], bytes]) -> None:
        self._ops[op] = handler

    def handle(self, request: bytes) -> bytes:
        if not request:
            return rpc_reply(0, RESULT_BAD_ARGS)
        op = request[0]
        handler = self._ops.get(op)
        if handler is None:
            return rpc_reply(op, RESULT_UNKNOWN_OP)
        try:
            return rpc_reply(op, RESULT_OK, handler(request[1:]))
        except (ValueError, struct.error):
            return rpc_reply(op, RESULT_BAD_ARGS)
        except OSError:
            return rpc_reply(op, RESULT_FAULT)

    def _rtc_get(self, args: bytes) -> bytes:
        if args:
            raise ValueError("RTC_GET takes no arguments")
        return pack_datetime(self.rtc.datetime())

    def _rtc_set(self, args: bytes) -> bytes:
        self.rtc.datetime(unpack_datetime(args))  # ValueError on an impossible date or time
        return b""
