"""Generate the firmware's constants module from the one definition in protocol/.

    python -m protocol.codegen            # rewrite firmware/fiscal_till/codes.py
    python -m protocol.codegen --check    # exit 1 if it is stale (the test suite does this too)

The firmware cannot import protocol/ (Construct does not run on MicroPython), so the numbers it needs
(command codes, error codes, lock and warning bits, record types, kinds, card status-word mapping) are
written out as `const()` definitions.  Layouts are not generated: the firmware's schemas are a second,
independent implementation that the tests hold equal to the Construct definitions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import apdu, commands, errors, frame, records, rules, status

TARGET = Path(__file__).resolve().parent.parent / "firmware" / "fiscal_till" / "codes.py"


def render() -> str:
    out: list[str] = [
        '"""Numbers of the protocol, generated from protocol/ by `python -m protocol.codegen`: do not edit."""',
        "",
        "try:",
        "    from micropython import const",
        "except ImportError:",
        "    def const(x):  # type: ignore[misc]",
        "        return x",
        "",
        "PROTOCOL_VERSION = const(0x%04X)" % commands.PROTOCOL_VERSION,
        "MAX_PAYLOAD = const(%d)" % frame.MAX_PAYLOAD,
        "MAX_LINES = const(%d)" % commands.MAX_LINES,
        "READ_JOURNAL_MAX = const(%d)" % commands.READ_JOURNAL_MAX,
        "NO_DEADLINE_DAYS = const(0x%04X)" % commands.NO_DEADLINE_DAYS,
        "KEEPALIVE_INTERVAL_MS = const(%d)" % frame.KEEPALIVE_INTERVAL_MS,
        "CARD_MAC_TRIES = const(%d)" % apdu.MAC_TRIES,
        "",
        "# rule thresholds (protocol/rules.py: each belongs to one rule, named in docs/RULES.md)",
    ]
    for name, value in sorted(rules.THRESHOLDS.items()):
        out.append("RULE_%s = const(%d)" % (name, value))
    out += ["", "# commands"]
    for cmd in commands.COMMANDS:
        out.append("CMD_%s = const(0x%02X)" % (cmd.name, cmd.code))
    mut = ", ".join("CMD_%s" % cmd.name for cmd in commands.COMMANDS if cmd.mutating)
    out += ["MUTATING = (%s)" % mut, "", "# status words / error codes (protocol/errors.py)"]
    for e in errors.TABLE:
        out.append("E_%s = const(0x%04X)" % (e.name, e.code))
    out += ["", "# card status word -> error: (sw, mask, ins or -1, error); command-specific rows first",
            "CARD_SW = ("]
    rows = [(v, m, e.card_ins, e.code) for e in errors.TABLE for v, m in e.card_sw]
    rows.sort(key=lambda r: r[2] is None)
    for v, m, ins, code in rows:
        out.append("    (0x%04X, 0x%04X, %d, 0x%04X)," % (v, m, -1 if ins is None else ins, code))
    out += [")", "", "# till states"]
    for value, name in sorted(status.STATES.items()):
        out.append("STATE_%s = const(%d)" % (name, value))
    out += ["", "# lock reasons: bit numbers, and the error each one gives a refused invoice"]
    for r in status.LOCK_REASONS:
        out.append("LOCK_%s = const(%d)" % (r.name, r.bit))
    out.append("LOCK_ERRORS = (")
    for r in status.LOCK_REASONS:
        out.append("    (LOCK_%s, E_%s)," % (r.name, r.error))
    out += [")", "", "# warnings: bit numbers"]
    for w in status.WARNINGS:
        out.append("WARN_%s = const(%d)" % (w.name, w.bit))
    out += ["", "# request flags (LOAD_ROLL, CLEAR_UNLOCK): bit numbers"]
    for bit, name in sorted(status.REQUEST_FLAGS.items()):
        out.append("FLAG_%s = const(%d)" % (name, bit))
    out += ["", "# fiscal-memory damage kinds (GET_STATUS.damage_kind)"]
    for value, name in sorted(status.DAMAGE_KINDS.items()):
        out.append("DAMAGE_%s = const(%d)" % (name, value))
    out += ["", "# capabilities: bit numbers"]
    for bit, name in sorted(status.CAPABILITIES.items()):
        out.append("CAP_%s = const(%d)" % (name, bit))
    out += ["", "# invoice kinds"]
    for value, name in sorted(status.INVOICE_KINDS.items()):
        out.append("INVOICE_%s = const(%d)" % (name, value))
    out += ["", "# report kinds"]
    for value, name in sorted(status.REPORT_KINDS.items()):
        out.append("REPORT_%s = const(%d)" % (name, value))
    out += ["", "# fiscal-memory record types"]
    for value, (name, _) in sorted(records.RECORDS.items()):
        out.append("REC_%s = const(0x%02X)" % (name, value))
    out += ["", "# event codes"]
    for value, name in sorted(status.EVENTS.items()):
        out.append("EV_%s = const(%d)" % (name, value))
    out += ["", "", "def error_for_sw(sw, ins=-1):",
            '    """Map a card status word to our error code (protocol.errors.from_card_sw)."""',
            "    for value, mask, only, code in CARD_SW:",
            "        if sw & mask == value and (only == -1 or only == ins):",
            "            return code",
            "    return E_CARD_UNEXPECTED_SW", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print("%s is stale: run python -m protocol.codegen" % TARGET, file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print("wrote", TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
