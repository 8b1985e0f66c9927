"""Board entry: wire the board's hardware to the till and serve the host link forever.

Copied to the board's filesystem as main.py (MicroPython runs it at boot) next to `board.py` from
firmware/boards/<family>/ and a `board_config.py` holding the factory identity:
    IDENTITY = {"machine_no": "1234567890123456", "model": "FTK-1"}
"""

import machine

from fiscal_till.fallback import make_till
from fiscal_till.server import LinkServer

try:
    from board_config import IDENTITY  # type: ignore[import-not-found]
except ImportError:
    IDENTITY = {"machine_no": "0000000000000000"}


# Collect after every GC_THRESHOLD bytes allocated, not only when the heap is exhausted: on a small heap
# (256 KiB, most of it taken by the loaded code) mounting a large journal leaves small long-lived objects
# among much garbage, and waiting for exhaustion lets them spread over the whole heap until no 1 KiB run
# is left (MemoryError with plenty free).  Same setting as hw_sim/mpy/sim_main.py.
GC_THRESHOLD = 16 * 1024


def run():
    import gc
    gc.threshold(GC_THRESHOLD)  # before the Till (and its journal mount) allocates anything
    from board import make_board  # type: ignore[import-not-found]
    board = make_board(IDENTITY)
    # the link is served whatever happens below: a till that cannot start its fiscal core still answers
    # GET_INFO / GET_STATUS / READ_JOURNAL and refuses the rest (fiscal_till/fallback.py)
    server = LinkServer(make_till(board))
    rxbuf = bytearray(512)
    while True:
        if not server.serve_uart(board.uart, rxbuf):
            machine.idle()


if __name__ == "__main__":
    run()
