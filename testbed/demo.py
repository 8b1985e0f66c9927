"""The tax hall and one till, the whole lifecycle, narrated: the bureau gateway on its database.

    make demo
    .venv/bin/python -m testbed.demo [FOLDER]          (default ./demo-state; SQLite bureau.db + till/)

The bureau registers a taxpayer and a machine and issues its cards (published TEST keys: everything is
NON-FISCAL), initializes the simulated till over its pty, sells a roll that the till loads; invoices are
issued over three simulated days; the invoice deadline passes and the till locks; the declaration goes
onto the user card; at the filing window a shortfall is caught and refused, then a corrected filing is
accepted with a late surcharge and the clear-unlock data is written to the card; the till clear-unlocks;
验旧售新; issuing resumes; an audit reads the whole fiscal memory out over the line and verifies it; the
taxpayer's whole record (一户式) is exported.  Last, the same till is switched on again with its firmware
in the MicroPython unix port, as on a board: same firmware hash, same state, the next invoice number
(skipped, with a line saying why, where the micropython command is missing).  FOLDER keeps the database
(bureau.db), the till's state (till/), the audit and the export; a previous demo there is replaced, any
other content refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from gateway import stations
from gateway.db import open_store
from gateway.keystore import KeyStore
from gateway.link import LinkError, StatusError, TillClient
from gateway.readers import SimReader
from gateway.stations.common import Refused, iso, yuan
from hw_sim.cards import FiscalCard, UserCard
from hw_sim.sim_config import SimTillError
from hw_sim.sim_image import find_micropython
from protocol.status import LOCK_REASONS, mask_names

from . import demo_cards
from .simtill import BlankTestCardSet, SimTill

MARKER = ".fiscal-gateway-demo"
ROLL_CODE = demo_cards.ROLL_CODE
INVOICE_TITLES = ("发票 INVOICE", "红字发票 RETURN", "作废 VOID")  # the second line of a printed invoice


class Demo:
    def __init__(self, folder: Path, out: Console) -> None:
        self.folder, self.out = folder, out
        self.sim = SimTill(folder / "till", "cpython", cards=BlankTestCardSet.name)  # the hall has TEST keys
        self.till = TillClient(self.sim.port, timeout=5, rid_dir=folder / "request-ids")  # beside bureau.db
        self.store = open_store("sqlite:///%s" % (folder / "bureau.db"))
        self.st = stations.Station(self.store, KeyStore.for_tests(), name="hall-window-1", clock=lambda: self.sim.rtc.date)
        self.tp = demo_cards.TAXPAYER.taxpayer_no
        self.machine = self.sim.config["machine_no"]
        self.step_no = 0
        self.fw_hash = b""  # the firmware hash GET_INFO reported under CPython
        self.last_number = 0  # the last invoice number issued under CPython

    def close(self) -> None:
        self.till.close()
        self.sim.close()
        self.store.close()

    # ---- narration ------------------------------------------------------------------------------------------
    def step(self, title: str) -> None:
        self.step_no += 1
        self.out.rule("[bold]%d. %s" % (self.step_no, title), align="left")

    def say(self, text: str) -> None:
        self.out.print("   " + text)

    def table(self, title: str, rows: dict) -> None:
        t = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        for k, v in rows.items():
            t.add_row(k, str(v))
        self.out.print(t)

    def locks(self) -> list[str]:
        return mask_names(self.till.call_ok("GET_STATUS").lock_reasons, LOCK_REASONS)

    def invoice(self, amount: int, item: int) -> object:
        line = dict(tax_item=item, quantity=1000, unit_price=amount, amount=amount, name="套餐" if item == 1 else "住宿")
        return self.till.call_ok("ISSUE_INVOICE", dict(kind=1, ref_number=0, cashier="李娜", payer="个人",
                                                       total=amount, lines=[line]))

    def hall(self):
        return SimReader(self.sim.user_slot)

    # ---- the story ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        """The lifecycle on CPython, one narrated step after another; SystemExit when the audit finds problems."""
        self.sim.rtc.set(20260105, 90000)
        self.register()
        self.initialize()
        self.first_roll()
        self.trade()
        self.deadline_passes()
        self.filing_window()
        self.clear_unlock()
        self.renew_roll()
        self.resume_issuing()
        audit = self.audit()
        self.export()
        if not audit.ok:
            raise SystemExit("the audit found problems")

    def register(self) -> None:
        self.step("Registration desk: taxpayer, machine, cards")
        st, sim = self.st, self.sim
        stations.register_taxpayer(st, demo_cards.TAXPAYER, tax_items=demo_cards.TAX_ITEMS, roll_quota=2)
        stations.register_machine(st, self.tp, self.machine, demo_cards.LIMITS)

        def personalise(fd, ud):
            sim.fiscal_slot.insert(FiscalCard.issued(fd))
            sim.user_slot.insert(UserCard.issued(ud))
        fd, ud = stations.issue_cards(st, self.tp, self.machine, fiscal_card_no=demo_cards.FISCAL_CARD_NO,
                                      user_card_no=demo_cards.USER_CARD_NO, valid_from=demo_cards.VALID_FROM,
                                      valid_to=demo_cards.VALID_TO, personalise=personalise)
        self.table("registered", {"taxpayer": "%s %s" % (self.tp, demo_cards.TAXPAYER.name), "machine": self.machine,
                                  "fiscal card": fd.card_no.hex(), "user card": ud.card_no.hex(),
                                  "keys": "TEST master key 0x%02X (NON-FISCAL)" % ud.key_id,
                                  "first deadline": iso(demo_cards.LIMITS.deadline), "roll quota": "2 per period"})

    def initialize(self) -> None:
        self.step("Initialization over the serial line (%s)" % self.sim.port)
        info = self.till.call_ok("GET_INFO")
        self.fw_hash = info.fw_hash
        self.say("GET_INFO: model %s, machine %s, firmware %s, hash %s... (the firmware runs in this process, "
                 "under CPython)" % (info.model, info.machine_no, info.fw_version, info.fw_hash.hex()[:16]))
        self.say("locks before: %s" % ", ".join(self.locks()))
        init = stations.initialize_till(self.st, self.till, self.machine, date=20260105, time=90000)
        self.say("INITIALIZE: machine %s bound to fiscal card %s of taxpayer %s" % (
            init["machine_no"], init["fiscal_card_no"], init["taxpayer_no"]))

    def first_roll(self) -> None:
        self.step("Invoice sales: the first roll, loaded by the till")
        sold = stations.sell_roll(self.st, self.hall(), self.tp, self.machine, code=ROLL_CODE, start=1, end=100)
        roll = self.till.call_ok("LOAD_ROLL")
        self.say("sold roll #%d %s no. %d-%d; LOAD_ROLL took %s %d-%d; locks: %s" % (
            sold["roll_id"], ROLL_CODE, 1, 100, roll.code, roll.start, roll.end, ", ".join(self.locks()) or "none"))

    def trade(self) -> None:
        self.step("Three days of trade")
        total = 0
        for day, n in ((20260105, 12), (20260106, 10), (20260107, 8)):
            self.sim.rtc.set(day, 100000)
            for i in range(n):
                rec = self.invoice(2000 + 150 * i, 1 + i % 2)
                total += rec.total
            self.say("%s: %d invoices, last no. %d" % (iso(day), n, rec.number))
        self.say("30 invoices, %s yuan; the last one as the printer printed it:" % yuan(total))
        for line in last_printed(self.sim.printer.tail(60)):
            self.out.print("      | " + line, markup=False, highlight=False)

    def deadline_passes(self) -> None:
        self.step("The deadline passes: the till locks itself")
        self.sim.rtc.set(20260201, 90000)
        self.say("2026-02-01 locks: [bold red]%s[/]" % ", ".join(self.locks()))
        try:
            self.invoice(1000, 1)
        except StatusError as e:
            self.say("ISSUE_INVOICE refused: %s" % e)
        closed = self.till.call_ok("DAILY_CLOSE")
        decl = self.till.call_ok("DECLARE", dict(end=20260131))
        self.say("DAILY_CLOSE through %s; DECLARE %s..%s onto the user card: %d invoices, %s yuan" % (
            iso(closed.last), iso(decl.start), iso(decl.end), decl.totals.normal_count, yuan(decl.totals.normal_total)))
        try:
            self.till.call_ok("CLEAR_UNLOCK")
        except StatusError as e:
            self.say("CLEAR_UNLOCK before the bureau: %s" % e)

    def filing_window(self) -> None:
        """The pending declaration read and shown; a short filing refused, the corrected one accepted, its
        repetition refused."""
        self.step("The filing window (一窗式), 2026-02-20: five days after the filing deadline")
        self.sim.rtc.set(20260220, 93000)
        reading = stations.read_card(self.st, self.hall(), self.tp)
        p = reading.pending[0]
        self.table("user card %s: pending declaration (verified: MAC1 + signature)" % reading.user_card_no, {
            "machine": p.machine_no, "period": "%s .. %s" % (iso(p.report.start), iso(p.report.end)),
            "invoices": "%d normal, %d returns, %d void" % p.report.counts,
            "recorded income": yuan(p.report.income)})
        short = self.file_income(p.report.income - 5000)
        self.say("declared %s < recorded %s: [bold red]refused[/], shortfall %s; the taxpayer is asked to correct it" % (
            yuan(short.declared.income), yuan(short.recorded), yuan(short.shortfall)))
        self.show_accepted(self.file_income(p.report.income))
        try:
            self.file_income(p.report.income)
        except Refused as e:
            self.say("the same filing again: refused (%s): %s" % (e.reason, e))

    def file_income(self, income: int):
        return stations.file(self.st, self.hall(), self.tp, stations.typed(yuan(income)))

    def show_accepted(self, ok) -> None:
        a = ok.assessment
        self.table("corrected filing (attempt %d): [bold green]accepted[/]" % ok.attempt, {
            "filing deadline": iso(a.filing_deadline), "filed": iso(a.filed_on), "days late": a.days,
            "base (tax due)": yuan(a.base) + " yuan", "surcharge 0.05 %/day": yuan(a.amount) + " yuan",
            "clear-unlock": "new deadline %s, sequence %d" % (iso(ok.clear_unlock["deadline"]), ok.clear_unlock["sequence"])})

    def clear_unlock(self) -> None:
        self.step("Back at the till: clear-unlock")
        cleared = self.till.call_ok("CLEAR_UNLOCK")
        self.say("CLEAR_UNLOCK: period ending %s cleared, deadline now %s; locks: %s" % (
            iso(cleared.period_end), iso(cleared.controls.deadline), ", ".join(self.locks()) or "none"))

    def renew_roll(self) -> None:
        self.step("验旧售新: account for the old roll, sell a new one")
        acc = stations.check_old(self.st, self.hall(), self.tp, self.machine)
        self.say("验旧 (%s): %d numbers distributed, %d used, %d voided, %d remaining: %s" % (
            acc.source, acc.distributed, acc.used, acc.voided, acc.remaining, "ok" if acc.ok else acc.problems))
        sold = stations.sell_roll(self.st, self.hall(), self.tp, self.machine, code=ROLL_CODE, start=101, end=200)
        self.say("售新: roll #%d %s no. 101-200 onto the user card (slot %d of %d this period)" % (
            sold["roll_id"], ROLL_CODE, sold["slot"], sold["quota"]))

    def resume_issuing(self) -> None:
        self.step("Issuing resumes")
        self.sim.rtc.set(20260221, 100000)
        rec = self.invoice(8800, 1)
        self.last_number = rec.number
        self.say("2026-02-21 invoice no. %d, %s yuan; locks: %s" % (rec.number, yuan(rec.total),
                                                                   ", ".join(self.locks()) or "none"))

    def audit(self):
        """READ_JOURNAL with a progress bar, the result kept in audit.json and summarised; the result."""
        self.step("Audit: the whole fiscal memory over the line")
        with Progress("   [progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=self.out, transient=True) as bar:
            task = bar.add_task("READ_JOURNAL", total=None)
            result = stations.audit_till(self.st, self.till, self.machine, partial=self.folder / "journal.part",
                                         progress=lambda done, tot: bar.update(task, completed=done, total=tot))
        (self.folder / "audit.json").write_text(json.dumps(result.as_dict(), indent=1, ensure_ascii=False) + "\n")
        s = result.findings.summary
        self.say("audit #%d: %d bytes, chain %s, %d problem(s), %d note(s); records %s" % (
            result.audit_id, result.journal_bytes, "verified" if s["chain_ok"] else "BROKEN",
            len(result.findings.problems), len(result.findings.notes),
            ", ".join("%s %d" % kv for kv in sorted(s["records"].items()))))
        for p in result.findings.problems:
            self.say("[red]%s %s: %s" % (p["kind"], p["where"], p["detail"]))
        return result

    def export(self) -> None:
        self.step("一户式: the taxpayer's whole record")
        doc = stations.export_taxpayer(self.st, self.tp)
        path = self.folder / "taxpayer.json"
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        self.say("%s: %d declarations, %d comparisons, %d rolls, %d audits, %d events" % (
            path, len(doc["declarations"]), sum(len(d["comparisons"]) for d in doc["declarations"]),
            len(doc["rolls"]), len(doc["audits"]), len(doc["events"])))

    def micropython(self) -> None:
        """The same till (same folder) switched on again with its firmware in the MicroPython unix port."""
        self.step("The same till on MicroPython, as on a board")
        try:
            find_micropython()
        except SimTillError as e:
            self.say("skipped: %s" % e)
            return
        self.till.close()
        self.sim.close()
        self.sim = SimTill(self.folder / "till", "micropython")
        self.till = TillClient(self.sim.port, timeout=5, rid_dir=self.folder / "request-ids")
        info = self.till.call_ok("GET_INFO")
        rec = self.invoice(1500, 1)
        same = info.fw_hash == self.fw_hash and rec.number == self.last_number + 1
        self.say("firmware image %s (.mpy, 256 KiB heap); flash, cards, nvram and clock as CPython left them"
                 % self.sim.image)
        self.say("GET_INFO: firmware hash %s... (%s); ISSUE_INVOICE no. %d, %s yuan; locks: %s" % (
            info.fw_hash.hex()[:16], "the same" if info.fw_hash == self.fw_hash else "DIFFERENT", rec.number,
            yuan(rec.total), ", ".join(self.locks()) or "none"))
        if not same:
            raise SystemExit("the MicroPython firmware did not carry on where CPython stopped")
        self.say("One till, one firmware, two interpreters: it carried on at invoice no. %d." % rec.number)


def last_printed(lines: list[str]) -> list[str]:
    """The last invoice on the printer roll: from its first line (a NON-FISCAL stamp, or the taxpayer's
    name above the title) on."""
    titles = [i for i, line in enumerate(lines) if line in INVOICE_TITLES]
    if not titles:
        return lines[-24:]
    start = max(titles[-1] - 1, 0)
    if start and lines[start - 1].startswith("*** NON-FISCAL"):
        start -= 1
    return lines[start:]


def prepare(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise SystemExit("%s exists and is not a previous gateway demo: choose another folder" % folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by python -m testbed.demo; replaced by the next run\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", default="demo-state", help="where to keep the state (default ./demo-state)")
    args = p.parse_args(argv)
    folder = Path(args.folder).resolve()
    out = Console()
    prepare(folder)
    t0 = time.monotonic()
    try:
        demo = Demo(folder, out)
        try:
            demo.run()
            demo.micropython()
        finally:
            demo.close()
    except (SimTillError, LinkError, StatusError) as e:
        out.print("the demo stopped: %s" % e, markup=False)
        return 1
    out.rule()
    out.print("done in %.1f s; database %s, till %s" % (time.monotonic() - t0, folder / "bureau.db", folder / "till"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
