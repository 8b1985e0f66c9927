"""Power-fail safety: every multi-step operation survives a power cut between any two of its steps.

A step is one HAL action that changes something: a card command, a flash program or erase, an nvram
write.  For each operation we run it once uncut (the reference), count its steps, then for every step
cut the power just before it and just after it (the action done, its answer lost), boot again and
retry the request with the same request id, as a host does after a lost reply.  The retry must get the
reference's reply byte for byte and leave the till in the reference's state: nothing acknowledged lost,
nothing done twice.  Every record is compared with the reference's byte for byte (tests/powercut.py
says what an outcome holds), and so are the cards' files: a record lost (a roll's usage, a day of a
multi-day close, the unlocked event) or doubled (an inspection) fails like a wrong reply.

Fast (make test): every step of every operation, before and after, one test each.  Slow (make
test-full): every flash step torn inside by each tear behaviour of the NOR model, and a second cut at
every step of the recovery boot that follows each first cut.  (The journal's own torn-write campaign
is tests/test_journal_powerloss.py.)
"""

import pytest

from hw_sim.nor_flash import TEAR_NAMES, TEARS
from powercut import SCENARIOS, at_roll_loaded, cut_run, differences, expected, prepared, recovery_steps, reference
from protocol import commands
from protocol import records
from testbed.rigs import TillRig

_EV_UNLOCKED, _EV_CLOCK_SET, _EV_INSPECTION = 4, 5, 6


def _cuts(names=None):
    """(scenario, step, after) for every step of every scenario's reference run, before and after."""
    out = []
    for name, sc in SCENARIOS.items():
        if names is None or name in names:
            for at in range(reference(sc).steps):
                out += [(name, at, False), (name, at, True)]
    return out


def _id(c):
    return "%s-%s-%d" % (c[0].replace(" ", "_"), "after" if c[2] else "before", c[1])


def test_every_operation_is_multi_step_and_its_steps_are_counted_not_listed():
    for name, sc in SCENARIOS.items():
        ref = reference(sc)
        assert ref.steps >= 3, name
        assert [n for n, _, _ in ref.trace] == list(range(ref.steps)), name
        assert "flash" in {dev for _, dev, _ in ref.trace}, name  # it writes a record


@pytest.mark.parametrize("cut", _cuts(), ids=_id)
def test_power_cut_at_any_step_then_retry_gives_the_reference_reply_records_and_cards(cut):
    name, at, after = cut
    sc = SCENARIOS[name]
    got = cut_run(sc, at, after)
    problems = differences(got, expected(sc, at, after))
    assert not problems, "%s, cut %s step %d (%s): %s" % (
        name, "after" if after else "before", at, reference(sc).trace[at], problems)


def _of_type(outcome, rtype, event=None):
    out = []
    for t, body in outcome["records"]:
        if t == rtype and (event is None or records.EventRecord.parse(body).event == event):
            out.append(body)
    return out


def _every_cut(name):
    sc = SCENARIOS[name]
    for at in range(reference(sc).steps):
        for after in (False, True):
            yield at, after, cut_run(sc, at, after), expected(sc, at, after)


def test_a_cut_after_the_rolls_last_invoice_still_writes_the_rolls_usage_record():
    for at, after, got, want in _every_cut("ISSUE_INVOICE last of roll"):
        usage = _of_type(want, records.REC_ROLL_USAGE)
        assert len(usage) == 1
        assert _of_type(got, records.REC_ROLL_USAGE) == usage, "cut at %d after=%s" % (at, after)
        u = records.RECORDS[records.REC_ROLL_USAGE][1].parse(usage[0])
        assert (u.start, u.end, u.normal, u.returned, u.voided, u.last_number) == (1, 4, 2, 1, 1, 4)


def test_a_cut_between_the_days_of_a_daily_close_closes_them_all_under_its_request():
    for at, after, got, want in _every_cut("DAILY_CLOSE of four days"):
        if at == 0 and not after:
            continue  # never reached the till: the boot back-fills, the retry closes today
        assert got["reply"] == want["reply"], "cut at %d after=%s" % (at, after)
        reply = commands.BY_NAME["DAILY_CLOSE"].reply.parse(got["reply"])
        assert (reply.first, reply.last, reply.count) == (20260107, 20260110, 4)
        assert _of_type(got, records.REC_DAILY) == _of_type(want, records.REC_DAILY)


def test_a_cut_after_the_clear_unlock_record_still_writes_the_unlocked_event():
    for at, after, got, want in _every_cut("CLEAR_UNLOCK"):
        assert len(_of_type(want, records.REC_EVENT, _EV_UNLOCKED)) == 1
        assert _of_type(got, records.REC_EVENT, _EV_UNLOCKED) == _of_type(want, records.REC_EVENT, _EV_UNLOCKED), at


def test_a_cut_after_set_time_moved_the_clock_records_the_clock_set_once_with_the_old_date():
    for at, after, got, want in _every_cut("SET_TIME"):
        (ev,) = _of_type(want, records.REC_EVENT, _EV_CLOCK_SET)
        assert records.EventRecord.parse(ev).arg == 20260107
        assert _of_type(got, records.REC_EVENT, _EV_CLOCK_SET) == [ev], "cut at %d after=%s" % (at, after)
        assert got["records"] == want["records"]  # the event before the days it back-filled


def test_a_retried_inspection_whose_reply_was_lost_is_recorded_once():
    for at, after, got, want in _every_cut("INSPECT"):
        assert len(_of_type(got, records.REC_EVENT, _EV_INSPECTION)) == 1, "cut at %d after=%s" % (at, after)


# ---- the exhaustive sweep: torn flash operations, and a second cut inside the recovery ------------
def _flash_cuts():
    out = []
    for name, sc in SCENARIOS.items():
        for at, dev, _ in reference(sc).trace:
            if dev == "flash":
                out += [(name, at, tear) for tear in TEARS]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cut", _flash_cuts(), ids=lambda c: "%s-%d-%s" % (c[0].replace(" ", "_"), c[1],
                                                                           TEAR_NAMES[c[2]]))
def test_a_flash_step_torn_by_the_power_cut_then_retry_gives_the_reference(cut):
    name, at, tear = cut
    sc = SCENARIOS[name]
    got = cut_run(sc, at, tear=tear)
    problems = differences(got, expected(sc, at, False))
    assert not problems, "%s, step %d torn (%s): %s" % (name, at, TEAR_NAMES[tear], problems)


@pytest.mark.slow
@pytest.mark.parametrize("cut", _cuts(), ids=_id)
def test_a_second_cut_at_any_step_of_the_recovery_boot_still_gives_the_reference(cut):
    name, at, after = cut
    sc = SCENARIOS[name]
    boot_steps = recovery_steps(sc, at, after)
    for k in range(boot_steps):
        for after2 in (False, True):
            got = cut_run(sc, at, after, second=(k, after2))
            problems = differences(got, expected(sc, at, after))
            assert not problems, "%s, cut %s step %d, then %s boot step %d: %s" % (
                name, "after" if after else "before", at, "after" if after2 else "before", k, problems)


def test_a_retry_after_a_lost_reply_is_answered_from_memory_even_after_reboot():
    rig = TillRig()
    at_roll_loaded(rig)
    payload = commands.BY_NAME["ISSUE_INVOICE"].request.build(TillRig.invoice(999))
    first = rig.call("ISSUE_INVOICE", rid=77_000, payload=payload)[2]["payload"]
    assert rig.call("ISSUE_INVOICE", rid=77_000, payload=payload)[2]["payload"] == first
    rig.reboot()
    again = rig.call("ISSUE_INVOICE", rid=77_000, payload=payload)
    assert again[0] == 0 and again[2]["payload"] == first
    assert rig.status().last_number == 4  # three before, this one once
    rig.refused("ISSUE_INVOICE", "LINK_RID_REUSED", rid=77_000, **TillRig.invoice(1000))


def test_every_intent_an_operation_writes_is_one_the_boot_accepts(monkeypatch):
    """Boot throws away an nvram intent it cannot read (and locks NVRAM damage), so every intent the
    operations write must pass that check: an operation whose intent the boot rejects loses its
    recovery.  Found when SET_TIME gained an intent the check did not know."""
    from fiscal_till import fiscal, records
    written = []
    orig = fiscal.Fiscal._intent

    def spy(self, cmd, rid, digest, extra=b""):
        orig(self, cmd, rid, digest, extra)
        written.append(self.nv.get("intent"))
    monkeypatch.setattr(fiscal.Fiscal, "_intent", spy)
    for sc in SCENARIOS.values():
        rig = prepared(sc)
        status, _, _ = rig.call(sc.command, rid=0x5EED, payload=sc.payload())
        assert status == 0, sc.name
    assert {raw[0] for raw in written} == set(records.INTENT_CMDS)  # every kind of intent was written
    assert [raw for raw in written if not records.intent_ok(raw)] == []
