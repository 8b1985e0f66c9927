"""Audit read-out: the whole journal over the link, every finding reported, stored; only the registered till."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway import stations
from gateway.db.models import Audit
from gateway.issuance import Limits, Taxpayer
from gateway.stations.audit import analyse, expected, read_journal
from gateway.stations.common import Refused
from gateway.stations.income import DeclaredIncome
from protocol.journal_format import STREAM_HDR_SIZE
from pg import hall, pg_server, pg_url, store  # noqa: F401  (fixtures)


def filed(hall):
    hall.ready_to_file()
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income))
    hall.rig.ok("CLEAR_UNLOCK")
    return hall


def test_an_audit_of_the_whole_lifecycle_verifies_and_is_stored(hall):
    """R-VERIFY-RECORDS, R-FM-APPEND-ONLY: the bureau's audit verifies every record of a read-out."""
    filed(hall)
    seen = []
    r = stations.audit_till(hall.st, hall.client, hall.machine_no, progress=lambda d, t: seen.append((d, t)))
    assert r.ok, r.findings.problems
    s = r.findings.summary
    assert s["chain_ok"] and s["records"]["INVOICE"] == 10 and s["records"]["DECLARATION"] == 1
    assert s["rolls"][0]["normal"] == 10 and s["rolls"][0]["last_number"] == 10
    assert seen[-1][0] == seen[-1][1] == r.journal_bytes
    with hall.store.transaction() as sess:
        a = sess.execute(select(Audit)).scalar_one()
        assert a.ok and a.journal_sha256 == r.journal_sha256
    # the next 验旧 uses the till's own figures
    acc = stations.check_old(hall.st, hall.reader(), hall.taxpayer_no, hall.machine_no)
    assert acc.source.startswith("till read-out") and acc.used == 10


def test_an_audit_reports_every_finding_not_just_the_first(hall):
    """R-VERIFY-RECORDS: the audit reports each finding without stopping."""
    filed(hall)
    stream = bytearray(read_journal(hall.client))
    with hall.store.transaction() as s:
        from gateway.db.models import Machine
        m = s.execute(select(Machine)).scalar_one()
        exp = expected(hall.st, s, m)
    exp.rolls.clear()  # the bureau "never sold" the roll the till loaded
    exp.declarations.clear()  # nor received its declaration
    exp.clear_unlocks.clear()
    stream[STREAM_HDR_SIZE + 136 + 60] ^= 0x01  # and one byte of the INIT record flipped
    f = analyse(bytes(stream), exp)
    kinds = {p["kind"] for p in f.problems}
    assert "bureau" in kinds and any(k.startswith("stream:") for k in kinds)
    assert any("never sold" in p["detail"] for p in f.problems)
    assert any("not issued by this bureau" in p["detail"] for p in f.problems)
    assert any(n["kind"] == "not-filed" for n in f.notes)


def test_a_daily_record_under_a_wrong_key_is_found(hall):
    filed(hall)
    stream = read_journal(hall.client)
    with hall.store.transaction() as s:
        from gateway.db.models import Machine
        exp = expected(hall.st, s, s.execute(select(Machine)).scalar_one())
    exp.public_key = bytes(32 * [1])[:31] + b"\x02"
    f = analyse(stream, exp)
    assert sum(1 for p in f.problems if p["kind"] == "daily") >= 27  # every one, not the first only


def test_the_audit_refuses_a_till_that_is_not_the_registered_one(hall):
    filed(hall)
    stations.register_taxpayer(hall.st, Taxpayer("91440101OTHER00001", "440101000000099", "另一家", "144010000000"),
                        tax_items=[{"index": 1, "rate": 300, "code": "10101", "name": "x"}])
    stations.register_machine(hall.st, "91440101OTHER00001", "9999999999999999", Limits(20260131, 100, 1000, 10))
    stations.issue_cards(hall.st, "91440101OTHER00001", "9999999999999999", fiscal_card_no="3201000000000099",
                  user_card_no="3201100000000099", valid_from=20260101, valid_to=20301231)
    before = hall.counts()
    with pytest.raises(Refused) as e:
        stations.audit_till(hall.st, hall.client, "9999999999999999")
    assert e.value.reason == "foreign-till" and "is machine 1234567890123456" in str(e.value)
    assert "READ_JOURNAL" not in hall.client.calls and hall.counts() == before


def test_initialization_refuses_a_till_that_is_not_the_registered_one(hall):
    hall.register()
    stations.register_machine(hall.st, hall.taxpayer_no, "9999999999999999", Limits(20260131, 100, 1000, 10))
    stations.issue_cards(hall.st, hall.taxpayer_no, "9999999999999999", fiscal_card_no="3201000000000099",
                  user_card_no="3201100000000099", valid_from=20260101, valid_to=20301231)
    with pytest.raises(Refused) as e:
        stations.initialize_till(hall.st, hall.client, "9999999999999999", date=20260105, time=90000)
    assert e.value.reason == "foreign-till" and "INITIALIZE" not in hall.client.calls
    hall.initialize()
    with pytest.raises(Refused) as e:
        hall.initialize()
    assert e.value.reason == "replayed"


def test_a_read_out_resumes_from_a_partial_file(hall, tmp_path):
    filed(hall)
    whole = read_journal(hall.client)
    part = tmp_path / "j.part"
    part.write_bytes(whole[:STREAM_HDR_SIZE + 5000])
    hall.client.calls.clear()
    again = read_journal(hall.client, partial=part, chunk=1024)
    assert again == whole and part.read_bytes() == whole
    assert hall.client.calls.count("READ_JOURNAL") == 1 + -(-(len(whole) - STREAM_HDR_SIZE - 5000) // 1024)
    # a partial file of another stream (the till appended since) is dropped: the read starts over
    part.write_bytes(b"\x00" * 200)
    assert read_journal(hall.client, partial=part) == whole
