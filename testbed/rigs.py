"""A whole till on the bench, in process: firmware on one simulated board (hw_sim.board.SimBoard: NOR
flash, card slots, nvram, a clock that does not tick, a printer, the mains), joined to a host client by
frames (the h11 way: no port, no thread), and the bureau's side of the cards (testbed.bureau).

    rig = TillRig()                          # demo cards (TEST keys), blank 2 MiB flash, clock 2026-01-05
    rig.ok("INITIALIZE", date=20260105, time=90000)
    rig.bureau_sells_roll(1, 100); rig.ok("LOAD_ROLL")
    rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
    rig.reboot()                             # same flash, cards and nvram; a new firmware instance
"""

from __future__ import annotations

from gateway import issuance
from hw_sim.board import START, SimBoard
from hw_sim.rtc import ManualRTC
from protocol import commands, errors, frame
from protocol import status as status_table
from testbed import bureau, demo_cards


class Printer:
    def __init__(self):
        self.lines: list[str] = []

    def write(self, data: bytes) -> int:
        self.lines.append(data.decode("utf-8").rstrip("\n"))
        return len(data)


class RigRequests:
    """What every rig offers the lifecycle script (tests/lifecycle.py), over its own `call()` and
    `bureau_session()`: requests that must succeed or be refused, and the bureau's side of the cards."""

    machine_no = demo_cards.MACHINE_NO

    def ok(self, name: str, **fields):
        status, parsed, _ = self.call(name, **fields)
        assert status == 0, "%s refused: %s" % (name, errors.describe(status))
        return parsed

    def refused(self, name: str, error: str, **fields) -> None:
        status, _, _ = self.call(name, **fields)
        assert status == errors.BY_NAME[error].code, "%s: expected %s, got %s" % (
            name, error, errors.describe(status))

    def status(self):
        return self.ok("GET_STATUS")

    @staticmethod
    def invoice(*amounts: int, item: int = 1, kind: int = 1, ref: int = 0) -> dict:
        lines = [dict(tax_item=item, quantity=1000, unit_price=a, amount=a, name="item %d" % i)
                 for i, a in enumerate(amounts)]
        return dict(kind=kind, ref_number=ref, cashier="李娜", payer="个人", total=sum(amounts), lines=lines)

    def initialize(self):
        return self.ok("INITIALIZE", date=self.rtc.date, time=90000)

    def bureau_sells_roll(self, start: int = 1, end: int = 100, code: str = demo_cards.ROLL_CODE) -> None:
        self.hall().sell_roll(start, end, code)

    def bureau_clears(self, deadline: int, **limit_kw) -> None:
        """At the tax hall: verify the pending declaration on the user card, write clear-unlock data."""
        self.hall().clear(deadline, **limit_kw)


class TillRig(RigRequests):
    def __init__(self, *, start=START, flash_sectors=512, seed=1, limits: issuance.Limits | None = None,
                 identity: dict | None = None, **card_kw):
        """identity: more fields of the board's identity (e.g. journal_quotas); card_kw: demo_cards()'s."""
        kw = dict(management_pin=None, **card_kw)
        if limits is not None:
            kw["limits"] = limits
        self.cards = demo_cards.demo_cards(seed, **kw)
        self.keystore = self.cards.keystore
        self.printer = Printer()
        self.simboard = SimBoard.in_memory(
            self.cards.fiscal, self.cards.user, rtc=ManualRTC(start), flash_sectors=flash_sectors,
            printer=self.printer,
            identity={"machine_no": demo_cards.MACHINE_NO, "model": demo_cards.MODEL, "non_fiscal": True,
                      **(identity or {})})
        self.flash, self.nvram, self.rtc = self.simboard.flash, self.simboard.nvram, self.simboard.rtc
        self.fiscal_slot, self.user_slot = self.simboard.fiscal_slot, self.simboard.user_slot
        self.rid = 1000
        self.boot()

    # ---- the device ---------------------------------------------------------------------------------
    @property
    def mains(self):
        """The board's power (hw_sim.mains): every card command, flash program or erase, nvram write is a step."""
        return self.simboard.mains

    def boot(self) -> None:
        """A new firmware instance on the same flash, cards (reset, as a reboot resets them) and nvram.
        The mains is left as it is, so a cut scheduled inside the boot happens (tests/powercut.py
        restores the power itself)."""
        self.server = self.simboard.boot(restore=False)
        self.till = self.server.till

    def board(self):
        """The firmware's HAL on the rig's board (fiscal_till.hal.Board)."""
        return self.simboard.hal_board()

    reboot = boot

    def exchange(self, raw: bytes) -> list[dict]:
        out = []
        for i in range(0, len(raw), 1024):
            self.server.feed(raw[i:i + 1024])
            while (r := self.server.poll()) is not None:
                out.append(frame.parse_frame(bytes(r)))
        return out

    def call(self, name: str, rid: int | None = None, payload: bytes | None = None, **fields):
        """(status, parsed reply or None, raw reply frame)."""
        cmd = commands.BY_NAME[name]
        if rid is None:
            self.rid += 1
            rid = self.rid
        elif rid > self.rid:
            self.rid = rid  # request ids strictly increase: the next fresh one is above it
        if payload is None:
            payload = cmd.request.build(fields)
        (reply,) = self.exchange(frame.request(cmd.code, rid, payload))
        assert reply["rid"] == rid and reply["command"] == cmd.code
        parsed = cmd.reply.parse(reply["payload"]) if reply["status"] == 0 else None
        return reply["status"], parsed, reply

    # ---- requests -----------------------------------------------------------------------------------
    # ---- the bureau's side --------------------------------------------------------------------------
    def bureau_session(self):
        """An authenticated bureau session on the card in the user slot (gateway.usercard.UserCardSession)."""
        return bureau.open_session(self.user_slot, self.keystore)

    def hall(self) -> bureau.Bureau:
        """The tax hall for this till's user card: sell rolls, clear-unlock (testbed.bureau)."""
        return bureau.Bureau(self.user_slot, self.keystore, machine_no=self.machine_no)


def locks(rig: TillRig) -> list[str]:
    """The names of the lock reasons GET_STATUS shows."""
    return status_table.mask_names(rig.status().lock_reasons, status_table.LOCK_REASONS)


def warnings(rig: TillRig) -> list[str]:
    """The names of the warnings GET_STATUS shows."""
    return status_table.mask_names(rig.status().warnings, status_table.WARNINGS)


def ready(**kw) -> TillRig:
    """Initialized, a roll of 100 loaded, clock 2026-01-05 10:00."""
    rig = TillRig(**kw)
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    rig.rtc.set(20260105, 100000)
    return rig
