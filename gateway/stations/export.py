"""一户式 export: everything the bureau holds about one taxpayer as one self-describing JSON document.

    {"format": "ftk-taxpayer", "version": 1, "exported_at": ..., "taxpayer": {...}, "tax_items": [...],
     "machines": [{..., "cards": [...]}], "declarations": [{..., "record_hex", "comparisons": [...],
     "surcharges": [...], "clear_unlock": {...}}], "rolls": [...], "referrals": [...], "audits": [...],
     "events": [...]}

Card rows carry the key generation (key_id), never key material; declarations carry their signed bytes
(hex), so the export can be checked independently (gateway.verify with the card's public key).  Dates are
YYYYMMDD integers as on the cards, timestamps ISO 8601 UTC, amounts integer fen.  Read in one
transaction, so the document is one consistent moment.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from ..db.models import (Audit, Card, ClearUnlock, Comparison, Declaration, Event, Machine, Referral, Roll,
                         Surcharge, Taxpayer)
from .common import Refused, Station, UNKNOWN
from .referrals import as_dict as referral_dict

FORMAT, VERSION = "ftk-taxpayer", 1


def _row(obj, skip=()) -> dict:
    out = {}
    for col in obj.__table__.columns:
        if col.key in skip:
            continue
        v = getattr(obj, col.key)
        if isinstance(v, (bytes, bytearray)):
            out[col.key + "_hex"] = bytes(v).hex()
        elif isinstance(v, dt.datetime):
            out[col.key] = v.isoformat() + "Z"
        else:
            out[col.key] = v
    return out


def export_taxpayer(st: Station, taxpayer_no: str) -> dict:
    with st.store.transaction() as s:
        tp = s.execute(select(Taxpayer).where(Taxpayer.taxpayer_no == taxpayer_no)).scalar_one_or_none()
        if tp is None:
            raise Refused(UNKNOWN, "no taxpayer %r is registered" % taxpayer_no)
        machines = []
        for m in s.execute(select(Machine).where(Machine.taxpayer_id == tp.id).order_by(Machine.id)).scalars():
            cards = [dict(_row(c, {"key_ref_id"}), key_id=c.key_ref.key_id, test_key=c.key_ref.test)
                     for c in s.execute(select(Card).where(Card.machine_id == m.id).order_by(Card.id)).scalars()]
            machines.append(dict(_row(m), cards=cards))
        numbers = {m["id"]: m["machine_no"] for m in machines}
        decls = []
        for d in s.execute(select(Declaration).where(Declaration.taxpayer_id == tp.id)
                           .order_by(Declaration.machine_id, Declaration.period_end)).scalars():
            cmps = s.execute(select(Comparison).where(Comparison.declaration_id == d.id)
                             .order_by(Comparison.attempt)).scalars().all()
            surcharges = s.execute(select(Surcharge).where(Surcharge.comparison_id.in_([c.id for c in cmps]))
                                   ).scalars().all() if cmps else []
            cu = s.execute(select(ClearUnlock).where(ClearUnlock.declaration_id == d.id)).scalar_one_or_none()
            decls.append(dict(_row(d), machine_no=numbers.get(d.machine_id),
                              recorded_income=d.recorded_income, comparisons=[_row(c) for c in cmps],
                              surcharges=[_row(x) for x in surcharges], clear_unlock=_row(cu) if cu else None))
        rolls = [dict(_row(r), machine_no=numbers.get(r.machine_id)) for r in
                 s.execute(select(Roll).where(Roll.taxpayer_id == tp.id).order_by(Roll.id)).scalars()]
        refs = [referral_dict(r, tp.taxpayer_no) for r in
                s.execute(select(Referral).where(Referral.taxpayer_id == tp.id).order_by(Referral.id)).scalars()]
        audits = [dict(_row(a), machine_no=numbers.get(a.machine_id)) for a in
                  s.execute(select(Audit).where(Audit.taxpayer_id == tp.id).order_by(Audit.id)).scalars()]
        events = [_row(e) for e in
                  s.execute(select(Event).where(Event.taxpayer_id == tp.id).order_by(Event.id)).scalars()]
        return {"format": FORMAT, "version": VERSION,
                "exported_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z",
                "database": st.store.dialect, "taxpayer": _row(tp),
                "tax_items": [_row(t) for t in tp.tax_items], "machines": machines, "declarations": decls,
                "rolls": rolls, "referrals": refs, "audits": audits, "events": events}
