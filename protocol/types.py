"""Field types shared by frames, commands, records, APDUs and card files.

Rules that hold everywhere:
- integers are big-endian (cards are big-endian; one byte order for the whole toolkit);
- amounts are unsigned 32-bit integer fen (分); no floats anywhere;
- dates are BCD CCYYMMDD in 4 bytes, times BCD hhmmss in 3 bytes, carried in Python as the integers
  20261127 and 143005; 0 means "no date".  The codec checks BCD digits only; calendar validity is the
  till's business (error INPUT_BAD_DATE);
- fixed text fields are NUL-padded (ASCII digits for numbers, UTF-8 for names); variable text on the host
  link is UTF-8 with a one-byte length prefix.
"""

from __future__ import annotations

import construct as cs

AMOUNT_MAX = 0xFFFFFFFF
MACHINE_NO_LEN = 16  # 16-digit machine number (domain §2 EF02)
CARD_NO_LEN = 8  # card numbers are 8 bytes
INVOICE_CODE_LEN = 10  # invoice code: 10 ASCII digits [OPEN, see docs/PROTOCOL.md]
TAXPAYER_NO_LEN = 20  # unified social credit code is 18; 20 leaves room for the older 15/20-digit ids
TAXPAYER_NAME_LEN = 40  # bytes of UTF-8
BUREAU_CODE_LEN = 12
TAX_ITEMS = 6  # at most 6 tax items per till and per invoice (domain §2)
SIGNATURE_LEN = 64  # Ed25519 (docs/CRYPTO.md)
MAC_LEN = 4  # MACs in card APDUs
FISCAL_CODE_LEN = 8  # 税控码, printed as 20 digits
PIN_LEN = 8
HASH_LEN = 32  # SHA-256 chain head / firmware hash


class BcdAdapter(cs.Adapter):  # type: ignore[misc]
    """n bytes of packed BCD <-> a non-negative integer of 2n digits."""

    def __init__(self, nbytes: int):
        super().__init__(cs.Bytes(nbytes))
        self.nbytes = nbytes

    def _decode(self, obj: bytes, context, path) -> int:
        value = 0
        for b in obj:
            hi, lo = b >> 4, b & 0x0F
            if hi > 9 or lo > 9:
                raise cs.ValidationError("not BCD: %s" % obj.hex(), path=path)
            value = value * 100 + hi * 10 + lo
        return value

    def _encode(self, obj: int, context, path) -> bytes:
        if not isinstance(obj, int) or obj < 0 or obj >= 10 ** (2 * self.nbytes):
            raise cs.ValidationError("BCD value out of range: %r" % (obj,), path=path)
        out = bytearray(self.nbytes)
        for i in range(self.nbytes - 1, -1, -1):
            two = obj % 100
            obj //= 100
            out[i] = (two // 10) << 4 | two % 10
        return bytes(out)


BcdDate = BcdAdapter(4)
BcdTime = BcdAdapter(3)
Amount = cs.Int32ub


def Digits(n: int) -> cs.Construct:
    """A fixed field of ASCII digits/letters, NUL-padded (machine numbers, invoice codes, taxpayer ids)."""
    return cs.PaddedString(n, "ascii")


def Text(n: int) -> cs.Construct:
    """A fixed UTF-8 field of n bytes, NUL-padded."""
    return cs.PaddedString(n, "utf8")


ShortText = cs.PascalString(cs.Int8ub, "utf8")  # host-link variable text, at most 255 bytes


def xor8(data: bytes) -> int:
    """The check byte GB 18240 cards append to command data: XOR of all preceding bytes."""
    x = 0
    for b in data:
        x ^= b
    return x


class XorGuarded(cs.Subconstruct):  # type: ignore[misc]
    """`subcon` (fixed size) followed by one check byte, the XOR of the subcon's bytes (domain §2).

    Parsing uses Construct's compiled form of `subcon` when it compiles: the card simulator parses these on
    every invoice, and the compiled parser is four times faster with the same result."""

    def __init__(self, subcon):
        super().__init__(subcon)
        self._compiled = None
        self._size = None

    def _fast(self):
        if self._compiled is None:
            try:
                self._compiled = self.subcon.compile()
            except Exception:  # not compilable: the plain definition is the same layout
                self._compiled = self.subcon
        return self._compiled

    def _parse(self, stream, context, path):
        if self._size is None:
            self._size = self.subcon.sizeof()
        raw = cs.stream_read(stream, self._size, path)
        check = cs.stream_read(stream, 1, path)[0]
        if check != xor8(raw):
            raise cs.ChecksumError("check byte %02X, expected %02X" % (check, xor8(raw)), path=path)
        return self._fast().parse(raw)

    def _build(self, obj, stream, context, path):
        raw = self.subcon.build(obj, **context)
        cs.stream_write(stream, raw + bytes([xor8(raw)]), len(raw) + 1, path)
        return obj

    def _sizeof(self, context, path):
        return self.subcon._sizeof(context, path) + 1


# Control data: the deadline and limits the bureau sets (fiscal card EF01; decrypted UPDATE_CONTROLS).
Controls = cs.Struct(
    "deadline" / BcdDate,  # 开票截止日期
    "single_limit" / Amount,  # 单张发票开票金额限额
    "cumulative_limit" / Amount,  # 发票累计金额限额
    "return_limit" / Amount,  # 退票累计金额限额
)

# One authorised tax item (税种税目).  index 0 marks an unused slot.
TaxItem = cs.Struct(
    "index" / cs.Int8ub,
    "rate" / cs.Int16ub,  # basis points: 300 = 3 %
    "code" / Digits(8),
    "name" / Text(24),
)

# Totals of a day, a declaration period or a report.  `lines` keeps per-tax-item amounts; a slot whose
# item is 0 is unused.  normal_total = sum of normal amounts; return_total = sum of return amounts.
TaxLineTotals = cs.Struct("item" / cs.Int8ub, "normal" / Amount, "returned" / Amount)
Totals = cs.Struct(
    "normal_count" / cs.Int32ub,
    "return_count" / cs.Int32ub,
    "void_count" / cs.Int32ub,
    "normal_total" / Amount,
    "return_total" / Amount,
    "lines" / cs.Array(TAX_ITEMS, TaxLineTotals),
)

# Per-tax-item amount of one invoice (6 slots, item 0 unused), as the fiscal card's ISSUE_INVOICE takes it.
TaxAmount = cs.Struct("item" / cs.Int8ub, "amount" / Amount)
