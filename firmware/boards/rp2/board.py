"""Bindings for a Raspberry Pi Pico (RP2040/RP2350) fiscal-till board.

Wiring (change here for another layout):
    UART0  GP0 TX / GP1 RX   host link to the POS or the bureau station, 115200 8N1
    UART1  GP4 TX / GP5 RX   the ISO 7816 reader module holding the fiscal card (SAM) and the user card
    SPI0   GP18-19, CS GP17  thermal printer module (ESC/POS over SPI, or swap for a UART printer)
    flash  the last 2 MiB of the chip's QSPI flash as rp2.Flash() sized by the build's partition

Card readers and the printer are reached through small drivers with the HAL interface of
fiscal_till/hal.py: a reader module that speaks a framed APDU protocol on UART1 (one frame per APDU:
slot byte, length u16, APDU; the answer: status byte, length u16, response) — vendors replace
`ReaderSlot` with their reader's driver; nothing else changes.  nvram is a file on the board's
littlefs filesystem written atomically (write a temporary file, rename), so the PIN and the
intent survive a power cut at any point.
"""

import os
import struct

import machine
import rp2

UART_HOST = 0
UART_READER = 1
BAUD = 115200

_SLOT_FISCAL = 0
_SLOT_USER = 1


class ReaderSlot:
    """One slot of a UART-attached ISO 7816 reader module (framed APDUs; see the module docstring)."""

    def __init__(self, uart, slot):
        self.uart = uart
        self.slot = slot
        self._hdr = bytearray(3)

    def _xfer(self, op, data=b""):
        self.uart.write(struct.pack(">BBH", op, self.slot, len(data)) + data)
        if self.uart.readinto(self._hdr) != 3:
            raise OSError(110)  # ETIMEDOUT: the reader does not answer
        status, n = self._hdr[0], self._hdr[1] << 8 | self._hdr[2]
        body = self.uart.read(n) if n else b""
        if status:
            raise OSError(19 if status == 1 else 5)  # ENODEV no card / EIO
        return body

    def present(self):
        try:
            return self._xfer(0x01) == b"\x01"
        except OSError:
            return False

    def power_on(self):
        try:
            return self._xfer(0x02)
        except OSError:
            return None

    def power_off(self):
        try:
            self._xfer(0x03)
        except OSError:
            pass

    def transmit(self, apdu):
        return self._xfer(0x04, apdu)


class FileNvram:
    """nvram on littlefs: one file per key, replaced atomically by rename."""

    def __init__(self, directory="/nvram"):
        self.dir = directory
        try:
            os.mkdir(directory)
        except OSError:
            pass

    def get(self, key):
        try:
            with open(self.dir + "/" + key, "rb") as f:
                return f.read()
        except OSError:
            return None

    def put(self, key, value):
        tmp = self.dir + "/" + key + ".new"
        with open(tmp, "wb") as f:
            f.write(value)
        os.rename(tmp, self.dir + "/" + key)

    def delete(self, key):
        try:
            os.remove(self.dir + "/" + key)
        except OSError:
            pass


class SpiPrinter:
    def __init__(self):
        self.spi = machine.SPI(0, baudrate=1_000_000, sck=machine.Pin(18), mosi=machine.Pin(19))
        self.cs = machine.Pin(17, machine.Pin.OUT, value=1)

    def write(self, data):
        self.cs(0)
        self.spi.write(data)
        self.cs(1)
        return len(data)


def make_board(identity):
    from fiscal_till.hal import Board
    reader = machine.UART(UART_READER, BAUD, tx=machine.Pin(4), rx=machine.Pin(5), timeout=2000)
    return Board(
        uart=machine.UART(UART_HOST, BAUD, tx=machine.Pin(0), rx=machine.Pin(1), timeout=0),
        rtc=machine.RTC(),
        flash=rp2.Flash(),
        fiscal_slot=ReaderSlot(reader, _SLOT_FISCAL),
        user_slot=ReaderSlot(reader, _SLOT_USER),
        printer=SpiPrinter(),
        nvram=FileNvram(),
        identity=identity,
    )
