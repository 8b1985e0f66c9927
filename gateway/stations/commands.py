"""fiscal-gateway station commands (the tax hall), added to gateway.cli's parser.

Every command takes --db URL (default $FISCAL_DB_URL, else ./fiscal-gateway.db), --station NAME, the keys
(--keystore FILE with the passphrase in $FISCAL_KEYSTORE_PASSPHRASE, or --test-keys for the published TEST
keys: NON-FISCAL), --today YYYY-MM-DD (the hall's date; default the system date) and --json (one JSON
object on stdout instead of tables).  A user card is a simulator card file (--card FILE, saved after each
change) or a PC/SC reader (--pcsc [NAME]).

Exit status: 0 done; 1 refused or failed (the reason on stderr, or {"refused": reason, ...} with --json;
a database, file, reader or key-store failure is {"ok": false, "error": CODE, "message": ...}: the codes
are in docs/GATEWAY.md); 2 bad arguments; 3 a filing refused for a shortfall (correct it, or give
--explanation to refer it); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from protocol import cardfiles

from .. import issuance
from ..bureau_errors import BureauError, CardStatusError, DatabaseUnavailable, KeyStoreError, ReaderError
from ..db import open_store
from ..db.engine import database_url, describe_failure
from ..keystore import KeyStore
from . import audit, export, filing, income, referrals, registry, sales
from .common import BAD_INPUT, Refused, Station, iso, today_int, yuan

EXIT_SHORTFALL = 3


# ---- argument types --------------------------------------------------------------------------------------------
def _arg(fn):
    def convert(text: str):
        try:
            return fn(text)
        except Refused as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def _digits(n: int, what: str):
    def convert(text: str) -> str:
        if not (text.isascii() and text.isdigit() and len(text) == n):
            raise argparse.ArgumentTypeError("%s must be %d digits, got %r" % (what, n, text))
        return text
    return convert


def _hex8(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{16}", text):
        raise argparse.ArgumentTypeError("a card number is 16 hex digits, got %r" % text)
    return text.lower()


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 4294967295, got %r" % text)
    return int(text)


def _item(text: str) -> dict:
    parts = text.split(":", 3)
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        raise argparse.ArgumentTypeError("a tax item is INDEX:RATE_BASIS_POINTS:CODE:NAME (1:300:10101:餐饮服务), "
                                         "got %r" % text)
    return issuance.tax_item(int(parts[0]), int(parts[1]), parts[2], parts[3])


def _time(text: str) -> int:
    m = re.fullmatch(r"(\d\d):(\d\d)(?::(\d\d))?", text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        raise argparse.ArgumentTypeError("time must be HH:MM[:SS], got %r" % text)
    return int(m.group(1)) * 10000 + int(m.group(2)) * 100 + int(m.group(3) or 0)


DATE = _arg(lambda t: income.parse_date(t))
YUAN = _arg(lambda t: income.parse_yuan(t, "amount"))
MACHINE = _digits(16, "machine number")


# ---- shared plumbing -------------------------------------------------------------------------------------------
def _station(args) -> Station:
    ks = _keystore(args)
    today = args.today
    return Station(open_store(args.db), ks, name=args.station, clock=(lambda: today) if today else today_int)


def _keystore(args) -> KeyStore:
    if args.test_keys:
        ks = KeyStore.for_tests()
    elif args.keystore:
        pw = os.environ.get("FISCAL_KEYSTORE_PASSPHRASE")
        if not pw:
            raise Refused(BAD_INPUT, "set FISCAL_KEYSTORE_PASSPHRASE to open the key store %s" % args.keystore)
        ks = KeyStore.open(args.keystore, pw)
    else:
        raise Refused(BAD_INPUT, "give --keystore FILE (production keys) or --test-keys (TEST keys, NON-FISCAL)")
    return ks


def _reader(args):
    from ..readers import CARD_FILE, open_reader
    if getattr(args, "pcsc", None) is not None:
        return open_reader("pcsc", name=args.pcsc or None)
    if not args.card:
        raise Refused(BAD_INPUT, "give the user card: --card FILE (simulator) or --pcsc [READER]")
    try:
        return open_reader(CARD_FILE, path=args.card)
    except ReaderError as e:
        raise Refused(BAD_INPUT, "cannot use card file %s: %s" % (args.card, e)) from None


def _till(args):
    from ..link import TillClient
    return TillClient(args.port, args.baud, args.timeout, args.retries, rid_dir=args.rid_dir)


def _emit(args, out: Console, doc: dict, title: str, rows: dict | None = None, extra=None) -> None:
    if args.json:
        out.file.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
        return
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in (rows if rows is not None else doc).items():
        t.add_row(str(k), "none" if v is None else str(v))
    out.print(t)
    if extra:
        extra()


# ---- commands ---------------------------------------------------------------------------------------------------
def cmd_register_taxpayer(args, out):
    st = _station(args)
    tp = issuance.Taxpayer(args.taxpayer_no, args.taxpayer_id, args.name, args.bureau_code,
                    cardfiles.FILING_QUARTERLY if args.quarterly else cardfiles.FILING_MONTHLY)
    row = registry.register_taxpayer(st, tp, tax_items=args.item, roll_quota=args.roll_quota)
    _emit(args, out, {"taxpayer_no": row.taxpayer_no, "name": row.name, "roll_quota": row.roll_quota,
                      "tax_items": args.item}, "taxpayer registered")


def cmd_register_machine(args, out):
    st = _station(args)
    limits = issuance.Limits(args.deadline, args.single_limit, args.cumulative_limit, args.return_limit)
    m = registry.register_machine(st, args.taxpayer, args.machine, limits)
    _emit(args, out, {"machine_no": m.machine_no, "taxpayer_no": args.taxpayer, "deadline": m.deadline,
                      "single_limit_fen": m.single_limit, "cumulative_limit_fen": m.cumulative_limit,
                      "return_limit_fen": m.return_limit}, "machine registered")


def cmd_issue_cards(args, out):
    st = _station(args)
    fd, ud = registry.issue_cards(st, args.taxpayer, args.machine, fiscal_card_no=args.fiscal_card,
                                  user_card_no=args.user_card, valid_from=args.valid_from, valid_to=args.valid_to,
                                  personalise=registry.sim_personaliser(args.out))
    _emit(args, out, {"machine_no": args.machine, "fiscal_card_no": fd.card_no.hex(), "user_card_no": ud.card_no.hex(),
                      "key_id": ud.key_id, "fiscal_card_file": str(Path(args.out) / "fiscal.json"),
                      "user_card_file": str(Path(args.out) / "user.json")}, "cards issued")


def cmd_initialize(args, out):
    st = _station(args)
    with _till(args) as till:
        r = registry.initialize_till(st, till, args.machine, date=args.date, time=args.time)
    _emit(args, out, r, "till initialized")


def cmd_read_card(args, out):
    st = _station(args)
    reading = filing.read_card(st, _reader(args), args.taxpayer)
    doc = reading.as_dict()
    if args.json or not reading.pending:
        _emit(args, out, doc, "user card %s: no pending declaration" % reading.user_card_no,
              {"taxpayer": "%s %s" % (reading.taxpayer_no, reading.taxpayer_name)})
        return
    for p in doc["pending"]:
        _emit(args, out, p, "user card %s: declaration pending (verified)" % reading.user_card_no, {
            "machine": p["machine_no"], "period": "%s .. %s" % (iso(p["period_start"]), iso(p["period_end"])),
            "invoices": "%d normal, %d returns, %d void" % (p["normal_count"], p["return_count"], p["void_count"]),
            "normal total (yuan)": yuan(p["normal_total_fen"]), "returns (yuan)": yuan(p["return_total_fen"]),
            "recorded income (yuan)": yuan(p["recorded_income_fen"]),
            "per item (yuan)": ", ".join("%d: %s/-%s" % (x["item"], yuan(x["normal_fen"]), yuan(x["returned_fen"]))
                                         for x in p["lines"])})


def cmd_file(args, out):
    st = _station(args)
    declared = income.load(args.income_file) if args.income_file else income.DeclaredIncome(args.income)
    o = filing.file(st, _reader(args), args.taxpayer, declared, machine_no=args.machine, explanation=args.explanation)
    doc = o.as_dict()
    rows = {"declaration": "#%d machine %s, %s .. %s" % (o.declaration["declaration_id"], o.declaration["machine_no"],
                                                        iso(o.declaration["period_start"]), iso(o.declaration["period_end"])),
            "attempt": o.attempt, "declared (yuan)": yuan(o.declared.income), "recorded (yuan)": yuan(o.recorded)}
    if o.accepted:
        a = o.assessment
        rows.update({"filing deadline": iso(a.filing_deadline), "days late": a.days, "surcharge base (yuan)": yuan(a.base),
                     "surcharge (yuan)": yuan(a.amount), "new invoice deadline": iso(o.clear_unlock["deadline"]),
                     "clear-unlock": "#%d written to the card" % o.clear_unlock["clear_unlock_id"]})
        _emit(args, out, doc, "filing ACCEPTED", rows)
        return 0
    rows["shortfall (yuan)"] = yuan(o.shortfall)
    rows["next"] = ("referral #%d opened for the tax source department" % o.referral_id if o.referral_id else
                    "correct the filing and file again, or file with --explanation to refer it")
    _emit(args, out, doc, "filing REFUSED: declared income below the card's record", rows)
    return 0 if o.referral_id else EXIT_SHORTFALL


def cmd_referrals(args, out):
    st = _station(args)
    if args.action == "list":
        rows = referrals.list_referrals(st, state=args.state, taxpayer_no=args.taxpayer)
        if args.json:
            out.file.write(json.dumps({"referrals": rows}, ensure_ascii=False) + "\n")
            return
        t = Table(title="referrals", title_justify="left")
        for col in ("id", "taxpayer", "declaration", "state", "assignee", "explanation"):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r["referral_id"]), r["taxpayer_no"], str(r["declaration_id"]), r["state"],
                      r["assignee"] or "", r["explanation"])
        out.print(t)
        return
    if args.id is None:
        raise Refused(BAD_INPUT, "referrals %s needs the referral id" % args.action)
    if args.action == "assign":
        r = referrals.assign(st, args.id, args.to)
    else:
        r = referrals.close(st, args.id, args.resolution)
    _emit(args, out, r, "referral #%d" % r["referral_id"])


def _roll_table(out, acc: dict):
    t = Table(title="rolls of machine %s (%s)" % (acc["machine_no"], acc["source"]), title_justify="left")
    for col in ("roll", "code", "numbers", "where", "consumed", "remaining"):
        t.add_column(col)
    for r in acc["rolls"]:
        t.add_row("#%d" % r["roll_id"], r["code"], "%d-%d" % (r["start"], r["end"]), r["where"], str(r["consumed"]),
                  str(r["remaining"]))
    out.print(t)
    for p in acc["problems"]:
        out.print("[red]problem:[/] " + p)


def cmd_check_old(args, out):
    st = _station(args)
    acc = sales.check_old(st, _reader(args), args.taxpayer, args.machine).as_dict()
    _emit(args, out, acc, "验旧 machine %s: %s" % (args.machine, "OK" if acc["ok"] else "PROBLEMS"),
          {k: acc[k] for k in ("distributed", "used", "voided", "remaining")}, lambda: _roll_table(out, acc))
    return 0 if acc["ok"] else 1


def cmd_sell(args, out):
    st = _station(args)
    r = sales.sell_roll(st, _reader(args), args.taxpayer, args.machine, code=args.code, start=args.start, end=args.end)
    _emit(args, out, r, "roll sold", {k: r[k] for k in ("roll_id", "machine_no", "code", "start", "end", "slot", "quota")},
          lambda: _roll_table(out, r["checked"]))


def cmd_audit(args, out):
    st = _station(args)
    with _till(args) as till:
        if args.json:
            result = audit.audit_till(st, till, args.machine, partial=args.resume)
        else:
            with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TimeRemainingColumn(), console=out, transient=True) as bar:
                task = bar.add_task("READ_JOURNAL %s" % args.machine, total=None)
                result = audit.audit_till(st, till, args.machine, partial=args.resume,
                                          progress=lambda d, t: bar.update(task, completed=d, total=t))
    doc = result.as_dict()
    if args.report:
        Path(args.report).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    s = result.findings.summary

    def findings():
        for p in result.findings.problems:
            out.print("[red]%s[/] at %s: %s" % (p["kind"], p["where"], p["detail"]))
        for n in result.findings.notes:
            out.print("[yellow]note[/] %s" % n["detail"])
    _emit(args, out, doc, "audit #%d of machine %s: %s" % (result.audit_id, args.machine,
                                                          "VERIFIED" if result.ok else "%d PROBLEM(S)" % len(result.findings.problems)),
          {"journal bytes": result.journal_bytes, "sha-256": result.journal_sha256, "chain": "verified" if s.get("chain_ok") else "BROKEN",
           "records": ", ".join("%s %d" % kv for kv in sorted(s.get("records", {}).items())),
           "days": "%s .. %s" % (iso(s.get("first_day")), iso(s.get("last_day")))}, findings)
    return 0 if result.ok else 1


def cmd_export(args, out):
    st = _station(args)
    doc = export.export_taxpayer(st, args.taxpayer)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        summary = {"file": args.out, "declarations": len(doc["declarations"]), "rolls": len(doc["rolls"]),
                   "referrals": len(doc["referrals"]), "audits": len(doc["audits"]), "events": len(doc["events"])}
        _emit(args, out, summary, "一户式 export of %s" % args.taxpayer)
    else:
        out.file.write(json.dumps(doc, ensure_ascii=False) + "\n" if args.json else text)


# ---- parser -------------------------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database URL or SQLite file (default $FISCAL_DB_URL, else ./fiscal-gateway.db)")
    p.add_argument("--station", default="station", help="this station's name, written on every record")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--keystore", help="the bureau key store (passphrase in $FISCAL_KEYSTORE_PASSPHRASE)")
    keys.add_argument("--test-keys", action="store_true", help="the published TEST keys (NON-FISCAL)")
    p.add_argument("--today", type=DATE, help="the hall's date YYYY-MM-DD (default: the system date)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _card(p):
    p.add_argument("--card", help="the user card as a simulator card file (saved after each change)")
    p.add_argument("--pcsc", nargs="?", const="", help="the user card in a PC/SC reader (the first, or NAME)")


def _port(p, number):
    p.add_argument("--port", required=True, help="serial port or pyserial URL (rfc2217://, socket://)")
    p.add_argument("--baud", type=number(int, 1), default=115200, help="baud rate (default 115200)")
    p.add_argument("--timeout", type=number(float, 0.001), default=5.0, help="seconds per try (default 5)")
    p.add_argument("--retries", type=number(int, 0), default=2, help="resends after a timeout (default 2)")
    p.add_argument("--rid-dir", default=None, metavar="DIR", help="where the request-id counter of each till is kept (default $FISCAL_RID_DIR or ~/.local/state/fiscal-toolkit/request-ids)")


def add_commands(sub, number) -> None:
    """Add the station commands to gateway.cli's subparsers; `number` is its numeric argument type.

    The groups add their commands in the order `fiscal-gateway --help` lists them.
    """
    def add(name, fn, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(station_fn=fn)
        _common(p)
        return p

    for group in (_add_registration, _add_cards, _add_initialize, _add_window, _add_rolls, _add_audit, _add_export):
        group(add, number)


def _add_registration(add, number) -> None:
    """register-taxpayer, register-machine: the bureau's records of a taxpayer and its till."""
    p = add("register-taxpayer", cmd_register_taxpayer, "register a taxpayer and its tax items")
    p.add_argument("--taxpayer-no", required=True, help="纳税人识别号 (up to 20 letters and digits)")
    p.add_argument("--taxpayer-id", required=True, help="registration number")
    p.add_argument("--name", required=True, help="taxpayer name (up to 40 bytes of UTF-8)")
    p.add_argument("--bureau-code", required=True, help="tax bureau code (up to 12 digits)")
    p.add_argument("--quarterly", action="store_true", help="files quarterly (default monthly)")
    p.add_argument("--roll-quota", type=_positive, default=1, help="rolls sold per period (default 1)")
    p.add_argument("--item", type=_item, action="append", required=True,
                   help="tax item INDEX:RATE_BASIS_POINTS:CODE:NAME, 1 to 6 times")
    p = add("register-machine", cmd_register_machine, "register a till of a taxpayer with its deadline and limits")
    p.add_argument("--taxpayer", required=True)
    p.add_argument("--machine", required=True, type=MACHINE)
    p.add_argument("--deadline", required=True, type=DATE, help="first invoice deadline YYYY-MM-DD")
    for lim in ("single", "cumulative", "return"):
        p.add_argument("--%s-limit" % lim, required=True, type=YUAN, help="%s limit in yuan" % lim)


def _add_cards(add, number) -> None:
    """issue-cards: the fiscal and user card of a registered till."""
    p = add("issue-cards", cmd_issue_cards, "issue the fiscal and user card of a machine (simulator card files)")
    p.add_argument("--taxpayer", required=True)
    p.add_argument("--machine", required=True, type=MACHINE)
    p.add_argument("--fiscal-card", required=True, type=_hex8, help="fiscal card number, 16 hex digits")
    p.add_argument("--user-card", required=True, type=_hex8, help="user card number, 16 hex digits")
    p.add_argument("--valid-from", required=True, type=DATE)
    p.add_argument("--valid-to", required=True, type=DATE)
    p.add_argument("--out", required=True, help="folder for fiscal.json and user.json (a simulator's cards/)")


def _add_initialize(add, number) -> None:
    """initialize: 税控初始化 over the serial line."""
    p = add("initialize", cmd_initialize, "税控初始化 of a registered till over its serial line")
    _port(p, number)
    p.add_argument("--machine", required=True, type=MACHINE)
    p.add_argument("--date", type=DATE, help="initialization date (default today)")
    p.add_argument("--time", type=_time, help="HH:MM[:SS] (default now)")


def _add_window(add, number) -> None:
    """read-card, file, referrals: the filing window and what a refused filing leads to."""
    p = add("read-card", cmd_read_card, "read and verify the user card at the window; show the period's totals")
    p.add_argument("--taxpayer", required=True)
    _card(p)
    p = add("file", cmd_file, "一窗式 filing: compare the declared income, clear-unlock or refuse")
    p.add_argument("--taxpayer", required=True)
    _card(p)
    income_source = p.add_mutually_exclusive_group(required=True)
    income_source.add_argument("--income", type=YUAN, help="declared income in yuan, e.g. 12345.60")
    income_source.add_argument("--income-file", help="the filing as a .json or .csv file")
    p.add_argument("--machine", type=MACHINE, help="when the card holds several declarations")
    p.add_argument("--explanation", help="the taxpayer's explanation of a shortfall: opens a referral")
    p = add("referrals", cmd_referrals, "referrals to the tax source department: list, assign, close")
    p.add_argument("action", choices=("list", "assign", "close"))
    p.add_argument("id", nargs="?", type=_positive)
    p.add_argument("--state", choices=referrals.STATES)
    p.add_argument("--taxpayer")
    p.add_argument("--to", help="assignee (assign)")
    p.add_argument("--resolution", help="how it was resolved (close)")


def _add_rolls(add, number) -> None:
    """check-old, sell: 验旧 and 验旧售新 of invoice rolls on the user card."""
    p = add("check-old", cmd_check_old, "验旧: account for every roll sold to a machine")
    p.add_argument("--taxpayer", required=True)
    p.add_argument("--machine", required=True, type=MACHINE)
    _card(p)
    p = add("sell", cmd_sell, "验旧售新: sell a roll of invoices onto the user card")
    p.add_argument("--taxpayer", required=True)
    p.add_argument("--machine", required=True, type=MACHINE)
    _card(p)
    p.add_argument("--code", required=True, type=_digits(10, "invoice code"))
    p.add_argument("--start", required=True, type=_positive)
    p.add_argument("--end", required=True, type=_positive)


def _add_audit(add, number) -> None:
    """audit: read the fiscal memory over the line and verify it."""
    p = add("audit", cmd_audit, "read the till's fiscal memory over the line and verify it against the record")
    _port(p, number)
    p.add_argument("--machine", required=True, type=MACHINE)
    p.add_argument("--resume", help="partial read-out file: kept while reading, resumed from next time")
    p.add_argument("--report", help="also write the full report as JSON to this file")


def _add_export(add, number) -> None:
    """export: 一户式, one taxpayer as one JSON document."""
    p = add("export", cmd_export, "一户式: everything about one taxpayer as one JSON document")
    p.add_argument("--taxpayer", required=True)
    p.add_argument("--out", help="file to write (default: stdout)")


def run(args, prog: str) -> int:
    """Run a station command; its exit status (see the module docstring)."""
    out = Console(file=sys.stdout)
    try:
        code = args.station_fn(args, out)
    except Refused as e:
        if args.json:
            sys.stdout.write(json.dumps(e.as_dict(), ensure_ascii=False) + "\n")
        else:
            print("%s: refused (%s): %s" % (prog, e.reason, e), file=sys.stderr)
            for p in e.problems:
                print("  - %s" % p, file=sys.stderr)
        return 1
    except BureauError as e:
        return _failed(args, prog, _kind(e), str(e), 1)
    except SQLAlchemyError as e:  # the database failed in the middle of a command: nothing half-written
        return _failed(args, prog, "database", describe_failure(database_url(args.db), e), 1)
    except OSError as e:  # a file the operator named (--out, --report, --resume, --card)
        where = " %s" % e.filename if e.filename else ""
        return _failed(args, prog, "file", "cannot write or read%s (%s): choose another path or fix its "
                       "permissions" % (where, e.strerror or e), 1)
    except KeyboardInterrupt:
        return _failed(args, prog, "interrupted", "interrupted: whatever was committed stays; run the command "
                       "again to finish (an audit resumes with --resume)", 130)
    return code or 0


def _kind(e: BureauError) -> str:
    """The stable JSON code of a bureau error, by its class (subclasses take their base's code)."""
    for cls, kind in ((DatabaseUnavailable, "database"), (CardStatusError, "card"), (ReaderError, "reader"),
                      (KeyStoreError, "keystore")):
        if isinstance(e, cls):
            return kind
    return "refused"


def _failed(args, prog: str, kind: str, message: str, code: int) -> int:
    """One line on stderr, or with --json one JSON object on stdout: {"ok": false, "error", "message"}."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"ok": False, "error": kind, "message": message}, ensure_ascii=False) + "\n")
    else:
        print("%s: %s" % (prog, message), file=sys.stderr)
    return code
