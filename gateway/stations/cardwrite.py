"""The two-phase card write shared by the filing window (clear-unlocks) and invoice sales (rolls).

The rule: a card write is neither lost nor doubled.
  1. The bureau's row for what goes onto the card is committed first, in state "writing", with the sealed
     record itself (its unique constraints make a second sale or a second clear-unlock fail there).
  2. Then the card is written (:func:`write`), outside any transaction: a card is slow and may be pulled.
  3. Then the row is marked "written" in a transaction of its own (:func:`mark_written`, idempotent).
A write that failed leaves "writing": the next visit writes the same stored record again, never a new one.
A "writing" row of another station is left alone until STALE_WRITE has passed
(:func:`refuse_if_in_progress`), so two stations never write it at once; this station resumes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..bureau_errors import BureauError
from ..usercard import UserCardSession
from .common import CARD, IN_PROGRESS, Refused, Station, lock_taxpayer, log, stale

WRITING, WRITTEN = "writing", "written"

T = TypeVar("T")


def refuse_if_in_progress(st: Station, station: str, since, what: str) -> None:
    """Refused(in-progress) while another station's "writing" row (written `since`) is not yet stale."""
    if station != st.name and not stale(since):
        raise Refused(IN_PROGRESS, "station %s is writing %s right now" % (station, what))


def write(card: UserCardSession, put: Callable[[], None], failed: str, then: str) -> None:
    """Phase 2: authenticate and run `put` (the card writes); a card error is Refused(card) saying
    `failed (<error>); then`: the row stays "writing" and the next visit finishes it."""
    try:
        card.authenticate()
        put()
    except BureauError as e:
        raise Refused(CARD, "%s (%s); %s" % (failed, e, then)) from None


def mark_written(st: Station, taxpayer_no: str, model, row_id: int, event: str,
                 log_fields: Callable[[object], dict],
                 result: Callable[[object, object], T] = lambda row, taxpayer: None) -> T:
    """Phase 3: in a transaction of its own, mark the row written and log `event` once (a second call
    finds it written and logs nothing); `result(row, taxpayer)` is read inside the transaction."""
    with st.store.transaction() as s:
        tp = lock_taxpayer(s, taxpayer_no)
        row = s.get(model, row_id)
        if row.state != WRITTEN:
            row.state = WRITTEN
            log(s, st, event, tp, **log_fields(row))
        return result(row, tp)
