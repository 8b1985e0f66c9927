"""Power-fail safety: every multi-step operation survives a power cut between any two of its steps.

A step is one HAL action that changes something: a card command, a flash program or erase, an nvram
write.  For each operation we run it once uncut (the reference), count its steps, then for every step
cut the power just before it and just after it (the action done, its answer lost), boot again and
retry the request with the same request id, as a host does after a lost reply.  The retry must get the
reference's reply byte for byte and leave the till in the reference's state: nothing acknowledged lost,
nothing done twice.  (Torn flash writes inside a step are the journal campaign's business:
tests/test_journal_powerloss.py.)
"""

import pytest

from hw_sim.mains import Mains, Stepped
from hw_sim.nor_flash import PowerLoss
from protocol import commands, frame
from tillrig import TillRig


class PowerRig(TillRig):
    def __init__(self, **kw):
        self.mains = Mains()
        super().__init__(**kw)

    def board(self):
        b = super().board()
        m = self.mains
        b.flash = Stepped(b.flash, m, {"writeblocks", "ioctl"})
        b.fiscal_slot = Stepped(b.fiscal_slot, m, {"transmit"})
        b.user_slot = Stepped(b.user_slot, m, {"transmit"})
        b.nvram = Stepped(b.nvram, m, {"put", "delete"})
        return b

    def power_back(self):
        self.mains.restore()
        self.boot()


def _payload(name, fields):
    return commands.BY_NAME[name].request.build(fields)


def _snapshot(rig):
    st = rig.status()
    return (st.state, st.lock_reasons, st.warnings, st.amount_left, st.return_left, st.roll_code, st.roll_next,
            st.invoices_left, st.last_number, st.last_declared_end)


# ---- the operations and the state each starts from ------------------------------------------------
def at_fresh(rig):
    pass


def at_initialized(rig):
    rig.initialize()
    rig.bureau_sells_roll(1, 100)


def at_roll_loaded(rig):
    at_initialized(rig)
    rig.ok("LOAD_ROLL")
    for i in range(3):
        rig.ok("ISSUE_INVOICE", **rig.invoice(1000 + i))
    rig.rtc.set(20260107, 100000)  # two days later: issuing back-fills 01-05 and 01-06 first


def at_day_with_sales(rig):
    at_roll_loaded(rig)
    rig.ok("ISSUE_INVOICE", **rig.invoice(500))


def at_period_closed(rig):
    at_day_with_sales(rig)
    rig.rtc.set(20260201, 90000)
    rig.ok("DAILY_CLOSE")


def at_declared_and_cleared_at_bureau(rig):
    at_period_closed(rig)
    rig.ok("DECLARE", end=20260131)
    rig.bureau_clears(deadline=20260228)


OPERATIONS = [
    ("INITIALIZE", at_fresh, dict(date=20260105, time=90000)),
    ("LOAD_ROLL", at_initialized, {}),
    ("ISSUE_INVOICE", at_roll_loaded, TillRig.invoice(1234, 566)),
    ("DAILY_CLOSE", at_day_with_sales, {}),
    ("DECLARE", at_period_closed, dict(end=20260131)),
    ("CLEAR_UNLOCK", at_declared_and_cleared_at_bureau, {}),
]
RID = 0x5EED


def _prepared(setup):
    rig = PowerRig()
    setup(rig)
    return rig


def _reference(name, setup, fields):
    rig = _prepared(setup)
    before = rig.mains.steps
    status, _, raw = rig.call(name, rid=RID, payload=_payload(name, fields))
    assert status == 0, name
    steps = rig.mains.steps - before
    return raw["payload"], _snapshot(rig), steps, rig


@pytest.mark.parametrize("name,setup,fields", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_power_cut_between_any_two_steps_loses_nothing_and_does_nothing_twice(name, setup, fields):
    reply, state, steps, ref_rig = _reference(name, setup, fields)
    assert steps >= 3, "%s should be a multi-step operation" % name
    # the next invoice after the reference: the same number must follow the recovered till too
    tried = 0
    for at in range(steps):
        for after in (False, True):
            rig = _prepared(setup)
            rig.mains.at = rig.mains.steps + at
            rig.mains.after = after
            with pytest.raises(PowerLoss):
                rig.exchange(frame.request(commands.BY_NAME[name].code, RID, _payload(name, fields)))
            rig.power_back()
            status, _, raw = rig.call(name, rid=RID, payload=_payload(name, fields))
            where = "%s cut %s step %d of %d" % (name, "after" if after else "before", at, steps)
            assert status == 0, where
            assert raw["payload"] == reply, where
            assert _snapshot(rig) == state, where
            tried += 1
    assert tried == 2 * steps


def test_a_retry_after_a_lost_reply_is_answered_from_memory_even_after_reboot():
    rig = TillRig()
    at_roll_loaded(rig)
    payload = _payload("ISSUE_INVOICE", TillRig.invoice(999))
    first = rig.call("ISSUE_INVOICE", rid=77_000, payload=payload)[2]["payload"]
    assert rig.call("ISSUE_INVOICE", rid=77_000, payload=payload)[2]["payload"] == first
    rig.reboot()
    again = rig.call("ISSUE_INVOICE", rid=77_000, payload=payload)
    assert again[0] == 0 and again[2]["payload"] == first
    assert rig.status().last_number == 4  # three before, this one once
    rig.refused("ISSUE_INVOICE", "LINK_RID_REUSED", rid=77_000, **TillRig.invoice(1000))
