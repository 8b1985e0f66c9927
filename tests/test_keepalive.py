"""Long work is never silence (protocol/frame.py, "Keep-alive"): while a request runs the till sends
KIND 'K' frames echoing its COMMAND and RID, status 0, no payload, at least every KEEPALIVE_INTERVAL_MS,
until the reply.  In process the firmware's clock is a fake tick source, so nothing here depends on the
machine's speed; over the simulator a host whose reply timeout is far shorter than the work gets its
reply because the keep-alives restart its timer."""

import datetime

import pytest

from fiscal_till import codes, link
from fiscal_till.server import KEEPALIVE_CHECK_MS, LinkServer
from gateway import issuance
from protocol import commands, frame
from testbed.rigs import TillRig

# ISSUE_INVOICE (0x20), RID 0x01020304: SOF, 'K', command, rid, status 0, length 0, HCRC, CRC-32
KEEPALIVE = bytes.fromhex("a5 4b 20 01020304 0000 0000 c3 dcfe40a3")
FAR = issuance.Limits(deadline=20291231, single_limit=1_000_000, cumulative_limit=50_000_000, return_limit=2_000_000)


# ---- the frame --------------------------------------------------------------------------------------
def test_keepalive_frame_bytes_are_the_same_in_both_codecs():
    assert frame.build_frame(frame.KIND_KEEPALIVE, 0x20, 0x01020304, 0, b"") == KEEPALIVE
    assert link.build_frame(link.KIND_KEEPALIVE, 0x20, 0x01020304, 0, b"") == KEEPALIVE
    assert frame.KIND_KEEPALIVE == link.KIND_KEEPALIVE == ord("K")
    assert frame.KEEPALIVE_INTERVAL_MS == codes.KEEPALIVE_INTERVAL_MS == 250


def test_both_receivers_take_a_keepalive_as_a_whole_frame_and_not_as_a_reply():
    (f,) = frame.FrameReceiver().feed(KEEPALIVE)
    assert (f["kind"], f["command"], f["rid"], f["status"], f["payload"]) == (0x4B, 0x20, 0x01020304, 0, b"")
    dec = link.FrameDecoder()
    dec.feed(KEEPALIVE)
    assert dec.next_frame() == (0x4B, 0x20, 0x01020304, 0, b"")


def test_the_till_ignores_a_keepalive_it_receives():
    rig = TillRig()
    assert rig.exchange(KEEPALIVE) == []


# ---- in process, with a fake tick source --------------------------------------------------------------
class FakeTicks:
    """A millisecond clock that moves `step` ms each time the firmware reads it."""

    def __init__(self, step: int) -> None:
        self.now = 0
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


class Wire:
    """The UART the server writes keep-alives to: the frames and the tick at which each was written."""

    def __init__(self, ticks: FakeTicks) -> None:
        self.ticks = ticks
        self.frames: list[tuple[int, dict]] = []

    def write(self, data) -> int:
        self.frames.append((self.ticks.now, frame.parse_frame(bytes(data))))
        return len(data)


def fake_clock(rig: TillRig, step: int = 10):
    ticks = FakeTicks(step)
    rig.server = LinkServer(rig.till, ticks_ms=ticks)
    wire = Wire(ticks)
    rig.server.out = wire
    return ticks, wire


def ready_far_deadline() -> TillRig:
    rig = TillRig(limits=FAR)
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    rig.rtc.set(20260105, 100000)
    return rig


def test_a_multi_year_backfill_inside_issue_invoice_sends_keepalives_for_that_request():
    rig = ready_far_deadline()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    ticks, wire = fake_clock(rig)
    rig.rtc.set(20290105, 100000)  # three years on: about 1,100 days to sign before the invoice
    start = ticks.now
    status, reply, raw = rig.call("ISSUE_INVOICE", rid=90001, **rig.invoice(200))
    end = ticks.now
    assert status == 0 and reply.number == 2
    assert len(wire.frames) > 10
    for _t, f in wire.frames:
        assert (f["kind"], f["command"], f["rid"], f["status"], f["payload"]) == (0x4B, 0x20, 90001, 0, b"")
    marks = [start] + [t for t, _f in wire.frames] + [end]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    assert max(gaps) <= codes.KEEPALIVE_INTERVAL_MS  # on the fake clock: never a silence of 250 ms
    assert min(gaps[1:-1]) >= KEEPALIVE_CHECK_MS  # and no flood either


def test_short_requests_send_no_keepalive():
    rig = ready_far_deadline()
    _ticks, wire = fake_clock(rig)
    rig.ok("GET_STATUS")
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.ok("GET_DOCUMENT", number=0)
    assert wire.frames == []


def test_the_boot_backfill_runs_inside_the_first_request_with_keepalives():
    rig = ready_far_deadline()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.rtc.set(20280105, 100000)  # the till was off for two years
    rig.reboot()
    assert rig.till.fiscal.closed == 0  # boot itself does not back-fill (no day closed yet): it is quick
    _ticks, wire = fake_clock(rig)
    status = rig.call("GET_STATUS", rid=1)[1]
    assert rig.till.fiscal.closed == 20280104  # the first request did, before answering
    assert status.date == 20280105 and wire.frames
    assert {(f["command"], f["rid"]) for _t, f in wire.frames} == {(0x02, 1)}


def test_without_an_output_the_server_stays_silent_and_answers():
    rig = ready_far_deadline()
    ticks = FakeTicks(10)
    rig.server = LinkServer(rig.till, ticks_ms=ticks)  # out is None: nowhere to send keep-alives
    rig.rtc.set(20270105, 100000)
    assert rig.call("ISSUE_INVOICE", **rig.invoice(100))[0] == 0
    assert rig.server.keepalives == 0


# ---- over the simulator: a host with a short reply timeout ----------------------------------------------
INTERPRETERS = ["cpython", pytest.param("micropython", marks=pytest.mark.micropython)]


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_a_multi_year_backfill_inside_issue_invoice_succeeds_with_a_reply_timeout_far_shorter(
        tmp_path, interpreter):
    from testbed.simrig import SimRig
    with SimRig(tmp_path / "state", interpreter, timeout=30.0) as rig:  # setup: generous, a hang guard
        rig.rtc.set(20260105, 90000)
        rig.initialize()
        rig.bureau_sells_roll(1, 100)
        rig.ok("LOAD_ROLL")
        rig.rtc.set(20260105, 100000)
        rig.ok("ISSUE_INVOICE", **rig.invoice(100))
        rig.rtc.set(20260106, 90000)
        rig.ok("DECLARE", end=0)
        rig.bureau_clears(deadline=20291231)
        rig.ok("CLEAR_UNLOCK")
        rig.rtc.set(20290106, 100000)  # three years later: ~1,100 days to sign inside the next invoice
        rig.client.timeout = 1.0  # the silence this host allows: far shorter than signing 1,100 days
        rec = rig.ok("ISSUE_INVOICE", **rig.invoice(200))
        assert (rec.number, rec.date) == (2, 20290106)
        rig.client.timeout = 30.0
        assert rig.status().last_number == 2
