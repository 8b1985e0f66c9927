"""Referrals to the tax source department (税源管理部门): a shortfall the taxpayer could not correct at the
window, with the taxpayer's explanation.  open (at the window) -> assigned (to an officer) -> closed (with a
resolution).  Assigning again reassigns; a closed referral stays closed.  Every change is an event."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from ..db.models import Referral, Taxpayer
from .common import BAD_INPUT, ORDER, UNKNOWN, Refused, Station, log

STATES = ("open", "assigned", "closed")


def as_dict(r: Referral, taxpayer_no: str) -> dict:
    return {"referral_id": r.id, "taxpayer_no": taxpayer_no, "declaration_id": r.declaration_id,
            "comparison_id": r.comparison_id, "state": r.state, "assignee": r.assignee,
            "explanation": r.explanation, "resolution": r.resolution, "opened_at": r.opened_at.isoformat(),
            "closed_at": r.closed_at.isoformat() if r.closed_at else None}


def list_referrals(st: Station, *, state: str | None = None, taxpayer_no: str | None = None) -> list[dict]:
    if state is not None and state not in STATES:
        raise Refused(BAD_INPUT, "state must be one of %s, got %r" % (", ".join(STATES), state))
    with st.store.transaction() as s:
        q = select(Referral, Taxpayer.taxpayer_no).join(Taxpayer, Taxpayer.id == Referral.taxpayer_id)
        if state:
            q = q.where(Referral.state == state)
        if taxpayer_no:
            q = q.where(Taxpayer.taxpayer_no == taxpayer_no)
        return [as_dict(r, no) for r, no in s.execute(q.order_by(Referral.id)).all()]


def _change(st: Station, referral_id: int, fn) -> dict:
    # R-WINDOW-SHORTFALL: a referral to the tax source department is assigned and closed, each step an event
    # (R-ONE-HOUSEHOLD)
    with st.store.transaction() as s:
        r = s.execute(select(Referral).where(Referral.id == referral_id).with_for_update()).scalar_one_or_none()
        if r is None:
            raise Refused(UNKNOWN, "no referral #%s" % referral_id)
        if r.state == "closed":
            raise Refused(ORDER, "referral #%d is closed" % r.id)
        tp = s.get(Taxpayer, r.taxpayer_id)
        fn(s, r, tp)
        return as_dict(r, tp.taxpayer_no)


def _text(value: str | None, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 2000:
        raise Refused(BAD_INPUT, "%s must be 1 to 2000 characters" % what)
    return value.strip()


def assign(st: Station, referral_id: int, assignee: str) -> dict:
    name = _text(assignee, "the assignee")

    def do(s, r, tp):
        r.state, r.assignee = "assigned", name
        log(s, st, "referral.assigned", tp, referral_id=r.id, assignee=name)
    return _change(st, referral_id, do)


def close(st: Station, referral_id: int, resolution: str) -> dict:
    text = _text(resolution, "the resolution")

    def do(s, r, tp):
        r.state, r.resolution = "closed", text
        r.closed_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        log(s, st, "referral.closed", tp, referral_id=r.id, resolution=text)
    return _change(st, referral_id, do)
