"""One simulated board: the devices of a till and the power wiring between them and the firmware.

    board = SimBoard.in_memory(fiscal_card, user_card, identity={"machine_no": ..., "model": ...})
    link = board.boot()                  # a fresh firmware (device.Till + server.LinkServer) on it
    board.cut_power_at(3, after=True)    # the power fails just after the 4th HAL step from now
    board.flash, board.fiscal_slot, board.user_slot, board.rtc, board.nvram, board.printer, board.mains

The devices are plain hw_sim objects (or anything with their interface): NOR flash (hw_sim.nor_flash),
two card slots (hw_sim.cards.slot.CardSlot, or a slot that keeps its card in a file), a machine.RTC
(hw_sim.rtc), an nvram (get/put/delete), a printer (write) or None, and the identity the factory sets
(machine_no, model, ...).

Rules:
- every action that changes something (a card command, a flash program or erase, an nvram write) is a
  step of `mains` (hw_sim.mains.stepped_board); the firmware reaches flash, slots and nvram only through
  `hal_devices`, so a step number means the same action for the in-process firmware (boot) and for a
  MicroPython process whose HAL calls reach the same objects (hw_sim.bus.HalService);
- boot() is a power-on: the mains is restored (no cut scheduled), the cards are reset (powered off, as a
  reboot resets them), and a new firmware instance mounts the flash and recovers.  The flash's own cut
  schedule (NorFlash.cut_after) is left alone, so a cut inside the boot can be tested; PowerLoss
  propagates when the power fails during the boot;
- the clock and the printer are not steps: reading the time or printing changes no fiscal state.
"""

from __future__ import annotations

import datetime

from fiscal_till import device, hal, server
from fiscal_till.nvram import RamNvram

from .cards.slot import CardSlot
from .mains import Mains, stepped_board
from .nor_flash import NorFlash
from .rtc import ManualRTC

MODEL = "FTK-1 SIM"  # the simulated board's model name (identity "model")
SECTOR_SIZE = 4096
DEFAULT_FLASH_SECTORS = 512  # x 4 KiB = 2 MiB (docs/FISCAL_MEMORY.md §9)
START = datetime.datetime(2026, 1, 5, 9, 0, 0)  # the demo till's first day


class SimBoard:
    def __init__(self, *, flash, fiscal_slot, user_slot, rtc, nvram, printer=None, identity: dict) -> None:
        self.flash = flash
        self.fiscal_slot = fiscal_slot
        self.user_slot = user_slot
        self.rtc = rtc
        self.nvram = nvram
        self.printer = printer
        self.identity = dict(identity)
        self.mains = Mains()
        self.hal_devices = stepped_board(self.mains, flash, fiscal_slot, user_slot, nvram)
        """(flash, fiscal slot, user slot, nvram) as the firmware sees them: their actions are mains steps."""

    @classmethod
    def in_memory(cls, fiscal_card=None, user_card=None, *, identity: dict, rtc=None,
                  flash_sectors: int = DEFAULT_FLASH_SECTORS, printer=None) -> SimBoard:
        """A board that keeps nothing on disk: blank flash, the cards in slots, RAM nvram, a clock that
        does not tick (ManualRTC at START unless `rtc` is given)."""
        return cls(flash=NorFlash(sector_count=flash_sectors, sector_size=SECTOR_SIZE),
                   fiscal_slot=CardSlot(fiscal_card, name="fiscal"), user_slot=CardSlot(user_card, name="user"),
                   rtc=rtc if rtc is not None else ManualRTC(START), nvram=RamNvram(), printer=printer,
                   identity=identity)

    @property
    def slots(self) -> dict:
        """{"fiscal": slot, "user": slot}: the control side of the two card slots (not mains steps)."""
        return {"fiscal": self.fiscal_slot, "user": self.user_slot}

    def hal_board(self, uart=None) -> hal.Board:
        """The firmware's HAL on these devices (flash, slots, nvram through the mains)."""
        flash, fiscal_slot, user_slot, nvram = self.hal_devices
        return hal.Board(uart=uart, rtc=self.rtc, flash=flash, fiscal_slot=fiscal_slot, user_slot=user_slot,
                         printer=self.printer, identity=dict(self.identity), nvram=nvram)

    def boot(self, uart=None, ticks_ms=None, *, restore: bool = True) -> server.LinkServer:
        """Power on and boot a new firmware instance on this board (see the rules above).  restore=False
        leaves the mains as it is, so a cut scheduled inside the boot itself happens."""
        if restore:
            self.mains.restore()
        for slot in (self.fiscal_slot, self.user_slot):
            slot.power_off()
        return server.LinkServer(device.Till(self.hal_board(uart)), ticks_ms=ticks_ms)

    def cut_power_at(self, step: int, after: bool = False) -> None:
        """The power fails at the `step`-th HAL step from now (0: the next one), before that step or just
        after it (its answer lost).  Every later step fails too until the next boot()."""
        self.mains.at = self.mains.steps + step
        self.mains.after = after
