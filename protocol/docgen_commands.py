"""docs/PROTOCOL.md sections from protocol/command_rules.py: the command x till-state matrix and, per
command, its ordered checks (protocol.docgen calls these)."""

from __future__ import annotations

import inspect

from . import command_rules, errors


def _error(name: str) -> str:
    if name == command_rules.LOCK:
        return "the first standing lock's error"
    if name in errors.BY_NAME:
        return "0x%04X %s" % (errors.BY_NAME[name].code, name)
    return name


def _cell(value: str) -> str:
    if value == command_rules.OK:
        return "yes"
    if value == command_rules.LOCK:
        return "no: the lock's error"
    return "no: %s" % value


def state_matrix() -> list[str]:
    """The 'States and check order' section: prose, the matrix and the link checks."""
    o = ["## States and check order", "", inspect.cleandoc(command_rules.__doc__ or ""), "",
         "| command | " + " | ".join(command_rules.TILL_STATES) + " |",
         "|---|" + "---|" * len(command_rules.TILL_STATES)]
    for rules in command_rules.RULES:
        o.append("| %s | %s |" % (rules.name, " | ".join(_cell(rules.states[s]) for s in command_rules.TILL_STATES)))
    o += ["", "Every request is first checked by the link, in this order:", ""]
    o += _numbered(command_rules.LINK_CHECKS)
    o += ["", "then by its command (below, per command); a request that passed them all can still get:", ""]
    o += _numbered(command_rules.AFTER_CHECKS)
    return o + [""]


def command_checks(name: str) -> list[str]:
    """Per command: the states it works in and its checks in order."""
    rules = command_rules.BY_NAME[name]
    works = [s for s in command_rules.TILL_STATES if rules.states[s] == command_rules.OK]
    o = ["Works in: %s." % ", ".join(works)]
    if not rules.checks:
        o[0] += "  No checks: it always answers OK."
    else:
        o += ["", "Checks, in order (after the link checks):", ""] + _numbered(rules.checks)
    if rules.note:
        o += ["", rules.note]
    return o + [""]


def _numbered(checks: tuple[command_rules.Check, ...]) -> list[str]:
    return ["%d. `%s`: %s -> %s" % (i, c.key, c.when, " / ".join(_error(e) for e in c.errors))
            for i, c in enumerate(checks, 1)]
