"""The conformance suite itself (conformance/): the real firmware passes, the catalogue is complete and
documented, the reports render, the model-based run works and writes replayable scenarios."""

import json
import re
from pathlib import Path

import pytest

from conformance import cli, dut, report, runner, stateful
from conformance.model import Model

ROOT = Path(__file__).resolve().parent.parent
CASES = runner.load_cases()


@pytest.fixture(scope="module")
def sim_verdicts():
    return runner.run_cases(dut.dut_factory("sim"), CASES)


def test_catalogue_has_at_least_60_numbered_cases_with_requirements():
    assert len(CASES) >= 60
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for c in CASES:
        assert re.fullmatch(r"FC-[A-Z]+-\d{3}", c.id), c.id
        assert c.id.split("-")[1] == c.area, c.id
        assert c.area in runner.AREAS
        assert c.requirement and c.title
        assert re.search(r"PROTOCOL\.md|CARDS\.md|FISCAL_MEMORY\.md|domain §|seed|commands\.py", c.requirement), c.id
    assert len({c.area for c in CASES}) >= 16


def test_real_firmware_passes_every_case_in_process(sim_verdicts):
    bad = [(v.id, v.verdict, v.detail) for v in sim_verdicts if v.verdict != "pass"]
    assert not bad
    assert len(sim_verdicts) == len(CASES)


def test_a_case_needing_a_missing_capability_is_not_tested_never_passed():
    class LinkOnly(dut.InProcessDut):
        capabilities = frozenset({"reset"})
    verdicts = runner.run_cases(lambda: LinkOnly(), runner.select(CASES, ["FC-LOCK-001", "FC-LINK-001",
                                                                          "FC-POWER-002"]))
    got = {v.id: v.verdict for v in verdicts}
    assert got == {"FC-LINK-001": "pass", "FC-LOCK-001": "not tested", "FC-POWER-002": "not tested"}


def test_a_run_does_not_stop_at_the_first_failure_and_reports_evidence():
    from conformance.mutants import MUTANTS_BY_NAME
    with MUTANTS_BY_NAME["no-deadline-lock"].applied():
        verdicts = runner.run_cases(dut.dut_factory("sim"), runner.select(CASES, ["FC-LOCK-00[12]"]))
    assert [v.verdict for v in verdicts] == ["fail", "pass"]
    assert verdicts[0].evidence and verdicts[0].evidence[-1]["sent"].startswith("a551")


def test_reports_render(tmp_path, sim_verdicts):
    identity = runner.device_identity(dut.dut_factory("sim"))
    assert len(identity["fw_hash"]) == 64 and identity["machine_no"] == "1234567890123456"
    doc = report.document(sim_verdicts, identity, dut="sim", seed=0)
    paths = report.write_all(doc, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["overall"] == "PASS" and data["device"]["fw_hash"] == identity["fw_hash"]
    page = paths["html"].read_text()
    assert "<script" not in page and "http" not in page.split("<body>")[1]  # self-contained
    assert identity["fw_hash"] in page and "FC-LOCK-001" in page and "PASS" in page
    import xml.etree.ElementTree as ET
    root = ET.parse(paths["junit"]).getroot()
    assert sum(int(s.get("tests")) for s in root) == len(sim_verdicts)


def test_certificate_says_fail_or_incomplete():
    v = [runner.Verdict("FC-X-001", "t", "LINK", "r", "pass"), runner.Verdict("FC-X-002", "t", "LOCK", "r", "not tested")]
    assert report.summary(v)["overall"] == "INCOMPLETE"
    v.append(runner.Verdict("FC-X-003", "t", "LOCK", "r", "fail"))
    s = report.summary(v)
    assert s["overall"] == "FAIL" and s["area_verdicts"] == {"LINK": "PASS", "LOCK": "FAIL"}


def test_docs_catalogue_matches_the_case_files():
    text = (ROOT / "docs" / "CONFORMANCE.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(FC-[A-Z]+-\d{3})`", text))
    assert documented == {c.id for c in CASES} | {"FC-MODEL-001"}, "run: python -m conformance.catalogue"


def test_cli_list_and_run(tmp_path, capsys):
    assert cli.main(["list", "--select", "FC-LOCK-*"]) == 0
    out = capsys.readouterr().out
    assert "FC-LOCK-001" in out and "FC-ISSUE-001" not in out
    assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path), "--select", "FC-ONCE-*",
                     "--no-model-run"]) == 0
    assert (tmp_path / "certificate.html").exists()
    from conformance.mutants import MUTANTS_BY_NAME
    with MUTANTS_BY_NAME["executes-twice"].applied():
        assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path / "m"), "--select", "FC-ONCE-001",
                         "--no-model-run"]) == 1


def test_model_based_run_passes_the_firmware(tmp_path):
    found = stateful.model_run(dut.dut_factory("sim"), seed=0, examples=15, out_dir=tmp_path)
    assert found.verdict.verdict == "pass", found.verdict.detail


def test_model_based_run_catches_a_mutant_and_writes_a_replayable_scenario(tmp_path):
    from conformance.mutants import MUTANTS_BY_NAME
    with MUTANTS_BY_NAME["no-deadline-lock"].applied():
        found = stateful.model_run(dut.dut_factory("sim"), seed=3, examples=40, out_dir=tmp_path)
        assert found.verdict.verdict == "fail" and found.scenario is not None
        replay = runner.load_cases(found.scenario.parent)
        assert [runner.run_case(dut.dut_factory("sim"), c).verdict for c in replay] == ["fail"]
    assert [runner.run_case(dut.dut_factory("sim"), c).verdict for c in replay] == ["pass"]


def test_the_model_accepts_only_what_the_documents_allow():
    from conformance.dut import Profile
    from protocol import commands as C
    m = Model(Profile())
    issue = C.BY_NAME["ISSUE_INVOICE"]
    payload = issue.request.build(runner.invoice_fields([100]))
    assert m.expected(issue.code, 1, payload) == ["LOCK_NOT_INITIALIZED"]
    assert m.expected(issue.code, 0, payload) == ["LINK_RID_MISSING"]
    assert m.expected(0x7F, 1, b"") == ["LINK_UNKNOWN_COMMAND"]


@pytest.mark.micropython
def test_real_firmware_passes_the_whole_catalogue_under_micropython(tmp_path):
    """Every case against the .mpy firmware in a MicroPython subprocess (256 KiB heap): locks, warnings,
    exactly-once, recovery across power cycles and power cuts inside a request (hw_sim.mains counts the
    HAL steps the subprocess makes over its board bus), bad input.  Nothing is left untested."""
    verdicts = runner.run_cases(dut.dut_factory("mpy", workdir=tmp_path), CASES)
    not_tested = {v.id for v in verdicts if v.verdict == "not tested"}
    assert not not_tested
    bad = [(v.id, v.verdict, v.detail) for v in verdicts if v.verdict not in ("pass", "not tested")]
    assert not bad
