"""The fiscal card (税控卡, DF TSAM01): makes every 税控码, signs daily totals and declarations, and holds the
bureau's control data and the loaded invoice roll.  Rules and APDU sequences: docs/CARDS.md.

Rules it enforces (status word in brackets; `fiscal_rules` in docs/CARDS.md has the full table):
- nothing fiscal before registration (6901); registration only once (6901), except that until the first
  VERIFY_FISCAL_PIN it may be repeated and returns the same initial PIN (a lost TERMINAL_REGISTER reply
  would otherwise leave a registered card whose PIN nobody knows);
- ISSUE_INVOICE, INPUT_INVOICE_NB and UPDATE_CONTROLS need VERIFY_FISCAL_PIN in this session (6982) and
  an unblocked PIN (6983); daily closes and declarations do not, so they work while the till is locked;
- the PIN rolls on every VERIFY_FISCAL_PIN; the previous PIN is accepted once more and answers the
  current one without rolling (a lost reply must not lose the PIN); CARD_PIN_TRIES (3, protocol.rules)
  wrong PINs block it (63C2, 63C1, 6983);
- invoice dates never go back, never reach a closed day, stay within the card's validity and the
  control-data deadline (6A80); the number is exactly the roll's next (6A80), a roll must be loaded with
  numbers left (6985); amounts within the single, cumulative and return limits (9401);
- a new day cannot start while the previous day with invoices is not signed (6985), so every day with
  invoices is signed against the card's own counters: DAILY_COLLECT_SIGN must repeat exactly what the card
  counted for that day, and zero for any other day (6A80);
- DECLARE_DUTY covers closed days only, starts after the last declared period, skips no undeclared day
  and repeats exactly the card's sums of its days (6A80); one pending declaration at a time (6985);
- UPDATE_CONTROLS: MAC bound to this card and machine (9302), sequence above the last (6985), period end
  equal to the pending declaration's (6985); then new deadline and limits, cumulative counters reset,
  declaration CLEARED;
- rolls: MAC for this card and machine (9302), never a range that overlaps a roll loaded before (6985);
- MAC failures (registration MAC2, control data MAC2, roll MAC) count: MAC_TRIES consecutive ones lock the
  card for good (9303); the command succeeding resets the count to 0, a refusal after a good MAC (6985)
  leaves it as it is.

Void invoices (type 03) carry amount 0 in every slot and in the total; they take an invoice number,
count in void_count and touch no amount or limit.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import cardauth
from protocol import apdu
from protocol import cardfiles
from protocol import crypto
from protocol.calendar import from_date, valid_date

from .iso import (
    PIN_TRIES, SW_BAD_DATA, SW_CONDITIONS, SW_LIMIT, SW_MAC, SW_PIN_BLOCKED, SW_REGISTRATION, SW_SECURITY,
    CardState, FileSpec, Refuse, Session, SimCard, sw_pin_wrong,
)

NORMAL, RETURN, VOID = 1, 2, 3
U32 = 0xFFFFFFFF
UNDECLARED_DAYS_MAX = 400  # days with invoices held for the next declaration (6985 beyond)


def empty_today() -> dict:
    return dict(date=0, normal_count=0, return_count=0, void_count=0, normal_total=0, return_total=0,
                last_number=0, last_fiscal_code=bytes(8), closed_date=0, cumulative_normal=0,
                cumulative_return=0)


def empty_declaration() -> dict:
    lines = [dict(item=0, normal=0, returned=0) for _ in range(6)]
    return dict(status=cardfiles.DECL_NONE, start=0, end=0,
                totals=dict(normal_count=0, return_count=0, void_count=0, normal_total=0, return_total=0,
                            lines=lines),
                mac=bytes(4), signature=bytes(64))


@dataclass(kw_only=True)
class FiscalState(CardState):
    """The fiscal card's EEPROM.  Files EF01-EF05 are rendered from it."""

    card_no: bytes
    machine_no: str
    identity: dict  # FiscalIdentity fields
    keys: dict  # key_id, invoice, ctl_mac, ctl_enc, roll_mac, decl_mac, reg_fc, reg_uc, sign_seed, inspect_ca
    controls: dict  # Controls fields
    tax_items: list  # 6 TaxItem dicts (index 0: unused)
    period_end: int = 0
    sequence: int = 0
    registered: bool = False
    pin_used: bool = False  # a VERIFY_FISCAL_PIN has succeeded since registration
    pin: bytes = b""
    prev_pin: bytes = b""
    pin_tries: int = PIN_TRIES
    today: dict = field(default_factory=empty_today)  # FiscalToday fields
    day_items: list = field(default_factory=list)  # [[item, normal, returned]] of today["date"]
    undeclared: list = field(default_factory=list)  # [[date, [n, r, v], [[item, normal, returned]...]]]
    last_daily: list = field(default_factory=lambda: [0, ""])  # [date, sha256 hex of the signed bytes]
    declaration: dict = field(default_factory=empty_declaration)  # FiscalDeclaration fields
    declared_end: int = 0
    roll: dict = field(default_factory=lambda: dict(code="", start=0, end=0, next=0))
    roll_history: list = field(default_factory=list)  # [[code, start, end]] every roll ever loaded


@dataclass(kw_only=True)
class FiscalSession(Session):
    reg_random: bytes | None = None  # GET_REGISTER_NB, single use
    pin_ok: bool = False  # VERIFY_FISCAL_PIN succeeded
    inspector: bytes | None = None  # management card no. after EXTERNAL AUTHENTICATE
    inspector_rights: int = 0


def _sums_key(counts, items) -> tuple:
    """Canonical form of a day's or a period's sums: counts and the non-zero items, order-free."""
    return tuple(counts), frozenset((i, n, r) for i, n, r in items if n or r)


class FiscalCard(SimCard):
    KIND = "fiscal"
    DF_NAME = apdu.DF_FISCAL
    FILES = {
        cardfiles.FISCAL_EF_CONTROLS: FileSpec(cardfiles.FISCAL_EF_CONTROLS, cardfiles.FiscalControls),
        cardfiles.FISCAL_EF_IDENTITY: FileSpec(cardfiles.FISCAL_EF_IDENTITY, cardfiles.FiscalIdentity),
        cardfiles.FISCAL_EF_TODAY: FileSpec(cardfiles.FISCAL_EF_TODAY, cardfiles.FiscalToday),
        cardfiles.FISCAL_EF_DECLARATION: FileSpec(cardfiles.FISCAL_EF_DECLARATION, cardfiles.FiscalDeclaration),
        cardfiles.FISCAL_EF_ROLL: FileSpec(cardfiles.FISCAL_EF_ROLL, cardfiles.FiscalRoll),
    }
    SESSION = FiscalSession
    state: FiscalState
    session: FiscalSession

    def __init__(self, state: FiscalState, *, rng=None):
        super().__init__(state, rng=rng)
        k = state.keys
        sk = Ed25519PrivateKey.from_private_bytes(k["sign_seed"])
        self._keys = crypto.FiscalCardKeys(
            key_id=k["key_id"], card_no=state.card_no, invoice=k["invoice"], ctl_mac=k["ctl_mac"],
            ctl_enc=k["ctl_enc"], roll_mac=k["roll_mac"], decl_mac=k["decl_mac"], reg_fc=k["reg_fc"],
            reg_uc=k["reg_uc"], sign_key=sk,
            public_key=sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @classmethod
    def issued(cls, data, *, rng=None) -> "FiscalCard":
        """A blank card personalised with protocol.personalisation.FiscalCardData."""
        keys = data.keys
        seed = keys.sign_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())
        state = FiscalState(
            card_no=bytes(keys.card_no), machine_no=data.identity["machine_no"], identity=dict(data.identity),
            keys=dict(key_id=keys.key_id, invoice=keys.invoice, ctl_mac=keys.ctl_mac, ctl_enc=keys.ctl_enc,
                      roll_mac=keys.roll_mac, decl_mac=keys.decl_mac, reg_fc=keys.reg_fc, reg_uc=keys.reg_uc,
                      sign_seed=seed, inspect_ca=bytes(data.inspection_ca)),
            controls=dict(data.controls), tax_items=[dict(t) for t in data.tax_items])
        return cls(state, rng=rng)

    @property
    def public_key(self) -> bytes:
        return self._keys.public_key

    def _extra_handlers(self):
        gb = apdu.CLA_GB
        return {
            (gb, apdu.INS_GET_REGISTER_NB): self._get_register_nb,
            (gb, apdu.INS_TERMINAL_REGISTER): self._terminal_register,
            (gb, apdu.INS_VERIFY_FISCAL_PIN): self._verify_pin,
            (gb, apdu.INS_ISSUE_INVOICE): self._issue_invoice,
            (gb, apdu.INS_DAILY_COLLECT_SIGN): self._daily_collect_sign,
            (gb, apdu.INS_DECLARE_DUTY): self._declare_duty,
            (gb, apdu.INS_UPDATE_CONTROLS): self._update_controls,
            (gb, apdu.INS_INPUT_INVOICE_NB): self._input_invoice_nb,
            (apdu.CLA_ISO, apdu.INS_EXTERNAL_AUTHENTICATE): self._external_authenticate,
        }

    # ---- files -----------------------------------------------------------------------------------------
    def read_file(self, fid: int) -> bytes:
        s = self.state
        if fid == cardfiles.FISCAL_EF_CONTROLS:
            return cardfiles.FiscalControls.build(dict(controls=s.controls, tax_items=s.tax_items, period_end=s.period_end,
                                               sequence=s.sequence))
        if fid == cardfiles.FISCAL_EF_IDENTITY:
            return cardfiles.FiscalIdentity.build(s.identity)
        if fid == cardfiles.FISCAL_EF_TODAY:
            return cardfiles.FiscalToday.build(s.today)
        if fid == cardfiles.FISCAL_EF_DECLARATION:
            return cardfiles.FiscalDeclaration.build(s.declaration)
        return cardfiles.FiscalRoll.build(s.roll)

    # ---- common checks ---------------------------------------------------------------------------------
    def _registered(self) -> None:
        # R-INIT-ONCE: nothing fiscal before registration
        if not self.state.registered:
            raise Refuse(SW_REGISTRATION)

    def _pin_session(self) -> None:
        # R-LOCK-PIN: issuing, rolls and control data need the PIN in this session
        if self.state.pin_tries == 0:
            raise Refuse(SW_PIN_BLOCKED)
        if not self.session.pin_ok:
            raise Refuse(SW_SECURITY)

    def _check_items(self, items, *amount_lists) -> None:
        """Slots: item 0 carries zero amounts; other items are authorised (EF01) and appear once."""
        # R-INVOICE-LINES: only the tax items registered on the card
        allowed = {t["index"] for t in self.state.tax_items if t["index"]}
        seen = set()
        for i, item in enumerate(items):
            if item == 0:
                if any(amounts[i] for amounts in amount_lists):
                    raise Refuse(SW_BAD_DATA)
            elif item not in allowed or item in seen:
                raise Refuse(SW_BAD_DATA)
            seen.add(item)

    def _last_date(self) -> int:
        t = self.state.today
        return max(t["date"], t["closed_date"], self.state.declared_end)

    # ---- registration ---------------------------------------------------------------------------------
    def _get_register_nb(self, cmd) -> bytes:
        self.need_p1p2(cmd)
        self.need_len(cmd, 0)
        if self.state.registered and self.state.pin_used:
            raise Refuse(SW_REGISTRATION)
        random = bytes(self.rng(4))
        self.session.reg_random = random
        s = self.state
        return random + s.card_no + crypto.register_mac1(s.keys["reg_fc"], random, s.card_no)

    def _terminal_register(self, cmd) -> bytes:
        # R-INIT-ONCE: registration once (6901); R-INIT-CHECKS
        self.need_p1p2(cmd)
        mac2 = self.need_len(cmd, 4)
        s = self.state
        if s.registered and s.pin_used:
            raise Refuse(SW_REGISTRATION)
        random = self.session.reg_random
        if random is None:
            raise Refuse(SW_CONDITIONS)
        self.session.reg_random = None
        mac1 = crypto.register_mac1(s.keys["reg_fc"], random, s.card_no)
        try:
            crypto.verify_register_mac2(s.keys["reg_uc"], random, s.card_no, mac1, mac2)
        except crypto.MacError:
            self.mac_failed()
        if not s.registered:
            s.pin = bytes(self.rng(8))
            s.prev_pin = b""
            s.registered = True
        s.pin_tries = PIN_TRIES
        s.mac_failures = 0
        return s.pin

    def _verify_pin(self, cmd) -> bytes:
        # R-PIN-ROLLS: the PIN rolls on every use, the previous one answered once more; R-LOCK-PIN: CARD_PIN_TRIES wrong
        # PINs block it
        self.need_p1p2(cmd)
        pin = self.need_len(cmd, 8)
        s = self.state
        self._registered()
        if s.pin_tries == 0:
            raise Refuse(SW_PIN_BLOCKED)
        if hmac.compare_digest(pin, s.pin):
            new = bytes(self.rng(8))
            while new == s.pin:
                new = bytes(self.rng(8))
            s.prev_pin, s.pin = s.pin, new
        elif not (s.prev_pin and hmac.compare_digest(pin, s.prev_pin)):
            s.pin_tries -= 1
            self.session.pin_ok = False
            raise Refuse(sw_pin_wrong(s.pin_tries) if s.pin_tries else SW_PIN_BLOCKED)
        s.pin_tries = PIN_TRIES
        s.pin_used = True
        self.session.pin_ok = True
        return s.pin

    # ---- issuing -----------------------------------------------------------------------------------------
    def _issue_invoice(self, cmd) -> bytes:
        # R-INVOICE-NUMBERING, R-INVOICE-FISCAL-CODE, R-LOCK-DEADLINE, R-LOCK-SINGLE-LIMIT, R-LOCK-CUMULATIVE,
        # R-LOCK-RETURN-LIMIT, R-LOCK-NO-ROLL, R-INVOICE-VOID, R-CARD-VALIDITY, R-DAILY-EVERY-DAY (never a closed day)
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, apdu.IssueInvoiceData.sizeof())
        self._registered()
        self._pin_session()
        inv = self.parse(apdu.IssueInvoiceData, raw)
        s, t = self.state, self.state.today
        day = inv.date
        if inv.kind not in (NORMAL, RETURN, VOID) or not valid_date(day):
            raise Refuse(SW_BAD_DATA)
        if not s.identity["valid_from"] <= day <= s.identity["valid_to"] or day > s.controls["deadline"]:
            raise Refuse(SW_BAD_DATA)
        if day < t["date"] or day <= t["closed_date"]:
            raise Refuse(SW_BAD_DATA)
        if day > t["date"] and self._today_unsigned():
            raise Refuse(SW_CONDITIONS)
        roll = s.roll
        if not roll["code"] or roll["next"] > roll["end"]:
            raise Refuse(SW_CONDITIONS)
        if inv.number != roll["next"]:
            raise Refuse(SW_BAD_DATA)
        items = [ln.item for ln in inv.lines]
        amounts = [ln.amount for ln in inv.lines]
        self._check_items(items, amounts)
        total = inv.total
        if sum(amounts) != total or (total == 0) != (inv.kind == VOID):
            raise Refuse(SW_BAD_DATA)
        new_day = day != t["date"]
        if total > s.controls["single_limit"]:
            raise Refuse(SW_LIMIT)
        if inv.kind == NORMAL:
            if t["cumulative_normal"] + total > s.controls["cumulative_limit"] or \
                    (0 if new_day else t["normal_total"]) + total > U32:
                raise Refuse(SW_LIMIT)
        elif inv.kind == RETURN:
            if t["cumulative_return"] + total > s.controls["return_limit"] or \
                    (0 if new_day else t["return_total"]) + total > U32:
                raise Refuse(SW_LIMIT)
        code = crypto.fiscal_code(s.keys["invoice"], raw[:-1], s.card_no, s.machine_no)
        # -- all checks passed: write
        if new_day:
            t.update(date=day, normal_count=0, return_count=0, void_count=0, normal_total=0, return_total=0)
            s.day_items = []
        if inv.kind == NORMAL:
            t["normal_count"] += 1
            t["normal_total"] += total
            t["cumulative_normal"] += total
        elif inv.kind == RETURN:
            t["return_count"] += 1
            t["return_total"] += total
            t["cumulative_return"] += total
        else:
            t["void_count"] += 1
        if inv.kind != VOID:
            per_item = {e[0]: e for e in s.day_items}
            for item, amount in zip(items, amounts):
                if item and amount:
                    entry = per_item.setdefault(item, [item, 0, 0])
                    entry[1 if inv.kind == NORMAL else 2] += amount
            s.day_items = sorted(per_item.values())
        t["last_number"] = inv.number
        t["last_fiscal_code"] = code
        roll["next"] += 1
        return code

    def _today_unsigned(self) -> bool:
        t = self.state.today
        return bool(t["normal_count"] + t["return_count"] + t["void_count"]) and t["date"] > t["closed_date"]

    # ---- daily close ---------------------------------------------------------------------------------
    def _sums(self, sums) -> tuple:
        self._check_items(sums["items"], sums["normal"], sums["returned"])
        return _sums_key((sums.normal_count, sums.return_count, sums.void_count),
                         zip(sums["items"], sums["normal"], sums["returned"]))

    def _daily_collect_sign(self, cmd) -> bytes:
        # R-DAILY-EVERY-DAY: one signature per calendar day; R-LOCKED-STILL-SERVES (no PIN needed)
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, apdu.DailyCollectSignData.sizeof())
        self._registered()
        rec = self.parse(apdu.DailyCollectSignData, raw)
        s, t = self.state, self.state.today
        day = rec.date
        if not valid_date(day) or day < s.identity["valid_from"]:
            raise Refuse(SW_BAD_DATA)
        signed = raw[:-1]
        digest = hashlib.sha256(signed).hexdigest()
        if [day, digest] == s.last_daily:  # the same close again (a lost reply): the same signature
            return crypto.sign_record(self._keys, crypto.SigKind.DAILY, signed)
        if day <= t["closed_date"]:
            raise Refuse(SW_BAD_DATA)
        if day > t["date"] and self._today_unsigned():
            raise Refuse(SW_CONDITIONS)
        got = self._sums(rec.sums)
        if day == t["date"]:
            expected = _sums_key((t["normal_count"], t["return_count"], t["void_count"]), s.day_items)
        else:
            expected = _sums_key((0, 0, 0), ())
        if got != expected:
            raise Refuse(SW_BAD_DATA)
        has_invoices = any(got[0])
        if has_invoices and len(s.undeclared) >= UNDECLARED_DAYS_MAX:
            raise Refuse(SW_CONDITIONS)
        signature = crypto.sign_record(self._keys, crypto.SigKind.DAILY, signed)
        t["closed_date"] = day
        s.last_daily = [day, digest]
        if has_invoices:
            s.undeclared.append([day, list(got[0]), sorted([list(e) for e in got[1]])])
        return signature

    # ---- declaration -----------------------------------------------------------------------------------
    def _declare_duty(self, cmd) -> bytes:
        # R-DECLARE-PERIOD: the period's sums signed; R-LOCKED-STILL-SERVES
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, apdu.DeclareDutyData.sizeof())
        self._registered()
        decl = self.parse(apdu.DeclareDutyData, raw)
        s = self.state
        start, end = decl.start, decl.end
        if s.declaration["status"] == cardfiles.DECL_SIGNED:
            raise Refuse(SW_CONDITIONS)
        if not (valid_date(start) and valid_date(end)) or start > end:
            raise Refuse(SW_BAD_DATA)
        if start <= s.declared_end or end > s.today["closed_date"]:
            raise Refuse(SW_BAD_DATA)
        if any(d[0] < start for d in s.undeclared):
            raise Refuse(SW_BAD_DATA)  # a closed day with invoices would be skipped
        counts, per_item = [0, 0, 0], {}
        for d, day_counts, day_items in s.undeclared:
            if d <= end:
                counts = [a + b for a, b in zip(counts, day_counts)]
                for item, n, r in day_items:
                    e = per_item.setdefault(item, [item, 0, 0])
                    e[1] += n
                    e[2] += r
        got = self._sums(decl.sums)
        if got != _sums_key(counts, per_item.values()):
            raise Refuse(SW_BAD_DATA)
        normal_total, return_total = sum(decl.sums.normal), sum(decl.sums.returned)
        if normal_total > U32 or return_total > U32:
            raise Refuse(SW_BAD_DATA)
        payload = raw[:-1] + normal_total.to_bytes(4, "big") + return_total.to_bytes(4, "big") + b"\x00"
        mac1 = crypto.declaration_mac(s.keys["decl_mac"], payload, s.card_no, s.machine_no)
        signature = crypto.sign_record(self._keys, crypto.SigKind.DECLARATION, payload)
        sums = decl.sums
        s.declaration = dict(
            status=cardfiles.DECL_SIGNED, start=start, end=end, mac=mac1, signature=signature,
            totals=dict(normal_count=sums.normal_count, return_count=sums.return_count,
                        void_count=sums.void_count, normal_total=normal_total, return_total=return_total,
                        lines=[dict(item=i, normal=n, returned=r)
                               for i, n, r in zip(sums["items"], sums["normal"], sums["returned"])]))
        s.declared_end = end
        s.undeclared = [d for d in s.undeclared if d[0] > end]
        return apdu.DeclareDutyResponse.build(dict(normal_total=normal_total, return_total=return_total, status=0,
                                                mac1=mac1, signature=signature))

    # ---- clear-unlock ----------------------------------------------------------------------------------
    def _update_controls(self, cmd) -> None:
        # R-CLEAR-UNLOCK: only the bureau's control data for this card (MAC2), counters reset; R-LOCK-MAC
        self.need_p1p2(cmd)
        blob = self.need_len(cmd, crypto.CONTROL_BLOB_LEN)
        self._registered()
        self._pin_session()
        s = self.state
        try:
            ctl = crypto.open_controls(self._keys, s.machine_no, blob)
        except crypto.KeyIdError:
            raise Refuse(SW_MAC) from None  # another key generation: not a guess, not counted
        except crypto.MacError:
            self.mac_failed()
        except ValueError:
            raise Refuse(SW_BAD_DATA) from None
        period_end = from_date(ctl.period_end)
        if ctl.seq <= s.sequence:
            raise Refuse(SW_CONDITIONS)  # a replay of an earlier period's control data
        if s.declaration["status"] != cardfiles.DECL_SIGNED or period_end != s.declaration["end"]:
            raise Refuse(SW_CONDITIONS)
        s.controls = dict(deadline=from_date(ctl.deadline), single_limit=ctl.single_limit,
                          cumulative_limit=ctl.cumulative_limit, return_limit=ctl.return_limit)
        s.period_end, s.sequence = period_end, ctl.seq
        s.today["cumulative_normal"] = s.today["cumulative_return"] = 0
        s.declaration["status"] = cardfiles.DECL_CLEARED
        s.mac_failures = 0

    # ---- invoice rolls ---------------------------------------------------------------------------------
    def _input_invoice_nb(self, cmd) -> None:
        # R-LOCK-NO-ROLL: one roll at a time, made for this card (MAC); R-LOCK-MAC
        self.need_p1p2(cmd)
        raw = self.need_len(cmd, apdu.InputInvoiceNbData.sizeof())
        self._registered()
        self._pin_session()
        roll = self.parse(apdu.InputInvoiceNbData, raw)
        s = self.state
        code = roll.code
        if len(code) != 10 or not code.isdigit() or not 1 <= roll.start <= roll.end:
            raise Refuse(SW_BAD_DATA)
        if s.roll["code"] and s.roll["next"] <= s.roll["end"]:
            raise Refuse(SW_CONDITIONS)
        try:
            crypto.verify_roll_mac(s.keys["roll_mac"], code, roll.start, roll.end, s.card_no, s.machine_no,
                                   roll.mac)
        except crypto.MacError:
            self.mac_failed()
        if any(c == code and a <= roll.end and roll.start <= b for c, a, b in s.roll_history):
            raise Refuse(SW_CONDITIONS)  # the same numbers twice (a replayed roll)
        s.roll = dict(code=code, start=roll.start, end=roll.end, next=roll.start)
        s.roll_history.append([code, roll.start, roll.end])
        s.mac_failures = 0

    # ---- inspection ----------------------------------------------------------------------------------------
    def _external_authenticate(self, cmd) -> None:
        """An inspector's proof (P2 = KEYREF_INSPECTOR) answering this card's GET CHALLENGE."""
        self.need_p1p2(cmd, 0, apdu.KEYREF_INSPECTOR)
        proof = self.need_len(cmd, cardauth.PROOF_LEN)
        challenge = self.take_challenge()
        try:
            cert = cardauth.verify_proof(self.state.keys["inspect_ca"], proof, challenge)
        except (ValueError, UnicodeError):
            raise Refuse(SW_BAD_DATA) from None
        except crypto.SignatureError:
            raise Refuse(SW_MAC) from None  # a signature cannot be guessed: not counted
        if cert.key_id != self.state.keys["key_id"]:
            raise Refuse(SW_MAC)
        last = self._last_date()
        if not valid_date(cert.valid_from) or not valid_date(cert.valid_to) or \
                (last and not cert.valid_from <= last <= cert.valid_to):
            raise Refuse(SW_CONDITIONS)
        self.session.inspector = bytes(cert.card_no)
        self.session.inspector_rights = cert.rights
