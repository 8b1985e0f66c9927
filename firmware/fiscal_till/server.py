"""Link server: joins the frame decoder to the till's handler.  Sans-IO: feed() bytes, poll() replies.

    srv = LinkServer(till)
    srv.out = uart                 # where keep-alives go while a request runs (serve_uart sets it)
    srv.feed(data)                 # at most srv.room() bytes
    while True:
        reply = srv.poll()         # memoryview into the one transmit buffer, valid until the next poll
        if reply is None: break
        uart.write(reply)

Frames whose KIND is not a request (an echo of our own replies on a loopback line) are ignored.

Keep-alives (protocol/frame.py, "Keep-alive").  The fiscal core knows neither time nor the UART: its long
loops (the daily back-fill, recovery, read-outs and report sums) call `fiscal.busy()` once per step, and
this server installs `busy` as that hook.  While a request runs, a step that finds KEEPALIVE_CHECK_MS
(half of codes.KEEPALIVE_INTERVAL_MS) passed since the request began or since the last keep-alive writes
a keep-alive frame (KIND 'K', the request's COMMAND and RID, status 0, no payload) to `out`; so a host
hears from a busy till at least every KEEPALIVE_INTERVAL_MS as long as one step takes less than half of
it.  A request that ends sooner sends none.  Time comes from `ticks_ms` (time.ticks_ms on MicroPython, a
monotonic clock on CPython; tests pass a fake) and is compared with `ticks_diff`, so its wrap is
harmless.  The frame is built in a 16-byte buffer allocated once.
"""

import time

from . import codes, link



def _monotonic_ms():  # CPython: a monotonic clock, never the wall clock
    return getattr(time, "monotonic_ns")() // 1000000


def _difference(a, b):
    return a - b


_ticks_ms = getattr(time, "ticks_ms", _monotonic_ms)  # MicroPython: time.ticks_ms / ticks_diff
_ticks_diff = getattr(time, "ticks_diff", _difference)

KEEPALIVE_CHECK_MS = codes.KEEPALIVE_INTERVAL_MS // 2


class LinkServer:
    def __init__(self, till, max_payload=link.MAX_PAYLOAD, ticks_ms=None, ticks_diff=None):
        self.till = till
        self.decoder = link.FrameDecoder(max_payload)
        self._tx = bytearray(max_payload + link.OVERHEAD)
        self._txv = memoryview(self._tx)
        self._ka = bytearray(link.OVERHEAD)  # the keep-alive frame
        self.requests = 0
        self.keepalives = 0  # keep-alive frames sent
        self.out = None  # an object with write(bytes): where keep-alives go
        self._ticks = ticks_ms or _ticks_ms
        self._diff = ticks_diff or _ticks_diff
        self._cmd = -1  # the request being executed, -1 between requests
        self._rid = 0
        self._since = 0
        fiscal = getattr(till, "fiscal", None)
        if fiscal is not None:
            fiscal.busy = self.busy

    def room(self):
        return self.decoder.room()

    def feed(self, data):
        self.decoder.feed(data)

    def busy(self):
        """Called by the fiscal core at each step of long work: a keep-alive when one is due."""
        if self._cmd < 0 or self.out is None:
            return
        now = self._ticks()
        if self._diff(now, self._since) < KEEPALIVE_CHECK_MS:
            return
        self._since = now
        ka = self._ka
        link.finish_frame(ka, link.KIND_KEEPALIVE, self._cmd, self._rid, 0, 0)
        self.out.write(ka)
        self.keepalives += 1

    def poll(self):
        while True:
            f = self.decoder.next_frame()
            if f is None:
                return None
            kind, command, rid, _status, payload = f
            if kind != link.KIND_REQUEST:
                continue
            self.requests += 1
            tx = self._tx
            self._cmd = command
            self._rid = rid
            self._since = self._ticks()
            try:
                status, end = self.till.handle(command, rid, payload, tx, link.HEADER_LEN)
            finally:
                self._cmd = -1
            n = link.finish_frame(tx, link.KIND_REPLY, command, rid, status, end - link.HEADER_LEN)
            return self._txv[:n]

    def serve_uart(self, uart, rxbuf):
        """One pass of a board's main loop: read what the UART has, answer every whole request."""
        self.out = uart
        mv = memoryview(rxbuf)
        n = uart.readinto(mv[:min(len(rxbuf), self.room())])
        if n:
            self.feed(mv[:n])
            while True:
                r = self.poll()
                if r is None:
                    break
                uart.write(r)
        return n or 0
