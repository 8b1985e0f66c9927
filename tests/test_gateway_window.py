"""The filing window (一窗式): verify, compare, surcharge, clear-unlock, refer; and every refusal writes nothing."""
from __future__ import annotations

import json

import pytest

from gateway import stations
from gateway.stations import surcharge
from gateway.stations.common import Refused
from gateway.stations.income import DeclaredIncome, load, parse_yuan, typed
from hw_sim.cards import store as card_store
from protocol import cardfiles
from protocol.status import LOCK_REASONS, mask_names
from pg import hall, pg_server, pg_url, store  # noqa: F401  (fixtures)


def test_reading_the_card_verifies_the_declaration_and_shows_the_period(hall):
    """R-VERIFY-RECORDS: the declaration on the card is verified before the window shows it."""
    hall.ready_to_file()
    reading = stations.read_card(hall.st, hall.reader(), hall.taxpayer_no)
    (p,) = reading.pending
    d = p.as_dict()
    assert (d["period_start"], d["period_end"]) == (20260105, 20260131)
    assert d["normal_count"] == 10 and d["recorded_income_fen"] == hall.income
    assert {x["item"] for x in d["lines"]} == {1, 2}
    # reading twice is the same declaration on record, not a second one
    assert stations.read_card(hall.st, hall.reader(), hall.taxpayer_no).pending[0].declaration_id == p.declaration_id


def test_shortfall_is_refused_then_a_corrected_filing_is_accepted_with_a_late_surcharge(hall):
    """R-WINDOW-COMPARE, R-WINDOW-SHORTFALL, R-SURCHARGE: declared < recorded is refused with nothing written;
    declared >= recorded clears, late, with the surcharge."""
    hall.ready_to_file(window_day=20260220)
    short = stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income - 1))
    assert short.outcome == "shortfall" and short.shortfall == 1 and short.clear_unlock is None
    assert hall.rig.bureau_session().declarations()[0][1] == cardfiles.DECL_SIGNED  # nothing written to the card
    ok = stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income + 10000))
    assert ok.accepted and ok.attempt == 2
    a = ok.assessment
    assert (a.filing_deadline, a.filed_on, a.days) == (20260215, 20260220, 5)
    rates = {1: 300, 2: 500}
    assert a.base == surcharge.tax_due(rates, [(ln.item, ln.normal, ln.returned) for ln in hall.declaration.totals.lines],
                               hall.income + 10000, None)
    assert a.amount == surcharge.round_half_up(a.base * 5 * 5, 10000)
    assert ok.clear_unlock["deadline"] == 20260228 and ok.clear_unlock["sequence"] == 2026013100
    assert hall.rig.bureau_session().declarations()[0][1] == cardfiles.DECL_CLEARED
    # the till takes the clear-unlock: unlocked, new deadline
    cleared = hall.rig.ok("CLEAR_UNLOCK")
    assert cleared.period_end == 20260131 and cleared.controls.deadline == 20260228
    assert "DEADLINE" not in mask_names(hall.rig.status().lock_reasons, LOCK_REASONS)


def test_a_shortfall_with_an_explanation_opens_a_referral_that_is_assigned_and_closed(hall):
    """R-WINDOW-SHORTFALL: an explained shortfall is referred to the tax source department."""
    hall.ready_to_file()
    o = stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income - 500),
               explanation="two invoices cancelled by phone; paper copies attached")
    assert o.outcome == "shortfall" and o.referral_id
    (r,) = stations.list_referrals(hall.st, state="open")
    assert r["referral_id"] == o.referral_id and "cancelled" in r["explanation"]
    assert stations.assign(hall.st, o.referral_id, "税源管理科 王")["state"] == "assigned"
    assert stations.close(hall.st, o.referral_id, "confirmed by visit")["state"] == "closed"
    with pytest.raises(Refused) as e:
        stations.close(hall.st, o.referral_id, "again")
    assert e.value.reason == "order"
    assert stations.list_referrals(hall.st, state="open") == []
    # the taxpayer may still correct it afterwards
    assert stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income)).accepted


def test_a_card_of_another_taxpayer_is_refused_and_nothing_is_written(hall):
    hall.ready_to_file()
    from testbed import demo_cards
    from gateway.issuance import Taxpayer
    stations.register_taxpayer(hall.st, Taxpayer("91440101OTHER00001", "440101000000099", "另一家公司", "144010000000"),
                        tax_items=demo_cards.TAX_ITEMS)
    before = hall.counts()
    with pytest.raises(Refused) as e:
        stations.file(hall.st, hall.reader(), "91440101OTHER00001", DeclaredIncome(hall.income))
    assert e.value.reason == "foreign-card" and "belongs to taxpayer " + hall.taxpayer_no in str(e.value)
    assert hall.counts() == before


@pytest.mark.parametrize("offset", [20, 90, 130])  # declared sums, response totals, signature
def test_a_declaration_with_one_byte_flipped_is_refused_with_every_reason(hall, offset):
    """R-VERIFY-RECORDS: any changed byte fails the MAC or the signature, and every reason is given."""
    hall.ready_to_file()
    records = hall.rig.cards.user.state.declarations  # EF04 records: status byte + the 161 signed bytes
    records[0] = records[0][:offset] + bytes([records[0][offset] ^ 0x01]) + records[0][offset + 1:]
    before = hall.counts()
    with pytest.raises(Refused) as e:
        stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income))
    assert e.value.reason == "tampered" and e.value.problems
    assert any("check byte" in p or "MAC1" in p or "signature" in p for p in e.value.problems)
    assert hall.counts() == before
    assert hall.rig.bureau_session().declarations()[0][1] == cardfiles.DECL_SIGNED


def test_a_replayed_card_cannot_clear_unlock_a_period_twice(hall):
    """R-CLEAR-UNLOCK: the bureau writes clear-unlock data once per declared period."""
    hall.ready_to_file()
    copy = card_store.loads(card_store.dumps(hall.rig.cards.user))  # the card as it was before the window
    assert stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income)).accepted
    before = hall.counts()
    from gateway.readers import SimReader
    with pytest.raises(Refused) as e:
        stations.file(hall.st, SimReader(copy), hall.taxpayer_no, DeclaredIncome(hall.income))
    assert e.value.reason == "replayed" and "replayed or restored card" in str(e.value)
    assert hall.counts() == before


def test_a_clear_unlock_whose_card_write_failed_is_finished_on_the_next_visit(hall):
    hall.ready_to_file()
    reader = hall.reader()
    real_update = reader.update_record
    reader.update_record = lambda *a: (_ for _ in ()).throw(__import__("gateway").bureau_errors.ReaderError("pulled"))
    with pytest.raises(Refused) as e:
        stations.file(hall.st, reader, hall.taxpayer_no, DeclaredIncome(hall.income))
    assert e.value.reason == "card" and "present the card again" in str(e.value)
    reader.update_record = real_update
    reading = stations.read_card(hall.st, hall.reader(), hall.taxpayer_no)
    assert reading.pending == [] and reading.finished[0]["period_end"] == 20260131
    assert hall.rig.ok("CLEAR_UNLOCK").period_end == 20260131


def test_a_filing_file_for_another_period_or_taxpayer_is_refused(hall, tmp_path):
    hall.ready_to_file()
    f = tmp_path / "filing.json"
    f.write_text(json.dumps({"taxpayer_no": hall.taxpayer_no, "period_end": "2026-02-28", "income": "1.00"}))
    with pytest.raises(Refused, match="period ending 20260228"):
        stations.file(hall.st, hall.reader(), hall.taxpayer_no, load(f))
    f.write_text(json.dumps({"income": yuan_text(hall.income), "items": {"9": yuan_text(hall.income)}}))
    with pytest.raises(Refused, match="tax item.s. 9 are not items"):
        stations.file(hall.st, hall.reader(), hall.taxpayer_no, load(f))
    f = tmp_path / "filing.csv"
    f.write_text("taxpayer_no,period_end,income,item_1,item_2\n%s,2026-01-31,%s,%s,0\n" % (
        hall.taxpayer_no, yuan_text(hall.income), yuan_text(hall.income)))
    o = stations.file(hall.st, hall.reader(), hall.taxpayer_no, load(f))
    assert o.accepted and o.declared.items == {1: hall.income, 2: 0} and o.declared.source == "file:filing.csv"


def yuan_text(fen: int) -> str:
    return "%d.%02d" % divmod(fen, 100)


# ---- the money rules ---------------------------------------------------------------------------------------------
def test_filing_deadline_days_late_and_next_deadline():
    assert surcharge.filing_deadline(20260131) == 20260215 and surcharge.filing_deadline(20261231) == 20270115
    assert surcharge.days_late(20260131, 20260215) == 0 and surcharge.days_late(20260131, 20260216) == 1
    assert surcharge.next_deadline(20260131, 20260220, cardfiles.FILING_MONTHLY) == 20260228
    assert surcharge.next_deadline(20260131, 20260131, cardfiles.FILING_MONTHLY) == 20260228
    assert surcharge.next_deadline(20260331, 20260410, cardfiles.FILING_QUARTERLY) == 20260630


def test_tax_due_and_surcharge_round_half_up_in_fen():
    """R-SURCHARGE: 0.05 % a day of the tax due, rounded half up once, in fen."""
    assert surcharge.round_half_up(5, 10) == 1 and surcharge.round_half_up(4, 10) == 0 and surcharge.round_half_up(-5, 10) == -1
    rates = {1: 300, 2: 500}
    # recorded per item at its rate, the excess at the highest rate
    assert surcharge.tax_due(rates, [(1, 10000, 0), (2, 10000, 2000)], 19000, None) == 300 + 400 + 50
    assert surcharge.tax_due(rates, [], 0, {1: 1, 2: 1}) == 0  # 0.03 + 0.05 fen rounds to 0 per line
    a = surcharge.assess(20260131, 20260220, 3257)
    assert (a.days, a.amount) == (5, 8)  # 3257 x 5 x 0.0005 = 8.1425 fen
    assert surcharge.assess(20260131, 20260210, 3257).amount == 0


def test_typed_amounts_are_checked():
    assert parse_yuan("12345") == 1234500 and parse_yuan("0.5") == 50 and typed("1.23").income == 123
    for bad in ("-1", "1.234", "1e3", "1,000", "", "abc", "99999999999999"):
        with pytest.raises(Refused, match="income"):
            parse_yuan(bad)


@pytest.mark.parametrize("name,text,message", [
    ("a.json", "{", "not valid JSON"),
    ("a.json", "[1]", "one JSON object"),
    ("a.json", '{"income": "1", "extra": 1}', "unknown field"),
    ("a.json", '{"taxpayer_no": "x"}', "income is missing"),
    ("a.json", '{"income": "10", "items": {"1": "3"}}', "add up to 300 fen, not the income 1000"),
    ("a.json", '{"income": "10", "items": {"x": "10"}}', "not an item index"),
    ("a.json", '{"income": "10", "period_end": "2026-02-30"}', "period_end must be a date"),
    ("a.csv", "income\n1\n2\n", "exactly one filing row"),
    ("a.csv", "income\n1,2\n", "more cells than the header"),
    ("a.txt", "1", "must be .json or .csv"),
])
def test_filing_files_are_validated_with_a_clear_message(tmp_path, name, text, message):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    with pytest.raises(Refused) as e:
        load(f)
    assert message in str(e.value) and e.value.reason == "bad-input"


def test_group_commit_keeps_each_filing_apart_and_refuses_only_the_bad_one(hall):
    hall.ready_to_file()
    record = hall.rig.cards.user.state.declarations[0][1:]
    bad = record[:40] + bytes([record[40] ^ 1]) + record[41:]
    before = hall.counts()
    results = stations.decide_batch(hall.st, [(hall.taxpayer_no, bad, DeclaredIncome(hall.income)),
                                       (hall.taxpayer_no, record, DeclaredIncome(hall.income)),
                                       (hall.taxpayer_no, record, DeclaredIncome(hall.income))])
    assert isinstance(results[0], Refused) and results[0].reason == "tampered"
    outcome, cu_id = results[1]
    assert outcome.accepted and cu_id
    assert isinstance(results[2], Refused) and results[2].reason == "replayed"
    after = hall.counts()
    assert after["clear_unlocks"] == before["clear_unlocks"] + 1 and after["declarations"] == before["declarations"] + 1
