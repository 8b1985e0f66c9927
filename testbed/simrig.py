"""A whole simulated till over its real pty: testbed/rigs.py's interface on a hw_sim SimTill, driven by the
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

from gateway.link import TillClient
from testbed.simtill import SimTill
from protocol import commands, frame
from testbed.rigs import RigRequests


class SimRig(RigRequests):

    def __init__(self, state, interpreter: str = "cpython", *, timeout: float = 10.0, **sim_kw) -> None:
        self.sim = SimTill(state, interpreter, **sim_kw)
        self.rtc = self.sim.rtc
        self.client = TillClient(self.sim.port, timeout=timeout, retries=0, first_rid=1000)

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
        c._rid = max(c._rid, rid)  # request ids strictly increase: the client's next one is above it
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

    # ---- the bureau's side --------------------------------------------------------------------------
    def bureau_session(self):
        assert self.sim.keystore is not None, "a till without demo cards"
        return self.sim.bureau()

    def hall(self):
        return self.sim.hall()

    @property
    def keystore(self):
        return self.sim.keystore

    @property
    def machine_no(self):
        return self.sim.identity["machine_no"]
