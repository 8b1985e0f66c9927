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


_HEADER = [
    '"""Numbers of the protocol, generated from protocol/ by `python -m protocol.codegen`: do not edit."""',
    "",
    "try:",
    "    from micropython import const",
    "except ImportError:",
    "    def const(x):  # type: ignore[misc]",
    "        return x",
    "",
]

_ERROR_FOR_SW = [
    "",
    "",
    "def error_for_sw(sw, ins=-1):",
    '    """Map a card status word to our error code (protocol.errors.from_card_sw)."""',
    "    for value, mask, only, code in CARD_SW:",
    "        if sw & mask == value and (only == -1 or only == ins):",
    "            return code",
    "    return E_CARD_UNEXPECTED_SW",
    "",
]


def render() -> str:
    """The text of codes.py: header, scalars, thresholds, commands, errors, card SWs, status tables, helper."""
    out = list(_HEADER)
    for part in (_scalars, _thresholds, _commands, _errors, _card_sw, _locks_and_warnings, _enumerations):
        out += part()
    return "\n".join(out + _ERROR_FOR_SW)


def _scalars() -> list[str]:
    return [
        "PROTOCOL_VERSION = const(0x%04X)" % commands.PROTOCOL_VERSION,
        "MAX_PAYLOAD = const(%d)" % frame.MAX_PAYLOAD,
        "MAX_LINES = const(%d)" % commands.MAX_LINES,
        "READ_JOURNAL_MAX = const(%d)" % commands.READ_JOURNAL_MAX,
        "NO_DEADLINE_DAYS = const(0x%04X)" % commands.NO_DEADLINE_DAYS,
        "KEEPALIVE_INTERVAL_MS = const(%d)" % frame.KEEPALIVE_INTERVAL_MS,
        "CARD_MAC_TRIES = const(%d)" % apdu.MAC_TRIES,
    ]


def _thresholds() -> list[str]:
    out = ["", "# rule thresholds (protocol/rules.py: each belongs to one rule, named in docs/RULES.md)"]
    return out + ["RULE_%s = const(%d)" % (name, value) for name, value in sorted(rules.THRESHOLDS.items())]


def _commands() -> list[str]:
    out = ["", "# commands"] + ["CMD_%s = const(0x%02X)" % (cmd.name, cmd.code) for cmd in commands.COMMANDS]
    mut = ", ".join("CMD_%s" % cmd.name for cmd in commands.COMMANDS if cmd.mutating)
    return out + ["MUTATING = (%s)" % mut]


def _errors() -> list[str]:
    out = ["", "# status words / error codes (protocol/errors.py)"]
    return out + ["E_%s = const(0x%04X)" % (e.name, e.code) for e in errors.TABLE]


def _card_sw() -> list[str]:
    """CARD_SW rows; command-specific rows (ins given) come first, the stable sort keeps table order."""
    rows = [(v, m, e.card_ins, e.code) for e in errors.TABLE for v, m in e.card_sw]
    rows.sort(key=lambda r: r[2] is None)
    out = ["", "# card status word -> error: (sw, mask, ins or -1, error); command-specific rows first",
           "CARD_SW = ("]
    for v, m, ins, code in rows:
        out.append("    (0x%04X, 0x%04X, %d, 0x%04X)," % (v, m, -1 if ins is None else ins, code))
    return out + [")"]


def _locks_and_warnings() -> list[str]:
    out = ["", "# till states"]
    out += ["STATE_%s = const(%d)" % (name, value) for value, name in sorted(status.STATES.items())]
    out += ["", "# lock reasons: bit numbers, and the error each one gives a refused invoice"]
    out += ["LOCK_%s = const(%d)" % (r.name, r.bit) for r in status.LOCK_REASONS]
    out += ["LOCK_ERRORS = ("] + ["    (LOCK_%s, E_%s)," % (r.name, r.error) for r in status.LOCK_REASONS] + [")"]
    out += ["", "# warnings: bit numbers"]
    return out + ["WARN_%s = const(%d)" % (w.name, w.bit) for w in status.WARNINGS]


# (comment, prefix, {number: name}, number format) for the plain enumerations, in codes.py's order
_ENUMERATIONS = (
    ("request flags (LOAD_ROLL, CLEAR_UNLOCK): bit numbers", "FLAG", status.REQUEST_FLAGS, "%d"),
    ("fiscal-memory damage kinds (GET_STATUS.damage_kind)", "DAMAGE", status.DAMAGE_KINDS, "%d"),
    ("capabilities: bit numbers", "CAP", status.CAPABILITIES, "%d"),
    ("invoice kinds", "INVOICE", status.INVOICE_KINDS, "%d"),
    ("report kinds", "REPORT", status.REPORT_KINDS, "%d"),
    ("fiscal-memory record types", "REC", {value: name for value, (name, _) in records.RECORDS.items()}, "0x%02X"),
    ("event codes", "EV", status.EVENTS, "%d"),
)


def _enumerations() -> list[str]:
    out: list[str] = []
    for comment, prefix, table, number in _ENUMERATIONS:
        out += ["", "# " + comment]
        line = "%s_%%s = const(%s)" % (prefix, number)
        out += [line % (name, value) for value, name in sorted(table.items())]
    return out


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
