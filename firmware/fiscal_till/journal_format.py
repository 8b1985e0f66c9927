"""On-flash format of the fiscal-memory journal: every byte offset lives here (docs/FISCAL_MEMORY.md).

MicroPython-first: plain ``struct`` formats and ``const`` offsets.  ``protocol/journal_format.py``
defines the same layouts in Construct; ``tests/test_journal_format.py`` proves both agree byte for byte.
Change the two together.  All integers are little-endian.
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x

VERSION = const(1)
MAGIC = b"FJ"
AREA_FISCAL = const(0x46)  # 'F'
AREA_RING = const(0x52)  # 'R'

# record type codes (one byte); 0xFF is erased flash and never a type
INIT = const(0x01)
DAILY = const(0x02)
DECLARATION = const(0x03)
CLEAR_UNLOCK = const(0x04)
ROLL_LOAD = const(0x05)
ROLL_USAGE = const(0x06)
INVOICE = const(0x07)
EVENT = const(0x08)

# fiscal classes in header-table order; FISCAL_SLOT[type] is the slot, 0xFF for "not fiscal"
FISCAL_TYPES = (INIT, DAILY, DECLARATION, CLEAR_UNLOCK, ROLL_LOAD, ROLL_USAGE, EVENT)
FISCAL_SLOT = b"\xff\x00\x01\x02\x03\x04\x05\xff\x06"
N_FISCAL = const(7)

# Fiscal sector header (136 bytes), written once when the sector is opened.
#  magic 2s, version B, area B, device_id 8s, format_id 4s, fiscal_sectors H, ring_sectors H,
#  seq I, erase_count I, first_ordinal I, first_index I, covered I, anchor_index I, anchor_head 32s,
#  counts 7I, quotas 7H, max_body 7H, crc I
FISCAL_HDR_FMT = "<2sBB8s4sHHIIIIII32s7I7H7HI"
FISCAL_HDR_SIZE = const(136)
FISCAL_HDR_CRC_AT = const(132)

# Ring sector header (72 bytes + successor flag), written when the sector is (re)opened.
#  magic 2s, version B, area B, device_id 8s, format_id 4s, fiscal_sectors H, ring_sectors H,
#  seq I, erase_count I, first_ordinal I, first_index I, head 32s, crc I
RING_HDR_FMT = "<2sBB8s4sHHIIII32sI"
RING_HDR_CRC_AT = const(68)
RING_SUCC_AT = const(72)  # 0xFF; programmed to 0x00 before the next ring sector is erased
RING_HDR_SIZE = const(73)

IDENT_SIZE = const(20)  # magic..ring_sectors: the device/partition identity, same in both headers

# Byte offsets of the header fields mount reads in place; magic..first_index are alike in both headers
HDR_AREA_AT = const(3)
HDR_IDENT_AT = const(4)  # device_id 8s, format_id 4s, fiscal_sectors H, ring_sectors H, up to IDENT_SIZE
IDENT_FMT = "<8s4sHH"
HDR_SEQ_AT = const(20)
HDR_ERASE_COUNT_AT = const(24)
HDR_FIRST_ORDINAL_AT = const(28)
HDR_FIRST_INDEX_AT = const(32)

# Positions of the fields in the tuples struct.unpack_from gives for FISCAL_HDR_FMT and RING_HDR_FMT
# (the ring's with the successor flag appended)
FH_SEQ = const(7)
FH_ERASE_COUNT = const(8)  # also the ring header's
FH_FIRST_ORDINAL = const(9)
FH_COVERED = const(11)
FH_ANCHOR_INDEX = const(12)
FH_ANCHOR_HEAD = const(13)
FH_COUNTS = const(14)  # N_FISCAL items, then the quotas, then the max bodies
FH_QUOTAS = const(21)
FH_MAX_BODY = const(28)
RH_SEQ = const(7)
RH_HEAD = const(11)
RH_SUCCESSOR = const(13)
NO_INDEX = const(0xFFFFFFFF)

# Fiscal record envelope: type B, length H, index I, prev_head 32s, body, crc32 I, commit B
FISCAL_REC_HEAD_FMT = "<BHI32s"
REC_LENGTH_AT = const(1)  # both envelopes: the body length follows the type byte
FISCAL_REC_INDEX_AT = const(3)
FISCAL_REC_HEAD = const(39)
FISCAL_REC_OVERHEAD = const(44)
# Ring (invoice detail) envelope: type B, length B, body, crc32 I, commit B
RING_REC_HEAD_FMT = "<BB"
RING_REC_HEAD = const(2)
RING_REC_OVERHEAD = const(7)
RING_MAX_BODY = const(254)
COMMIT = const(0x00)  # value programmed into the commit byte; committed iff at most 3 bits still set

# Chain: head' = SHA-256(head || index I || type B || length H || body); genesis binds the device.
CHAIN_PREFIX_FMT = "<IBH"
GENESIS_TAG = b"FJ-genesis"

# Read-out stream (READ_JOURNAL): this header, then fiscal sector images 0..n-1, then ring sector
# images from oldest to newest, each ``sector_size`` bytes exactly as on flash.
#  magic 4s, version B, flags B, sector_size H, device_id 8s, format_id 4s, fiscal_images H,
#  ring_images H, next_index I, fiscal_records I, invoices I, covered I, chain_head 32s, crc I
STREAM_MAGIC = b"FJRS"
STREAM_HDR_FMT = "<4sBBH8s4sHHIIII32sI"
STREAM_HDR_SIZE = const(76)
STREAM_HDR_CRC_AT = const(72)
STREAM_FLAG_DAMAGED = const(0x01)

# Default fiscal capacity: (records, max body bytes) per class in FISCAL_TYPES order.  Bodies of
# protocol/records.py today: INIT 353, DAILY 150, DECLARATION 165, CLEAR_UNLOCK 39, ROLL_LOAD 33,
# ROLL_USAGE 38, EVENT 21 bytes; the max leaves room for them to grow a little.
DEFAULT_QUOTAS = (
    (1, 512),      # INIT: once
    (1830, 192),   # DAILY: 5 x 366 days
    (300, 208),    # DECLARATION
    (300, 64),     # CLEAR_UNLOCK
    (2000, 48),    # ROLL_LOAD
    (2000, 64),    # ROLL_USAGE
    (3000, 32),    # EVENT
)
SPARE_FISCAL_SECTORS = const(2)  # absorbs sectors abandoned after torn writes
