"""The till behind its link, sans-IO (the h11 way): request frames in, reply frames out, no port.

What a host can rely on today: GET_INFO and GET_STATUS answer; every other command answers with a proper
status (not supported, unknown, bad payload, request id missing) and changes nothing; malformed bytes
never crash the firmware nor change what it answers."""

import pytest
from hypothesis import given, settings, strategies as st

from fiscal_till import codes, version
from fiscal_till.device import Till
from fiscal_till.hal import Board
from fiscal_till.server import LinkServer
from protocol import commands, errors, frame, status

MACHINE = "4401123400000007"


class FixedRTC:
    def __init__(self):
        self.t = (2026, 11, 27, 4, 14, 30, 5, 0)

    def datetime(self, value=None):
        if value is None:
            return self.t
        self.t = value


def make_server():
    return LinkServer(Till(Board(rtc=FixedRTC(), identity={"machine_no": MACHINE, "model": "FTK-1"})))


def exchange(srv, raw: bytes) -> list[dict]:
    """Feed bytes to the till, collect every reply frame."""
    replies = []
    for i in range(0, len(raw), 512):
        srv.feed(raw[i:i + 512])
        while (r := srv.poll()) is not None:
            replies.append(frame.parse_frame(bytes(r)))
    return replies


def call(srv, name, rid=1, payload=b""):
    cmd = commands.BY_NAME[name]
    (reply,) = exchange(srv, frame.request(cmd.code, rid, payload))
    assert reply["kind"] == frame.KIND_REPLY and reply["command"] == cmd.code and reply["rid"] == rid
    return reply


def test_get_info_describes_the_device():
    r = call(make_server(), "GET_INFO", rid=42)
    assert r["status"] == 0
    info = commands.InfoReply.parse(r["payload"])
    assert info.model == "FTK-1" and info.machine_no == MACHINE
    assert info.fw_version == version.FW_VERSION and info.fw_hash == version.firmware_hash()
    assert info.protocol_version == commands.PROTOCOL_VERSION and info.max_payload == frame.MAX_PAYLOAD


def test_new_till_reports_not_initialized_lock_and_its_clock():
    st_ = commands.StatusReply.parse(call(make_server(), "GET_STATUS")["payload"])
    assert st_.state == status.STATE_NEW
    assert status.mask_names(st_.lock_reasons, status.LOCK_REASONS) == ["NOT_INITIALIZED"]
    assert (st_.date, st_.time) == (20261127, 143005)
    assert st_.days_to_deadline == commands.NO_DEADLINE_DAYS


def test_unknown_command_gets_unknown_command_status():
    (r,) = exchange(make_server(), frame.request(0x7E, 9))
    assert r["status"] == errors.BY_NAME["LINK_UNKNOWN_COMMAND"].code and r["payload"] == b""


def test_mutating_request_without_request_id_is_refused():
    r = call(make_server(), "DAILY_CLOSE", rid=0)
    assert r["status"] == errors.BY_NAME["LINK_RID_MISSING"].code


def test_read_only_request_may_use_request_id_zero():
    assert call(make_server(), "GET_STATUS", rid=0)["status"] == 0


def test_payload_that_does_not_match_the_layout_is_refused():
    assert call(make_server(), "GET_DOCUMENT", payload=b"\x00\x01")["status"] == \
        errors.BY_NAME["LINK_BAD_PAYLOAD"].code
    assert call(make_server(), "GET_INFO", payload=b"x")["status"] == errors.BY_NAME["LINK_BAD_PAYLOAD"].code


def test_extra_payload_bytes_are_refused_not_ignored():
    good = commands.SetTimeRequest.build(dict(date=20261127, time=150000))
    assert call(make_server(), "SET_TIME", payload=good + b"\x00")["status"] == \
        errors.BY_NAME["LINK_BAD_PAYLOAD"].code


def _valid_request(cmd):
    samples = {
        "SET_TIME": dict(date=20261127, time=150000), "INITIALIZE": dict(date=20261127, time=150000),
        "ISSUE_INVOICE": dict(kind=1, ref_number=0, cashier="a", payer="b", total=1,
                              lines=[dict(tax_item=1, quantity=1000, unit_price=1, amount=1, name="x")]),
        "GET_DOCUMENT": dict(number=0), "DECLARE": dict(end=0), "READ_JOURNAL": dict(offset=0, length=16),
        "REPORT": dict(kind=1, start=0, end=0),
    }
    return cmd.request.build(samples.get(cmd.name, {}))


@pytest.mark.parametrize("name,error", [
    ("LOAD_ROLL", "LOCK_NOT_INITIALIZED"), ("ISSUE_INVOICE", "LOCK_NOT_INITIALIZED"),
    ("DAILY_CLOSE", "LOCK_NOT_INITIALIZED"), ("DECLARE", "LOCK_NOT_INITIALIZED"),
    ("CLEAR_UNLOCK", "LOCK_NOT_INITIALIZED"), ("INSPECT", "LOCK_NOT_INITIALIZED"),
    ("REPORT", "LOCK_NOT_INITIALIZED"), ("INITIALIZE", "FM_WRITE_FAILED"),
])
def test_a_till_without_fiscal_memory_or_cards_refuses_fiscal_commands_precisely(name, error):
    srv = make_server()
    before = _snapshot(srv)
    r = call(srv, name, payload=_valid_request(commands.BY_NAME[name]))
    assert (r["status"], r["payload"]) == (errors.BY_NAME[error].code, b"")
    assert _snapshot(srv) == before


def test_reply_frames_sent_to_the_till_are_ignored():
    srv = make_server()
    assert exchange(srv, frame.reply(0x01, 5, 0, b"")) == []
    assert call(srv, "GET_INFO")["status"] == 0


def test_garbage_between_requests_does_not_disturb_answers():
    srv = make_server()
    raw = b"\xff\x00\xa5\x51" + frame.request(1, 1) + b"\xa5" * 20 + frame.request(2, 2) + b"\x13\x37"
    assert [r["rid"] for r in exchange(srv, raw)] == [1, 2]


def _snapshot(srv):
    return call(srv, "GET_INFO")["payload"], call(srv, "GET_STATUS")["payload"]


@settings(max_examples=300, deadline=None)
@given(noise=st.binary(max_size=300),
       frames=st.lists(st.builds(frame.build_frame, st.sampled_from([0x51, 0x52]), st.integers(0, 255),
                                 st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF), st.binary(max_size=80)),
                       max_size=4))
def test_malformed_input_never_crashes_nor_changes_state(noise, frames):
    srv = make_server()
    before = _snapshot(srv)
    replies = exchange(srv, noise + b"".join(frames) + noise)
    for r in replies:
        assert r["status"] in errors.BY_CODE
    assert _snapshot(srv) == before
    # and the link still works afterwards
    exchange(srv, bytes(20))  # flush any half-frame the noise left behind
    srv.decoder.reset()
    assert call(srv, "GET_INFO", rid=77)["status"] == 0


def test_status_codes_the_firmware_can_send_are_in_the_table():
    for name in dir(codes):
        if name.startswith("E_"):
            assert getattr(codes, name) in errors.BY_CODE
