"""The hardware the firmware reaches, and nothing else (docs/FIRMWARE.md, "HAL").

A `Board` bundles duck-typed MicroPython interfaces, so the same firmware runs on a real board
(firmware/main.py wires machine.UART, machine.RTC and a flash partition) and on the simulator
(hw_sim wires a pty-backed UART, a settable RTC and the NOR-flash model):

    uart     readinto(buf) -> int or None, write(buf) -> int, any() -> int   (machine.UART)
    rtc      datetime() -> (y, m, d, wd, h, mi, s, sub); datetime(tuple) sets  (machine.RTC)
    flash    readblocks / writeblocks / ioctl, the extended block-device protocol (rp2.Flash,
             esp32.Partition); None until fiscal memory is wired
    fiscal_slot, user_slot
             card readers: power_on() -> ATR bytes or None, transmit(apdu bytes) -> response bytes,
             present() -> bool; None when absent
    printer  write(bytes); None when absent
    nvram    get(key) / put(key, bytes) / delete(key): small durable memory for the fiscal PIN and the
             intent of the operation in progress (nvram.py); RAM-only when None
    identity dict: machine_no (16 digits, set at the factory), model
"""


class Board:
    def __init__(self, uart=None, rtc=None, flash=None, fiscal_slot=None, user_slot=None,
                 printer=None, identity=None, nvram=None):
        self.uart = uart
        self.rtc = rtc
        self.flash = flash
        self.fiscal_slot = fiscal_slot
        self.user_slot = user_slot
        self.printer = printer
        self.identity = identity or {}
        if nvram is None:
            from .nvram import RamNvram
            nvram = RamNvram()
        self.nvram = nvram
