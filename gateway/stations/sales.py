"""Invoice sales (验旧售新): account for every roll sold, then sell a new one within the quota.

    account = check_old(st, reader, taxpayer_no, machine_no)      # 验旧, read-only
    sold = sell_roll(st, reader, taxpayer_no, machine_no, code="1440012345", start=101, end=200)   # 售新

验旧 (check the old): every roll this bureau sold for the machine is either still on the user card (EF05,
not yet taken by the till) or was distributed to the till; the distributed rolls must hold every invoice
number the till has used: used (normal + return) and voided, from the declarations on record, or from
the latest audit read-out of the till when there is one (per roll, from its ROLL_LOAD / ROLL_USAGE
records); remaining = numbers distributed - used - voided >= 0.  A roll on the card that this bureau did
not sell for this machine is a finding.  Consumption is attributed to rolls in the order they were sold
(the till loads them one at a time, in order).

售新 (sell the new), only when, in this order (seed 二(七)):
  1. the machine is initialized;
  2. the card holds no declaration of this machine still pending (file it first), every declaration on
     record for it is cleared-unlocked, and the current invoice deadline has not passed (declare first);
  3. 验旧 found nothing;
  4. fewer rolls than the taxpayer's quota were sold since the last clear-unlock (限额限量);
  5. no number of the new roll was ever sold (same invoice code, overlapping range).
The roll is written in two phases as clear-unlocks are (gateway.stations.cardwrite: neither lost nor
doubled): a roll whose card write was lost is finished on the next visit, never sold again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from protocol import cardfiles

from .. import issuance
from ..bureau_errors import BureauError, IssuanceError
from ..db.models import Audit, ClearUnlock, Declaration, Machine, Roll, RollCode, Taxpayer
from ..usercard import UserCardSession
from . import cardwrite
from .common import (BAD_INPUT, CARD, CONFLICT, ORDER, QUOTA, Refused, Station, integrity, iso, lock_taxpayer, log,
                     machine_of, user_card_of)


@dataclass
class RollAccount:
    machine_no: str
    source: str
    rolls: list[dict] = field(default_factory=list)
    used: int = 0
    voided: int = 0
    distributed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.distributed - self.used - self.voided

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"machine_no": self.machine_no, "source": self.source, "rolls": self.rolls, "used": self.used,
                "voided": self.voided, "distributed": self.distributed, "remaining": self.remaining,
                "ok": self.ok, "problems": self.problems}


def _card_rolls(card: UserCardSession, machine_no: str) -> tuple[list[tuple], tuple | None]:
    """((code, start, end, record bytes) on EF05 for this machine, last distributed roll or None)."""
    on = []
    for raw in card.reader.read_records(cardfiles.USER_EF_ROLLS):
        r = cardfiles.UserRoll.parse(raw)
        if r.machine_no == machine_no:
            on.append((r.roll.code, r.roll.start, r.roll.end, bytes(raw)))
    last = None
    try:
        lr = cardfiles.UserLastRoll.parse(card.reader.read_binary(cardfiles.USER_EF_LAST_ROLL))
        if lr.machine_no == machine_no:
            last = (lr.roll.code, lr.roll.start, lr.roll.end)
    except Exception:  # never distributed: zeros that are no roll
        last = None
    return on, last


def _account(s, m: Machine, on_card: list[tuple]) -> RollAccount:
    # R-SALE-AFTER-CLEAR: 验旧, every roll sold is accounted for before a new one
    rolls = s.execute(select(Roll).where(Roll.machine_id == m.id).order_by(Roll.id)).scalars().all()
    audit = s.execute(select(Audit).where(Audit.machine_id == m.id).order_by(Audit.id.desc()).limit(1)
                      ).scalar_one_or_none()
    card_keys = {(c, a, b) for c, a, b, _ in on_card}
    sold_keys = {(r.code, r.start_no, r.end_no) for r in rolls}
    acc = RollAccount(m.machine_no, "declarations on record")
    for key in sorted(card_keys - sold_keys):
        acc.problems.append("roll %s %d-%d on the user card was not sold by this bureau for machine %s"
                            % (key + (m.machine_no,)))
    if audit is not None and audit.summary.get("rolls") is not None:
        acc.source = "till read-out (audit #%d, %s)" % (audit.id, audit.at.date())
        loaded = {(r["code"], r["start"], r["end"]): r for r in audit.summary["rolls"]}
        for key in sorted(set(loaded) - sold_keys):
            acc.problems.append("the till loaded roll %s %d-%d, which this bureau did not sell for it" % key)
        acc.used = sum(r["normal"] + r["returned"] for r in loaded.values())
        acc.voided = sum(r["voided"] for r in loaded.values())
    else:
        decls = s.execute(select(func.coalesce(func.sum(Declaration.normal_count + Declaration.return_count), 0),
                                 func.coalesce(func.sum(Declaration.void_count), 0))
                          .where(Declaration.machine_id == m.id)).one()
        acc.used, acc.voided = int(decls[0]), int(decls[1])
    left = acc.used + acc.voided
    for r in rolls:
        key = (r.code, r.start_no, r.end_no)
        where = "on card" if key in card_keys else ("being written" if r.state == "writing" else "distributed")
        consumed = 0
        if where == "distributed":
            acc.distributed += r.size
            consumed, left = min(left, r.size), left - min(left, r.size)
        acc.rolls.append({"roll_id": r.id, "code": r.code, "start": r.start_no, "end": r.end_no, "size": r.size,
                          "where": where, "consumed": consumed, "remaining": r.size - consumed,
                          "sold_on": str(r.sold_at.date())})
    if left > 0:
        acc.problems.append("%d invoice numbers used or voided are not covered by any roll distributed to machine %s"
                            % (left, m.machine_no))
    return acc


def _open(st: Station, reader, s, tp: Taxpayer, machine_no: str) -> UserCardSession:
    card = UserCardSession(reader, st.keystore)
    try:
        card.open()
    except BureauError as e:
        raise Refused(CARD, "cannot read the user card: %s" % e) from None
    card.key_id = user_card_of(s, tp, card.identity).key_ref.key_id
    if machine_no not in [t[1] for t in card.tills()]:
        raise Refused("foreign-card", "the user card does not serve machine %s" % machine_no)
    return card


def check_old(st: Station, reader, taxpayer_no: str, machine_no: str) -> RollAccount:
    """验旧: the roll account of one machine (read-only)."""
    with st.store.transaction() as s:
        tp = lock_taxpayer(s, taxpayer_no)
        m = machine_of(s, tp, machine_no)
        card = _open(st, reader, s, tp, machine_no)
        on_card, _ = _card_rolls(card, machine_no)
        return _account(s, m, on_card)


def _order(st: Station, s, card: UserCardSession, m: Machine) -> int:
    """The sales period (end of the last cleared period; 0 before the first), or Refused(order)."""
    # R-SALE-AFTER-CLEAR: 验旧售新, no roll before the last period is filed and cleared, nor after the deadline
    if m.state != "initialized":
        raise Refused(ORDER, "machine %s is not initialized yet: initialize it before selling invoices" % m.machine_no)
    fiscal_no = next(c.card_no for c in m.cards if c.kind == "fiscal")
    for _recno, status, record in card.declarations():
        if status == cardfiles.DECL_SIGNED and record[1:9].hex() == fiscal_no:
            raise Refused(ORDER, "the user card holds a declaration of machine %s not yet accepted: file it at "
                          "the window (compare, clear-unlock) before buying invoices" % m.machine_no)
    last = s.execute(select(Declaration).where(Declaration.machine_id == m.id)
                     .order_by(Declaration.period_end.desc()).limit(1)).scalar_one_or_none()
    deadline, period = m.deadline, 0
    if last is not None:
        cu = last.clear_unlock
        if cu is None or cu.state != "written":
            raise Refused(ORDER, "the period %d-%d of machine %s is not cleared-unlocked yet: no new invoices "
                          "before the clear-unlock" % (last.period_start, last.period_end, m.machine_no))
        deadline, period = cu.deadline, last.period_end
    if st.today() > deadline:
        raise Refused(ORDER, "the invoice deadline %s of machine %s has passed: declare and clear-unlock first"
                      % (iso(deadline), m.machine_no))
    return period


def _finish_writing(st: Station, s, tp: Taxpayer, card: UserCardSession, m: Machine, on_card, last) -> None:
    """Rolls committed but perhaps not written (a lost card reply): written now, or found on the card."""
    for r in s.execute(select(Roll).where(Roll.machine_id == m.id, Roll.state == "writing")).scalars():
        key = (r.code, r.start_no, r.end_no)
        if key not in {(c, a, b) for c, a, b, _ in on_card} and key != last:
            cardwrite.refuse_if_in_progress(st, r.station, r.sold_at, "roll %s %d-%d to this card" % key)
            cardwrite.write(card, lambda: card.add_roll(r.record),
                            "roll #%d is sold but writing it to the card failed" % r.id, "present the card again")
        r.state = cardwrite.WRITTEN
        log(s, st, "roll.written", tp, roll_id=r.id, code=r.code, start=r.start_no, end=r.end_no)


def _lock_code(s, code: str) -> None:
    if s.get(RollCode, code) is None:
        try:
            with s.begin_nested():
                s.add(RollCode(code=code))
        except IntegrityError:
            pass  # another station added it first
    s.execute(select(RollCode).where(RollCode.code == code).with_for_update()).scalar_one()


def sell_roll(st: Station, reader, taxpayer_no: str, machine_no: str, *, code: str, start: int, end: int) -> dict:
    """验旧 then 售新: one roll of invoices for `machine_no`, written to the user card."""
    # R-SALE-AFTER-CLEAR (within the taxpayer's quota, 限额限量供应), R-LOCK-NO-ROLL (rolls made for this fiscal card),
    # R-ONE-HOUSEHOLD
    try:
        with st.store.transaction() as s:
            tp = lock_taxpayer(s, taxpayer_no)
            m = machine_of(s, tp, machine_no)
            fiscal_no = bytes.fromhex(next((c.card_no for c in m.cards if c.kind == "fiscal"), "00" * 8))
            try:
                record = issuance.issue_roll(st.keystore, fiscal_card_no=fiscal_no, machine_no=machine_no, code=code,
                                      start=start, end=end, key_id=next(c.key_ref.key_id for c in m.cards))
            except (IssuanceError, StopIteration) as e:
                raise Refused(BAD_INPUT, str(e) or "machine %s has no cards" % machine_no) from None
            card = _open(st, reader, s, tp, machine_no)
            period = _order(st, s, card, m)
            on_card, last = _card_rolls(card, machine_no)
            _finish_writing(st, s, tp, card, m, on_card, last)
            account = _account(s, m, on_card)
            if not account.ok:
                raise Refused(ORDER, "验旧 failed for machine %s: no new invoices" % machine_no, account.problems)
            n = s.execute(select(func.count()).select_from(Roll).where(Roll.machine_id == m.id,
                                                                       Roll.sales_period == period)).scalar()
            if n >= tp.roll_quota:
                raise Refused(QUOTA, "machine %s already bought %d of its %d roll(s) for this period" % (
                    machine_no, n, tp.roll_quota))
            _lock_code(s, code)
            clash = s.execute(select(Roll).where(Roll.code == code, Roll.start_no <= end, Roll.end_no >= start)
                              .limit(1)).scalar_one_or_none()
            if clash is not None:
                owner = s.get(Machine, clash.machine_id)
                raise Refused(CONFLICT, "invoice numbers %s %d-%d overlap roll #%d (%d-%d), already sold for machine %s"
                              % (code, start, end, clash.id, clash.start_no, clash.end_no, owner.machine_no))
            roll = Roll(taxpayer_id=tp.id, machine_id=m.id, code=code, start_no=start, end_no=end,
                        sales_period=period, slot=n + 1, record=record, state="writing", station=st.name)
            s.add(roll)
            s.flush()
            log(s, st, "roll.sold", tp, roll_id=roll.id, machine_no=machine_no, code=code, start=start, end=end,
                sales_period=period, slot=roll.slot, checked=account.as_dict())
            roll_id = roll.id
    except IntegrityError as e:
        raise integrity(e, CONFLICT, "another station sold this roll or this quota slot at the same moment") from None
    cardwrite.write(card, lambda: card.add_roll(record), "roll #%d is sold but writing it to the card failed"
                    % roll_id, "present the card again to finish")
    quota = cardwrite.mark_written(st, taxpayer_no, Roll, roll_id, "roll.written",
                                   lambda roll: dict(roll_id=roll.id, code=code, start=start, end=end),
                                   lambda _roll, taxpayer: taxpayer.roll_quota)
    return {"roll_id": roll_id, "machine_no": machine_no, "code": code, "start": start, "end": end,
            "sales_period": period, "slot": n + 1, "quota": quota, "checked": account.as_dict()}


__all__ = ["RollAccount", "check_old", "sell_roll", "ClearUnlock"]
