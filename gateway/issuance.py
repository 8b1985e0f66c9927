"""Card issuance and the data the bureau writes to user cards: rolls and clear-unlock control data.

Issuance personalises blank cards; the result is the card's initial content and keys (what a
personalisation machine writes: protocol.personalisation's FiscalCardData, UserCardData,
ManagementCardData), which a card loads (the simulator's `FiscalCard.issued(...)` and friends):

    issue_cards(ks, taxpayer=..., machine_no=..., fiscal_card_no=..., user_card_no=..., valid_from=...,
                valid_to=..., limits=Limits(...), tax_items=[...]) -> (FiscalCardData, UserCardData)
    issue_user_card(ks, ..., tills=[(machine_no, fiscal_card_no), ...])       one user card, several tills
    issue_management_card(ks, card_no=..., inspector_no=..., ...)            an inspector's card

Later visits to the bureau write to the user card (gateway.usercard does the APDUs):

    issue_roll(ks, fiscal_card_no=..., machine_no=..., code=..., start=..., end=...) -> UserRoll record
    issue_controls(ks, report, limits=..., seq=None) -> UserControls record   (clear-unlock)

Rules (IssuanceError names the field): card numbers 8 bytes (or 16 hex digits); machine numbers 16 ASCII
digits; validity from <= to; 0 < single limit <= cumulative limit, all amounts 32-bit fen; 1-6 tax items
with distinct indexes 1-255; invoice code 10 digits and 1 <= start <= end.  Control data is made only
for a declaration that verified (gateway.verify), is bound to that fiscal card and machine (MAC) and to
that period (its end is inside the sealed data and must equal the card's pending declaration), and its
sequence number defaults to period end * 100 (2026113000), so control data for a later period always
carries a larger number and the card refuses any earlier one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from protocol import apdu
from protocol import calendar
from protocol import cardfiles
from protocol import crypto
from protocol.personalisation import FiscalCardData, ManagementCardData, TillKeys, UserCardData

from protocol import cardauth
from .bureau_errors import DeclarationRejected, IssuanceError
from .keystore import KeyStore

U32 = 0xFFFFFFFF


# ---- inputs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Taxpayer:
    taxpayer_no: str  # 纳税人识别号, up to 20 ASCII characters
    taxpayer_id: str  # registration / identification number
    name: str  # up to 40 bytes of UTF-8
    bureau_code: str  # up to 12 digits
    filing_mode: int = cardfiles.FILING_MONTHLY


@dataclass(frozen=True)
class Limits:
    """Control data: invoice deadline (YYYYMMDD or a date) and limits in fen."""

    deadline: int | datetime.date
    single_limit: int
    cumulative_limit: int
    return_limit: int


def tax_item(index: int, rate: int, code: str, name: str) -> dict:
    """One authorised tax item (税种税目): rate in basis points (300 = 3 %)."""
    return dict(index=index, rate=rate, code=code, name=name)


# ---- validation ------------------------------------------------------------------------------------------
def card_number(value: bytes | str, what: str = "card number") -> bytes:
    """8 bytes, or 16 hex digits."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise IssuanceError("%s %r is not 16 hex digits" % (what, value)) from None
    if not isinstance(value, (bytes, bytearray)) or len(value) != 8:
        raise IssuanceError("%s must be 8 bytes" % what)
    return bytes(value)


def _digits(value: str, n: int, what: str, exact: bool = True) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or \
            (len(value) != n if exact else not 1 <= len(value) <= n):
        raise IssuanceError("%s must be %s %d ASCII digits, got %r" % (what, "exactly" if exact else "1 to", n, value))
    return value


def _text(value: str, n: int, what: str, ascii_only: bool = False) -> str:
    if not isinstance(value, str) or not value or len(value.encode("utf-8")) > n or \
            (ascii_only and not (value.isascii() and value.isalnum())) or "\x00" in value:
        raise IssuanceError("%s must be 1 to %d bytes%s, got %r" % (what, n, " of ASCII letters and digits"
                                                                    if ascii_only else " of UTF-8", value))
    return value


def day(value: int | datetime.date, what: str) -> int:
    """YYYYMMDD as an int, from an int or a date; IssuanceError unless a real calendar day."""
    if isinstance(value, datetime.date):
        return calendar.from_date(value)
    try:
        calendar.to_date(value)
    except (TypeError, ValueError):
        raise IssuanceError("%s %r is not a date (YYYYMMDD)" % (what, value)) from None
    return value


def _limits(limits: Limits) -> dict:
    deadline = day(limits.deadline, "deadline")
    for name in ("single_limit", "cumulative_limit", "return_limit"):
        v = getattr(limits, name)
        if not isinstance(v, int) or not 0 <= v <= U32:
            raise IssuanceError("%s must be 0 to %d fen, got %r" % (name, U32, v))
    if not 0 < limits.single_limit <= limits.cumulative_limit:
        raise IssuanceError("limits must satisfy 0 < single_limit <= cumulative_limit")
    return dict(deadline=deadline, single_limit=limits.single_limit, cumulative_limit=limits.cumulative_limit,
                return_limit=limits.return_limit)


def _tax_items(items: list) -> list:
    if not 1 <= len(items) <= 6:
        raise IssuanceError("a till has 1 to 6 tax items, got %d" % len(items))
    out, seen = [], set()
    for t in items:
        try:
            index, rate, code, name = t["index"], t["rate"], t["code"], t["name"]
        except (KeyError, TypeError):
            raise IssuanceError("tax item %r needs index, rate, code and name" % (t,)) from None
        if not isinstance(index, int) or not 1 <= index <= 255 or index in seen:
            raise IssuanceError("tax item index %r must be 1-255 and appear once" % (index,))
        if not isinstance(rate, int) or not 0 <= rate <= 10000:
            raise IssuanceError("tax item %d: rate must be 0-10000 basis points" % index)
        seen.add(index)
        out.append(dict(index=index, rate=rate, code=_text(code, 8, "tax item code", True),
                        name=_text(name, 24, "tax item name")))
    return out + [dict(index=0, rate=0, code="", name="")] * (6 - len(out))


def _identity(taxpayer: Taxpayer, card_no: bytes, machine_no: str, valid_from, valid_to) -> dict:
    # R-CARD-VALIDITY: the cards' validity dates; R-INIT-CHECKS: the machine number the till checks
    vf, vt = day(valid_from, "valid_from"), day(valid_to, "valid_to")
    if vf > vt:
        raise IssuanceError("valid_from %d is after valid_to %d" % (vf, vt))
    if taxpayer.filing_mode not in (cardfiles.FILING_MONTHLY, cardfiles.FILING_QUARTERLY):
        raise IssuanceError("filing_mode must be FILING_MONTHLY or FILING_QUARTERLY")
    return dict(card_no=card_no, machine_no=machine_no,
                taxpayer_no=_text(taxpayer.taxpayer_no, 20, "taxpayer_no", True),
                taxpayer_id=_text(taxpayer.taxpayer_id, 20, "taxpayer_id", True),
                taxpayer_name=_text(taxpayer.name, 40, "taxpayer name"),
                bureau_code=_digits(taxpayer.bureau_code, 12, "bureau_code", exact=False),
                filing_mode=taxpayer.filing_mode, valid_from=vf, valid_to=vt)


# ---- issuance --------------------------------------------------------------------------------------------
def issue_fiscal_card(keystore: KeyStore, *, taxpayer: Taxpayer, machine_no: str, card_no: bytes | str,
                      user_card_no: bytes | str, valid_from, valid_to, limits: Limits,
                      tax_items: list) -> FiscalCardData:
    """A fiscal card for one till, paired with the user card `user_card_no` (registration key)."""
    card_no = card_number(card_no, "fiscal card number")
    user_card_no = card_number(user_card_no, "user card number")
    machine_no = _digits(machine_no, 16, "machine_no")
    identity = _identity(taxpayer, card_no, machine_no, valid_from, valid_to)
    controls = _limits(limits)
    master = keystore.master()
    return FiscalCardData(identity=identity, keys=crypto.derive_fiscal_card_keys(master, card_no, user_card_no),
                          controls=controls, tax_items=_tax_items(tax_items),
                          inspection_ca=cardauth.inspection_ca_public(master))


def issue_user_card(keystore: KeyStore, *, taxpayer: Taxpayer, card_no: bytes | str, tills: list,
                    valid_from, valid_to, tax_items: list) -> UserCardData:
    """A user card serving `tills`: [(machine_no, fiscal_card_no), ...] (1 to 8)."""
    # R-LOCK-USER-CARD: EF06 lists the tills the user card serves
    card_no = card_number(card_no, "user card number")
    if not 1 <= len(tills) <= 8:
        raise IssuanceError("a user card serves 1 to 8 tills, got %d" % len(tills))
    master = keystore.master()
    entries, machines = [], set()
    for machine_no, fiscal_no in tills:
        machine_no = _digits(machine_no, 16, "machine_no")
        fiscal_no = card_number(fiscal_no, "fiscal card number")
        if machine_no in machines:
            raise IssuanceError("machine %s listed twice" % machine_no)
        machines.add(machine_no)
        entries.append(TillKeys(machine_no, fiscal_no, crypto.derive_key(master, crypto.Purpose.REG_FC, fiscal_no),
                                crypto.derive_key(master, crypto.Purpose.REG_UC, fiscal_no, card_no)))
    return UserCardData(card_no=card_no, key_id=master.key_id,
                        identity=_identity(taxpayer, card_no, "", valid_from, valid_to),
                        admin_key=cardauth.user_admin_key(master, card_no), tills=tuple(entries),
                        tax_items=_tax_items(tax_items))


def issue_cards(keystore: KeyStore, *, taxpayer: Taxpayer, machine_no: str, fiscal_card_no, user_card_no,
                valid_from, valid_to, limits: Limits, tax_items: list) -> tuple[FiscalCardData, UserCardData]:
    """The fiscal card and the user card of one new till."""
    fiscal = issue_fiscal_card(keystore, taxpayer=taxpayer, machine_no=machine_no, card_no=fiscal_card_no,
                               user_card_no=user_card_no, valid_from=valid_from, valid_to=valid_to,
                               limits=limits, tax_items=tax_items)
    user = issue_user_card(keystore, taxpayer=taxpayer, card_no=user_card_no,
                           tills=[(machine_no, fiscal.card_no)], valid_from=valid_from, valid_to=valid_to,
                           tax_items=tax_items)
    return fiscal, user


def issue_management_card(keystore: KeyStore, *, card_no: bytes | str, inspector_no: str, bureau_code: str,
                          valid_from, valid_to, rights: int = apdu.RIGHT_INSPECT | apdu.RIGHT_CLOCK,
                          pin: str | None) -> ManagementCardData:
    """An inspector's card: rights RIGHT_INSPECT and/or RIGHT_CLOCK; pin 4-8 digits (None: no PIN)."""
    card_no = card_number(card_no, "management card number")
    vf, vt = day(valid_from, "valid_from"), day(valid_to, "valid_to")
    if vf > vt:
        raise IssuanceError("valid_from %d is after valid_to %d" % (vf, vt))
    if not rights or rights & ~(apdu.RIGHT_INSPECT | apdu.RIGHT_CLOCK):
        raise IssuanceError("rights must be RIGHT_INSPECT and/or RIGHT_CLOCK")
    if pin is not None and not (isinstance(pin, str) and pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
        raise IssuanceError("an inspector PIN is 4 to 8 digits")
    master = keystore.master()
    cert = cardauth.make_certificate(master, card_no=card_no,
                                     inspector_no=_digits(inspector_no, 12, "inspector_no", exact=False),
                                     bureau_code=_digits(bureau_code, 12, "bureau_code", exact=False),
                                     valid_from=vf, valid_to=vt, rights=rights)
    return ManagementCardData(card_no=card_no, certificate=cert, seed=cardauth.management_seed(master, card_no),
                              pin=None if pin is None else pin_block(pin))


def pin_block(pin: str) -> bytes:
    """The 8 bytes VERIFY carries for an inspector PIN: ASCII digits padded with FF."""
    return pin.encode("ascii").ljust(8, b"\xff")


# ---- rolls and control data --------------------------------------------------------------------------------
def issue_roll(keystore: KeyStore, *, fiscal_card_no: bytes | str, machine_no: str, code: str, start: int,
               end: int, key_id: int | None = None) -> bytes:
    """A UserRoll record (machine no. + roll + MAC for that till's fiscal card) for the user card's EF05."""
    # R-LOCK-NO-ROLL: a roll is made for one fiscal card (its MAC)
    fiscal_card_no = card_number(fiscal_card_no, "fiscal card number")
    machine_no = _digits(machine_no, 16, "machine_no")
    code = _digits(code, 10, "invoice code")
    if not (isinstance(start, int) and isinstance(end, int) and 1 <= start <= end <= U32):
        raise IssuanceError("a roll needs 1 <= start <= end <= %d, got %r-%r" % (U32, start, end))
    key = crypto.derive_key(keystore.master(key_id), crypto.Purpose.ROLL_MAC, fiscal_card_no)
    mac = crypto.roll_mac(key, code, start, end, fiscal_card_no, machine_no)
    return cardfiles.UserRoll.build(dict(machine_no=machine_no, roll=dict(code=code, start=start, end=end, mac=mac)))


def issue_controls(keystore: KeyStore, report, *, limits: Limits, seq: int | None = None) -> bytes:
    """Clear-unlock: the UserControls record (EF01) answering one verified declaration `report`
    (gateway.verify.DeclarationReport): new deadline and limits for that fiscal card and machine, bound to
    the declared period.  DeclarationRejected if the report did not verify."""
    # R-CLEAR-UNLOCK: control data bound to one till and the declared period
    if not report.ok:
        raise DeclarationRejected("no clear-unlock data for a declaration that did not verify", report.problems)
    values = _limits(limits)
    if values["deadline"] <= report.end:
        raise IssuanceError("the new deadline %d must be after the declared period's end %d"
                            % (values["deadline"], report.end))
    seq = report.end * 100 if seq is None else seq
    if not isinstance(seq, int) or not 1 <= seq <= U32:
        raise IssuanceError("seq must be 1 to %d" % U32)
    master = keystore.master(report.key_id)
    keys = crypto.derive_fiscal_card_keys(master, report.fiscal_card_no)
    controls = crypto.ControlData(calendar.to_date(values["deadline"]), values["single_limit"],
                                  values["cumulative_limit"], values["return_limit"], calendar.to_date(report.end), seq)
    blob = crypto.seal_controls(keys, report.machine_no, controls)
    return cardfiles.UserControls.build(dict(machine_no=report.machine_no, key_id=blob[0], ciphertext=blob[1:25],
                                     mac2=blob[25:]))
