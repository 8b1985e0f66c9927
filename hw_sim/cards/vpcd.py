"""Serve a simulated card to PC/SC through vsmartcard's virtual reader driver (vpcd).

pcscd loads vpcd (Debian: vsmartcard-vpcd), which listens on TCP 35963 (first reader, "Virtual PCD 00
00"; 35964 for "... 00 01") for a virtual card.  We connect as that card.  Every message, both ways, is a
2-byte big-endian length and that many bytes:

    vpcd -> card   length 1: a control byte  00 power off, 01 power on, 02 reset, 04 send the ATR
                   otherwise: a command APDU
    card -> vpcd   the ATR (after 04), the response APDU (after an APDU); nothing after 00/01/02

`answer(card, message)` is the sans-IO core; `VpcdCard` does the socket I/O on a thread.  vpcd cannot
express "no answer" (it waits for ever for a reply), so a mute or absent card drops the link instead:
PC/SC then sees the card removed, and the pending transmit fails.
"""

from __future__ import annotations

import socket
import struct
import threading

from .faults import CardIOError

PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


DROP = b""  # answer(): no reply possible; close the link


def answer(card, message: bytes) -> bytes | None:
    """The reply to one vpcd message, None when the protocol has none, DROP when the card cannot answer."""
    if len(message) == 1:
        ctrl = message[0]
        try:
            if ctrl == CTRL_OFF:
                card.power_off()
            elif ctrl in (CTRL_ON, CTRL_RESET):
                card.power_on()
            elif ctrl == CTRL_ATR:
                return DROP if card.mute else card.atr
        except CardIOError:
            pass
        return None
    try:
        return card.transmit(message)
    except CardIOError:
        return DROP


def frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


class VpcdCard:
    """One card, connected to vpcd at host:port until `close()`."""

    def __init__(self, card, host: str = "127.0.0.1", port: int = PORT):
        self.card = card
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what ended the link, unless close() did
        self._closing = False

    def connect(self, timeout: float = 5.0) -> None:
        """Connect (vpcd must be listening: pcscd started with the vpcd driver)."""
        self.sock = socket.create_connection(self.address, timeout=timeout)
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._serve, name="vpcd-card", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._closing = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def __enter__(self) -> "VpcdCard":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _recv(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self) -> None:
        try:
            while True:
                head = self._recv(2)
                if head is None:
                    return
                message = self._recv(struct.unpack(">H", head)[0])
                if message is None:
                    return
                reply = answer(self.card, message)
                if reply == DROP:
                    self._closing = True
                    self.sock.close()
                    return
                if reply is not None:
                    self.sock.sendall(frame(reply))
        except OSError as e:
            if not self._closing:
                self.error = e
