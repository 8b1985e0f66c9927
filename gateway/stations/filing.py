"""The filing window (申报受理, 一窗式): read the user card, verify, compare, surcharge, clear-unlock, refer.

    reading = read_card(st, reader, taxpayer_no)          # verify every pending declaration; show totals
    outcome = file(st, reader, taxpayer_no, typed("1234.50"))   # accept (clear-unlock) or shortfall
    outcome = file(st, reader, taxpayer_no, typed("1000"), explanation="...")   # shortfall -> referral

The seed's order (二(七)) as rules:
  1. The user card must be one this bureau issued to this taxpayer, and every declaration pending on it
     must verify (check bytes, MAC1, signature: gateway.verify) for a machine of this taxpayer.  Any
     failure refuses the whole visit; nothing is written.
  2. Compare: declared income >= recorded income (normal - return for the period, from the card) ->
     accepted; otherwise a shortfall: the filing is refused and the taxpayer is asked to correct it
     (a corrected filing is simply filed again: attempt 2, 3...), or, with an explanation, a referral
     to the tax source department is opened.  Every attempt is kept (comparisons).
  3. Accepted: the late surcharge is assessed (gateway.stations.surcharge), then the clear-unlock data
     for that declaration is sealed (gateway.issuance.issue_controls: new deadline, the machine's limits,
     sequence period end x 100) and written to the card, and the declaration marked CLEARED on it.

The clear-unlock is written in two phases (gateway.stations.cardwrite: neither lost nor doubled): its row
is committed "writing" (unique per declaration and per machine and period), the card is written, the row
marked "written".  A card showing a declaration pending whose clear-unlock is "written" is a replayed or
restored card: refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from protocol import cardfiles

from .. import issuance
from ..bureau_errors import BureauError
from ..db.models import ClearUnlock, Comparison, Declaration, Machine, Referral, Surcharge, Taxpayer
from ..usercard import UserCardSession
from ..verify import DeclarationReport, verify_declaration
from . import cardwrite, surcharge
from .common import (CARD, CONFLICT, FOREIGN_CARD, ORDER, REPLAYED, TAMPERED, UNKNOWN, Refused, Station, card_row,
                     integrity, lock_taxpayer, log, user_card_of)
from .income import DeclaredIncome, check_against


@dataclass
class Pending:
    """One declaration pending on the card, verified and on record."""
    recno: int
    declaration_id: int
    machine_no: str
    report: DeclarationReport

    def as_dict(self) -> dict:
        r = self.report
        return {"card_record": self.recno, "declaration_id": self.declaration_id, "machine_no": self.machine_no,
                "fiscal_card_no": r.fiscal_card_no.hex(), "period_start": r.start, "period_end": r.end,
                "normal_count": r.counts[0], "return_count": r.counts[1], "void_count": r.counts[2],
                "normal_total_fen": r.normal_total, "return_total_fen": r.return_total,
                "recorded_income_fen": r.income,
                "lines": [{"item": i, "normal_fen": n, "returned_fen": rt} for i, n, rt in r.lines if i]}


@dataclass
class CardReading:
    user_card_no: str
    taxpayer_no: str
    taxpayer_name: str
    pending: list[Pending] = field(default_factory=list)
    finished: list[dict] = field(default_factory=list)  # clear-unlocks this visit finished writing

    def as_dict(self) -> dict:
        return {"user_card_no": self.user_card_no, "taxpayer_no": self.taxpayer_no,
                "taxpayer_name": self.taxpayer_name, "pending": [p.as_dict() for p in self.pending],
                "finished_clear_unlocks": self.finished}


@dataclass
class Outcome:
    declaration: dict
    attempt: int
    outcome: str  # accepted | shortfall
    declared: DeclaredIncome
    recorded: int
    assessment: surcharge.Assessment | None = None
    clear_unlock: dict | None = None
    referral_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"

    @property
    def shortfall(self) -> int:
        return max(0, self.recorded - self.declared.income)

    def as_dict(self) -> dict:
        return {"declaration": self.declaration, "attempt": self.attempt, "outcome": self.outcome,
                "declared": self.declared.as_dict(), "recorded_income_fen": self.recorded,
                "shortfall_fen": self.shortfall,
                "surcharge": self.assessment.as_dict() if self.assessment else None,
                "clear_unlock": self.clear_unlock, "referral_id": self.referral_id}


# ---- reading the card ----------------------------------------------------------------------------------------
def _open(st: Station, reader) -> UserCardSession:
    card = UserCardSession(reader, st.keystore)
    try:
        card.open()
    except BureauError as e:
        raise Refused(CARD, "cannot read the user card: %s" % e) from None
    return card


def _machine_for(s, tp: Taxpayer, fiscal_card_no: bytes) -> Machine:
    fc = card_row(s, fiscal_card_no)
    if fc is None or fc.kind != "fiscal":
        raise Refused(UNKNOWN, "the card holds a declaration of fiscal card %s, which this bureau did not issue"
                      % fiscal_card_no.hex())
    m = s.get(Machine, fc.machine_id)
    if m.taxpayer_id != tp.id:
        raise Refused(FOREIGN_CARD, "the card holds a declaration of machine %s, which belongs to another "
                      "taxpayer, not %s" % (m.machine_no, tp.taxpayer_no))
    return m


def verify_record(st: Station, s, tp: Taxpayer, record: bytes, cache: dict | None = None
                  ) -> tuple[Machine, DeclarationReport, bytes]:
    """Check one declaration record (EF04 record or the 161 bytes) of a machine of `tp`: (machine, report,
    the 161 bytes); Refused(tampered) listing every problem.  `cache`: lookups kept for one transaction."""
    # R-VERIFY-RECORDS: nothing from the card is believed before its MAC and signature verify
    body = bytes(record[1:] if len(record) == 162 else record)
    key = ("machine", tp.id, body[:8])
    m = cache.get(key) if cache is not None else None
    if m is None:
        m = _machine_for(s, tp, body[:8])
        if cache is not None:
            cache[key] = m
    report = verify_declaration(st.keystore, body, m.machine_no)
    if not report.ok:
        raise Refused(TAMPERED, "the declaration of machine %s does not verify: nothing was accepted"
                      % m.machine_no, report.problems)
    return m, report, body


def _record_declaration(st: Station, s, tp: Taxpayer, m: Machine, report: DeclarationReport,
                        body: bytes) -> tuple[Declaration, bool]:
    """(the declaration's row, True if new: added, not flushed); refused if another one holds its period.
    A new row's "declaration.received" event is the caller's to log once the row has its id."""
    digest = hashlib.sha256(body).hexdigest()
    d = s.execute(select(Declaration).where(Declaration.machine_id == m.id,
                                            Declaration.period_end == report.end)).scalar_one_or_none()
    if d is not None:
        if d.digest != digest:
            raise Refused(CONFLICT, "machine %s already has a different declaration on record for the period "
                          "ending %d (declaration #%d)" % (m.machine_no, report.end, d.id))
        return d, False
    d = Declaration(taxpayer_id=tp.id, machine_id=m.id, period_start=report.start, period_end=report.end,
                    record=body, digest=digest, normal_count=report.counts[0], return_count=report.counts[1],
                    void_count=report.counts[2], normal_total=report.normal_total,
                    return_total=report.return_total, lines=[list(x) for x in report.lines if x[0]],
                    key_id=report.key_id, station=st.name)
    s.add(d)
    return d, True


def _received(st: Station, s, tp: Taxpayer, m: Machine, d: Declaration) -> None:
    log(s, st, "declaration.received", tp, declaration_id=d.id, machine_no=m.machine_no, period_start=d.period_start,
        period_end=d.period_end, normal_total=d.normal_total, return_total=d.return_total, digest=d.digest)


def _scan(st: Station, s, card: UserCardSession, tp: Taxpayer) -> tuple[list[Pending], list[ClearUnlock]]:
    """Verify and record every SIGNED declaration on the card; clear-unlocks to finish writing."""
    pending, resume = [], []
    for recno, status, record in card.declarations():
        if status != cardfiles.DECL_SIGNED:
            continue
        m, report, body = verify_record(st, s, tp, record)
        d, new = _record_declaration(st, s, tp, m, report, body)
        if new:
            s.flush()
            _received(st, s, tp, m, d)
            pending.append(Pending(recno, d.id, m.machine_no, report))
            continue
        cu = d.clear_unlock
        if cu is not None and cu.state == "written":
            raise Refused(REPLAYED, "the declaration of machine %s for %d-%d was cleared-unlocked on %s by %s "
                          "(clear-unlock #%d), yet the card shows it pending: a replayed or restored card"
                          % (m.machine_no, d.period_start, d.period_end, cu.at.date(), cu.station, cu.id))
        if cu is not None:
            cardwrite.refuse_if_in_progress(st, cu.station, cu.at, "the clear-unlock of machine %s for %d"
                                            % (m.machine_no, d.period_end))
            resume.append((recno, cu))
            continue
        pending.append(Pending(recno, d.id, m.machine_no, report))
    return pending, resume


def _finish(st: Station, card: UserCardSession, taxpayer_no: str, recno: int, cu_id: int) -> dict:
    """Phase 2: write a committed clear-unlock to the card and mark it written."""
    # R-CLEAR-UNLOCK: the clear-unlock data reach the card once, neither lost nor doubled
    with st.store.transaction() as s:
        cu = s.get(ClearUnlock, cu_id)
        record = cu.record

    def put() -> None:
        card.put_controls(record)
        card.set_declaration_status(recno, cardfiles.DECL_CLEARED)
    cardwrite.write(card, put, "the clear-unlock #%d is on record but writing the card failed" % cu_id,
                    "present the card again to finish")
    return cardwrite.mark_written(
        st, taxpayer_no, ClearUnlock, cu_id, "clear-unlock.written",
        lambda cu: dict(clear_unlock_id=cu.id, declaration_id=cu.declaration_id, period_end=cu.period_end,
                        sequence=cu.sequence),
        lambda cu, _taxpayer: {"clear_unlock_id": cu.id, "period_end": cu.period_end, "deadline": cu.deadline,
                               "single_limit_fen": cu.single_limit, "cumulative_limit_fen": cu.cumulative_limit,
                               "return_limit_fen": cu.return_limit, "sequence": cu.sequence})


def _visit(st: Station, reader, taxpayer_no: str) -> tuple[UserCardSession, CardReading]:
    card = _open(st, reader)
    with st.store.transaction() as s:
        tp = lock_taxpayer(s, taxpayer_no)
        uc = user_card_of(s, tp, card.identity)
        card.key_id = uc.key_ref.key_id
        pending, resume = _scan(st, s, card, tp)
        reading = CardReading(uc.card_no, tp.taxpayer_no, tp.name, pending)
        resume_ids = [(recno, cu.id) for recno, cu in resume]
    reading.finished = [_finish(st, card, taxpayer_no, recno, cu_id) for recno, cu_id in resume_ids]
    return card, reading


def read_card(st: Station, reader, taxpayer_no: str) -> CardReading:
    """Read and verify the user card at the window; finish any clear-unlock left half-written."""
    return _visit(st, reader, taxpayer_no)[1]


# ---- filing -----------------------------------------------------------------------------------------------------
def file(st: Station, reader, taxpayer_no: str, declared: DeclaredIncome, *, machine_no: str | None = None,
         explanation: str | None = None) -> Outcome:
    """One filing at the window for the card's pending declaration (of `machine_no` if it holds several)."""
    if explanation is not None and not explanation.strip():
        raise Refused("bad-input", "an explanation must not be empty")
    card, reading = _visit(st, reader, taxpayer_no)
    choices = [p for p in reading.pending if machine_no in (None, p.machine_no)]
    if not choices:
        raise Refused(ORDER, "the user card holds no pending declaration%s: declare at the till first (DECLARE), "
                      "then come to the window" % (" of machine %s" % machine_no if machine_no else ""))
    if len(choices) > 1:
        raise Refused("bad-input", "the card holds declarations of several machines (%s): name the machine"
                      % ", ".join(p.machine_no for p in choices))
    p = choices[0]
    outcome, cu_id = decide(st, taxpayer_no, declared, report=p.report, declaration_id=p.declaration_id,
                            explanation=explanation)
    if cu_id is not None:
        outcome.clear_unlock = _finish(st, card, taxpayer_no, p.recno, cu_id)
    return outcome


def decide(st: Station, taxpayer_no: str, declared: DeclaredIncome, *, record: bytes | None = None,
           report: DeclarationReport | None = None, declaration_id: int | None = None,
           explanation: str | None = None) -> tuple[Outcome, int | None]:
    """Compare and, when accepted, assess and commit the clear-unlock (phase 1): (outcome, id of the
    clear-unlock to write to the card, or None).  Either the raw declaration `record` (verified here, in
    the transaction: what the benchmark measures) or a verified `report` with its `declaration_id`."""
    try:
        with st.store.transaction() as s:
            tp = lock_taxpayer(s, taxpayer_no)
            return _decide(st, s, tp, declared, record, report, declaration_id, explanation, {})
    except IntegrityError as e:
        raise integrity(e, CONFLICT, "another station filed for this declaration at the same moment; "
                        "read the card again") from None


def decide_batch(st: Station, filings: list[tuple[str, bytes, DeclaredIncome]]) -> list:
    """Group commit: many filings (taxpayer_no, raw declaration record, declared income) in one durable
    transaction, each in its own savepoint, so one refused filing (its Refused in the result list) does
    not undo the others.  Each result is (Outcome, clear-unlock id or None) or a Refused.  For bulk
    intake (e-filing uploads, a hall's queue); the rules are decide()'s, row for row and event for event."""
    results: list = []
    try:
        with st.store.transaction() as s:
            locked: dict[str, Taxpayer] = {}
            cache: dict = {}  # machines and rates looked up once per batch (the rows are locked with it)
            for taxpayer_no, record, declared in filings:
                try:
                    with s.begin_nested():
                        tp = locked.get(taxpayer_no) or locked.setdefault(taxpayer_no, lock_taxpayer(s, taxpayer_no))
                        results.append(_decide(st, s, tp, declared, record, None, None, None, cache))
                except Refused as e:
                    results.append(e)
                except IntegrityError as e:
                    results.append(integrity(e, CONFLICT, "another station filed for this declaration at the "
                                             "same moment"))
    except IntegrityError as e:
        raise integrity(e, CONFLICT, "the batch conflicted with another station; file it again") from None
    return results


def _decide(st: Station, s, tp: Taxpayer, declared: DeclaredIncome, record, report, declaration_id,
            explanation, cache: dict) -> tuple[Outcome, int | None]:
    """decide() inside an open transaction with the taxpayer locked.  One flush for the rows, then the events."""
    # R-WINDOW-COMPARE (declared >= recorded: clear-unlock data), R-WINDOW-SHORTFALL (declared < recorded: refused,
    # referred with an explanation), R-SURCHARGE, R-CLEAR-UNLOCK (once per declared period), R-ONE-HOUSEHOLD
    if declaration_id is None:
        m, report, body = verify_record(st, s, tp, record, cache)
        d, new = _record_declaration(st, s, tp, m, report, body)
    else:
        d, new = s.get(Declaration, declaration_id), False
        m = s.get(Machine, d.machine_id)
    if not new and d.clear_unlock is not None:
        raise Refused(REPLAYED, "the declaration of machine %s for the period ending %d is already accepted "
                      "(clear-unlock #%d)" % (m.machine_no, d.period_end, d.clear_unlock.id))
    rates = cache.get(("rates", tp.id))
    if rates is None:
        rates = cache[("rates", tp.id)] = {t.idx: t.rate for t in tp.tax_items}
    check_against(declared, tp.taxpayer_no, d.period_end, rates)
    attempt = 1 if new else len(d.comparisons) + 1
    recorded = d.recorded_income
    accepted = declared.income >= recorded
    cmp = Comparison(attempt=attempt, declared_income=declared.income, recorded_income=recorded,
                     outcome="accepted" if accepted else "shortfall",
                     items={str(k): v for k, v in declared.items.items()} if declared.items else None,
                     source=declared.source[:200], filed_on=st.today(), station=st.name)
    d.comparisons.append(cmp)
    out = Outcome({}, attempt, cmp.outcome, declared, recorded)
    ref = cu = None
    if not accepted:
        if explanation is not None:
            d.state = "referred"
    else:
        base = surcharge.tax_due(rates, d.lines, declared.income, declared.items)
        a = out.assessment = surcharge.assess(d.period_end, cmp.filed_on, base)
        cmp.surcharge = Surcharge(taxpayer_id=tp.id, filing_deadline=a.filing_deadline, filed_on=a.filed_on,
                                  days=a.days, base=a.base, amount=a.amount)
        limits = issuance.Limits(surcharge.next_deadline(d.period_end, cmp.filed_on, tp.filing_mode), m.single_limit,
                          m.cumulative_limit, m.return_limit)
        sealed = issuance.issue_controls(st.keystore, report, limits=limits)
        cu = ClearUnlock(machine_id=m.id, period_end=d.period_end, sequence=d.period_end * 100,
                         deadline=limits.deadline, single_limit=limits.single_limit,
                         cumulative_limit=limits.cumulative_limit, return_limit=limits.return_limit,
                         record=sealed, state="writing", station=st.name)
        d.clear_unlock = cu
        d.state = "accepted"
    s.flush()
    if not accepted and explanation is not None:
        ref = Referral(taxpayer_id=tp.id, declaration_id=d.id, comparison_id=cmp.id,
                       explanation=explanation.strip(), state="open")
        s.add(ref)
        s.flush()
    if new:
        _received(st, s, tp, m, d)
    out.declaration = summary = {"declaration_id": d.id, "machine_no": m.machine_no, "period_start": d.period_start,
                                 "period_end": d.period_end}
    log(s, st, "filing.compared", tp, comparison_id=cmp.id, attempt=attempt, outcome=cmp.outcome,
        declared_fen=declared.income, recorded_fen=recorded, source=cmp.source, **summary)
    if ref is not None:
        out.referral_id = ref.id
        log(s, st, "referral.opened", tp, referral_id=ref.id, comparison_id=cmp.id,
            shortfall_fen=recorded - declared.income, explanation=ref.explanation, **summary)
    if cu is None:
        return out, None
    log(s, st, "surcharge.assessed", tp, comparison_id=cmp.id, **out.assessment.as_dict())
    log(s, st, "clear-unlock.issued", tp, clear_unlock_id=cu.id, deadline=cu.deadline, sequence=cu.sequence, **summary)
    return out, cu.id
