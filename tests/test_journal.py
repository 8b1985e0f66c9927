"""Fiscal memory journal: behaviour on healthy media, capacity rules, read-out, damaged media."""

import errno
import hashlib
import struct
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "mpy"))
import journal_campaign as jc  # noqa: E402

from fiscal_till.journal import Journal, JournalError, fiscal_sectors_for  # noqa: E402
from fiscal_till.journal_format import DEFAULT_QUOTAS  # noqa: E402
from hw_sim.nor_flash import NorFlash  # noqa: E402
from protocol.journal_audit import audit_stream  # noqa: E402

INIT, DAILY, DECL, CLEAR, ROLL_LOAD, ROLL_USAGE, INVOICE, EVENT = 1, 2, 3, 4, 5, 6, 7, 8
DEVICE = jc.DEVICE
OTHER_DEVICE = b"\x32\x01\x00\x00\x99\x99\x99\x99"


def small(quotas=jc.SMALL_QUOTAS, sectors=29, sector_size=1024, fiscal_sectors=None):
    f = NorFlash(sector_count=sectors, sector_size=sector_size, page_size=256, seed=1)
    Journal.format(f, DEVICE, quotas=quotas, fiscal_sectors=fiscal_sectors, format_id=jc.FORMAT_ID)
    return f, Journal(f, DEVICE)


def inv(k):
    return jc.body(INVOICE, k)


def play(f, ops):
    """Append ``ops`` (scenario entries); returns the acknowledged records as (type, body)."""
    acked = []
    assert jc.play(f, ops, acked) is None
    return jc.materialize(acked)


class TestFormatAndMount:
    def test_a_fresh_journal_is_empty_and_its_chain_starts_at_the_device_genesis(self):
        f, j = small()
        assert j.next_index == 0 and j.damage == []
        assert j.chain_head() == hashlib.sha256(b"FJ-genesis" + DEVICE + jc.FORMAT_ID).digest()
        assert j.counters() == {t: 0 for t in (1, 2, 3, 4, 5, 6, 7, 8)}

    def test_blank_flash_is_not_formatted(self):
        with pytest.raises(JournalError) as e:
            Journal(NorFlash(sector_count=8, sector_size=1024))
        assert e.value.errno == errno.ENODEV and e.value.reason == "not formatted"

    def test_format_refuses_a_partition_that_holds_a_journal(self):
        f, j = small()
        with pytest.raises(JournalError) as e:
            Journal.format(f, DEVICE, quotas=jc.SMALL_QUOTAS)
        assert e.value.errno == errno.ENODEV
        Journal.format(f, DEVICE, quotas=jc.SMALL_QUOTAS, force=True)

    def test_the_partition_split_follows_the_quotas(self):
        f, j = small()
        assert (j.F, j.R) == (fiscal_sectors_for(jc.SMALL_QUOTAS, 1024), 29 - j.F) == (21, 8)

    def test_default_quotas_fit_a_2_mib_partition_with_room_for_detail(self):
        f = NorFlash(sector_count=512, sector_size=4096)
        Journal.format(f, DEVICE, format_id=jc.FORMAT_ID)
        j = Journal(f, DEVICE)
        assert j.quotas[1] >= 5 * 366 and j.quotas[2] >= 300
        assert (j.F, j.R) == (318, 194)

    def test_a_partition_too_small_for_the_quotas_is_refused(self):
        with pytest.raises(JournalError) as e:
            Journal.format(NorFlash(sector_count=64, sector_size=4096), DEVICE)
        assert e.value.errno == errno.ENOSPC


class TestAppendAndRead:
    def test_indexes_are_consecutive_across_both_areas_and_read_returns_the_bytes(self):
        f, j = small()
        ops = [(INIT, b"init"), (INVOICE, b"\x01\x02\x03"), (EVENT, b"\xaa\xbb"), (INVOICE, b""), (DAILY, b"d")]
        assert [j.append(t, b) for t, b in ops] == [0, 1, 2, 3, 4]
        assert [j.read(i) for i in range(5)] == ops
        assert [(i, t, b) for i, t, b, s in j.records()] == [(i,) + ops[i] for i in range(5)]

    def test_an_invoice_record_on_flash_is_type_length_body_crc_commit(self):
        f, j = small()
        j.append(INVOICE, b"\x01\x02\x03")
        a = j.F * 1024 + 73  # first record of the first ring sector
        assert bytes(f.data[a:a + 12]) == b"\x07\x03\x01\x02\x03\xec\xdd\x4a\xcc\x00\xff\xff"
        assert zlib.crc32(b"\x07\x03\x01\x02\x03") == 0xCC4ADDEC

    def test_a_fiscal_record_carries_its_index_and_the_chain_head_before_it(self):
        f, j = small()
        j.append(INVOICE, b"\x01")
        before = j.chain_head()
        j.append(EVENT, b"\xaa\xbb")
        rec = bytes(f.data[136:136 + 47])
        assert rec[:7] == b"\x08\x02\x00\x01\x00\x00\x00"  # type, length 2, index 1
        assert rec[7:39] == before and rec[39:41] == b"\xaa\xbb"
        assert rec[41:45] == struct.pack("<I", zlib.crc32(rec[:41])) and rec[45:47] == b"\x00\xff"

    def test_the_chain_head_is_sha256_of_the_previous_head_and_the_record(self):
        f, j = small()
        g = j.chain_head()
        j.append(INVOICE, b"\x01\x02")
        assert j.chain_head() == hashlib.sha256(g + b"\x00\x00\x00\x00" + b"\x07" + b"\x02\x00" + b"\x01\x02").digest()

    def test_everything_survives_a_remount(self):
        f, j = small()
        acked = play(f, jc.scenario())
        j = Journal(f, DEVICE)
        assert j.next_index == len(acked) and j.chain_head() == jc.chain(acked)
        j2 = Journal(f, DEVICE)
        assert j2.chain_head() == j.chain_head() and j2.counters() == j.counters()

    @pytest.mark.parametrize("rtype,body,why", [
        (0x00, b"", "unknown type 0"), (0x09, b"", "unknown type 9"), (0xFF, b"", "unknown type 255"),
        (INVOICE, b"x" * 255, "body too long"), (DAILY, b"x" * 161, "body too long"),
    ])
    def test_bad_records_are_refused(self, rtype, body, why):
        f, j = small()
        with pytest.raises(JournalError) as e:
            j.append(rtype, body)
        assert e.value.errno == errno.EINVAL and e.value.detail == why
        assert j.next_index == 0

    def test_reading_past_the_end_is_enoent(self):
        f, j = small()
        j.append(INIT, b"x")
        with pytest.raises(JournalError) as e:
            j.read(1)
        assert e.value.errno == errno.ENOENT


class TestCapacity:
    def test_a_fiscal_class_warns_at_90_percent_and_stops_at_100(self):
        quotas = ((1, 384), (10, 160), (4, 176), (4, 48), (8, 48), (8, 48), (16, 32))
        f, j = small(quotas=quotas)
        for k in range(8):
            j.append(DAILY, b"d")
        assert DAILY not in j.warnings() and j.usage()[DAILY] == 800
        j.append(DAILY, b"d")
        assert DAILY in j.warnings() and j.usage()[DAILY] == 900
        j.append(DAILY, b"d")
        with pytest.raises(JournalError) as e:
            j.append(DAILY, b"d")
        assert e.value.errno == errno.ENOSPC and (e.value.reason, e.value.detail) == ("class full", DAILY)
        j.append(EVENT, b"others go on")

    def test_the_ring_never_overwrites_detail_no_daily_covers(self):
        f, j = small()
        n = 0
        with pytest.raises(JournalError) as e:
            while True:
                j.append(INVOICE, inv(n))
                n += 1
        assert e.value.errno == errno.ENOSPC and e.value.reason == "ring full"
        assert n == 8 * 11  # 8 ring sectors of 11 records: nothing was overwritten
        assert INVOICE in j.warnings()
        assert all(j.read(i) == (INVOICE, inv(i)) for i in range(n))
        j.append(DAILY, b"covers all")
        j.append(INVOICE, inv(n))
        with pytest.raises(JournalError) as e:
            j.read(0)
        assert e.value.reason == "overwritten"
        assert j.read(11) == (INVOICE, inv(11)) and j.read(n + 1) == (INVOICE, inv(n))

    def test_a_daily_covers_only_the_invoices_appended_before_it(self):
        f, j = small()
        for i in range(50):
            j.append(INVOICE, inv(i))
        j.append(DAILY, b"d")
        assert j.covered == 50
        n = 50
        with pytest.raises(JournalError) as e:
            while True:
                j.append(INVOICE, inv(n))
                n += 1
        assert e.value.reason == "ring full"
        # sectors hold invoices 0-10, 11-21, ...: the four before 44-54 were reused, 44-54 holds uncovered 50-54
        assert n == 88 + 44
        with pytest.raises(JournalError):
            j.read(43)
        assert j.read(44) == (INVOICE, inv(44)) and j.read(51) == (INVOICE, inv(50))

    def test_the_fiscal_area_filling_up_is_a_clear_error(self):
        f, j = small(fiscal_sectors=2)
        with pytest.raises(JournalError) as e:
            for k in range(40):
                j.append(DAILY, b"d" * 160)
        assert e.value.reason == "fiscal area full"
        assert j.counters()[DAILY] == 8  # a 1 KiB sector holds 4 records of 204 bytes
        assert 0 in j.warnings()


class TestReadOutStream:
    def test_the_stream_is_a_header_then_fiscal_then_ring_sector_images(self):
        f, j = small()
        j.append(INVOICE, b"\x01\x02\x03")
        data = j.read_stream(0, j.stream_length())
        assert data[:24] == b"FJRS\x01\x00\x00\x04" + DEVICE + jc.FORMAT_ID + b"\x01\x00\x01\x00"
        assert len(data) == 76 + 2 * 1024
        assert data[76:76 + 1024] == bytes(f.data[0:1024])
        assert data[76 + 1024:] == bytes(f.data[j.F * 1024:(j.F + 1) * 1024])

    def test_reading_in_small_chunks_gives_the_same_bytes(self):
        f, j = small()
        play(f, jc.scenario()[:40])
        j = Journal(f, DEVICE)
        whole = j.read_stream(0, j.stream_length())
        parts = b"".join(j.read_stream(o, 100) for o in range(0, len(whole), 100))
        assert parts == whole and j.read_stream(len(whole), 10) == b""

    def test_an_auditor_verifies_the_stream_even_after_detail_was_overwritten(self):
        f, j = small()
        acked = play(f, jc.scenario())
        j = Journal(f, DEVICE)
        rep = audit_stream(j.read_stream(0, j.stream_length()))
        assert rep.problems == [] and rep.chain_ok
        assert len(rep.records) < len(acked)  # the ring reused covered detail
        assert all(acked[i] == (t, b) for i, t, b in rep.records)
        assert {i for i, t, b in rep.records} >= {i for i, (t, b) in enumerate(acked) if t != INVOICE}

    def test_the_auditor_names_the_record_whose_crc_fails(self):
        f, j = small()
        play(f, jc.scenario()[:30])
        j = Journal(f, DEVICE)
        data = bytearray(j.read_stream(0, j.stream_length()))
        data[76 + 136 + 44 + 100] ^= 0x10  # inside the body of fiscal record 0 (INIT)
        rep = audit_stream(bytes(data))
        assert ("record-crc", "fiscal 0+136", "fiscal ordinal 0") in rep.problems


class TestDamagedMedia:
    def journal(self):
        f, j = small()
        return f, play(f, jc.scenario())

    def test_a_journal_of_another_device_is_reported_and_read_only(self):
        f, acked = self.journal()
        j = Journal(f, OTHER_DEVICE)
        assert [d.kind for d in j.damage] == ["foreign-device"]
        assert j.read(0) == acked[0]
        with pytest.raises(JournalError) as e:
            j.append(EVENT, b"x")
        assert e.value.errno == errno.EIO and e.value.reason == "damaged"

    def test_a_sector_from_another_device_is_named(self):
        f, acked = self.journal()
        g = NorFlash(sector_count=29, sector_size=1024)
        Journal.format(g, OTHER_DEVICE, quotas=jc.SMALL_QUOTAS, format_id=b"\x00\x00\x00\x02")
        f.data[5 * 1024:6 * 1024] = g.data[0:1024]
        j = Journal(f, DEVICE)
        assert ("foreign-sector", 5) in [(d.kind, d.sector) for d in j.damage]

    def test_a_corrupted_fiscal_sector_header_is_named_and_the_rest_still_reads(self):
        f, acked = self.journal()
        f.flip_bit(1 * 1024 + 30, 2)  # first_ordinal of fiscal sector 1
        j = Journal(f, DEVICE)
        assert [(d.kind, d.sector, d.detail) for d in j.damage] == [("sector-header", 1, "header crc")]
        assert j.read(0) == acked[0]
        with pytest.raises(JournalError):
            j.append(EVENT, b"x")

    def test_a_bit_flip_in_an_old_fiscal_record_is_found_by_verify_and_by_read(self):
        f, acked = self.journal()
        f.flip_bit(136 + 44 + 10, 0)  # body of record 0, INIT, in fiscal sector 0
        j = Journal(f, DEVICE)
        assert j.damage == []  # a fast mount does not read old records
        found = j.verify()
        assert [(d.kind, d.sector, d.offset) for d in found] == [("record-crc", 0, 136)]
        with pytest.raises(JournalError) as e:
            j.append(EVENT, b"x")
        assert e.value.errno == errno.EIO
        with pytest.raises(JournalError) as e:
            Journal(f, DEVICE).read(0)
        assert e.value.reason == "damaged" and e.value.detail.kind == "record-crc"
        assert Journal(f, DEVICE).read(len(acked) - 1) == acked[-1]

    def test_a_bit_flip_in_an_invoice_names_its_index(self):
        f, acked = self.journal()
        j = Journal(f, DEVICE)
        idx = max(i for i, t, b, s in j.records() if t == INVOICE)
        p = j.r_run[-1]
        first = j.r_first_index[p]
        f.flip_bit((j.F + p) * 1024 + 73 + 10, 3)  # first record of the newest ring sector
        j = Journal(f, DEVICE)
        found = j.verify()
        assert [(d.kind, d.sector, d.offset, d.index) for d in found] == [("record-crc", j.F + p, 73, first)]
        assert first <= idx

    def test_unreadable_bytes_before_good_records_are_damage_and_the_records_after_still_read(self):
        f, acked = self.journal()
        f.data[136] = 0x7E  # type byte of fiscal record 0 becomes unknown
        j = Journal(f, DEVICE)
        found = j.verify()
        assert ("garbage", 0, 136) in [(d.kind, d.sector, d.offset) for d in found]
        assert j.read(2) == acked[2]

    def test_transient_read_errors_are_retried(self):
        f, acked = self.journal()
        f.read_flip_rate = 0.05
        j = Journal(f, DEVICE)
        assert j.damage == [] and j.chain_head() == jc.chain(acked)
        assert [j.read(i) for i in range(len(acked)) if acked[i][0] != INVOICE] == \
               [a for a in acked if a[0] != INVOICE]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.integers(0, 29 * 1024 - 1), st.integers(0, 255)), min_size=1, max_size=8))
    def test_random_corruption_never_crashes_and_never_alters_a_record_silently(self, hits):
        f, acked = self.journal()
        for address, value in hits:
            f.data[address] = value
        try:
            j = Journal(f, DEVICE)
        except JournalError as e:
            assert e.reason == "not formatted"
            return
        j.verify()
        for idx, t, b, state in j.records():
            if state == 0 and idx is not None and idx < len(acked):
                assert (t, b) == acked[idx] or j.damage
        for i in range(len(acked)):
            try:
                t, b = j.read(i)
            except JournalError:
                continue
            assert (t, b) == acked[i] or j.damage


def test_records_in_a_newly_opened_fiscal_sector_are_found_without_a_remount():
    """Regression (found by the conformance suite's random run): fiscal_records_reverse skipped a fiscal
    sector opened since the mount, so the till's reports missed the newest daily records."""
    from hw_sim.nor_flash import NorFlash
    from fiscal_till.journal import Journal
    flash = NorFlash(sector_count=512, sector_size=4096)
    Journal.format(flash, b"12345678")
    j = Journal(flash, b"12345678")
    bodies = [bytes([i % 256]) * 150 for i in range(60)]  # enough DAILY-sized records for several sectors
    for b in bodies:
        j.append(0x02, b)
    newest_first = [body for _, t, body in j.fiscal_records_reverse()]
    assert newest_first == bodies[::-1]
    assert [body for _, t, body in Journal(flash, b"12345678").fiscal_records_reverse()] == bodies[::-1]
