"""A narrated tour of the whole fiscal lifecycle on one simulated till, over its real serial port.

    .venv/bin/python -m hw_sim.demo [FOLDER]        (make demo; default ./demo-state)

The till runs first in-process under CPython through the lifecycle: initialization, a roll sold and
loaded, invoices over three days, the filing deadline passes and the till locks itself, the declaration
goes onto the user card, the tax hall catches a shortfall and then accepts the declaration, clear-unlock
data goes onto the user card, the till unlocks, a new roll is sold and loaded and issuing resumes.  Then
the same till (same folder) is switched on again with its firmware in the MicroPython unix port, as it
runs on a board: same firmware hash, same state, the next invoice number.

The POS side is gateway.link.TillClient over the pty; the bureau side is the gateway library
(gateway.issuance.issue_roll, gateway.usercard.UserCardSession over gateway.readers.SimReader on the
simulator's user slot).  The cards are the demo cards under the published TEST keys, so every invoice
is printed NON-FISCAL.  The till's state stays in FOLDER afterwards (a previous demo till there is
replaced).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import time
from pathlib import Path

from gateway import issuance
from gateway.link import LinkError, StatusError, TillClient
from gateway.readers import SimReader
from gateway.usercard import UserCardSession
from protocol.errors import describe
from protocol.status import LOCK_REASONS, WARNINGS, mask_names

from testbed import demo_cards
from testbed.simtill import SimTill

from .sim_config import SimTillError

ROLL_CODE = "1440012345"
NEW_DEADLINE = 20260228


def say(text: str) -> None:
    indent = " " * (len(text) - len(text.lstrip()))
    print(textwrap.fill(text.strip(), 100, initial_indent=indent, subsequent_indent=indent), flush=True)
    print(flush=True)


def show(lines: list[str], indent: str = "      ") -> None:
    for line in lines:
        print(indent + line, flush=True)
    print(flush=True)


def yuan(fen: int) -> str:
    return "¥%d.%02d" % divmod(fen, 100)


def day(date: int) -> str:
    return "%04d-%02d-%02d" % (date // 10000, date // 100 % 100, date % 100)


def status_line(till: TillClient) -> str:
    st = till.call_ok("GET_STATUS")
    locks = mask_names(st.lock_reasons, LOCK_REASONS) or ["none"]
    warns = mask_names(st.warnings, WARNINGS) or ["none"]
    return ("GET_STATUS: %s %s, locks: %s; warnings: %s; deadline %s; invoices left on the roll %d; last "
            "invoice no. %d" % (day(st.date), "%06d" % st.time, ", ".join(locks), ", ".join(warns),
                                day(st.deadline) if st.deadline else "-", st.invoices_left, st.last_number))


def sale(*amounts: int, item: int = 1) -> dict:
    lines = [dict(tax_item=item, quantity=1000, unit_price=a, amount=a, name=name)
             for a, name in zip(amounts, ("宫保鸡丁", "米饭", "茶水", "小菜"))]
    return dict(kind=1, ref_number=0, cashier="李娜", payer="个人", total=sum(amounts), lines=lines)


def last_printed(lines: list[str]) -> list[str]:
    """The last invoice on the printer roll: from its opening NON-FISCAL stamp on."""
    marks = [i for i, line in enumerate(lines[:-1]) if line.startswith("*** NON-FISCAL")
             and not lines[i + 1].startswith("*** NON-FISCAL")]
    return lines[marks[-1]:] if marks else lines[-24:]


class Hall:
    """The tax bureau's station: the gateway library on the user card, through a reader on the slot."""

    def __init__(self, sim: SimTill) -> None:
        if sim.keystore is None:
            raise SimTillError("the demo needs the demo cards")
        self.sim = sim
        self.keystore = sim.keystore

    def session(self) -> UserCardSession:
        s = UserCardSession(SimReader(self.sim.user_slot), self.keystore)
        s.open()
        s.authenticate()
        return s

    def sell_roll(self, start: int, end: int) -> None:
        record = issuance.issue_roll(self.keystore, fiscal_card_no=demo_cards.FISCAL_CARD_NO,
                                     machine_no=self.sim.identity["machine_no"], code=ROLL_CODE, start=start,
                                     end=end)
        self.session().add_roll(record)


def prepare(folder: Path) -> None:
    if not folder.exists() or not any(folder.iterdir()):
        return
    config = folder / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))["machine_no"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SimTillError("%s is not empty and holds no simulated till; name another folder" % folder) from None
    shutil.rmtree(folder)


def cpython_part(folder: Path) -> tuple:
    say("1. The till comes from the factory (simulator state folder %s).  Its firmware runs in this very "
        "process, under CPython.  The bureau has issued it a fiscal card and the taxpayer a user card, both "
        "under the published TEST keys: this till can never make a real invoice, and it says so." % folder)
    with SimTill(folder, "cpython", cards="demo") as sim, TillClient(sim.port, timeout=5.0) as till:
        hall = Hall(sim)
        info = till.call_ok("GET_INFO")
        say("   Its serial port is %s (a real pty).  GET_INFO: model %s, machine %s, firmware %s, hash %s..."
            % (sim.port, info.model, info.machine_no, info.fw_version, info.fw_hash.hex()[:16]))
        say("   The factory sets the clock (SET_TIME needs no inspector before initialization):")
        till.call_ok("SET_TIME", {"date": 20260105, "time": 90000})
        show([status_line(till)])

        say("2. Initialization (税控初始化): the fiscal card registers with the user card and the till "
            "writes its first record into fiscal memory.")
        init = till.call_ok("INITIALIZE", {"date": 20260105, "time": 90000})
        show(["INITIALIZE: machine %s, fiscal card %s, taxpayer %s" % (init.machine_no, init.fiscal_card_no.hex(),
                                                                     init.taxpayer_no), status_line(till)])

        say("3. At the tax hall the taxpayer buys a roll of 20 invoices (验旧售新): the bureau writes it, "
            "MAC'd for this till's fiscal card, onto the user card; back at the till LOAD_ROLL moves it "
            "onto the fiscal card.")
        hall.sell_roll(1, 20)
        roll = till.call_ok("LOAD_ROLL")
        show(["LOAD_ROLL: roll %s, numbers %d-%d" % (roll.code, roll.start, roll.end), status_line(till)])

        say("4. Three days of trade.  Each invoice gets its number from the roll and its 税控码 from the "
            "fiscal card, is recorded in fiscal memory, and is printed:")
        issued = []
        for date, amounts in ((20260105, (3800, 1200, 900, 2500, 4600)), (20260106, (1800, 2200, 5100, 700)),
                              (20260107, (6600, 1500, 900, 3000, 1200, 800))):
            sim.rtc.set(date, 113000)
            for i, a in enumerate(amounts):
                rec = till.call_ok("ISSUE_INVOICE", sale(a, 200, item=1 + i % 2))
                issued.append(rec)
            total = sum(r.total for r in issued if r.date == date)
            say("   %s: %d invoices, %s" % (day(date), len(amounts), yuan(total)))
        show(last_printed(sim.printer.tail(60)), indent="      | ")
        total = sum(r.total for r in issued)
        show(["%d invoices, numbers %d-%d, %s in all" % (len(issued), issued[0].number, issued[-1].number, yuan(total)),
              status_line(till)])

        say("5. Nobody files.  The filing deadline on the fiscal card is 2026-01-31; the clock passes it "
            "and the till locks itself.")
        sim.rtc.set(20260201, 90000)
        show([status_line(till), "ISSUE_INVOICE: %s" % describe(till.call("ISSUE_INVOICE", sale(1000))[0])])

        say("6. The declaration (申报): the days are closed and signed, and DECLARE puts the period's totals, "
            "signed by the fiscal card, onto the user card.")
        closed = till.call_ok("DAILY_CLOSE")
        decl = till.call_ok("DECLARE", {"end": 20260131})
        show(["DAILY_CLOSE: %s closed (the till closed and signed each earlier day itself when the next one "
              "began)" % day(closed.last),
              "DECLARE: %s to %s, %d invoices, %s" % (day(decl.start), day(decl.end), decl.totals.normal_count,
                                                      yuan(decl.totals.normal_total)),
              status_line(till),
              "CLEAR_UNLOCK before the bureau has seen it: %s" % describe(till.call("CLEAR_UNLOCK")[0])])

        say("7. At the tax hall the user card goes into the bureau's reader.  The station verifies the "
            "declaration's MAC and signature, then checks the income the taxpayer files against it.")
        s = hall.session()
        ((recno, report),) = s.verify_pending()
        say("   The card says: %s to %s, income %s, verified: %s." % (day(report.start), day(report.end),
                                                                     yuan(report.income), report.ok))
        for typed in (report.income - 5000, report.income):
            if typed < report.income:
                say("   Filed %s: refused - %s below what the fiscal card signed.  The clerk sends the "
                    "taxpayer back to the form." % (yuan(typed), yuan(report.income - typed)))
            else:
                say("   Filed %s: matches.  Accepted; clear-unlock data (new deadline %s) goes onto the user "
                    "card, the declaration is marked CLEARED." % (yuan(typed), day(NEW_DEADLINE)))
        s.clear(recno, report, issuance.Limits(deadline=NEW_DEADLINE, single_limit=1_000_000,
                                               cumulative_limit=50_000_000, return_limit=2_000_000))

        say("8. Back at the till, CLEAR_UNLOCK (税控更新) applies it to the fiscal card:")
        cleared = till.call_ok("CLEAR_UNLOCK")
        show(["CLEAR_UNLOCK: period to %s, new deadline %s" % (day(cleared.period_end),
                                                              day(cleared.controls.deadline)), status_line(till)])

        say("9. Today is closed, so trade resumes tomorrow; the roll runs out after 5 more invoices, the "
            "till locks (NO_ROLL) until the next roll is sold and loaded.")
        sim.rtc.set(20260202, 100000)
        for a in (2000, 3100, 1800, 900, 4400):
            issued.append(till.call_ok("ISSUE_INVOICE", sale(a)))
        show([status_line(till), "ISSUE_INVOICE: %s" % describe(till.call("ISSUE_INVOICE", sale(1000))[0])])
        hall.sell_roll(21, 70)
        roll = till.call_ok("LOAD_ROLL")
        rec = till.call_ok("ISSUE_INVOICE", sale(2600))
        show(["LOAD_ROLL: roll %s, numbers %d-%d" % (roll.code, roll.start, roll.end),
              "ISSUE_INVOICE: no. %d, %s" % (rec.number, yuan(rec.total)), status_line(till)])
        say("   Switched off.  %d lines went to the printer roll %s." % (
            sum(1 for _ in open(sim.state / "printer.txt", encoding="utf-8")), sim.state / "printer.txt"))
        return info.fw_hash, rec.number


def micropython_part(folder: Path, fw_hash: bytes, last: int) -> bool:
    say("10. The same till switched on again, its firmware now running in the MicroPython unix port from "
        "its .mpy image with a 256 KiB heap, as on a board.  Flash, cards, nvram and clock are the ones in "
        "%s." % folder)
    with SimTill(folder, "micropython") as sim, TillClient(sim.port, timeout=5.0) as till:
        info = till.call_ok("GET_INFO")
        rec = till.call_ok("ISSUE_INVOICE", sale(1500, 500))
        show(["firmware image %s" % sim.image, "GET_INFO: firmware hash %s... (%s)" % (
            info.fw_hash.hex()[:16], "the same" if info.fw_hash == fw_hash else "DIFFERENT"),
            status_line(till), "ISSUE_INVOICE: no. %d, %s" % (rec.number, yuan(rec.total))])
        same = info.fw_hash == fw_hash and rec.number == last + 1
    say("   Switched off.  %s" % ("One till, one firmware, two interpreters: it carried on at invoice no. %d."
                                  % rec.number if same else "The two runs disagree!"))
    return same


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hw_sim.demo", description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="demo-state", help="state folder (default ./demo-state)")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    started = time.monotonic()
    try:
        prepare(folder)
        fw_hash, last = cpython_part(folder)
        ok = micropython_part(folder, fw_hash, last)
    except (SimTillError, LinkError, StatusError) as e:
        say("The demo stopped: %s" % e)
        return 1
    say("The till's state is in %s (fiscal-sim --state %s runs it again).  %.1f s." % (
        folder, folder, time.monotonic() - started))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
