"""The fiscal state machine: what the till knows, and every operation that changes it (domain §3-4).

Theory of operation
-------------------
Truth lives in two places the taxpayer cannot change: the fiscal card (controls, cumulative amounts,
today's counts, the loaded roll, the declaration status) and fiscal memory (every record).  At boot the
till mounts the journal, reads the card's files and rebuilds its working state from both; it keeps no
other copy except the PIN and the intent of the operation in progress, in the board's nvram.

Every operation checks everything it can before its first write, so a refused request changes nothing.
A multi-step operation (card step + journal step) first writes its *intent* to nvram; `recover()` at boot
finishes or forgets it by looking at what the card and the journal show (docs/FIRMWARE.md, "Recovery"):

    ISSUE_INVOICE  card's last number == intent's, journal lacks it -> append the record with the card's
                   last 税控码; else the card never issued it -> forget.  The roll's last invoice in the
                   journal without the roll's ROLL_USAGE -> append ROLL_USAGE
    DAILY_CLOSE    journal's last DAILY before the intent's last day (or the card's closed day) -> sign
                   those days again (the card returns the same signature) and append them, tagged
    DECLARE        card EF04 SIGNED for a period the journal lacks -> rebuild the response from EF04,
                   DATA_COLLECT to the user card if one is in the slot, append the record
    CLEAR_UNLOCK   card EF01 sequence newer than the journal's -> append the record and EV_UNLOCKED;
                   the record without its EV_UNLOCKED -> append the event
    SET_TIME       no EV_CLOCK_SET of the request -> the RTC forward to the request's time if behind it,
                   append the event with the old date the intent kept
    LOAD_ROLL      card EF05 roll not in the journal -> append the roll-load record; roll taken from the
                   user card but not loaded -> load it from the user card's EF07 when it is inserted
    INITIALIZE     card registered, PIN in nvram, no INIT record -> finished by the host's retry
    (INSPECT has no intent: its one event carries the request tag, and a retry writes no second one.)

Locks and warnings (domain §4, §7.3) are computed, not stored: `lock_mask()` and `warnings()` hold one
condition per bit, each tagged with its rule of protocol/rules.py (``# R-LOCK-DEADLINE``), in the
manner of h11's state-triggered transitions; every threshold is the catalogue's (codes.RULE_*).  Each
lock bit has its own error (codes.LOCK_ERRORS).  The per-invoice limits are checked in `issue` only.
"""

import struct

from . import cards, codes, layouts, ledger, schema
from .cards import CardError
from .clock import day_number, from_day_number, now, valid_date, valid_time
from .crc import crc32
from .errnos import EIO, ENODEV, ENOSPC
from .invoice import split
from .journal import Damage, Journal, JournalError

_INTENT = "intent"
_REQ = "req"  # the last executed request when it left no tagged record: rid, digest u32, command u8, reply
_PIN = "pin"
_ANCHOR = "anchor"
_INTENT_CMDS = (codes.CMD_ISSUE_INVOICE, codes.CMD_DAILY_CLOSE, codes.CMD_INITIALIZE, codes.CMD_DECLARE,
                codes.CMD_CLEAR_UNLOCK, codes.CMD_LOAD_ROLL, codes.CMD_SET_TIME)
_CARD_LOCKS = {  # R-LOCK-FISCAL-CARD, R-LOCK-PIN, R-LOCK-MAC
    codes.E_CARD_FISCAL_MISSING: codes.LOCK_FISCAL_CARD_MISSING,
    codes.E_CARD_NO_RESPONSE: codes.LOCK_FISCAL_CARD_MISSING,
    codes.E_CARD_WRONG_TYPE: codes.LOCK_FISCAL_CARD_FOREIGN,
    codes.E_CARD_FOREIGN_MACHINE: codes.LOCK_FISCAL_CARD_FOREIGN,
    codes.E_CARD_REGISTRATION: codes.LOCK_FISCAL_CARD_UNREGISTERED,
    codes.E_CARD_PIN_BLOCKED: codes.LOCK_PIN_BLOCKED,
    codes.E_CARD_PIN_WRONG: codes.LOCK_PIN_BLOCKED,
    codes.E_CARD_LOCKED: codes.LOCK_MAC,
}


_DAMAGE_KINDS = {  # the journal's Damage.kind -> GET_STATUS.damage_kind
    "record-crc": codes.DAMAGE_RECORD_CRC, "sector-header": codes.DAMAGE_SECTOR_HEADER,
    "sequence": codes.DAMAGE_SEQUENCE, "lost-records": codes.DAMAGE_LOST_RECORDS, "chain": codes.DAMAGE_CHAIN,
    "garbage": codes.DAMAGE_GARBAGE, "torn-open": codes.DAMAGE_TORN_OPEN,
    "foreign-device": codes.DAMAGE_FOREIGN_DEVICE, "foreign-sector": codes.DAMAGE_FOREIGN_SECTOR,
    "area": codes.DAMAGE_AREA, "layout": codes.DAMAGE_LAYOUT, "truncated": codes.DAMAGE_TRUNCATED,
    "rollback": codes.DAMAGE_ROLLBACK, "media": codes.DAMAGE_MEDIA, "nvram": codes.DAMAGE_NVRAM,
}


def _not_busy():
    """Fiscal.busy until a link server installs its keep-alive hook."""


class Refused(Exception):
    """An operation refused with a status code; nothing was written."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


_BUF = bytearray(512)  # every record and card command fits; allocated once


def _enc(layout, obj):
    n = schema.encode_into(layout, obj, _BUF, 0)
    return bytes(_BUF[:n])


def _dec(layout, raw):
    return schema.decode(layout, raw)


def _intent_ok(raw):
    """An nvram intent recovery can read: a known command, request tag, and for ISSUE_INVOICE a record."""
    if len(raw) < 9 or raw[0] not in _INTENT_CMDS:
        return False
    if raw[0] == codes.CMD_SET_TIME:
        return len(raw) == 21  # new date, new time, old date
    if raw[0] == codes.CMD_ISSUE_INVOICE:
        try:
            _dec(layouts.INVOICE_RECORD, raw[9:])
        except Exception:
            return False
    return True


def machine_device_id(machine_no):
    """The journal's device id: the 16-digit machine number packed as 8 bytes of BCD."""
    out = bytearray(8)
    for i in range(8):
        out[i] = (ord(machine_no[2 * i]) - 48) << 4 | (ord(machine_no[2 * i + 1]) - 48)
    return bytes(out)


class Fiscal:
    def __init__(self, board):
        self.board = board
        ident = board.identity
        self.machine_no = ident.get("machine_no", "0" * 16)
        self.non_fiscal = bool(ident.get("non_fiscal", False))
        self.quotas = ident.get("journal_quotas")
        self.nv = board.nvram
        self.mac = cards.MacGuard(board.nvram)  # the fiscal card's MAC tries and the data it refused
        self.fiscal = cards.FiscalCard(board.fiscal_slot)
        self.user = cards.UserCard(board.user_slot)
        self.jn = None
        self.fm_lock = 0  # lock bits from fiscal memory (damage, full)
        self.card_lock = 0  # lock bits from the fiscal card
        self.session = False  # PIN session open on the fiscal card
        self.init = None  # the INIT record
        self.controls = None
        self.tax_items = []
        self.cum_normal = 0
        self.cum_return = 0
        self.roll = None  # {code, start, end, next} or None
        self.roll_counts = [0, 0, 0]  # normal, returned, voided on the loaded roll
        self.day = 0  # the open day (has invoices not yet closed), 0 if none
        self.day_totals = ledger.empty_totals()
        self.closed = 0  # last closed day
        # closed days after the last declaration, as a running period (RAM does not grow per day: a
        # 5-year clock jump closes ~1,800 days): their summed totals and the first of them (0: none)
        self.undeclared_start = 0
        self.undeclared_totals = ledger.empty_totals()
        self.declared_end = 0
        self.decl = None  # pending declaration record dict (SIGNED, not cleared)
        self.clear_seq = 0
        self.last_number = 0
        self.last_date = 0  # date of the newest record (the clock must not be behind it)
        self.last_time = 0  # ... and its time: (last_date, last_time) is the clock's floor
        self.last_req = None  # type: tuple  # (rid, digest, command, reply bytes) of the last mutating request
        self.recovered = []  # type: list  # recovery rules that ran at boot, for tests and the event log
        self._rj = None  # READ_JOURNAL buffer, allocated at the first read-out
        self._recorded_roll = ()  # type: tuple  # (code, start) of the newest ROLL_LOAD record
        # long loops call busy() once per step: the link server sets it to send keep-alives
        # (server.py); nothing here knows about time or the UART
        self.busy = _not_busy
        self.defer_boot = False  # device.py: the boot's back-fill waits for the first request
        self.boot_pending = False  # start() left the back-fill and the power-on event to finish_boot()
        self.tagged = False  # the request being executed wrote a record with its request tag
        self.boot_damage = None  # Damage found when no journal is mounted (media, truncated to nothing)

    # ================================================================ boot
    def start(self):
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
            if self.nv.get(_ANCHOR) is not None:  # the journal held records once: none left
                self._damaged("truncated", 0, None, 0, "no INIT record, nvram anchor present")
            return
        try:
            self._load_journal()
        except Exception as e:  # INIT or another record unreadable: the journal noted where
            if jn.damage:
                self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED
            else:
                self._damaged("other", None, None, None, repr(e))
        raw = self.nv.get(_INTENT)
        if raw is not None and not _intent_ok(raw):
            self.nv.delete(_INTENT)
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
            if self.nv.get(_ANCHOR) is not None:
                return  # no journal header left, but this till wrote records: never format over that
            # blank (the factory state), or a first-boot format cut short: no valid header, format it
            Journal.format(flash, dev, self.quotas)
            self.jn = Journal(flash, dev)
        if self.jn.damage:
            self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED

    # ---- anchors: the journal's length as the fiscal card and nvram know it ----------------------------
    def _put_anchor(self):
        """nvram `anchor` = format id + index of the newest fiscal record + the chain head after it.
        Written after each fiscal record (a DAILY back-fill once, at its end), never per invoice: the
        anchor is a lower bound, a cut before it is written leaves an older one, still true."""
        jn = self.jn
        if jn is None or jn.damage or jn.f_anchor is None or jn.f_anchor[0] == 0xFFFFFFFF:
            return
        a = jn.f_anchor
        self.nv.put(_ANCHOR, jn.format_id + struct.pack("<I", a[0]) + a[1])

    def _check_anchor(self):  # R-FM-APPEND-ONLY: truncation and rollback
        """Boot: the journal must still hold the record nvram's anchor names (the card's view is
        `_check_card_anchor`).  TRUNCATED: it is missing (a tail erased, or an older image put back with
        nothing after it: the two look alike).  ROLLBACK: the journal holds another history (the anchored
        record differs, or the partition was formatted again).  NVRAM: the anchor is unreadable."""
        jn = self.jn
        if jn is None or jn.damage:
            return
        end = (jn.f_tail, jn.f_off if jn.f_off >= 0 else None)  # where the fiscal area ends
        raw = self.nv.get(_ANCHOR)
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
        if self.card_ok() and self.nv.get(_INTENT) is None:
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
        self.init = _dec(layouts.INIT_RECORD, body)
        self.controls = self.init["controls"]
        self.tax_items = self.init["tax_items"]
        self.last_date = self.init["date"]
        self.last_time = self.init["time"]
        found_decl = found_clear = found_roll = False
        first = True  # until the newest record with a time of day is seen (DAILY records have none)
        for idx, t, body in jn.fiscal_records_reverse():
            if t not in layouts.RECORDS:
                continue
            rec = _dec(layouts.RECORDS[t], body)
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
            rec = _dec(layouts.INVOICE_RECORD, body)
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

    def _load_last_request(self):  # R-EXACTLY-ONCE
        """Exactly-once across a reboot: find the newest record a request made (its tag has a rid) and
        rebuild that request's reply.  Fiscal records carry their index; an invoice is newer than the
        newest tagged fiscal record when its ordinal is at least the number of invoices before it."""
        jn = self.jn
        self.last_req = None
        counts = jn.counters()
        n_fiscal = 0
        for t in counts:
            if t != codes.REC_INVOICE:
                n_fiscal += counts[t]
        tagged = None
        daily_reply = None
        k = -1
        for idx, t, body in jn.fiscal_records_reverse():
            k += 1
            self.busy()
            if t not in layouts.RECORDS:
                continue
            rec = _dec(layouts.RECORDS[t], body)
            rid = rec["request"]["rid"] if "request" in rec else 0
            if tagged is None:
                if rid and self._remember(t, rec, None):
                    tagged = (idx, k, rid)
                    if t != codes.REC_DAILY:
                        break
                    daily_reply = self.last_req
            elif t == codes.REC_DAILY and rid == tagged[2]:
                self._remember(t, rec, daily_reply)  # an earlier day of the same DAILY_CLOSE
                daily_reply = self.last_req
            else:
                break
        inv_before = -1 if tagged is None else tagged[0] + 1 - (n_fiscal - tagged[1])
        for ordinal, body in jn.invoices_reverse():
            if ordinal >= inv_before:
                self._remember(codes.REC_INVOICE, _dec(layouts.INVOICE_RECORD, body), None)
            break
        self.load_untagged_request()

    def load_untagged_request(self):
        """A request that took effect without writing a tagged record (DAILY_CLOSE with no day to
        close, SET_TIME before INITIALIZE) is kept in nvram; it is the last one if its id is the larger
        (ids strictly increase, compared unsigned)."""
        raw = self.nv.get(_REQ)
        if raw is None or len(raw) < 9:
            return
        rid, digest = struct.unpack_from(">II", raw, 0)
        if self.last_req is None or rid > self.last_req[0]:
            self.last_req = (rid, digest, raw[8], bytes(raw[9:]))

    def remember_request(self, rid, digest, command, reply):
        """After a mutating request took effect (device.py): it is the last executed one.  Its records
        carry its tag; when it wrote none, nvram keeps it, so the last id survives a reboot."""
        self.last_req = (rid, digest, command, reply)
        if not self.tagged:
            try:
                self.nv.put(_REQ, struct.pack(">IIB", rid, digest, command) + reply)
            except OSError:
                pass  # nvram fault: the request stands; its id is kept in RAM until the next reboot
        self.tagged = False

    def _remember(self, t, rec, daily_reply):
        """Rebuild the reply of the request that wrote `rec` (exactly-once across a reboot)."""
        rid = rec["request"]["rid"]
        if not rid:
            return False
        digest = rec["request"]["digest"]
        if t == codes.REC_INVOICE:
            cmd, reply = codes.CMD_ISSUE_INVOICE, rec
        elif t == codes.REC_DECLARATION:
            cmd, reply = codes.CMD_DECLARE, rec
        elif t == codes.REC_CLEAR_UNLOCK:
            cmd = codes.CMD_CLEAR_UNLOCK
            reply = {"period_end": rec["period_end"], "controls": rec["controls"]}
        elif t == codes.REC_ROLL_LOAD:
            cmd = codes.CMD_LOAD_ROLL
            reply = {"code": rec["code"], "start": rec["start"], "end": rec["end"]}
        elif t == codes.REC_INIT:
            cmd = codes.CMD_INITIALIZE
            reply = {"machine_no": rec["machine_no"], "fiscal_card_no": rec["fiscal_card_no"],
                     "taxpayer_no": rec["taxpayer_no"], "record": 0}
        elif t == codes.REC_DAILY:
            cmd = codes.CMD_DAILY_CLOSE
            if daily_reply is not None:  # an older day of the same request: extend backwards
                old = _dec(layouts.DAILY_CLOSE_REPLY, daily_reply[3])
                reply = {"first": rec["date"], "last": old["last"], "count": old["count"] + 1}
            else:
                reply = {"first": rec["date"], "last": rec["date"], "count": 1}
        elif t == codes.REC_EVENT and rec["event"] == codes.EV_CLOCK_SET:
            cmd, reply = codes.CMD_SET_TIME, {}
        else:
            return False
        self.last_req = (rid, digest, cmd, _enc(layouts.COMMANDS[cmd][1], reply))
        return True

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
            pin = self.nv.get(_PIN)
            if pin is None:
                raise CardError(codes.E_CARD_PIN_WRONG)
            self.nv.put(_PIN, f.verify_pin(pin))
            self.session = True
            self._read_card()
        except CardError as e:
            self.card_lock = 1 << _CARD_LOCKS.get(e.code, codes.LOCK_FISCAL_CARD_MISSING)
            return False
        if self.nv.get(_INTENT) is not None and self.init is not None:
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
        if self.init is not None and self.nv.get(_INTENT) is not None:
            self._open_fiscal()

    def ensure_card(self):  # R-LOCKED-STILL-SERVES
        """The fiscal card selected, for commands that need no PIN (daily close, declaration: they must
        work while the till is locked); card errors surface from the command itself."""
        if not self.session:
            self._open_fiscal()

    def card_ok(self):
        return self.session and not self.card_lock

    # ================================================================ recovery
    def recover(self):  # R-POWER-SAFE
        raw = self.nv.get(_INTENT)
        if raw is None:
            return
        if not self.card_ok():
            return  # keep it until the card is back
        cmd = raw[0]
        rid, digest = struct.unpack_from(">II", raw, 1)
        tag = {"rid": rid, "digest": digest}
        today = self.card_today
        if cmd == codes.CMD_ISSUE_INVOICE:
            rec = _dec(layouts.INVOICE_RECORD, raw[9:])
            if today["last_number"] == rec["number"] and self.last_number != rec["number"] and \
                    self.roll is not None and rec["code"] == self.roll["code"]:
                rec["fiscal_code"] = today["last_fiscal_code"]
                self._append_invoice(rec, rec["lines"])  # and the roll's usage, if it was the last
                self.cum_normal = today["cumulative_normal"]  # the card counted it already
                self.cum_return = today["cumulative_return"]
                self.recovered.append("ISSUE_INVOICE")
            elif self.last_number == rec["number"] and self._usage_unrecorded(rec):
                self._record_usage(rec["date"], rec["number"])  # the roll's last invoice stands alone
                self.recovered.append("ROLL_USAGE")
        elif cmd == codes.CMD_INITIALIZE:
            pass  # finished by the host's retry
        elif cmd == codes.CMD_DECLARE:
            d = self.card_decl
            if d["status"] == cards.DECL_SIGNED and d["end"] > self.declared_end:
                self._finish_declaration(d, tag)
                self.recovered.append("DECLARE")
        elif cmd == codes.CMD_CLEAR_UNLOCK:
            if self.card_ctl["sequence"] > self.clear_seq:
                self._record_clear(tag)
                self.recovered.append("CLEAR_UNLOCK")
            elif self._unlock_event_missing():
                self._event(codes.EV_UNLOCKED, self.card_ctl["period_end"])
                self.recovered.append("UNLOCKED")
        elif cmd == codes.CMD_SET_TIME:
            if not self._newest_tagged_is(codes.EV_CLOCK_SET, rid, digest):
                self._finish_set_time(raw, tag)
                self.recovered.append("SET_TIME")
        elif cmd == codes.CMD_LOAD_ROLL:
            if self._roll_unrecorded():
                self._record_roll(tag)
                self.recovered.append("LOAD_ROLL")
        if cmd == codes.CMD_DAILY_CLOSE:
            # the request closed every day through the date in its intent: finish the ones it did not
            # reach (the card's closed day may be later than the journal's: the same signatures again)
            through = max(self.card_today["closed_date"], struct.unpack_from(">I", raw, 9)[0]
                          if len(raw) >= 13 else 0)
            if through > self.closed:
                self._close_days(through, rid, digest)
                self.recovered.append("DAILY_CLOSE")
        self.nv.delete(_INTENT)

    def _usage_unrecorded(self, rec):
        """The invoice `rec` (in the journal) used up the loaded roll and no ROLL_USAGE record of that
        roll follows its ROLL_LOAD record."""
        r = self.roll
        if r is None or rec["code"] != r["code"] or rec["number"] != r["end"]:
            return False
        for idx, t, body in self.jn.fiscal_records_reverse():
            if t == codes.REC_ROLL_LOAD:
                return True
            if t == codes.REC_ROLL_USAGE:
                u = _dec(layouts.ROLL_USAGE_RECORD, body)
                if u["code"] == r["code"] and u["start"] == r["start"]:
                    return False
        return True

    def _record_usage(self, date, last_number):
        r = self.roll
        n = self.roll_counts
        self._append(codes.REC_ROLL_USAGE, layouts.ROLL_USAGE_RECORD,
                     {"date": date, "code": r["code"], "start": r["start"], "end": r["end"],
                      "normal": n[0], "returned": n[1], "voided": n[2], "last_number": last_number})

    def _unlock_event_missing(self):
        """The newest CLEAR_UNLOCK record is not followed by its EV_UNLOCKED event."""
        for idx, t, body in self.jn.fiscal_records_reverse():
            if t == codes.REC_CLEAR_UNLOCK:
                return True
            if t == codes.REC_EVENT and _dec(layouts.EVENT_RECORD, body)["event"] == codes.EV_UNLOCKED:
                return False
        return False  # no clear-unlock recorded at all: nothing to complete

    def _newest_tagged_is(self, event, rid, digest):
        """The newest record a request wrote is this request's `event` event."""
        for idx, t, body in self.jn.fiscal_records_reverse():
            if t not in layouts.RECORDS:
                continue
            rec = _dec(layouts.RECORDS[t], body)
            if "request" not in rec or not rec["request"]["rid"]:
                continue  # power-on events, back-filled days
            return t == codes.REC_EVENT and rec["event"] == event and \
                rec["request"]["rid"] == rid and rec["request"]["digest"] == digest
        return False

    def _finish_set_time(self, raw, tag):
        """Recovery: SET_TIME was cut before its event record.  The clock never goes backwards, so an
        RTC behind the request's time was not set yet: set it; then record the event with the date the
        clock showed before (kept in the intent)."""
        date, time, old_date = struct.unpack_from(">III", raw, 9)
        if self.now() < (date, time):
            self._set_rtc(date, time)
        self._append(codes.REC_EVENT, layouts.EVENT_RECORD,
                     {"request": tag, "date": date, "time": time, "event": codes.EV_CLOCK_SET,
                      "arg": old_date})

    def _set_rtc(self, date, time):
        self.board.rtc.datetime((date // 10000, date // 100 % 100, date % 100, 0, time // 10000,
                                 time // 100 % 100, time % 100, 0))

    def _intent(self, cmd, rid, digest, extra=b""):  # R-POWER-SAFE: before the first write
        self.nv.put(_INTENT, bytes([cmd]) + struct.pack(">II", rid, digest) + extra)

    def _done(self):
        self.nv.delete(_INTENT)

    # ================================================================ clock, locks, warnings
    def now(self):
        return now(self.board.rtc)

    def _saw(self, date, time):
        """A record dated (date, time) exists: the clock may never again be behind it."""
        if (date, time) > (self.last_date, self.last_time):
            self.last_date, self.last_time = date, time

    def clock_behind(self, date, time):
        """The clock reads earlier than the newest record's date and time (CLOCK_FAULT)."""
        return (date, time) < (self.last_date, self.last_time)

    def initialized(self):
        return self.init is not None

    def lock_mask(self):
        m = self.fm_lock  # R-LOCK-FM-DAMAGED, R-LOCK-FM-FULL
        if not self.initialized():
            return m | 1 << codes.LOCK_NOT_INITIALIZED  # R-INIT-ONCE
        m |= self.card_lock  # R-LOCK-FISCAL-CARD, R-LOCK-PIN, R-LOCK-MAC
        date, time = self.now()
        c = self.controls
        if date > c["deadline"]:  # R-LOCK-DEADLINE
            m |= 1 << codes.LOCK_DEADLINE
        if self.cum_normal >= c["cumulative_limit"]:  # R-LOCK-CUMULATIVE
            m |= 1 << codes.LOCK_CUMULATIVE_LIMIT
        if c["return_limit"] and self.cum_return >= c["return_limit"]:  # R-LOCK-RETURN-LIMIT (0: none set)
            m |= 1 << codes.LOCK_RETURN_LIMIT
        if self.roll is None or self.roll["next"] > self.roll["end"]:  # R-LOCK-NO-ROLL
            m |= 1 << codes.LOCK_NO_ROLL
        if self.jn is not None and self._fm_full():  # R-LOCK-FM-FULL
            m |= 1 << codes.LOCK_FM_FULL
        if self.clock_behind(date, time) or not valid_date(date):  # R-LOCK-CLOCK-FAULT
            m |= 1 << codes.LOCK_CLOCK_FAULT
        if date >= self.init["date"] + codes.RULE_SERVICE_LIFE_YEARS * 10000:  # R-LOCK-SERVICE-LIFE, calendar years
            m |= 1 << codes.LOCK_SERVICE_LIFE
        return m

    def _fm_full(self):
        """R-LOCK-FM-FULL: a fiscal record class, or the fiscal area (usage key 0), is full."""
        u = self.jn.usage()
        for t in (codes.REC_DAILY, codes.REC_DECLARATION, codes.REC_CLEAR_UNLOCK, codes.REC_ROLL_LOAD,
                  codes.REC_ROLL_USAGE, codes.REC_EVENT):
            if u.get(t, 0) >= codes.RULE_FM_FULL_PERMILLE:
                return True
        return u.get(0, 0) >= codes.RULE_FM_FULL_PERMILLE

    def issue_lock_error(self, mask=None):
        m = self.lock_mask() if mask is None else mask
        for bit, err in codes.LOCK_ERRORS:
            if m >> bit & 1:
                return err
        return codes.E_OK

    def warnings(self):
        w = 1 << codes.WARN_NON_FISCAL if self.non_fiscal else 0  # R-NON-FISCAL
        if not self.initialized():
            return w
        c = self.controls
        if 0 <= self.days_to_deadline() <= codes.RULE_WARN_DEADLINE_DAYS:  # R-WARN-DEADLINE
            w |= 1 << codes.WARN_DEADLINE_NEAR
        if self.cum_normal * 100 >= c["cumulative_limit"] * codes.RULE_WARN_LIMIT_PERCENT:  # R-WARN-LIMITS
            w |= 1 << codes.WARN_AMOUNT_75
        if c["return_limit"] and self.cum_return * 100 >= c["return_limit"] * codes.RULE_WARN_LIMIT_PERCENT:
            w |= 1 << codes.WARN_RETURN_75  # R-WARN-LIMITS
        if self.jn is not None and [t for t in self.jn.warnings() if t != codes.REC_INIT]:  # R-WARN-FM
            w |= 1 << codes.WARN_FM_90  # INIT is full by design once written
        if self.roll is not None and 0 < self.invoices_left() <= codes.RULE_WARN_ROLL_INVOICES:  # R-WARN-ROLL-LOW
            w |= 1 << codes.WARN_ROLL_LOW
        if self.decl is not None:  # R-WARN-DECLARATION-PENDING
            w |= 1 << codes.WARN_DECLARATION_PENDING
        if self.mac.tries_left() <= 1 and not self.card_lock >> codes.LOCK_MAC & 1:  # R-LOCK-MAC
            w |= 1 << codes.WARN_MAC_LAST_TRY
        return w

    def damage_info(self):
        """(kind, sector, offset, index) of the first damage known, for GET_STATUS; unknown fields all
        ones, (0, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF) when there is none."""
        d = self.jn.damage[0] if self.jn is not None and self.jn.damage else self.boot_damage
        if d is None:
            if self.fm_lock >> codes.LOCK_FM_DAMAGED & 1:
                return codes.DAMAGE_MEDIA if self.jn is None else codes.DAMAGE_OTHER, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
            return codes.DAMAGE_NONE, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
        kind = _DAMAGE_KINDS.get(d.kind, codes.DAMAGE_OTHER)
        return (kind, 0xFFFF if d.sector is None else d.sector,
                0xFFFFFFFF if d.offset is None else d.offset, 0xFFFFFFFF if d.index is None else d.index)

    def days_to_deadline(self):
        if not self.initialized():
            return codes.NO_DEADLINE_DAYS
        date, _ = self.now()
        if not valid_date(date):
            return codes.NO_DEADLINE_DAYS
        return max(-0x8000, min(0x7FFE, day_number(self.controls["deadline"]) - day_number(date)))

    def invoices_left(self):
        if self.roll is None:
            return 0
        return max(0, self.roll["end"] - self.roll["next"] + 1)

    def journal_permille(self):
        if self.jn is None:
            return 0
        u = self.jn.usage()
        worst = u.get(0, 0)
        for t in u:
            if t != codes.REC_INVOICE and t != codes.REC_INIT and u[t] > worst:
                worst = u[t]
        return min(worst, 1000)  # per mille: a class is at most full

    # ================================================================ journal helpers
    def _append(self, rtype, layout, rec, raw=None):
        """Append `rec` (or its encoding `raw`, when the caller has it already) to fiscal memory."""
        if self.jn is None:
            raise Refused(codes.E_FM_WRITE_FAILED)
        try:
            self.jn.append(rtype, raw if raw is not None else _enc(layout, rec))
        except JournalError as e:
            if e.errno == ENOSPC:
                raise Refused(codes.E_FM_FULL)
            if e.errno == EIO:
                self.fm_lock |= 1 << codes.LOCK_FM_DAMAGED
                raise Refused(codes.E_FM_DAMAGED)
            raise Refused(codes.E_FM_WRITE_FAILED)
        if rtype != codes.REC_INVOICE and rtype != codes.REC_DAILY:
            self._put_anchor()  # DAILY: once at the end of _close_days
        if "date" in rec:
            self._saw(rec["date"], rec.get("time", 0))
        if "request" in rec and rec["request"]["rid"]:
            self.tagged = True

    def _event(self, event, arg, rid=0, digest=0):
        date, time = self.now()
        if not valid_date(date):
            return
        try:
            self._append(codes.REC_EVENT, layouts.EVENT_RECORD,
                         {"request": {"rid": rid, "digest": digest}, "date": date, "time": time,
                          "event": event, "arg": arg})
        except Refused:
            pass

    # ================================================================ operations
    def initialize(self, req, rid, digest):  # R-INIT-ONCE, R-INIT-CHECKS
        if self.initialized():
            raise Refused(codes.E_STATE_ALREADY_INITIALIZED)
        date, time = req["date"], req["time"]
        if not valid_date(date) or not valid_time(time):
            raise Refused(codes.E_INPUT_BAD_DATE)
        if self.jn is None or self.fm_lock & 1 << codes.LOCK_FM_DAMAGED:
            raise Refused(codes.E_FM_WRITE_FAILED if self.fm_lock == 0 else codes.E_FM_DAMAGED)
        f, u = self.fiscal, self.user
        f.open()
        ident = f.identity()
        if ident["machine_no"] != self.machine_no:
            raise Refused(codes.E_CARD_FOREIGN_MACHINE)
        if not ident["valid_from"] <= date <= ident["valid_to"]:
            raise Refused(codes.E_CARD_EXPIRED)
        u.open()
        uid = u.identity()
        if uid["taxpayer_no"] != ident["taxpayer_no"]:
            raise Refused(codes.E_CARD_FOREIGN_TAXPAYER)
        u.find_till(self.machine_no, ident["card_no"])
        self._intent(codes.CMD_INITIALIZE, rid, digest)
        try:
            nb = f.get_register_nb()
            pin = f.terminal_register(u.register_sign(nb))
            self.nv.put(_PIN, pin)
        except CardError as e:
            if e.sw != 0x6901 or self.nv.get(_PIN) is None:
                raise  # 6901 with a stored PIN: registered by our own interrupted attempt
        self.nv.put(_PIN, f.verify_pin(self.nv.get(_PIN)))
        self.session = True
        self.board.rtc.datetime((date // 10000, date // 100 % 100, date % 100, 0, time // 10000,
                                 time // 100 % 100, time % 100, 0))
        ctl = f.controls()
        rec = {"request": {"rid": rid, "digest": digest}, "date": date, "time": time,
               "machine_no": self.machine_no, "fiscal_card_no": ident["card_no"],
               "user_card_no": uid["card_no"], "taxpayer_no": ident["taxpayer_no"],
               "taxpayer_name": ident["taxpayer_name"], "bureau_code": ident["bureau_code"],
               "valid_from": ident["valid_from"], "valid_to": ident["valid_to"], "controls": ctl["controls"],
               "tax_items": ctl["tax_items"]}
        self._append(codes.REC_INIT, layouts.INIT_RECORD, rec)
        self._done()
        self.init = rec
        self.last_date, self.last_time = date, time
        self._read_card()
        return {"machine_no": self.machine_no, "fiscal_card_no": ident["card_no"],
                "taxpayer_no": ident["taxpayer_no"], "record": 0}

    def _need_initialized(self):
        if self.fm_lock & 1 << codes.LOCK_FM_DAMAGED:  # first: a damaged INIT is no "not initialized"
            raise Refused(codes.E_LOCK_FM_DAMAGED)
        if not self.initialized():
            raise Refused(codes.E_LOCK_NOT_INITIALIZED)

    def _today(self):
        date, time = self.now()
        if not valid_date(date) or not valid_time(time):
            raise Refused(codes.E_CLOCK_INVALID)
        if self.clock_behind(date, time):
            raise Refused(codes.E_LOCK_CLOCK_FAULT)
        return date, time

    # ---- rolls --------------------------------------------------------------------------------------
    def load_roll(self, req, rid, digest):  # R-LOCK-NO-ROLL: one roll at a time
        flags = req["flags"] if req else 0
        self._need_initialized()
        date, time = self._today()
        self.ensure_session()
        if self.roll is not None and self.roll["next"] <= self.roll["end"]:
            raise Refused(codes.E_STATE_ROLL_LOADED)
        u = self.user
        u.open()
        rr = u.find_till(self.machine_no, self.init["fiscal_card_no"])
        if self._recover_roll_from_user(flags):
            pass  # a roll taken before a power cut is loaded now, and recorded below
        else:
            if self.mac.tries_left() <= 1 and not flags >> codes.FLAG_CONFIRM_MAC & 1:
                raise Refused(codes.E_CARD_MAC_LAST_TRY)  # before DISTRIBUTE: the user card keeps it
            self._intent(codes.CMD_LOAD_ROLL, rid, digest)
            roll = u.distribute_roll(rr)
            self._input_roll(roll, flags)
        self._record_roll({"rid": rid, "digest": digest})
        self._done()
        r = self.roll
        return {"code": r["code"], "start": r["start"], "end": r["end"]}

    def _input_roll(self, data, flags):
        """INPUT_INVOICE_NB under the MAC rules (cards.MacGuard).  A roll the card refuses for its MAC is
        taken off the user card's recovery copy (EF07) and logged (ROLL_REFUSED), so neither a retry nor
        a power-up recovery hands it to the card again."""
        err = self.mac.check(data, flags, codes.E_CARD_ROLL_REFUSED)
        if err:
            if err == codes.E_CARD_ROLL_REFUSED:
                self._drop_refused_roll(data, False)
            raise Refused(err)
        try:
            self.mac.send(data, self.fiscal.input_roll)
        except CardError as e:
            if e.sw == 0x9302 or e.sw == 0x9303:
                self._drop_refused_roll(data, True)
                if e.sw == 0x9303:
                    self.card_lock |= 1 << codes.LOCK_MAC
            raise

    def _drop_refused_roll(self, data, log):
        self._done()
        try:
            last = self.user.last_roll()
            raw = _enc(layouts.USER_ROLL, last)
            if raw[-len(data):] == data:
                self.user.erase_last_roll(raw)
        except CardError:
            pass  # the user card is out or refuses: the digest in nvram still keeps the roll back
        if log:
            self._event(codes.EV_ROLL_REFUSED, _dec(layouts.ROLL_DATA, data)["start"])

    def _recover_roll_from_user(self, flags=0):
        last = self.user.last_roll()
        roll = self.fiscal.roll()
        lr = last["roll"]
        if last["machine_no"] != self.machine_no or not lr["code"]:
            return False
        if roll["code"] == lr["code"] and roll["start"] == lr["start"]:
            return False  # already loaded
        if self.roll is not None and self.roll["code"] == lr["code"] and self.roll["start"] == lr["start"]:
            return False  # loaded and used before
        data = _enc(layouts.ROLL_DATA, lr)
        if self.mac.refused(data):
            self._drop_refused_roll(data, False)  # a stale copy of a refused roll: never again
            return False
        try:
            self._input_roll(data, flags)
        except CardError as e:
            if e.sw == 0x6985:
                return False  # the card knows this roll already: nothing to recover
            raise
        return True

    def _roll_unrecorded(self):
        r = self.card_roll
        return r["code"] and (self.roll is None or self._recorded_roll != (r["code"], r["start"]))

    def _record_roll(self, tag):
        self._read_card()
        r = self.card_roll
        date, time = self.now()
        self._append(codes.REC_ROLL_LOAD, layouts.ROLL_LOAD_RECORD,
                     {"request": tag, "date": date, "time": time, "code": r["code"], "start": r["start"],
                      "end": r["end"]})
        self.roll = {"code": r["code"], "start": r["start"], "end": r["end"], "next": r["next"]}
        self.roll_counts = [0, 0, 0]
        self._recorded_roll = (r["code"], r["start"])


    # ---- issuing ------------------------------------------------------------------------------------
    def issue(self, req, rid, digest):  # R-INVOICE-NUMBERING, R-INVOICE-FISCAL-CODE
        self._need_initialized()
        date, time = self._today()
        if date <= self.closed:
            raise Refused(codes.E_STATE_DAY_CLOSED)
        authorised = [t["index"] for t in self.tax_items if t["index"]]
        status, slots = split(req, authorised)
        if status != codes.E_OK:
            raise Refused(status)
        self.ensure_session()
        self._close_days(from_day_number(day_number(date) - 1), 0, 0)
        mask = self.lock_mask()
        if mask:
            raise Refused(self.issue_lock_error(mask))
        kind, total, c = req["kind"], req["total"], self.controls  # the per-invoice limits, here only:
        if total > c["single_limit"]:  # R-LOCK-SINGLE-LIMIT
            raise Refused(codes.E_LOCK_SINGLE_LIMIT)
        if kind == codes.INVOICE_NORMAL and self.cum_normal + total > c["cumulative_limit"]:  # R-LOCK-CUMULATIVE
            raise Refused(codes.E_LOCK_CUMULATIVE_LIMIT)
        if kind == codes.INVOICE_RETURN:
            if self.cum_return + total > c["return_limit"]:  # R-LOCK-RETURN-LIMIT
                raise Refused(codes.E_LOCK_RETURN_LIMIT)
            self._check_return(req["ref_number"], total)  # R-INVOICE-RETURN
        if self.jn.usage().get(codes.REC_INVOICE, 0) >= codes.RULE_FM_FULL_PERMILLE:  # R-LOCK-FM-FULL
            raise Refused(codes.E_FM_FULL)
        rec = {"request": {"rid": rid, "digest": digest}, "kind": kind, "code": self.roll["code"],
               "number": self.roll["next"], "date": date, "time": time, "ref_number": req["ref_number"],
               "total": total, "lines": slots, "fiscal_code": bytes(8)}
        raw = _enc(layouts.INVOICE_RECORD, rec)
        self._intent(codes.CMD_ISSUE_INVOICE, rid, digest, raw)
        code = self.fiscal.issue(date, kind, rec["number"], slots, total)
        rec["fiscal_code"] = code
        self._append_invoice(rec, slots, raw[:-8] + code)  # the 税控码 is the record's last field
        self._done()
        return rec

    def _append_invoice(self, rec, slots, raw=None):
        self._append(codes.REC_INVOICE, layouts.INVOICE_RECORD, rec, raw)
        kind, total = rec["kind"], rec["total"]
        self.roll["next"] = rec["number"] + 1
        self.roll_counts[kind - 1] += 1
        self.last_number = rec["number"]
        if kind == codes.INVOICE_NORMAL:
            self.cum_normal += total
        elif kind == codes.INVOICE_RETURN:
            self.cum_return += total
        if self.day != rec["date"]:
            self.day = rec["date"]
            self.day_totals = ledger.empty_totals()
        ledger.add_invoice(self.day_totals, kind, slots, total)
        if self.roll["next"] > self.roll["end"]:
            try:
                self._record_usage(rec["date"], rec["number"])
            except Refused:
                pass  # the usage summary can be rebuilt from the detail; the invoice stands

    def find_invoice(self, number):
        """The newest invoice record with this number (0: the last one), or None."""
        for ordinal, body in self.jn.invoices_reverse():
            self.busy()
            rec = _dec(layouts.INVOICE_RECORD, body)
            if number == 0 or rec["number"] == number:
                return rec
        return None

    def _check_return(self, ref, total):
        original = None
        returned = 0
        for ordinal, body in self.jn.invoices_reverse():
            self.busy()
            rec = _dec(layouts.INVOICE_RECORD, body)
            if rec["kind"] == codes.INVOICE_RETURN and rec["ref_number"] == ref:
                returned += rec["total"]
            if rec["number"] == ref and rec["kind"] == codes.INVOICE_NORMAL:
                original = rec
                break
        if original is None or returned + total > original["total"]:
            raise Refused(codes.E_INPUT_BAD_REFERENCE)

    # ---- daily close --------------------------------------------------------------------------------
    def daily_close(self, rid, digest):
        self._need_initialized()
        date, time = self._today()
        if not self.fiscal.present():
            raise Refused(codes.E_CARD_FISCAL_MISSING)
        self.ensure_card()
        self._intent(codes.CMD_DAILY_CLOSE, rid, digest, struct.pack(">I", date))
        first = self.closed
        n = self._close_days(date, rid, digest)
        self._done()
        if n == 0:
            return {"first": 0, "last": 0, "count": 0}
        return {"first": from_day_number(day_number(first) + 1) if first else self.init["date"],
                "last": date, "count": n}

    def _close_days(self, through, rid, digest):  # R-DAILY-EVERY-DAY
        """Sign and record every day after the last closed one up to `through`, zero days included."""
        if not self.initialized() or self.jn is None or self.fm_lock & 1 << codes.LOCK_FM_DAMAGED:
            return 0  # damaged: no card signature for a day the journal could not record
        start = day_number(self.closed) + 1 if self.closed else day_number(self.init["date"])
        end = day_number(through)
        n = 0
        for dn in range(start, end + 1):
            self.busy()
            d = from_day_number(dn)
            totals = self.day_totals if d == self.day else ledger.empty_totals()
            sig = self.fiscal.daily_sign(d, ledger.period_sums(totals))
            self._append(codes.REC_DAILY, layouts.DAILY_RECORD,
                         {"request": {"rid": rid, "digest": digest}, "date": d, "totals": totals,
                          "signature": sig})
            self.closed = d
            if not self.undeclared_start:
                self.undeclared_start = d
            ledger.add_totals(self.undeclared_totals, totals)
            if d == self.day:
                self.day = 0
                self.day_totals = ledger.empty_totals()
            n += 1
        if n:
            self._put_anchor()
        return n

    # ---- declaration --------------------------------------------------------------------------------
    def declare(self, req, rid, digest):  # R-DECLARE-PERIOD
        self._need_initialized()
        date, _ = self._today()
        if self.decl is not None:  # R-WARN-DECLARATION-PENDING: one declaration at a time
            raise Refused(codes.E_STATE_DECLARATION_PENDING)
        if self.fiscal.present():
            self.ensure_card()
            self._close_days(from_day_number(day_number(date) - 1), 0, 0)  # days before today are over
        end = req["end"] or self.closed
        if end and not valid_date(end):
            raise Refused(codes.E_INPUT_BAD_DATE)
        if not end or end > self.closed or end <= self.declared_end:
            raise Refused(codes.E_STATE_NOTHING_TO_DECLARE if not self.undeclared_start else codes.E_INPUT_BAD_RANGE)
        if end >= self.closed:
            start, totals = self.undeclared_start, self.undeclared_totals
        else:  # a period ending before the last closed day: sum its DAILY records (rare, no RAM kept)
            start, totals = self._daily_sums(self.declared_end, end)
        if not start:
            raise Refused(codes.E_STATE_NOTHING_TO_DECLARE)
        if not self.fiscal.present():
            raise Refused(codes.E_CARD_FISCAL_MISSING)
        self.ensure_card()
        self.user.open()
        self.user.find_till(self.machine_no, self.init["fiscal_card_no"])
        self._intent(codes.CMD_DECLARE, rid, digest)
        data, resp = self.fiscal.declare(start, end, ledger.period_sums(totals))
        self.user.data_collect(self.init["fiscal_card_no"], data, resp)
        r = _dec(layouts.DECLARE_DUTY_RESPONSE, resp)
        rec = self._record_declaration(start, end, totals, r["mac1"], r["signature"],
                                       {"rid": rid, "digest": digest})
        self._done()
        return rec

    def _record_declaration(self, start, end, totals, mac, signature, tag):
        date, time = self.now()
        rec = {"request": tag, "date": date, "time": time, "start": start, "end": end, "totals": totals,
               "mac": mac, "signature": signature}
        self._append(codes.REC_DECLARATION, layouts.DECLARATION_RECORD, rec)
        self.declared_end = end
        if end >= self.closed:
            self.undeclared_start = 0
            self.undeclared_totals = ledger.empty_totals()
        else:
            self.undeclared_start, self.undeclared_totals = self._daily_sums(end, self.closed)
        self.decl = rec
        return rec

    def _daily_sums(self, after, through):
        """(first date, summed totals) of the DAILY records dated in (after, through]; first date 0 if
        none.  Walks the fiscal records newest first and stops at the first DAILY dated <= after."""
        totals = ledger.empty_totals()
        start = 0
        for idx, t, body in self.jn.fiscal_records_reverse():
            self.busy()
            if t != codes.REC_DAILY:
                continue
            rec = _dec(layouts.DAILY_RECORD, body)
            d = rec["date"]
            if d <= after:
                break
            if d <= through:
                start = d
                ledger.add_totals(totals, rec["totals"])
        return start, totals

    def _finish_declaration(self, d, tag):
        """Recovery: the card signed a declaration the journal lacks; rebuild it from EF04."""
        sums = ledger.period_sums(d["totals"])
        data = _enc(layouts.DECLARE_DUTY_DATA, {"start": d["start"], "end": d["end"], "sums": sums})
        resp = _enc(layouts.DECLARE_DUTY_RESPONSE, {
            "normal_total": d["totals"]["normal_total"], "return_total": d["totals"]["return_total"],
            "status": 0, "mac1": d["mac"], "signature": d["signature"]})
        if self.user.present():
            try:
                self.user.open()
                self.user.data_collect(self.init["fiscal_card_no"], data, resp)
            except CardError:
                pass  # the declaration still stands on the fiscal card; DATA_COLLECT again at DECLARE
        self._record_declaration(d["start"], d["end"], d["totals"], d["mac"], d["signature"], tag)

    # ---- clear-unlock -------------------------------------------------------------------------------
    def clear_unlock(self, req, rid, digest):  # R-CLEAR-UNLOCK
        flags = req["flags"] if req else 0
        self._need_initialized()
        self._today()
        if self.decl is None:
            raise Refused(codes.E_STATE_NOT_DECLARED)
        u = self.user
        u.open()
        u.find_till(self.machine_no, self.init["fiscal_card_no"])
        card_no = self.init["fiscal_card_no"]
        for rec in u.declarations():
            r = rec["record"]
            if rec["status"] == cards.DECL_SIGNED and r["fiscal_card_no"] == card_no and \
                    r["declaration"]["end"] == self.decl["end"]:
                raise Refused(codes.E_STATE_DECLARATION_PENDING)
        blob = u.controls_for(self.machine_no)
        if blob is None:
            raise Refused(codes.E_STATE_DECLARATION_PENDING)
        err = self.mac.check(blob, flags, codes.E_CARD_MAC)  # refused before, or the last try unconfirmed
        if err:
            raise Refused(err)
        self.ensure_session()
        self._intent(codes.CMD_CLEAR_UNLOCK, rid, digest)
        try:
            self.mac.send(blob, self.fiscal.update_controls)
        except CardError as e:
            if e.sw == 0x9302 or e.sw == 0x9303:
                self._done()
                self._event(codes.EV_CONTROLS_REFUSED, self.mac.tries_left())
                if e.sw == 0x9303:
                    self.card_lock |= 1 << codes.LOCK_MAC
            raise
        rec = self._record_clear({"rid": rid, "digest": digest})
        self._done()
        return {"period_end": rec["period_end"], "controls": rec["controls"]}

    def _record_clear(self, tag):
        self._read_card()
        ctl = self.card_ctl
        date, time = self.now()
        rec = {"request": tag, "date": date, "time": time, "period_end": ctl["period_end"],
               "sequence": ctl["sequence"], "controls": ctl["controls"]}
        self._append(codes.REC_CLEAR_UNLOCK, layouts.CLEAR_UNLOCK_RECORD, rec)
        self.clear_seq = ctl["sequence"]
        self.decl = None
        self._event(codes.EV_UNLOCKED, ctl["period_end"])
        return rec

    # ---- clock and inspection -----------------------------------------------------------------------
    def set_time(self, req, rid, digest):  # R-CLOCK-FORWARD
        date, time = req["date"], req["time"]
        if not valid_date(date) or not valid_time(time):
            raise Refused(codes.E_INPUT_BAD_DATE)
        if self.initialized():
            self.ensure_session()
            cert = self._inspector()
            if not cert["rights"] & cards.RIGHT_CLOCK:
                raise Refused(codes.E_CLOCK_UNAUTHORIZED)
            old_date, old_time = self.now()
            if (date, time) < (old_date, old_time) or self.clock_behind(date, time):
                raise Refused(codes.E_CLOCK_BACKWARDS)
            self._intent(codes.CMD_SET_TIME, rid, digest, struct.pack(">III", date, time, old_date))
        self._set_rtc(date, time)
        if self.initialized():
            self._append(codes.REC_EVENT, layouts.EVENT_RECORD,
                         {"request": {"rid": rid, "digest": digest}, "date": date, "time": time,
                          "event": codes.EV_CLOCK_SET, "arg": old_date})
            self._done()
            self._close_days(from_day_number(day_number(date) - 1), 0, 0)
        return {}

    def _inspector(self):
        """The certificate of a genuine management card valid today.  "Today" is the till's own clock, or
        the newest record's date when the clock is invalid or behind it (a clock reset to 2000 must still
        be settable): the fiscal card checks validity only against dates it has seen, none before the
        first invoice or close."""
        try:
            cert = cards.authenticate_inspector(self.fiscal, self.board.user_slot)
        except CardError as e:
            if e.code in (codes.E_CARD_MGMT_MISSING, codes.E_CARD_USER_MISSING, codes.E_CARD_WRONG_TYPE):
                raise Refused(codes.E_CARD_MGMT_MISSING)
            raise
        date, _ = self.now()
        if not valid_date(date) or date < self.last_date:
            date = self.last_date
        if not cert["valid_from"] <= date <= cert["valid_to"]:
            raise Refused(codes.E_CARD_EXPIRED)
        return cert

    def inspect(self, rid=0, digest=0):  # R-INSPECTION
        self._need_initialized()
        self.ensure_session()
        cert = self._inspector()
        if not cert["rights"] & cards.RIGHT_INSPECT:
            raise Refused(codes.E_CARD_SECURITY)
        # the event log shows every inspection (docs/CARDS.md §5), once: the retry of one whose reply
        # a power cut lost finds its event (tagged with the request) and writes no second one
        if not rid or not self._newest_tagged_is(codes.EV_INSPECTION, rid, digest):
            self._event(codes.EV_INSPECTION, 0, rid, digest)
        c = self.jn.counters()
        first = self.init["date"]
        return {"machine_no": self.machine_no, "fiscal_card_no": self.init["fiscal_card_no"],
                "taxpayer_no": self.init["taxpayer_no"], "taxpayer_name": self.init["taxpayer_name"],
                "init_date": self.init["date"], "first_date": first, "last_date": self.last_date,
                "daily_count": c[codes.REC_DAILY], "declaration_count": c[codes.REC_DECLARATION],
                "invoice_count": c[codes.REC_INVOICE], "journal_bytes": self.jn.stream_length(),
                "chain_head": self.jn.chain_head() or bytes(32)}

    # ---- read-outs ----------------------------------------------------------------------------------
    def read_journal(self, req):
        if self.jn is None:
            raise Refused(codes.E_FM_DAMAGED)
        total = self.jn.stream_length()
        off = req["offset"]
        if off > total:
            raise Refused(codes.E_INPUT_BAD_RANGE)
        n = min(req["length"], codes.READ_JOURNAL_MAX, total - off)
        if self._rj is None:
            self._rj = bytearray(codes.READ_JOURNAL_MAX)  # one buffer for every read-out
        return {"offset": off, "total": total, "data": self.jn.read_stream(off, n, self._rj)}

    def report(self, req):
        self._need_initialized()
        kind = req["kind"]
        if kind == codes.REPORT_X:
            date, _ = self.now()
            return {"kind": kind, "start": self.day or date, "end": date, "totals": self.day_totals}
        if kind != codes.REPORT_Z and kind != codes.REPORT_PERIOD:
            raise Refused(codes.E_INPUT_BAD_KIND)
        start = req["start"]
        end = req["end"] if kind == codes.REPORT_PERIOD else start
        if not valid_date(start) or not valid_date(end) or end < start:
            raise Refused(codes.E_INPUT_BAD_DATE)
        first, totals = self._daily_sums(from_day_number(day_number(start) - 1), end)
        if not first:
            raise Refused(codes.E_INPUT_NOT_FOUND)
        return {"kind": kind, "start": start, "end": end, "totals": totals}


def request_digest(command, payload):
    """The request tag's digest: CRC-32 of the command byte and the payload (protocol/records.py)."""
    return crc32(payload, crc32(bytes([command])))
