"""Fiscal-memory record bodies (domain §5).  The journal (docs/FISCAL_MEMORY.md) wraps each body in an
envelope with its type, length, CRC and commit marker; this module defines only what is inside.

Classes: INIT, DAILY, DECLARATION, CLEAR_UNLOCK, ROLL_LOAD, ROLL_USAGE and EVENT are fiscal (never erased);
INVOICE is the invoice detail, the one class allowed to roll over (only once a signed DAILY covers it).
All bodies are fixed-size, so a reader can index them without parsing.
"""

from __future__ import annotations

import zlib

import construct as cs

from .types import (
    FISCAL_CODE_LEN, HASH_LEN, MAC_LEN, SIGNATURE_LEN, TAX_ITEMS, Amount, BcdDate, BcdTime, Controls, Digits,
    TaxAmount, TaxItem, Text, Totals, BUREAU_CODE_LEN, CARD_NO_LEN, INVOICE_CODE_LEN, MACHINE_NO_LEN,
    TAXPAYER_NAME_LEN, TAXPAYER_NO_LEN,
)

REC_INIT = 0x01
REC_DAILY = 0x02
REC_DECLARATION = 0x03
REC_CLEAR_UNLOCK = 0x04
REC_ROLL_LOAD = 0x05
REC_ROLL_USAGE = 0x06
REC_INVOICE = 0x07
REC_EVENT = 0x08

# The request that made a record (exactly-once, protocol/commands.py): the host's request id and the
# CRC-32 of command byte + request payload.  Records written by the till on its own (back-filled days,
# boot events) carry rid 0.  Because the tag is inside the record, "executed" and "remembered" are one
# flash write: after a power cut a retried request either finds its record (and gets the same reply
# rebuilt from it) or finds nothing and runs.
RequestTag = cs.Struct("rid" / cs.Int32ub, "digest" / cs.Int32ub)


def request_digest(command: int, payload: bytes) -> int:
    """RequestTag.digest: CRC-32 (zlib's) of the command byte followed by the request payload exactly as
    it crossed the link (an empty LOAD_ROLL payload digests as empty, not as its flags byte 0)."""
    return zlib.crc32(bytes(payload), zlib.crc32(bytes([command]))) & 0xFFFFFFFF

# 税控初始化: written once, after TERMINAL_REGISTER succeeded.
InitRecord = cs.Struct(
    "request" / RequestTag,
    "date" / BcdDate,
    "time" / BcdTime,
    "machine_no" / Digits(MACHINE_NO_LEN),
    "fiscal_card_no" / cs.Bytes(CARD_NO_LEN),
    "user_card_no" / cs.Bytes(CARD_NO_LEN),
    "taxpayer_no" / Digits(TAXPAYER_NO_LEN),
    "taxpayer_name" / Text(TAXPAYER_NAME_LEN),
    "bureau_code" / Digits(BUREAU_CODE_LEN),
    "valid_from" / BcdDate,
    "valid_to" / BcdDate,
    "controls" / Controls,
    "tax_items" / cs.Array(TAX_ITEMS, TaxItem),
)

# One calendar day, zero days included, signed by the fiscal card (DAILY_COLLECT_SIGN).
DailyRecord = cs.Struct(
    "request" / RequestTag,
    "date" / BcdDate,
    "totals" / Totals,
    "signature" / cs.Bytes(SIGNATURE_LEN),
)

# 申报: the days since the previous declaration, signed by the fiscal card (DECLARE_DUTY).
DeclarationRecord = cs.Struct(
    "request" / RequestTag,
    "date" / BcdDate,  # when declared
    "time" / BcdTime,
    "start" / BcdDate,  # first day of the period
    "end" / BcdDate,  # last day of the period
    "totals" / Totals,
    "mac" / cs.Bytes(MAC_LEN),
    "signature" / cs.Bytes(SIGNATURE_LEN),
)

# 清零解锁: control data from the bureau applied by the fiscal card (UPDATE_CONTROLS).
ClearUnlockRecord = cs.Struct(
    "request" / RequestTag,
    "date" / BcdDate,
    "time" / BcdTime,
    "period_end" / BcdDate,  # the declared period this clears
    "sequence" / cs.Int32ub,  # control-data sequence number (strictly increasing per card)
    "controls" / Controls,
)

RollLoadRecord = cs.Struct(
    "request" / RequestTag,
    "date" / BcdDate,
    "time" / BcdTime,
    "code" / Digits(INVOICE_CODE_LEN),
    "start" / cs.Int32ub,
    "end" / cs.Int32ub,
)

# Written when a roll is used up: right after the INVOICE record that takes the roll's last number, by the
# same request but untagged (no request tag); never at LOAD_ROLL (a roll with numbers left cannot be
# replaced: STATE_ROLL_LOADED).  If that write fails the invoice stands and boot recovery appends it.
# What the bureau checks at 验旧.
RollUsageRecord = cs.Struct(
    "date" / BcdDate,
    "code" / Digits(INVOICE_CODE_LEN),
    "start" / cs.Int32ub,
    "end" / cs.Int32ub,
    "normal" / cs.Int32ub,
    "returned" / cs.Int32ub,
    "voided" / cs.Int32ub,
    "last_number" / cs.Int32ub,
)

# Invoice detail; also the payload of ISSUE_INVOICE and GET_DOCUMENT replies.
InvoiceRecord = cs.Struct(
    "request" / RequestTag,
    "kind" / cs.Int8ub,  # protocol.status INVOICE_*
    "code" / Digits(INVOICE_CODE_LEN),
    "number" / cs.Int32ub,
    "date" / BcdDate,
    "time" / BcdTime,
    "ref_number" / cs.Int32ub,  # the original invoice of a return (红票); 0 for normal and void
    "total" / Amount,
    "lines" / cs.Array(TAX_ITEMS, TaxAmount),
    "fiscal_code" / cs.Bytes(FISCAL_CODE_LEN),
)

EventRecord = cs.Struct(
    "request" / RequestTag,
    "date" / BcdDate,
    "time" / BcdTime,
    "event" / cs.Int16ub,  # protocol.status.EVENTS
    "arg" / cs.Int32ub,
)

RECORDS: dict[int, tuple[str, cs.Construct]] = {
    REC_INIT: ("INIT", InitRecord),
    REC_DAILY: ("DAILY", DailyRecord),
    REC_DECLARATION: ("DECLARATION", DeclarationRecord),
    REC_CLEAR_UNLOCK: ("CLEAR_UNLOCK", ClearUnlockRecord),
    REC_ROLL_LOAD: ("ROLL_LOAD", RollLoadRecord),
    REC_ROLL_USAGE: ("ROLL_USAGE", RollUsageRecord),
    REC_INVOICE: ("INVOICE", InvoiceRecord),
    REC_EVENT: ("EVENT", EventRecord),
}

FISCAL_CLASSES = (REC_INIT, REC_DAILY, REC_DECLARATION, REC_CLEAR_UNLOCK, REC_ROLL_LOAD, REC_ROLL_USAGE,
                  REC_EVENT)
RING_CLASSES = (REC_INVOICE,)

# hash/chain sizes used by the journal
CHAIN_LEN = HASH_LEN
