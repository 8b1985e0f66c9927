"""Firmware entry under hw_sim: a board whose devices are all reached over the board bus.

    MICROPYPATH=.frozen:IMAGE:hw_sim/mpy micropython -X heapsize=256k sim_main.py IDENTITY_JSON

IMAGE is the firmware's .mpy image (hw_sim.firmware_image) plus simbus.mpy; IDENTITY_JSON is the Board's
identity dict (machine_no, model, capabilities, non_fiscal, optional journal_quotas).

stdout is the bus, and the unix port writes both print() and uncaught tracebacks to stdout; so print()
is sent to stderr (hw_sim's log) before anything else is imported, and every exception is caught and
printed to stderr, exiting with status 3.  EOF on stdin is power-off and ends the program with status 0,
wherever the firmware is (PowerOff is a BaseException the firmware does not catch).
"""

import builtins
import sys

_print = print


def _eprint(*args, **kw):
    kw["file"] = sys.stderr
    _print(*args, **kw)


builtins.print = _eprint


# Collect after every GC_THRESHOLD bytes allocated, not only when the heap is exhausted: mounting a 2 MiB
# journal leaves one small object per sector among much garbage, and waiting for exhaustion lets those
# objects spread over the whole heap until no 1 KiB run is left (MemoryError with 130 KiB free).
GC_THRESHOLD = 16 * 1024


def main(argv):
    import gc
    import json
    import os

    gc.threshold(GC_THRESHOLD)

    from fiscal_till import hal, server
    from simbus import CONTROL, Bus, BusFlash, BusNvram, BusPrinter, BusRTC, BusSlot, BusUART

    bus = Bus(sys.stdin.buffer, sys.stdout.buffer)
    identity = json.loads(argv[1])
    board = hal.Board(uart=BusUART(bus), rtc=BusRTC(bus), flash=BusFlash(bus), fiscal_slot=BusSlot(bus, 0),
                      user_slot=BusSlot(bus, 1), printer=BusPrinter(bus), identity=identity,
                      nvram=BusNvram(bus))
    from fiscal_till.fallback import make_till
    link = server.LinkServer(make_till(board))  # as firmware/main.py: the link survives a failed core
    rxbuf = bytearray(1024)
    # FTK_HEAP=1 (bench/bench_till_mpy.py): log the heap in use above the level after boot, sampled at
    # every HAL call, after each request
    heap = os.getenv("FTK_HEAP") == "1"
    gc.collect()
    base = gc.mem_alloc()
    bus.heap_peak = 0
    bus.send(CONTROL, b"READY")
    while True:
        bus.pump()
        while link.serve_uart(board.uart, rxbuf):
            if heap:
                print("heap base=%d peak=%d now=%d" % (base, bus.heap_peak - base, gc.mem_alloc() - base))


try:
    main(sys.argv)
except Exception as e:  # noqa: BLE001 - the traceback must not reach the bus
    sys.print_exception(e, sys.stderr)
    sys.exit(3)
except BaseException as e:  # noqa: BLE001 - PowerOff: the host closed the bus
    if type(e).__name__ != "PowerOff":
        raise
