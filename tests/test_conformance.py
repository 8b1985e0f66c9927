"""The conformance suite itself (conformance/): the real firmware passes, the catalogue is complete and
documented, the reports render, the model-based run works and writes replayable scenarios."""

import json
import re
from pathlib import Path

import pytest

from conformance import cli, dut, report, runner, stateful
from conformance.model import Model
from testbed import duts

ROOT = Path(__file__).resolve().parent.parent
CASES = runner.load_cases()
# hang guards, far above a case's normal time (in process: well under a second; under MicroPython: up to
# a few seconds for a five-year back-fill on a quiet machine)
HANG_GUARD_SIM = 120
HANG_GUARD_MPY = 280


@pytest.fixture(scope="module")
def sim_verdicts():
    return runner.run_cases(dut.dut_factory("sim"), CASES)


class _Silent(duts.InProcessDut):
    """The firmware in process, on a link that loses every reply to one command (a dead line)."""
    silent_command = 0x20

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.timeouts: list = []

    def request(self, command, rid, payload, *, timeout=None):
        self.timeouts.append(timeout)
        return super().request(command, rid, payload, timeout=timeout)

    def _exchange(self, data, expect, timeout):
        frames = super()._exchange(data, expect, timeout)
        return [f for f in frames if f["command"] != self.silent_command]


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


@pytest.mark.timeout(HANG_GUARD_SIM)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_real_firmware_passes_every_case_in_process(case):
    v = runner.run_case(dut.dut_factory("sim"), case)
    assert (v.verdict, v.detail) == ("pass", "")


def test_the_whole_catalogue_in_process_passes_in_one_run(sim_verdicts):
    bad = [(v.id, v.verdict, v.detail) for v in sim_verdicts if v.verdict != "pass"]
    assert not bad
    assert len(sim_verdicts) == len(CASES)


def test_no_reply_within_the_time_limit_is_an_error_with_its_evidence_never_a_fail():
    v = runner.run_case(lambda: _Silent(), runner.select(CASES, ["FC-ISSUE-001"])[0])
    assert v.verdict == "error", (v.verdict, v.detail)
    first, *rest = v.detail.splitlines()
    assert "ISSUE_INVOICE" in first and "no reply within" in first and "not a verdict on the device" in first
    sent = [ln for ln in rest if ln.startswith("sent: a551")]
    assert sent and any(ln.startswith("waited: ") for ln in rest) and "received: nothing" in rest
    assert v.evidence[-1]["sent"] == sent[0][len("sent: "):] and v.evidence[-1]["note"].startswith("no reply after")
    assert report.summary([v])["overall"] == "ERROR"


def test_a_status_or_read_out_without_a_reply_is_an_error_too():
    class SilentStatus(_Silent):
        silent_command = 0x02
    v = runner.run_case(lambda: SilentStatus(), runner.select(CASES, ["FC-LOCK-001"])[0])
    assert v.verdict == "error" and "GET_STATUS" in v.detail.splitlines()[0]


def test_raw_bytes_without_a_reply_fail_only_if_the_device_still_answers():
    class Deaf(_Silent):  # raw frames are lost, then the line is dead
        silent_command = 0x02
    v = runner.run_case(lambda: Deaf(), runner.select(CASES, ["FC-LINK-002"])[0])
    assert v.verdict == "error" and "no reply" in v.detail
    from testbed.mutants import Mutant
    from fiscal_till.server import LinkServer
    orig = LinkServer.feed

    def feed(self, data):  # a receiver that drops whatever follows noise
        return orig(self, data if data[:1] == b"\xa5" else b"")
    with Mutant("t", "", lambda: [(LinkServer, "feed", feed)]).applied():
        v = runner.run_case(dut.dut_factory("sim"), runner.select(CASES, ["FC-LINK-002"])[0])
    assert v.verdict == "fail" and "reply frames" in v.detail


def test_time_limits_are_generous_by_default_and_scaled_by_one_option(monkeypatch):
    assert runner.Limits().reply >= 10 * 3  # ten times a five-year back-fill under MicroPython (~3 s)
    monkeypatch.delenv(runner.TIME_SCALE_ENV, raising=False)
    assert runner.limits_for() == runner.Limits()
    assert runner.limits_for(2.5).reply == 2.5 * runner.Limits().reply
    assert runner.limits_for(2.5).silence == 2.5 * runner.Limits().silence
    monkeypatch.setenv(runner.TIME_SCALE_ENV, "3")
    d = _Silent()
    runner.run_case(lambda: d, runner.select(CASES, ["FC-INFO-004"])[0])
    assert d.timeouts and set(d.timeouts) == {3 * runner.Limits().reply}
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(ValueError):
            runner.time_scale(bad)


@pytest.mark.parametrize("value", ["0", "-2", "slow"])
def test_a_bad_time_scale_is_one_sentence_and_exit_2(tmp_path, capsys, value):
    assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path / "r"), "--time-scale", value,
                     "--select", "FC-INFO-001", "--no-model-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "time scale" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_select_matching_no_case_exits_2_and_writes_no_certificate(tmp_path, capsys):
    assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path / "r"), "--select", "FC-NOPE-*"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FC-NOPE-*" in err and "matches no case" in err
    assert not (tmp_path / "r").exists()
    assert cli.main(["list", "--select", "FC-NOPE-*"]) == 2


def test_a_select_of_only_the_model_run_is_not_empty():
    args = cli.argparse.Namespace(select=["FC-MODEL-001"], cases=None, no_model_run=False)
    assert cli._selected(args) == []  # no scenario case, but the model-based run is selected
    args.no_model_run = True
    with pytest.raises(cli.UsageError):
        cli._selected(args)


def test_a_case_file_that_does_not_parse_is_one_sentence_and_exit_2(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("area: LINK\ncases:\n  - {id: FC-LINK-900, title: t}\n")
    assert cli.main(["list", "--cases", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err and "requirement" in err
    assert cli.main(["list", "--cases", str(tmp_path / "missing")]) == 2


def test_the_certificate_says_plainly_that_test_keys_and_non_fiscal_cards_were_used(tmp_path):
    identity = runner.device_identity(dut.dut_factory("sim"))
    assert identity["test_keys"] is True and identity["non_fiscal"] is True
    doc = report.document([runner.Verdict("FC-X-001", "t", "LINK", "r", "pass")], identity, dut="sim")
    paths = report.write_all(doc, tmp_path)
    page = paths["html"].read_text()
    body = page.split("<body>")[1]
    banner = body.split("<h1>")[0]  # above the title, not a footnote
    assert "class='banner'" in banner and "TEST keys" in banner and "NON-FISCAL cards" in banner
    assert "does not certify a device for fiscal use" in banner
    data = json.loads(paths["json"].read_text())
    assert data["test_run"]["test_keys"] and data["test_run"]["non_fiscal"]
    assert "TEST keys" in data["test_run"]["banner"]
    production = dict(identity, test_keys=False, non_fiscal=False)
    page = report.render_html(report.document([], production, dut="sim"))
    assert "class='banner'" not in page and "TEST RUN" not in page


def test_dut_backends_are_named_in_one_table_and_an_unknown_name_is_one_sentence(tmp_path, capsys):
    assert {"sim", "mpy", "simtill", "serial"} <= set(dut.backend_names())
    assert isinstance(dut.open_dut("sim"), duts.InProcessDut)
    with pytest.raises(dut.DutError, match=r"^there is no DUT backend 'simm'; the known ones are .*mpy.*sim"):
        dut.dut_factory("simm")
    assert cli.main(["run", "--dut", "simm", "--report", str(tmp_path / "r")]) == cli.EXIT["USAGE"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "simtill" in err and not (tmp_path / "r").exists()


def test_a_case_needing_a_missing_capability_is_not_tested_never_passed():
    class LinkOnly(duts.InProcessDut):
        capabilities = frozenset({"reset"})
    verdicts = runner.run_cases(lambda: LinkOnly(), runner.select(CASES, ["FC-LOCK-001", "FC-LINK-001",
                                                                          "FC-POWER-002"]))
    got = {v.id: v.verdict for v in verdicts}
    assert got == {"FC-LINK-001": "pass", "FC-LOCK-001": "not tested", "FC-POWER-002": "not tested"}


def test_a_run_does_not_stop_at_the_first_failure_and_reports_evidence():
    from testbed.mutants import MUTANTS_BY_NAME
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


def test_certificate_says_error_not_fail_when_a_case_could_not_be_judged_and_none_failed():
    v = [runner.Verdict("FC-X-001", "t", "LINK", "r", "pass"), runner.Verdict("FC-X-002", "t", "LOCK", "r", "error"),
         runner.Verdict("FC-X-003", "t", "LOCK", "r", "not tested")]
    s = report.summary(v)
    assert s["overall"] == "ERROR" and s["area_verdicts"] == {"LINK": "PASS", "LOCK": "ERROR"}
    v.append(runner.Verdict("FC-X-004", "t", "LINK", "r", "fail"))
    assert report.summary(v)["overall"] == "FAIL"


def test_a_run_that_could_not_judge_a_case_exits_4(tmp_path, monkeypatch):
    monkeypatch.setattr(duts, "InProcessDut", _Silent)
    monkeypatch.setattr(cli, "dut_factory", lambda spec, **kw: (lambda: _Silent()))
    assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path), "--select", "FC-ISSUE-001",
                     "--no-model-run"]) == cli.EXIT["ERROR"] == 4
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["summary"]["overall"] == "ERROR" and data["verdicts"][0]["verdict"] == "error"


def test_docs_catalogue_matches_the_case_files():
    text = (ROOT / "docs" / "CONFORMANCE.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(FC-[A-Z]+-\d{3})`", text))
    assert documented == {c.id for c in CASES} | {"FC-MODEL-001"}, "run: python -m conformance.catalogue"


def test_the_record_case_compares_every_field_of_every_record_type_with_the_model():
    from protocol import journal_audit
    from protocol import records as record_types
    case = runner.select(CASES, ["FC-JRNL-020"])[0]
    d = dut.dut_factory("sim")()
    sess = runner.Session(d, case)
    sess.run()
    records = journal_audit.audit_stream(sess.read_journal()).records
    assert {record_types.RECORDS[t][0] for _i, t, _b in records} == {name for name, _ in record_types.RECORDS.values()}
    state = sess.model.state
    assert not runner.record_problems(records, state)
    modelled = {name for name, _ in state.history} | {"INVOICE"}
    assert modelled == {name for name, _ in record_types.RECORDS.values()}
    # one field changed anywhere is found: here the last invoice's total
    *head, (idx, t, body) = [r for r in records if r[1] == record_types.REC_INVOICE]
    inv = record_types.InvoiceRecord.parse(body)
    inv.total += 1
    changed = [(i, tt, record_types.InvoiceRecord.build(inv) if i == idx else b) for i, tt, b in records]
    assert any("INVOICE #5" in p and "total" in p for p in runner.record_problems(changed, state))


def test_docs_state_the_verdicts_the_time_limits_and_the_exit_codes():
    text = (ROOT / "docs" / "CONFORMANCE.md").read_text(encoding="utf-8")
    lim = runner.Limits()
    assert "waits up to %g s for the reply" % lim.reply in text and "listens %g s" % lim.silence in text
    assert "--time-scale X" in text and runner.TIME_SCALE_ENV in text
    assert "up to %d minutes" % (runner.CLOCK_TICK // 60) in text
    for overall, code in cli.EXIT.items():
        assert re.search(r"^\| %d \| %s \|" % (code, overall if overall != "USAGE" else r"\(none\)"), text, re.M), overall
    assert "no reply within the time limit is an **error**, never a fail" in text


def test_cli_list_and_run(tmp_path, capsys):
    assert cli.main(["list", "--select", "FC-LOCK-*"]) == 0
    out = capsys.readouterr().out
    assert "FC-LOCK-001" in out and "FC-ISSUE-001" not in out
    assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path), "--select", "FC-ONCE-*",
                     "--no-model-run"]) == 0
    assert (tmp_path / "certificate.html").exists()
    from testbed.mutants import MUTANTS_BY_NAME
    with MUTANTS_BY_NAME["executes-twice"].applied():
        assert cli.main(["run", "--dut", "sim", "--report", str(tmp_path / "m"), "--select", "FC-ONCE-001",
                         "--no-model-run"]) == 1


def test_model_based_run_passes_the_firmware(tmp_path):
    found = stateful.model_run(dut.dut_factory("sim"), seed=0, examples=15, out_dir=tmp_path)
    assert found.verdict.verdict == "pass", found.verdict.detail


def test_model_based_run_catches_a_mutant_and_writes_a_replayable_scenario(tmp_path):
    from testbed.mutants import MUTANTS_BY_NAME
    with MUTANTS_BY_NAME["no-deadline-lock"].applied():
        found = stateful.model_run(dut.dut_factory("sim"), seed=3, examples=40, out_dir=tmp_path)
        assert found.verdict.verdict == "fail" and found.scenario is not None
        replay = runner.load_cases(found.scenario.parent)
        assert [runner.run_case(dut.dut_factory("sim"), c).verdict for c in replay] == ["fail"]
    assert [runner.run_case(dut.dut_factory("sim"), c).verdict for c in replay] == ["pass"]


def test_the_model_accepts_only_what_the_documents_allow():
    from conformance.dut import Profile
    from protocol import commands
    m = Model(Profile())
    issue = commands.BY_NAME["ISSUE_INVOICE"]
    payload = issue.request.build(runner.invoice_fields([100]))
    assert m.expected(issue.code, 1, payload) == ["LOCK_NOT_INITIALIZED"]
    assert m.expected(issue.code, 0, payload) == ["LINK_RID_MISSING"]
    assert m.expected(0x7F, 1, b"") == ["LINK_UNKNOWN_COMMAND"]


@pytest.fixture(scope="module")
def mpy_dut(tmp_path_factory):
    """A device maker for the .mpy firmware under MicroPython; the image is built once, here, and every
    case boots its own fresh device on it (as the runner does)."""
    from hw_sim.sim_image import firmware_image_dir
    firmware_image_dir()
    make = dut.dut_factory("mpy", workdir=tmp_path_factory.mktemp("mpy"))
    probe = make()
    caps = set(probe.capabilities)
    probe.close()
    return make, caps


@pytest.mark.micropython
@pytest.mark.timeout(HANG_GUARD_MPY)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_real_firmware_passes_the_whole_catalogue_under_micropython(mpy_dut, case):
    """Every case against the .mpy firmware in a MicroPython subprocess (256 KiB heap), one test per case:
    locks, warnings, exactly-once, recovery across power cycles and power cuts inside a request
    (hw_sim.mains counts the HAL steps the subprocess makes over its board bus), bad input.  Nothing is
    left untested but a power cut inside the boot itself (before the link is served), which needs the
    in-process device's direct hold on the flash."""
    make, caps = mpy_dut
    missing = case.required() - caps
    v = runner.run_case(make, case)
    if missing:
        assert missing == {"boot_power_loss"}, case.id
        assert v.verdict == "not tested"
    else:
        assert (v.verdict, v.detail) == ("pass", "")
