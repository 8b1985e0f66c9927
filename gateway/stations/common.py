"""What every station shares: who is acting (Station), refusals with a reason, the event log, lookups.

Rules:
  - A refusal is a `Refused(reason, message)`; it is raised before anything is written, or inside the
    transaction, which then rolls back: a refused operation leaves no trace in the database or on a card.
  - Every state change adds an Event in the same transaction (`log`), so the log and the tables agree; the
    event is chained and appended at commit (gateway.db.eventlog).
  - Before deciding anything about a taxpayer a station locks the taxpayer's row (`lock_taxpayer`:
    SELECT ... FOR UPDATE on PostgreSQL; SQLite transactions are BEGIN IMMEDIATE and so already serial).
    The unique constraints of gateway.db.models are the last word if a path forgets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import calendar
from protocol.money import yuan  # noqa: F401  (re-exported: the stations print amounts with it)

from ..bureau_errors import BureauError, KeyStoreError
from ..db import Store
from ..db.eventlog import use_key
from ..db.models import Card, Event, Machine, Taxpayer
from ..keystore import KeyStore

# reasons (stable strings for scripts; the message says the rest)
UNKNOWN = "unknown"  # no such taxpayer, machine or card on record
FOREIGN_CARD = "foreign-card"  # a card of another taxpayer or machine
TAMPERED = "tampered"  # a declaration that does not verify
REPLAYED = "replayed"  # a clear-unlock or declaration already dealt with
FOREIGN_TILL = "foreign-till"  # the till on the line is not the registered one
ORDER = "order"  # the seed's order of operations (二(七)) forbids it now
CONFLICT = "conflict"  # already exists / done by another station
IN_PROGRESS = "in-progress"  # another station is writing this card right now
QUOTA = "quota"  # 限额限量
BAD_INPUT = "bad-input"
CARD = "card"  # the card or reader failed
TILL = "till"  # the till refused or did not answer

STALE_WRITE = dt.timedelta(minutes=2)  # a "writing" row older than this is taken over by any station


class Refused(BureauError):
    """A station refused; `reason` is one of the constants above, `problems` details (may be empty)."""

    def __init__(self, reason: str, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.reason = reason
        self.problems = list(problems or [])

    def as_dict(self) -> dict:
        return {"refused": self.reason, "message": str(self), "problems": self.problems}


def today_int() -> int:
    return as_int(dt.date.today())


@dataclass
class Station:
    """A window at the tax hall: the database, the key store, its name (written on every row and event),
    and its calendar (`today()` -> YYYYMMDD; the demo and tests give the simulator's date)."""

    store: Store
    keystore: KeyStore
    name: str = "station"
    clock: Callable[[], int] = field(default=today_int)

    def today(self) -> int:
        return self.clock()


# ---- dates -------------------------------------------------------------------------------------------------
as_date = calendar.to_date    # the stations' names for protocol.calendar's (YYYYMMDD int <-> date)
as_int = calendar.from_date


def iso(d: int | None) -> str | None:
    return calendar.iso(d) if d else None


# ---- the log and lookups -----------------------------------------------------------------------------------
def log(session: Session, station: Station, kind: str, taxpayer: Taxpayer | None, **data) -> Event:
    """Add an event; it is chained, MACed under the station's key store and appended when the transaction
    commits (gateway.db.eventlog), so it is not visible to queries inside this transaction."""
    # R-ONE-HOUSEHOLD: every state change at the bureau is an event of the taxpayer's log
    if taxpayer is not None and taxpayer.id is None:
        session.flush()
    try:
        use_key(session, station.keystore)
    except KeyStoreError:
        pass  # no master key: the event is written without a MAC, and verify-events says so
    ev = Event(station=station.name, taxpayer_id=taxpayer.id if taxpayer else None, kind=kind, data=data)
    session.add(ev)
    return ev


def lock_taxpayer(session: Session, taxpayer_no: str) -> Taxpayer:
    tp = session.execute(select(Taxpayer).where(Taxpayer.taxpayer_no == taxpayer_no).with_for_update()
                         ).scalar_one_or_none()
    if tp is None:
        raise Refused(UNKNOWN, "no taxpayer %r is registered" % taxpayer_no)
    return tp


def machine_of(session: Session, taxpayer: Taxpayer, machine_no: str) -> Machine:
    m = session.execute(select(Machine).where(Machine.machine_no == machine_no)).scalar_one_or_none()
    if m is None:
        raise Refused(UNKNOWN, "no machine %s is registered" % machine_no)
    if m.taxpayer_id != taxpayer.id:
        raise Refused(FOREIGN_CARD, "machine %s belongs to another taxpayer, not %s" % (machine_no, taxpayer.taxpayer_no))
    return m


def card_row(session: Session, card_no: bytes) -> Card | None:
    return session.execute(select(Card).where(Card.card_no == card_no.hex())).scalar_one_or_none()


def user_card_of(session: Session, taxpayer: Taxpayer, identity: dict) -> Card:
    """The user card row for a card's EF02 identity, refusing a card this bureau did not issue to `taxpayer`."""
    no = identity["card_no"]
    card = card_row(session, no)
    if card is None or card.kind != "user":
        raise Refused(UNKNOWN, "user card %s was not issued by this bureau" % no.hex())
    if card.taxpayer_id != taxpayer.id or identity["taxpayer_no"] != taxpayer.taxpayer_no:
        owner = session.get(Taxpayer, card.taxpayer_id)
        raise Refused(FOREIGN_CARD, "user card %s belongs to taxpayer %s, not %s" % (
            no.hex(), owner.taxpayer_no if owner else identity["taxpayer_no"], taxpayer.taxpayer_no))
    return card


def fiscal_card_of(session: Session, machine: Machine) -> Card:
    for c in machine.cards:
        if c.kind == "fiscal":
            return c
    raise Refused(UNKNOWN, "machine %s has no fiscal card on record" % machine.machine_no)


def stale(at: dt.datetime) -> bool:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - at > STALE_WRITE


def integrity(e: IntegrityError, reason: str, message: str) -> Refused:
    """A unique constraint fired: another station got there first."""
    return Refused(reason, message, [str(e.orig).splitlines()[0] if e.orig else str(e)])
