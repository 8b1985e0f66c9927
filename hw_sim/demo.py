"""A narrated tour: one simulated till, run by each interpreter in turn, asked what it is and how it is.

    .venv/bin/python -m hw_sim.demo [FOLDER]        (default ./demo-state)

The same state folder serves both runs: it is one till, whose firmware runs first in-process under
CPython and then in the MicroPython unix port, and its answers agree.  Later issues extend the tour to
the whole lifecycle (initialize, load a roll, issue, close, declare, unlock).
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from gateway import cli as gateway_cli
from gateway.link import TillClient

from .sim import INTERPRETERS, SimTill, SimTillError

_HOW = {
    "cpython": "in this very process, under CPython",
    "micropython": "as a separate MicroPython program, the way it will run on a real board",
}


def say(text: str) -> None:
    indent = " " * (len(text) - len(text.lstrip()))
    print(textwrap.fill(text.strip(), 100, initial_indent=indent, subsequent_indent=indent), flush=True)
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hw_sim.demo", description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="demo-state", help="state folder (default ./demo-state)")
    args = p.parse_args(argv)
    say("This demo switches on a simulated fiscal till, talks to it over a serial port, and switches it "
        "off again - twice, once for each way the firmware can run.  Everything the till remembers "
        "lives in the folder %s." % args.folder)
    identities = []
    for step, interpreter in enumerate(INTERPRETERS, 1):
        say("%d. Switching the till on with its firmware running %s." % (step, _HOW[interpreter]))
        try:
            sim = SimTill(args.folder, interpreter)
        except SimTillError as e:
            say("   The till could not start: %s" % e)
            return 1
        with sim:
            say("   It is up.  Its serial port is %s: a real pseudo-terminal, so any program that opens "
                "serial ports (a POS, a terminal emulator, the gateway) can talk to it.  Its clock reads "
                "%s." % (sim.port, sim.rtc.now().strftime("%Y-%m-%d %H:%M:%S")))
            say("   Asking what it is and how it is, exactly as `fiscal-gateway info --port %s` does.  "
                "A till fresh from the factory stays locked until the tax bureau initializes it:" % sim.port)
            code = gateway_cli.main(["info", "--port", sim.port])
            print(flush=True)
            if code != 0:
                say("   The till did not answer as it should; see the message above.")
                return code
            with TillClient(sim.port) as till:
                info = till.call_ok("GET_INFO")
            identities.append((info.machine_no, info.fw_version, info.fw_hash))
        say("   Switched off.  Its machine number, settings and clock stay in %s for next time." % args.folder)
    if identities[0] != identities[1]:
        say("The two runs disagree on what the till is: %r" % identities)
        return 1
    say("Both runs reported the same machine number, firmware version and firmware hash: one till, one "
        "firmware, two interpreters.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
