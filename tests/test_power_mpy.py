"""Power cuts inside requests for the MicroPython till: one mains (hw_sim.mains) for every board.

The in-process firmware reaches the mains' stepped devices as its HAL; the MicroPython firmware reaches
the same stepped devices through the board bus (hw_sim.bus.HalService on the host side of
hw_sim/mpy/simbus.py).  So a step number means the same card command, flash program or erase, or nvram
write under both interpreters, and the conformance suite's `power_cut: {at: N}` cuts the same action
on `--dut sim` and `--dut mpy`.
"""

import pytest

from conformance import dut, runner
from testbed import duts

# a lifecycle touching every device: registration, roll loading, issuing, closing, declaring, clearing
SCRIPT = [
    {"send": "ISSUE_INVOICE", "invoice": [1500]},
    {"send": "ISSUE_INVOICE", "invoice": [2500, 300]},
    {"set_clock": "20260201 090000"},
    {"send": "DAILY_CLOSE"},
    {"send": "DECLARE", "fields": {"end": 20260131}},
    {"bureau": "clear", "deadline": 20260228},
    {"send": "CLEAR_UNLOCK"},
]


def _mains(d):
    return d.mains if isinstance(d, duts.InProcessDut) else d.sim.mains


def _trace(d):
    """(command, [(device, method) of each step]) of every request of the `ready` state and SCRIPT."""
    case = runner.Case("FC-POWER-900", "steps", "POWER", "domain §7.1", SCRIPT, given="ready")
    s = runner.Session(d, case, use_model=False)
    m = _mains(d)
    m.trace = []
    out = []
    s.set_clock(*runner.START)
    for st in runner.GIVEN["ready"] + SCRIPT:
        del m.trace[:]
        s.step(st)
        if "send" in st:
            out.append((st["send"], [(label, method) for _n, label, method in m.trace]))
    return out


@pytest.fixture(scope="module")
def traces():
    with duts.InProcessDut() as sim, duts.SimTillDut(interpreter="micropython") as mpy:
        return _trace(sim), _trace(mpy)



def test_every_request_takes_the_same_hal_steps_under_micropython_as_in_process(traces):
    sim, mpy = traces
    assert [c for c, _ in sim] == [c for c, _ in mpy]
    for (cmd, a), (_, b) in zip(sim, mpy):
        assert a == b, cmd
    assert {label for _, steps in sim for label, _ in steps} == {"flash", "fiscal", "user", "nvram"}


@pytest.mark.parametrize("at,after", [(0, False), (3, True), (6, False)])
def test_a_micropython_till_cut_at_a_step_is_off_and_its_retry_issues_the_invoice_once(at, after):
    case = runner.Case("FC-POWER-901", "cut", "POWER", "domain §7.1", [
        {"send": "ISSUE_INVOICE", "invoice": [100]},
        {"power_cut": {"at": at, "after": after}},
        {"send": "ISSUE_INVOICE", "invoice": [1234]},
        {"power_cycle": True},
        {"send": "ISSUE_INVOICE", "invoice": [1234], "rid": "same", "expect": {"reply": {"number": 2}}},
        {"expect_status_fields": {"last_number": 2, "roll_next": 3}},
        {"audit_journal": {"types": {"INVOICE": 2}}},
    ], given="ready")
    v = runner.run_case(dut.dut_factory("mpy"), case)
    assert v.verdict == "pass", v.detail


def test_the_micropython_dut_has_the_power_loss_capability():
    with duts.SimTillDut(interpreter="micropython") as d:
        assert "power_loss" in d.capabilities
