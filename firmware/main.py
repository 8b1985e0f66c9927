"""Board entry: wire the board's hardware to the till and serve the host link forever.

Copied to the board's filesystem as main.py (MicroPython runs it at boot) next to `board.py` from
firmware/boards/<family>/ and a `board_config.py` holding the factory identity:
    IDENTITY = {"machine_no": "1234567890123456", "model": "FTK-1"}
"""

import machine

from fiscal_till.device import Till
from fiscal_till.server import LinkServer

try:
    from board_config import IDENTITY  # type: ignore[import-not-found]
except ImportError:
    IDENTITY = {"machine_no": "0000000000000000"}


def run():
    from board import make_board  # type: ignore[import-not-found]
    board = make_board(IDENTITY)
    server = LinkServer(Till(board))
    rxbuf = bytearray(512)
    while True:
        if not server.serve_uart(board.uart, rxbuf):
            machine.idle()


if __name__ == "__main__":
    run()
