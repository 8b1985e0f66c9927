"""Link server: joins the frame decoder to the till's handler.  Sans-IO: feed() bytes, poll() replies.

    srv = LinkServer(till)
    srv.feed(data)                 # at most srv.room() bytes
    while True:
        reply = srv.poll()         # memoryview into the one transmit buffer, valid until the next poll
        if reply is None: break
        uart.write(reply)

Frames whose KIND is not a request (an echo of our own replies on a loopback line) are ignored.
"""

from . import link


class LinkServer:
    def __init__(self, till, max_payload=link.MAX_PAYLOAD):
        self.till = till
        self.decoder = link.FrameDecoder(max_payload)
        self._tx = bytearray(max_payload + link.OVERHEAD)
        self._txv = memoryview(self._tx)
        self.requests = 0

    def room(self):
        return self.decoder.room()

    def feed(self, data):
        self.decoder.feed(data)

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
            status, end = self.till.handle(command, rid, payload, tx, link.HEADER_LEN)
            n = link.finish_frame(tx, link.KIND_REPLY, command, rid, status, end - link.HEADER_LEN)
            return self._txv[:n]

    def serve_uart(self, uart, rxbuf):
        """One pass of a board's main loop: read what the UART has, answer every whole request."""
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
