"""Faulty firmware variants ("mutants"): the suite's teeth.

Each mutant is a small patch applied at runtime to the in-process firmware (fiscal_till), undone on exit;
nothing under firmware/ is edited.  The suite must pass the real firmware and fail every mutant:

    with MUTANTS_BY_NAME["no-deadline-lock"].applied():
        verdicts = run_cases(dut_factory("sim"), cases)     # some case must fail

`hint` names the cases expected to catch it; the sweep tries them first (a kill needs one failure), then
the rest of the catalogue.  tests/test_conformance_mutants.py asserts every mutant is killed and
records which case killed it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Mutant:
    name: str
    doc: str
    patches: Callable[[], list]  # -> [(object, attribute, replacement)]
    hint: list = field(default_factory=list)

    @contextlib.contextmanager
    def applied(self):
        done = []
        try:
            for obj, attr, new in self.patches():
                done.append((obj, attr, obj.__dict__.get(attr, _MISSING)))
                setattr(obj, attr, new)
            yield self
        finally:
            for obj, attr, old in reversed(done):
                if old is _MISSING:
                    delattr(obj, attr)
                else:
                    setattr(obj, attr, old)


_MISSING = object()


def _fw():
    from fiscal_till import cards, codes, device, fiscal, ledger
    return fiscal.Fiscal, device.Till, cards, codes, fiscal, ledger


# ---------------------------------------------------------------------------------------------- the patches
def no_deadline_lock():
    F, _T, _c, codes, _f, _l = _fw()
    orig = F.lock_mask

    def lock_mask(self):
        return orig(self) & ~(1 << codes.LOCK_DEADLINE)
    return [(F, "lock_mask", lock_mask)]


def reuses_number():
    F, *_ = _fw()
    orig = F._append_invoice

    def _append_invoice(self, rec, slots):
        orig(self, rec, slots)
        self.roll["next"] = rec["number"]  # the next invoice gets this number again
    return [(F, "_append_invoice", _append_invoice)]


def accepts_replayed_clear():
    _F, _T, cards, _codes, _f, _l = _fw()
    orig = cards.FiscalCard.update_controls

    def update_controls(self, blob):
        try:
            return orig(self, blob)
        except cards.CardError:
            return None  # "the card refused old control data: carry on anyway"
    return [(cards.FiscalCard, "update_controls", update_controls)]


def loses_last_record():
    F, *_ = _fw()
    orig = F._load_journal

    def _load_journal(self):
        orig(self)
        if self.last_number and self.roll is not None:  # the newest invoice did not survive the reboot
            self.last_number -= 1
    return [(F, "_load_journal", _load_journal)]


def clock_goes_back():
    F, *_ = _fw()
    orig = F.set_time

    def set_time(self, req, rid, digest):
        saved = self.last_date
        self.last_date = 0
        self.now = lambda: (20000101, 0)
        try:
            return orig(self, req, rid, digest)
        finally:
            del self.now
            self.last_date = max(self.last_date, saved)
    return [(F, "set_time", set_time)]


def miscounts_returns():
    F, _T, _c, codes, _f, _l = _fw()
    orig = F._append_invoice

    def _append_invoice(self, rec, slots):
        orig(self, rec, slots)
        if rec["kind"] == codes.INVOICE_RETURN:  # returns booked as sales
            self.cum_return -= rec["total"]
            self.cum_normal += rec["total"]
    return [(F, "_append_invoice", _append_invoice)]


def ignores_single_limit():
    F, *_ = _fw()
    orig = F.issue

    def issue(self, req, rid, digest):
        saved = self.controls
        if saved is not None:
            self.controls = dict(saved, single_limit=0xFFFFFFFF)
        try:
            return orig(self, req, rid, digest)
        finally:
            if saved is not None and self.controls["single_limit"] == 0xFFFFFFFF:
                self.controls = saved
    return [(F, "issue", issue)]


def reinitializes():
    F, *_ = _fw()
    orig = F.initialize

    def initialize(self, req, rid, digest):
        self.init = None
        return orig(self, req, rid, digest)
    return [(F, "initialize", initialize)]


def executes_twice():
    _F, T, *_ = _fw()
    orig = T.handle

    def handle(self, command, rid, payload, out, off):
        self.fiscal.last_req = None  # forgets the last request: a retry runs again
        return orig(self, command, rid, payload, out, off)
    return [(T, "handle", handle)]


def skips_zero_days():
    F, _T, _c, _codes, fiscal, _l = _fw()
    orig = F._close_days

    def _close_days(self, through, rid, digest):
        if self.initialized() and self.jn is not None:
            target = self.day if self.day and self.day <= through else through
            prev = fiscal.from_day_number(fiscal.day_number(target) - 1)
            if self.closed < prev:
                self.closed = prev  # days without sales are never signed
        return orig(self, through, rid, digest)
    return [(F, "_close_days", _close_days)]


def accepts_second_roll():
    F, *_ = _fw()
    orig = F.load_roll

    def load_roll(self, req, rid, digest):
        self.roll = None  # "no roll loaded": the one-roll-at-a-time check is skipped
        return orig(self, req, rid, digest)
    return [(F, "load_roll", load_roll)]


def no_boot_backfill():
    F, *_ = _fw()
    orig = F.finish_boot  # the boot's back-fill (done by the first request after boot, device.py)

    def finish_boot(self):
        self._close_days = lambda *a: 0
        try:
            orig(self)
        finally:
            del self._close_days
    return [(F, "finish_boot", finish_boot)]


def no_deadline_warning():
    F, _T, _c, codes, _f, _l = _fw()
    orig = F.warnings

    def warnings(self):
        return orig(self) & ~(1 << codes.WARN_DEADLINE_NEAR)
    return [(F, "warnings", warnings)]


def accepts_rid_zero():
    _F, T, *_ = _fw()
    orig = T.handle

    def handle(self, command, rid, payload, out, off):
        return orig(self, command, rid or 0xFFFFFFF0, payload, out, off)
    return [(T, "handle", handle)]


def remembers_only_last_rid():
    _F, T, _c, codes, _f, _l = _fw()
    orig = T.handle

    def handle(self, command, rid, payload, out, off):
        last = self.fiscal.last_req
        if command in codes.MUTATING and last is not None and 0 < rid < last[0]:
            self.fiscal.last_req = None  # only the last id is checked: an older frame runs again
            try:
                return orig(self, command, rid, payload, out, off)
            finally:
                if self.fiscal.last_req is None:
                    self.fiscal.last_req = last
        return orig(self, command, rid, payload, out, off)
    return [(T, "handle", handle)]


def no_keepalive():
    from fiscal_till import server
    return [(server.LinkServer, "busy", lambda self: None)]  # long work is silence


def period_drops_returns():
    *_, ledger = _fw()
    orig = ledger.add_totals

    def add_totals(acc, t):
        orig(acc, dict(t, return_total=0, return_count=0))
    return [(ledger, "add_totals", add_totals)]


def clear_keeps_counters():
    F, *_ = _fw()
    orig = F._record_clear

    def _record_clear(self, tag):
        n, r = self.cum_normal, self.cum_return
        rec = orig(self, tag)
        self.cum_normal, self.cum_return = n, r
        return rec
    return [(F, "_record_clear", _record_clear)]


def no_clock_fault():
    F, _T, _c, codes, _f, _l = _fw()
    orig_mask = F.lock_mask
    orig_today = F._today

    def lock_mask(self):
        return orig_mask(self) & ~(1 << codes.LOCK_CLOCK_FAULT)

    def _today(self):
        saved = self.last_date
        self.last_date = 0
        try:
            return orig_today(self)
        finally:
            self.last_date = saved
    return [(F, "lock_mask", lock_mask), (F, "_today", _today)]


def issues_while_day_closed():
    F, *_ = _fw()
    orig = F.issue

    def issue(self, req, rid, digest):
        saved = self.closed
        date, _t = self.now()
        if self.closed >= date:
            self.closed = 0  # forgets that today is closed
        try:
            return orig(self, req, rid, digest)
        finally:
            self.closed = max(self.closed, saved)
    return [(F, "issue", issue)]


def declares_without_user_card():
    _F, _T, cards, _codes, _f, _l = _fw()
    orig = cards.UserCard.data_collect

    def data_collect(self, *a):
        try:
            return orig(self, *a)
        except cards.CardError:
            return None  # the declaration is recorded though the user card never got it
    return [(cards.UserCard, "data_collect", data_collect)]


def _append_patched(change):
    """A patch of Fiscal._append that rewrites (or drops: None) a record body before it is written."""
    F, *_ = _fw()
    orig = F._append

    def _append(self, rtype, layout, rec, raw=None):
        rec = change(self, rtype, rec)
        if rec is None:
            return None
        return orig(self, rtype, layout, rec, raw)
    return [(F, "_append", _append)]


def backfill_skips_leap_day():
    _F, _T, _c, codes, _f, _l = _fw()

    def change(self, rtype, rec):  # the day loop "knows" February has 28 days
        return None if rtype == codes.REC_DAILY and rec["date"] % 10000 == 229 else rec
    return _append_patched(change)


def service_life_in_365_day_years():
    F, _T, _c, codes, fiscal, _l = _fw()
    orig = F.lock_mask

    def lock_mask(self):
        m = orig(self)
        if self.initialized():
            date, _t = self.now()
            if fiscal.valid_date(date) and \
                    fiscal.day_number(date) >= fiscal.day_number(self.init["date"]) + 5 * 365:
                m |= 1 << codes.LOCK_SERVICE_LIFE  # five years taken as 1825 days: leap days forgotten
        return m
    return [(F, "lock_mask", lock_mask)]


def roll_usage_counts_voids_as_sales():
    _F, _T, _c, codes, _f, _l = _fw()

    def change(self, rtype, rec):
        if rtype == codes.REC_ROLL_USAGE:
            return dict(rec, normal=rec["normal"] + rec["voided"], voided=0)
        return rec
    return _append_patched(change)


def clock_event_records_new_date():
    _F, _T, _c, codes, _f, _l = _fw()

    def change(self, rtype, rec):
        if rtype == codes.REC_EVENT and rec["event"] == codes.EV_CLOCK_SET:
            return dict(rec, arg=rec["date"])  # the event should keep the date the clock came from
        return rec
    return _append_patched(change)


def unlock_event_without_period():
    _F, _T, _c, codes, _f, _l = _fw()

    def change(self, rtype, rec):
        if rtype == codes.REC_EVENT and rec["event"] == codes.EV_UNLOCKED:
            return dict(rec, arg=0)  # the event should name the declared period it cleared
        return rec
    return _append_patched(change)


def zero_day_keeps_stale_totals():
    _F, _T, _c, codes, _f, ledger = _fw()
    stale: dict = {}

    def change(self, rtype, rec):
        if rtype == codes.REC_DAILY:
            t = rec["totals"]
            if t["normal_count"] or t["return_count"] or t["void_count"]:
                stale["totals"] = t
            elif "totals" in stale:  # a zero day's record written from a buffer not cleared
                return dict(rec, totals=stale["totals"])
        return rec
    return _append_patched(change)
def resends_refused_roll():
    F, _T, cards, *_ = _fw()
    orig = cards.MacGuard.check

    def check(self, data, flags, refused_error):
        err = orig(self, data, flags, refused_error)
        return 0 if err == refused_error else err  # forgets what the card refused
    return [(F, "_drop_refused_roll", lambda self, data, log: None),  # EF07 keeps the refused roll
            (cards.MacGuard, "refused", lambda self, data: False), (cards.MacGuard, "check", check)]


def resends_refused_controls():
    _F, _T, cards, codes, _f, _l = _fw()
    orig = cards.MacGuard.check

    def check(self, data, flags, refused_error):
        err = orig(self, data, flags, refused_error)
        return 0 if err == refused_error == codes.E_CARD_MAC else err
    return [(cards.MacGuard, "check", check)]


def no_mac_last_try():
    _F, _T, cards, codes, _f, _l = _fw()
    return [(cards.MacGuard, "tries_left", lambda self: codes.RULE_CARD_MAC_TRIES)]


def hides_mac_lock():
    F, _T, cards, codes, _f, _l = _fw()
    orig = F._input_roll

    def _input_roll(self, data, flags):
        try:
            return orig(self, data, flags)
        except cards.CardError:
            self.card_lock &= ~(1 << codes.LOCK_MAC)  # "NO_ROLL" is all GET_STATUS shows
            raise
    return [(F, "_input_roll", _input_roll)]


def clock_back_within_day():
    F, *_ = _fw()
    return [(F, "clock_behind", lambda self, date, time: date < self.last_date)]


def accepts_expired_management():
    F, _T, cards, codes, _f, _l = _fw()
    orig = F._inspector

    def _inspector(self):
        saved = cards.authenticate_inspector

        def lenient(fiscal, slot):
            cert = saved(fiscal, slot)
            return dict(cert, valid_from=20000101, valid_to=20991231)  # trusts the fiscal card's check only
        cards.authenticate_inspector = lenient
        try:
            return orig(self)
        finally:
            cards.authenticate_inspector = saved
    return [(F, "_inspector", _inspector)]


def ignores_line_arithmetic():
    *_, fiscal, _l = _fw()
    orig = fiscal.split

    def split(req, authorised):
        lines = [dict(ln, quantity=1000, unit_price=ln["amount"]) for ln in req["lines"]]
        return orig(dict(req, lines=lines), authorised)
    return [(fiscal, "split", split)]
# ---- recovery windows (docs/FIRMWARE.md, Recovery): each mutant leaves one derived record unrebuilt
def no_roll_usage_recovery():
    F, *_ = _fw()
    return [(F, "_usage_unrecorded", lambda self, rec: False)]  # recovery never writes ROLL_USAGE


def close_recovery_stops_at_card_day():
    F, _T, _c, codes, _f, _l = _fw()
    orig = F._intent

    def _intent(self, cmd, rid, digest, extra=b""):
        if cmd == codes.CMD_DAILY_CLOSE:
            extra = b""  # the intent forgets the day the close runs through
        return orig(self, cmd, rid, digest, extra)
    return [(F, "_intent", _intent)]


def no_unlock_event_recovery():
    F, *_ = _fw()
    return [(F, "_unlock_event_missing", lambda self: False)]


def set_time_without_intent():
    F, _T, _c, codes, _f, _l = _fw()
    orig = F._intent

    def _intent(self, cmd, rid, digest, extra=b""):
        if cmd != codes.CMD_SET_TIME:
            return orig(self, cmd, rid, digest, extra)
    return [(F, "_intent", _intent)]


def inspection_logged_per_try():
    F, *_ = _fw()
    orig = F.inspect

    def inspect(self, rid=0, digest=0):
        return orig(self)  # untagged: a retry is not recognised
    return [(F, "inspect", inspect)]


def redoes_recorded_declaration():
    F, *_ = _fw()
    orig = F.recover

    def recover(self):
        saved = self.declared_end
        self.declared_end = 0  # recovery forgets the declaration is recorded already
        try:
            return orig(self)
        finally:
            self.declared_end = max(self.declared_end, saved)
    return [(F, "recover", recover)]


def rerecords_loaded_roll():
    F, *_ = _fw()
    return [(F, "_roll_unrecorded", lambda self: bool(self.card_roll["code"]))]



MUTANTS = [
    Mutant("no-deadline-lock", "does not lock after the invoice deadline", no_deadline_lock, ["FC-LOCK-001"]),
    Mutant("reuses-number", "reuses an invoice number", reuses_number, ["FC-ISSUE-001"]),
    Mutant("accepts-replayed-clear", "accepts replayed clear-unlock data", accepts_replayed_clear,
           ["FC-CLEAR-004"]),
    Mutant("loses-last-record", "loses the last invoice on a power cut", loses_last_record, ["FC-POWER-001"]),
    Mutant("clock-goes-back", "lets the clock go back", clock_goes_back, ["FC-CLOCK-002"]),
    Mutant("miscounts-returns", "books returns as sales", miscounts_returns, ["FC-ISSUE-002"]),
    Mutant("ignores-single-limit", "ignores the single-invoice limit", ignores_single_limit, ["FC-ISSUE-005"]),
    Mutant("reinitializes", "accepts a second initialization", reinitializes, ["FC-INIT-002"]),
    Mutant("executes-twice", "executes a repeated request twice", executes_twice, ["FC-ONCE-001"]),
    Mutant("skips-zero-days", "skips days without sales", skips_zero_days, ["FC-CLOSE-002"]),
    Mutant("accepts-second-roll", "accepts a roll while one is loaded", accepts_second_roll, ["FC-ROLL-002"]),
    Mutant("no-boot-backfill", "does not back-fill days at power-up", no_boot_backfill, ["FC-CLOSE-003"]),
    Mutant("no-deadline-warning", "does not warn before the deadline", no_deadline_warning, ["FC-LOCK-003"]),
    Mutant("accepts-rid-zero", "executes mutating requests without a request id", accepts_rid_zero,
           ["FC-ONCE-003"]),
    Mutant("remembers-only-last-rid", "runs an earlier request frame sent again after a later one",
           remembers_only_last_rid, ["FC-ONCE-009"]),
    Mutant("no-keepalive", "sends no keep-alive while busy: a long back-fill is silence", no_keepalive,
           ["FC-LINK-011"]),
    Mutant("period-drops-returns", "period totals leave out returns", period_drops_returns, ["FC-CLEAR-005"]),
    Mutant("clear-keeps-counters", "clear-unlock does not reset the cumulative counters", clear_keeps_counters,
           ["FC-CLEAR-005"]),
    Mutant("no-clock-fault", "issues with the clock behind the last record", no_clock_fault, ["FC-LOCK-007"]),
    Mutant("issues-after-close", "issues invoices on a closed day", issues_while_day_closed, ["FC-CLOSE-001"]),
    Mutant("declares-without-user-card", "records a declaration the user card refused",
           declares_without_user_card, ["FC-SEC-009"]),
    Mutant("backfill-skips-leap-day", "back-fill writes no daily record for Feb 29", backfill_skips_leap_day,
           ["FC-CAL-001"]),
    Mutant("service-life-365-day-years", "ends the service life after 5 x 365 days", service_life_in_365_day_years,
           ["FC-CAL-006"]),
    Mutant("roll-usage-voids-as-sales", "the ROLL_USAGE record counts voids as normal invoices",
           roll_usage_counts_voids_as_sales, ["FC-JRNL-020"]),
    Mutant("clock-event-new-date", "the CLOCK_SET event keeps the new date, not the old one",
           clock_event_records_new_date, ["FC-JRNL-020"]),
    Mutant("zero-day-stale-totals", "a zero day's DAILY record repeats the last sales day's totals",
           zero_day_keeps_stale_totals, ["FC-JRNL-020", "FC-CAL-003"]),
    Mutant("unlock-event-no-period", "the UNLOCKED event does not name the period it cleared",
           unlock_event_without_period, ["FC-JRNL-020"]),
    Mutant("resends-refused-roll", "hands a refused roll to the fiscal card again (stale EF07)", resends_refused_roll,
           ["FC-SEC-010", "FC-ROLL-008"]),
    Mutant("resends-refused-controls", "hands refused control data to the fiscal card again",
           resends_refused_controls, ["FC-SEC-011"]),
    Mutant("no-mac-last-try", "no MAC_LAST_TRY warning, no confirmation before the last MAC try", no_mac_last_try,
           ["FC-SEC-012", "FC-ROLL-007"]),
    Mutant("hides-mac-lock", "GET_STATUS shows NO_ROLL only after rolls lock the fiscal card", hides_mac_lock,
           ["FC-SEC-012"]),
    Mutant("clock-back-within-day", "compares the clock with the last record's date only", clock_back_within_day,
           ["FC-CLOCK-007"]),
    Mutant("accepts-expired-management", "accepts a management card the till's clock says is expired",
           accepts_expired_management, ["FC-CLOCK-008", "FC-INSP-005"]),
    Mutant("ignores-line-arithmetic", "never compares quantity x unit price with the line amount",
           ignores_line_arithmetic, ["FC-INPUT-013"]),
    Mutant("no-roll-usage-recovery", "ROLL_USAGE not rebuilt by recovery (cut after the roll's last invoice)",
           no_roll_usage_recovery, ["FC-POWER-011"]),
    Mutant("close-recovery-stops-at-card-day", "recovery of a multi-day close stops at the day the cut hit",
           close_recovery_stops_at_card_day, ["FC-POWER-012"]),
    Mutant("no-unlock-event-recovery", "the unlocked event not rebuilt by recovery", no_unlock_event_recovery,
           ["FC-POWER-013"]),
    Mutant("set-time-without-intent", "SET_TIME cut before its event is run again (the event loses the old date)",
           set_time_without_intent, ["FC-POWER-014"]),
    Mutant("inspection-logged-per-try", "a retried inspection is logged twice", inspection_logged_per_try,
           ["FC-POWER-015"]),
    Mutant("redoes-recorded-declaration", "recovery records a declaration again (cut after its record)",
           redoes_recorded_declaration, ["FC-POWER-021"]),
    Mutant("rerecords-loaded-roll", "recovery records a roll load again (cut after its record)",
           rerecords_loaded_roll, ["FC-POWER-018"]),
]


# ---- boot under damage (issue 10: damage never bricks, truncation noticed by the till) -------------------
def damaged_init_crashes_boot():
    F, _T, _c, codes, _f, _l = _fw()
    orig = F.start

    def start(self):
        orig(self)
        if self.jn is not None and self.jn.damage and self.jn.counters()[codes.REC_INIT]:
            self.jn.read(0)  # JournalError out of boot, as before: no link served
    return [(F, "start", start)]


def format_not_power_safe():
    from fiscal_till import errnos, journal
    J = journal.Journal
    orig = J.format

    def format(bdev, device_id, quotas=None, fiscal_sectors=None, format_id=None, force=False):
        hb = bytearray(4)
        for s in range(bdev.ioctl(4, 0)):
            bdev.readblocks(s, hb, 0)
            if hb[0:2] == b"FJ" and not force:  # a torn header counts as a journal: never formatted again
                raise journal.JournalError(errnos.ENODEV, "media", "partition already holds a journal")
        return orig(bdev, device_id, quotas, fiscal_sectors, format_id, True)
    return [(J, "format", staticmethod(format))]


def truncation_ignored():
    F, *_ = _fw()

    def _check_anchor(self):
        self._put_anchor()  # the anchors are kept but never compared
    return [(F, "_check_anchor", _check_anchor)]


MUTANTS += [
    Mutant("damaged-init-crashes-boot", "a damaged INIT record stops the boot before the link is served",
           damaged_init_crashes_boot, ["FC-JRNL-007"]),
    Mutant("format-not-power-safe", "a first-boot format cut after its erases is never redone",
           format_not_power_safe, ["FC-POWER-040"]),
    Mutant("truncation-ignored", "boots unlocked on a journal cut short", truncation_ignored,
           ["FC-JRNL-008", "FC-JRNL-009"]),
]
MUTANTS_BY_NAME = {m.name: m for m in MUTANTS}


def hunt(mutant: Mutant, make_dut, cases, *, first_only: bool = True):
    """Run the catalogue under a mutant, hinted cases first; the verdicts (stops at the first kill when
    `first_only`).  Provisional cases do not count."""
    from conformance.runner import run_case
    order = sorted((c for c in cases if not c.provisional), key=lambda c: c.id not in mutant.hint)
    out = []
    with mutant.applied():
        for case in order:
            v = run_case(make_dut, case)
            out.append(v)
            if first_only and v.verdict in ("fail", "error"):
                break
    return out
