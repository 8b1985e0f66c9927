"""Crypto suite for the fiscal toolkit (host side: card simulators and bureau gateway).

GB 18240 does not publish its algorithms (domain.md §6), so the project fixes its own, all behind one
versioned definition: ``SUITE_ID = 1`` / ``SUITE_NAME = "FTK-SM4-ED25519-v1"``.  Every algorithm,
label, length and byte layout lives on :class:`SuiteV1`; the module-level functions are the bound
methods of the default suite.  A deployment adds suite 2 by subclassing, overriding the primitives
(``prf``, ``cipher24_*``, ``signing_key_from_seed``) and/or layouts, and registering it in ``SUITES``;
a verifier holding records of both generations calls ``get_suite(n).verify_record(...)``.

Suite 1 in one paragraph (docs/CRYPTO.md has the byte tables and the reasons):
  * block cipher SM4 (GB/T 32907), hash SM3 (GB/T 32905) — both from ``cryptography``;
  * MAC = SM4-CMAC (NIST SP 800-38B), leftmost 8 bytes; the 4-byte MACs carried in card APDUs are the
    **leftmost 4 bytes** of that same CMAC;
  * per-card keys = NIST SP 800-108 counter-mode KDF with SM4-CMAC as PRF, keyed by the bureau master
    key, with a purpose label and the card number as context;
  * control data: SM4-CBC with ciphertext stealing (CBC-CS3, SP 800-38A addendum), zero IV under a
    per-card key, encrypt-then-MAC (MAC covers key id + ciphertext + card identity);
  * signatures: Ed25519 (RFC 8032), per-card key pair derived from the bureau master key;
  * 税控码 = 8-byte MAC, printed as 20 digits (two big-endian u32 halves, 10 digits each).

Exceptions: malformed input (wrong length, bad digits, out-of-range numbers) -> ``ValueError``;
authentication failures -> subclasses of :class:`CryptoError`.
"""
from __future__ import annotations

import enum
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from .calendar import bcd_to_date, date_to_bcd  # noqa: F401  (crypto.bcd_to_date: part of this module's API)

SUITE_ID = 1
SUITE_NAME = "FTK-SM4-ED25519-v1"

# Field sizes (feed the APDU layouts).
KEY_LEN = 16            # SM4 key
MAC_LEN = 8             # full suite MAC (税控码 uses all 8)
APDU_MAC_LEN = 4        # MAC1/MAC2/roll MAC in APDUs = leftmost 4 bytes of the 8-byte MAC
FISCAL_CODE_LEN = 8
SIG_LEN = 64            # Ed25519 signature
PUBKEY_LEN = 32         # Ed25519 public key
CARD_NO_LEN = 8
MACHINE_NO_LEN = 16     # ASCII digits
INVOICE_DATA_LEN = 43   # ISSUE_INVOICE data without the trailing XOR byte (APDU Lc = 44)
CONTROL_PLAIN_LEN = 24
CONTROL_BLOB_LEN = 1 + CONTROL_PLAIN_LEN + APDU_MAC_LEN  # UPDATE_CONTROLS data: key id + ct + MAC2
INVOICE_CODE_LEN = 10
RANDOM_LEN = 4

TEST_KEY_FLAG = 0x80    # key id bit 7 set = published test key
RESERVED_KEY_IDS = frozenset({0x00, 0x80, 0xFF})  # 0xFF = erased flash, 0x00 = blank


# --------------------------------------------------------------------------------------------- errors
class CryptoError(Exception):
    """An authentication check failed (card status 9302 territory)."""


class MacError(CryptoError):
    """A MAC / 税控码 did not verify."""


class SignatureError(CryptoError):
    """An Ed25519 signature did not verify."""


class KeyIdError(CryptoError):
    """Data was made under a master-key generation this key set does not hold."""


class ReplayError(CryptoError):
    """Control data carries a sequence number not above the last accepted one."""


class TestKeyError(CryptoError):
    """A published test key was offered where production keys are required."""

    __test__ = False  # not a pytest class


# ------------------------------------------------------------------------------------ small helpers
_DIGITS = re.compile(rb"[0-9]+")


def _need(name: str, value: bytes, length: int) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def _ascii_digits(name: str, value: str | bytes, length: int) -> bytes:
    raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    if len(raw) != length or not _DIGITS.fullmatch(raw):
        raise ValueError(f"{name} must be {length} ASCII digits, got {value!r}")
    return raw


def _u32(name: str, value: int) -> bytes:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} must be an unsigned 32-bit integer, got {value!r}")
    return value.to_bytes(4, "big")


def sm3(data: bytes) -> bytes:
    """SM3 digest (32 bytes)."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def sm4_encrypt_block(key: bytes, block: bytes) -> bytes:
    """One raw SM4 block encryption (for known-answer tests and cross-checks)."""
    enc = Cipher(algorithms.SM4(_need("key", key, KEY_LEN)), modes.ECB()).encryptor()
    return enc.update(_need("block", block, 16)) + enc.finalize()


# ----------------------------------------------------------------------------------------- key types
class Purpose(enum.Enum):
    """Key purposes; the value is the KDF label suffix (label = b"FTK<suite>/" + value)."""

    INVOICE = b"INVOICE"      # 税控码
    CTL_MAC = b"CTL-MAC"      # UPDATE_CONTROLS MAC2
    CTL_ENC = b"CTL-ENC"      # UPDATE_CONTROLS encryption
    ROLL_MAC = b"ROLL-MAC"    # invoice roll MAC (DISTRIBUTE/INPUT_INVOICE_NB)
    DECL_MAC = b"DECL-MAC"    # DECLARE_DUTY MAC1
    REG_FC = b"REG-FC"        # GET_REGISTER_NB MAC1 (fiscal card)
    REG_UC = b"REG-UC"        # REGISTER_SIGN MAC2 (user card, context = fiscal no || user no)
    SIGN = b"SIGN"            # Ed25519 seed (32 bytes)


class SigKind(enum.IntEnum):
    """Record kinds; the kind byte is part of every signed message (domain separation)."""

    DAILY = 0x01         # DAILY_COLLECT_SIGN
    DECLARATION = 0x02   # DECLARE_DUTY


@dataclass(frozen=True)
class MasterKey:
    """A bureau master key (SM4, 16 bytes) and its 1-byte key id.

    Key id: 0x01-0x7F production generations; 0x81-0xFE published test keys (bit 7 = TEST);
    0x00, 0x80, 0xFF reserved (blank / erased flash).
    """

    key_id: int
    key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, int) or not 0 <= self.key_id <= 0xFF or self.key_id in RESERVED_KEY_IDS:
            raise ValueError(f"invalid master key id {self.key_id!r}")
        object.__setattr__(self, "key", _need("master key", self.key, KEY_LEN))

    def __repr__(self) -> str:  # never print key material
        return f"MasterKey(key_id=0x{self.key_id:02X}{', TEST' if is_test_key(self) else ''})"


def _test_key(key_id: int, hex_key: str) -> MasterKey:
    return MasterKey(key_id, bytes.fromhex(hex_key))


# Published TEST master keys: key = SM3(b"FTK TEST MASTER KEY %02X - NOT FOR PRODUCTION" % key_id)[:16].
# Anyone can recompute them; anything made under them is NON-FISCAL by definition.
TEST_MASTER_KEYS: dict[int, MasterKey] = {
    0x81: _test_key(0x81, "d28e6ad5ba152a9b10fe5c2d79e0d4c3"),
    0x82: _test_key(0x82, "d0bb98599271f390c98bc813574fddf8"),
}
TEST_MASTER_KEY = TEST_MASTER_KEYS[0x81]
_TEST_KEY_BYTES = frozenset(k.key for k in TEST_MASTER_KEYS.values())


def is_test_key(key: MasterKey | int | bytes) -> bool:
    """True for a test key id (bit 7 set), a published test key's bytes, or a MasterKey with either."""
    if isinstance(key, MasterKey):
        return bool(key.key_id & TEST_KEY_FLAG) or key.key in _TEST_KEY_BYTES
    if isinstance(key, int):
        return bool(key & TEST_KEY_FLAG)
    return bytes(key) in _TEST_KEY_BYTES


def require_production_key(key: MasterKey) -> MasterKey:
    """Return ``key`` unchanged, or raise :class:`TestKeyError` if it is a test key."""
    if is_test_key(key):
        raise TestKeyError(f"test key 0x{key.key_id:02X} refused in production")
    return key


@dataclass(frozen=True, repr=False)
class FiscalCardKeys:
    """Everything personalised into one fiscal card (and what the bureau recomputes for it)."""

    key_id: int
    card_no: bytes
    invoice: bytes
    ctl_mac: bytes
    ctl_enc: bytes
    roll_mac: bytes
    decl_mac: bytes
    reg_fc: bytes
    reg_uc: bytes | None          # pair key with the registered user card (None if not yet paired)
    sign_key: Ed25519PrivateKey
    public_key: bytes             # raw 32 bytes

    def __repr__(self) -> str:
        return f"FiscalCardKeys(key_id=0x{self.key_id:02X}, card_no={self.card_no.hex()})"


@dataclass(frozen=True)
class ControlData:
    """UPDATE_CONTROLS plaintext (24 bytes, big-endian, amounts in fen)."""

    deadline: date          # invoice deadline (开票截止日期)
    single_limit: int       # 单张发票开票金额限额
    cumulative_limit: int   # 发票累计金额限额
    return_limit: int       # 退票累计金额限额
    period_end: date        # end of the declared period this update clears
    seq: int                # strictly increasing per card

    def pack(self) -> bytes:
        return b"".join((
            date_to_bcd(self.deadline), _u32("single_limit", self.single_limit),
            _u32("cumulative_limit", self.cumulative_limit), _u32("return_limit", self.return_limit),
            date_to_bcd(self.period_end), _u32("seq", self.seq),
        ))

    @classmethod
    def unpack(cls, raw: bytes) -> "ControlData":
        raw = _need("control data", raw, CONTROL_PLAIN_LEN)
        single, cumulative, ret = struct.unpack(">III", raw[4:16])
        return cls(bcd_to_date(raw[:4]), single, cumulative, ret, bcd_to_date(raw[16:20]),
                   int.from_bytes(raw[20:24], "big"))


def pack_invoice_data(when: date, inv_type: int, number: int,
                      items: Sequence[tuple[int, int]], total: int) -> bytes:
    """The 43 ISSUE_INVOICE data bytes (APDU data minus its trailing XOR byte): date(4, BCD) type(1)
    no.(4) 6x[item(1) amount(4)] total(4).  Fewer than 6 items are padded with (0, 0) slots.
    The APDU codec is authoritative; this helper exists for vectors and tests."""
    if inv_type not in (1, 2, 3):
        raise ValueError(f"invoice type must be 1, 2 or 3, got {inv_type!r}")
    if len(items) > 6:
        raise ValueError("at most 6 tax items")
    slots = list(items) + [(0, 0)] * (6 - len(items))
    body = b"".join(bytes([_byte("item index", i)]) + _u32("amount", a) for i, a in slots)
    return date_to_bcd(when) + bytes([inv_type]) + _u32("number", number) + body + _u32("total", total)


def _byte(name: str, v: int) -> int:
    if not isinstance(v, int) or not 0 <= v <= 0xFF:
        raise ValueError(f"{name} must be 0..255, got {v!r}")
    return v


# -------------------------------------------------------------------------------------- fiscal code
def format_fiscal_code(code: bytes) -> str:
    """8 bytes -> 20 digits: each big-endian u32 half zero-padded to 10 digits (digits 1, 11 are 0-4)."""
    hi, lo = struct.unpack(">II", _need("fiscal code", code, FISCAL_CODE_LEN))
    return f"{hi:010d}{lo:010d}"


def parse_fiscal_code(text: str) -> bytes:
    """20 ASCII digits (surrounding whitespace ignored) -> 8 bytes; ValueError explains any rejection."""
    if not isinstance(text, str):
        raise ValueError(f"fiscal code must be a str, got {type(text).__name__}")
    s = text.strip()
    if len(s) != 20 or not s.isascii() or not s.isdigit():
        raise ValueError(f"fiscal code must be exactly 20 ASCII digits, got {text!r}")
    hi, lo = int(s[:10]), int(s[10:])
    for name, half in (("first", hi), ("second", lo)):
        if half > 0xFFFFFFFF:
            raise ValueError(f"fiscal code {name} half {half} exceeds 4294967295 (not a printed 税控码)")
    return struct.pack(">II", hi, lo)


# ------------------------------------------------------------------------------------------- suite 1
class SuiteV1:
    """Suite 1: SM4-CMAC / SP 800-108 KDF / SM4-CBC-CS3 / Ed25519.  Every layout is a method here."""

    id = SUITE_ID
    name = SUITE_NAME

    def __init__(self) -> None:
        # Precomputed signature headers: suite id(1) || kind(1).
        self._sig_header = {k: bytes([self.id, k]) for k in SigKind}

    # ---- primitives (override these for another suite) ---------------------------------------
    def prf(self, key: bytes, data: bytes) -> bytes:
        """SM4-CMAC (SP 800-38B), full 16-byte tag."""
        c = cmac.CMAC(algorithms.SM4(key))
        c.update(data)
        return c.finalize()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """The suite MAC: leftmost 8 bytes of SM4-CMAC."""
        return self.prf(_need("MAC key", key, KEY_LEN), data)[:MAC_LEN]

    def mac4(self, key: bytes, data: bytes) -> bytes:
        """APDU MAC: leftmost 4 bytes of :meth:`mac` (i.e. of the CMAC)."""
        return self.mac(key, data)[:APDU_MAC_LEN]

    def verify_mac(self, key: bytes, data: bytes, tag: bytes) -> None:
        """Constant-time check of a 4- or 8-byte tag; raises MacError."""
        if len(tag) not in (APDU_MAC_LEN, MAC_LEN):
            raise ValueError(f"MAC must be {APDU_MAC_LEN} or {MAC_LEN} bytes, got {len(tag)}")
        if not hmac.compare_digest(self.mac(key, data)[:len(tag)], bytes(tag)):
            raise MacError("MAC mismatch")

    def kdf(self, master: bytes, label: bytes, context: bytes, length: int = KEY_LEN) -> bytes:
        """SP 800-108 counter mode, PRF = SM4-CMAC (cryptography's KBKDFCMAC):
        K(i) = CMAC(master, i(1) || label || 0x00 || context || L(2, bits, BE)), output = K(1) || K(2)...
        The counter is 1 byte before the fixed input and L is 2 bytes: the golden vectors pin it."""
        kbkdf = KBKDFCMAC(algorithms.SM4, Mode.CounterMode, length, rlen=1, llen=2,
                          location=CounterLocation.BeforeFixed, label=label, context=context, fixed=None)
        return kbkdf.derive(_need("master key", master, KEY_LEN))

    def cipher24_encrypt(self, key: bytes, plain: bytes) -> bytes:
        """SM4-CBC-CS3, IV = 0, for 24 bytes: C1 = E(P1), C2 = E(C1 ^ (P2 || 0^8)); output C2 || C1[:8]."""
        enc = Cipher(algorithms.SM4(key), modes.CBC(bytes(16))).encryptor()
        c = enc.update(_need("plaintext", plain, 24) + bytes(8)) + enc.finalize()
        return c[16:32] + c[:8]

    def cipher24_decrypt(self, key: bytes, ct: bytes) -> bytes:
        """Inverse of :meth:`cipher24_encrypt`: Z = D(C2) restores C1[8:]; CBC-decrypt C1 || C2."""
        ct = _need("ciphertext", ct, 24)
        dec = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
        z = dec.update(ct[:16]) + dec.finalize()
        c1 = ct[16:24] + z[8:]
        cbc = Cipher(algorithms.SM4(key), modes.CBC(bytes(16))).decryptor()
        p = cbc.update(c1 + ct[:16]) + cbc.finalize()
        return p[:24]   # p[24:32] is the zero pad; CS3 cannot tamper-detect — the MAC does

    def signing_key_from_seed(self, seed: bytes) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(_need("seed", seed, 32))

    # ---- keys ---------------------------------------------------------------------------------
    def label(self, purpose: Purpose) -> bytes:
        return b"FTK%d/" % self.id + purpose.value

    def derive_key(self, master: MasterKey, purpose: Purpose, card_no: bytes,
                   user_card_no: bytes | None = None) -> bytes:
        """Per-card key: KDF(master, "FTK1/<purpose>", card_no[ || user_card_no for REG_UC]).
        SIGN yields the 32-byte Ed25519 seed; every other purpose a 16-byte SM4 key."""
        ctx = _need("card_no", card_no, CARD_NO_LEN)
        if purpose is Purpose.REG_UC:
            if user_card_no is None:
                raise ValueError("REG_UC needs the user card number")
            ctx += _need("user_card_no", user_card_no, CARD_NO_LEN)
        elif user_card_no is not None:
            raise ValueError(f"{purpose.name} keys are not user-card specific")
        return self.kdf(master.key, self.label(purpose), ctx, 32 if purpose is Purpose.SIGN else KEY_LEN)

    def derive_fiscal_card_keys(self, master: MasterKey, card_no: bytes,
                                user_card_no: bytes | None = None) -> FiscalCardKeys:
        """All keys of one fiscal card (what personalisation writes; what the bureau recomputes)."""
        d = lambda p: self.derive_key(master, p, card_no)  # noqa: E731
        sk = self.signing_key_from_seed(d(Purpose.SIGN))
        return FiscalCardKeys(
            key_id=master.key_id, card_no=bytes(card_no), invoice=d(Purpose.INVOICE),
            ctl_mac=d(Purpose.CTL_MAC), ctl_enc=d(Purpose.CTL_ENC), roll_mac=d(Purpose.ROLL_MAC),
            decl_mac=d(Purpose.DECL_MAC), reg_fc=d(Purpose.REG_FC),
            reg_uc=None if user_card_no is None else self.derive_key(master, Purpose.REG_UC, card_no, user_card_no),
            sign_key=sk, public_key=sk.public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw))

    def card_public_key(self, master: MasterKey, card_no: bytes) -> bytes:
        """The bureau recomputes any card's Ed25519 public key (32 bytes) from its master key."""
        return self.derive_fiscal_card_keys(master, card_no).public_key

    # ---- layouts ------------------------------------------------------------------------------
    @staticmethod
    def identity(card_no: bytes, machine_no: str | bytes) -> bytes:
        """Card identity appended to MACed data: fiscal card no.(8) || machine no.(16 ASCII digits)."""
        return _need("card_no", card_no, CARD_NO_LEN) + _ascii_digits("machine_no", machine_no, MACHINE_NO_LEN)

    def fiscal_code(self, key: bytes, invoice_data: bytes, card_no: bytes, machine_no: str | bytes) -> bytes:
        """税控码 = MAC8(K_invoice, invoice_data(43 = APDU data without XOR) || card_no(8) || machine_no(16))."""
        if len(invoice_data) != INVOICE_DATA_LEN:
            raise ValueError(f"invoice data must be {INVOICE_DATA_LEN} bytes (ISSUE_INVOICE data without "
                             f"the trailing XOR byte), got {len(invoice_data)}")
        return self.mac(key, bytes(invoice_data) + self.identity(card_no, machine_no))

    def verify_fiscal_code(self, key: bytes, invoice_data: bytes, card_no: bytes, machine_no: str | bytes,
                           code: bytes | str) -> None:
        """Accepts the 8 bytes or the printed 20 digits; raises MacError on mismatch."""
        tag = parse_fiscal_code(code) if isinstance(code, str) else _need("fiscal code", code, FISCAL_CODE_LEN)
        if not hmac.compare_digest(self.fiscal_code(key, invoice_data, card_no, machine_no), tag):
            raise MacError("税控码 mismatch")

    def seal_controls(self, keys: FiscalCardKeys, machine_no: str | bytes, controls: ControlData) -> bytes:
        """UPDATE_CONTROLS data (29) = key_id(1) || ct(24) || MAC2(4), where
        ct = SM4-CBC-CS3(K_ctl_enc, controls.pack()) and
        MAC2 = MAC4(K_ctl_mac, key_id || ct || card_no(8) || machine_no(16))."""
        head = bytes([keys.key_id]) + self.cipher24_encrypt(keys.ctl_enc, controls.pack())
        return head + self.mac4(keys.ctl_mac, head + self.identity(keys.card_no, machine_no))

    def open_controls(self, keys: FiscalCardKeys, machine_no: str | bytes, blob: bytes,
                      last_seq: int | None = None) -> ControlData:
        """Check key id, then MAC (before decrypting), then decrypt, then seq > last_seq.
        Raises KeyIdError, MacError or ReplayError; ValueError for a wrong length."""
        blob = _need("UPDATE_CONTROLS data", blob, CONTROL_BLOB_LEN)
        if blob[0] != keys.key_id:
            raise KeyIdError(f"key id 0x{blob[0]:02X}, card holds 0x{keys.key_id:02X}")
        head, tag = blob[:25], blob[25:]
        self.verify_mac(keys.ctl_mac, head + self.identity(keys.card_no, machine_no), tag)
        controls = ControlData.unpack(self.cipher24_decrypt(keys.ctl_enc, head[1:]))
        if last_seq is not None and controls.seq <= last_seq:
            raise ReplayError(f"control data seq {controls.seq} <= last accepted {last_seq}")
        return controls

    def roll_mac(self, key: bytes, invoice_code: str | bytes, start: int, end: int,
                 card_no: bytes, machine_no: str | bytes) -> bytes:
        """Roll MAC (4) = MAC4(K_roll of the destination fiscal card,
        invoice_code(10 ASCII) || start(4) || end(4) || card_no(8) || machine_no(16))."""
        if start > end:
            raise ValueError(f"roll start {start} > end {end}")
        data = (_ascii_digits("invoice_code", invoice_code, INVOICE_CODE_LEN) + _u32("start", start)
                + _u32("end", end) + self.identity(card_no, machine_no))
        return self.mac4(key, data)

    def verify_roll_mac(self, key: bytes, invoice_code: str | bytes, start: int, end: int,
                        card_no: bytes, machine_no: str | bytes, tag: bytes) -> None:
        if not hmac.compare_digest(self.roll_mac(key, invoice_code, start, end, card_no, machine_no),
                                   _need("roll MAC", tag, APDU_MAC_LEN)):
            raise MacError("roll MAC mismatch")

    def register_mac1(self, key_reg_fc: bytes, random: bytes, card_no: bytes) -> bytes:
        """GET_REGISTER_NB MAC1 (4) = MAC4(K_reg_fc, random(4) || card_no(8))."""
        return self.mac4(key_reg_fc, _need("random", random, RANDOM_LEN) + _need("card_no", card_no, CARD_NO_LEN))

    def register_mac2(self, key_reg_uc: bytes, random: bytes, card_no: bytes, mac1: bytes) -> bytes:
        """REGISTER_SIGN MAC2 (4) = MAC4(K_reg_uc, random(4) || card_no(8) || MAC1(4)) — the 16 bytes
        the user card received; K_reg_uc is the (fiscal card, user card) pair key."""
        return self.mac4(key_reg_uc, _need("random", random, RANDOM_LEN) + _need("card_no", card_no, CARD_NO_LEN)
                         + _need("MAC1", mac1, APDU_MAC_LEN))

    def verify_register_mac1(self, key_reg_fc: bytes, random: bytes, card_no: bytes, mac1: bytes) -> None:
        if not hmac.compare_digest(self.register_mac1(key_reg_fc, random, card_no), _need("MAC1", mac1, 4)):
            raise MacError("registration MAC1 mismatch")

    def verify_register_mac2(self, key_reg_uc: bytes, random: bytes, card_no: bytes, mac1: bytes,
                             mac2: bytes) -> None:
        if not hmac.compare_digest(self.register_mac2(key_reg_uc, random, card_no, mac1), _need("MAC2", mac2, 4)):
            raise MacError("registration MAC2 mismatch")

    def declaration_mac(self, key: bytes, payload: bytes, card_no: bytes, machine_no: str | bytes) -> bytes:
        """DECLARE_DUTY MAC1 (4) = MAC4(K_decl, payload || card_no(8) || machine_no(16)); payload is
        fixed by the APDU layout (command data without XOR || response fields before MAC1)."""
        return self.mac4(key, bytes(payload) + self.identity(card_no, machine_no))

    def verify_declaration_mac(self, key: bytes, payload: bytes, card_no: bytes, machine_no: str | bytes,
                               tag: bytes) -> None:
        if not hmac.compare_digest(self.declaration_mac(key, payload, card_no, machine_no),
                                   _need("declaration MAC", tag, APDU_MAC_LEN)):
            raise MacError("declaration MAC mismatch")

    # ---- signatures -------------------------------------------------------------------------
    def signed_message(self, kind: SigKind, data: bytes) -> bytes:
        """Exact signed bytes: suite_id(1) || kind(1) || data."""
        header = self._sig_header.get(kind)
        if header is None:
            raise ValueError(f"unknown signature kind {kind!r}")
        return header + data

    def sign_record(self, key: Ed25519PrivateKey | FiscalCardKeys, kind: SigKind, data: bytes) -> bytes:
        """Ed25519 signature (64) over ``signed_message(kind, data)``."""
        sk = key.sign_key if isinstance(key, FiscalCardKeys) else key
        return sk.sign(self.signed_message(kind, data))

    def verify_record(self, public_key: bytes | Ed25519PublicKey, kind: SigKind, data: bytes,
                      signature: bytes) -> None:
        """Raise SignatureError unless ``signature`` is valid.  Public keys given as raw bytes are parsed
        once and cached (LRU), so the wrapper costs a dict lookup and a 2-byte concatenation."""
        if type(public_key) is bytes:
            key = _load_public_key(public_key)
        elif isinstance(public_key, Ed25519PublicKey):
            key = public_key
        else:
            key = load_public_key(public_key)
        header = self._sig_header.get(kind)
        if header is None:
            raise ValueError(f"unknown signature kind {kind!r}")
        try:
            key.verify(signature, header + data)
        except InvalidSignature:
            raise SignatureError(f"bad {SigKind(kind).name.lower()} signature") from None


@lru_cache(maxsize=4096)
def _load_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != PUBKEY_LEN:
        raise ValueError(f"Ed25519 public key must be {PUBKEY_LEN} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """Parse (cached) a raw 32-byte Ed25519 public key."""
    return _load_public_key(bytes(raw))


SUITES: dict[int, SuiteV1] = {1: SuiteV1()}
SUITE = SUITES[SUITE_ID]


def get_suite(suite_id: int) -> SuiteV1:
    try:
        return SUITES[suite_id]
    except KeyError:
        raise ValueError(f"unknown crypto suite {suite_id}") from None


# Module-level API = the default suite's methods.
mac = SUITE.mac
mac4 = SUITE.mac4
verify_mac = SUITE.verify_mac
kdf = SUITE.kdf
derive_key = SUITE.derive_key
derive_fiscal_card_keys = SUITE.derive_fiscal_card_keys
card_public_key = SUITE.card_public_key
card_identity = SUITE.identity
fiscal_code = SUITE.fiscal_code
verify_fiscal_code = SUITE.verify_fiscal_code
seal_controls = SUITE.seal_controls
open_controls = SUITE.open_controls
roll_mac = SUITE.roll_mac
verify_roll_mac = SUITE.verify_roll_mac
register_mac1 = SUITE.register_mac1
register_mac2 = SUITE.register_mac2
verify_register_mac1 = SUITE.verify_register_mac1
verify_register_mac2 = SUITE.verify_register_mac2
declaration_mac = SUITE.declaration_mac
verify_declaration_mac = SUITE.verify_declaration_mac
signed_message = SUITE.signed_message
sign_record = SUITE.sign_record
verify_record = SUITE.verify_record
