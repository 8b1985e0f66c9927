"""A whole simulated till over its real pty: tests/tillrig.py's interface on a hw_sim SimTill, driven by the
gateway's TillClient, with the bureau's side of the cards through the sim's user slot.

    with SimRig(tmp_path, "micropython") as rig:     # demo cards (TEST keys), 2 MiB flash, the sim's RTC
        rig.rtc.set(20260105, 90000)
        rig.initialize()
        rig.bureau_sells_roll(1, 100); rig.ok("LOAD_ROLL")
        rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
        rig.reboot()                                 # a power cycle: same flash, cards, nvram
"""

from __future__ import annotations

import time

from gateway import issuance as I
from gateway.link import TillClient
from hw_sim.cards import demo
from hw_sim.sim import SimTill
from protocol import commands, errors, frame
from tillrig import TillRig


class SimRig:
    invoice = staticmethod(TillRig.invoice)

    def __init__(self, state, interpreter: str = "cpython", *, timeout: float = 10.0, **sim_kw) -> None:
        self.sim = SimTill(state, interpreter, **sim_kw)
        self.rtc = self.sim.rtc
        self.client = TillClient(self.sim.port, timeout=timeout, retries=0)

    # ---- the device ---------------------------------------------------------------------------------
    def reboot(self) -> None:
        self.sim.power_cycle()

    def close(self) -> None:
        self.client.close()
        self.sim.close()

    def __enter__(self) -> SimRig:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, name: str, rid: int | None = None, payload: bytes | None = None, *,
             timeout: float | None = None, **fields):
        """(status, parsed reply or None, reply frame) - like TillRig.call.  With `rid`, that request id is
        sent once (a host repeating a request after a lost reply) and (None, None, None) means no reply
        within `timeout` (default: the client's)."""
        cmd = commands.BY_NAME[name]
        if payload is None:
            payload = cmd.request.build(fields)
        if rid is None:
            status, parsed = self.client.call(name, payload=payload)
            return status, parsed, None
        c = self.client
        c.port.write(frame.request(cmd.code, rid, payload))
        deadline = time.monotonic() + (c.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            data = c.port.read(c.port.in_waiting or 1)
            if not data and not self.sim.powered:
                break  # a power cut: no reply will come
            for f in c.receiver.feed(data):
                if f["kind"] == frame.KIND_REPLY and f["rid"] == rid and f["command"] == cmd.code:
                    parsed = cmd.reply.parse(f["payload"]) if f["status"] == 0 else None
                    return f["status"], parsed, f
        return None, None, None

    def ok(self, name: str, **fields):
        status, parsed, _ = self.call(name, **fields)
        assert status == 0, "%s refused: %s" % (name, errors.describe(status))
        return parsed

    def refused(self, name: str, error: str, **fields) -> None:
        status, _, _ = self.call(name, **fields)
        assert status == errors.BY_NAME[error].code, "%s: expected %s, got %s" % (
            name, error, errors.describe(status))

    def status(self):
        return self.ok("GET_STATUS")

    def initialize(self):
        return self.ok("INITIALIZE", date=self.rtc.date, time=90000)

    # ---- the bureau's side --------------------------------------------------------------------------
    def bureau_sells_roll(self, start: int = 1, end: int = 100, code: str = "1440012345") -> None:
        assert self.sim.keystore is not None, "a till without demo cards"
        record = I.issue_roll(self.sim.keystore, fiscal_card_no=demo.FISCAL_CARD_NO,
                              machine_no=self.sim.identity["machine_no"], code=code, start=start, end=end)
        self.sim.bureau().add_roll(record)

    def bureau_clears(self, deadline: int, **limit_kw) -> None:
        s = self.sim.bureau()
        ((recno, report),) = s.verify_pending()
        limits = I.Limits(deadline=deadline, single_limit=limit_kw.get("single_limit", 1_000_000),
                          cumulative_limit=limit_kw.get("cumulative_limit", 50_000_000),
                          return_limit=limit_kw.get("return_limit", 2_000_000))
        s.clear(recno, report, limits)
