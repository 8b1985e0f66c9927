"""Bad data never locks the till for good; the clock never goes back within a day; a management card is
valid by the till's own clock; an invoice line's amount is quantity x unit price (issue 10, cards part).
In-process firmware (tests/tillrig.py)."""

import pytest

from gateway import issuance as I
from hw_sim.cards import demo
from hw_sim.cards.fiscal import FiscalCard
from hw_sim.cards.management import ManagementCard
from protocol import commands, status as S
from tillrig import TillRig


def locks(rig):
    return S.mask_names(rig.status().lock_reasons, S.LOCK_REASONS)


def warnings(rig):
    return S.mask_names(rig.status().warnings, S.WARNINGS)


def ready(**kw) -> TillRig:
    """Initialized, a roll of 100 loaded, clock 2026-01-05 10:00."""
    rig = TillRig(**kw)
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")
    rig.rtc.set(20260105, 100000)
    return rig


def fingerprint(rig):
    st = rig.status()
    card = rig.cards.fiscal.state
    return (st.lock_reasons, st.warnings, st.roll_next, st.last_number, rig.till.fiscal.jn.next_index,
            card.roll["next"], card.mac_failures, dict(card.today))


def line(qty, price, amount, item=1):
    return dict(tax_item=item, quantity=qty, unit_price=price, amount=amount, name="x")


def invoice_of(*lines):
    return dict(kind=1, ref_number=0, cashier="c", payer="p", total=sum(ln["amount"] for ln in lines),
                lines=list(lines))


# ---- invoice lines -----------------------------------------------------------------------------------
def test_a_line_of_quantity_times_price_that_overflows_32_bits_is_not_issued_for_an_amount_of_1():
    rig = ready()
    before = fingerprint(rig)
    rig.refused("ISSUE_INVOICE", "INPUT_AMOUNT_OVERFLOW", **invoice_of(line(0xFFFFFFFF, 0xFFFFFFFF, 1)))
    assert fingerprint(rig) == before


def test_a_line_amount_that_is_not_quantity_times_price_is_refused_and_changes_nothing():
    rig = ready()
    before = fingerprint(rig)
    rig.refused("ISSUE_INVOICE", "INPUT_LINE_MISMATCH", **invoice_of(line(2000, 15_800, 15_800)))
    rig.refused("ISSUE_INVOICE", "INPUT_LINE_MISMATCH", **invoice_of(line(2500, 399, 997)))  # truncated
    assert fingerprint(rig) == before
    rec = rig.ok("ISSUE_INVOICE", **invoice_of(line(2500, 399, 998), line(2000, 7_900, 15_800)))
    assert rec.total == 16_798


def test_the_line_rule_is_written_once_on_the_host_side_and_agrees_with_the_firmware():
    from fiscal_till.invoice import line_amount
    for q, p in ((1, 499), (1, 500), (2500, 399), (333, 100), (0xFFFFFFFF, 0xFFFFFFFF)):
        assert commands.line_amount(q, p) == line_amount(q, p) == (q * p + 500) // 1000
    assert commands.line_amount(1, 499) == 0 and commands.line_amount(1, 500) == 1  # half up


# ---- the clock ---------------------------------------------------------------------------------------
def test_a_clock_moved_back_within_the_day_locks_clock_fault_and_issues_nothing():
    rig = ready()
    rig.rtc.set(20260105, 120000)
    assert rig.ok("ISSUE_INVOICE", **rig.invoice(100)).time == 120000
    rig.rtc.set(20260105, 110000)  # same date, one hour back
    assert "CLOCK_FAULT" in locks(rig)
    before = fingerprint(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_CLOCK_FAULT", **rig.invoice(100))
    assert fingerprint(rig) == before
    rig.rtc.set(20260105, 120000)  # back at the last record's time: fine again
    assert "CLOCK_FAULT" not in locks(rig)
    assert rig.ok("ISSUE_INVOICE", **rig.invoice(100)).number == 2


def test_the_last_records_time_is_rebuilt_at_boot():
    rig = ready()
    rig.rtc.set(20260105, 150000)
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.rtc.set(20260105, 140000)
    rig.reboot()  # the power-on event is not written while the clock is behind
    assert "CLOCK_FAULT" in locks(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_CLOCK_FAULT", **rig.invoice(100))


def test_set_time_compares_date_and_time_with_the_last_record():
    rig = ready()
    rig.rtc.set(20260105, 150000)
    rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    rig.rtc.set(20260105, 130000)  # the RTC fell behind the invoice of 15:00
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    rig.refused("SET_TIME", "CLOCK_BACKWARDS", date=20260105, time=140000)
    rig.ok("SET_TIME", date=20260105, time=150001)
    assert "CLOCK_FAULT" not in locks(rig)


def expired_management_card(rig, valid_from=20250101, valid_to=20260104):
    md = I.issue_management_card(rig.keystore, card_no=bytes.fromhex("4401000000000077"),
                                 inspector_no="440100000777", bureau_code=demo.TAXPAYER.bureau_code,
                                 valid_from=valid_from, valid_to=valid_to, pin=None)
    return ManagementCard.issued(md)


def test_an_expired_management_card_is_refused_before_the_fiscal_card_has_seen_a_date():
    rig = ready()  # no invoice and no closed day yet: the fiscal card knows no date
    assert rig.cards.fiscal.state.today["date"] == 0 and rig.cards.fiscal.state.today["closed_date"] == 0
    rig.user_slot.remove()
    rig.user_slot.insert(expired_management_card(rig))
    rig.refused("INSPECT", "CARD_EXPIRED")
    rig.refused("SET_TIME", "CARD_EXPIRED", date=20260106, time=80000)
    assert rig.status().date == 20260105
    rig.user_slot.remove()
    rig.user_slot.insert(expired_management_card(rig, valid_from=20260106, valid_to=20261231))  # not yet
    rig.refused("INSPECT", "CARD_EXPIRED")
    rig.user_slot.remove()
    rig.user_slot.insert(rig.cards.management)
    rig.ok("INSPECT")
