"""docs/PROTOCOL.md's "Answers for implementers" and "Writing a client" state what the firmware does:
the walkthrough's bytes are the firmware's, and every answer a client writer relies on is held here."""

import hashlib
import zlib

from conftest import ROOT
from fiscal_till.device import request_digest as firmware_digest
from protocol import commands, errors, frame, journal_format, records
from protocol.docgen_client import SAMPLE_MACHINE_NO, SAMPLE_STATUS_RID, sample_status_exchange
from testbed.rigs import TillRig, ready


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
    header = rig.ok("READ_JOURNAL", offset=0, length=journal_format.STREAM_HDR_SIZE).data
    assert journal_format.StreamHeader.parse(header).device_id == journal_format.device_id(rig.machine_no)


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

    def types_in_order():
        return [rtype for _, rtype, _, _ in _verify_readout(_read_whole_stream(rig), rig.machine_no)]
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    assert records.REC_ROLL_USAGE not in types_in_order()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    assert types_in_order()[-2:] == [records.REC_INVOICE, records.REC_ROLL_USAGE]


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


# ---- a read-out verifier written from the walkthrough alone (docs/PROTOCOL.md "Writing a client" §5) ----
def _read_whole_stream(rig):
    data = b""
    while True:
        r = rig.ok("READ_JOURNAL", offset=len(data), length=commands.READ_JOURNAL_MAX)
        data += r.data
        if len(data) == r.total:
            return data


def _sector_records(image, fiscal):
    """Committed (envelope, crc ok) pairs of one sector image, from the header's end to free space."""
    envelope = journal_format.FiscalRecord if fiscal else journal_format.RingRecord
    head_len = 39 if fiscal else 2
    pos = journal_format.FISCAL_HDR_SIZE if fiscal else journal_format.RING_HDR_SIZE
    out = []
    while pos < len(image) and image[pos] != 0xFF:
        rec = envelope.parse(image[pos:])
        end = pos + head_len + rec.length
        if journal_format.committed(rec.commit):
            out.append((rec, zlib.crc32(image[pos:end]) == rec.crc))
        pos = end + 5
    return out


def _verify_readout(data, machine_no):
    hdr = journal_format.StreamHeader.parse(data)
    assert hdr.version == journal_format.VERSION and hdr.crc == zlib.crc32(data[:72])
    size = hdr.sector_size
    assert len(data) == 76 + (hdr.fiscal_images + hdr.ring_images) * size
    assert hdr.device_id == journal_format.device_id(machine_no)
    fiscal, invoices, ring_heads = [], [], []
    for i in range(hdr.fiscal_images + hdr.ring_images):
        image = data[76 + i * size:76 + (i + 1) * size]
        is_fiscal = i < hdr.fiscal_images
        layout = journal_format.FiscalSectorHeader if is_fiscal else journal_format.RingSectorHeader
        sh = layout.parse(image)
        assert sh.crc == zlib.crc32(image[:132 if is_fiscal else 68])
        assert (sh.device_id, sh.format_id) == (hdr.device_id, hdr.format_id)
        if is_fiscal:
            assert sh.seq == i
        recs = _sector_records(image, is_fiscal)
        assert all(ok for _, ok in recs)
        if is_fiscal:
            fiscal += [rec for rec, _ in recs]
        else:
            ring_heads.append((sh.first_ordinal, sh.head))
            invoices += [(sh.first_ordinal + k, rec) for k, (rec, _) in enumerate(recs)]
    before = [rec.index - j for j, rec in enumerate(fiscal)]  # invoices before each fiscal record
    ordered = [(rec.index, rec.type, rec.body, rec.prev_head) for rec in fiscal]
    ordered += [(n + sum(1 for b in before if b <= n), rec.type, rec.body, None) for n, rec in invoices]
    ordered.sort(key=lambda r: r[0])
    assert [r[0] for r in ordered] == list(range(hdr.next_index))  # nothing reused in this small journal
    head = journal_format.genesis(hdr.device_id, hdr.format_id)
    head_before = {}
    for index, rtype, body, prev_head in ordered:
        assert prev_head in (None, head)  # every fiscal record is an anchor
        head_before[index] = head
        head = journal_format.chain_step(head, index, rtype, body)
    for first_ordinal, ring_head in ring_heads:  # so is every ring header, for its first invoice
        first = first_ordinal + sum(1 for b in before if b <= first_ordinal)
        assert head_before.get(first, head) == ring_head
        records.RECORDS[rtype][1].parse(body)  # every body decodes by its type code
    assert head == hdr.chain_head
    assert (hdr.fiscal_records, hdr.invoices) == (len(fiscal), len(invoices))
    return ordered


def test_a_verifier_written_from_the_walkthrough_verifies_a_real_read_out():
    rig = ready()
    for amount in (100, 250, 999):
        rig.ok("ISSUE_INVOICE", **rig.invoice(amount))
    rig.ok("DAILY_CLOSE")
    ordered = _verify_readout(_read_whole_stream(rig), rig.machine_no)
    types_seen = {rtype for _, rtype, _, _ in ordered}
    assert {records.REC_INIT, records.REC_INVOICE, records.REC_DAILY, records.REC_ROLL_LOAD} <= types_seen
