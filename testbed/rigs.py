"""A whole till on the bench, in process: firmware + NOR flash + card slots + nvram + RTC + printer,
joined to a host client by frames (the h11 way: no port, no thread), and the bureau's side of the cards.

    rig = TillRig()                          # demo cards (TEST keys), blank 2 MiB flash, clock 2026-01-05
    rig.ok("INITIALIZE", date=20260105, time=90000)
    rig.bureau_sells_roll(1, 100); rig.ok("LOAD_ROLL")
    rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
    rig.reboot()                             # same flash, cards and nvram; a new firmware instance
"""

from __future__ import annotations

import datetime

from fiscal_till.device import Till
from fiscal_till.hal import Board
from fiscal_till.nvram import RamNvram
from fiscal_till.server import LinkServer
from gateway import issuance
from gateway.usercard import UserCardSession
from gateway.readers import SimReader
from testbed import demo_cards
from hw_sim.cards.slot import CardSlot
from hw_sim.nor_flash import NorFlash
from protocol import commands, errors, frame, status as S


class RTC:
    def __init__(self, when: datetime.datetime):
        self.t = when

    def datetime(self, value=None):
        if value is None:
            t = self.t
            return (t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, 0)
        y, m, d, _wd, h, mi, s, _sub = value
        self.t = datetime.datetime(y, m, d, h, mi, s)

    def advance(self, **kw):
        self.t += datetime.timedelta(**kw)

    def set(self, date: int, time: int = 90000):
        self.t = datetime.datetime(date // 10000, date // 100 % 100, date % 100, time // 10000,
                                   time // 100 % 100, time % 100)

    @property
    def date(self) -> int:
        return self.t.year * 10000 + self.t.month * 100 + self.t.day


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

    def bureau_sells_roll(self, start: int = 1, end: int = 100, code: str = "1440012345") -> None:
        record = issuance.issue_roll(self.keystore, fiscal_card_no=demo_cards.FISCAL_CARD_NO, machine_no=self.machine_no,
                              code=code, start=start, end=end)
        self.bureau_session().add_roll(record)

    def bureau_clears(self, deadline: int, **limit_kw) -> None:
        """At the tax hall: verify the pending declaration on the user card, write clear-unlock data."""
        s = self.bureau_session()
        ((recno, report),) = s.verify_pending()
        limits = issuance.Limits(deadline=deadline, single_limit=limit_kw.get("single_limit", 1_000_000),
                          cumulative_limit=limit_kw.get("cumulative_limit", 50_000_000),
                          return_limit=limit_kw.get("return_limit", 2_000_000))
        s.clear(recno, report, limits)


class TillRig(RigRequests):
    def __init__(self, *, start=datetime.datetime(2026, 1, 5, 9, 0, 0), flash_sectors=512, seed=1,
                 limits: issuance.Limits | None = None, **card_kw):
        kw = dict(management_pin=None, **card_kw)
        if limits is not None:
            kw["limits"] = limits
        self.cards = demo_cards.demo_cards(seed, **kw)
        self.keystore = self.cards.keystore
        self.flash = NorFlash(sector_count=flash_sectors, sector_size=4096)
        self.fiscal_slot = CardSlot(self.cards.fiscal, name="fiscal")
        self.user_slot = CardSlot(self.cards.user, name="user")
        self.rtc = RTC(start)
        self.nvram = RamNvram()
        self.printer = Printer()
        self.rid = 1000
        self.boot()

    # ---- the device ---------------------------------------------------------------------------------
    def board(self) -> Board:
        return Board(rtc=self.rtc, flash=self.flash, fiscal_slot=self.fiscal_slot, user_slot=self.user_slot,
                     printer=self.printer, nvram=self.nvram,
                     identity={"machine_no": demo_cards.MACHINE_NO, "model": "FTK-1 SIM", "non_fiscal": True})

    def boot(self) -> None:
        for slot in (self.fiscal_slot, self.user_slot):
            slot.power_off()  # a reboot resets the cards too
        self.till = Till(self.board())
        self.server = LinkServer(self.till)

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
    def bureau_session(self) -> UserCardSession:
        s = UserCardSession(SimReader(self.user_slot), self.keystore)
        s.open()
        s.authenticate()
        return s


def locks(rig: TillRig) -> list[str]:
    """The names of the lock reasons GET_STATUS shows."""
    return S.mask_names(rig.status().lock_reasons, S.LOCK_REASONS)


def warnings(rig: TillRig) -> list[str]:
    """The names of the warnings GET_STATUS shows."""
    return S.mask_names(rig.status().warnings, S.WARNINGS)


def ready(**kw) -> TillRig:
    """Initialized, a roll of 100 loaded, clock 2026-01-05 10:00."""
    rig = TillRig(**kw)
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    rig.rtc.set(20260105, 100000)
    return rig
