"""The device enforces domain §4 itself: every lock with its own error, warnings before a lock, what
still works while locked, bad input refused with nothing changed, the cards checked, the clock guarded.
In-process firmware (testbed/rigs.py); the same rules run under MicroPython in tests/test_sim_lifecycle.py."""

import pytest

from gateway import issuance
from testbed import demo_cards
from hw_sim.cards.fiscal import FiscalCard
from hw_sim.cards.user import UserCard
from protocol import commands
from testbed.rigs import TillRig, locks, ready, warnings


def fingerprint(rig):
    """Everything a refused request must leave as it was: status, journal size, card's roll and totals."""
    st = rig.status()
    card = rig.cards.fiscal.state
    return (st.lock_reasons, st.amount_left, st.return_left, st.roll_next, st.last_number,
            rig.till.fiscal.jn.next_index, card.roll["next"], dict(card.today))


# ---- locks -----------------------------------------------------------------------------------------
def test_cumulative_limit_refuses_the_invoice_that_would_pass_it_then_locks_when_reached():
    rig = ready(limits=issuance.Limits(deadline=20260131, single_limit=10_000, cumulative_limit=25_000,
                                return_limit=2_000))
    rig.ok("ISSUE_INVOICE", **rig.invoice(10_000))
    rig.ok("ISSUE_INVOICE", **rig.invoice(10_000))
    before = fingerprint(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_CUMULATIVE_LIMIT", **rig.invoice(6_000))
    assert fingerprint(rig) == before
    assert "AMOUNT_75" in warnings(rig)
    rig.ok("ISSUE_INVOICE", **rig.invoice(5_000))  # exactly at the limit is allowed
    assert "CUMULATIVE_LIMIT" in locks(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_CUMULATIVE_LIMIT", **rig.invoice(1))


def test_single_invoice_limit():
    rig = ready()
    rig.refused("ISSUE_INVOICE", "LOCK_SINGLE_LIMIT", **rig.invoice(1_000_001))
    rig.ok("ISSUE_INVOICE", **rig.invoice(1_000_000))


def test_returns_count_against_the_return_limit_and_lock_at_it():
    rig = ready(limits=issuance.Limits(deadline=20260131, single_limit=10_000, cumulative_limit=50_000,
                                return_limit=4_000))
    orig = rig.ok("ISSUE_INVOICE", **rig.invoice(5_000))
    rig.ok("ISSUE_INVOICE", **rig.invoice(2_000, kind=2, ref=orig.number))
    assert "RETURN_75" not in warnings(rig)
    rig.ok("ISSUE_INVOICE", **rig.invoice(1_000, kind=2, ref=orig.number))
    assert "RETURN_75" in warnings(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_RETURN_LIMIT", **rig.invoice(1_500, kind=2, ref=orig.number))
    rig.ok("ISSUE_INVOICE", **rig.invoice(1_000, kind=2, ref=orig.number))
    assert "RETURN_LIMIT" in locks(rig)
    st = rig.status()
    assert st.return_left == 0 and st.amount_left == 45_000


def test_a_return_must_name_a_normal_invoice_and_not_exceed_it():
    rig = ready()
    orig = rig.ok("ISSUE_INVOICE", **rig.invoice(3_000))
    rig.refused("ISSUE_INVOICE", "INPUT_BAD_REFERENCE", **rig.invoice(1_000, kind=2, ref=999))
    rig.refused("ISSUE_INVOICE", "INPUT_BAD_REFERENCE", **rig.invoice(3_001, kind=2, ref=orig.number))
    ret = rig.ok("ISSUE_INVOICE", **rig.invoice(3_000, kind=2, ref=orig.number))
    rig.refused("ISSUE_INVOICE", "INPUT_BAD_REFERENCE", **rig.invoice(1, kind=2, ref=orig.number))
    rig.refused("ISSUE_INVOICE", "INPUT_BAD_REFERENCE", **rig.invoice(1, kind=2, ref=ret.number))


def test_void_spends_a_number_and_counts_separately():
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(1_000))
    void = rig.ok("ISSUE_INVOICE", kind=3, ref_number=0, cashier="a", payer="", total=0, lines=[])
    assert void.number == 2 and void.total == 0
    x = rig.ok("REPORT", kind=1, start=0, end=0).totals
    assert (x.normal_count, x.void_count, x.normal_total) == (1, 1, 1_000)
    assert rig.status().amount_left == 50_000_000 - 1_000


def test_fiscal_memory_full_locks_issuing():
    """R-LOCK-FM-FULL: the DAILY class at its quota locks issuing (a lab cannot fill real fiscal memory)."""
    quotas = ((1, 512), (3, 192), (300, 208), (300, 64), (2000, 48), (2000, 64), (3000, 32))
    rig = TillRig(identity={"journal_quotas": quotas})
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    for day in (20260105, 20260106):
        rig.rtc.set(day, 100000)
        rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.rtc.set(20260107, 100000)
    rig.ok("DAILY_CLOSE")  # the third and last DAILY record the quota allows
    assert "FM_FULL" in locks(rig)
    assert rig.status().journal_permille == 1000
    rig.rtc.set(20260108, 100000)
    rig.refused("ISSUE_INVOICE", "LOCK_FM_FULL", **rig.invoice(100))


def test_a_fiscal_class_at_90_percent_of_its_quota_warns_fm_90_before_it_locks():
    """R-WARN-FM: FM_90 from 900 per mille of a fiscal class (here 9 of 10 DAILY records), still issuing;
    R-LOCK-FM-FULL at the quota."""
    quotas = ((1, 512), (10, 192), (300, 208), (300, 64), (2000, 48), (2000, 64), (3000, 32))
    rig = TillRig(identity={"journal_quotas": quotas})
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    for day in range(20260105, 20260113):  # 8 daily records: 800 per mille
        rig.rtc.set(day, 100000)
        rig.ok("DAILY_CLOSE")
    assert rig.status().journal_permille == 800 and "FM_90" not in warnings(rig)
    rig.rtc.set(20260113, 100000)
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.ok("DAILY_CLOSE")  # the 9th
    assert rig.status().journal_permille == 900 and "FM_90" in warnings(rig) and locks(rig) == []
    rig.rtc.set(20260114, 100000)
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.ok("DAILY_CLOSE")  # the 10th and last
    assert "FM_FULL" in locks(rig)


def test_clock_behind_the_last_record_locks():
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.rtc.set(20260104, 120000)  # the battery-backed clock jumped back
    assert "CLOCK_FAULT" in locks(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_CLOCK_FAULT", **rig.invoice(100))


def test_service_life_over():
    """R-LOCK-SERVICE-LIFE."""
    rig = ready()
    rig.rtc.set(20310105, 100000)
    assert "SERVICE_LIFE" in locks(rig)


def test_fiscal_card_missing_locks_and_comes_back():
    rig = ready()
    card = rig.fiscal_slot.remove()
    rig.reboot()
    assert "FISCAL_CARD_MISSING" in locks(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_FISCAL_CARD_MISSING", **rig.invoice(100))
    rig.fiscal_slot.insert(card)
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    assert locks(rig) == []


def test_fiscal_card_of_another_machine_locks():
    rig = ready()
    other = issuance.issue_fiscal_card(rig.keystore, taxpayer=demo_cards.TAXPAYER, machine_no="9999999999999999",
                                card_no=bytes.fromhex("3201000000000099"), user_card_no=demo_cards.USER_CARD_NO,
                                valid_from=20260101, valid_to=20301231, limits=demo_cards.LIMITS,
                                tax_items=demo_cards.TAX_ITEMS)
    rig.fiscal_slot.remove()
    rig.fiscal_slot.insert(FiscalCard.issued(other))
    rig.reboot()
    assert "FISCAL_CARD_FOREIGN" in locks(rig)


def test_wrong_kind_of_card_in_the_fiscal_slot_locks():
    rig = ready()
    rig.fiscal_slot.remove()
    rig.fiscal_slot.insert(UserCard.issued(rig.cards.user_data))
    rig.reboot()
    assert "FISCAL_CARD_FOREIGN" in locks(rig)


def test_a_fiscal_card_personalised_again_is_unregistered():
    rig = ready()
    rig.fiscal_slot.remove()
    rig.fiscal_slot.insert(FiscalCard.issued(rig.cards.fiscal_data))
    rig.reboot()
    assert "FISCAL_CARD_UNREGISTERED" in locks(rig)


def test_lost_pin_locks_without_burning_the_cards_tries():
    rig = ready()
    rig.nvram.put("pin", bytes(8))
    rig.reboot()
    assert "PIN_BLOCKED" in locks(rig)
    assert rig.cards.fiscal.state.pin_tries == 2  # one wrong try, not three


# ---- what still works while locked (domain §4) ------------------------------------------------------
def test_while_locked_daily_close_report_declaration_and_inspection_still_work():
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(700))
    rig.rtc.set(20260202, 90000)
    assert "DEADLINE" in locks(rig)
    rig.ok("DAILY_CLOSE")
    assert rig.ok("REPORT", kind=3, start=20260101, end=20260131).totals.normal_total == 700
    assert rig.ok("REPORT", kind=2, start=20260105, end=0).totals.normal_count == 1
    rig.ok("DECLARE", end=20260131)
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    assert rig.ok("INSPECT").declaration_count == 1


# ---- warnings before locks ---------------------------------------------------------------------------
def test_warnings_deadline_near_roll_low_and_non_fiscal():
    """R-WARN-DEADLINE, R-WARN-ROLL-LOW, R-NON-FISCAL at their thresholds."""
    rig = ready()
    assert warnings(rig) == ["NON_FISCAL"]
    rig.rtc.set(20260124, 100000)
    assert "DEADLINE_NEAR" in warnings(rig) and rig.status().days_to_deadline == 7
    rig.rtc.set(20260123, 100000)
    assert "DEADLINE_NEAR" not in warnings(rig)
    for _ in range(80):
        rig.ok("ISSUE_INVOICE", **rig.invoice(10))
    st = rig.status()
    assert st.invoices_left == 20 and "ROLL_LOW" in warnings(rig)


# ---- bad input: a clear error, nothing changed ----------------------------------------------------
@pytest.mark.parametrize("fields,error", [
    (TillRig.invoice(0), "INPUT_BAD_AMOUNT"),
    (dict(TillRig.invoice(100), total=99), "INPUT_TOTAL_MISMATCH"),
    (TillRig.invoice(100, item=5), "INPUT_UNKNOWN_TAX_ITEM"),
    (TillRig.invoice(0xFFFFFFFF, 1), "INPUT_AMOUNT_OVERFLOW"),
    (dict(TillRig.invoice(*[1] * 33)), "INPUT_TOO_MANY_LINES"),
    (TillRig.invoice(100, kind=7), "INPUT_BAD_KIND"),
])
def test_bad_invoice_requests_change_nothing(fields, error):
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    before = fingerprint(rig)
    if error == "INPUT_AMOUNT_OVERFLOW":
        fields = dict(fields, total=0xFFFFFFFF)  # the wire cannot carry the true sum: say any total
    rig.refused("ISSUE_INVOICE", error, **fields)
    assert fingerprint(rig) == before


def test_malformed_payload_changes_nothing():
    rig = ready()
    before = fingerprint(rig)
    status, _, _ = rig.call("ISSUE_INVOICE", payload=b"\x01\x00")
    assert status == 0x0103 and fingerprint(rig) == before


def test_the_exhausted_roll_is_refused_and_summarised():
    rig = TillRig()
    rig.initialize()
    rig.bureau_sells_roll(1, 3)
    rig.ok("LOAD_ROLL")
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.ok("ISSUE_INVOICE", kind=3, ref_number=0, cashier="", payer="", total=0, lines=[])
    rig.ok("ISSUE_INVOICE", **rig.invoice(200))
    rig.refused("ISSUE_INVOICE", "LOCK_NO_ROLL", **rig.invoice(100))
    usage = [body for _, t, body in rig.till.fiscal.jn.fiscal_records_reverse() if t == 0x06]
    from protocol.records import RollUsageRecord
    u = RollUsageRecord.parse(usage[0])
    assert (u.code, u.start, u.end, u.normal, u.voided, u.last_number) == ("1440012345", 1, 3, 2, 1, 3)


def test_card_pulled_before_it_answered_changes_nothing():
    rig = ready()
    before = fingerprint(rig)
    rig.fiscal_slot.pull_after(0)  # the next APDU finds the card gone
    status, _, _ = rig.call("ISSUE_INVOICE", **rig.invoice(100))
    assert status in (0x0301, 0x0305)  # CARD_FISCAL_MISSING / CARD_NO_RESPONSE
    card = rig.fiscal_slot.card or rig.cards.fiscal
    assert fingerprint(rig)[1:] == before[1:] and card.state.roll["next"] == 1


def test_card_pulled_after_issuing_but_before_answering_is_recovered_when_it_is_back():
    rig = ready()
    payload = commands.BY_NAME["ISSUE_INVOICE"].request.build(rig.invoice(100))
    # ISSUE_INVOICE is the first card command of the request once the PIN session is open
    rig.fiscal_slot.pull_after(0, executed=True)
    status, _, _ = rig.call("ISSUE_INVOICE", rid=4242, payload=payload)
    assert status == 0x0305  # CARD_NO_RESPONSE: the host does not know whether it was issued
    rig.fiscal_slot.insert(rig.cards.fiscal)
    status, reply, _ = rig.call("ISSUE_INVOICE", rid=4242, payload=payload)  # the host retries
    assert status == 0 and reply.number == 1
    assert rig.status().last_number == 1 and rig.cards.fiscal.state.roll["next"] == 2


def test_user_card_of_another_taxpayer_is_refused():
    """R-LOCK-USER-CARD."""
    rig = ready()
    other = issuance.issue_user_card(rig.keystore, taxpayer=issuance.Taxpayer(taxpayer_no="91110000XXXXXXXX9X",
                                                                taxpayer_id="110000000000009", name="别家",
                                                                bureau_code="111000000000"),
                              card_no=bytes.fromhex("1101100000000009"),
                              tills=[("8888888888888888", bytes.fromhex("1101000000000009"))],
                              valid_from=20260101, valid_to=20301231, tax_items=demo_cards.TAX_ITEMS)
    rig.user_slot.remove()
    rig.user_slot.insert(UserCard.issued(other))
    for _ in range(100):
        rig.ok("ISSUE_INVOICE", **rig.invoice(1))
    rig.refused("LOAD_ROLL", "CARD_FOREIGN_TAXPAYER")


# ---- clock and inspection: the management card -------------------------------------------------------
def test_clock_changes_need_the_management_card_and_never_go_back():
    rig = ready()
    rig.refused("SET_TIME", "CARD_MGMT_MISSING", date=20260106, time=80000)
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    rig.refused("SET_TIME", "CLOCK_BACKWARDS", date=20260105, time=95959)
    rig.ok("SET_TIME", date=20260106, time=80000)
    assert rig.status().date == 20260106
    rig.refused("SET_TIME", "INPUT_BAD_DATE", date=20260230, time=80000)


def test_inspection_reads_the_till_with_the_management_card():
    rig = ready()
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.refused("INSPECT", "CARD_MGMT_MISSING")
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    info = rig.ok("INSPECT")
    assert info.machine_no == demo_cards.MACHINE_NO and info.invoice_count == 1
    assert info.chain_head == rig.till.fiscal.jn.chain_head()


def test_an_impossible_clock_refuses_dated_records_until_set_time_mends_it():
    """R-CLOCK-VALID: with the RTC reading month 13 (a battery fault), invoices and closes are refused
    CLOCK_INVALID and nothing is written; SET_TIME with the management card mends the clock."""
    rig = ready()
    good = rig.rtc.datetime
    rig.rtc.datetime = lambda value=None: (2026, 13, 1, 0, 9, 0, 0, 0) if value is None else good(value)
    before = rig.status().journal_permille, rig.till.fiscal.jn.next_index
    rig.refused("ISSUE_INVOICE", "CLOCK_INVALID", **rig.invoice(100))
    rig.refused("DAILY_CLOSE", "CLOCK_INVALID")
    assert (rig.status().journal_permille, rig.till.fiscal.jn.next_index) == before
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    rig.ok("SET_TIME", date=20260106, time=90000)
    del rig.rtc.datetime
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.user)
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
