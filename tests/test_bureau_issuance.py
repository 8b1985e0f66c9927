"""Card issuance, rolls and clear-unlock control data at the bureau."""

import dataclasses
import datetime

import pytest

from protocol import cardauth
from gateway import issuance
from gateway.bureau_errors import DeclarationRejected, IssuanceError
from gateway.keystore import KeyStore
from gateway.verify import DeclarationReport
from testbed.demo_cards import FISCAL_CARD_NO, LIMITS, MACHINE_NO, TAX_ITEMS, TAXPAYER, USER_CARD_NO
from protocol import apdu
from protocol import cardfiles
from protocol import crypto

KS = KeyStore.for_tests()
BASE = dict(taxpayer=TAXPAYER, machine_no=MACHINE_NO, fiscal_card_no=FISCAL_CARD_NO, user_card_no=USER_CARD_NO,
            valid_from=20260101, valid_to=20301231, limits=LIMITS, tax_items=TAX_ITEMS)


def test_issue_cards_personalises_a_matching_pair():
    fd, ud = issuance.issue_cards(KS, **BASE)
    assert fd.identity["machine_no"] == MACHINE_NO and fd.card_no == FISCAL_CARD_NO
    expected = crypto.derive_fiscal_card_keys(KS.master(), FISCAL_CARD_NO, USER_CARD_NO)
    assert (fd.keys.invoice, fd.keys.reg_uc, fd.public_key) == (expected.invoice, expected.reg_uc, expected.public_key)
    assert fd.controls == dict(deadline=20260131, single_limit=1_000_000, cumulative_limit=50_000_000,
                               return_limit=2_000_000)
    assert [t["index"] for t in fd.tax_items] == [1, 2, 0, 0, 0, 0]
    assert fd.inspection_ca == cardauth.inspection_ca_public(KS.master())
    (till,) = ud.tills
    assert (till.machine_no, till.fiscal_card_no, till.reg_uc) == (MACHINE_NO, FISCAL_CARD_NO, fd.keys.reg_uc)
    assert ud.identity["machine_no"] == "" and ud.admin_key == cardauth.user_admin_key(KS.master(), USER_CARD_NO)
    cardfiles.FiscalIdentity.build(fd.identity)  # fits the EF02 layout
    assert fd.keys.invoice.hex() not in repr(fd) and ud.admin_key.hex() not in repr(ud)


def test_card_numbers_may_be_given_as_hex():
    fd, _ = issuance.issue_cards(KS, **dict(BASE, fiscal_card_no="3201000000000001"))
    assert fd.card_no == FISCAL_CARD_NO


@pytest.mark.parametrize("change,message", [
    (dict(machine_no="123456789012345"), "machine_no"),
    (dict(machine_no="12345678901234x6"), "machine_no"),
    (dict(fiscal_card_no=b"\x01" * 7), "fiscal card number"),
    (dict(user_card_no="zz"), "user card number"),
    (dict(valid_from=20310101), "valid_from"),
    (dict(valid_to=20300231), "valid_to"),
    (dict(limits=issuance.Limits(20260131, 0, 10, 0)), "single_limit"),
    (dict(limits=issuance.Limits(20260131, 100, 10, 0)), "single_limit"),
    (dict(limits=issuance.Limits(20260131, 1, 2 ** 32, 0)), "cumulative_limit"),
    (dict(limits=issuance.Limits(20261331, 1, 2, 0)), "deadline"),
    (dict(tax_items=[]), "1 to 6 tax items"),
    (dict(tax_items=[issuance.tax_item(i, 1, "1", "a") for i in range(1, 8)]), "1 to 6 tax items"),
    (dict(tax_items=[issuance.tax_item(1, 1, "1", "a"), issuance.tax_item(1, 2, "2", "b")]), "appear once"),
    (dict(tax_items=[issuance.tax_item(0, 1, "1", "a")]), "index"),
    (dict(tax_items=[issuance.tax_item(1, 10001, "1", "a")]), "rate"),
    (dict(tax_items=[issuance.tax_item(1, 300, "123456789", "a")]), "tax item code"),
    (dict(tax_items=[issuance.tax_item(1, 300, "1", "名" * 9)]), "tax item name"),
    (dict(taxpayer=dataclasses.replace(TAXPAYER, name="x" * 41)), "taxpayer name"),
    (dict(taxpayer=dataclasses.replace(TAXPAYER, bureau_code="14401000000X")), "bureau_code"),
    (dict(taxpayer=dataclasses.replace(TAXPAYER, filing_mode=9)), "filing_mode"),
])
def test_issuance_refusals_name_the_field(change, message):
    with pytest.raises(IssuanceError, match=message):
        issuance.issue_cards(KS, **dict(BASE, **change))


def test_a_user_card_serves_up_to_eight_distinct_tills():
    tills = [("12345678901234%02d" % i, "32010000000000%02d" % i) for i in range(9)]
    common = dict(taxpayer=TAXPAYER, card_no=USER_CARD_NO, valid_from=20260101, valid_to=20301231,
                  tax_items=TAX_ITEMS)
    assert len(issuance.issue_user_card(KS, tills=tills[:8], **common).tills) == 8
    with pytest.raises(IssuanceError, match="1 to 8"):
        issuance.issue_user_card(KS, tills=tills, **common)
    with pytest.raises(IssuanceError, match="twice"):
        issuance.issue_user_card(KS, tills=[tills[0], (tills[0][0], tills[1][1])], **common)


def test_production_issuance_never_uses_test_keys():
    prod = KeyStore()
    prod.generate()
    fd, _ = issuance.issue_cards(prod, **BASE)
    assert not crypto.is_test_key(fd.keys.key_id)


def test_management_card_certificate_and_pin():
    md = issuance.issue_management_card(KS, card_no="3201900000000001", inspector_no="440100000123",
                                 bureau_code="144010000000", valid_from=20260101, valid_to=20281231,
                                 rights=apdu.RIGHT_CLOCK, pin="123456")
    cert = apdu.ManagementCertificate.parse(md.certificate)
    assert (cert.rights, cert.key_id, cert.inspector_no) == (apdu.RIGHT_CLOCK, KS.master().key_id, "440100000123")
    assert md.pin == b"123456\xff\xff"
    challenge = bytes(range(8))
    proof = md.certificate + cardauth.sign_challenge(md.seed, challenge, md.card_no)
    assert cardauth.verify_proof(cardauth.inspection_ca_public(KS.master()), proof, challenge).card_no == md.card_no


@pytest.mark.parametrize("change,message", [
    (dict(rights=0), "rights"), (dict(rights=4), "rights"), (dict(pin="123"), "PIN"), (dict(pin="12a456"), "PIN"),
    (dict(inspector_no="x"), "inspector_no"), (dict(valid_from=20300101), "valid_from"),
])
def test_management_card_refusals(change, message):
    args = dict(card_no="3201900000000001", inspector_no="1", bureau_code="1", valid_from=20260101,
                valid_to=20281231, pin=None)
    with pytest.raises(IssuanceError, match=message):
        issuance.issue_management_card(KS, **dict(args, **change))


def test_a_roll_record_carries_the_mac_for_its_fiscal_card():
    rec = issuance.issue_roll(KS, fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO, code="1320024300", start=1,
                       end=1000)
    parsed = cardfiles.UserRoll.parse(rec)
    key = crypto.derive_key(KS.master(), crypto.Purpose.ROLL_MAC, FISCAL_CARD_NO)
    assert parsed.machine_no == MACHINE_NO and rec[16:38] == apdu.RollData.build(parsed.roll)
    assert parsed.roll.mac == crypto.roll_mac(key, "1320024300", 1, 1000, FISCAL_CARD_NO, MACHINE_NO)


def test_the_golden_roll_mac_under_test_key_0x81():
    ks = KeyStore([crypto.TEST_MASTER_KEYS[0x81]], test_mode=True)
    rec = issuance.issue_roll(ks, fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO, code="1320024300", start=1,
                       end=1000)
    assert rec[-4:] == bytes.fromhex("3693145f")  # docs/CRYPTO.md §6


@pytest.mark.parametrize("code,start,end", [("132002430", 1, 2), ("1320024300", 0, 2), ("1320024300", 3, 2),
                                            ("1320024300", 1, 2 ** 32)])
def test_roll_refusals(code, start, end):
    with pytest.raises(IssuanceError):
        issuance.issue_roll(KS, fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO, code=code, start=start, end=end)


def good_report(**kw):
    base = dict(fiscal_card_no=FISCAL_CARD_NO, machine_no=MACHINE_NO, start=20260101, end=20260131,
                key_id=KS.master().key_id)
    return DeclarationReport(**dict(base, **kw))


def test_control_data_is_bound_to_card_machine_and_period():
    rec = issuance.issue_controls(KS, good_report(), limits=issuance.Limits(20260228, 10, 20, 5))
    c = cardfiles.UserControls.parse(rec)
    keys = crypto.derive_fiscal_card_keys(KS.master(), FISCAL_CARD_NO)
    ctl = crypto.open_controls(keys, MACHINE_NO, bytes([c.key_id]) + c.ciphertext + c.mac2)
    assert c.machine_no == MACHINE_NO
    assert (ctl.deadline, ctl.period_end, ctl.seq) == (datetime.date(2026, 2, 28), datetime.date(2026, 1, 31),
                                                       2026013100)
    with pytest.raises(crypto.MacError):
        crypto.open_controls(keys, "1234567890123457", bytes([c.key_id]) + c.ciphertext + c.mac2)


def test_no_control_data_for_a_rejected_declaration():
    with pytest.raises(DeclarationRejected, match="MAC1"):
        issuance.issue_controls(KS, good_report(problems=["MAC1 does not verify"]), limits=LIMITS)


def test_the_new_deadline_must_follow_the_period():
    with pytest.raises(IssuanceError, match="deadline"):
        issuance.issue_controls(KS, good_report(), limits=issuance.Limits(20260131, 10, 20, 5))
    with pytest.raises(IssuanceError, match="seq"):
        issuance.issue_controls(KS, good_report(), limits=issuance.Limits(20260228, 10, 20, 5), seq=0)
