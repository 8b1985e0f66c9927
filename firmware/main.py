"""Board entry: wire the real hardware to the till and serve the host link forever.

Copied to the board's filesystem as main.py (or frozen); MicroPython runs it at boot.  The board
bindings (UART pins, flash partition, card readers) come from firmware/boards/ as they are added; this
entry falls back to UART 0 at 115200 and the machine RTC.
"""

import machine

from fiscal_till.device import Till
from fiscal_till.hal import Board
from fiscal_till.server import LinkServer

try:
    from board_config import IDENTITY, UART_ID, BAUD  # type: ignore[import-not-found]
except ImportError:
    IDENTITY = {"machine_no": "0000000000000000"}
    UART_ID = 0
    BAUD = 115200


def run():
    uart = machine.UART(UART_ID, BAUD, timeout=0)
    board = Board(uart=uart, rtc=machine.RTC(), identity=IDENTITY)
    server = LinkServer(Till(board))
    rxbuf = bytearray(512)
    while True:
        if not server.serve_uart(uart, rxbuf):
            machine.idle()


if __name__ == "__main__":
    run()
