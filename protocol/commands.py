"""Host-link command set: codes, request and reply payloads, and the exactly-once rule.

Every reply carries the status word in the frame header (protocol.frame).  A reply whose status is not
OK has an empty payload; the payloads below are those of successful replies.

Exactly once (domain §7.1).  Every *mutating* request (MUTATING below) carries a non-zero request id
(RID); a mutating request with RID 0 is refused with LINK_RID_MISSING.  Request ids strictly increase
per till: they compare as unsigned 32-bit integers (1..0xFFFFFFFF; ids do not wrap: once the till has
executed 0xFFFFFFFF it executes no other mutating request, 136 years at one request a second).  The
till remembers the last mutating request that took effect: the records it wrote carry a request tag
(RID and CRC-32 of the command byte and payload, protocol/records.py), written in the same flash
operation as the effect; a request that took effect without writing a tagged record (DAILY_CLOSE with
no day to close, SET_TIME before INITIALIZE) is kept in the till's nvram.  So the last executed RID
survives a reboot, and GET_STATUS reports it (`last_rid`, 0 if none).  A mutating request whose RID
  - equals the last executed one, with the same command and payload: the reply is sent again, byte for
    byte, rebuilt from those records; nothing is executed;
  - equals it with another command or payload: refused with LINK_RID_REUSED; nothing is executed;
  - is below it: refused with LINK_RID_STALE; nothing is executed (a captured old frame replayed later
    never runs twice);
  - is above it: executed.
A request refused with an error status has no effect and is not remembered; the host may retry it with
the same RID.  (What a refusal still leaves: a MAC the fiscal card refused counts against its tries and
is logged; SET_TIME refused FM_DAMAGED has moved the clock.  "States and check order" lists every
command's checks.)  Hosts use a fresh, larger RID for each new request and the same RID to retry a lost
reply; a host that lost its counter (or shares the till with another host) resumes from
GET_STATUS.last_rid + 1, and after LINK_RID_STALE sends the request again with a fresh RID (the refused
one changed nothing).  Read-only requests are never remembered, never refused for their RID and may use
any RID.  After a host crash, GET_DOCUMENT with number 0 returns the last invoice, whose request tag
tells the host which request made it.

Until a command has behaviour a device answers it with LINK_NOT_SUPPORTED; an unknown code gets
LINK_UNKNOWN_COMMAND; a payload that does not parse as the command's request gets LINK_BAD_PAYLOAD.

Invoice lines (InvoiceLine).  `quantity` counts thousandths of a unit (2.5 kg: 2500) and `unit_price` is
fen per unit, so a line's `amount` must be exactly `line_amount(quantity, unit_price)` =
(quantity x unit_price + 500) // 1000: the exact product, rounded half up once, nothing rounded before.
It must fit 32 bits.  A line that breaks the rule is refused with INPUT_LINE_MISMATCH, one whose product
passes 32 bits with INPUT_AMOUNT_OVERFLOW; nothing is written.  Discounts are not negative lines: the
host prices the line at the discounted unit price.
"""

from __future__ import annotations

from typing import NamedTuple

import construct as cs

from .frame import MAX_PAYLOAD
from .records import DeclarationRecord, InvoiceRecord
from .types import (
    CARD_NO_LEN, HASH_LEN, INVOICE_CODE_LEN, MACHINE_NO_LEN, TAXPAYER_NAME_LEN, TAXPAYER_NO_LEN, Amount,
    BcdDate, BcdTime, Controls, Digits, ShortText, Text, Totals,
)

PROTOCOL_VERSION = 0x0101  # major.minor in the high and low byte
MAX_LINES = 32  # invoice lines per ISSUE_INVOICE

Empty = cs.Struct()

# --- GET_INFO --------------------------------------------------------------------------------------
InfoReply = cs.Struct(
    "model" / ShortText,
    "machine_no" / Digits(MACHINE_NO_LEN),
    "fw_version" / ShortText,
    "fw_hash" / cs.Bytes(HASH_LEN),  # SHA-256 over the firmware's modules (docs/PROTOCOL.md)
    "protocol_version" / cs.Int16ub,
    "capabilities" / cs.Int32ub,  # protocol.status.CAPABILITIES bits
    "max_payload" / cs.Int16ub,
)

# --- GET_STATUS ------------------------------------------------------------------------------------
StatusReply = cs.Struct(
    "state" / cs.Int8ub,  # protocol.status STATE_*
    "date" / BcdDate,  # the till's clock
    "time" / BcdTime,
    "lock_reasons" / cs.Int32ub,  # protocol.status.LOCK_REASONS bits
    "warnings" / cs.Int32ub,  # protocol.status.WARNINGS bits
    "deadline" / BcdDate,
    "days_to_deadline" / cs.Int16sb,  # negative once past; 0x7FFF when there is no deadline
    "single_limit" / Amount,
    "amount_left" / Amount,  # cumulative limit minus cumulative normal amount
    "return_left" / Amount,  # return limit minus cumulative returns
    "roll_code" / Digits(INVOICE_CODE_LEN),  # empty when no roll is loaded
    "roll_next" / cs.Int32ub,
    "roll_end" / cs.Int32ub,
    "invoices_left" / cs.Int32ub,
    "journal_permille" / cs.Int16ub,  # fullest fiscal class, in 1/1000
    "last_number" / cs.Int32ub,  # last invoice number issued, 0 if none
    "last_declared_end" / BcdDate,  # end of the last declared period, 0 if none
    "last_rid" / cs.Int32ub,  # request id of the last mutating request executed, 0 if none
    "damage_kind" / cs.Int8ub,  # protocol.status.DAMAGE_KINDS: the first damage found, 0 if none
    "damage_sector" / cs.Int16ub,  # its flash sector, 0xFFFF if not known
    "damage_offset" / cs.Int32ub,  # its byte offset in the sector, 0xFFFFFFFF if not known
    "damage_index" / cs.Int32ub,  # the record index nearest to it, 0xFFFFFFFF if not known
)
NO_DEADLINE_DAYS = 0x7FFF

# --- SET_TIME (needs the management card) ----------------------------------------------------------
SetTimeRequest = cs.Struct("date" / BcdDate, "time" / BcdTime)

# --- INITIALIZE (bureau; fiscal card in the SAM slot, user card in the slot) -------------------------
InitializeRequest = cs.Struct("date" / BcdDate, "time" / BcdTime)  # the bureau station's clock
InitializeReply = cs.Struct(
    "machine_no" / Digits(MACHINE_NO_LEN),
    "fiscal_card_no" / cs.Bytes(CARD_NO_LEN),
    "taxpayer_no" / Digits(TAXPAYER_NO_LEN),
    "record" / cs.Int32ub,  # index of the initialization record
)

# --- LOAD_ROLL (from the user card) and CLEAR_UNLOCK: a flags byte --------------------------------
# bit 0 CONFIRM_MAC (protocol.status.REQUEST_FLAGS): hand MAC-bearing data to a fiscal card that has one
# MAC try left.  An empty payload is read as flags 0 (hosts of protocol 1.0).
FlagsRequest = cs.Struct("flags" / cs.Default(cs.Int8ub, 0))
LoadRollRequest = FlagsRequest
ClearUnlockRequest = FlagsRequest
LoadRollReply = cs.Struct("code" / Digits(INVOICE_CODE_LEN), "start" / cs.Int32ub, "end" / cs.Int32ub)

# --- ISSUE_INVOICE ---------------------------------------------------------------------------------
InvoiceLine = cs.Struct(
    "tax_item" / cs.Int8ub,
    "quantity" / cs.Int32ub,  # thousandths of a unit
    "unit_price" / Amount,  # fen per unit
    "amount" / Amount,  # exactly line_amount(quantity, unit_price), else INPUT_LINE_MISMATCH
    "name" / ShortText,
)


def line_amount(quantity: int, unit_price: int) -> int:
    """The one rule of an invoice line's amount, in fen: quantity (thousandths) x unit price, rounded half
    up once, exact.  A result above 0xFFFFFFFF cannot be carried (INPUT_AMOUNT_OVERFLOW)."""
    return (quantity * unit_price + 500) // 1000
IssueInvoiceRequest = cs.Struct(
    "kind" / cs.Int8ub,  # protocol.status INVOICE_*
    "ref_number" / cs.Int32ub,  # the original invoice of a return (红票); 0 for normal and void (废票: a spoiled form)
    "cashier" / ShortText,
    "payer" / ShortText,
    "total" / Amount,
    "lines" / cs.PrefixedArray(cs.Int8ub, InvoiceLine),
)
IssueInvoiceReply = InvoiceRecord

# --- GET_DOCUMENT ----------------------------------------------------------------------------------
GetDocumentRequest = cs.Struct("number" / cs.Int32ub)  # 0: the last invoice issued
GetDocumentReply = InvoiceRecord

# --- DAILY_CLOSE -----------------------------------------------------------------------------------
DailyCloseReply = cs.Struct("first" / BcdDate, "last" / BcdDate, "count" / cs.Int16ub)

# --- DECLARE ---------------------------------------------------------------------------------------
DeclareRequest = cs.Struct("end" / BcdDate)  # last day to declare; 0: the last closed day
DeclareReply = DeclarationRecord

# --- CLEAR_UNLOCK ----------------------------------------------------------------------------------
ClearUnlockReply = cs.Struct("period_end" / BcdDate, "controls" / Controls)

# --- READ_JOURNAL ----------------------------------------------------------------------------------
ReadJournalRequest = cs.Struct("offset" / cs.Int32ub, "length" / cs.Int16ub)
ReadJournalReply = cs.Struct(
    "offset" / cs.Int32ub,
    "total" / cs.Int32ub,  # bytes in the read-out stream now
    "data" / cs.GreedyBytes,
)
READ_JOURNAL_MAX = MAX_PAYLOAD - 8  # data bytes in one maximum-size reply (after offset and total)

# --- INSPECT (needs the management card) -----------------------------------------------------------
InspectReply = cs.Struct(
    "machine_no" / Digits(MACHINE_NO_LEN),
    "fiscal_card_no" / cs.Bytes(CARD_NO_LEN),
    "taxpayer_no" / Digits(TAXPAYER_NO_LEN),
    "taxpayer_name" / Text(TAXPAYER_NAME_LEN),
    "init_date" / BcdDate,
    "first_date" / BcdDate,
    "last_date" / BcdDate,
    "daily_count" / cs.Int32ub,
    "declaration_count" / cs.Int32ub,
    "invoice_count" / cs.Int32ub,
    "journal_bytes" / cs.Int32ub,
    "chain_head" / cs.Bytes(HASH_LEN),
)

# --- REPORT ----------------------------------------------------------------------------------------
ReportRequest = cs.Struct("kind" / cs.Int8ub, "start" / BcdDate, "end" / BcdDate)
ReportReply = cs.Struct("kind" / cs.Int8ub, "start" / BcdDate, "end" / BcdDate, "totals" / Totals)


class Command(NamedTuple):
    code: int
    name: str
    mutating: bool
    request: cs.Construct
    reply: cs.Construct
    doc: str


COMMANDS: tuple[Command, ...] = (
    Command(0x01, "GET_INFO", False, Empty, InfoReply, "model, machine number, firmware, capabilities"),
    Command(0x02, "GET_STATUS", False, Empty, StatusReply, "state, locks, warnings and what is left"),
    Command(0x03, "SET_TIME", True, SetTimeRequest, Empty, "set the clock (management card; never back)"),
    Command(0x10, "INITIALIZE", True, InitializeRequest, InitializeReply, "税控初始化, once, by the bureau"),
    Command(0x11, "LOAD_ROLL", True, LoadRollRequest, LoadRollReply, "take one roll from the user card"),
    Command(0x20, "ISSUE_INVOICE", True, IssueInvoiceRequest, IssueInvoiceReply,
            "issue a normal, return or void invoice"),
    Command(0x21, "GET_DOCUMENT", False, GetDocumentRequest, GetDocumentReply,
            "an invoice by number, or the last one"),
    Command(0x30, "DAILY_CLOSE", True, Empty, DailyCloseReply, "close the day, back-filling missed days"),
    Command(0x40, "DECLARE", True, DeclareRequest, DeclareReply, "申报 onto the user card"),
    Command(0x41, "CLEAR_UNLOCK", True, ClearUnlockRequest, ClearUnlockReply, "清零解锁 from the user card"),
    Command(0x50, "READ_JOURNAL", False, ReadJournalRequest, ReadJournalReply, "bulk read-out of fiscal memory"),
    Command(0x51, "INSPECT", False, Empty, InspectReply, "inspector's summary (management card)"),
    Command(0x60, "REPORT", False, ReportRequest, ReportReply, "X, Z or period report"),
)

BY_CODE = {cmd.code: cmd for cmd in COMMANDS}
BY_NAME = {cmd.name: cmd for cmd in COMMANDS}
assert len(BY_CODE) == len(COMMANDS) and len(BY_NAME) == len(COMMANDS)
