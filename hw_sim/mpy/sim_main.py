"""Firmware entry under hw_sim: a board whose devices are reached over the board bus.

    MICROPYPATH=.frozen:firmware:hw_sim/mpy micropython -X heapsize=256k sim_main.py MACHINE_NO MODEL CAPS

stdout is the bus, and the unix port writes both print() and uncaught tracebacks to stdout; so print()
is sent to stderr (hw_sim's log) before anything else is imported, and every exception is caught and
printed to stderr, exiting with status 3.  EOF on stdin is power-off and ends the program with status 0.
"""

import builtins
import sys

_print = print


def _eprint(*args, **kw):
    kw["file"] = sys.stderr
    _print(*args, **kw)


builtins.print = _eprint


def main(argv):
    from fiscal_till import device, hal, server
    from simbus import CONTROL, Bus, BusRTC, BusUART, PowerOff

    bus = Bus(sys.stdin.buffer, sys.stdout.buffer)
    identity = {"machine_no": argv[1], "model": argv[2], "capabilities": int(argv[3])}
    board = hal.Board(uart=BusUART(bus), rtc=BusRTC(bus), identity=identity)
    link = server.LinkServer(device.Till(board))
    rxbuf = bytearray(1024)
    bus.send(CONTROL, b"READY")
    try:
        while True:
            bus.pump()
            while link.serve_uart(board.uart, rxbuf):
                pass
    except PowerOff:
        pass


try:
    main(sys.argv)
except Exception as e:  # noqa: BLE001 - the traceback must not reach the bus
    sys.print_exception(e, sys.stderr)
    sys.exit(3)
