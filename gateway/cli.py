"""fiscal-gateway: talk to a till from a terminal.

    fiscal-gateway info --port /dev/pts/7 [--baud 115200] [--timeout 2] [--retries 2] [--json]
    fiscal-gateway register-taxpayer | register-machine | issue-cards | initialize | read-card | file |
                   referrals | check-old | sell | audit | export ...      (the tax hall: gateway.stations)
    fiscal-gateway verify-events --db URL --keystore FILE [--json]   (the event log: gateway.db.eventlog)
    fiscal-gateway setup-roles --db OWNER_URL --role fiscal_station  (PostgreSQL roles: gateway.db.roles)

Exit status 0 on success, 1 when the till cannot be reached or refuses (one line on stderr, or with --json
{"ok": false, "error": "link", "message": ...} on stdout; no traceback), 2 for bad arguments (argparse),
130 on Ctrl-C.  `verify-events` (the event log) exits 0 verified, 4 tampered, 1 when it cannot be checked;
`setup-roles` (PostgreSQL roles) 0 or 1.  Subcommands register in SUBCOMMANDS; each takes the parsed
arguments and an open TillClient and returns what to print.  The station commands (database, cards,
tills) are defined in gateway.stations.commands, with their own exit statuses (3: filing shortfall).
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from protocol import calendar
from protocol.commands import NO_DEADLINE_DAYS
from protocol.money import yuan
from protocol.status import CAPABILITIES, LOCK_REASONS, STATES, WARNINGS, mask_names

from .link import LinkError, TillClient

PROG = "fiscal-gateway"


def _date(d: int) -> str | None:
    return calendar.iso(d) if d else None


def info_record(info, status) -> dict:
    """GET_INFO and GET_STATUS as one JSON-ready object: names for bit masks, ISO dates, amounts in fen."""
    caps = [name for bit, name in sorted(CAPABILITIES.items()) if info.capabilities >> bit & 1]
    return {
        "info": {
            "model": info.model,
            "machine_no": info.machine_no,
            "fw_version": info.fw_version,
            "fw_hash": info.fw_hash.hex(),
            "protocol_version": "%d.%d" % divmod(info.protocol_version, 256),
            "capabilities": caps,
            "max_payload": info.max_payload,
        },
        "status": {
            "state": STATES.get(status.state, "STATE_%d" % status.state),
            "clock": "%s %s" % (_date(status.date), calendar.time_text(status.time)),
            "lock_reasons": mask_names(status.lock_reasons, LOCK_REASONS),
            "warnings": mask_names(status.warnings, WARNINGS),
            "deadline": _date(status.deadline),
            "days_to_deadline": (None if status.days_to_deadline == NO_DEADLINE_DAYS
                                 else status.days_to_deadline),
            "single_limit_fen": status.single_limit,
            "amount_left_fen": status.amount_left,
            "return_left_fen": status.return_left,
            "roll_code": status.roll_code or None,
            "roll_next": status.roll_next,
            "roll_end": status.roll_end,
            "invoices_left": status.invoices_left,
            "journal_permille": status.journal_permille,
            "last_number": status.last_number,
            "last_declared_end": _date(status.last_declared_end),
        },
    }


def _table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # a hash stays whole, folded, never cut
    for key, value in rows.items():
        if key.endswith("_fen"):
            key, value = key[:-4] + " (yuan)", yuan(value)
        elif isinstance(value, list):
            value = ", ".join(value) or "none"
        elif value is None:
            value = "none"
        table.add_row(key.replace("_", " "), str(value))
    return table


def cmd_info(args: argparse.Namespace, till: TillClient, out: Console) -> None:
    record = info_record(till.call_ok("GET_INFO"), till.call_ok("GET_STATUS"))
    if args.json:
        out.file.write(json.dumps({"port": args.port, **record}, ensure_ascii=False) + "\n")
        return
    out.print(_table("Till on %s" % args.port, record["info"]))
    out.print(_table("Status", record["status"]))


# ---- the bureau's event log (gateway.db.eventlog, gateway.db.roles) -------------------------------------------
EXIT_TAMPERED = 4  # verify-events: the log fails verification
EXIT_INTERRUPTED = 130


def _error(args, reason: str, message: str, code: int) -> int:
    from .stations.commands import _failed
    return _failed(args, PROG, reason, message, code)


def cmd_verify_events(args, out: Console) -> int:
    """verify-events: 0 the log verifies, 4 it does not (first bad seq named), 1 it cannot be checked."""
    from .db.eventlog import LogUnreadable, verify_database
    from .stations.commands import _keystore
    try:
        report = verify_database(args.db, _keystore(args))
    except LogUnreadable as e:
        return _error(args, "unreadable", str(e), 1)
    except KeyboardInterrupt:
        return _error(args, "interrupted", "interrupted: nothing was verified", EXIT_INTERRUPTED)
    doc = report.as_dict()
    if args.json:
        out.file.write(json.dumps(doc, ensure_ascii=False) + "\n")
    else:
        verdict = "VERIFIED" if report.ok else "TAMPERED at event %d" % report.first_bad_seq
        out.print(_table("event log: %s" % verdict, {
            "events": report.rows, "head seq": report.head_seq, "head hash": report.head_hash,
            "authenticated through": report.authenticated_through,
            "not yet vouched for": "%d row(s) chained by migration 0002, no MAC after them yet" % report.unvouched
            if report.unvouched else "none",
            "keys": "TEST keys (a MAC proves nothing)" if report.test_keys else "bureau key store"}))
        for p in report.problems:
            out.print("[red]event %d[/] %s: %s" % (p["seq"], p["kind"], p["detail"]))
    return 0 if report.ok else EXIT_TAMPERED


def cmd_setup_roles(args, out: Console) -> int:
    """setup-roles: migrate as the owner and grant the stations' role; 0 done, 1 failed."""
    import os

    from sqlalchemy.exc import SQLAlchemyError

    from .db.engine import ENV_OWNER_URL
    from .db.roles import RoleSetupError, grant_station_role
    owner = args.db or os.environ.get(ENV_OWNER_URL)
    if not owner:
        return _error(args, "bad-input", "give the owner role's database URL: --db URL or %s" % ENV_OWNER_URL, 1)
    try:
        doc = grant_station_role(owner, args.role)
    except RoleSetupError as e:
        return _error(args, "bad-input", str(e), 1)
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        return _error(args, "database", "cannot set up the roles: %s" % first, 1)
    except KeyboardInterrupt:
        return _error(args, "interrupted", "interrupted: the grants were rolled back, run it again", EXIT_INTERRUPTED)
    if args.json:
        out.file.write(json.dumps(doc, ensure_ascii=False) + "\n")
    else:
        out.print(_table("station role %s" % doc["role"], doc))
    return 0


def _add_event_log_commands(sub) -> None:
    from .stations.commands import _common
    p = sub.add_parser("verify-events", help="check the bureau's event log: chain, MACs and anchors",
                       description="check the bureau's event log: chain, MACs and anchors; exit 0 verified, "
                                   "4 tampered (the first bad sequence number is named), 1 cannot be checked")
    _common(p)
    p.set_defaults(station_fn=cmd_verify_events)
    p = sub.add_parser("setup-roles", help="PostgreSQL: migrate as the owner, grant the stations' role",
                       description="PostgreSQL: migrate as the owner (--db or $FISCAL_DB_OWNER_URL) and create "
                                   "and grant the stations' role: SELECT and INSERT only on the event log")
    p.add_argument("--db", help="the owner role's database URL (default $FISCAL_DB_OWNER_URL)")
    p.add_argument("--role", default="fiscal_station", help="the stations' role (default fiscal_station)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(station_fn=cmd_setup_roles)


SUBCOMMANDS = {
    "info": (cmd_info, "show what the till is (GET_INFO) and its state (GET_STATUS)"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Talk to a fiscal till over its serial link; run the tax hall's stations.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_fn, help_text) in SUBCOMMANDS.items():
        s = sub.add_parser(name, help=help_text, description=help_text)
        s.add_argument("--port", required=True, help="serial port or pyserial URL (rfc2217://, socket://)")
        s.add_argument("--baud", type=_number(int, 1), default=115200, help="baud rate (default 115200)")
        s.add_argument("--timeout", type=_number(float, 0.001), default=2.0, help="seconds per try (default 2)")
        s.add_argument("--retries", type=_number(int, 0), default=2, help="resends after a timeout (default 2)")
        s.add_argument("--rid-dir", default=None, metavar="DIR", help="where the request-id counter of each till is kept (default $FISCAL_RID_DIR or ~/.local/state/fiscal-toolkit/request-ids)")
        s.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    from .stations.commands import add_commands
    add_commands(sub, _number)
    _add_event_log_commands(sub)
    return p


def _number(kind, low):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError("not %s: %r" % (what, text)) from None
        if value < low:
            raise argparse.ArgumentTypeError("must be at least %s: %r" % (low, text))
        return value
    return convert


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "station_fn", None) is not None:
        from .stations.commands import run
        try:
            return run(args, PROG)
        except LinkError as e:
            return _error(args, "link", str(e), 1)
    fn = SUBCOMMANDS[args.command][0]
    try:
        with TillClient(args.port, args.baud, args.timeout, args.retries, rid_dir=args.rid_dir) as till:
            fn(args, till, Console(file=sys.stdout))
    except LinkError as e:
        return _error(args, "link", str(e), 1)
    except KeyboardInterrupt:
        return _error(args, "interrupted", "interrupted: nothing was left half-done; run the command again", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
