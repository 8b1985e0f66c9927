"""The bureau's tables (SQLAlchemy 2).  Everything hangs off the taxpayer (一户式, seed 五(三)).

Rules held by the schema itself, so that no code path (or concurrent station) can break them:
  - one taxpayer per taxpayer_no, one machine per machine_no, one card per card number;
  - one declaration per (machine, period end): the same declaration read twice is the same row;
  - one clear-unlock per declaration and per (machine, period end): two windows cannot both unlock a period;
  - one roll per (invoice code, first number): a roll is never sold twice; and roll sales per (machine,
    sales period) are numbered 1..quota, so two concurrent sales cannot both take the last slot;
  - one comparison per (declaration, attempt); one surcharge per accepted comparison;
  - a clear-unlock or roll row is committed (state "writing") before the card is written and marked
    "written" after: a card written whose reply was lost is never sold or unlocked a second time;
  - events are append-only (database triggers refuse UPDATE and DELETE; migration 0001) and hash-chained,
    MACed and anchored in the other tables' event_seq (gateway.db.eventlog; migration 0002); on PostgreSQL
    the stations' role may only SELECT and INSERT them (gateway.db.roles).
No key material is stored: a card row names the master-key generation (key_refs.key_id) its keys were
derived from, which the key store holds.  Amounts are integer fen; dates are YYYYMMDD integers as on the
cards; times are UTC.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Integer, LargeBinary,
                        String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Anchored:
    """A table whose rows anchor the event log: `event_seq` is the sequence number of the newest event when
    the row was last written (set at commit by gateway.db.eventlog), so a log cut short behind it shows."""
    event_seq: Mapped[int | None] = mapped_column(BigInteger)


ANCHORED = Anchored


class Taxpayer(Anchored, Base):
    __tablename__ = "taxpayers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_no: Mapped[str] = mapped_column(String(20), unique=True)
    taxpayer_id: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(80))
    bureau_code: Mapped[str] = mapped_column(String(12))
    filing_mode: Mapped[int] = mapped_column(Integer)  # protocol.cardfiles FILING_MONTHLY / FILING_QUARTERLY
    roll_quota: Mapped[int] = mapped_column(Integer)  # rolls sold per sales period (限额限量)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    machines: Mapped[list[Machine]] = relationship(back_populates="taxpayer", order_by="Machine.id")
    tax_items: Mapped[list[TaxItem]] = relationship(order_by="TaxItem.idx")


class TaxItem(Base):
    __tablename__ = "tax_items"
    __table_args__ = (UniqueConstraint("taxpayer_id", "idx"),
                      CheckConstraint("idx BETWEEN 1 AND 255"), CheckConstraint("rate BETWEEN 0 AND 10000"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    idx: Mapped[int] = mapped_column(Integer)
    rate: Mapped[int] = mapped_column(Integer)  # basis points: 300 = 3 %
    code: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(24))


class Machine(Anchored, Base):
    __tablename__ = "machines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_no: Mapped[str] = mapped_column(String(16), unique=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    deadline: Mapped[int] = mapped_column(Integer)  # the first invoice deadline (YYYYMMDD)
    single_limit: Mapped[int] = mapped_column(BigInteger)
    cumulative_limit: Mapped[int] = mapped_column(BigInteger)
    return_limit: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="registered")  # registered | initialized
    initialized_on: Mapped[int | None] = mapped_column(Integer)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    taxpayer: Mapped[Taxpayer] = relationship(back_populates="machines")
    cards: Mapped[list[Card]] = relationship(order_by="Card.id")


class KeyRef(Base):
    """A master-key generation the key store holds (its id only, never the key)."""
    __tablename__ = "key_refs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer, unique=True)
    test: Mapped[bool] = mapped_column(Boolean)  # a published TEST key: everything under it is NON-FISCAL


class Card(Anchored, Base):
    __tablename__ = "cards"
    __table_args__ = (CheckConstraint("kind IN ('fiscal', 'user')"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_no: Mapped[str] = mapped_column(String(16), unique=True)  # 16 hex digits
    kind: Mapped[str] = mapped_column(String(8))
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    key_ref_id: Mapped[int] = mapped_column(ForeignKey("key_refs.id"))
    valid_from: Mapped[int] = mapped_column(Integer)
    valid_to: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    key_ref: Mapped[KeyRef] = relationship()


class Declaration(Anchored, Base):
    """A declaration read from a user card, verified (MAC1 and signature) before it is stored."""
    __tablename__ = "declarations"
    __table_args__ = (UniqueConstraint("machine_id", "period_end"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    period_start: Mapped[int] = mapped_column(Integer)
    period_end: Mapped[int] = mapped_column(Integer)
    record: Mapped[bytes] = mapped_column(LargeBinary)  # the 161 signed bytes, as read
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of record
    normal_count: Mapped[int] = mapped_column(Integer)
    return_count: Mapped[int] = mapped_column(Integer)
    void_count: Mapped[int] = mapped_column(Integer)
    normal_total: Mapped[int] = mapped_column(BigInteger)
    return_total: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list] = mapped_column(JSON)  # [[item, normal, returned], ...] non-empty slots
    key_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="received")  # received | accepted | referred
    station: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    comparisons: Mapped[list[Comparison]] = relationship(order_by="Comparison.attempt")
    clear_unlock: Mapped[ClearUnlock | None] = relationship(uselist=False)

    @property
    def recorded_income(self) -> int:
        return self.normal_total - self.return_total


class Comparison(Anchored, Base):
    """一窗式: one filing (declared income) set against the card's record for the period."""
    __tablename__ = "comparisons"
    __table_args__ = (UniqueConstraint("declaration_id", "attempt"),
                      CheckConstraint("outcome IN ('accepted', 'shortfall')"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    declaration_id: Mapped[int] = mapped_column(ForeignKey("declarations.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    declared_income: Mapped[int] = mapped_column(BigInteger)
    recorded_income: Mapped[int] = mapped_column(BigInteger)
    items: Mapped[dict | None] = mapped_column(JSON)  # declared income per tax item, if itemised
    outcome: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(200))  # "typed" or "file:<name>"
    filed_on: Mapped[int] = mapped_column(Integer)
    station: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    surcharge: Mapped[Surcharge | None] = relationship(uselist=False)


class Surcharge(Anchored, Base):
    """滞纳金 assessed on an accepted, late filing (gateway.stations.surcharge states the rule)."""
    __tablename__ = "surcharges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), unique=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    filing_deadline: Mapped[int] = mapped_column(Integer)
    filed_on: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    base: Mapped[int] = mapped_column(BigInteger)  # tax due, fen
    amount: Mapped[int] = mapped_column(BigInteger)  # fen


class ClearUnlock(Anchored, Base):
    """Control data written to the user card for one accepted declaration (清零解锁)."""
    __tablename__ = "clear_unlocks"
    __table_args__ = (UniqueConstraint("machine_id", "period_end"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    declaration_id: Mapped[int] = mapped_column(ForeignKey("declarations.id"), unique=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    period_end: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(Integer)
    single_limit: Mapped[int] = mapped_column(BigInteger)
    cumulative_limit: Mapped[int] = mapped_column(BigInteger)
    return_limit: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[bytes] = mapped_column(LargeBinary)  # the UserControls record written (sealed)
    state: Mapped[str] = mapped_column(String(8), default="writing")  # writing -> written (two-phase)
    station: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RollCode(Base):
    """One row per invoice code sold: locked while a roll of that code is sold, so overlaps cannot race."""
    __tablename__ = "roll_codes"
    code: Mapped[str] = mapped_column(String(10), primary_key=True)


class Roll(Anchored, Base):
    __tablename__ = "rolls"
    __table_args__ = (UniqueConstraint("code", "start_no"), UniqueConstraint("machine_id", "sales_period", "slot"),
                      CheckConstraint("start_no >= 1 AND end_no >= start_no"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    code: Mapped[str] = mapped_column(ForeignKey("roll_codes.code"))
    start_no: Mapped[int] = mapped_column(BigInteger)
    end_no: Mapped[int] = mapped_column(BigInteger)
    sales_period: Mapped[int] = mapped_column(Integer)  # end of the cleared period it was sold after; 0: first
    slot: Mapped[int] = mapped_column(Integer)  # 1..quota within the sales period
    record: Mapped[bytes] = mapped_column(LargeBinary)  # the UserRoll record written to the card
    state: Mapped[str] = mapped_column(String(8), default="writing")  # writing -> written (two-phase)
    station: Mapped[str] = mapped_column(String(40))
    sold_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def size(self) -> int:
        return self.end_no - self.start_no + 1


class Referral(Anchored, Base):
    """A shortfall the taxpayer could not correct at once: explanation, and the tax source department's case."""
    __tablename__ = "referrals"
    __table_args__ = (CheckConstraint("state IN ('open', 'assigned', 'closed')"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    declaration_id: Mapped[int] = mapped_column(ForeignKey("declarations.id"))
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), unique=True)
    explanation: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    assignee: Mapped[str | None] = mapped_column(String(80))
    resolution: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Audit(Anchored, Base):
    __tablename__ = "audits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxpayer_id: Mapped[int] = mapped_column(ForeignKey("taxpayers.id"))
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    journal_bytes: Mapped[int] = mapped_column(BigInteger)
    journal_sha256: Mapped[str] = mapped_column(String(64))
    chain_head: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    findings: Mapped[list] = mapped_column(JSON)  # [{"kind", "where", "detail"}]
    summary: Mapped[dict] = mapped_column(JSON)
    station: Mapped[str] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Event(Base):
    """Append-only log: every state change, with the station that made it, hash-chained and MACed in `seq`
    order (gateway.db.eventlog defines the chain and fills the last five columns at commit)."""
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    station: Mapped[str] = mapped_column(String(40))
    taxpayer_id: Mapped[int | None] = mapped_column(ForeignKey("taxpayers.id"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[int | None] = mapped_column(Integer)  # master-key generation of the MAC; 0: chained by 0002
    mac: Mapped[str | None] = mapped_column(String(64))
