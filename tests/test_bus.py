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
from hw_sim.cards.faults import CardAbsentError, CardMuteError
from hw_sim.nor_flash import NorFlash, PowerLoss
from hw_sim.nvram import FolderNvram
from hw_sim.printer import SimPrinter

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
    assert (bus.MAX_DATA, bus.FLASH_CHUNK) == (simbus.MAX_DATA, simbus.FLASH_CHUNK)
    ops = sorted(name for name in dir(bus) if name.startswith("OP_"))
    assert ops == sorted(name for name in dir(simbus) if name.startswith("OP_"))
    assert [getattr(bus, n) for n in ops] == [getattr(simbus, n) for n in ops]
    assert len(set(getattr(bus, n) for n in ops)) == len(ops) == 13


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


def test_hal_device_fault_carries_its_errno():
    hal = bus.HalService(FakeRTC())

    def torn(args: bytes) -> bytes:
        raise OSError(errno.EIO, "torn write")
    hal.register(0x13, torn)
    assert hal.handle(b"\x13\x00") == b"\x13\x03\x00\x05"
    hal.register(0x13, lambda args: (_ for _ in ()).throw(OSError("no errno")))
    assert hal.handle(b"\x13") == b"\x13\x03\x00\x05"  # an OSError without errno is EIO


@pytest.mark.parametrize("request_", [b"\x10" + bytes(10), b"\x11" + bytes(9), b"\x12" + bytes(5),
                                      b"\x20\x00", b"\x21\x00", b"\x22\x00", b"\x23\x00\x00",
                                      b"\x30\x01k", b"\x31\x01k", b"\x32\x01k", b"\x40"])
def test_hal_ops_of_absent_devices_are_unknown(request_):
    assert bus.HalService(FakeRTC()).handle(request_) == request_[:1] + b"\x01"


# flash: NorFlash of 8 sectors x 4 KiB behind the service
def flash_hal():
    flash = NorFlash(sector_count=8, sector_size=4096)
    return flash, bus.HalService(FakeRTC(), flash=flash)


def test_hal_flash_read():
    flash, hal = flash_hal()
    flash.program(2 * 4096 + 16, b"\x01\x02\x03\x04")
    assert hal.handle(b"\x10" b"\x00\x00\x00\x02" b"\x00\x00\x00\x10" b"\x00\x04") == b"\x10\x00\x01\x02\x03\x04"


def test_hal_flash_write_programs():
    flash, hal = flash_hal()
    assert hal.handle(b"\x11" b"\x00\x00\x00\x01" b"\x00\x00\x00\x02" b"\x0f\xf0") == b"\x11\x00"
    assert flash.data[4096:4096 + 4] == b"\xff\xff\x0f\xf0"
    hal.handle(b"\x11" b"\x00\x00\x00\x01" b"\x00\x00\x00\x02" b"\xf0")  # programming only clears bits
    assert flash.data[4096 + 2] == 0x00


def test_hal_flash_write_without_offset_erases_first():
    flash, hal = flash_hal()
    flash.program(4096, b"\x00" * 8)
    assert hal.handle(b"\x11" b"\x00\x00\x00\x01" b"\xff\xff\xff\xff" + b"\x5a" * 4096) == b"\x11\x00"
    assert flash.data[4096:8192] == b"\x5a" * 4096 and flash.erase_counts[1] == 1


@pytest.mark.parametrize("request_,reply", [
    (b"\x12\x04\x00\x00\x00\x00", b"\x12\x00\x00\x00\x00\x08"),  # block count
    (b"\x12\x05\x00\x00\x00\x00", b"\x12\x00\x00\x00\x10\x00"),  # block size
    (b"\x12\x06\x00\x00\x00\x03", b"\x12\x00\x00\x00\x00\x00"),  # erase block 3
    (b"\x12\x63\x00\x00\x00\x00", b"\x12\x00"),  # unknown ioctl: None
    (b"\x10\x00\x00\x00\x08\x00\x00\x00\x00\x00\x01", b"\x10\x03\x00\x16"),  # past the end: EINVAL
    (b"\x10\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00", b"\x10\x02"),  # 8192 > a reply
    (b"\x11\x00\x00", b"\x11\x02"),
])
def test_hal_flash_ioctl_and_refusals(request_, reply):
    assert flash_hal()[1].handle(request_) == reply


def test_hal_power_loss_is_not_an_answer():
    flash, hal = flash_hal()
    flash.cut_after(0)
    with pytest.raises(PowerLoss):
        hal.handle(b"\x12\x06\x00\x00\x00\x01")


# card slots
class FakeSlot:
    def __init__(self) -> None:
        self.card, self.powered, self.fault = True, False, None

    def present(self):
        return self.card

    def power_on(self):
        self.powered = True
        return b"\x3b\x02\x14\x50" if self.card else None

    def power_off(self):
        self.powered = False

    def transmit(self, apdu):
        if self.fault:
            raise self.fault
        return apdu[1:2] + b"\x90\x00"


def slot_hal():
    slots = [FakeSlot(), FakeSlot()]
    return slots, bus.HalService(FakeRTC(), slots=slots)


def test_hal_slots():
    slots, hal = slot_hal()
    slots[0].card = False
    assert hal.handle(b"\x20\x00") == b"\x20\x00\x00" and hal.handle(b"\x20\x01") == b"\x20\x00\x01"
    assert hal.handle(b"\x21\x00") == b"\x21\x00"  # no card: no ATR
    assert hal.handle(b"\x21\x01") == b"\x21\x00\x3b\x02\x14\x50" and slots[1].powered
    assert hal.handle(b"\x23\x01\x00\xa4\x04\x00") == b"\x23\x00\xa4\x90\x00"
    assert hal.handle(b"\x22\x01") == b"\x22\x00" and not slots[1].powered
    assert hal.handle(b"\x20\x02") == b"\x20\x02"  # no slot 2
    assert hal.handle(b"\x23\x01") == b"\x23\x02"  # no APDU


@pytest.mark.parametrize("fault,wire", [(CardAbsentError("pulled"), b"\x00\x13"), (CardMuteError("mute"), b"\x00\x6e")])
def test_hal_slot_faults_carry_their_errno(fault, wire):
    slots, hal = slot_hal()
    slots[1].fault = fault
    assert hal.handle(b"\x23\x01\x00\xb0\x82\x00\x00") == b"\x23\x03" + wire


# nvram and printer
def test_hal_nvram(tmp_path):
    nv = FolderNvram(tmp_path)
    hal = bus.HalService(FakeRTC(), nvram=nv)
    assert hal.handle(b"\x30\x03pin") == b"\x30\x00\x00"
    assert hal.handle(b"\x31\x03pin\x01\x02") == b"\x31\x00" and nv.get("pin") == b"\x01\x02"
    assert hal.handle(b"\x30\x03pin") == b"\x30\x00\x01\x01\x02"
    assert hal.handle(b"\x31\x03pin") == b"\x31\x00" and hal.handle(b"\x30\x03pin") == b"\x30\x00\x01"
    assert hal.handle(b"\x32\x03pin") == b"\x32\x00" and nv.get("pin") is None
    assert hal.handle(b"\x32\x03pin") == b"\x32\x00"  # deleting nothing is fine
    for bad in (b"\x30\x00", b"\x30\x05pin", b"\x31\x02../", b"\x30\x03pinx"):
        assert hal.handle(bad) == bad[:1] + b"\x02"


def test_hal_printer(tmp_path):
    printer = SimPrinter(tmp_path / "printer.txt")
    hal = bus.HalService(FakeRTC(), printer=printer)
    assert hal.handle("\x40发票 1\n".encode()) == b"\x40\x00"
    assert hal.handle(b"\x40no") == b"\x40\x00" and hal.handle(b"\x40te\n") == b"\x40\x00"
    assert list(printer.lines) == ["发票 1", "note"]
    assert (tmp_path / "printer.txt").read_text(encoding="utf-8") == "发票 1\nnote\n"
    printer.paper_out()
    assert hal.handle(b"\x40x\n") == b"\x40\x03\x00\x1c"  # ENOSPC


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
    assert not issubclass(simbus.PowerOff, Exception)  # the firmware's `except Exception` lets it through


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


@pytest.mark.parametrize("reply,code", [(b"\x01", errno.ENODEV), (b"\x02", errno.EINVAL), (b"\x03", errno.EIO),
                                        (b"\x09", errno.EIO), (b"\x03\x00\x13", errno.ENODEV),
                                        (b"\x03\x00\x6e", errno.ETIMEDOUT)])
def test_device_call_errors_are_oserrors(reply, code):
    dev, _ = device(bus.encode(bus.HAL, b"\x01" + reply))
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


def scripted(*replies: bytes) -> tuple[simbus.Bus, io.BytesIO]:
    """A device whose host answers with these HAL reply payloads, in order."""
    return device(b"".join(bus.encode(bus.HAL, r) for r in replies), step=4096)


def hal_requests(out: io.BytesIO) -> list[bytes]:
    return [data for channel, data in bus.BusReceiver().feed(out.getvalue()) if channel == bus.HAL]


GEOMETRY = (b"\x12\x00\x00\x00\x00\x08", b"\x12\x00\x00\x00\x10\x00")  # 8 blocks of 4096


def test_device_flash_asks_geometry_once():
    dev, out = scripted(*GEOMETRY)
    flash = simbus.BusFlash(dev)
    assert (flash.ioctl(4, 0), flash.ioctl(5, 0)) == (8, 4096)
    assert hal_requests(out) == [b"\x12\x04\x00\x00\x00\x00", b"\x12\x05\x00\x00\x00\x00"]


def test_device_flash_read_is_one_call_per_sector_and_fills_the_buffer():
    sector = bytes(range(256)) * 16
    dev, out = scripted(*GEOMETRY, b"\x10\x00" + sector, b"\x10\x00" + b"\xaa" * 10)
    flash = simbus.BusFlash(dev)
    buf = bytearray(4106)
    flash.readblocks(3, memoryview(buf), 0)
    assert buf == sector + b"\xaa" * 10
    assert hal_requests(out)[2:] == [b"\x10\x00\x00\x00\x03\x00\x00\x00\x00\x10\x00",
                                     b"\x10\x00\x00\x00\x04\x00\x00\x00\x00\x00\x0a"]


def test_device_flash_write_with_and_without_offset():
    dev, out = scripted(*GEOMETRY, b"\x11\x00", b"\x11\x00")
    flash = simbus.BusFlash(dev)
    flash.writeblocks(1, b"\x0f\xf0", 4095)
    flash.writeblocks(2, memoryview(b"\x5a" * 4096))
    assert hal_requests(out)[2:] == [b"\x11\x00\x00\x00\x01\x00\x00\x0f\xff\x0f\xf0",
                                     b"\x11\x00\x00\x00\x02\xff\xff\xff\xff" + b"\x5a" * 4096]


def test_device_flash_ioctl_erase_and_none():
    dev, out = scripted(*GEOMETRY, b"\x12\x00\x00\x00\x00\x00", b"\x12\x00")
    flash = simbus.BusFlash(dev)
    assert flash.ioctl(6, 5) == 0 and flash.ioctl(99, None) is None
    assert hal_requests(out)[2:] == [b"\x12\x06\x00\x00\x00\x05", b"\x12\x63\x00\x00\x00\x00"]


def test_device_slot():
    dev, out = scripted(b"\x20\x00\x01", b"\x21\x00\x3b\x00", b"\x21\x00", b"\x23\x00\x6a\x82", b"\x22\x00",
                        b"\x23\x03\x00\x13")
    slot = simbus.BusSlot(dev, 1)
    assert slot.present() is True and slot.power_on() == b"\x3b\x00" and slot.power_on() is None
    assert slot.transmit(b"\x00\xa4\x04\x00") == b"\x6a\x82"
    slot.power_off()
    with pytest.raises(OSError) as e:
        slot.transmit(b"\x00\xb0\x82\x00\x00")
    assert e.value.errno == errno.ENODEV
    assert hal_requests(out) == [b"\x20\x01", b"\x21\x01", b"\x21\x01", b"\x23\x01\x00\xa4\x04\x00", b"\x22\x01",
                                 b"\x23\x01\x00\xb0\x82\x00\x00"]


def test_device_nvram_and_printer():
    dev, out = scripted(b"\x30\x00\x00", b"\x31\x00", b"\x30\x00\x01\x07", b"\x32\x00", b"\x40\x00",
                        b"\x40\x03\x00\x1c")
    nv, printer = simbus.BusNvram(dev), simbus.BusPrinter(dev)
    assert nv.get("pin") is None
    nv.put("pin", b"\x07")
    assert nv.get("pin") == b"\x07"
    nv.delete("pin")
    assert printer.write(b"ok\n") == 3
    with pytest.raises(OSError) as e:
        printer.write(b"x\n")
    assert e.value.errno == errno.ENOSPC
    assert hal_requests(out) == [b"\x30\x03pin", b"\x31\x03pin\x07", b"\x30\x03pin", b"\x32\x03pin", b"\x40ok\n",
                                 b"\x40x\n"]


# ------------------------------------------------------------------------------------------ both sides
class Loopback(io.RawIOBase):
    """The device's stdin and stdout joined to a HalService in-process: each request is answered at once."""

    def __init__(self, hal: bus.HalService) -> None:
        self.hal, self.rx, self.pending = hal, bus.BusReceiver(), bytearray()

    def write(self, data) -> int:
        for channel, payload in self.rx.feed(bytes(data)):
            assert channel == bus.HAL
            self.pending += bus.encode(bus.HAL, self.hal.handle(payload))
        return len(data)

    def readinto(self, mv) -> int:
        n = min(len(mv), len(self.pending))
        mv[:n] = self.pending[:n]
        del self.pending[:n]
        return n


def test_journal_over_the_bus_writes_what_it_writes_directly():
    """BusFlash is a true block device: the firmware's journal on it leaves the same bytes on the NOR model
    as on the model directly, and mounts again."""
    from fiscal_till.journal import Journal
    quotas = [(1, 200), (30, 100), (5, 100), (5, 100), (5, 100), (5, 100), (20, 60)]
    images = []
    for via_bus in (False, True):
        nor = NorFlash(sector_count=40, sector_size=1024)
        dev = nor
        if via_bus:
            loop = Loopback(bus.HalService(FakeRTC(), flash=nor))
            dev = simbus.BusFlash(simbus.Bus(loop, loop))
        Journal.format(dev, b"\x12" * 8, quotas=quotas, format_id=b"\x00\x00\x00\x01")
        j = Journal(dev, b"\x12" * 8)
        j.append(0x01, b"init" * 10)
        for k in range(60):
            j.append(0x07, bytes([k]) * 40)
            if k % 20 == 19:
                j.append(0x02, b"daily %d" % k)
        assert Journal(dev, b"\x12" * 8).counters() == j.counters()
        images.append(bytes(nor.data))
    assert images[0] == images[1]
