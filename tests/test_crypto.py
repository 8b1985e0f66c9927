"""Crypto suite 1: known-answer tests, independent cross-checks, golden vectors and properties."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import crypto
from protocol.crypto_golden import golden_vectors

GOLDEN = json.loads((Path(__file__).parent / "vectors" / "crypto_golden.json").read_text(encoding="utf-8"))
MK = crypto.TEST_MASTER_KEY
CARD_A, CARD_B = bytes.fromhex(GOLDEN["identity"]["card_no"]), bytes.fromhex("3201000000000002")
USER = bytes.fromhex(GOLDEN["identity"]["user_card_no"])
MACHINE_A, MACHINE_B = GOLDEN["identity"]["machine_no"], "1234567890123457"
KEYS_A = crypto.derive_fiscal_card_keys(MK, CARD_A, USER)
KEYS_B = crypto.derive_fiscal_card_keys(MK, CARD_B, USER)
CTL = crypto.ControlData(date(2024, 4, 30), 1_000_000, 50_000_000, 2_000_000, date(2024, 3, 31), 7)
INV = crypto.pack_invoice_data(date(2024, 3, 15), 1, 1, [(1, 12345), (2, 500)], 12845)
flips = st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255))


def flip(data: bytes, where: tuple[int, int]) -> bytes:
    pos, xor = where
    b = bytearray(data)
    b[pos % len(b)] ^= xor
    return bytes(b)


# ------------------------------------------------------------------------------- known answers (external)
def test_sm4_known_answer():
    k = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert crypto.sm4_encrypt_block(k, k).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm3_known_answer():
    assert crypto.sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


RFC8032 = [  # RFC 8032 §7.1 TEST 1, 2, 3: secret, public, message, signature
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret,public,msg,sig", RFC8032)
def test_ed25519_rfc8032(secret, public, msg, sig):
    sk = crypto.SUITE.signing_key_from_seed(bytes.fromhex(secret))
    raw_pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw_pub.hex() == public
    assert sk.sign(bytes.fromhex(msg)).hex() == sig
    crypto.load_public_key(bytes.fromhex(public)).verify(bytes.fromhex(sig), bytes.fromhex(msg))


# ------------------------------------------------------------- independent re-implementations (from ECB)
def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _dbl(b: bytes) -> bytes:
    n = (int.from_bytes(b, "big") << 1) ^ (0x87 if b[0] & 0x80 else 0)
    return (n & ((1 << 128) - 1)).to_bytes(16, "big")


def ref_cmac(key: bytes, msg: bytes) -> bytes:
    """SP 800-38B CMAC written out over raw SM4 blocks."""
    k1 = _dbl(crypto.sm4_encrypt_block(key, bytes(16)))
    k2 = _dbl(k1)
    blocks = [msg[i:i + 16] for i in range(0, len(msg), 16)] or [b""]
    last = blocks[-1]
    last = _xor(last, k1) if len(last) == 16 else _xor(last + b"\x80" + bytes(15 - len(last)), k2)
    x = bytes(16)
    for blk in blocks[:-1] + [last]:
        x = crypto.sm4_encrypt_block(key, _xor(x, blk))
    return x


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 32, 43, 67, 100])
def test_mac_is_sm4_cmac_leftmost_bytes(n):
    key, msg = bytes(range(16)), bytes(range(n))
    full = ref_cmac(key, msg)
    assert crypto.mac(key, msg) == full[:8] and crypto.mac4(key, msg) == full[:4]


def test_kdf_matches_sp800_108_layout():
    ctx = CARD_A
    for purpose in (crypto.Purpose.INVOICE, crypto.Purpose.SIGN):
        length = 32 if purpose is crypto.Purpose.SIGN else 16
        tail = b"FTK1/" + purpose.value + b"\x00" + ctx + (length * 8).to_bytes(2, "big")
        ref = b"".join(ref_cmac(MK.key, bytes([i]) + tail) for i in (1, 2))[:length]
        assert crypto.derive_key(MK, purpose, ctx) == ref


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=20), st.binary(min_size=0, max_size=20), st.integers(1, 64))
def test_kdf_is_counter_mode_with_one_byte_counter_and_two_byte_length(label, context, length):
    tail = label + b"\x00" + context + (length * 8).to_bytes(2, "big")
    ref = b"".join(ref_cmac(MK.key, bytes([i]) + tail) for i in range(1, -(-length // 16) + 1))[:length]
    assert crypto.kdf(MK.key, label, context, length) == ref


def test_control_cipher_is_cbc_cs3():
    p = CTL.pack()
    c1 = crypto.sm4_encrypt_block(KEYS_A.ctl_enc, p[:16])               # IV = 0
    c2 = crypto.sm4_encrypt_block(KEYS_A.ctl_enc, _xor(c1, p[16:] + bytes(8)))
    blob = crypto.seal_controls(KEYS_A, MACHINE_A, CTL)
    assert blob[1:25] == c2 + c1[:8]
    assert blob[25:] == ref_cmac(KEYS_A.ctl_mac, blob[:25] + CARD_A + MACHINE_A.encode())[:4]


# --------------------------------------------------------------------------------------- golden vectors
def test_golden_file_matches_generator():
    assert golden_vectors() == GOLDEN


def test_golden_recomputed_from_stored_inputs():
    g = GOLDEN
    assert {f"0x{k:02X}": v.key.hex() for k, v in crypto.TEST_MASTER_KEYS.items()} == g["test_master_keys"]
    for m in g["mac"]:
        k, d = bytes.fromhex(m["key"]), bytes.fromhex(m["data"])
        assert (crypto.mac(k, d).hex(), crypto.mac4(k, d).hex()) == (m["mac8"], m["mac4"])
    kd = g["kdf"]
    assert crypto.kdf(bytes.fromhex(kd["master"]), kd["label"].encode(), bytes.fromhex(kd["context"]),
                 kd["length"]).hex() == kd["output"]
    for name, hexkey in g["derived_keys"].items():
        p = crypto.Purpose[name]
        assert crypto.derive_key(MK, p, CARD_A, USER if p is crypto.Purpose.REG_UC else None).hex() == hexkey
    assert KEYS_A.public_key.hex() == g["public_key"]

    fc = g["fiscal_code"]
    inv = fc["invoice"]
    data = crypto.pack_invoice_data(date.fromisoformat(inv["date"]), inv["type"], inv["number"],
                               [tuple(i) for i in inv["items"]], inv["total"])
    assert data.hex() == fc["invoice_data"]
    code = crypto.fiscal_code(KEYS_A.invoice, data, CARD_A, MACHINE_A)
    assert (code.hex(), crypto.format_fiscal_code(code)) == (fc["code"], fc["printed"])
    crypto.verify_fiscal_code(KEYS_A.invoice, data, CARD_A, MACHINE_A, fc["printed"])

    cd = g["control_data"]
    f = cd["fields"]
    ctl = crypto.ControlData(date.fromisoformat(f["deadline"]), f["single_limit"], f["cumulative_limit"],
                        f["return_limit"], date.fromisoformat(f["period_end"]), f["seq"])
    assert ctl.pack().hex() == cd["plaintext"]
    assert crypto.seal_controls(KEYS_A, MACHINE_A, ctl).hex() == cd["sealed"]
    assert crypto.open_controls(KEYS_A, MACHINE_A, bytes.fromhex(cd["sealed"])) == ctl

    r = g["roll_mac"]
    assert crypto.roll_mac(KEYS_A.roll_mac, r["invoice_code"], r["start"], r["end"], CARD_A, MACHINE_A).hex() == r["mac"]
    reg = g["registration"]
    rnd = bytes.fromhex(reg["random"])
    assert crypto.register_mac1(KEYS_A.reg_fc, rnd, CARD_A).hex() == reg["mac1"]
    assert crypto.register_mac2(KEYS_A.reg_uc, rnd, CARD_A, bytes.fromhex(reg["mac1"])).hex() == reg["mac2"]
    d = g["declaration"]
    payload = bytes.fromhex(d["payload"])
    assert crypto.declaration_mac(KEYS_A.decl_mac, payload, CARD_A, MACHINE_A).hex() == d["mac1"]
    assert crypto.sign_record(KEYS_A, crypto.SigKind.DECLARATION, payload).hex() == d["signature"]  # deterministic
    crypto.verify_record(bytes.fromhex(g["public_key"]), crypto.SigKind.DECLARATION, payload, bytes.fromhex(d["signature"]))
    dl = g["daily"]
    crypto.verify_record(bytes.fromhex(g["public_key"]), crypto.SigKind.DAILY, bytes.fromhex(dl["payload"]),
                    bytes.fromhex(dl["signature"]))


# ------------------------------------------------------------------------------------- keys and test keys
def test_test_keys_follow_published_rule_and_are_refused():
    for kid, mk in crypto.TEST_MASTER_KEYS.items():
        assert mk.key == crypto.sm3(b"FTK TEST MASTER KEY %02X - NOT FOR PRODUCTION" % kid)[:16]
        assert crypto.is_test_key(mk) and crypto.is_test_key(kid) and crypto.is_test_key(mk.key)
        with pytest.raises(crypto.TestKeyError):
            crypto.require_production_key(mk)
    prod = crypto.MasterKey(0x01, bytes(range(16)))
    assert not crypto.is_test_key(prod) and crypto.require_production_key(prod) is prod
    assert crypto.is_test_key(crypto.MasterKey(0x02, MK.key))          # test bytes under a production id: still test
    assert MK.key.hex() not in repr(MK) and "TEST" in repr(MK)


@pytest.mark.parametrize("kid", [0x00, 0x80, 0xFF, -1, 256])
def test_reserved_key_ids_rejected(kid):
    with pytest.raises(ValueError):
        crypto.MasterKey(kid, bytes(16))


def test_keys_are_separated_by_purpose_card_and_generation():
    a = {p: crypto.derive_key(MK, p, CARD_A, USER if p is crypto.Purpose.REG_UC else None) for p in crypto.Purpose}
    assert len(set(a.values())) == len(a)
    assert KEYS_A.invoice != KEYS_B.invoice and KEYS_A.public_key != KEYS_B.public_key
    assert crypto.derive_key(crypto.TEST_MASTER_KEYS[0x82], crypto.Purpose.INVOICE, CARD_A) != KEYS_A.invoice
    assert crypto.card_public_key(MK, CARD_A) == KEYS_A.public_key
    with pytest.raises(ValueError):
        crypto.derive_key(MK, crypto.Purpose.REG_UC, CARD_A)


# ------------------------------------------------------------------------------------------ fiscal code
@given(st.binary(min_size=8, max_size=8))
def test_fiscal_code_format_parse_round_trip(b8):
    s = crypto.format_fiscal_code(b8)
    assert len(s) == 20 and s.isdigit() and s[0] in "01234" and s[10] in "01234"
    assert crypto.parse_fiscal_code(s) == b8


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_fiscal_code_parse_format_round_trip(hi, lo):
    s = f"{hi:010d}{lo:010d}"
    assert crypto.format_fiscal_code(crypto.parse_fiscal_code(s)) == s


@pytest.mark.parametrize("bad", ["", "1" * 19, "1" * 21, "0000000000000000000a", "4294967296" + "0" * 10,
                                 "0" * 10 + "4294967296", "٠" * 20, "0000000000-000000000", 12345])
def test_parse_fiscal_code_rejects(bad):
    with pytest.raises(ValueError):
        crypto.parse_fiscal_code(bad)


def test_fiscal_code_extremes_and_input_length():
    assert crypto.format_fiscal_code(b"\xff" * 8) == "42949672954294967295"
    assert crypto.format_fiscal_code(bytes(8)) == "0" * 20
    with pytest.raises(ValueError, match="XOR"):
        crypto.fiscal_code(KEYS_A.invoice, INV + b"\x00", CARD_A, MACHINE_A)   # 44 bytes = with the XOR byte
    with pytest.raises(ValueError):
        crypto.fiscal_code(KEYS_A.invoice, INV, CARD_A, "12345")


@given(flips)
def test_fiscal_code_rejects_any_flipped_byte(where):
    code = crypto.fiscal_code(KEYS_A.invoice, INV, CARD_A, MACHINE_A)
    with pytest.raises(crypto.MacError):
        crypto.verify_fiscal_code(KEYS_A.invoice, flip(INV, where), CARD_A, MACHINE_A, code)
    with pytest.raises(crypto.MacError):
        crypto.verify_fiscal_code(KEYS_A.invoice, INV, CARD_A, MACHINE_A, flip(code, where))


def test_fiscal_code_bound_to_card_identity():
    code = crypto.fiscal_code(KEYS_A.invoice, INV, CARD_A, MACHINE_A)
    assert code != crypto.fiscal_code(KEYS_B.invoice, INV, CARD_B, MACHINE_A)
    assert code != crypto.fiscal_code(KEYS_A.invoice, INV, CARD_A, MACHINE_B)


# ----------------------------------------------------------------------------------------- control data
def test_controls_round_trip_and_replay():
    blob = crypto.seal_controls(KEYS_A, MACHINE_A, CTL)
    assert len(blob) == crypto.CONTROL_BLOB_LEN == 29 and blob[0] == MK.key_id
    assert crypto.open_controls(KEYS_A, MACHINE_A, blob, last_seq=6) == CTL
    for last in (7, 8):
        with pytest.raises(crypto.ReplayError):
            crypto.open_controls(KEYS_A, MACHINE_A, blob, last_seq=last)


@given(st.integers(0, 28), st.integers(1, 255))
def test_controls_reject_any_flipped_byte(pos, xor):
    blob = bytearray(crypto.seal_controls(KEYS_A, MACHINE_A, CTL))
    blob[pos] ^= xor
    with pytest.raises(crypto.KeyIdError if pos == 0 else crypto.MacError):
        crypto.open_controls(KEYS_A, MACHINE_A, bytes(blob))


@given(st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
@settings(max_examples=50)
def test_controls_for_card_a_rejected_by_card_b(deadline, limit, seq):
    ctl = crypto.ControlData(deadline, limit, limit, limit, deadline, seq)
    blob = crypto.seal_controls(KEYS_A, MACHINE_A, ctl)
    assert crypto.open_controls(KEYS_A, MACHINE_A, blob) == ctl
    with pytest.raises(crypto.MacError):
        crypto.open_controls(KEYS_B, MACHINE_A, blob)           # other card, even if it claimed A's machine no.
    with pytest.raises(crypto.MacError):
        crypto.open_controls(KEYS_A, MACHINE_B, blob)           # right card keys, wrong machine identity


def test_controls_other_key_generation_and_bad_values():
    other = crypto.derive_fiscal_card_keys(crypto.TEST_MASTER_KEYS[0x82], CARD_A)
    with pytest.raises(crypto.KeyIdError):
        crypto.open_controls(other, MACHINE_A, crypto.seal_controls(KEYS_A, MACHINE_A, CTL))
    with pytest.raises(ValueError):
        crypto.open_controls(KEYS_A, MACHINE_A, bytes(28))
    with pytest.raises(ValueError):
        crypto.ControlData(CTL.deadline, -1, 0, 0, CTL.period_end, 0).pack()
    with pytest.raises(ValueError):
        crypto.bcd_to_date(bytes.fromhex("2024130a"))


# ---------------------------------------------------------------------------------- roll / reg / decl MACs
@given(flips)
def test_roll_mac_rejects_changes(where):
    tag = crypto.roll_mac(KEYS_A.roll_mac, "1320024300", 1, 1000, CARD_A, MACHINE_A)
    assert len(tag) == 4
    crypto.verify_roll_mac(KEYS_A.roll_mac, "1320024300", 1, 1000, CARD_A, MACHINE_A, tag)
    with pytest.raises(crypto.MacError):
        crypto.verify_roll_mac(KEYS_A.roll_mac, "1320024300", 1, 1000, CARD_A, MACHINE_A, flip(tag, where))
    with pytest.raises(crypto.MacError):
        crypto.verify_roll_mac(KEYS_B.roll_mac, "1320024300", 1, 1000, CARD_B, MACHINE_A, tag)
    for args in (("1320024301", 1, 1000), ("1320024300", 2, 1000), ("1320024300", 1, 1001)):
        with pytest.raises(crypto.MacError):
            crypto.verify_roll_mac(KEYS_A.roll_mac, *args, CARD_A, MACHINE_A, tag)


@given(st.binary(min_size=4, max_size=4), flips)
def test_registration_macs(rnd, where):
    mac1 = crypto.register_mac1(KEYS_A.reg_fc, rnd, CARD_A)
    mac2 = crypto.register_mac2(KEYS_A.reg_uc, rnd, CARD_A, mac1)
    crypto.verify_register_mac1(KEYS_A.reg_fc, rnd, CARD_A, mac1)
    crypto.verify_register_mac2(KEYS_A.reg_uc, rnd, CARD_A, mac1, mac2)
    assert mac2 != mac1
    sixteen = rnd + CARD_A + mac1
    bad = flip(sixteen, where)
    with pytest.raises(crypto.MacError):
        crypto.verify_register_mac2(KEYS_A.reg_uc, bad[:4], bad[4:12], bad[12:], mac2)
    with pytest.raises(crypto.MacError):
        crypto.verify_register_mac1(KEYS_A.reg_fc, rnd, CARD_A, flip(mac1, where))


@given(flips)
def test_declaration_mac_rejects_flips(where):
    payload = bytes(range(64))
    tag = crypto.declaration_mac(KEYS_A.decl_mac, payload, CARD_A, MACHINE_A)
    with pytest.raises(crypto.MacError):
        crypto.verify_declaration_mac(KEYS_A.decl_mac, flip(payload, where), CARD_A, MACHINE_A, tag)


@given(st.binary(max_size=64), flips)
def test_verify_mac_rejects_flips(data, where):
    key = KEYS_A.invoice
    with pytest.raises(crypto.MacError):
        crypto.verify_mac(key, data, flip(crypto.mac(key, data), where))
    if data:
        with pytest.raises(crypto.MacError):
            crypto.verify_mac(key, flip(data, where), crypto.mac4(key, data))


# ------------------------------------------------------------------------------------------- signatures
@given(st.binary(max_size=256), flips)
@settings(max_examples=50)
def test_signature_wrapper(data, where):
    sig = crypto.sign_record(KEYS_A, crypto.SigKind.DAILY, data)
    assert len(sig) == crypto.SIG_LEN
    crypto.verify_record(KEYS_A.public_key, crypto.SigKind.DAILY, data, sig)
    crypto.verify_record(crypto.load_public_key(KEYS_A.public_key), crypto.SigKind.DAILY, data, sig)
    for args in ((KEYS_A.public_key, crypto.SigKind.DAILY, data, flip(sig, where)),
                 (KEYS_A.public_key, crypto.SigKind.DECLARATION, data, sig),          # kind is signed
                 (KEYS_B.public_key, crypto.SigKind.DAILY, data, sig)):
        with pytest.raises(crypto.SignatureError):
            crypto.verify_record(*args)
    if data:
        with pytest.raises(crypto.SignatureError):
            crypto.verify_record(KEYS_A.public_key, crypto.SigKind.DAILY, flip(data, where), sig)


def test_signed_message_layout_and_errors():
    assert crypto.signed_message(crypto.SigKind.DECLARATION, b"xy") == b"\x01\x02xy"
    raw = Ed25519PrivateKey.from_private_bytes(crypto.derive_key(MK, crypto.Purpose.SIGN, CARD_A))
    crypto.load_public_key(KEYS_A.public_key).verify(raw.sign(b"\x01\x01abc"), b"\x01\x01abc")
    with pytest.raises(ValueError):
        crypto.verify_record(b"short", crypto.SigKind.DAILY, b"", bytes(64))
    with pytest.raises(ValueError):
        crypto.signed_message(9, b"")
    with pytest.raises(crypto.SignatureError):
        crypto.verify_record(KEYS_A.public_key, crypto.SigKind.DAILY, b"", bytes(63))


def test_suite_registry():
    assert crypto.get_suite(1) is crypto.SUITE and (crypto.SUITE.id, crypto.SUITE.name) == (1, "FTK-SM4-ED25519-v1")
    with pytest.raises(ValueError):
        crypto.get_suite(2)
