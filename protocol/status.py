"""Enumerations that cross the link: till states, lock reasons, warnings, capabilities, kinds and events.

Lock reasons and warnings are bit numbers in the 32-bit masks of the GET_STATUS reply.  Every lock reason
names the error code a refused ISSUE_INVOICE carries while it stands (seed 二(七) and domain §4), so a host
can explain a lock without a second table.  The firmware's copies are generated (`protocol.codegen`).
"""

from __future__ import annotations

from typing import NamedTuple

# Till states (GET_STATUS.state)
STATE_NEW = 0  # factory state: not initialized
STATE_IN_SERVICE = 1  # initialized; may still be locked (see lock_reasons)

STATES = {STATE_NEW: "NEW", STATE_IN_SERVICE: "IN_SERVICE"}


class LockReason(NamedTuple):
    bit: int
    name: str
    error: str  # the protocol.errors name a refused ISSUE_INVOICE carries


LOCK_REASONS: tuple[LockReason, ...] = (
    LockReason(0, "NOT_INITIALIZED", "LOCK_NOT_INITIALIZED"),
    LockReason(1, "DEADLINE", "LOCK_DEADLINE"),
    LockReason(2, "CUMULATIVE_LIMIT", "LOCK_CUMULATIVE_LIMIT"),
    LockReason(3, "RETURN_LIMIT", "LOCK_RETURN_LIMIT"),
    LockReason(4, "NO_ROLL", "LOCK_NO_ROLL"),
    LockReason(5, "FM_FULL", "LOCK_FM_FULL"),
    LockReason(6, "FISCAL_CARD_MISSING", "LOCK_FISCAL_CARD_MISSING"),
    LockReason(7, "FISCAL_CARD_UNREGISTERED", "LOCK_FISCAL_CARD_UNREGISTERED"),
    LockReason(8, "FISCAL_CARD_FOREIGN", "LOCK_FISCAL_CARD_FOREIGN"),
    LockReason(9, "PIN_BLOCKED", "LOCK_PIN_BLOCKED"),
    LockReason(10, "MAC", "LOCK_MAC"),
    LockReason(11, "SERVICE_LIFE", "LOCK_SERVICE_LIFE"),
    LockReason(12, "FM_DAMAGED", "LOCK_FM_DAMAGED"),
    LockReason(13, "CLOCK_FAULT", "LOCK_CLOCK_FAULT"),
)


class Warning_(NamedTuple):
    bit: int
    name: str
    en: str


WARNINGS: tuple[Warning_, ...] = (
    Warning_(0, "DEADLINE_NEAR", "invoice deadline within the warning threshold"),
    Warning_(1, "AMOUNT_75", "cumulative invoice amount at or above 75 % of its limit"),
    Warning_(2, "RETURN_75", "cumulative return amount at or above 75 % of its limit"),
    Warning_(3, "FM_90", "a fiscal-memory class is at or above 90 %"),
    Warning_(4, "ROLL_LOW", "few invoices left in the loaded roll"),
    Warning_(5, "DECLARATION_PENDING", "a declaration waits for clear-unlock at the bureau"),
    Warning_(6, "NON_FISCAL", "test keys in use: every document is NON-FISCAL"),
    Warning_(7, "MAC_LAST_TRY", "the fiscal card is one MAC refusal from its permanent lock"),
)

# Flags byte of LOAD_ROLL and CLEAR_UNLOCK requests (bit numbers)
REQUEST_FLAGS = {
    0: "CONFIRM_MAC",  # pass MAC-bearing data to a fiscal card that has one MAC try left (docs/FIRMWARE.md)
}

# GET_STATUS.damage_kind: what fiscal-memory (or nvram) damage the till found first; 0 when none
DAMAGE_KINDS = {
    0: "NONE",
    1: "RECORD_CRC",  # a committed record fails its CRC
    2: "SECTOR_HEADER",  # a sector header is unreadable
    3: "SEQUENCE",  # sector sequence numbers out of order or duplicated
    4: "LOST_RECORDS",  # records missing between good ones
    5: "CHAIN",  # the SHA-256 chain does not link
    6: "GARBAGE",  # unreadable bytes followed by a good record
    7: "TORN_OPEN",  # an open sector torn where nothing may be torn
    8: "FOREIGN_DEVICE",  # the partition was written by another device
    9: "FOREIGN_SECTOR",  # one sector carries another device's identity
    10: "AREA",  # a sector found in the wrong area
    11: "LAYOUT",  # the partition's geometry does not match its headers
    12: "TRUNCATED",  # fewer records than the fiscal card and nvram anchors say exist
    13: "ROLLBACK",  # the journal is an older copy than the anchors say
    14: "MEDIA",  # the flash cannot be read or formatted
    15: "NVRAM",  # nvram holds unreadable data
    16: "OTHER",
}
DAMAGE_NONE_FIELD = 0xFFFFFFFF  # damage_offset / damage_index when not known; damage_sector uses 0xFFFF

# GET_INFO.capabilities bits
CAPABILITIES = {
    0: "RETURN_INVOICE",
    1: "VOID_INVOICE",
    2: "MANAGEMENT_CARD",
    3: "PRINTER",
    4: "JOURNAL_READOUT",
    5: "SIMULATOR",
}

# ISSUE_INVOICE.kind, and the card's ISSUE_INVOICE type byte (domain §2: 01 normal, 02 return, 03 void)
INVOICE_NORMAL = 1
INVOICE_RETURN = 2
INVOICE_VOID = 3
INVOICE_KINDS = {INVOICE_NORMAL: "NORMAL", INVOICE_RETURN: "RETURN", INVOICE_VOID: "VOID"}

# REPORT.kind
REPORT_X = 1  # running totals since the last daily close, nothing reset
REPORT_Z = 2  # one closed day, from its daily record
REPORT_PERIOD = 3  # a range of closed days
REPORT_KINDS = {REPORT_X: "X", REPORT_Z: "Z", REPORT_PERIOD: "PERIOD"}

# EVENT record codes
EVENTS = {
    1: "POWER_ON",
    2: "POWER_FAIL_RECOVERED",
    3: "LOCKED",
    4: "UNLOCKED",
    5: "CLOCK_SET",
    6: "INSPECTION",
    7: "CARD_FAULT",
    8: "FM_DAMAGE_FOUND",
    9: "ROLL_REFUSED",  # the fiscal card refused a roll's MAC; arg: the roll's start number
    10: "CONTROLS_REFUSED",  # the fiscal card refused clear-unlock data's MAC; arg: MAC tries left
}


def mask_names(mask: int, table: tuple[LockReason, ...] | tuple[Warning_, ...]) -> list[str]:
    """Names of the bits set in a lock-reason or warning mask; unknown bits as BIT<n>."""
    names = [row.name for row in table if mask >> row.bit & 1]
    known = 0
    for row in table:
        known |= 1 << row.bit
    names += ["BIT%d" % b for b in range(32) if (mask & ~known) >> b & 1]
    return names
