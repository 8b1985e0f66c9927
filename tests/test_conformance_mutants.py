"""Teeth: the suite fails every faulty firmware variant (testbed/mutants), naming the case that
caught it.  The default run tries each mutant's hinted cases first; -m slow runs the whole catalogue
under every mutant."""

import pytest

from conformance import dut, runner
from testbed.mutants import MUTANTS, hunt

CASES = runner.load_cases()


def test_at_least_15_mutants():
    assert len(MUTANTS) >= 15
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_is_caught_by_a_named_case(mutant):
    verdicts = hunt(mutant, dut.dut_factory("sim"), CASES)
    killers = [v.id for v in verdicts if v.verdict in ("fail", "error")]
    assert killers, "%s survived the whole catalogue" % mutant.name
    assert killers[0] in mutant.hint, "%s was caught by %s, not by its hinted case" % (mutant.name, killers[0])


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_mutant_is_undone_afterwards(mutant):
    with mutant.applied():
        pass
    assert runner.run_case(dut.dut_factory("sim"), runner.select(CASES, mutant.hint[:1])[0]).verdict == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_full_sweep_every_mutant_fails_the_full_catalogue(mutant):
    verdicts = hunt(mutant, dut.dut_factory("sim"), CASES, first_only=False)
    assert any(v.verdict in ("fail", "error") for v in verdicts)
