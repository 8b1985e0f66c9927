"""The whole lifecycle across bureau, cards and till-side sequences, including power-fail recoveries."""

import pytest

from gateway import issuance
from gateway import verify
from gateway.bureau_errors import DeclarationRejected
from gateway.keystore import KeyStore
from gateway.readers import SimReader
from gateway.usercard import UserCardSession
from hw_sim.cards import CardAbsentError, CardSlot, FiscalCard, UserCard
from testbed import sequences
from testbed.demo_cards import INSPECTOR_PIN, MACHINE_NO, TAX_ITEMS, TAXPAYER, CardRig, seeded_rng
from protocol import apdu
from protocol import cardfiles

NEXT = issuance.Limits(20260228, 1_000_000, 50_000_000, 2_000_000)


def test_initialization_roll_issue_close_declare_clear_inspect():
    rig = CardRig()
    # initialization: the till checks its fiscal card and finds itself on the user card
    ident = cardfiles.FiscalIdentity.parse(sequences.read_binary(rig.fiscal, cardfiles.FISCAL_EF_IDENTITY))
    assert ident.machine_no == MACHINE_NO
    till = sequences.find_till(rig.user, MACHINE_NO, ident.card_no)
    pin = sequences.verify_pin(rig.fiscal, sequences.initialize(rig.fiscal, rig.user))
    # roll loading
    rig.sell_roll(1, 100)
    rig.user.power_on()
    roll = apdu.RollData.parse(sequences.load_roll(rig.fiscal, rig.user, till))
    assert (roll.start, roll.end) == (1, 100)
    # issuing
    sequences.issue(rig.fiscal, 20260105, 1, 1, [(1, 800), (2, 200)], 1000)
    sequences.issue(rig.fiscal, 20260105, 2, 2, [(1, 100)], 100)
    # daily close for the day and one day without sales
    sums = sequences.period_sums((1, 1, 0), [(1, 800, 100), (2, 200, 0)])
    sequences.daily_close(rig.fiscal, 20260105, sums)
    sequences.daily_close(rig.fiscal, 20260106, sequences.period_sums((0, 0, 0), []))
    # declaration, then a clear-unlock attempt before the bureau saw it
    sequences.declare(rig.fiscal, rig.user, 20260101, 20260106, sums)
    with pytest.raises(sequences.CardRefused) as e:
        sequences.clear_unlock(rig.fiscal, rig.user, MACHINE_NO)
    assert e.value.sw == 0x6A82  # no control data for this till yet: finish at the bureau
    # the bureau
    session = UserCardSession(SimReader(rig.user), rig.keystore)
    assert session.open()["card_no"] == rig.cards.user_data.card_no
    (recno, report), = session.verify_pending()
    assert report.ok and report.income == 900
    session.authenticate()
    session.clear(recno, report, NEXT)
    assert session.declarations()[0][1] == cardfiles.DECL_CLEARED
    rig.user.power_on()
    # clear-unlock at the till
    ctl = sequences.clear_unlock(rig.fiscal, rig.user, MACHINE_NO)
    assert (ctl.controls.deadline, ctl.period_end) == (20260228, 20260106)
    with pytest.raises(sequences.CardRefused) as e:
        sequences.clear_unlock(rig.fiscal, rig.user, MACHINE_NO)
    assert e.value.sw == 0x6985  # used once
    # issuing again after the old deadline
    sequences.issue(rig.fiscal, 20260205, 1, 3, [(1, 5)], 5)
    # inspection and clock change by an inspector
    cert = sequences.authenticate_inspector(rig.fiscal, rig.management, issuance.pin_block(INSPECTOR_PIN))
    assert cert.rights == apdu.RIGHT_INSPECT | apdu.RIGHT_CLOCK
    assert pin


def test_a_declaration_that_fails_verification_gets_no_control_data():
    rig = CardRig().register()
    sequences.daily_close(rig.fiscal, 20260105, sequences.period_sums((0, 0, 0), []))
    data, resp = sequences.declare(rig.fiscal, rig.user, 20260101, 20260105, sequences.period_sums((0, 0, 0), []))
    session = rig.bureau()
    (recno, report), = session.verify_pending()
    report.problems.append("declared income below the recorded totals")  # the bureau's own finding
    with pytest.raises(DeclarationRejected):
        session.clear(recno, report, NEXT)
    assert session.declarations()[0][1] == cardfiles.DECL_SIGNED
    assert sequences.read_records(rig.user, cardfiles.USER_EF_CONTROLS) == []


def test_a_lost_declare_reply_is_rebuilt_from_ef04():
    rig = CardRig().register()
    sequences.daily_close(rig.fiscal, 20260105, sequences.period_sums((0, 0, 0), []))
    sums = sequences.period_sums((0, 0, 0), [])
    rig.fiscal.pull_after(0, executed=True)
    with pytest.raises(CardAbsentError):
        sequences.send(rig.fiscal, apdu.CLA_GB, apdu.INS_DECLARE_DUTY,
               data=apdu.DeclareDutyData.build(dict(start=20260101, end=20260105, sums=sums)))
    rig.fiscal.insert(rig.cards.fiscal)
    rig.fiscal.power_on()
    d = cardfiles.FiscalDeclaration.parse(sequences.read_binary(rig.fiscal, cardfiles.FISCAL_EF_DECLARATION))
    assert d.status == cardfiles.DECL_SIGNED
    resp = apdu.DeclareDutyResponse.build(dict(normal_total=d.totals.normal_total, return_total=d.totals.return_total,
                                            status=0, mac1=d.mac, signature=d.signature))
    data = apdu.DeclareDutyData.build(dict(start=d.start, end=d.end, sums=sums))
    sequences.send(rig.user, apdu.CLA_GB, apdu.INS_DATA_COLLECT, data=rig.cards.fiscal_data.card_no + data + resp)
    (_, report), = rig.bureau().verify_pending()
    assert report.ok


def test_a_roll_lost_between_distribute_and_input_is_recovered_from_ef07():
    rig = CardRig().register()
    rig.sell_roll(1, 50)
    rig.user.power_on()
    sequences.select(rig.user, apdu.DF_USER)
    sequences.send(rig.user, apdu.CLA_GB, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0)  # ...and the till lost power here
    rig.fiscal.power_on()
    sequences.verify_pin(rig.fiscal, rig.pin)
    roll = apdu.RollData.parse(sequences.recover_roll(rig.fiscal, rig.user, MACHINE_NO))
    assert (roll.start, roll.end) == (1, 50)
    assert sequences.recover_roll(rig.fiscal, rig.user, MACHINE_NO) is None  # already loaded: nothing to do


def test_one_user_card_serves_two_tills():
    ks = KeyStore.for_tests()
    machines = ["1234567890123456", "1234567890123457"]
    fiscal_nos = [bytes.fromhex("3201000000000001"), bytes.fromhex("3201000000000002")]
    user_no = bytes.fromhex("3201100000000001")
    common = dict(taxpayer=TAXPAYER, valid_from=20260101, valid_to=20301231, tax_items=TAX_ITEMS)
    ud = issuance.issue_user_card(ks, card_no=user_no, tills=list(zip(machines, fiscal_nos)), **common)
    user = CardSlot(UserCard.issued(ud, rng=seeded_rng(5)))
    fiscal = [CardSlot(FiscalCard.issued(issuance.issue_fiscal_card(ks, machine_no=m, card_no=f, user_card_no=user_no,
                                                             limits=NEXT, **common), rng=seeded_rng(i)))
              for i, (m, f) in enumerate(zip(machines, fiscal_nos))]
    session = UserCardSession(SimReader(user), ks)
    session.open()
    session.authenticate()
    for m, f, start in zip(machines, fiscal_nos, (1, 1001)):
        session.add_roll(issuance.issue_roll(ks, fiscal_card_no=f, machine_no=m, code="1440012345", start=start,
                                      end=start + 99))
    user.power_on()
    for n, (slot, m, f) in enumerate(zip(fiscal, machines, fiscal_nos), 1):
        slot.power_on()
        pin = sequences.verify_pin(slot, sequences.initialize(slot, user))
        assert pin and sequences.find_till(user, m, f) == n
        roll = apdu.RollData.parse(sequences.load_roll(slot, user, n))
        assert roll.start == (1, 1001)[n - 1]


def test_the_bureau_reads_a_user_card_and_checks_against_daily_records():
    rig = CardRig().register().load_roll()
    rig.issue(20260105, [(1, 1000)])
    sig = sequences.daily_close(rig.fiscal, 20260105, sequences.period_sums((1, 0, 0), [(1, 1000, 0)]))
    sequences.declare(rig.fiscal, rig.user, 20260105, 20260105, sequences.period_sums((1, 0, 0), [(1, 1000, 0)]))
    (_, report), = rig.bureau().verify_pending()
    day = dict(date=20260105, signature=sig, totals=dict(
        normal_count=1, return_count=0, void_count=0, normal_total=1000, return_total=0,
        lines=[dict(item=1, normal=1000, returned=0)] + [dict(item=0, normal=0, returned=0)] * 5))
    assert verify.check_period(report, [day], rig.cards.fiscal.public_key) == []
