# mypy: disable-error-code="attr-defined, has-type"
"""Boot: mount the journal, rebuild the state from its records, check the anchors, back-fill; and the
fiscal card's session (SELECT, identity, PIN, its files read into the state), which boot opens first.

Boot never raises (short of the power going): whatever the flash, nvram or cards hold, it ends with the
link served, either normal or locked with the reason in `damage_info()` (docs/FISCAL_MEMORY.md §11).
`Boot` is a part of `Fiscal` (fiscal.py): its methods work on the state `Fiscal.__init__` sets (mypy
cannot see that, hence attr-defined off in this file).
"""

import struct

from . import cards, codes, layouts, ledger
from .cards import CardError
from .clock import day_number, from_day_number, valid_date
from .errnos import ENODEV
from .journal import Damage, Journal, JournalError
from .records import Refused, decode, intent_ok, NV_ANCHOR, NV_INTENT, NV_PIN

CARD_LOCKS = {  # a fiscal card error -> its lock bit: R-LOCK-FISCAL-CARD, R-LOCK-PIN, R-LOCK-MAC
    codes.E_CARD_FISCAL_MISSING: codes.LOCK_FISCAL_CARD_MISSING,
    codes.E_CARD_NO_RESPONSE: codes.LOCK_FISCAL_CARD_MISSING,
    codes.E_CARD_WRONG_TYPE: codes.LOCK_FISCAL_CARD_FOREIGN,
    codes.E_CARD_FOREIGN_MACHINE: codes.LOCK_FISCAL_CARD_FOREIGN,
    codes.E_CARD_REGISTRATION: codes.LOCK_FISCAL_CARD_UNREGISTERED,
    codes.E_CARD_PIN_BLOCKED: codes.LOCK_PIN_BLOCKED,
    codes.E_CARD_PIN_WRONG: codes.LOCK_PIN_BLOCKED,
    codes.E_CARD_LOCKED: codes.LOCK_MAC,
}


def machine_device_id(machine_no):
    """The journal's device id: the 16-digit machine number packed as 8 bytes of BCD."""
    out = bytearray(8)
    for i in range(8):
        out[i] = (ord(machine_no[2 * i]) - 48) << 4 | (ord(machine_no[2 * i + 1]) - 48)
    return bytes(out)


class Boot:
    def start(self):  # R-BOOT-ALWAYS
        """Boot: mount, load, open the card, check the anchors, back-fill.  Never raises (short of the
        power going): whatever the flash, nvram or cards hold, boot ends with the link served, either
        normal or locked with the reason in `damage_info()` (docs/FISCAL_MEMORY.md §11)."""
        try:
            self._mount()
        except Exception as e:  # unreadable media or a bug in mount: nothing of the journal is usable
            self.jn = None
            self._damaged("media", None, None, None, repr(e))
        jn = self.jn
        if jn is None or not jn.counters()[codes.REC_INIT]:
            if self.nv.get(NV_ANCHOR) is not None:  # the journal held records once: none left
                self._damaged("truncated", 0, None, 0, "no INIT record, nvram anchor present")
            return
        try:
            self._load_journal()
        except Exception as e:  # INIT or another record unreadable: the journal noted where
            if jn.damage:
                self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED
            else:
                self._damaged("other", None, None, None, repr(e))
        raw = self.nv.get(NV_INTENT)
        if raw is not None and not intent_ok(raw):
            self.nv.delete(NV_INTENT)
            self._damaged("nvram", None, None, None, "intent unreadable")
        try:
            self._open_fiscal()
        except Exception:  # a card answering garbage: treated as no usable fiscal card
            self.session = False
            self.card_lock = 1 << codes.LOCK_FISCAL_CARD_MISSING
        try:
            self._load_last_request()
        except Exception:
            self.last_req = None
        self._check_anchor()
        self.boot_pending = True
        if not self.defer_boot:
            self.finish_boot()

    def defer_boot_work(self):
        self.defer_boot = True

    def finish_boot(self):  # R-DAILY-EVERY-DAY: the days missed while off
        """The end of boot: back-fill the days missed while off (up to yesterday) and log the power-on;
        not while fiscal memory is damaged.  Under the link server this runs inside the first request
        after boot (device.py), so a multi-year back-fill sends keep-alives for that request instead of
        leaving the host in silence."""
        self.boot_pending = False
        if self.card_ok() and not self.fm_lock:
            date, time = self.now()
            if valid_date(date):
                try:
                    self._close_days(from_day_number(day_number(date) - 1), 0, 0)
                except (Refused, CardError):
                    pass
                self._event(codes.EV_POWER_ON, len(self.recovered))

    def _damaged(self, kind, sector, offset, index, detail):  # R-LOCK-FM-DAMAGED
        """Lock FM_DAMAGED for a reason found outside the journal's own checks.  Noted in the journal's
        damage list (appends refused, read-out flagged) when it is mounted, else kept here."""
        self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED
        d = Damage(kind, sector, offset, index, detail)
        if self.jn is not None:
            self.jn.damage.append(d)
        elif self.boot_damage is None:
            self.boot_damage = d

    def _mount(self):
        flash = self.board.flash
        if flash is None:
            return
        dev = machine_device_id(self.machine_no)
        try:
            self.jn = Journal(flash, dev)
        except JournalError as e:
            if e.errno != ENODEV:
                raise
            if self.nv.get(NV_ANCHOR) is not None:
                return  # no journal header left, but this till wrote records: never format over that
            # blank (the factory state), or a first-boot format cut short: no valid header, format it
            Journal.format(flash, dev, self.quotas)
            self.jn = Journal(flash, dev)
        if self.jn.damage:
            self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED

    def _put_anchor(self):
        """nvram `anchor` = format id + index of the newest fiscal record + the chain head after it.
        Written after each fiscal record (a DAILY back-fill once, at its end), never per invoice: the
        anchor is a lower bound, a cut before it is written leaves an older one, still true."""
        jn = self.jn
        if jn is None or jn.damage or jn.f_anchor is None or jn.f_anchor[0] == 0xFFFFFFFF:
            return
        a = jn.f_anchor
        self.nv.put(NV_ANCHOR, jn.format_id + struct.pack("<I", a[0]) + a[1])

    def _check_anchor(self):  # R-FM-APPEND-ONLY: truncation and rollback
        """Boot: the journal must still hold the record nvram's anchor names (the card's view is
        `_check_card_anchor`).  TRUNCATED: it is missing (a tail erased, or an older image put back with
        nothing after it: the two look alike).  ROLLBACK: the journal holds another history (the anchored
        record differs, or the partition was formatted again).  NVRAM: the anchor is unreadable."""
        jn = self.jn
        if jn is None or jn.damage:
            return
        end = (jn.f_tail, jn.f_off if jn.f_off >= 0 else None)  # where the fiscal area ends
        raw = self.nv.get(NV_ANCHOR)
        if raw is not None:
            if len(raw) != 40:
                self._damaged("nvram", None, None, None, "anchor unreadable")
                return
            idx = struct.unpack_from("<I", raw, 4)[0]
            if raw[:4] != jn.format_id:
                self._damaged("rollback", 0, None, None, "journal formatted again")
                return
            if idx >= jn.next_index:
                self._damaged("truncated", end[0], end[1], jn.next_index,
                              "anchor index %d, journal ends at %d" % (idx, jn.next_index))
                return
            h = jn.head_after(idx)
            if h is None and jn.damage:
                self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED  # the read found the damage itself
                return
            if h != raw[8:]:
                self._damaged("rollback", None, None, idx, "anchored record differs")
                return
        self._put_anchor()

    def _check_card_anchor(self):
        """The fiscal card's view of the journal's end (docs/FISCAL_MEMORY.md §11), each time the card
        is opened and no intent is pending: a card pulled at boot is checked when it comes back."""
        jn = self.jn
        if jn is None or jn.damage or self.init is None:
            return
        end = (jn.f_tail, jn.f_off if jn.f_off >= 0 else None)  # where the fiscal area ends
        if self.card_ok() and self.nv.get(NV_INTENT) is None:
            t = self.card_today
            detail = None
            if t["last_number"] != self.last_number:
                detail = "card's last invoice %d, journal's %d" % (t["last_number"], self.last_number)
                if jn.r_run:  # where the detail ends
                    end = (jn.F + jn.r_run[-1], jn.r_off if jn.r_off >= 0 else None)
            elif self.card_ctl["sequence"] > self.clear_seq:
                detail = "card's clear-unlock %d, journal's %d" % (self.card_ctl["sequence"], self.clear_seq)
            elif self.card_decl["status"] != cards.DECL_NONE and self.card_decl["end"] > self.declared_end:
                detail = "card's declaration to %d, journal's %d" % (self.card_decl["end"], self.declared_end)
            if detail is not None:
                self._damaged("truncated", end[0], end[1], jn.next_index, detail)

    def _load_journal(self):
        jn = self.jn
        t, body = jn.read(0)
        self.init = decode(layouts.INIT_RECORD, body)
        self.controls = self.init["controls"]
        self.tax_items = self.init["tax_items"]
        self.last_date = self.init["date"]
        self.last_time = self.init["time"]
        found_decl = found_clear = found_roll = False
        first = True  # until the newest record with a time of day is seen (DAILY records have none)
        for idx, t, body in jn.fiscal_records_reverse():
            if t not in layouts.RECORDS:
                continue
            rec = decode(layouts.RECORDS[t], body)
            if first:
                first = "time" not in rec
                self._saw(rec.get("date", 0), rec.get("time", 0))
            if t == codes.REC_DAILY:
                if not self.closed:
                    self.closed = rec["date"]
                if not found_decl:
                    self.undeclared_start = rec["date"]  # newest first: the last one seen is the first
                    ledger.add_totals(self.undeclared_totals, rec["totals"])
            elif t == codes.REC_DECLARATION and not found_decl:
                found_decl = True
                self.declared_end = rec["end"]
                if not found_clear:
                    self.decl = rec
            elif t == codes.REC_CLEAR_UNLOCK and not found_clear:
                found_clear = True
                self.clear_seq = rec["sequence"]
                self.controls = rec["controls"]
            elif t == codes.REC_ROLL_LOAD and not found_roll:
                found_roll = True
                self.roll = {"code": rec["code"], "start": rec["start"], "end": rec["end"], "next": rec["start"]}
                self._recorded_roll = (rec["code"], rec["start"])
            if found_decl and found_clear and found_roll and self.closed and not first:
                break
        first = True
        for ordinal, body in jn.invoices_reverse():
            rec = decode(layouts.INVOICE_RECORD, body)
            if first:
                first = False
                self.last_number = rec["number"]
                self._saw(rec["date"], rec["time"])
            in_roll = self.roll is not None and rec["code"] == self.roll["code"] and \
                self.roll["start"] <= rec["number"] <= self.roll["end"]
            if in_roll:
                self.roll["next"] = max(self.roll["next"], rec["number"] + 1)
                self.roll_counts[rec["kind"] - 1] += 1
            if ordinal >= jn.covered:
                self.day = rec["date"]
                ledger.add_invoice(self.day_totals, rec["kind"], rec["lines"], rec["total"])
            elif not in_roll:
                break

    def _open_fiscal(self):
        """SELECT, identity check and PIN session on the fiscal card; reads its files into the state."""
        self.session = False
        self.card_lock = 0
        try:
            f = self.fiscal
            f.open()
            ident = f.identity()
            if ident["machine_no"] != self.machine_no or (
                    self.init is not None and ident["card_no"] != self.init["fiscal_card_no"]):
                raise CardError(codes.E_CARD_FOREIGN_MACHINE)
            pin = self.nv.get(NV_PIN)
            if pin is None:
                raise CardError(codes.E_CARD_PIN_WRONG)
            self.nv.put(NV_PIN, f.verify_pin(pin))
            self.session = True
            self._read_card()
        except CardError as e:
            self.card_lock = 1 << CARD_LOCKS.get(e.code, codes.LOCK_FISCAL_CARD_MISSING)
            return False
        if self.nv.get(NV_INTENT) is not None and self.init is not None:
            # an operation was cut short (power, or the card pulled out): finish or forget it now
            try:
                self.recover()
            except (Refused, CardError):
                pass  # the intent stays; the next opening tries again
            self._load_last_request()
        self._check_card_anchor()
        return True

    def _read_card(self):
        f = self.fiscal
        ctl = f.controls()
        self.controls = ctl["controls"]
        self.tax_items = ctl["tax_items"]
        today = f.today()
        self.cum_normal = today["cumulative_normal"]
        self.cum_return = today["cumulative_return"]
        roll = f.roll()
        if roll["code"]:
            if self.roll is None or self.roll["code"] != roll["code"] or self.roll["start"] != roll["start"]:
                self.roll_counts = [0, 0, 0]
            self.roll = {"code": roll["code"], "start": roll["start"], "end": roll["end"], "next": roll["next"]}
        decl = f.declaration()
        self.card_decl_status = decl["status"]
        self.card_today = today
        self.card_ctl = ctl
        self.card_decl = decl
        self.card_roll = roll

    def ensure_session(self):
        """The fiscal card ready for a PIN-session command; raises Refused with the card's lock error."""
        if self.session and self.fiscal.present():
            return
        if not self._open_fiscal():
            raise Refused(self.issue_lock_error())

    def reconcile(self):
        """Before a mutating request: if an operation was cut short since boot (a card pulled out before
        it answered), open the card now so recovery runs and the request id check sees its result."""
        if self.init is not None and self.nv.get(NV_INTENT) is not None:
            self._open_fiscal()

    def ensure_card(self):  # R-LOCKED-STILL-SERVES
        """The fiscal card selected, for commands that need no PIN (daily close, declaration: they must
        work while the till is locked); card errors surface from the command itself."""
        if not self.session:
            self._open_fiscal()

    def card_ok(self):
        return self.session and not self.card_lock
