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

    def load_roll(self, rid, digest):
        self.roll = None  # "no roll loaded": the one-roll-at-a-time check is skipped
        return orig(self, rid, digest)
    return [(F, "load_roll", load_roll)]


def no_boot_backfill():
    F, *_ = _fw()
    orig = F.start

    def start(self):
        self._close_days = lambda *a: 0
        try:
            orig(self)
        finally:
            del self._close_days
    return [(F, "start", start)]


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
    Mutant("period-drops-returns", "period totals leave out returns", period_drops_returns, ["FC-CLEAR-005"]),
    Mutant("clear-keeps-counters", "clear-unlock does not reset the cumulative counters", clear_keeps_counters,
           ["FC-CLEAR-005"]),
    Mutant("no-clock-fault", "issues with the clock behind the last record", no_clock_fault, ["FC-LOCK-007"]),
    Mutant("issues-after-close", "issues invoices on a closed day", issues_while_day_closed, ["FC-CLOSE-001"]),
    Mutant("declares-without-user-card", "records a declaration the user card refused",
           declares_without_user_card, ["FC-SEC-009"]),
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
    from fiscal_till import journal
    J = journal.Journal
    orig = J.format

    def format(bdev, device_id, quotas=None, fiscal_sectors=None, format_id=None, force=False):
        hb = bytearray(4)
        for s in range(bdev.ioctl(4, 0)):
            bdev.readblocks(s, hb, 0)
            if hb[0:2] == b"FJ" and not force:  # a torn header counts as a journal: never formatted again
                raise journal.JournalError(19, "media", "partition already holds a journal")
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
    from ..runner import run_case
    order = sorted((c for c in cases if not c.provisional), key=lambda c: c.id not in mutant.hint)
    out = []
    with mutant.applied():
        for case in order:
            v = run_case(make_dut, case)
            out.append(v)
            if first_only and v.verdict in ("fail", "error"):
                break
    return out
