"""The management card (税务管理卡) and the inspector authentication through the fiscal card."""

import pytest

from protocol import cardauth
from gateway import issuance
from gateway.keystore import KeyStore
from hw_sim.cards import ManagementCard
from testbed import sequences
from testbed.demo_cards import INSPECTOR_PIN, MANAGEMENT_CARD_NO, CardRig
from protocol import apdu
from protocol import cardfiles
from protocol import crypto

PIN = issuance.pin_block(INSPECTOR_PIN)


def run(card, ins, p1=0, p2=0, data=b"", le=None, cla=0x00):
    raw = card.transmit(apdu.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=data, le=le)))
    return raw[:-2], raw[-2] << 8 | raw[-1]


@pytest.fixture
def rig():
    return CardRig().register()


def proof_for(rig, challenge):
    sequences.select(rig.management, apdu.DF_MANAGEMENT)
    sequences.send(rig.management, 0x00, apdu.INS_VERIFY, 0, 1, PIN)
    return sequences.send(rig.management, 0x00, apdu.INS_INTERNAL_AUTHENTICATE, data=challenge, le=256)


def test_certificate_is_readable_and_signed_by_the_bureau(rig):
    raw = sequences.read_binary(rig.management, cardfiles.MGMT_EF_CERTIFICATE)
    cert = apdu.ManagementCertificate.parse(raw)
    assert (cert.card_no, cert.rights, cert.valid_to) == (MANAGEMENT_CARD_NO, apdu.RIGHT_INSPECT | apdu.RIGHT_CLOCK,
                                                         20281231)
    crypto.load_public_key(cardauth.inspection_ca_public(rig.keystore.master())).verify(
        cert.signature, cardauth.MSG_CERT + raw[:cardauth.CERT_BODY_LEN])


def test_inspector_authentication_through_the_fiscal_card(rig):
    cert = sequences.authenticate_inspector(rig.fiscal, rig.management, PIN)
    assert cert.rights & apdu.RIGHT_CLOCK and cert.card_no == MANAGEMENT_CARD_NO
    assert rig.cards.fiscal.session.inspector == MANAGEMENT_CARD_NO


def test_internal_authenticate_needs_the_inspector_pin(rig):
    assert run(rig.management, apdu.INS_INTERNAL_AUTHENTICATE, data=bytes(8), le=256)[1] == 0x6982


def test_wrong_inspector_pins_count_down_then_block(rig):
    m = rig.management
    assert [run(m, apdu.INS_VERIFY, 0, 1, bytes(8))[1] for _ in range(4)] == [0x63C2, 0x63C1, 0x6983, 0x6983]
    assert run(m, apdu.INS_VERIFY, 0, 1, PIN)[1] == 0x6983
    assert run(m, apdu.INS_INTERNAL_AUTHENTICATE, data=bytes(8), le=256)[1] == 0x6983


def test_verify_without_data_reports_the_pin_state(rig):
    m = rig.management
    assert run(m, apdu.INS_VERIFY, 0, 1)[1] == 0x63C3
    run(m, apdu.INS_VERIFY, 0, 1, PIN)
    assert run(m, apdu.INS_VERIFY, 0, 1)[1] == 0x9000
    assert run(m, apdu.INS_VERIFY, 0, 2, PIN)[1] == 0x6A80
    assert run(m, apdu.INS_VERIFY, 0, 1, PIN[:4])[1] == 0x6700


def test_a_card_issued_without_pin_needs_no_verify():
    rig = CardRig(management_pin=None).register()
    assert run(rig.management, apdu.INS_VERIFY, 0, 1, PIN)[1] == 0x6985
    sequences.authenticate_inspector(rig.fiscal, rig.management)


def test_a_proof_for_another_challenge_is_9302_and_not_counted(rig):
    challenge = sequences.send(rig.fiscal, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    proof = proof_for(rig, bytes(b ^ 1 for b in challenge))
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 2, proof)[1] == 0x9302
    assert rig.cards.fiscal.state.mac_failures == 0 and rig.cards.fiscal.session.inspector is None


def test_a_challenge_serves_one_attempt(rig):
    challenge = sequences.send(rig.fiscal, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    proof = proof_for(rig, challenge)
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 2, proof)[1] == 0x9000
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 2, proof)[1] == 0x6985  # replayed


def test_a_tampered_certificate_is_9302(rig):
    challenge = sequences.send(rig.fiscal, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    proof = bytearray(proof_for(rig, challenge))
    proof[40] ^= 0x04  # rights byte: the bureau's signature no longer matches
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 2, bytes(proof))[1] == 0x9302


def test_a_certificate_from_another_bureau_key_is_9302(rig):
    ks = KeyStore.for_tests()
    foreign = issuance.issue_management_card(KeyStore([crypto.TEST_MASTER_KEYS[0x81]], test_mode=True),
                                      card_no="3201900000000002", inspector_no="1", bureau_code="1",
                                      valid_from=20260101, valid_to=20281231, pin=None)
    card = ManagementCard.issued(foreign)
    card.power_on()
    assert ks.master().key_id == 0x82  # the fiscal card trusts generation 0x82 only
    challenge = sequences.send(rig.fiscal, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    proof = sequences.send(card, 0x00, apdu.INS_INTERNAL_AUTHENTICATE, data=challenge, le=256)
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 2, proof)[1] == 0x9302


def test_an_expired_certificate_is_6985():
    rig = CardRig().register().load_roll()
    old = issuance.issue_management_card(rig.keystore, card_no="3201900000000003", inspector_no="1", bureau_code="1",
                                  valid_from=20200101, valid_to=20260104, pin=None)
    card = ManagementCard.issued(old)
    card.power_on()
    rig.issue(20260105, [(1, 100)])  # the fiscal card has seen 5 Jan 2026
    with pytest.raises(sequences.CardRefused) as e:
        sequences.authenticate_inspector(rig.fiscal, card)
    assert e.value.sw == 0x6985


@pytest.mark.parametrize("p2,n,expected", [(1, 202, 0x6A80), (2, 201, 0x6700)])
def test_external_authenticate_checks_key_reference_and_length(rig, p2, n, expected):
    sequences.send(rig.fiscal, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, p2, bytes(n))[1] == expected


def test_a_malformed_proof_is_6a80(rig):
    sequences.send(rig.fiscal, 0x00, apdu.INS_GET_CHALLENGE, le=8)
    assert run(rig.fiscal, apdu.INS_EXTERNAL_AUTHENTICATE, 0, 2, b"\xff" * 202)[1] == 0x6A80  # not ASCII digits
