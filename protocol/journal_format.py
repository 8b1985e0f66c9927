"""Fiscal-memory journal on-flash format and read-out stream, in Construct.

The firmware writes these bytes with ``struct`` (firmware/fiscal_till/journal_format.py); the two
definitions are proven equal byte for byte by tests/test_journal_format.py.  docs/FISCAL_MEMORY.md
explains the format and the recovery rules.  All integers are little-endian.

The auditor that verifies a READ_JOURNAL stream against these layouts is protocol/journal_audit.py.
"""

from __future__ import annotations

import hashlib

import construct as cs

VERSION = 1
AREA_FISCAL = 0x46
AREA_RING = 0x52
NO_INDEX = 0xFFFFFFFF
FISCAL_TYPES = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08)
INVOICE = 0x07
DAILY = 0x02
RING_MAX_BODY = 254
COMMIT_MAX_BITS = 3  # a commit byte with at most 3 bits still set counts as committed

def _sector_head(area: int) -> tuple:
    """The fields every sector header starts with; only the area byte differs between the two areas."""
    return ("magic" / cs.Const(b"FJ"), "version" / cs.Int8ul, "area" / cs.Const(area, cs.Int8ul),
            "device_id" / cs.Bytes(8), "format_id" / cs.Bytes(4), "fiscal_sectors" / cs.Int16ul,
            "ring_sectors" / cs.Int16ul)


FiscalSectorHeader = cs.Struct(
    *_sector_head(AREA_FISCAL),
    "seq" / cs.Int32ul,  # == sector number in the fiscal area
    "erase_count" / cs.Int32ul,
    "first_ordinal" / cs.Int32ul,  # fiscal ordinal of the first record in this sector
    "first_index" / cs.Int32ul,  # lower bound of the indexes of the records in this sector
    "covered" / cs.Int32ul,  # invoices covered by a DAILY when the sector was opened
    "anchor_index" / cs.Int32ul,  # last fiscal record before this sector, NO_INDEX if none
    "anchor_head" / cs.Bytes(32),  # chain head right after it (genesis if none)
    "counts" / cs.Array(7, cs.Int32ul),  # per fiscal class, in FISCAL_TYPES order, at open
    "quotas" / cs.Array(7, cs.Int16ul),
    "max_body" / cs.Array(7, cs.Int16ul),
    "crc" / cs.Int32ul,  # CRC-32 of the 132 bytes before it
)
FISCAL_HDR_SIZE = 136

RingSectorHeader = cs.Struct(
    *_sector_head(AREA_RING),
    "seq" / cs.Int32ul,  # increases by one per ring sector opened
    "erase_count" / cs.Int32ul,
    "first_ordinal" / cs.Int32ul,  # invoice ordinal of the first record
    "first_index" / cs.Int32ul,  # its index
    "head" / cs.Bytes(32),  # chain head before it
    "crc" / cs.Int32ul,  # CRC-32 of the 68 bytes before it
    "successor" / cs.Int8ul,  # 0xFF; 0x00 once the next ring sector's reclaim began
)
RING_HDR_SIZE = 73

FiscalRecord = cs.Struct(
    "type" / cs.Int8ul,
    "length" / cs.Int16ul,
    "index" / cs.Int32ul,
    "prev_head" / cs.Bytes(32),
    "body" / cs.Bytes(cs.this.length),
    "crc" / cs.Int32ul,  # CRC-32 of type..body
    "commit" / cs.Int8ul,  # programmed to 0x00 after the rest reads back correctly
)
FISCAL_REC_OVERHEAD = 44

RingRecord = cs.Struct(
    "type" / cs.Int8ul,  # always INVOICE
    "length" / cs.Int8ul,
    "body" / cs.Bytes(cs.this.length),
    "crc" / cs.Int32ul,  # CRC-32 of type..body
    "commit" / cs.Int8ul,
)
RING_REC_OVERHEAD = 7

# What one chain step hashes after the previous head.
ChainInput = cs.Struct(
    "index" / cs.Int32ul,
    "type" / cs.Int8ul,
    "length" / cs.Int16ul,
    "body" / cs.Bytes(cs.this.length),
)

StreamHeader = cs.Struct(
    "magic" / cs.Const(b"FJRS"),
    "version" / cs.Int8ul,
    "flags" / cs.Int8ul,  # bit 0: the till reports damage
    "sector_size" / cs.Int16ul,
    "device_id" / cs.Bytes(8),
    "format_id" / cs.Bytes(4),
    "fiscal_images" / cs.Int16ul,  # fiscal sector images that follow, sector 0 first
    "ring_images" / cs.Int16ul,  # then ring sector images, oldest first
    "next_index" / cs.Int32ul,
    "fiscal_records" / cs.Int32ul,
    "invoices" / cs.Int32ul,
    "covered" / cs.Int32ul,
    "chain_head" / cs.Bytes(32),
    "crc" / cs.Int32ul,  # CRC-32 of the 72 bytes before it
)
STREAM_HDR_SIZE = 76


def device_id(machine_no: str) -> bytes:
    """The journal's ``device_id`` (sector headers, stream header, genesis): the 16-digit machine number
    packed as 8 bytes of BCD, two digits a byte, first digit in the high nibble ("4401..." -> 44 01 ...)."""
    if len(machine_no) != 16 or machine_no.strip("0123456789"):
        raise ValueError("machine number must be 16 digits: %r" % machine_no)
    return bytes.fromhex(machine_no)


def genesis(device_id: bytes, format_id: bytes) -> bytes:
    return hashlib.sha256(b"FJ-genesis" + device_id + format_id).digest()


def chain_step(head: bytes, index: int, rtype: int, body: bytes) -> bytes:
    return hashlib.sha256(head + ChainInput.build(dict(index=index, type=rtype, length=len(body),
                                                         body=body))).digest()


def committed(commit: int) -> bool:
    return bin(commit).count("1") <= COMMIT_MAX_BITS
