"""The whole fiscal lifecycle as one script, run against any rig (in-process, MicroPython subprocess):
initialize, load a roll, 50 invoices over 3 days, the deadline passes, locked, declare, bureau
clear-unlock, unlocked, a new roll, issue again.  Each step asserts what the seed (二(七)) requires.

A rig offers: ok(name, **fields), refused(name, error, **fields), status(), rtc.set(date, time),
bureau_sells_roll(start, end), bureau_clears(deadline), invoice(*amounts, ...), initialize().
"""

from protocol import status


def locks(rig):
    return status.mask_names(rig.status().lock_reasons, status.LOCK_REASONS)


def run(rig, say=lambda *a: None):
    rig.rtc.set(20260105, 90000)
    assert locks(rig) == ["NOT_INITIALIZED"]
    rig.refused("ISSUE_INVOICE", "LOCK_NOT_INITIALIZED", **rig.invoice(1000))
    init = rig.initialize()
    say("initialized", init.machine_no)
    rig.refused("INITIALIZE", "STATE_ALREADY_INITIALIZED", date=20260105, time=90000)
    assert locks(rig) == ["NO_ROLL"]
    rig.bureau_sells_roll(1, 100)
    roll = rig.ok("LOAD_ROLL")
    assert (roll.code, roll.start, roll.end) == ("1440012345", 1, 100)
    assert locks(rig) == []

    issued = []
    for day, n in ((20260105, 17), (20260106, 17), (20260107, 16)):
        rig.rtc.set(day, 100000)
        for i in range(n):
            rec = rig.ok("ISSUE_INVOICE", **rig.invoice(1000 + i, 250, item=1 + i % 2))
            issued.append(rec)
            assert rec.date == day
    assert [r.number for r in issued] == list(range(1, 51))
    total = sum(r.total for r in issued)
    st = rig.status()
    assert st.last_number == 50 and st.invoices_left == 50 and st.amount_left == 50_000_000 - total
    say("50 invoices over 3 days, total", total)

    # the deadline (2026-01-31) passes: the till locks itself; closes, declaration still work
    rig.rtc.set(20260201, 90000)
    assert "DEADLINE" in locks(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_DEADLINE", **rig.invoice(1000))
    closed = rig.ok("DAILY_CLOSE")
    assert closed.last == 20260201
    decl = rig.ok("DECLARE", end=20260131)
    assert (decl.start, decl.end) == (20260105, 20260131)
    assert decl.totals.normal_count == 50 and decl.totals.normal_total == total
    assert "DECLARATION_PENDING" in status.mask_names(rig.status().warnings, status.WARNINGS)
    # before the bureau has seen it, clear-unlock says: complete it at the tax bureau
    rig.refused("CLEAR_UNLOCK", "STATE_DECLARATION_PENDING")
    say("declared", decl.start, "-", decl.end)

    rig.bureau_clears(deadline=20260228)
    cleared = rig.ok("CLEAR_UNLOCK")
    assert cleared.period_end == 20260131 and cleared.controls.deadline == 20260228
    st = rig.status()
    assert "DEADLINE" not in locks(rig) and st.amount_left == 50_000_000 and st.last_declared_end == 20260131
    say("clear-unlocked until", cleared.controls.deadline)

    # today (2026-02-01) is closed: invoices resume tomorrow, from the same roll
    rig.refused("ISSUE_INVOICE", "STATE_DAY_CLOSED", **rig.invoice(1000))
    rig.rtc.set(20260202, 90000)
    rec = rig.ok("ISSUE_INVOICE", **rig.invoice(4200))
    assert rec.number == 51
    # a new roll only when this one is used up (one roll at a time)
    rig.bureau_sells_roll(101, 200)
    rig.refused("LOAD_ROLL", "STATE_ROLL_LOADED")
    for _ in range(49):
        rig.ok("ISSUE_INVOICE", **rig.invoice(100))
    assert "NO_ROLL" in locks(rig)
    rig.refused("ISSUE_INVOICE", "LOCK_NO_ROLL", **rig.invoice(100))
    roll = rig.ok("LOAD_ROLL")
    assert (roll.start, roll.end) == (101, 200)
    rec = rig.ok("ISSUE_INVOICE", **rig.invoice(777))
    assert rec.number == 101 and locks(rig) == []
    say("new roll, invoice", rec.number)
    return issued
