"""Verification at the bureau: declarations read from a user card, and the till's signed daily records.

Every check runs and every failure is reported (a report lists problems; it never stops at the first).

Declaration (a DATA_COLLECT record, 161 bytes, or the user card's EF04 record, 162 = status + 161):
  check bytes of the declaration and of the fiscal card's response; dates real and start <= end;
  item slots (item 0 carries no amount; an item appears once); normal_total / return_total equal the sums
  of the item amounts; status byte 0; MAC1 under K_DECL_MAC of that fiscal card and machine, trying each
  master-key generation of the key store (the one that verifies is the card's: report.key_id); the
  Ed25519 signature under the card's public key (recomputed from that generation, or given).
  The signed and MACed payload is the declaration without its check byte || normal_total || return_total
  || status (docs/CRYPTO.md 4.5, 4.6).

Daily record (the till's DAILY record: date, Totals, signature): the signature covers the
DAILY_COLLECT_SIGN data without its check byte, i.e. date(4, BCD) || PeriodSums, where PeriodSums takes
the Totals' counts and its six lines in order (items[i], normal[i], returned[i] = lines[i]).  The till
builds DAILY_COLLECT_SIGN from its Totals the same way: `daily_signed_bytes` is that one definition.

`check_period(report, daily_records)` compares a declaration with the daily records of its period
(domain §3.6): every day present and signed, and the declared sums equal to the days' sums.

Verification is fast on purpose (bench/bench_cards.py: declarations per second against raw Ed25519): the
161 bytes are cut with struct, per-card keys are derived once and cached.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from protocol import apdu
from protocol import calendar
from protocol import crypto
from protocol.crypto import MasterKey, SigKind
from protocol.totals import card_sums, lines_add_up, period_sums

from .bureau_errors import DeclarationRejected, VerificationError

RECORD_LEN = apdu.DataCollectData.sizeof()  # 161
_DECL = struct.Struct(">4s4sIII6B6I6I")  # start end counts items normal returned (74) + xor
_RESP = struct.Struct(">IIB4s64s")  # normal_total return_total status mac1 signature (77) + xor
_DAILY_HEAD = bytes([crypto.SUITE_ID, SigKind.DAILY])
_DECL_HEAD = bytes([crypto.SUITE_ID, SigKind.DECLARATION])


@dataclass
class DeclarationReport:
    fiscal_card_no: bytes
    machine_no: str
    start: int = 0
    end: int = 0
    counts: tuple = (0, 0, 0)  # normal, return, void
    lines: list = field(default_factory=list)  # [(item, normal, returned)] as declared, 6 slots
    normal_total: int = 0
    return_total: int = 0
    mac1: bytes = b""
    signature: bytes = b""
    payload: bytes = b""
    key_id: int | None = None  # master-key generation whose keys verified
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def income(self) -> int:
        """Declared income: normal minus returns (fen)."""
        return self.normal_total - self.return_total

    def raise_if_rejected(self) -> "DeclarationReport":
        if self.problems:
            raise DeclarationRejected("declaration of card %s rejected" % self.fiscal_card_no.hex(), self.problems)
        return self


def _xor(data: bytes) -> int:
    """XOR of up to 128 bytes: fold the bytes as one integer onto its lowest byte."""
    x = int.from_bytes(data, "little")
    for shift in (512, 256, 128, 64, 32, 16, 8):
        x ^= x >> shift
    return x & 0xFF


@lru_cache(maxsize=4096)
def _card_keys(master: MasterKey, card_no: bytes) -> tuple[object, object, bytes]:
    """(SM4-CMAC context keyed with K_DECL_MAC, Ed25519 public key object, raw public key) of one card."""
    keys = crypto.derive_fiscal_card_keys(master, card_no)
    mac = cmac.CMAC(algorithms.SM4(keys.decl_mac))
    return mac, keys.sign_key.public_key(), keys.public_key


@lru_cache(maxsize=4096)
def _identity(card_no: bytes, machine_no: str) -> bytes:
    return crypto.card_identity(card_no, machine_no)


def verify_declaration(keystore, record: bytes, machine_no: str, *, public_key: bytes | None = None
                       ) -> DeclarationReport:
    """Check one declaration record of the fiscal card of `machine_no` (its EF06 entry on the user card)."""
    # R-VERIFY-RECORDS: a declaration is accepted only with a valid MAC and signature; every problem is reported
    record = bytes(record)
    if len(record) == RECORD_LEN + 1:  # EF04 record: status byte first
        record = record[1:]
    card_no = record[:8]
    if len(record) != RECORD_LEN:
        return DeclarationReport(card_no, machine_no,
                                 problems=["record is %d bytes, expected %d" % (len(record), RECORD_LEN)])
    start, end, n, r, v, *rest = _DECL.unpack_from(record, 8)
    normal_total, return_total, status, mac1, signature = _RESP.unpack_from(record, 83)
    items, normal, returned = rest[:6], rest[6:12], rest[12:]
    lines = list(zip(items, normal, returned))
    payload = record[8:82] + record[83:92]
    first, last = calendar.bcd_day(start), calendar.bcd_day(end)
    problems: list[str] = []
    if _xor(record[8:83]):  # data and its check byte XOR to zero
        problems.append("declaration check byte wrong")
    if _xor(record[83:161]):
        problems.append("response check byte wrong")
    if not first or not last:
        problems.append("period dates are not real dates: %s-%s" % (start.hex(), end.hex()))
    elif first > last:
        problems.append("period starts %d after it ends %d" % (first, last))
    if len(set(items) - {0}) != 6 - items.count(0) or any(i == 0 and (a or b) for i, a, b in lines):
        problems.append("item slots: an item declared twice, or an unused slot with an amount")
    if sum(normal) != normal_total or sum(returned) != return_total:
        problems.append("totals %d/%d are not the sums of the item amounts %d/%d"
                        % (normal_total, return_total, sum(normal), sum(returned)))
    if status != 0:
        problems.append("fiscal card status %d, not 0" % status)
    report = DeclarationReport(card_no, machine_no, first or 0, last or 0, (n, r, v), lines, normal_total,
                               return_total, mac1, signature, payload, None, problems)
    try:
        identity = _identity(card_no, machine_no)
    except ValueError as e:
        problems.append(str(e))
        return report
    raw_public = public_key
    for master in keystore.masters():
        base, public_obj, raw = _card_keys(master, card_no)
        ctx = base.copy()  # MAC1 = leftmost 4 bytes of SM4-CMAC (docs/CRYPTO.md 4.5)
        ctx.update(payload + identity)
        if hmac.compare_digest(ctx.finalize()[:4], mac1):
            report.key_id = master.key_id
            if public_key is None:
                raw_public = raw
            break
    else:
        problems.append("MAC1 does not verify for card %s machine %s under any master key"
                        % (card_no.hex(), machine_no))
    if raw_public is None:
        problems.append("no public key to check the signature (MAC1 did not identify the key generation)")
        return report
    try:
        key = public_obj if public_key is None else crypto.load_public_key(public_key)
        key.verify(signature, _DECL_HEAD + payload)
    except InvalidSignature:
        problems.append("declaration signature does not verify")
    except ValueError as e:
        problems.append("bad public key: %s" % e)
    return report


def check_declaration(keystore, record: bytes, machine_no: str, **kw) -> DeclarationReport:
    """verify_declaration, raising DeclarationRejected with every problem if any."""
    return verify_declaration(keystore, record, machine_no, **kw).raise_if_rejected()


# ---- daily records ------------------------------------------------------------------------------------------
def daily_signed_bytes(date: int, totals: dict) -> bytes:
    """The bytes a DAILY record's signature covers: DAILY_COLLECT_SIGN data without its check byte."""
    return apdu.DailyCollectSignData.build(dict(date=date, sums=card_sums(totals)))[:-1]


def verify_daily_record(public_key: bytes, record: dict) -> list[str]:
    """Problems of one daily record (fields of protocol.records.DailyRecord: date, totals, signature)."""
    # R-VERIFY-RECORDS, R-DAILY-EVERY-DAY: each daily record's signature over its DAILY_COLLECT_SIGN data
    problems = []
    totals = record["totals"]
    if not lines_add_up(totals):
        problems.append("%d: totals are not the sums of the lines" % record["date"])
    try:
        crypto.verify_record(public_key, SigKind.DAILY, daily_signed_bytes(record["date"], totals),
                             record["signature"])
    except crypto.SignatureError:
        problems.append("%d: signature does not verify" % record["date"])
    except ValueError as e:
        problems.append("%d: %s" % (record["date"], e))
    return problems


def verify_daily_records(public_key: bytes, records: list[dict]) -> list[str]:
    """Problems of every record (empty list: all verified)."""
    return [p for rec in records for p in verify_daily_record(public_key, rec)]


def check_period(report: DeclarationReport, daily_records: list[dict], public_key: bytes | None = None) -> list[str]:
    """Declared sums against the daily records of the period: a record for every day, signatures (when
    `public_key` is given), and equal counts and per-item amounts.  Returns every problem found."""
    # R-VERIFY-RECORDS, R-DECLARE-PERIOD, R-DAILY-EVERY-DAY: the declaration is the sum of one daily record per day
    problems = []
    days = {rec["date"]: rec for rec in daily_records if report.start <= rec["date"] <= report.end}
    for key in calendar.each_day(report.start, report.end):
        if key not in days:
            problems.append("no daily record for %d" % key)
    if public_key is not None:
        for rec in days.values():
            problems += verify_daily_record(public_key, rec)
    counts, recorded = period_sums(rec["totals"] for rec in days.values())
    declared = {i: (a, b) for i, a, b in report.lines if i and (a or b)}
    if counts != tuple(report.counts):
        problems.append("declared counts %s, daily records give %s" % (tuple(report.counts), counts))
    if declared != recorded:
        problems.append("declared per-item amounts %s, daily records give %s" % (declared, recorded))
    return problems


def require(problems: list[str], what: str) -> None:
    """Raise VerificationError listing `problems`, if any."""
    if problems:
        raise VerificationError(what, problems)
