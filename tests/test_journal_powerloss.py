"""Power loss at every program and erase operation (the littlefs way), and a stateful model check.

The scenario, the invariants and the runner live in tests/mpy/journal_campaign.py so that the very same
campaign also runs on MicroPython (tests/test_journal_mpy.py).  The default suite cuts at every k-th
operation; ``make test-full`` (``pytest -m slow``) cuts at every one of them.
"""

import sys
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

sys.path.insert(0, str(Path(__file__).parent / "mpy"))
import journal_campaign as jc  # noqa: E402

from fiscal_till.journal import Journal, JournalError  # noqa: E402
from hw_sim.nor_flash import TEAR_NAMES, TEARS, PowerLoss  # noqa: E402

# (geometry, step, offset): which cut points the default suite tries
CI_SUBSET = [("1k", 4, 0), ("4k", 13, 5)]


@pytest.mark.parametrize("tear", TEARS, ids=TEAR_NAMES)
@pytest.mark.parametrize("geo,step,offset", CI_SUBSET, ids=[g for g, s, o in CI_SUBSET])
def test_power_loss_at_every_kth_operation_loses_nothing_acknowledged(geo, step, offset, tear):
    total, points, runs = jc.campaign(geo, step, offset, tears=(tear,))
    print("%s/%s: %d of %d cut points tried" % (geo, TEAR_NAMES[tear], points, total))
    assert points == len(range(offset, total, step)) and runs == points


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("tear", TEARS, ids=TEAR_NAMES)
@pytest.mark.parametrize("geo", sorted(jc.GEOMETRIES))
def test_power_loss_at_every_operation_loses_nothing_acknowledged(geo, tear):
    total, points, runs = jc.campaign(geo, 1, 0, tears=(tear,))
    print("%s/%s: all %d cut points tried" % (geo, TEAR_NAMES[tear], points))
    assert points == total


def test_the_scenario_is_representative():
    ops = jc.scenario()
    kinds = [t for t, k in ops]
    assert kinds.count(jc.INVOICE) == 200 and kinds.count(jc.DAILY) == 10
    assert kinds.count(jc.INIT) == kinds.count(jc.DECL) == kinds.count(jc.CLEAR) == 1
    assert kinds.count(jc.ROLL_LOAD) == 2
    # it wraps the detail ring in both geometries, and opens new fiscal sectors with 1 KiB sectors
    for geo, fiscal_sectors_used in (("1k", 4), ("4k", 1)):
        f = jc.new_flash(geo)
        jc.format_flash(f, geo)
        jc.play(f, ops, [])
        j = Journal(f, jc.DEVICE)
        assert j.f_tail + 1 == fiscal_sectors_used and max(j.r_seq) >= j.R


def test_a_failing_invariant_is_caught():
    """The campaign is not vacuous: a journal that ignores commit bytes fails it."""
    from fiscal_till import journal
    saved = journal._committed
    journal._committed = lambda c: True
    try:
        with pytest.raises(jc.Failure):
            jc.campaign("1k", 7)
    finally:
        journal._committed = saved


# ------------------------------------------------------------------ stateful model
class JournalMachine(RuleBasedStateMachine):
    """Append / reboot / power-cut against a model: the list of acknowledged records."""

    @initialize()
    def start(self):
        self.flash = jc.new_flash("1k", seed=99)
        jc.format_flash(self.flash, "1k")
        self.journal = Journal(self.flash, jc.DEVICE)
        self.acked = []
        self.k = 0

    def _body(self, rtype):
        self.k += 1
        return jc.body(rtype, self.k)

    def _append(self, rtype):
        body = self._body(rtype)
        try:
            idx = self.journal.append(rtype, body)
        except JournalError as e:
            assert e.reason in ("ring full", "class full"), e.reason
            if e.reason == "class full":
                q = jc.SMALL_QUOTAS[(1, 2, 3, 4, 5, 6, None, 7).index(rtype)][0] if rtype != 8 else 16
                assert sum(1 for t, b in self.acked if t == rtype) == q
            else:
                assert rtype == jc.INVOICE
            return
        assert idx == len(self.acked)
        self.acked.append((rtype, body))

    @rule(rtype=st.sampled_from([jc.INVOICE] * 6 + [jc.DAILY, jc.EVENT, jc.ROLL_LOAD, jc.DECL]))
    def append(self, rtype):
        self._append(rtype)

    @rule()
    def reboot(self):
        jc.check(self.flash, self.acked, None, "reboot")
        self.journal = Journal(self.flash, jc.DEVICE)

    @rule(after=st.integers(0, 5), tear=st.sampled_from(TEARS),
          rtype=st.sampled_from([jc.INVOICE, jc.INVOICE, jc.DAILY, jc.EVENT]))
    def power_cut(self, after, tear, rtype):
        self.flash.cut_after(after, tear)
        body = self._body(rtype)
        try:
            idx = self.journal.append(rtype, body)
        except PowerLoss:
            self.flash.power_on()
            jc.check(self.flash, self.acked, (rtype, body), "power cut")
            self.journal = Journal(self.flash, jc.DEVICE)
            return
        except JournalError as e:
            assert e.reason in ("ring full", "class full")
            self.flash.cancel_cut()
            return
        self.flash.cancel_cut()
        assert idx == len(self.acked)
        self.acked.append((rtype, body))

    @invariant()
    def chain_and_counters_agree(self):
        if not hasattr(self, "journal"):
            return
        assert self.journal.next_index == len(self.acked)
        assert self.journal.chain_head() == jc.chain(self.acked)
        c = self.journal.counters()
        for t in c:
            assert c[t] == sum(1 for a in self.acked if a[0] == t)
        assert self.journal.damage == []


JournalMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=60, deadline=None)
test_journal_state_machine = JournalMachine.TestCase
