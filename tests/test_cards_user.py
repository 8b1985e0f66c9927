"""The user card (用户卡): registration signing, declarations, rolls and the bureau's writes."""

import pytest

from protocol import cardauth
from gateway import issuance
from gateway.keystore import KeyStore
from hw_sim.cards import UserCard
from testbed import sequences
from testbed.demo_cards import FISCAL_CARD_NO, MACHINE_NO, TAX_ITEMS, TAXPAYER, USER_CARD_NO, CardRig, demo_cards
from protocol import apdu
from protocol import cardfiles
from protocol import crypto

OTHER_MACHINE, OTHER_CARD = "1234567890123457", bytes.fromhex("3201000000000002")


def run(card, cla, ins, p1=0, p2=0, data=b"", le=None):
    raw = card.transmit(apdu.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=data, le=le)))
    return raw[:-2], raw[-2] << 8 | raw[-1]


def refused_unchanged(card, *args, **kw):
    before = card.snapshot()
    _, sw = run(card, *args, **kw)
    assert sw != 0x9000 and card.snapshot() == before
    return sw


@pytest.fixture
def user():
    c = demo_cards()
    c.user.power_on()
    return c


def authenticate(card, key=None):
    challenge, sw = run(card, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    key = key or cardauth.user_admin_key(KeyStore.for_tests().master(), USER_CARD_NO)
    return run(card, 0x00, apdu.INS_EXTERNAL_AUTHENTICATE, 0, apdu.KEYREF_BUREAU,
               cardauth.bureau_cryptogram(key, challenge, USER_CARD_NO))[1]


def two_till_card():
    ks = KeyStore.for_tests()
    ud = issuance.issue_user_card(ks, taxpayer=TAXPAYER, card_no=USER_CARD_NO,
                           tills=[(MACHINE_NO, FISCAL_CARD_NO), (OTHER_MACHINE, OTHER_CARD)],
                           valid_from=20260101, valid_to=20301231, tax_items=TAX_ITEMS)
    card = UserCard.issued(ud)
    card.power_on()
    return ks, card


# ---- files -------------------------------------------------------------------------------------------------
def test_identity_names_the_card_and_taxpayer(user):
    ident = cardfiles.UserIdentity.parse(sequences.read_binary(user.user, cardfiles.USER_EF_IDENTITY))
    assert (ident.card_no, ident.machine_no, ident.taxpayer_no) == (USER_CARD_NO, "", TAXPAYER.taxpayer_no)


def test_tills_served_are_listed_in_ef06():
    _, card = two_till_card()
    assert [cardfiles.UserTill.parse(r).machine_no for r in sequences.read_records(card, cardfiles.USER_EF_TILLS)] == \
        [MACHINE_NO, OTHER_MACHINE]
    assert sequences.find_till(card, OTHER_MACHINE, OTHER_CARD) == 2


# ---- REGISTER_SIGN -----------------------------------------------------------------------------------------
def test_register_sign_answers_mac2_for_a_genuine_fiscal_card(user):
    keys = user.fiscal_data.keys
    random = bytes.fromhex("a1b2c3d4")
    nb = random + FISCAL_CARD_NO + crypto.register_mac1(keys.reg_fc, random, FISCAL_CARD_NO)
    mac2, sw = run(user.user, 0xC0, apdu.INS_REGISTER_SIGN, data=nb, le=4)
    assert sw == 0x9000 and mac2 == crypto.register_mac2(keys.reg_uc, random, FISCAL_CARD_NO, nb[12:])


def test_register_sign_for_a_fiscal_card_it_does_not_serve_is_6a80(user):
    assert refused_unchanged(user.user, 0xC0, apdu.INS_REGISTER_SIGN, data=bytes(4) + OTHER_CARD + bytes(4)) == 0x6A80


def test_register_sign_with_a_wrong_mac1_counts_and_locks(user):
    nb = bytes(4) + FISCAL_CARD_NO + bytes(4)
    assert [run(user.user, 0xC0, apdu.INS_REGISTER_SIGN, data=nb)[1] for _ in range(4)] == \
        [0x9302, 0x9302, 0x9303, 0x9303]
    assert user.user.state.locked


# ---- DATA_COLLECT ---------------------------------------------------------------------------------------------
def declaration_record(card_no=FISCAL_CARD_NO, start=20260101):
    sums = sequences.period_sums((0, 0, 0), [])
    decl = apdu.DeclareDutyData.build(dict(start=start, end=20260131, sums=sums))
    resp = apdu.DeclareDutyResponse.build(dict(normal_total=0, return_total=0, status=0, mac1=bytes(4),
                                            signature=bytes(64)))
    return card_no + decl + resp


def test_data_collect_stores_a_pending_declaration(user):
    rec = declaration_record()
    assert run(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=rec)[1] == 0x9000
    (stored,) = sequences.read_records(user.user, cardfiles.USER_EF_DECLARATIONS)
    assert stored == bytes([cardfiles.DECL_SIGNED]) + rec


def test_data_collect_twice_stores_once(user):
    rec = declaration_record()
    run(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=rec)
    assert run(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=rec)[1] == 0x9000
    assert len(sequences.read_records(user.user, cardfiles.USER_EF_DECLARATIONS)) == 1


def test_data_collect_for_another_fiscal_card_or_with_a_bad_check_byte_is_6a80(user):
    assert refused_unchanged(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=declaration_record(OTHER_CARD)) == 0x6A80
    bad = bytearray(declaration_record())
    bad[20] ^= 1
    assert refused_unchanged(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=bytes(bad)) == 0x6A80
    assert refused_unchanged(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=bytes(bad[:-1])) == 0x6700


def test_a_full_declaration_file_reuses_cleared_records_only(user):
    for month in range(1, 9):
        run(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=declaration_record(start=20260100 + month))
    ninth = declaration_record(start=20260109)
    assert refused_unchanged(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=ninth) == 0x6985
    assert authenticate(user.user) == 0x9000
    rec3 = sequences.read_records(user.user, cardfiles.USER_EF_DECLARATIONS)[2]
    sequences.send(user.user, 0x00, apdu.INS_UPDATE_RECORD, 3, 0x24, bytes([cardfiles.DECL_CLEARED]) + rec3[1:])
    assert run(user.user, 0xC0, apdu.INS_DATA_COLLECT, data=ninth)[1] == 0x9000
    assert sequences.read_records(user.user, cardfiles.USER_EF_DECLARATIONS)[2][1:] == ninth


# ---- DISTRIBUTE_INVOICE_NB ---------------------------------------------------------------------------------------
def test_distribute_pops_the_first_roll_of_this_till_and_keeps_a_copy():
    rig = CardRig()
    first = rig.sell_roll(1, 100)
    rig.sell_roll(101, 200)
    rig.user.power_on()
    roll, sw = run(rig.user, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0, le=22)
    assert sw == 0x9000 and roll == first[16:]
    assert sequences.read_binary(rig.user, cardfiles.USER_EF_LAST_ROLL) == first
    assert len(sequences.read_records(rig.user, cardfiles.USER_EF_ROLLS)) == 1


def test_distribute_with_no_roll_left_is_9401():
    rig = CardRig()
    assert refused_unchanged(rig.cards.user, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0, le=22) == 0x9401


def test_distribute_gives_each_till_its_own_rolls():
    ks, card = two_till_card()
    assert authenticate(card, cardauth.user_admin_key(ks.master(), USER_CARD_NO)) == 0x9000
    for machine, fiscal, start in ((OTHER_MACHINE, OTHER_CARD, 1), (MACHINE_NO, FISCAL_CARD_NO, 500)):
        rec = issuance.issue_roll(ks, fiscal_card_no=fiscal, machine_no=machine, code="1440012345", start=start,
                           end=start + 9)
        n = len(sequences.read_records(card, cardfiles.USER_EF_ROLLS)) + 1
        sequences.send(card, 0x00, apdu.INS_UPDATE_RECORD, n, 0x2C, rec)
    roll = apdu.RollData.parse(sequences.send(card, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0, le=22))
    assert roll.start == 500  # till 1 skips till 2's roll
    assert refused_unchanged(card, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, 1, 0) == 0x9401
    assert apdu.RollData.parse(sequences.send(card, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, 2, 0)).start == 1


@pytest.mark.parametrize("p1,p2", [(0, 0), (2, 0), (1, 1)])
def test_distribute_for_a_till_not_served_is_6a80(user, p1, p2):
    assert refused_unchanged(user.user, 0xC0, apdu.INS_DISTRIBUTE_INVOICE_NB, p1, p2) == 0x6A80


# ---- the bureau's writes ----------------------------------------------------------------------------------------
def test_writes_need_the_bureau(user):
    rec = issuance.issue_roll(KeyStore.for_tests(), fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO,
                       code="1440012345", start=1, end=2)
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_RECORD, 1, 0x2C, rec) == 0x6982
    assert authenticate(user.user) == 0x9000
    assert run(user.user, 0x00, apdu.INS_UPDATE_RECORD, 1, 0x2C, rec)[1] == 0x9000


def test_a_wrong_cryptogram_is_9302_and_counts(user):
    assert authenticate(user.user, key=bytes(16)) == 0x9302
    assert user.user.state.mac_failures == 1 and not user.user.session.bureau


def test_external_authenticate_needs_a_fresh_challenge(user):
    assert refused_unchanged(user.user, 0x00, apdu.INS_EXTERNAL_AUTHENTICATE, 0, apdu.KEYREF_BUREAU, bytes(8)) == 0x6985
    assert refused_unchanged(user.user, 0x00, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 0x05, bytes(8)) == 0x6A80


def test_files_written_only_at_issuance_stay_read_only(user):
    assert authenticate(user.user) == 0x9000
    till = sequences.read_records(user.user, cardfiles.USER_EF_TILLS)[0]
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_RECORD, 1, 0x34, till) == 0x6982  # EF06
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_BINARY, 0x87, 0, b"1") == 0x6982  # EF07
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_BINARY, 0x82, 0, b"1") == 0x6982  # EF02


def test_record_writes_check_length_content_and_position(user):
    assert authenticate(user.user) == 0x9000
    ks = KeyStore.for_tests()
    rec = issuance.issue_roll(ks, fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO, code="1440012345", start=1, end=2)
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_RECORD, 1, 0x2C, rec[:-1]) == 0x6700
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_RECORD, 2, 0x2C, rec) == 0x6A82  # a gap
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_RECORD, 1, 0x2C, b"\xff" * len(rec)) == 0x6A80
    for n in range(1, 17):
        assert run(user.user, 0x00, apdu.INS_UPDATE_RECORD, n, 0x2C, rec)[1] == 0x9000
    assert refused_unchanged(user.user, 0x00, apdu.INS_UPDATE_RECORD, 17, 0x2C, rec) == 0x6985  # full


def test_the_bureau_updates_tax_items_with_update_binary(user):
    assert authenticate(user.user) == 0x9000
    new = cardfiles.UserTaxItems.build(dict(tax_items=issuance._tax_items([issuance.tax_item(7, 600, "30101", "咨询服务")])))
    assert run(user.user, 0x00, apdu.INS_UPDATE_BINARY, 0x83, 0, new)[1] == 0x9000
    assert cardfiles.UserTaxItems.parse(sequences.read_binary(user.user, cardfiles.USER_EF_TAX_ITEMS)).tax_items[0].index == 7
