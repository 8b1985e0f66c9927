"""Board bus: the host codec (hw_sim.bus) and the device side (hw_sim/mpy/simbus.py), held to the same
byte literals, one behaviour per test.  The device side is plain MicroPython-compatible Python, so it
runs here under CPython against in-memory streams."""
from __future__ import annotations

import errno
import io
import sys
from pathlib import Path

import pytest

from hw_sim import bus

sys.path.insert(0, str(Path(bus.__file__).parent / "mpy"))
import simbus  # noqa: E402

NOV27 = (2026, 11, 27, 4, 14, 30, 5, 123456)
NOV27_BYTES = bytes.fromhex("07ea 0b1b 04 0e 1e 05 0001e240")

LITERALS = [  # (channel, data, wire)
    (bus.UART, b"\xa5\x51", b"\x00\x00\x02\xa5\x51"),
    (bus.HAL, b"\x01", b"\x01\x00\x01\x01"),
    (bus.CONTROL, b"READY", b"\x02\x00\x05READY"),
    (bus.UART, b"", b"\x00\x00\x00"),
    (bus.UART, bytes(300), b"\x00\x01\x2c" + bytes(300)),
]


class Trickle(io.RawIOBase):
    """A stdin that hands out at most `step` bytes per read, as a pipe may."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readinto(self, mv) -> int:
        n = min(len(mv), self.step, len(self.data) - self.pos)
        mv[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


class FakeRTC:
    def __init__(self) -> None:
        self.value = NOV27
        self.set_to: tuple | None = None

    def datetime(self, value=None):
        if value is None:
            return self.value
        self.set_to = tuple(value)


def device(wire: bytes, step: int = 1) -> tuple[simbus.Bus, io.BytesIO]:
    out = io.BytesIO()
    return simbus.Bus(Trickle(wire, step), out), out


# ------------------------------------------------------------------------------------------ host codec
@pytest.mark.parametrize("channel,data,wire", LITERALS)
def test_host_encode_and_decode(channel, data, wire):
    assert bus.encode(channel, data) == wire
    assert bus.decode(wire) == (len(wire), (channel, data))


def test_constants_agree_between_sides():
    assert (bus.UART, bus.HAL, bus.CONTROL) == (simbus.UART, simbus.HAL, simbus.CONTROL)
    assert (bus.MAX_DATA, bus.OP_RTC_GET, bus.OP_RTC_SET) == (
        simbus.MAX_DATA, simbus.OP_RTC_GET, simbus.OP_RTC_SET)


def test_decode_needs_more_bytes():
    assert bus.decode(b"") == (0, None)
    assert bus.decode(b"\x00\x00") == (0, None)
    assert bus.decode(b"\x00\x00\x03ab") == (0, None)


def test_two_messages_in_one_read():
    rx = bus.BusReceiver()
    assert rx.feed(b"\x02\x00\x05READY\x00\x00\x01\xa5") == [(bus.CONTROL, b"READY"), (bus.UART, b"\xa5")]
    assert rx.buf == b""


def test_message_split_byte_by_byte():
    rx = bus.BusReceiver()
    wire = b"\x01\x00\x0e\x01\x00" + NOV27_BYTES
    got = [m for b in wire for m in rx.feed(bytes([b]))]
    assert got == [(bus.HAL, b"\x01\x00" + NOV27_BYTES)]


def test_message_split_across_header():
    rx = bus.BusReceiver()
    assert rx.feed(b"\x00\x00") == []
    assert rx.feed(b"\x02ab\x00") == [(bus.UART, b"ab")]
    assert rx.feed(b"\x00\x00") == [(bus.UART, b"")]


@pytest.mark.parametrize("wire", [b"\x03\x00\x00", b"\x00\x20\x01", b"Traceback (most recent"])
def test_not_a_bus_message_is_an_error(wire):
    with pytest.raises(bus.BusError, match="not a bus message"):
        bus.decode(wire)


def test_encode_refuses_what_the_device_cannot_take():
    with pytest.raises(ValueError):
        bus.encode(bus.UART, bytes(bus.MAX_DATA + 1))
    with pytest.raises(ValueError):
        bus.encode(7, b"")


def test_encode_uart_splits_long_data():
    wire = bus.encode_uart(bytes(bus.MAX_DATA + 5))
    assert wire[:3] == b"\x00\x20\x00" and wire[3 + bus.MAX_DATA:6 + bus.MAX_DATA] == b"\x00\x00\x05"
    assert bus.BusReceiver().feed(wire) == [(bus.UART, bytes(bus.MAX_DATA)), (bus.UART, bytes(5))]


def test_datetime_layout():
    assert bus.pack_datetime(NOV27) == NOV27_BYTES
    assert bus.unpack_datetime(NOV27_BYTES) == NOV27


# ------------------------------------------------------------------------------------------ HAL service
def test_hal_rtc_get():
    assert bus.HalService(FakeRTC()).handle(b"\x01") == b"\x01\x00" + NOV27_BYTES


def test_hal_rtc_set():
    rtc = FakeRTC()
    assert bus.HalService(rtc).handle(b"\x02" + NOV27_BYTES) == b"\x02\x00"
    assert rtc.set_to == NOV27


@pytest.mark.parametrize("request_,reply", [
    (b"\x7f", b"\x7f\x01"),  # unknown op
    (b"\x01\x00", b"\x01\x02"),  # RTC_GET takes no arguments
    (b"\x02\x07\xea", b"\x02\x02"),  # short DATETIME
    (b"", b"\x00\x02"),
])
def test_hal_refusals(request_, reply):
    assert bus.HalService(FakeRTC()).handle(request_) == reply


def test_hal_rtc_set_impossible_date_is_bad_args():
    from hw_sim.rtc import SimRTC
    feb30 = bus.pack_datetime((2026, 2, 30, 0, 0, 0, 0, 0))
    assert bus.HalService(SimRTC()).handle(b"\x02" + feb30) == b"\x02\x02"


def test_hal_device_fault():
    hal = bus.HalService(FakeRTC())

    def torn(args: bytes) -> bytes:
        raise OSError(errno.EIO, "torn write")
    hal.register(0x11, torn)
    assert hal.handle(b"\x11\x00") == b"\x11\x03"


# ------------------------------------------------------------------------------------------ device side
@pytest.mark.parametrize("channel,data,wire", LITERALS)
def test_device_send(channel, data, wire):
    dev, out = device(b"")
    dev.send(channel, data)
    assert out.getvalue() == wire


@pytest.mark.parametrize("channel,data,wire", LITERALS)
def test_device_receive_split(channel, data, wire):
    dev, _ = device(wire, step=1)
    got_channel, got = dev.receive()
    assert (got_channel, bytes(got)) == (channel, data)


def test_device_power_off_at_eof():
    dev, _ = device(b"\x00\x00\x05ab")  # cut mid-message
    with pytest.raises(simbus.PowerOff):
        dev.receive()


def test_device_call_queues_uart_bytes_that_arrive_first():
    wire = bus.encode(bus.UART, b"\xa5\x51") + bus.encode(bus.HAL, b"\x01\x00" + NOV27_BYTES)
    dev, out = device(wire, step=3)
    assert simbus.BusRTC(dev).datetime() == NOV27
    assert out.getvalue() == b"\x01\x00\x01\x01"
    uart = simbus.BusUART(dev)
    assert uart.any() == 2
    buf = bytearray(8)
    assert uart.readinto(buf) == 2 and buf[:2] == b"\xa5\x51"
    assert uart.readinto(buf) is None


def test_device_rtc_set_sends_datetime():
    dev, out = device(bus.encode(bus.HAL, b"\x02\x00"))
    simbus.BusRTC(dev).datetime(NOV27)
    assert out.getvalue() == b"\x01\x00\x0d\x02" + NOV27_BYTES


@pytest.mark.parametrize("result,code", [(1, errno.ENODEV), (2, errno.EINVAL), (3, errno.EIO), (9, errno.EIO)])
def test_device_call_errors_are_oserrors(result, code):
    dev, _ = device(bus.encode(bus.HAL, bytes([0x01, result])))
    with pytest.raises(OSError) as e:
        dev.call(0x01)
    assert e.value.args[0] == code


def test_device_uart_write_is_channel_zero():
    dev, out = device(b"")
    simbus.BusUART(dev).write(memoryview(b"\xa5\x52\x01"))
    assert out.getvalue() == b"\x00\x00\x03\xa5\x52\x01"


def test_device_queue_overrun_drops_newest():
    wire = bus.encode(bus.UART, bytes(6000)) + bus.encode(bus.UART, b"\x01" * 6000)
    dev, _ = device(wire, step=4096)
    dev.pump()
    dev.pump()
    assert dev.queued() == 8192 and dev.overruns == 12000 - 8192


def test_device_queue_reuses_space_after_reads():
    dev, _ = device(bus.encode(bus.UART, bytes(6000)) + bus.encode(bus.UART, b"\x01" * 6000), step=4096)
    dev.pump()
    assert dev.dequeue_into(bytearray(6000)) == 6000
    dev.pump()
    assert dev.queued() == 6000 and dev.overruns == 0
