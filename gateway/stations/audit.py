"""Audit read-out: the till's whole fiscal memory over its link, verified and set against the record.

    result = audit_till(st, TillClient(port), machine_no, partial="m.part", progress=callback)

Reading (READ_JOURNAL, docs/FISCAL_MEMORY.md §8): chunks of READ_JOURNAL_MAX bytes from an offset until the
announced total.  Resumable: bytes already read (`partial`, a file appended to as chunks arrive) are kept
if the stream header (its first 76 bytes: next index, chain head...) is unchanged, else the read starts
over, since the till appended in between.  The till must be the registered machine (GET_INFO) before a
byte is read.

Findings (every one is reported; nothing stops at the first):
  stream      protocol.journal_audit.audit_stream: sector and record CRCs, order, the SHA-256 chain;
  identity    the INIT record: machine, fiscal card, taxpayer of the record; exactly one INIT;
  daily       each DAILY signature under the fiscal card's public key (derived from the key store's master
              key of the card's generation); dates strictly consecutive (one record per calendar day);
  counters    invoice numbers consecutive within each roll from its first number, inside the roll, of the
              loaded roll's code; a used-up roll's usage record adds up to its size;
  dates       INIT, invoices, declarations, clear-unlocks, roll loads and events never go back in time;
  declarations each signature verifies; periods follow each other; each matches the declaration on
              record (same MAC and signature) and its daily records (gateway.verify.check_period); each
              declaration on record is in fiscal memory;
  bureau      every roll loaded was sold for this machine, every clear-unlock was issued for it;
  events      the bureau's own event log: chain, MACs, anchors (gateway.db.eventlog; where = its seq).
Notes (not problems): a declaration made at the till and not yet filed at the window.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import construct as cs
from sqlalchemy import select

from protocol import apdu
from protocol import calendar
from protocol import crypto
from protocol import records
from protocol.commands import READ_JOURNAL_MAX
from protocol.crypto import SigKind
from protocol.journal_audit import audit_stream
from protocol.journal_format import STREAM_HDR_SIZE
from protocol.totals import card_sums, counts_of, lines_of

from ..db.eventlog import verify as verify_log
from ..db.models import Audit, ClearUnlock, Declaration, Machine, Roll
from ..link import LinkError, TillClient
from ..verify import DeclarationReport, check_period, verify_daily_record
from .common import FOREIGN_TILL, TILL, UNKNOWN, Refused, Station, fiscal_card_of, lock_taxpayer, log

Progress = Callable[[int, int], None]


# ---- reading ---------------------------------------------------------------------------------------------------
def read_journal(till: TillClient, *, partial: str | os.PathLike | None = None,
                 progress: Progress | None = None, chunk: int = READ_JOURNAL_MAX) -> bytes:
    """The whole READ_JOURNAL stream; resumes from `partial` (kept up to date) when the stream is unchanged."""
    have = bytearray()
    path = Path(partial) if partial else None
    if path and path.exists():
        have += path.read_bytes()
    first = till.call_ok("READ_JOURNAL", dict(offset=0, length=min(chunk, READ_JOURNAL_MAX)))
    if bytes(have[:STREAM_HDR_SIZE]) != bytes(first.data[:STREAM_HDR_SIZE]) or len(have) > first.total:
        have = bytearray(first.data)  # a new read, or the till appended since: start over
        if path:
            path.write_bytes(have)
    total = first.total
    out = open(path, "ab") if path else None
    try:
        while len(have) < total:
            if progress:
                progress(len(have), total)
            r = till.call_ok("READ_JOURNAL", dict(offset=len(have), length=min(chunk, READ_JOURNAL_MAX)))
            if r.total != total or not r.data:
                raise LinkError("the journal changed during the read-out (%d -> %d bytes); read again" % (total, r.total))
            have += r.data
            if out:
                out.write(r.data)
                out.flush()
    finally:
        if out:
            out.close()
    if progress:
        progress(len(have), total)
    return bytes(have[:total])


# ---- analysis --------------------------------------------------------------------------------------------------
@dataclass
class Expected:
    """What the bureau's record says about the machine."""
    machine_no: str
    fiscal_card_no: bytes
    taxpayer_no: str
    public_key: bytes
    declarations: dict = field(default_factory=dict)  # period_end -> (id, start, record bytes)
    clear_unlocks: dict = field(default_factory=dict)  # period_end -> sequence
    rolls: set = field(default_factory=set)  # (code, start, end)


@dataclass
class Findings:
    problems: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def add(self, kind: str, where, detail: str) -> None:
        self.problems.append({"kind": kind, "where": str(where), "detail": detail})

    @property
    def ok(self) -> bool:
        return not self.problems


def _totals(t) -> dict:
    return {"normal_count": t.normal_count, "return_count": t.return_count, "void_count": t.void_count,
            "normal_total": t.normal_total, "return_total": t.return_total,
            "lines": [{"item": ln.item, "normal": ln.normal, "returned": ln.returned} for ln in t.lines]}


def declaration_payload(start: int, end: int, totals: dict) -> bytes:
    """What a declaration's MAC1 and signature cover (docs/CRYPTO.md 4.5): DECLARE_DUTY data without its
    check byte || normal total || return total || status 0."""
    data = apdu.DeclareDutyData.build(dict(start=start, end=end, sums=card_sums(totals)))[:-1]
    return data + totals["normal_total"].to_bytes(4, "big") + totals["return_total"].to_bytes(4, "big") + b"\x00"


def analyse(stream: bytes, exp: Expected) -> Findings:
    """Every finding about one journal stream against the record."""
    # R-VERIFY-RECORDS, R-FM-APPEND-ONLY: every record of the read-out is checked and each finding kept;
    # R-DAILY-EVERY-DAY
    f = Findings()
    rep = audit_stream(stream)
    for kind, where, detail in rep.problems:
        f.add("stream:" + kind, where, detail)
    walk = _Walk(f, exp)
    for idx, rtype, body in rep.records:
        walk.record(idx, rtype, body)
    if len(walk.inits) != 1:
        f.add("identity", "INIT", "%d INIT records, expected exactly 1" % len(walk.inits))
    _declarations(f, exp, walk.declared, walk.dailies)
    f.summary = walk.summary(rep)
    return f


class _Walk:
    """One pass over the fiscal records in journal order: each record type has its own check, and the
    state they share (the loaded roll, the last date, the daily records so far) lives here."""

    def __init__(self, f: Findings, exp: Expected) -> None:
        self.f, self.exp = f, exp
        self.counts: dict[str, int] = {}
        self.inits: list[int] = []
        self.dailies: list[dict] = []
        self.declared: list[tuple] = []
        self.last_when, self.last_idx = 0, None
        self.roll: dict | None = None  # the loaded roll: code, start, end, normal, returned, voided, next
        self.rolls: dict[tuple, dict] = {}
        self.checks = {records.REC_INIT: self.init, records.REC_DAILY: self.daily,
                       records.REC_ROLL_LOAD: self.roll_load, records.REC_INVOICE: self.invoice,
                       records.REC_ROLL_USAGE: self.roll_usage, records.REC_DECLARATION: self.declaration,
                       records.REC_CLEAR_UNLOCK: self.clear_unlock}

    def record(self, idx: int, rtype: int, body: bytes) -> None:
        name, layout = records.RECORDS.get(rtype, ("type %d" % rtype, None))
        self.counts[name] = self.counts.get(name, 0) + 1
        if layout is None:
            self.f.add("record", idx, "unknown record type %d" % rtype)
            return
        try:
            rec = layout.parse(body)
        except (cs.ConstructError, ValueError) as e:
            self.f.add("record", idx, "%s record does not parse: %s" % (name, e))
            return
        gap = self.last_idx is not None and idx != self.last_idx + 1
        self.last_idx = idx
        self.dates(idx, rtype, name, rec)
        check = self.checks.get(rtype)
        if check is not None:
            check(idx, rec, gap)

    def dates(self, idx: int, rtype: int, name: str, rec) -> None:
        """Records other than DAILY never go back in time (a DAILY may be back-filled for a past day)."""
        when = getattr(rec, "date", 0)
        if rtype != records.REC_DAILY and when:
            if when < self.last_when:
                self.f.add("dates", idx, "%s dated %d after a record dated %d: the clock went back" % (
                    name, when, self.last_when))
            self.last_when = max(self.last_when, when)

    def init(self, idx: int, rec, _gap: bool) -> None:
        self.inits.append(idx)
        for fld, want in (("machine_no", self.exp.machine_no), ("taxpayer_no", self.exp.taxpayer_no)):
            if getattr(rec, fld) != want:
                self.f.add("identity", idx, "INIT %s is %s, the record says %s" % (fld, getattr(rec, fld), want))
        if rec.fiscal_card_no != self.exp.fiscal_card_no:
            self.f.add("identity", idx, "INIT fiscal card %s, the record says %s" % (
                rec.fiscal_card_no.hex(), self.exp.fiscal_card_no.hex()))

    def daily(self, idx: int, rec, _gap: bool) -> None:
        d = {"date": rec.date, "totals": _totals(rec.totals), "signature": rec.signature}
        for p in verify_daily_record(self.exp.public_key, d):
            self.f.add("daily", idx, p)
        if self.dailies and rec.date != calendar.next_day(self.dailies[-1]["date"]):
            prev = self.dailies[-1]["date"]
            self.f.add("daily", idx, "daily record for %d follows %d: days %s" % (
                rec.date, prev, "missing" if rec.date > prev else "repeated or back"))
        self.dailies.append(d)

    def roll_load(self, idx: int, rec, _gap: bool) -> None:
        key = (rec.code, rec.start, rec.end)
        if key not in self.exp.rolls:
            self.f.add("bureau", idx, "roll %s %d-%d loaded, never sold for machine %s" % (key + (self.exp.machine_no,)))
        self.roll = self.rolls.setdefault(key, _new_roll(rec.code, rec.start, rec.end, rec.start))

    def invoice(self, idx: int, rec, gap: bool) -> None:
        """Numbers run on within the loaded roll; after a gap in the read-out the roll is found by number."""
        roll = self.roll
        if roll is None or rec.code != roll["code"]:
            if not gap and roll is not None:
                self.f.add("counters", idx, "invoice %s/%d is not of the loaded roll %s" % (
                    rec.code, rec.number, roll["code"]))
            roll = self.roll = self.roll_of(rec.code, rec.number)
        elif rec.number != roll["next"] and not gap:
            self.f.add("counters", idx, "invoice number %d follows %d in roll %s" % (
                rec.number, roll["next"] - 1, rec.code))
        if roll["end"] and not roll["start"] <= rec.number <= roll["end"]:
            self.f.add("counters", idx, "invoice %d outside roll %s %d-%d" % (
                rec.number, rec.code, roll["start"], roll["end"]))
        roll["next"] = rec.number + 1
        roll[{1: "normal", 2: "returned", 3: "voided"}.get(rec.kind, "voided")] += 1

    def roll_of(self, code: str, number: int) -> dict:
        """The loaded roll an invoice number belongs to, or a roll of unknown range (start = end = 0)."""
        for r in self.rolls.values():
            if r["code"] == code and r["start"] <= number <= r["end"]:
                return r
        return self.rolls.setdefault((code, 0, 0), _new_roll(code, 0, 0, number))

    def roll_usage(self, idx: int, rec, _gap: bool) -> None:
        key = (rec.code, rec.start, rec.end)
        if rec.normal + rec.returned + rec.voided != rec.end - rec.start + 1:
            self.f.add("counters", idx, "roll %s %d-%d used up with %d+%d+%d invoices" % (
                key + (rec.normal, rec.returned, rec.voided)))
        r = self.rolls.setdefault(key, dict(code=rec.code, start=rec.start, end=rec.end, next=rec.end + 1))
        r.update(normal=rec.normal, returned=rec.returned, voided=rec.voided, used_up=True)

    def declaration(self, idx: int, rec, _gap: bool) -> None:
        t = _totals(rec.totals)
        try:
            crypto.verify_record(self.exp.public_key, SigKind.DECLARATION,
                                 declaration_payload(rec.start, rec.end, t), rec.signature)
        except crypto.SignatureError:
            self.f.add("declarations", idx, "declaration %d-%d: signature does not verify" % (rec.start, rec.end))
        if self.declared and rec.start <= self.declared[-1][1]:
            self.f.add("declarations", idx, "declaration %d-%d overlaps the previous one ending %d" % (
                rec.start, rec.end, self.declared[-1][1]))
        self.declared.append((rec.start, rec.end, t, rec, idx))

    def clear_unlock(self, idx: int, rec, _gap: bool) -> None:
        if self.exp.clear_unlocks.get(rec.period_end) != rec.sequence:
            self.f.add("bureau", idx, "clear-unlock of the period ending %d (sequence %d) was not issued by this "
                       "bureau for machine %s" % (rec.period_end, rec.sequence, self.exp.machine_no))

    def summary(self, rep) -> dict:
        hdr, dailies = rep.header, self.dailies
        return {
            "records": self.counts, "chain_ok": rep.chain_ok, "chain_head": hdr.chain_head.hex() if hdr else None,
            "first_day": dailies[0]["date"] if dailies else None,
            "last_day": dailies[-1]["date"] if dailies else None,
            "declarations": [{"start": s, "end": e, "normal_total": t["normal_total"],
                              "return_total": t["return_total"]} for s, e, t, _r, _i in self.declared],
            "rolls": [{k: v for k, v in r.items() if k != "next"} | {"last_number": r["next"] - 1}
                      for key, r in self.rolls.items() if key[1]],
        }


def _new_roll(code: str, start: int, end: int, first: int) -> dict:
    return dict(code=code, start=start, end=end, normal=0, returned=0, voided=0, next=first, used_up=False)


def _declarations(f: Findings, exp: Expected, declared: list, dailies: list) -> None:
    # R-VERIFY-RECORDS, R-DECLARE-PERIOD
    seen = set()
    for start, end, t, rec, idx in declared:
        seen.add(end)
        report = DeclarationReport(exp.fiscal_card_no, exp.machine_no, start, end, counts_of(t), lines_of(t),
                                   t["normal_total"], t["return_total"])
        for p in check_period(report, dailies):
            f.add("declarations", idx, "declaration %d-%d against its daily records: %s" % (start, end, p))
        on_record = exp.declarations.get(end)
        if on_record is None:
            f.notes.append({"kind": "not-filed", "where": str(idx),
                            "detail": "declaration %d-%d made at the till, not yet filed at the window" % (start, end)})
            continue
        did, rstart, raw = on_record
        if rstart != start or raw[92:96] != rec.mac or raw[96:160] != rec.signature:
            f.add("declarations", idx, "declaration %d-%d differs from declaration #%d on record" % (start, end, did))
    for end, (did, start, _raw) in sorted(exp.declarations.items()):
        if end not in seen:
            f.add("declarations", "record #%d" % did, "declaration %d-%d on record is not in fiscal memory" % (start, end))


def event_log(f: Findings, session, st: Station) -> None:
    """The bureau's own event log (gateway.db.eventlog.verify) goes into every audit: its problems are
    findings of kind `events`, where = the sequence number; the summary keeps its head."""
    # R-ONE-HOUSEHOLD: the audit carries the verified head of the event log
    rep = verify_log(session, st.keystore)
    for p in rep.problems:
        f.add("events", "event %d" % p["seq"], "%s: %s" % (p["kind"], p["detail"]))
    f.summary["event_log"] = {k: v for k, v in rep.as_dict().items() if k != "problems"}


# ---- the station -----------------------------------------------------------------------------------------------
@dataclass
class AuditResult:
    audit_id: int
    machine_no: str
    journal_bytes: int
    journal_sha256: str
    findings: Findings

    @property
    def ok(self) -> bool:
        return self.findings.ok

    def as_dict(self) -> dict:
        return {"audit_id": self.audit_id, "machine_no": self.machine_no, "journal_bytes": self.journal_bytes,
                "journal_sha256": self.journal_sha256, "ok": self.ok, "problems": self.findings.problems,
                "notes": self.findings.notes, "summary": self.findings.summary}


def expected(st: Station, s, m: Machine) -> Expected:
    fc = fiscal_card_of(s, m)
    card_no = bytes.fromhex(fc.card_no)
    public = crypto.derive_fiscal_card_keys(st.keystore.master(fc.key_ref.key_id), card_no).public_key
    exp = Expected(m.machine_no, card_no, m.taxpayer.taxpayer_no, public)
    for d in s.execute(select(Declaration).where(Declaration.machine_id == m.id)).scalars():
        exp.declarations[d.period_end] = (d.id, d.period_start, d.record)
    for cu in s.execute(select(ClearUnlock).where(ClearUnlock.machine_id == m.id)).scalars():
        exp.clear_unlocks[cu.period_end] = cu.sequence
    exp.rolls = {(r.code, r.start_no, r.end_no) for r in
                 s.execute(select(Roll).where(Roll.machine_id == m.id)).scalars()}
    return exp


def audit_till(st: Station, till: TillClient, machine_no: str, *, partial: str | os.PathLike | None = None,
               progress: Progress | None = None) -> AuditResult:
    """Read out, verify and store an audit of the registered till `machine_no` on `till`'s line."""
    # R-VERIFY-RECORDS
    with st.store.transaction() as s:
        m = s.execute(select(Machine).where(Machine.machine_no == machine_no)).scalar_one_or_none()
        if m is None:
            raise Refused(UNKNOWN, "no machine %s is registered" % machine_no)
        taxpayer_no = m.taxpayer.taxpayer_no
        fiscal_card_of(s, m)
    try:
        info = till.call_ok("GET_INFO")
        if info.machine_no != machine_no:
            raise Refused(FOREIGN_TILL, "the till on %s is machine %s, not %s: nothing read" % (
                till.port_name, info.machine_no, machine_no))
        stream = read_journal(till, partial=partial, progress=progress)
    except LinkError as e:
        raise Refused(TILL, "read-out of machine %s failed: %s%s" % (
            machine_no, e, "; run again to resume" if partial else "")) from None
    with st.store.transaction() as s:
        tp = lock_taxpayer(s, taxpayer_no)
        m = s.execute(select(Machine).where(Machine.machine_no == machine_no)).scalar_one()
        findings = analyse(stream, expected(st, s, m))
        event_log(findings, s, st)
        digest = hashlib.sha256(stream).hexdigest()
        a = Audit(taxpayer_id=tp.id, machine_id=m.id, journal_bytes=len(stream), journal_sha256=digest,
                  chain_head=findings.summary.get("chain_head") or "", ok=findings.ok,
                  findings=findings.problems + findings.notes, summary=findings.summary, station=st.name)
        s.add(a)
        s.flush()
        log(s, st, "audit.stored", tp, audit_id=a.id, machine_no=machine_no, ok=findings.ok,
            problems=len(findings.problems), journal_bytes=len(stream), journal_sha256=digest)
        result = AuditResult(a.id, machine_no, len(stream), digest, findings)
    if partial:
        Path(partial).unlink(missing_ok=True)
    return result
