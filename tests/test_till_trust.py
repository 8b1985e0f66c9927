"""Bad data never locks the till for good; the clock never goes back within a day; a management card is
valid by the till's own clock; an invoice line's amount is quantity x unit price (issue 10, cards part).
In-process firmware (testbed/rigs.py)."""


from gateway import issuance
from testbed import demo_cards
from hw_sim.cards.management import ManagementCard
from protocol import commands, status as S
from testbed.rigs import TillRig, locks, ready, warnings


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
    md = issuance.issue_management_card(rig.keystore, card_no=bytes.fromhex("4401000000000077"),
                                 inspector_no="440100000777", bureau_code=demo_cards.TAXPAYER.bureau_code,
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


# ---- no lock-out by bad data: rolls -------------------------------------------------------------------
OTHER_FISCAL_CARD = bytes.fromhex("3201000000000099")


def sell_foreign_roll(rig, start, end=None):
    """A roll made for another fiscal card, sold to this till's machine number: its MAC cannot verify."""
    record = issuance.issue_roll(rig.keystore, fiscal_card_no=OTHER_FISCAL_CARD, machine_no=rig.machine_no,
                          code="1440012345", start=start, end=end or start + 99)
    rig.bureau_session().add_roll(record)
    return record


def events(rig):
    from protocol import records
    from protocol.records import EventRecord
    return [S.EVENTS[EventRecord.parse(body).event] for _, t, body in rig.till.fiscal.jn.fiscal_records_reverse()
            if t == records.REC_EVENT][::-1]


def test_a_refused_roll_is_taken_off_the_user_cards_recovery_file_logged_and_never_handed_over_again():
    rig = TillRig()
    rig.initialize()
    record = sell_foreign_roll(rig, 1)
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    assert rig.cards.fiscal.state.mac_failures == 1
    assert rig.cards.user.state.last_roll == bytes(38)  # EF07 erased
    assert events(rig)[-1] == "ROLL_REFUSED"
    for _ in range(3):  # the cashier retries: the card is never asked again
        rig.refused("LOAD_ROLL", "CARD_NO_ROLL")
    assert rig.cards.fiscal.state.mac_failures == 1 and not rig.cards.fiscal.state.locked
    # a recovery copy the till could not erase (user card pulled in between) is skipped just the same
    rig.cards.user.state.last_roll = record
    rig.reboot()
    rig.refused("LOAD_ROLL", "CARD_NO_ROLL")
    assert rig.cards.fiscal.state.mac_failures == 1 and rig.cards.user.state.last_roll == bytes(38)


def test_rolls_for_another_fiscal_card_are_named_warned_before_the_last_try_and_need_a_confirmation():
    rig = TillRig()
    rig.initialize()
    for start in (1, 101, 201):
        sell_foreign_roll(rig, start)
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    assert "MAC_LAST_TRY" not in warnings(rig)
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    assert "MAC_LAST_TRY" in warnings(rig) and locks(rig) == ["NO_ROLL"]
    before = (fingerprint(rig), list(rig.cards.user.state.rolls), rig.cards.user.state.last_roll)
    rig.refused("LOAD_ROLL", "CARD_MAC_LAST_TRY")  # flags 0 (or an empty payload): nothing is sent
    status, _, _ = rig.call("LOAD_ROLL", payload=b"")
    assert status == 0x0318
    assert (fingerprint(rig), list(rig.cards.user.state.rolls), rig.cards.user.state.last_roll) == before
    rig.refused("LOAD_ROLL", "CARD_LOCKED", flags=0b1)  # CONFIRM_MAC: the cashier chose to try
    assert rig.cards.fiscal.state.locked
    assert "MAC" in locks(rig) and "MAC_LAST_TRY" not in warnings(rig)  # at once, not after a reboot
    assert events(rig).count("ROLL_REFUSED") == 3


def test_a_genuine_roll_goes_through_after_refusals_and_its_success_resets_the_cards_count():
    rig = TillRig()
    rig.initialize()
    sell_foreign_roll(rig, 1)
    sell_foreign_roll(rig, 101)
    rig.bureau_sells_roll(1, 100)
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    rig.refused("LOAD_ROLL", "CARD_MAC_LAST_TRY")
    assert rig.ok("LOAD_ROLL", flags=1).start == 1
    assert rig.cards.fiscal.state.mac_failures == 0 and "MAC_LAST_TRY" not in warnings(rig)
    assert rig.till.fiscal.mac.tries_left() == 3
    rig.rtc.set(20260105, 100000)
    assert rig.ok("ISSUE_INVOICE", **rig.invoice(100)).number == 1


def test_the_tries_the_till_counts_survive_a_reboot():
    rig = TillRig()
    rig.initialize()
    sell_foreign_roll(rig, 1)
    sell_foreign_roll(rig, 101)
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    rig.refused("LOAD_ROLL", "CARD_ROLL_REFUSED")
    rig.reboot()
    assert "MAC_LAST_TRY" in warnings(rig)
    rig.bureau_sells_roll(1, 100)
    rig.refused("LOAD_ROLL", "CARD_MAC_LAST_TRY")


# ---- no lock-out by bad data: control data ------------------------------------------------------------
def declared(rig):
    rig.rtc.set(20260201, 90000)
    rig.ok("DAILY_CLOSE")
    rig.ok("DECLARE", end=20260131)


def write_controls(rig, damaged_byte=None):
    """The bureau's control data for the declaration on the user card (kept pending there, so it can be
    written again), its MAC2 damaged in one byte unless `damaged_byte` is None; marked CLEARED."""
    s = rig.bureau_session()
    recno = next(n for n, status, _ in s.declarations())
    s.set_declaration_status(recno, 1)
    ((recno, report),) = s.verify_pending()
    record = bytearray(issuance.issue_controls(rig.keystore, report, limits=issuance.Limits(20260228, 1_000_000, 50_000_000,
                                                                               2_000_000)))
    if damaged_byte is not None:
        record[-1 - damaged_byte] ^= 0x01
    s.put_controls(bytes(record))
    s.set_declaration_status(recno, 2)  # CLEARED, as the bureau's own clear() does


def test_forged_control_data_is_refused_once_never_resent_and_the_last_try_needs_a_confirmation():
    rig = ready()
    declared(rig)
    write_controls(rig, 0)
    rig.refused("CLEAR_UNLOCK", "CARD_MAC")
    rig.refused("CLEAR_UNLOCK", "CARD_MAC")  # the same data again: the till does not send it
    assert rig.cards.fiscal.state.mac_failures == 1
    write_controls(rig, 1)
    rig.refused("CLEAR_UNLOCK", "CARD_MAC")
    assert rig.cards.fiscal.state.mac_failures == 2 and "MAC_LAST_TRY" in warnings(rig)
    write_controls(rig, 2)
    before = fingerprint(rig)
    rig.refused("CLEAR_UNLOCK", "CARD_MAC_LAST_TRY")
    assert fingerprint(rig) == before
    assert events(rig).count("CONTROLS_REFUSED") == 2
    write_controls(rig)  # the genuine data, confirmed: it goes through and the count is reset
    assert rig.ok("CLEAR_UNLOCK", flags=1).controls.deadline == 20260228
    assert rig.cards.fiscal.state.mac_failures == 0 and "MAC_LAST_TRY" not in warnings(rig)


def sw_of(slot, cla, ins, p1=0, p2=0, data=b"", le=None):
    from protocol import apdu
    raw = slot.transmit(apdu.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=bytes(data), le=le)))
    return raw[-2] << 8 | raw[-1]


# ---- the card simulator: 3 consecutive failures lock, a success resets the count -------------------------
def test_the_fiscal_card_counts_consecutive_mac_failures_and_a_genuine_roll_resets_the_count():
    from testbed.demo_cards import CardRig
    from protocol import apdu
    rig = CardRig().register()
    card = rig.cards.fiscal

    def input_roll(start, card_no):
        record = issuance.issue_roll(rig.cards.keystore, fiscal_card_no=card_no, machine_no=demo_cards.MACHINE_NO,
                              code="1440012345", start=start, end=start)
        return sw_of(rig.fiscal, 0xC0, apdu.INS_INPUT_INVOICE_NB, data=record[16:])

    assert [input_roll(1, OTHER_FISCAL_CARD), input_roll(2, OTHER_FISCAL_CARD)] == [0x9302, 0x9302]
    assert card.state.mac_failures == 2
    assert input_roll(3, demo_cards.FISCAL_CARD_NO) == 0x9000 and card.state.mac_failures == 0
    rig.issue(20260105, [(1, 1000)])  # roll 3-3 used up: the card takes the next roll
    assert [input_roll(4, OTHER_FISCAL_CARD), input_roll(5, OTHER_FISCAL_CARD)] == [0x9302, 0x9302]
    assert input_roll(6, OTHER_FISCAL_CARD) == 0x9303 and card.state.locked
    assert input_roll(7, demo_cards.FISCAL_CARD_NO) == 0x9303  # for good


def test_the_user_cards_recovery_copy_is_erased_only_with_its_exact_content():
    from testbed.demo_cards import CardRig
    from protocol import apdu
    rig = CardRig().register()
    rig.sell_roll(1, 100)
    assert sw_of(rig.user, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0, le=22) == 0x9000
    ef07 = rig.cards.user.state.last_roll
    assert ef07 != bytes(38)
    other = bytes(38)
    assert sw_of(rig.user, 0x00, apdu.INS_ERASE_BINARY, 0x87, 0, other) == 0x6985
    assert sw_of(rig.user, 0x00, apdu.INS_ERASE_BINARY, 0x85, 0, ef07) == 0x6982  # EF05: the bureau's
    assert rig.cards.user.state.last_roll == ef07
    assert sw_of(rig.user, 0x00, apdu.INS_ERASE_BINARY, 0x87, 0, ef07) == 0x9000
    assert rig.cards.user.state.last_roll == bytes(38)


def test_the_host_library_sets_confirm_mac_only_when_asked():
    from gateway.link import request_flags
    assert request_flags() == 0 and request_flags(confirm_mac=True) == 0b0000_0001
    assert commands.BY_NAME["LOAD_ROLL"].request.build(dict(flags=request_flags(confirm_mac=True))) == b"\x01"
