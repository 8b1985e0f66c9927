"""docs/PROTOCOL.md's "Answers for implementers" and "Writing a client" state what the firmware does:
the walkthrough's bytes are the firmware's, and every answer a client writer relies on is held here."""

import hashlib

from conftest import ROOT
from fiscal_till.device import request_digest as firmware_digest
from protocol import commands, errors, frame, journal_format, records
from protocol.docgen_client import SAMPLE_MACHINE_NO, SAMPLE_STATUS_RID, sample_status_exchange
from tillrig import TillRig, ready


def _bytes_answered(rig, raw):
    (reply,) = rig.exchange(raw)
    return frame.reply(reply["command"], reply["rid"], reply["status"], reply["payload"])


def test_a_factory_new_till_answers_the_walkthroughs_get_status_byte_for_byte():
    request, reply = sample_status_exchange()
    assert _bytes_answered(TillRig(), request) == reply


def test_the_request_digest_is_the_firmwares():
    for command, payload in ((0x30, b""), (0x11, b"\x00"), (0x20, bytes(range(200)))):
        assert records.request_digest(command, payload) == firmware_digest(command, payload)


def test_the_journal_device_id_is_the_machine_number_in_bcd():
    assert journal_format.device_id(SAMPLE_MACHINE_NO) == bytes([0x44, 0x01, 0, 0, 0, 0, 0, 0x01])
    rig = TillRig()
    assert rig.till.fiscal.jn.device_id == journal_format.device_id(rig.machine_no)


def test_the_till_ignores_a_requests_status_and_frames_of_other_kinds():
    rig = TillRig()
    info = frame.build_frame(frame.KIND_REQUEST, 0x01, 5, 0xBEEF, b"")
    (reply,) = rig.exchange(info)
    assert (reply["kind"], reply["status"]) == (frame.KIND_REPLY, 0)
    keepalive = frame.build_frame(frame.KIND_KEEPALIVE, 0x01, 6, 0, b"")
    assert rig.exchange(keepalive) == []


def test_a_new_till_reports_no_deadline_with_the_sentinel():
    assert TillRig().status().days_to_deadline == commands.NO_DEADLINE_DAYS


def test_read_journal_clips_the_length_and_refuses_only_an_offset_past_the_end():
    rig = TillRig()
    r = rig.ok("READ_JOURNAL", offset=0, length=0xFFFF)
    assert len(r.data) == min(commands.READ_JOURNAL_MAX, r.total)
    assert rig.ok("READ_JOURNAL", offset=r.total, length=10).data == b""
    rig.refused("READ_JOURNAL", "INPUT_BAD_RANGE", offset=r.total + 1, length=10)


def test_text_that_is_not_utf8_is_a_bad_payload():
    rig = ready()
    good = commands.IssueInvoiceRequest.build(rig.invoice(100))
    bad = good.replace("李娜".encode(), b"\xff\xfe\xfd\xfc\xfb\xfa")
    status, _, _ = rig.call("ISSUE_INVOICE", payload=bad)
    assert status == errors.BY_NAME["LINK_BAD_PAYLOAD"].code


def test_an_x_report_ignores_start_and_end():
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    a = rig.ok("REPORT", kind=1, start=0, end=0)
    b = rig.ok("REPORT", kind=1, start=20991231, end=20000101)
    assert a == b and a.totals.normal_total == 100


def test_roll_usage_is_written_right_after_the_invoice_taking_the_rolls_last_number():
    rig = TillRig()
    rig.initialize()
    rig.bureau_sells_roll(1, 2)
    rig.ok("LOAD_ROLL")
    jn = rig.till.fiscal.jn
    usage = records.REC_ROLL_USAGE
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    assert jn.counters().get(usage, 0) == 0
    before = jn.next_index
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    assert jn.counters()[usage] == 1 and jn.next_index == before + 2  # the invoice, then its usage record


def test_fiscal_memory_md_stream_header_table_matches_the_layout():
    text = (ROOT / "docs" / "FISCAL_MEMORY.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:4] for line in text.split("Stream header, 76 bytes")[1].split("\n\n")[1].splitlines()[2:]]
    documented = [(int(off), int(size), name.strip()) for off, size, name in rows]
    layout, off = [], 0
    for sc in journal_format.StreamHeader.subcons:
        layout.append((off, sc.sizeof(), "crc32" if sc.name == "crc" else sc.name))
        off += sc.sizeof()
    assert documented == layout


def test_fw_hash_follows_the_documented_rule():
    package = ROOT / "firmware" / "fiscal_till"
    h = hashlib.sha256()
    for path in sorted(package.glob("*.py"), key=lambda p: p.name):
        if path.name == "_build.py":
            continue
        data = path.read_bytes()
        h.update(path.name.encode() + b"\x00" + len(data).to_bytes(4, "big") + data)
    assert TillRig().ok("GET_INFO").fw_hash == h.digest()
