"""The fiscal card (税控卡): one test per command behaviour and per status word."""

import datetime

import pytest

from gateway import issuance
from gateway import verify
from gateway.keystore import KeyStore
from testbed import sequences
from testbed.demo_cards import FISCAL_CARD_NO, MACHINE_NO, CardRig
from protocol import apdu
from protocol import cardfiles
from protocol import crypto

SUMS0 = sequences.period_sums((0, 0, 0), [])


def cmd(ins, data=b"", le=None, p1=0, p2=0, cla=apdu.CLA_GB):
    return apdu.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=data, le=le))


def run(card, ins, data=b"", le=None, p1=0, p2=0, cla=apdu.CLA_GB):
    raw = card.transmit(cmd(ins, data, le, p1, p2, cla))
    return raw[:-2], raw[-2] << 8 | raw[-1]


def sw_of(card, ins, data=b"", **kw):
    return run(card, ins, data, **kw)[1]


def refused_unchanged(rig, ins, data=b"", **kw):
    """The status word of a refused command, after checking it changed no state."""
    before = rig.cards.fiscal.snapshot()
    sw = sw_of(rig.fiscal, ins, data, **kw)
    assert sw != 0x9000
    assert rig.cards.fiscal.snapshot() == before
    return sw


def invoice(date=20260105, kind=1, number=1, lines=((1, 1000),), total=None):
    lines = list(lines)
    slots = [dict(item=i, amount=a) for i, a in lines] + [dict(item=0, amount=0)] * (6 - len(lines))
    total = sum(a for _, a in lines) if total is None else total
    return apdu.IssueInvoiceData.build(dict(date=date, kind=kind, number=number, lines=slots, total=total))


def ef(rig, fid, layout):
    return layout.parse(sequences.read_binary(rig.fiscal, fid))


@pytest.fixture
def rig():
    return CardRig()


@pytest.fixture
def ready():
    """Registered, PIN verified, roll 1440012345 numbers 1-100 loaded."""
    return CardRig().register().load_roll()


# ---- registration ----------------------------------------------------------------------------------------
def test_get_register_nb_answers_random_card_no_and_mac1(rig):
    nb, sw = run(rig.fiscal, apdu.INS_GET_REGISTER_NB, le=16)
    assert sw == 0x9000 and len(nb) == 16 and nb[4:12] == FISCAL_CARD_NO
    assert nb[12:] == crypto.register_mac1(rig.cards.fiscal_data.keys.reg_fc, nb[:4], FISCAL_CARD_NO)


def test_terminal_register_checks_mac2_and_returns_the_initial_pin(rig):
    pin = sequences.initialize(rig.fiscal, rig.user)
    assert len(pin) == 8 and rig.cards.fiscal.state.registered
    assert rig.cards.fiscal.state.pin == pin


def test_terminal_register_without_get_register_nb_is_6985(rig):
    assert refused_unchanged(rig, apdu.INS_TERMINAL_REGISTER, bytes(4), le=8) == 0x6985


def test_terminal_register_with_a_wrong_mac2_is_9302_and_uses_up_the_random(rig):
    run(rig.fiscal, apdu.INS_GET_REGISTER_NB, le=16)
    assert sw_of(rig.fiscal, apdu.INS_TERMINAL_REGISTER, bytes(4), le=8) == 0x9302
    assert rig.cards.fiscal.state.mac_failures == 1 and not rig.cards.fiscal.state.registered
    assert sw_of(rig.fiscal, apdu.INS_TERMINAL_REGISTER, bytes(4), le=8) == 0x6985  # random is single use


def test_mac2_from_an_unpaired_user_card_is_refused(rig):
    nb, _ = run(rig.fiscal, apdu.INS_GET_REGISTER_NB, le=16)
    ks = rig.keystore
    stranger = issuance.issue_user_card(ks, taxpayer=issuance.Taxpayer("9144X", "1", "x", "1"), card_no="3201100000000099",
                                 tills=[(MACHINE_NO, FISCAL_CARD_NO)], valid_from=20260101, valid_to=20301231,
                                 tax_items=[issuance.tax_item(1, 300, "1", "a")])
    from hw_sim.cards import UserCard
    u = UserCard.issued(stranger)
    u.power_on()
    mac2 = sequences.send(u, apdu.CLA_GB, apdu.INS_REGISTER_SIGN, data=nb, le=4)  # it knows the fiscal card...
    assert sw_of(rig.fiscal, apdu.INS_TERMINAL_REGISTER, mac2, le=8) == 0x9302  # ...but is not its pair


def test_registration_can_be_repeated_until_the_pin_is_first_used(rig):
    first = sequences.initialize(rig.fiscal, rig.user)
    assert sequences.initialize(rig.fiscal, rig.user) == first  # a lost TERMINAL_REGISTER reply is recoverable
    sequences.verify_pin(rig.fiscal, first)
    assert sw_of(rig.fiscal, apdu.INS_GET_REGISTER_NB, le=16) == 0x6901  # a second registration: refused


@pytest.mark.parametrize("ins,data", [
    (apdu.INS_VERIFY_FISCAL_PIN, bytes(8)), (apdu.INS_ISSUE_INVOICE, invoice()),
    (apdu.INS_DAILY_COLLECT_SIGN, apdu.DailyCollectSignData.build(dict(date=20260105, sums=SUMS0))),
    (apdu.INS_DECLARE_DUTY, apdu.DeclareDutyData.build(dict(start=20260101, end=20260105, sums=SUMS0))),
    (apdu.INS_UPDATE_CONTROLS, bytes(29)), (apdu.INS_INPUT_INVOICE_NB, bytes(22)),
])
def test_fiscal_commands_before_registration_are_6901(rig, ins, data):
    assert refused_unchanged(rig, ins, data) == 0x6901


@pytest.mark.parametrize("ins,n", [
    (apdu.INS_GET_REGISTER_NB, 0), (apdu.INS_TERMINAL_REGISTER, 4), (apdu.INS_VERIFY_FISCAL_PIN, 8),
    (apdu.INS_ISSUE_INVOICE, 44), (apdu.INS_DAILY_COLLECT_SIGN, 71), (apdu.INS_DECLARE_DUTY, 75),
    (apdu.INS_UPDATE_CONTROLS, 29), (apdu.INS_INPUT_INVOICE_NB, 22),
])
def test_wrong_data_length_is_6700(ready, ins, n):
    assert refused_unchanged(ready, ins, bytes(n + 1)) == 0x6700
    if n:
        assert refused_unchanged(ready, ins, bytes(n - 1)) == 0x6700


@pytest.mark.parametrize("ins", [apdu.INS_GET_REGISTER_NB, apdu.INS_ISSUE_INVOICE, apdu.INS_VERIFY_FISCAL_PIN])
def test_nonzero_p1_p2_is_6a80(ready, ins):
    n = {apdu.INS_GET_REGISTER_NB: 0, apdu.INS_ISSUE_INVOICE: 44, apdu.INS_VERIFY_FISCAL_PIN: 8}[ins]
    assert refused_unchanged(ready, ins, bytes(n), p1=1) == 0x6A80


# ---- the fiscal PIN ------------------------------------------------------------------------------------------
def test_verify_rolls_the_pin_and_accepts_the_previous_one_once_more(rig):
    """R-PIN-ROLLS: every VERIFY_FISCAL_PIN rolls the PIN; the previous one is answered once more."""
    p0 = sequences.initialize(rig.fiscal, rig.user)
    p1 = sequences.verify_pin(rig.fiscal, p0)
    assert p1 != p0
    assert sequences.verify_pin(rig.fiscal, p0) == p1  # the reply to p0 was lost: same new PIN, no roll
    p2 = sequences.verify_pin(rig.fiscal, p1)
    assert p2 not in (p0, p1)
    assert sw_of(rig.fiscal, apdu.INS_VERIFY_FISCAL_PIN, p0, le=8) == 0x63C2  # two generations back: wrong


def test_wrong_pins_count_down_then_block(ready):
    """R-LOCK-PIN: CARD_PIN_TRIES wrong PINs block the PIN."""
    wrong = bytes(8)
    assert [sw_of(ready.fiscal, apdu.INS_VERIFY_FISCAL_PIN, wrong, le=8) for _ in range(4)] == \
        [0x63C2, 0x63C1, 0x6983, 0x6983]
    assert sw_of(ready.fiscal, apdu.INS_VERIFY_FISCAL_PIN, ready.pin, le=8) == 0x6983  # even the right one
    assert sw_of(ready.fiscal, apdu.INS_ISSUE_INVOICE, invoice(), le=8) == 0x6983
    assert sw_of(ready.fiscal, apdu.INS_INPUT_INVOICE_NB, bytes(22)) == 0x6983
    assert sw_of(ready.fiscal, apdu.INS_UPDATE_CONTROLS, bytes(29)) == 0x6983
    sequences.daily_close(ready.fiscal, 20260105, SUMS0)  # still allowed while locked


def test_a_right_pin_resets_the_try_counter(ready):
    assert sw_of(ready.fiscal, apdu.INS_VERIFY_FISCAL_PIN, bytes(8), le=8) == 0x63C2
    ready.pin = sequences.verify_pin(ready.fiscal, ready.pin)
    assert ready.cards.fiscal.state.pin_tries == 3


def test_a_wrong_pin_ends_the_verified_session(ready):
    sw_of(ready.fiscal, apdu.INS_VERIFY_FISCAL_PIN, bytes(8), le=8)
    assert sw_of(ready.fiscal, apdu.INS_ISSUE_INVOICE, invoice(), le=8) == 0x6982


def test_issuing_needs_verify_in_this_session(ready):
    ready.fiscal.power_off()
    ready.fiscal.power_on()
    assert refused_unchanged(ready, apdu.INS_ISSUE_INVOICE, invoice(), le=8) == 0x6982
    sequences.open_fiscal(ready.fiscal, ready.pin)
    ready.issue(20260105, [(1, 100)])


# ---- issuing ---------------------------------------------------------------------------------------------
def test_issue_invoice_gives_the_golden_fiscal_code():
    """docs/CRYPTO.md §6: test key 0x81, 2024-03-15, type 01, no. 1, items (1, 12345) (2, 500)."""
    ks = KeyStore([crypto.TEST_MASTER_KEYS[0x81]], test_mode=True)
    rig = CardRig(keystore=ks, valid_from=20240101, limits=issuance.Limits(20240430, 1_000_000, 50_000_000, 2_000_000))
    rig.register().load_roll()
    code = rig.issue(20240315, [(1, 12345), (2, 500)])
    assert code == bytes.fromhex("54ec234ec7240fa7")
    assert crypto.format_fiscal_code(code) == "14247616783341029287"


def test_issue_invoice_updates_today_and_the_roll(ready):
    code = ready.issue(20260105, [(1, 1000), (2, 250)])
    assert code == crypto.fiscal_code(ready.cards.fiscal_data.keys.invoice,
                                      invoice(lines=[(1, 1000), (2, 250)])[:43], FISCAL_CARD_NO, MACHINE_NO)
    ready.issue(20260105, [(1, 300)], kind=2)
    ready.issue(20260105, [], kind=3)
    t = ef(ready, cardfiles.FISCAL_EF_TODAY, cardfiles.FiscalToday)
    assert (t.date, t.normal_count, t.return_count, t.void_count) == (20260105, 1, 1, 1)
    assert (t.normal_total, t.return_total, t.last_number) == (1250, 300, 3)
    assert (t.cumulative_normal, t.cumulative_return, t.closed_date) == (1250, 300, 0)
    assert ef(ready, cardfiles.FISCAL_EF_ROLL, cardfiles.FiscalRoll).next == 4


def test_void_invoices_carry_no_amount(ready):
    assert refused_unchanged(ready, apdu.INS_ISSUE_INVOICE, invoice(kind=3, lines=[(1, 1)]), le=8) == 0x6A80
    ready.issue(20260105, [(1, 0)], kind=3)  # an item with amount 0 is allowed
    t = ef(ready, cardfiles.FISCAL_EF_TODAY, cardfiles.FiscalToday)
    assert (t.void_count, t.normal_total, t.cumulative_normal) == (1, 0, 0)


def test_a_new_day_starts_after_the_previous_day_is_signed(ready):
    ready.issue(20260105, [(1, 1000)])
    assert refused_unchanged(ready, apdu.INS_ISSUE_INVOICE, invoice(20260106, number=2), le=8) == 0x6985
    sequences.daily_close(ready.fiscal, 20260105, sequences.period_sums((1, 0, 0), [(1, 1000, 0)]))
    ready.issue(20260106, [(1, 50)])
    t = ef(ready, cardfiles.FISCAL_EF_TODAY, cardfiles.FiscalToday)
    assert (t.date, t.normal_count, t.normal_total, t.cumulative_normal, t.closed_date) == \
        (20260106, 1, 50, 1050, 20260105)


@pytest.mark.parametrize("data,expected", [
    (invoice(number=2), 0x6A80),  # not the next number
    (invoice(date=20251231), 0x6A80),  # before the card's validity
    (invoice(date=20260201), 0x6A80),  # after the deadline 2026-01-31
    (invoice(date=20260230), 0x6A80),  # not a calendar day
    (invoice(kind=4), 0x6A80),
    (invoice(lines=[(3, 100)]), 0x6A80),  # tax item 3 not authorised
    (invoice(lines=[(1, 100), (1, 100)]), 0x6A80),  # an item twice
    (invoice(lines=[(1, 100)], total=101), 0x6A80),  # total is not the sum
    (invoice(lines=[(1, 0)]), 0x6A80),  # a normal invoice of 0
    (invoice(lines=[(0, 5)]), 0x6A80),  # amount in an unused slot
    (invoice()[:-1] + bytes([invoice()[-1] ^ 1]), 0x6A80),  # check byte
    (bytes.fromhex("2026aa05") + invoice()[4:43] + b"\x00", 0x6A80),  # not BCD
    (invoice(lines=[(1, 1_000_001)]), 0x9401),  # over the single limit
])
def test_refused_invoices_change_nothing(ready, data, expected):
    assert refused_unchanged(ready, apdu.INS_ISSUE_INVOICE, data, le=8) == expected


def test_dates_never_go_back(ready):
    ready.issue(20260110, [(1, 100)])
    assert refused_unchanged(ready, apdu.INS_ISSUE_INVOICE, invoice(20260109, number=2), le=8) == 0x6A80


def test_a_closed_day_takes_no_more_invoices(ready):
    sequences.daily_close(ready.fiscal, 20260105, SUMS0)
    assert refused_unchanged(ready, apdu.INS_ISSUE_INVOICE, invoice(20260105), le=8) == 0x6A80


def test_no_roll_loaded_is_6985():
    rig = CardRig().register()
    assert refused_unchanged(rig, apdu.INS_ISSUE_INVOICE, invoice(), le=8) == 0x6985


def test_an_exhausted_roll_is_6985_and_the_next_roll_loads():
    rig = CardRig().register().load_roll(1, 2)
    rig.issue(20260105, [(1, 1)])
    rig.issue(20260105, [(1, 1)])
    assert refused_unchanged(rig, apdu.INS_ISSUE_INVOICE, invoice(number=3), le=8) == 0x6985
    rig.load_roll(3, 10)
    rig.issue(20260105, [(1, 1)])


def test_single_limit_is_inclusive(ready):
    ready.issue(20260105, [(1, 1_000_000)])


def test_cumulative_and_return_limits_are_9401():
    rig = CardRig(limits=issuance.Limits(20260131, 1000, 1500, 300)).register().load_roll()
    rig.issue(20260105, [(1, 1000)])
    rig.issue(20260105, [(1, 500)])  # exactly the cumulative limit
    assert refused_unchanged(rig, apdu.INS_ISSUE_INVOICE, invoice(number=3, lines=[(1, 1)]), le=8) == 0x9401
    rig.issue(20260105, [(1, 300)], kind=2)  # returns count against their own limit
    assert refused_unchanged(rig, apdu.INS_ISSUE_INVOICE, invoice(number=4, kind=2, lines=[(1, 1)]), le=8) == 0x9401
    rig.issue(20260105, [], kind=3)  # voids still go


# ---- daily close -----------------------------------------------------------------------------------------
def test_daily_signature_covers_the_command_data(ready):
    ready.issue(20260105, [(1, 1000), (2, 200)])
    ready.issue(20260105, [(2, 50)], kind=2)
    sums = sequences.period_sums((1, 1, 0), [(2, 200, 50), (1, 1000, 0)])  # any slot order
    sig = sequences.daily_close(ready.fiscal, 20260105, sums)
    signed = apdu.DailyCollectSignData.build(dict(date=20260105, sums=sums))[:-1]
    crypto.verify_record(ready.cards.fiscal.public_key, crypto.SigKind.DAILY, signed, sig)
    totals = dict(normal_count=1, return_count=1, void_count=0, normal_total=1200, return_total=50,
                  lines=[dict(item=2, normal=200, returned=50), dict(item=1, normal=1000, returned=0)]
                  + [dict(item=0, normal=0, returned=0)] * 4)
    assert verify.verify_daily_record(ready.cards.fiscal.public_key,
                                 dict(date=20260105, totals=totals, signature=sig)) == []
    assert ef(ready, cardfiles.FISCAL_EF_TODAY, cardfiles.FiscalToday).closed_date == 20260105


def test_daily_close_must_repeat_the_cards_own_counts(ready):
    ready.issue(20260105, [(1, 1000)])
    for wrong in (sequences.period_sums((1, 0, 0), [(1, 999, 0)]), sequences.period_sums((2, 0, 0), [(1, 1000, 0)]),
                  sequences.period_sums((1, 0, 0), [(2, 1000, 0)]), SUMS0):
        data = apdu.DailyCollectSignData.build(dict(date=20260105, sums=wrong))
        assert refused_unchanged(ready, apdu.INS_DAILY_COLLECT_SIGN, data, le=64) == 0x6A80


def test_days_without_invoices_are_signed_with_zero_sums(ready):
    """R-DAILY-EVERY-DAY: the card signs days without sales too."""
    sequences.daily_close(ready.fiscal, 20260103, SUMS0)
    sequences.daily_close(ready.fiscal, 20260104, SUMS0)
    data = apdu.DailyCollectSignData.build(dict(date=20260106, sums=sequences.period_sums((1, 0, 0), [(1, 5, 0)])))
    assert refused_unchanged(ready, apdu.INS_DAILY_COLLECT_SIGN, data, le=64) == 0x6A80


def test_the_same_close_again_gives_the_same_signature(ready):
    a = sequences.daily_close(ready.fiscal, 20260105, SUMS0)
    assert sequences.daily_close(ready.fiscal, 20260105, SUMS0) == a  # a lost reply
    other = apdu.DailyCollectSignData.build(dict(date=20260104, sums=SUMS0))
    assert refused_unchanged(ready, apdu.INS_DAILY_COLLECT_SIGN, other, le=64) == 0x6A80  # before the last close


def test_a_later_day_cannot_be_closed_over_an_unsigned_day_with_invoices(ready):
    ready.issue(20260105, [(1, 1000)])
    data = apdu.DailyCollectSignData.build(dict(date=20260106, sums=SUMS0))
    assert refused_unchanged(ready, apdu.INS_DAILY_COLLECT_SIGN, data, le=64) == 0x6985


def test_daily_close_needs_no_pin_session(ready):
    ready.fiscal.power_off()
    ready.fiscal.power_on()
    sequences.daily_close(ready.fiscal, 20260105, SUMS0)


def test_daily_close_before_validity_is_6a80(ready):
    data = apdu.DailyCollectSignData.build(dict(date=20251231, sums=SUMS0))
    assert refused_unchanged(ready, apdu.INS_DAILY_COLLECT_SIGN, data, le=64) == 0x6A80


# ---- declaration -------------------------------------------------------------------------------------------
@pytest.fixture
def closed(ready):
    """Two days with invoices, both closed: 5 Jan (1000 + 200 on items 1, 2; a return of 50) and 7 Jan."""
    ready.issue(20260105, [(1, 1000), (2, 200)])
    ready.issue(20260105, [(2, 50)], kind=2)
    sequences.daily_close(ready.fiscal, 20260105, sequences.period_sums((1, 1, 0), [(1, 1000, 0), (2, 200, 50)]))
    sequences.daily_close(ready.fiscal, 20260106, SUMS0)
    ready.issue(20260107, [(1, 700)])
    sequences.daily_close(ready.fiscal, 20260107, sequences.period_sums((1, 0, 0), [(1, 700, 0)]))
    return ready


PERIOD = sequences.period_sums((2, 1, 0), [(1, 1700, 0), (2, 200, 50)])


def test_declare_duty_answers_totals_mac1_and_signature(closed):
    data = apdu.DeclareDutyData.build(dict(start=20260101, end=20260107, sums=PERIOD))
    raw, sw = run(closed.fiscal, apdu.INS_DECLARE_DUTY, data)
    assert sw == 0x9000
    resp = apdu.DeclareDutyResponse.parse(raw)
    assert (resp.normal_total, resp.return_total, resp.status) == (1900, 50, 0)
    payload = data[:-1] + raw[:9]
    keys = closed.cards.fiscal_data.keys
    crypto.verify_declaration_mac(keys.decl_mac, payload, FISCAL_CARD_NO, MACHINE_NO, resp.mac1)
    crypto.verify_record(keys.public_key, crypto.SigKind.DECLARATION, payload, resp.signature)
    d = ef(closed, cardfiles.FISCAL_EF_DECLARATION, cardfiles.FiscalDeclaration)
    assert (d.status, d.start, d.end, d.mac, d.signature) == (cardfiles.DECL_SIGNED, 20260101, 20260107, resp.mac1,
                                                              resp.signature)
    assert (d.totals.normal_total, d.totals.return_total, d.totals.normal_count) == (1900, 50, 2)


def test_declaration_sums_must_be_the_cards_own(closed):
    wrong = sequences.period_sums((2, 1, 0), [(1, 1700, 0), (2, 201, 50)])
    data = apdu.DeclareDutyData.build(dict(start=20260101, end=20260107, sums=wrong))
    assert refused_unchanged(closed, apdu.INS_DECLARE_DUTY, data) == 0x6A80


def test_a_period_covers_only_closed_days_and_skips_none(closed):
    later = apdu.DeclareDutyData.build(dict(start=20260101, end=20260108, sums=PERIOD))
    assert refused_unchanged(closed, apdu.INS_DECLARE_DUTY, later) == 0x6A80  # 8 Jan is not closed
    skip = apdu.DeclareDutyData.build(dict(start=20260106, end=20260107, sums=sequences.period_sums((1, 0, 0), [(1, 700, 0)])))
    assert refused_unchanged(closed, apdu.INS_DECLARE_DUTY, skip) == 0x6A80  # 5 Jan would be skipped
    back = apdu.DeclareDutyData.build(dict(start=20260107, end=20260105, sums=SUMS0))
    assert refused_unchanged(closed, apdu.INS_DECLARE_DUTY, back) == 0x6A80


def test_a_declaration_can_cover_part_of_the_closed_days(closed):
    first = sequences.period_sums((1, 1, 0), [(1, 1000, 0), (2, 200, 50)])
    sequences.declare(closed.fiscal, closed.user, 20260101, 20260105, first)
    assert [d[0] for d in closed.cards.fiscal.state.undeclared] == [20260107]


def test_one_pending_declaration_at_a_time(closed):
    sequences.declare(closed.fiscal, closed.user, 20260101, 20260107, PERIOD)
    again = apdu.DeclareDutyData.build(dict(start=20260108, end=20260108, sums=SUMS0))
    assert refused_unchanged(closed, apdu.INS_DECLARE_DUTY, again) == 0x6985


# ---- clear-unlock ---------------------------------------------------------------------------------------------
def declared_and_cleared(rig, limits=issuance.Limits(20260228, 2_000_000, 60_000_000, 3_000_000), seq=None):
    """Declare 1-7 Jan, let the bureau accept it; returns the UPDATE_CONTROLS data for the fiscal card."""
    sequences.declare(rig.fiscal, rig.user, 20260101, 20260107, PERIOD)
    session = rig.bureau()
    (recno, report), = session.verify_pending()
    record = session.clear(recno, report, limits, seq)
    rig.user.power_on()
    c = cardfiles.UserControls.parse(record)
    return bytes([c.key_id]) + c.ciphertext + c.mac2


def test_update_controls_applies_the_new_controls(closed):
    data = declared_and_cleared(closed)
    assert sw_of(closed.fiscal, apdu.INS_UPDATE_CONTROLS, data) == 0x9000
    ctl = ef(closed, cardfiles.FISCAL_EF_CONTROLS, cardfiles.FiscalControls)
    assert (ctl.controls.deadline, ctl.controls.single_limit, ctl.period_end, ctl.sequence) == \
        (20260228, 2_000_000, 20260107, 2026010700)
    t = ef(closed, cardfiles.FISCAL_EF_TODAY, cardfiles.FiscalToday)
    assert (t.cumulative_normal, t.cumulative_return) == (0, 0)
    assert ef(closed, cardfiles.FISCAL_EF_DECLARATION, cardfiles.FiscalDeclaration).status == cardfiles.DECL_CLEARED


def test_update_controls_needs_the_pin_session(closed):
    data = declared_and_cleared(closed)
    closed.fiscal.power_off()
    closed.fiscal.power_on()
    assert refused_unchanged(closed, apdu.INS_UPDATE_CONTROLS, data) == 0x6982


def test_control_data_is_used_once(closed):
    data = declared_and_cleared(closed)
    sequences.send(closed.fiscal, apdu.CLA_GB, apdu.INS_UPDATE_CONTROLS, data=data)
    assert refused_unchanged(closed, apdu.INS_UPDATE_CONTROLS, data) == 0x6985


def test_an_earlier_periods_control_data_is_a_replay(closed):
    """R-CLEAR-UNLOCK: control data of an earlier period is a replay."""
    old = declared_and_cleared(closed)
    sequences.send(closed.fiscal, apdu.CLA_GB, apdu.INS_UPDATE_CONTROLS, data=old)
    closed.issue(20260108, [(1, 10)])
    sequences.daily_close(closed.fiscal, 20260108, sequences.period_sums((1, 0, 0), [(1, 10, 0)]))
    sequences.declare(closed.fiscal, closed.user, 20260108, 20260108, sequences.period_sums((1, 0, 0), [(1, 10, 0)]))
    assert refused_unchanged(closed, apdu.INS_UPDATE_CONTROLS, old) == 0x6985  # replayed for a later period


def test_control_data_for_another_period_end_is_refused(closed):
    sequences.declare(closed.fiscal, closed.user, 20260101, 20260107, PERIOD)
    keys = closed.cards.fiscal_data.keys
    other = crypto.ControlData(datetime.date(2026, 2, 28), 1, 2, 3, datetime.date(2026, 1, 6), 2026010700)
    assert refused_unchanged(closed, apdu.INS_UPDATE_CONTROLS, crypto.seal_controls(keys, MACHINE_NO, other)) == 0x6985


def test_control_data_without_a_pending_declaration_is_refused(ready):
    keys = ready.cards.fiscal_data.keys
    ctl = crypto.ControlData(datetime.date(2026, 2, 28), 1, 2, 3, datetime.date(2026, 1, 6), 5)
    assert refused_unchanged(ready, apdu.INS_UPDATE_CONTROLS, crypto.seal_controls(keys, MACHINE_NO, ctl)) == 0x6985


def test_control_data_for_another_card_is_a_mac_error():
    rig = CardRig().register().load_roll()
    other = crypto.derive_fiscal_card_keys(rig.keystore.master(), bytes.fromhex("3201000000000002"))
    ctl = crypto.ControlData(datetime.date(2026, 2, 28), 1, 2, 3, datetime.date(2026, 1, 6), 5)
    assert sw_of(rig.fiscal, apdu.INS_UPDATE_CONTROLS, crypto.seal_controls(other, MACHINE_NO, ctl)) == 0x9302
    assert rig.cards.fiscal.state.mac_failures == 1


def test_control_data_of_another_key_generation_is_9302_and_not_counted(ready):
    keys = crypto.derive_fiscal_card_keys(crypto.TEST_MASTER_KEYS[0x81], FISCAL_CARD_NO)
    ctl = crypto.ControlData(datetime.date(2026, 2, 28), 1, 2, 3, datetime.date(2026, 1, 6), 5)
    assert refused_unchanged(ready, apdu.INS_UPDATE_CONTROLS, crypto.seal_controls(keys, MACHINE_NO, ctl)) == 0x9302


def test_three_mac_failures_lock_the_card_for_good(closed):
    """R-LOCK-MAC: CARD_MAC_TRIES MAC failures lock the card for good."""
    data = bytearray(declared_and_cleared(closed))
    data[-1] ^= 1
    assert [sw_of(closed.fiscal, apdu.INS_UPDATE_CONTROLS, bytes(data)) for _ in range(3)] == [0x9302, 0x9302, 0x9303]
    assert closed.cards.fiscal.state.locked
    data[-1] ^= 1
    assert sw_of(closed.fiscal, apdu.INS_UPDATE_CONTROLS, bytes(data)) == 0x9303  # even the right data
    assert sw_of(closed.fiscal, apdu.INS_ISSUE_INVOICE, invoice(number=4), le=8) == 0x9303
    assert cardfiles.FiscalToday.parse(sequences.read_binary(closed.fiscal, cardfiles.FISCAL_EF_TODAY)).closed_date == 20260107


def test_a_good_mac_resets_the_failure_count(closed):
    data = bytearray(declared_and_cleared(closed))
    data[-1] ^= 1
    sw_of(closed.fiscal, apdu.INS_UPDATE_CONTROLS, bytes(data))
    data[-1] ^= 1
    sequences.send(closed.fiscal, apdu.CLA_GB, apdu.INS_UPDATE_CONTROLS, data=bytes(data))
    assert closed.cards.fiscal.state.mac_failures == 0


# ---- rolls ----------------------------------------------------------------------------------------------------
def roll_for(rig, start, end, card_no=FISCAL_CARD_NO, machine=MACHINE_NO, code="1440012345"):
    rec = issuance.issue_roll(rig.keystore, fiscal_card_no=card_no, machine_no=machine, code=code, start=start, end=end)
    return rec[16:]


def test_input_invoice_nb_loads_a_roll():
    rig = CardRig().register()
    assert sw_of(rig.fiscal, apdu.INS_INPUT_INVOICE_NB, roll_for(rig, 101, 200)) == 0x9000
    r = ef(rig, cardfiles.FISCAL_EF_ROLL, cardfiles.FiscalRoll)
    assert (r.code, r.start, r.end, r.next) == ("1440012345", 101, 200, 101)


def test_one_roll_at_a_time(ready):
    assert refused_unchanged(ready, apdu.INS_INPUT_INVOICE_NB, roll_for(ready, 101, 200)) == 0x6985


def test_a_roll_for_another_till_is_a_mac_error():
    rig = CardRig().register()
    assert sw_of(rig.fiscal, apdu.INS_INPUT_INVOICE_NB, roll_for(rig, 1, 10, machine="1234567890123457")) == 0x9302


def test_a_roll_loaded_before_cannot_be_loaded_again():
    rig = CardRig().register().load_roll(1, 1)
    rig.issue(20260105, [(1, 1)])
    assert refused_unchanged(rig, apdu.INS_INPUT_INVOICE_NB, roll_for(rig, 1, 1)) == 0x6985
    assert refused_unchanged(rig, apdu.INS_INPUT_INVOICE_NB, roll_for(rig, 1, 5)) == 0x6985  # overlapping


@pytest.mark.parametrize("code,start,end", [("14400123a5", 1, 2), ("1440012345", 5, 4), ("1440012345", 0, 4)])
def test_malformed_rolls_are_6a80(code, start, end):
    rig = CardRig().register()
    raw = apdu.RollData.build(dict(code=code, start=start, end=end, mac=bytes(4)))
    assert refused_unchanged(rig, apdu.INS_INPUT_INVOICE_NB, raw) == 0x6A80


def test_input_invoice_nb_needs_the_pin_session():
    rig = CardRig().register()
    rig.fiscal.power_on()
    assert refused_unchanged(rig, apdu.INS_INPUT_INVOICE_NB, roll_for(rig, 1, 10)) == 0x6982
