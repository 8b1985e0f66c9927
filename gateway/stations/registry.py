"""Registration desk: taxpayers, machines, card issuance, till initialization (税控初始化).

    register_taxpayer(st, Taxpayer(...), tax_items=[tax_item(1, 300, "10101", "餐饮服务")], roll_quota=2)
    register_machine(st, taxpayer_no, machine_no, Limits(...))
    issue_cards(st, taxpayer_no, machine_no, fiscal_card_no=..., user_card_no=..., valid_from=..., valid_to=...,
                personalise=sim_personaliser(folder))
    initialize_till(st, TillClient(port), machine_no)

Rules: field rules are gateway.issuance's (IssuanceError becomes Refused bad-input, naming the field).
A machine gets one fiscal card and one user card, once; the card rows name the master-key generation
(key_refs), never a key.  Cards are personalised (written) inside the transaction that records them, so a
failed personalisation records nothing.  Initialization talks to the till on the line only if it is the
registered machine (GET_INFO) and not yet initialized (GET_STATUS), then checks the till's answer against
the record (fiscal card, taxpayer) before recording it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from protocol import errors
from protocol.crypto import is_test_key
from protocol.personalisation import FiscalCardData, UserCardData

from .. import issuance, readers
from ..bureau_errors import IssuanceError
from ..db.models import Card, KeyRef, Machine, TaxItem, Taxpayer
from ..link import LinkError, StatusError, TillClient
from .common import (BAD_INPUT, CONFLICT, FOREIGN_CARD, FOREIGN_TILL, REPLAYED, TILL, UNKNOWN, Refused, Station,
                     fiscal_card_of, integrity, lock_taxpayer, log, machine_of)


def _checked(fn, *args):
    try:
        return fn(*args)
    except IssuanceError as e:
        raise Refused(BAD_INPUT, str(e)) from None


def register_taxpayer(st: Station, taxpayer: issuance.Taxpayer, *, tax_items: list[dict], roll_quota: int = 1) -> Taxpayer:
    """A new taxpayer (纳税人) with its authorised tax items and its roll quota per sales period."""
    _checked(issuance._identity, taxpayer, bytes(8), "", 20000101, 20000101)  # the card identity's field rules
    items = [t for t in _checked(issuance._tax_items, list(tax_items)) if t["index"]]
    if not isinstance(roll_quota, int) or isinstance(roll_quota, bool) or not 1 <= roll_quota <= 100:
        raise Refused(BAD_INPUT, "roll quota must be 1 to 100 rolls per period, got %r" % (roll_quota,))
    try:
        with st.store.transaction() as s:
            tp = Taxpayer(taxpayer_no=taxpayer.taxpayer_no, taxpayer_id=taxpayer.taxpayer_id, name=taxpayer.name,
                          bureau_code=taxpayer.bureau_code, filing_mode=taxpayer.filing_mode, roll_quota=roll_quota)
            s.add(tp)
            s.flush()
            for t in items:
                s.add(TaxItem(taxpayer_id=tp.id, idx=t["index"], rate=t["rate"], code=t["code"], name=t["name"]))
            log(s, st, "taxpayer.registered", tp, taxpayer_no=tp.taxpayer_no, name=tp.name,
                tax_items=[[t["index"], t["rate"], t["code"], t["name"]] for t in items], roll_quota=roll_quota)
    except IntegrityError as e:
        raise integrity(e, CONFLICT, "taxpayer %s is already registered" % taxpayer.taxpayer_no) from None
    return tp


def register_machine(st: Station, taxpayer_no: str, machine_no: str, limits: issuance.Limits) -> Machine:
    """A till of the taxpayer, with its first invoice deadline and limits (also used for every clear-unlock)."""
    if not (isinstance(machine_no, str) and len(machine_no) == 16 and machine_no.isascii() and machine_no.isdigit()):
        raise Refused(BAD_INPUT, "machine number must be 16 digits, got %r" % (machine_no,))
    values = _checked(issuance._limits, limits)
    try:
        with st.store.transaction() as s:
            tp = lock_taxpayer(s, taxpayer_no)
            m = Machine(machine_no=machine_no, taxpayer_id=tp.id, state="registered", **values)
            s.add(m)
            s.flush()
            log(s, st, "machine.registered", tp, machine_no=machine_no, **values)
    except IntegrityError as e:
        raise integrity(e, CONFLICT, "machine %s is already registered" % machine_no) from None
    return m


def _key_ref(s, key_id: int) -> KeyRef:
    ref = s.execute(select(KeyRef).where(KeyRef.key_id == key_id)).scalar_one_or_none()
    if ref is None:
        ref = KeyRef(key_id=key_id, test=is_test_key(key_id))
        s.add(ref)
        s.flush()
    return ref


def issue_cards(st: Station, taxpayer_no: str, machine_no: str, *, fiscal_card_no, user_card_no, valid_from,
                valid_to, personalise: Callable[[FiscalCardData, UserCardData], None] | None = None):
    """Issue the fiscal and user card of a registered machine under the key store's newest master key;
    `personalise(fiscal_data, user_data)` writes them (the card printer, or sim_personaliser)."""
    try:
        with st.store.transaction() as s:
            tp = lock_taxpayer(s, taxpayer_no)
            m = machine_of(s, tp, machine_no)
            if m.cards:
                raise Refused(CONFLICT, "machine %s already has cards: %s" % (
                    machine_no, ", ".join("%s %s" % (c.kind, c.card_no) for c in m.cards)))
            items = [dict(index=t.idx, rate=t.rate, code=t.code, name=t.name) for t in tp.tax_items]
            limits = issuance.Limits(m.deadline, m.single_limit, m.cumulative_limit, m.return_limit)
            taxpayer = issuance.Taxpayer(tp.taxpayer_no, tp.taxpayer_id, tp.name, tp.bureau_code, tp.filing_mode)
            fd, ud = _checked(lambda: issuance.issue_cards(
                st.keystore, taxpayer=taxpayer, machine_no=machine_no, fiscal_card_no=fiscal_card_no,
                user_card_no=user_card_no, valid_from=valid_from, valid_to=valid_to, limits=limits, tax_items=items))
            if fd.card_no == ud.card_no:
                raise Refused(BAD_INPUT, "the fiscal and the user card need different numbers")
            ref = _key_ref(s, ud.key_id)
            vf, vt = fd.identity["valid_from"], fd.identity["valid_to"]
            for kind, no in (("fiscal", fd.card_no), ("user", ud.card_no)):
                s.add(Card(card_no=no.hex(), kind=kind, taxpayer_id=tp.id, machine_id=m.id, key_ref_id=ref.id,
                           valid_from=vf, valid_to=vt))
            s.flush()
            log(s, st, "cards.issued", tp, machine_no=machine_no, fiscal_card_no=fd.card_no.hex(),
                user_card_no=ud.card_no.hex(), key_id=ud.key_id, test_key=ref.test, valid_from=vf, valid_to=vt)
            if personalise is not None:
                personalise(fd, ud)
    except IntegrityError as e:
        raise integrity(e, CONFLICT, "card number already issued (fiscal %s or user %s)" % (
            fiscal_card_no if isinstance(fiscal_card_no, str) else bytes(fiscal_card_no).hex(),
            user_card_no if isinstance(user_card_no, str) else bytes(user_card_no).hex())) from None
    return fd, ud


def sim_personaliser(folder: str | Path, *, cards_out: dict | None = None):
    """Write issued cards as simulator card files folder/fiscal.json and folder/user.json (a SimTill state
    folder's cards/), through the card-file backend of the reader registry (gateway.readers.CARD_FILE);
    the card objects also go into `cards_out` (keys "fiscal", "user") if given."""
    return readers.personaliser(readers.CARD_FILE, folder, cards_out=cards_out)


def initialize_till(st: Station, till: TillClient, machine_no: str, *, date: int | None = None,
                    time: int | None = None) -> dict:
    """税控初始化 of the registered till `machine_no` over its link; what the till answered."""
    if date is None or time is None:
        now = dt.datetime.now()
        date = date or now.year * 10000 + now.month * 100 + now.day
        time = time if time is not None else now.hour * 10000 + now.minute * 100 + now.second
    with st.store.transaction() as s:
        m = s.execute(select(Machine).where(Machine.machine_no == machine_no)).scalar_one_or_none()
        if m is None:
            raise Refused(UNKNOWN, "no machine %s is registered" % machine_no)
        if m.state == "initialized":
            raise Refused(REPLAYED, "machine %s was already initialized on %d" % (machine_no, m.initialized_on))
        fiscal = fiscal_card_of(s, m)
        tp = lock_taxpayer(s, m.taxpayer.taxpayer_no)
        try:
            info = till.call_ok("GET_INFO")
            if info.machine_no != machine_no:
                raise Refused(FOREIGN_TILL, "the till on %s is machine %s, not the registered %s" % (
                    till.port_name, info.machine_no, machine_no))
            status, reply = till.call("INITIALIZE", dict(date=date, time=time))
        except LinkError as e:
            raise Refused(TILL, str(e)) from None
        if status != 0:
            raise Refused(REPLAYED if status == errors.BY_NAME["STATE_ALREADY_INITIALIZED"].code else TILL,
                          "INITIALIZE refused by machine %s: %s" % (machine_no, errors.describe(status)))
        result = {"machine_no": reply.machine_no, "fiscal_card_no": reply.fiscal_card_no.hex(),
                  "taxpayer_no": reply.taxpayer_no, "date": date, "time": time}
        if reply.fiscal_card_no.hex() != fiscal.card_no or reply.taxpayer_no != tp.taxpayer_no:
            raise Refused(FOREIGN_CARD, "machine %s initialized with fiscal card %s of taxpayer %s; the record "
                          "says card %s of %s" % (machine_no, result["fiscal_card_no"], reply.taxpayer_no,
                                                  fiscal.card_no, tp.taxpayer_no))
        m.state, m.initialized_on = "initialized", date
        log(s, st, "till.initialized", tp, **result)
    return result


__all__ = ["register_taxpayer", "register_machine", "issue_cards", "sim_personaliser", "initialize_till",
           "StatusError"]
