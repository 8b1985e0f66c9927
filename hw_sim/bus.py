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
                        request  [op u8][args]             device -> host
                        reply    [op u8][result u8][data]  host -> device
                        One call is outstanding at a time (the firmware is single-threaded); UART
                        bytes that arrive while the device waits for a reply are queued, not lost.
    channel 2  CONTROL  device -> host: b"READY" once the firmware is up and serving.
                        host -> device: nothing yet.  Closing stdin is power-off.

HAL ops (ranges reserved so later devices slot in without renumbering).  Integers are big-endian.

    op   name              args                                  reply data
    0x01 RTC_GET           -                                     DATETIME
    0x02 RTC_SET           DATETIME                              -
    0x10 FLASH_READ        block u32, offset u32, length u16     the `length` bytes
    0x11 FLASH_WRITE       block u32, offset u32, bytes...       -
    0x12 FLASH_IOCTL       iop u8, arg i32                       -  (ioctl returned None) or value i32
         0x13-0x1F         fiscal-memory flash (reserved)
    0x20 SLOT_PRESENT      slot u8                               present u8 (0 or 1)
    0x21 SLOT_POWER_ON     slot u8                               ATR; empty = none (no card, mute)
    0x22 SLOT_POWER_OFF    slot u8                               -
    0x23 SLOT_TRANSMIT     slot u8, command APDU...              response APDU (data SW1 SW2)
         0x24-0x2F         card slots (reserved)
    0x30 NV_GET            keylen u8, key                        found u8, value...
    0x31 NV_PUT            keylen u8, key, value...              -
    0x32 NV_DELETE         keylen u8, key                        -
    0x40 PRINTER_WRITE     bytes...                              -

    DATETIME  year u16, month, day, weekday (0 = Monday), hours, minutes, seconds u8,
              subseconds u32 (microseconds): machine.RTC's 8-tuple in 12 bytes
    flash     the extended block-device protocol: FLASH_READ/FLASH_WRITE are readblocks/writeblocks
              (n, buf, offset); offset FFFFFFFF on FLASH_WRITE is MicroPython's simple protocol
              (writeblocks(n, buf): erase the blocks, then program them).  The device side keeps one
              call at most FLASH_CHUNK bytes, so a whole 4 KiB sector moves in one call each way.
    slot      0 = fiscal card slot, 1 = user card slot (hw_sim.cards.slot.CardSlot semantics)
    key       the nvram key, UTF-8, 1..255 bytes
    result    0 OK, 1 UNKNOWN_OP, 2 BAD_ARGS, 3 FAULT.  A FAULT reply's data is the errno (u16) of the
              device's OSError (no data: EIO), so a card pulled out (ENODEV) or mute (ETIMEDOUT)
              raises OSError with that errno in the firmware, as a board's driver would.  The device
              raises OSError(ENODEV) for UNKNOWN_OP and OSError(EINVAL) for BAD_ARGS.

Power cuts.  A device may end its power instead of answering (hw_sim.nor_flash.PowerLoss, a
BaseException): `HalService.handle` lets it propagate and the caller kills the firmware process, which
is blocked waiting for the reply, so the firmware runs nothing after the torn operation.  Cuts at a
chosen HAL step come from hw_sim.mains: the micropython backend (hw_sim.backends) hands HalService the
board's stepped devices (hw_sim.board.SimBoard.hal_devices, `stepped_board`), the same objects the in-process firmware gets as its HAL, so SLOT_TRANSMIT,
FLASH_WRITE, FLASH_IOCTL erase, NV_PUT and NV_DELETE are counted steps here exactly as transmit,
writeblocks, ioctl(6), put and delete are in process (the device side splits only a flash write
longer than FLASH_CHUNK, which the firmware never issues; tests/test_power_mpy.py compares the step
traces of both interpreters).  "Cut after" runs the step and
then loses its reply; "cut before" never runs it.

Why a bus and not in-process stubs: faults (power cuts, torn flash writes, mute cards) are injected on
the host side, where tests can reach them, and the firmware meets them through the same HAL calls a
real board answers.  Why no checksums: a pipe does not corrupt bytes; a message that breaks these rules
means the firmware program is broken (or printed to stdout), so `BusError` ends the simulation.

This module is the host side and does no I/O.  The device side is hw_sim/mpy/simbus.py; tests hold
both to the same byte literals.
"""

from __future__ import annotations

import errno as _errno
import struct
from collections.abc import Callable, Sequence

UART = 0
HAL = 1
CONTROL = 2
CHANNELS = (UART, HAL, CONTROL)

HEADER_LEN = 3
MAX_DATA = 8192  # the largest DATA either side sends; the device's receive buffer is this size
FLASH_CHUNK = 4096  # the largest FLASH_READ length / FLASH_WRITE data the device sends in one call

READY = b"READY"

OP_RTC_GET = 0x01
OP_RTC_SET = 0x02
OP_FLASH_READ = 0x10
OP_FLASH_WRITE = 0x11
OP_FLASH_IOCTL = 0x12
OP_SLOT_PRESENT = 0x20
OP_SLOT_POWER_ON = 0x21
OP_SLOT_POWER_OFF = 0x22
OP_SLOT_TRANSMIT = 0x23
OP_NV_GET = 0x30
OP_NV_PUT = 0x31
OP_NV_DELETE = 0x32
OP_PRINTER_WRITE = 0x40

RESULT_OK = 0
RESULT_UNKNOWN_OP = 1
RESULT_BAD_ARGS = 2
RESULT_FAULT = 3

SLOT_FISCAL = 0
SLOT_USER = 1
NO_OFFSET = 0xFFFFFFFF  # FLASH_WRITE: the simple block protocol (erase, then program whole blocks)

_HEADER = struct.Struct(">BH")
_DATETIME = struct.Struct(">HBBBBBBI")
_FLASH_RW = struct.Struct(">II")
_FLASH_READ = struct.Struct(">IIH")
_IOCTL = struct.Struct(">Bi")
_I32 = struct.Struct(">i")
_ERRNO = struct.Struct(">H")

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


def _key(args: bytes) -> tuple[str, bytes]:
    """(key, the bytes after it) of NV_* args; ValueError when malformed."""
    n = args[0] if args else 0
    if n == 0 or len(args) < 1 + n:
        raise ValueError("bad nvram key")
    return bytes(args[1:1 + n]).decode("utf-8"), args[1 + n:]


class HalService:
    """Answers the device's HAL calls from the board devices hw_sim owns.  Sans-IO: request in, reply out.

    Devices are optional: the ops of a device that is None answer UNKNOWN_OP.  `register(op, handler)`
    adds or replaces an op; a handler takes the args bytes and returns the reply data, raising ValueError
    for bad args (BAD_ARGS) or OSError for a device fault (FAULT with its errno).  Anything else a device
    raises (a BaseException such as PowerLoss) is not an answer and propagates.
    """

    def __init__(self, rtc, *, flash=None, slots: Sequence = (), nvram=None, printer=None) -> None:
        self.rtc = rtc
        self.flash = flash
        self.slots = list(slots)
        self.nvram = nvram
        self.printer = printer
        self.calls = 0
        self._ops: dict[int, Callable[[bytes], bytes]] = {}
        self.register(OP_RTC_GET, self._rtc_get)
        self.register(OP_RTC_SET, self._rtc_set)
        if flash is not None:
            self.register(OP_FLASH_READ, self._flash_read)
            self.register(OP_FLASH_WRITE, self._flash_write)
            self.register(OP_FLASH_IOCTL, self._flash_ioctl)
        if self.slots:
            self.register(OP_SLOT_PRESENT, lambda a: b"\x01" if self._slot(a, 1).present() else b"\x00")
            self.register(OP_SLOT_POWER_ON, lambda a: self._slot(a, 1).power_on() or b"")
            self.register(OP_SLOT_POWER_OFF, self._slot_power_off)
            self.register(OP_SLOT_TRANSMIT, self._slot_transmit)
        if nvram is not None:
            self.register(OP_NV_GET, self._nv_get)
            self.register(OP_NV_PUT, self._nv_put)
            self.register(OP_NV_DELETE, self._nv_delete)
        if printer is not None:
            self.register(OP_PRINTER_WRITE, self._print)

    def register(self, op: int, handler: Callable[[bytes], bytes]) -> None:
        self._ops[op] = handler

    def handle(self, request: bytes) -> bytes:
        self.calls += 1
        if not request:
            return rpc_reply(0, RESULT_BAD_ARGS)
        op = request[0]
        handler = self._ops.get(op)
        if handler is None:
            return rpc_reply(op, RESULT_UNKNOWN_OP)
        try:
            return rpc_reply(op, RESULT_OK, handler(request[1:]))
        except (ValueError, IndexError, struct.error):
            return rpc_reply(op, RESULT_BAD_ARGS)
        except OSError as e:
            code = e.errno if isinstance(e.errno, int) and 0 < e.errno <= 0xFFFF else _errno.EIO
            return rpc_reply(op, RESULT_FAULT, _ERRNO.pack(code))

    # ---- RTC ----------------------------------------------------------------------------------------
    def _rtc_get(self, args: bytes) -> bytes:
        if args:
            raise ValueError("RTC_GET takes no arguments")
        return pack_datetime(self.rtc.datetime())

    def _rtc_set(self, args: bytes) -> bytes:
        self.rtc.datetime(unpack_datetime(args))  # ValueError on an impossible date or time
        return b""

    # ---- flash --------------------------------------------------------------------------------------
    def _flash_read(self, args: bytes) -> bytes:
        block, offset, length = _FLASH_READ.unpack(args)
        if length > MAX_DATA - 2:
            raise ValueError("FLASH_READ longer than a reply")
        buf = bytearray(length)
        self.flash.readblocks(block, buf, offset)
        return bytes(buf)

    def _flash_write(self, args: bytes) -> bytes:
        block, offset = _FLASH_RW.unpack_from(args)
        data = args[_FLASH_RW.size:]
        self.flash.writeblocks(block, data, None if offset == NO_OFFSET else offset)
        return b""

    def _flash_ioctl(self, args: bytes) -> bytes:
        iop, arg = _IOCTL.unpack(args)
        value = self.flash.ioctl(iop, arg)
        return b"" if value is None else _I32.pack(value)

    # ---- card slots ---------------------------------------------------------------------------------
    def _slot(self, args: bytes, length: int):
        if len(args) < length or args[0] >= len(self.slots) or self.slots[args[0]] is None:
            raise ValueError("no such slot")
        return self.slots[args[0]]

    def _slot_power_off(self, args: bytes) -> bytes:
        self._slot(args, 1).power_off()
        return b""

    def _slot_transmit(self, args: bytes) -> bytes:
        return self._slot(args, 2).transmit(bytes(args[1:]))

    # ---- nvram and printer --------------------------------------------------------------------------
    def _nv_get(self, args: bytes) -> bytes:
        key, rest = _key(args)
        if rest:
            raise ValueError("NV_GET takes only a key")
        value = self.nvram.get(key)
        return b"\x00" if value is None else b"\x01" + bytes(value)

    def _nv_put(self, args: bytes) -> bytes:
        key, value = _key(args)
        self.nvram.put(key, bytes(value))
        return b""

    def _nv_delete(self, args: bytes) -> bytes:
        key, rest = _key(args)
        if rest:
            raise ValueError("NV_DELETE takes only a key")
        self.nvram.delete(key)
        return b""

    def _print(self, args: bytes) -> bytes:
        self.printer.write(bytes(args))
        return b""
