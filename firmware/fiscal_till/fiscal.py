"""The fiscal state machine: what the till knows, and every operation that changes it (domain §3-4).

Theory of operation
-------------------
Truth lives in two places the taxpayer cannot change: the fiscal card (controls, cumulative amounts,
today's counts, the loaded roll, the declaration status) and fiscal memory (every record).  At boot the
till mounts the journal, reads the card's files and rebuilds its working state from both; it keeps no
other copy except the PIN and the intent of the operation in progress, in the board's nvram.

Every operation checks everything it can before its first write, so a refused request changes nothing.
A multi-step operation (card step + journal step) first writes its *intent* to nvram; at boot
`Recovery.recover()` (recovery.py, with the table of what each command's intent becomes) finishes or
forgets it by looking at what the card and the journal show (docs/FIRMWARE.md, "Recovery").

Locks and warnings (domain §4, §7.3) are computed, not stored: `lock_mask()` and `warnings()` hold one
condition per bit, each tagged with its rule of protocol/rules.py (``# R-LOCK-DEADLINE``), in the
manner of h11's state-triggered transitions; every threshold is the catalogue's (codes.RULE_*).  Each
lock bit has its own error (codes.LOCK_ERRORS).  The per-invoice limits are checked in `issue` only.
"""

import struct

from . import boot, cards, codes, layouts, ledger, recovery
from .cards import CardError
from .clock import day_number, from_day_number, now, valid_date, valid_time
from .crc import crc32
from .errnos import EIO, ENOSPC
from .invoice import split
from .journal import JournalError
from .boot import machine_device_id  # noqa: F401  (bench/bench_link.py, tests)
from .records import Refused, decode, encode, NV_PIN

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


class Fiscal(boot.Boot, recovery.Recovery):
    """The state; boot.py's Boot (boot, anchors, the card session) and recovery.py's Recovery (intents,
    recovery, the last request) hold the methods that rebuild it; the operations and read-outs are here."""

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
        self.card_lock = 0  # type: int  # lock bits from the fiscal card
        self.session = False  # type: bool  # PIN session open on the fiscal card
        self.init = None  # the INIT record
        self.controls = None
        self.tax_items = []
        self.cum_normal = 0
        self.cum_return = 0
        self.roll = None  # {code, start, end, next} or None
        self.roll_counts = [0, 0, 0]  # type: list  # normal, returned, voided on the loaded roll
        self.day = 0  # the open day (has invoices not yet closed), 0 if none
        self.day_totals = ledger.empty_totals()
        self.closed = 0  # type: int  # last closed day
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
        self.boot_pending = False  # type: bool  # start() left the back-fill and the power-on event to finish_boot()
        self.tagged = False  # type: bool  # the request being executed wrote a record with its request tag
        self.boot_damage = None  # Damage found when no journal is mounted (media, truncated to nothing)

    def _record_usage(self, date, last_number):
        r = self.roll
        n = self.roll_counts
        self._append(codes.REC_ROLL_USAGE, layouts.ROLL_USAGE_RECORD,
                     {"date": date, "code": r["code"], "start": r["start"], "end": r["end"],
                      "normal": n[0], "returned": n[1], "voided": n[2], "last_number": last_number})

    def _set_rtc(self, date, time):
        self.board.rtc.datetime((date // 10000, date // 100 % 100, date % 100, 0, time // 10000,
                                 time // 100 % 100, time % 100, 0))

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
            self.jn.append(rtype, raw if raw is not None else encode(layout, rec))
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
            self.nv.put(NV_PIN, pin)
        except CardError as e:
            if e.sw != 0x6901 or self.nv.get(NV_PIN) is None:
                raise  # 6901 with a stored PIN: registered by our own interrupted attempt
        self.nv.put(NV_PIN, f.verify_pin(self.nv.get(NV_PIN)))
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
        if not valid_date(date) or not valid_time(time):  # R-CLOCK-VALID
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
            raw = encode(layouts.USER_ROLL, last)
            if raw[-len(data):] == data:
                self.user.erase_last_roll(raw)
        except CardError:
            pass  # the user card is out or refuses: the digest in nvram still keeps the roll back
        if log:
            self._event(codes.EV_ROLL_REFUSED, decode(layouts.ROLL_DATA, data)["start"])

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
        data = encode(layouts.ROLL_DATA, lr)
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
        raw = encode(layouts.INVOICE_RECORD, rec)
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
            rec = decode(layouts.INVOICE_RECORD, body)
            if number == 0 or rec["number"] == number:
                return rec
        return None

    def _check_return(self, ref, total):
        original = None
        returned = 0
        for ordinal, body in self.jn.invoices_reverse():
            self.busy()
            rec = decode(layouts.INVOICE_RECORD, body)
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
        r = decode(layouts.DECLARE_DUTY_RESPONSE, resp)
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
            rec = decode(layouts.DAILY_RECORD, body)
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
        data = encode(layouts.DECLARE_DUTY_DATA, {"start": d["start"], "end": d["end"], "sums": sums})
        resp = encode(layouts.DECLARE_DUTY_RESPONSE, {
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
            sane = valid_date(old_date) and valid_time(old_time)  # R-CLOCK-VALID: an impossible reading is mendable
            if sane and (date, time) < (old_date, old_time) or self.clock_behind(date, time):
                raise Refused(codes.E_CLOCK_BACKWARDS)
            self._intent(codes.CMD_SET_TIME, rid, digest, struct.pack(">III", date, time, old_date))
        self._set_rtc(date, time)
        if self.initialized():
            try:
                self._append(codes.REC_EVENT, layouts.EVENT_RECORD,
                             {"request": {"rid": rid, "digest": digest}, "date": date, "time": time,
                              "event": codes.EV_CLOCK_SET, "arg": old_date})
            except Refused:  # R-INPUT-CHECKED: a refused request changes nothing (clock, nvram)
                if sane:
                    self._set_rtc(old_date, old_time)
                self._done()
                raise
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
