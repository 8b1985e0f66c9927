"""Card APDUs: ISO 7816-4 command/response framing and the GB 18240 proprietary command set (domain §2).

Command APDU (ISO 7816-4 §5.1), as a dict: cla, ins, p1, p2, data (bytes, may be empty), le (None when
absent, else 1..256 short or 1..65536 extended; an encoded Le of 00 / 0000 means 256 / 65536):

    case 1   CLA INS P1 P2
    case 2S  CLA INS P1 P2 Le                      case 2E  ... 00 Le1 Le2
    case 3S  CLA INS P1 P2 Lc data                 case 3E  ... 00 Lc1 Lc2 data
    case 4S  CLA INS P1 P2 Lc data Le              case 4E  ... 00 Lc1 Lc2 data Le1 Le2

Extended form is used only when data is longer than 255 bytes or Le is above 256.
Response APDU: data followed by SW1 SW2 (the status word, big-endian).

GB commands use CLA C0; their data layouts below are ours where the public sources stop (marked in
docs/CARDS.md and docs/PROTOCOL.md); field sizes follow docs/CRYPTO.md (4-byte MACs, 64-byte Ed25519
signatures, 8-byte 税控码).  Command data that carries amounts ends with the XOR check byte.
"""

from __future__ import annotations

import construct as cs

from .rules import THRESHOLDS

from .types import (
    BUREAU_CODE_LEN, CARD_NO_LEN, FISCAL_CODE_LEN, INVOICE_CODE_LEN, MAC_LEN, PIN_LEN, SIGNATURE_LEN,
    TAX_ITEMS, Amount, BcdDate, Digits, TaxAmount, XorGuarded,
)


class CommandApdu(cs.Construct):  # type: ignore[misc]
    """ISO 7816-4 command APDU, short and extended lengths, all four cases.  Consumes the whole input."""

    def _parse(self, stream, context, path):
        raw = cs.stream_read_entire(stream, path)
        if len(raw) < 4:
            raise cs.StreamError("APDU shorter than its header", path=path)
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        data, le = b"", None
        n = len(body)
        if n == 1:
            le = body[0] or 256
        elif n >= 2 and body[0] != 0:
            lc = body[0]
            if n not in (1 + lc, 2 + lc):
                raise cs.StreamError("Lc %d does not match %d body bytes" % (lc, n), path=path)
            data = body[1:1 + lc]
            if n == 2 + lc:
                le = body[-1] or 256
        elif n == 2:
            raise cs.StreamError("Lc of 0 in a short APDU", path=path)
        elif n == 3:
            le = (body[1] << 8 | body[2]) or 65536
        elif n > 3:
            lc = body[1] << 8 | body[2]
            if lc == 0 or n not in (3 + lc, 5 + lc):
                raise cs.StreamError("extended Lc %d does not match %d body bytes" % (lc, n), path=path)
            data = body[3:3 + lc]
            if n == 5 + lc:
                le = (body[-2] << 8 | body[-1]) or 65536
        return cs.Container(cla=cla, ins=ins, p1=p1, p2=p2, data=data, le=le)

    def _build(self, obj, stream, context, path):
        data = bytes(obj.get("data") or b"")
        le = obj.get("le")
        for k in ("cla", "ins", "p1", "p2"):
            if not 0 <= obj[k] <= 0xFF:
                raise cs.ValidationError("%s out of range" % k, path=path)
        if len(data) > 65535 or le is not None and not 1 <= le <= 65536:
            raise cs.ValidationError("Lc or Le out of range", path=path)
        extended = len(data) > 255 or le is not None and le > 256
        out = bytearray([obj["cla"], obj["ins"], obj["p1"], obj["p2"]])
        if extended:
            out.append(0)
            if data:
                out += len(data).to_bytes(2, "big") + data
            if le is not None:
                out += (le & 0xFFFF).to_bytes(2, "big")
        else:
            if data:
                out.append(len(data))
                out += data
            if le is not None:
                out.append(le & 0xFF)
        cs.stream_write(stream, bytes(out), len(out), path)
        return obj

    def _sizeof(self, context, path):
        raise cs.SizeofError("APDUs are variable-size", path=path)


class ResponseApdu(cs.Construct):  # type: ignore[misc]
    """Response APDU: data then SW1 SW2; parsed as dict(data=..., sw=0x9000)."""

    def _parse(self, stream, context, path):
        raw = cs.stream_read_entire(stream, path)
        if len(raw) < 2:
            raise cs.StreamError("response shorter than its status word", path=path)
        return cs.Container(data=raw[:-2], sw=raw[-2] << 8 | raw[-1])

    def _build(self, obj, stream, context, path):
        if not 0 <= obj["sw"] <= 0xFFFF:
            raise cs.ValidationError("sw out of range", path=path)
        out = bytes(obj.get("data") or b"") + obj["sw"].to_bytes(2, "big")
        cs.stream_write(stream, out, len(out), path)
        return obj

    def _sizeof(self, context, path):
        raise cs.SizeofError("responses are variable-size", path=path)


Command = CommandApdu()
Response = ResponseApdu()

# --- ISO 7816-4 instructions we use (CLA 00) --------------------------------------------------------
CLA_ISO = 0x00
INS_SELECT = 0xA4  # P1 04: by DF name; P1 02: EF by file id (2 bytes)
INS_READ_BINARY = 0xB0
INS_UPDATE_BINARY = 0xD6
INS_READ_RECORD = 0xB2
INS_UPDATE_RECORD = 0xDC
INS_GET_CHALLENGE = 0x84
INS_INTERNAL_AUTHENTICATE = 0x88
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_VERIFY = 0x20
INS_GET_RESPONSE = 0xC0
INS_ERASE_BINARY = 0x0E  # user card EF07 only: 00 0E 87 00 26 <EF07 as read>, compare-and-erase

# --- GB 18240 proprietary commands (CLA C0) ---------------------------------------------------------
CLA_GB = 0xC0
INS_GET_REGISTER_NB = 0xF0  # fiscal
INS_REGISTER_SIGN = 0xE4  # user
INS_TERMINAL_REGISTER = 0xF1  # fiscal
INS_ISSUE_INVOICE = 0xF2  # fiscal
INS_DECLARE_DUTY = 0xF4  # fiscal
INS_UPDATE_CONTROLS = 0xF6  # fiscal
INS_INPUT_INVOICE_NB = 0xF7  # fiscal
INS_VERIFY_FISCAL_PIN = 0xF9  # fiscal
INS_DAILY_COLLECT_SIGN = 0xFB  # fiscal
INS_DATA_COLLECT = 0xE6  # user
INS_DISTRIBUTE_INVOICE_NB = 0xE9  # user

DF_FISCAL = b"TSAM01"
DF_USER = b"TID01"
DF_MANAGEMENT = b"CHECK01"

SW_OK = 0x9000

# consecutive counted MAC failures (9302) that lock a card for good (9303); a success resets the count.
# 9302 carries no count: the till keeps its own (docs/FIRMWARE.md, "MAC tries").
MAC_TRIES = THRESHOLDS["CARD_MAC_TRIES"]  # R-LOCK-MAC

# GET_REGISTER_NB response == REGISTER_SIGN command data
RegisterNb = cs.Struct("random" / cs.Bytes(4), "card_no" / cs.Bytes(CARD_NO_LEN), "mac1" / cs.Bytes(MAC_LEN))
RegisterSignResponse = cs.Struct("mac2" / cs.Bytes(MAC_LEN))
TerminalRegisterData = cs.Struct("mac2" / cs.Bytes(MAC_LEN))
TerminalRegisterResponse = cs.Struct("pin" / cs.Bytes(PIN_LEN))

IssueInvoiceData = XorGuarded(cs.Struct(
    "date" / BcdDate,
    "kind" / cs.Int8ub,  # 01 normal, 02 return, 03 void
    "number" / cs.Int32ub,
    "lines" / cs.Array(TAX_ITEMS, TaxAmount),
    "total" / Amount,
))
IssueInvoiceResponse = cs.Struct("fiscal_code" / cs.Bytes(FISCAL_CODE_LEN))

# The period summary DECLARE_DUTY and DAILY_COLLECT_SIGN take: items, normal and return amounts as
# three arrays (the vendor layout), not as Totals' per-item triples.
PeriodSums = cs.Struct(
    "normal_count" / cs.Int32ub,
    "return_count" / cs.Int32ub,
    "void_count" / cs.Int32ub,
    "items" / cs.Array(TAX_ITEMS, cs.Int8ub),
    "normal" / cs.Array(TAX_ITEMS, Amount),
    "returned" / cs.Array(TAX_ITEMS, Amount),
)
DeclareDutyData = XorGuarded(cs.Struct("start" / BcdDate, "end" / BcdDate, "sums" / PeriodSums))
DeclareDutyResponse = XorGuarded(cs.Struct(
    "normal_total" / Amount,
    "return_total" / Amount,
    "status" / cs.Int8ub,  # 0 ok
    "mac1" / cs.Bytes(MAC_LEN),
    "signature" / cs.Bytes(SIGNATURE_LEN),
))
DailyCollectSignData = XorGuarded(cs.Struct("date" / BcdDate, "sums" / PeriodSums))
DailyCollectSignResponse = cs.Struct("signature" / cs.Bytes(SIGNATURE_LEN))

CONTROL_CIPHERTEXT_LEN = 24
UpdateControlsData = cs.Struct(
    "key_id" / cs.Int8ub,
    "ciphertext" / cs.Bytes(CONTROL_CIPHERTEXT_LEN),
    "mac2" / cs.Bytes(MAC_LEN),
)

RollData = cs.Struct(
    "code" / Digits(INVOICE_CODE_LEN),
    "start" / cs.Int32ub,
    "end" / cs.Int32ub,
    "mac" / cs.Bytes(MAC_LEN),
)
InputInvoiceNbData = RollData
DistributeInvoiceNbResponse = RollData

VerifyPinData = cs.Struct("pin" / cs.Bytes(PIN_LEN))
VerifyPinResponse = cs.Struct("new_pin" / cs.Bytes(PIN_LEN))

# DATA_COLLECT: the fiscal card's number, its DECLARE_DUTY input and response, onto the user card.
# (The vendor codebases carry 220 bytes with a 128-byte RSA signature; ours is 8 + 75 + 78 = 161.)
DataCollectData = cs.Struct(
    "fiscal_card_no" / cs.Bytes(CARD_NO_LEN),
    "declaration" / DeclareDutyData,
    "response" / DeclareDutyResponse,
)

# --- management card (税务管理卡) authentication (docs/CARDS.md, "Management card") -------------------
# The fiscal card checks an inspector without the till holding a secret: fiscal GET CHALLENGE (8) ->
# management INTERNAL AUTHENTICATE (challenge) -> InspectorProof -> fiscal EXTERNAL AUTHENTICATE
# (P2 = KEYREF_INSPECTOR).  The bureau signs the certificate (Ed25519, key derived from its master key);
# the fiscal card holds only the bureau's public key.
CHALLENGE_LEN = 8
INSPECTOR_NO_LEN = 12
PUBLIC_KEY_LEN = 32
KEYREF_BUREAU = 0x01  # EXTERNAL AUTHENTICATE P2: the bureau's administration key (user card)
KEYREF_INSPECTOR = 0x02  # EXTERNAL AUTHENTICATE P2: an inspector's proof (fiscal card)
RIGHT_INSPECT = 0x01  # ManagementCertificate.rights: read the till out for audit
RIGHT_CLOCK = 0x02  # ... authorise a clock change
ManagementCertificate = cs.Struct(
    "card_no" / cs.Bytes(CARD_NO_LEN),
    "inspector_no" / Digits(INSPECTOR_NO_LEN),
    "bureau_code" / Digits(BUREAU_CODE_LEN),
    "valid_from" / BcdDate,
    "valid_to" / BcdDate,
    "rights" / cs.Int8ub,  # RIGHT_*
    "key_id" / cs.Int8ub,  # master-key generation of the bureau key that signed
    "public_key" / cs.Bytes(PUBLIC_KEY_LEN),  # the management card's Ed25519 key
    "signature" / cs.Bytes(SIGNATURE_LEN),  # bureau signature over the bytes above
)
InspectorProof = cs.Struct("certificate" / ManagementCertificate, "signature" / cs.Bytes(SIGNATURE_LEN))
