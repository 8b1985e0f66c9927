"""Card administration and inspection keys: three derivations and three messages added to crypto suite 1.

protocol/crypto.py (docs/CRYPTO.md) covers invoicing, control data, rolls, registration and records.  The
cards need three more keys, made with the suite's own construction (SP 800-108 KDF with SM4-CMAC keyed by
the bureau master key; Ed25519) and labels that embed the suite id, so they can move into `SuiteV1`
unchanged:

    K_UC_ADMIN  KDF(MK, "FTK1/UC-ADMIN",   user card no.(8), 16)  the bureau's right to write a user card
    MGMT CA     KDF(MK, "FTK1/MGMT-CA",    key id(1),        32)  Ed25519 seed: signs inspector certificates
    MGMT key    KDF(MK, "FTK1/MGMT-SIGN",  mgmt card no.(8), 32)  Ed25519 seed of one management card

Exact bytes (all numbers big-endian):

    bureau cryptogram (8)  MAC8(K_UC_ADMIN, "FTK1/UC-ADMIN" || challenge(8) || user card no.(8))
    certificate signature  Ed25519_CA("FTK1/MGMT-CERT" || ManagementCertificate bytes without signature (74))
    proof signature        Ed25519_card("FTK1/INSPECT" || challenge(8) || management card no.(8))

Why asymmetric for inspectors: every fiscal card must check every inspector.  A symmetric design puts a
key able to impersonate any inspector into every fiscal card; here a fiscal card holds only the CA's
*public* key, so opening one reveals nothing.  A signature cannot be guessed, so failed inspector
proofs do not count towards the card's MAC lock (no denial of service by a fake management card).
"""

from __future__ import annotations

import hmac

import construct as cs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import apdu
from protocol.crypto import (
    SUITE, MacError, MasterKey, SignatureError, load_public_key,
)

LABEL_UC_ADMIN = b"FTK%d/UC-ADMIN" % SUITE.id
LABEL_MGMT_CA = b"FTK%d/MGMT-CA" % SUITE.id
LABEL_MGMT_SIGN = b"FTK%d/MGMT-SIGN" % SUITE.id
MSG_CERT = b"FTK%d/MGMT-CERT" % SUITE.id
MSG_INSPECT = b"FTK%d/INSPECT" % SUITE.id

CHALLENGE_LEN = apdu.CHALLENGE_LEN
CRYPTOGRAM_LEN = 8
CERT_LEN = apdu.ManagementCertificate.sizeof()
CERT_BODY_LEN = CERT_LEN - 64
PROOF_LEN = apdu.InspectorProof.sizeof()


def _raw_public(sk: Ed25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _card_no(card_no: bytes) -> bytes:
    if not isinstance(card_no, (bytes, bytearray)) or len(card_no) != 8:
        raise ValueError("card number must be 8 bytes")
    return bytes(card_no)


# ---- bureau administration of a user card ----------------------------------------------------------
def user_admin_key(master: MasterKey, user_card_no: bytes) -> bytes:
    """K_UC_ADMIN of one user card (16 bytes)."""
    return SUITE.kdf(master.key, LABEL_UC_ADMIN, _card_no(user_card_no))


def bureau_cryptogram(admin_key: bytes, challenge: bytes, user_card_no: bytes) -> bytes:
    """EXTERNAL AUTHENTICATE data (P2 = KEYREF_BUREAU) answering the user card's GET CHALLENGE."""
    if len(challenge) != CHALLENGE_LEN:
        raise ValueError("challenge must be %d bytes" % CHALLENGE_LEN)
    return SUITE.mac(admin_key, LABEL_UC_ADMIN + bytes(challenge) + _card_no(user_card_no))


def verify_bureau_cryptogram(admin_key: bytes, challenge: bytes, user_card_no: bytes, cryptogram: bytes) -> None:
    """Raise MacError unless `cryptogram` answers `challenge` (constant time)."""
    if not hmac.compare_digest(bureau_cryptogram(admin_key, challenge, user_card_no), bytes(cryptogram)):
        raise MacError("bureau cryptogram mismatch")


# ---- inspectors ----------------------------------------------------------------------------------------
def inspection_ca_key(master: MasterKey) -> Ed25519PrivateKey:
    """The bureau key that signs management-card certificates (one per master-key generation)."""
    return Ed25519PrivateKey.from_private_bytes(SUITE.kdf(master.key, LABEL_MGMT_CA, bytes([master.key_id]), 32))


def inspection_ca_public(master: MasterKey) -> bytes:
    """32-byte public key written into every fiscal card of this generation."""
    return _raw_public(inspection_ca_key(master))


def management_seed(master: MasterKey, card_no: bytes) -> bytes:
    """Ed25519 seed (32) of one management card."""
    return SUITE.kdf(master.key, LABEL_MGMT_SIGN, _card_no(card_no), 32)


def make_certificate(master: MasterKey, *, card_no: bytes, inspector_no: str, bureau_code: str, valid_from: int,
                     valid_to: int, rights: int) -> bytes:
    """The signed ManagementCertificate (138 bytes) for a management card whose key is derived from
    `master` and `card_no`."""
    public = _raw_public(Ed25519PrivateKey.from_private_bytes(management_seed(master, card_no)))
    fields = dict(card_no=_card_no(card_no), inspector_no=inspector_no, bureau_code=bureau_code,
                  valid_from=valid_from, valid_to=valid_to, rights=rights, key_id=master.key_id,
                  public_key=public, signature=bytes(64))
    body = apdu.ManagementCertificate.build(fields)[:CERT_BODY_LEN]
    return body + inspection_ca_key(master).sign(MSG_CERT + body)


def sign_challenge(seed: bytes, challenge: bytes, card_no: bytes) -> bytes:
    """The management card's signature for INTERNAL AUTHENTICATE."""
    if len(challenge) != CHALLENGE_LEN:
        raise ValueError("challenge must be %d bytes" % CHALLENGE_LEN)
    return Ed25519PrivateKey.from_private_bytes(seed).sign(MSG_INSPECT + bytes(challenge) + _card_no(card_no))


def verify_proof(ca_public: bytes, proof: bytes, challenge: bytes):
    """Check an InspectorProof against `challenge`; return the parsed certificate.

    Raises ValueError (malformed), SignatureError (certificate not signed by this CA, or the card did not
    sign this challenge).  Validity dates and rights are the caller's policy."""
    if len(proof) != PROOF_LEN:
        raise ValueError("inspector proof must be %d bytes" % PROOF_LEN)
    try:
        parsed = apdu.InspectorProof.parse(proof)
    except (cs.ConstructError, UnicodeError) as e:
        raise ValueError("malformed inspector proof: %s" % e) from None
    cert = parsed.certificate
    body = bytes(proof[:CERT_BODY_LEN])
    try:
        load_public_key(ca_public).verify(cert.signature, MSG_CERT + body)
        load_public_key(cert.public_key).verify(parsed.signature, MSG_INSPECT + bytes(challenge) + cert.card_no)
    except Exception as e:  # InvalidSignature, or a public key that is not a curve point
        raise SignatureError("inspector proof rejected: %s" % (type(e).__name__,)) from None
    return cert
