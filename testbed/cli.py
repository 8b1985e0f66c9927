"""fiscal-sim: run a simulated till until interrupted.

    fiscal-sim [--state DIR] [--interpreter cpython|micropython] [--baud N] [--pace] [--rfc2217 PORT]
               [--machine-no DIGITS] [--cards demo|none|blank-test]

stdout gets exactly the pty path, then the rfc2217 URL if asked for, one per line and flushed, so a
script can read them; everything for people goes to stderr: what runs, and where its state lives (flash
image, cards, nvram, printer roll, clock).  A new state folder gets the demo cards (TEST keys, the till
says NON-FISCAL) unless --cards none asks for a bare till with empty slots, or --cards blank-test for
empty slots that a bureau under TEST keys will fill (the till says NON-FISCAL).  Runs until SIGINT or
SIGTERM (exit 0) or
until the firmware dies (exit 1, with the reason).  Bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from hw_sim.sim import INTERPRETERS
from hw_sim.sim_config import SimTillError

from .demo_cards import MACHINE_NO
from .simtill import CARD_SET_NAMES, SimTill

PROG = "fiscal-sim"


def _port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError("not a TCP port number (0..65535, 0 picks a free one): %r" % text)
    return int(text)


def _baud(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError("not a baud rate: %r" % text)
    return int(text)


def _machine_no(text: str) -> str:
    if not (len(text) == 16 and text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError("a machine number is 16 digits: %r" % text)
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Run a simulated fiscal till on a pty.")
    p.add_argument("--state", default="sim-state", help="state folder (default ./sim-state)")
    p.add_argument("--interpreter", choices=INTERPRETERS, default="cpython",
                   help="run the firmware in-process (cpython) or in the MicroPython unix port")
    p.add_argument("--baud", type=_baud, help="line rate for pacing (default: the state's config, 115200)")
    p.add_argument("--pace", action="store_true", help="send at the baud rate, 10 bits per byte")
    p.add_argument("--rfc2217", type=_port_number, metavar="PORT",
                   help="also serve rfc2217://127.0.0.1:PORT")
    p.add_argument("--machine-no", type=_machine_no, metavar="DIGITS",
                   help="machine number of a new state folder (default %s)" % MACHINE_NO)
    p.add_argument("--cards", choices=CARD_SET_NAMES,
                   help="cards of a new state folder: demo (TEST keys, default), none (empty slots) or "
                        "blank-test (empty slots for TEST-key cards: NON-FISCAL)")
    return p


def describe_state(sim: SimTill) -> list[str]:
    """Where the till's non-volatile world lives, one line per part, for people."""
    st = sim.state.resolve()
    slots = ", ".join("%s slot %s" % (name, "holds a card" if slot.present() else "empty")
                      for name, slot in (("fiscal", sim.fiscal_slot), ("user", sim.user_slot)))
    cards = ("demo cards under TEST keys: NON-FISCAL" if sim.config["cards"] == "demo" else "a bare till")
    lines = ["state folder  %s" % st,
             "flash         %s (%d x 4 KiB sectors)" % (st / "flash.img", sim.config["flash_sectors"]),
             "cards         %s (%s; %s)" % (st / "cards", slots, cards),
             "nvram         %s" % (st / "nvram"),
             "printer roll  %s" % (st / "printer.txt"),
             "clock         %s (reads %s)" % (st / "rtc.json", sim.rtc.now().strftime("%Y-%m-%d %H:%M:%S")),
             "firmware log  %s" % sim.log_path.resolve()]
    if sim.image is not None:
        lines.append("firmware      %s" % sim.image)
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sim = SimTill(args.state, args.interpreter, baud=args.baud, pace=args.pace,
                      rfc2217_port=args.rfc2217, machine_no=args.machine_no, cards=args.cards)
    except (SimTillError, OSError) as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    with sim:
        print(sim.port)
        if sim.rfc2217_url:
            print(sim.rfc2217_url)
        sys.stdout.flush()
        print("%s: till %s (%s firmware, %d baud%s) is up; Ctrl-C stops it"
              % (PROG, sim.identity["machine_no"], args.interpreter, sim.baud, ", paced" if args.pace else ""),
              file=sys.stderr)
        for line in describe_state(sim):
            print("%s:   %s" % (PROG, line), file=sys.stderr)
        while not stop.wait(0.2):
            if sim.failure:
                print("%s: %s" % (PROG, sim.failure), file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
