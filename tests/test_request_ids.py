"""Old frames never run twice: request ids strictly increase per till (protocol/commands.py, exactly once).

A mutating request whose id is below the last executed one is refused with LINK_RID_STALE and changes
nothing; the exact retry of the last one gets its reply again, byte for byte; the last executed id
survives a reboot, whatever the request wrote, and GET_STATUS reports it."""

from protocol import commands, errors, frame
from testbed.rigs import TillRig

STALE = errors.BY_NAME["LINK_RID_STALE"].code
REUSED = errors.BY_NAME["LINK_RID_REUSED"].code


def ready() -> TillRig:
    rig = TillRig()
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    rig.rtc.set(20260105, 100000)
    return rig


def wire(name: str, rid: int, **fields) -> bytes:
    cmd = commands.BY_NAME[name]
    return frame.request(cmd.code, rid, cmd.request.build(fields))


def send(rig: TillRig, raw: bytes) -> bytes:
    """The raw reply frame to one request frame."""
    rig.server.feed(raw)
    reply = bytes(rig.server.poll())
    assert rig.server.poll() is None
    return reply


def fingerprint(rig: TillRig):
    st = rig.status()
    card = rig.cards.fiscal.state
    return (st.last_number, st.roll_next, st.amount_left, rig.till.fiscal.jn.next_index,
            rig.till.fiscal.jn.stream_length(), card.roll["next"], dict(card.today), st.last_rid)


def test_an_earlier_invoice_frame_sent_after_a_later_request_is_refused_as_stale_and_changes_nothing():
    rig = ready()
    captured = wire("ISSUE_INVOICE", 5001, **rig.invoice(1000))
    assert frame.parse_frame(send(rig, captured))["status"] == 0
    assert frame.parse_frame(send(rig, wire("ISSUE_INVOICE", 5002, **rig.invoice(2000))))["status"] == 0
    before = fingerprint(rig)
    reply = frame.parse_frame(send(rig, captured))
    assert (reply["status"], reply["payload"]) == (STALE, b"")
    assert fingerprint(rig) == before
    assert rig.status().last_number == 2


def test_a_stale_id_is_refused_for_every_mutating_command():
    rig = ready()
    rig.ok("ISSUE_INVOICE", rid=9000, **rig.invoice(100))
    for name, fields in (("LOAD_ROLL", {}), ("DAILY_CLOSE", {}), ("SET_TIME", dict(date=20260106, time=0)),
                         ("DECLARE", dict(end=0)), ("CLEAR_UNLOCK", {}),
                         ("INITIALIZE", dict(date=20260105, time=90000))):
        before = fingerprint(rig)
        status, _, _ = rig.call(name, rid=8999, **fields)
        assert status == STALE, name
        assert fingerprint(rig) == before, name


def test_the_exact_retry_of_the_last_request_gets_the_same_reply_byte_for_byte():
    rig = ready()
    raw = wire("ISSUE_INVOICE", 5001, **rig.invoice(1000))
    first = send(rig, raw)
    assert send(rig, raw) == first
    assert rig.status().last_number == 1
    other = wire("ISSUE_INVOICE", 5001, **rig.invoice(1001))
    assert frame.parse_frame(send(rig, other))["status"] == REUSED  # same id, another payload


def test_after_a_reboot_old_frames_stay_stale_and_the_last_one_is_replayed_byte_for_byte():
    rig = ready()
    early = wire("ISSUE_INVOICE", 5001, **rig.invoice(1000))
    last = wire("ISSUE_INVOICE", 5002, **rig.invoice(2000))
    send(rig, early)
    answer = send(rig, last)
    rig.reboot()
    assert rig.status().last_rid == 5002
    before = fingerprint(rig)
    assert frame.parse_frame(send(rig, early))["status"] == STALE
    assert send(rig, last) == answer
    assert fingerprint(rig) == before


def test_get_status_reports_the_last_executed_id_and_only_an_executed_one():
    rig = ready()
    rig.ok("ISSUE_INVOICE", rid=7000, **rig.invoice(100))
    assert rig.status().last_rid == 7000
    rig.refused("ISSUE_INVOICE", "INPUT_TOTAL_MISMATCH", rid=7001, **dict(rig.invoice(100), total=5))
    assert rig.status().last_rid == 7000  # a refused request is not executed


def test_a_request_that_wrote_no_record_moves_the_last_id_across_a_reboot():
    rig = ready()
    assert rig.ok("DAILY_CLOSE", rid=7001).count == 1
    nothing = wire("DAILY_CLOSE", 7002)
    answer = send(rig, nothing)
    assert commands.DailyCloseReply.parse(frame.parse_frame(answer)["payload"]).count == 0
    rig.reboot()
    assert rig.status().last_rid == 7002
    assert rig.call("DAILY_CLOSE", rid=7001)[0] == STALE
    assert send(rig, nothing) == answer


def test_set_time_leaves_a_tagged_record_so_its_id_survives_a_reboot():
    rig = ready()
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    rig.ok("SET_TIME", rid=7100, date=20260105, time=110000)
    rig.reboot()
    assert rig.status().last_rid == 7100
    assert rig.call("SET_TIME", rid=7099, date=20260105, time=120000)[0] == STALE


def test_set_time_before_initialize_is_remembered_too():
    rig = TillRig()
    rig.ok("SET_TIME", rid=42, date=20260105, time=80000)
    rig.reboot()
    assert rig.status().last_rid == 42
    assert rig.call("INITIALIZE", rid=41, date=20260105, time=90000)[0] == STALE
    rig.ok("INITIALIZE", rid=43, date=20260105, time=90000)


def test_ids_compare_unsigned_and_do_not_wrap():
    rig = ready()
    rig.ok("ISSUE_INVOICE", rid=0x7FFFFFFF, **rig.invoice(100))
    rig.ok("ISSUE_INVOICE", rid=0x80000000, **rig.invoice(100))  # above, unsigned (negative if signed)
    rig.ok("ISSUE_INVOICE", rid=0xFFFFFFFF, **rig.invoice(100))
    assert rig.call("ISSUE_INVOICE", rid=1, **rig.invoice(100))[0] == STALE  # no wrap to 1
    status = rig.call("GET_STATUS", rid=1)[1]  # read-only: any id
    assert (status.last_number, status.last_rid) == (3, 0xFFFFFFFF)
