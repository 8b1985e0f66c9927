"""The model-based run: hypothesis sends random valid and invalid command sequences - with time travel,
card swaps and power cuts where the device allows - to the device and to the reference model in lockstep.

Every action is a scenario step (conformance.runner), so a failure, once hypothesis has shrunk it, is
written out as a replayable case file:

    found = model_run(dut_factory("sim"), seed=7, examples=30, out_dir=Path("report"))
    found.verdict  -> Verdict (FC-MODEL-001); found.scenario -> the YAML file of the shrunk failure
"""

from __future__ import annotations

import time as _time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from protocol import commands
from protocol.calendar import hour_of

from .model import add_days
from .runner import Case, CaseFailed, Session, Verdict

MODEL_CASE = Case(id="FC-MODEL-001", title="random command sequences agree with the reference model",
                  area="MODEL", requirement="domain §7.6 (conformance cases as data); docs/CONFORMANCE.md "
                  "(model-based run)", steps=[], given="ready", needs=["clock", "bureau", "power"],
                  rules=["R-INVOICE-NUMBERING", "R-LOCK-SINGLE-LIMIT", "R-LOCK-CUMULATIVE", "R-INVOICE-RETURN",
                         "R-INVOICE-VOID", "R-INPUT-CHECKED", "R-DAILY-EVERY-DAY", "R-DECLARE-PERIOD",
                         "R-CLEAR-UNLOCK", "R-LOCK-NO-ROLL", "R-LOCK-DEADLINE", "R-CLOCK-FORWARD", "R-REPORTS",
                         "R-INSPECTION", "R-STATUS-LEFT", "R-EXACTLY-ONCE", "R-POWER-SAFE"])

amounts = st.lists(st.sampled_from([1, 50, 999, 10_000, 250_000, 1_000_000, 1_000_001, 0]), min_size=0, max_size=3)


class TillMachine(RuleBasedStateMachine):
    """Steps go through a Session, which checks each reply and GET_STATUS against the model.

    A run binds its DUT factory and its step record by subclassing (:func:`make_machine`): hypothesis
    builds a fresh machine per example, so the shrunk failure's steps are the last record.
    """

    make_dut = None  # set by make_machine
    record: list = []

    def __init__(self):
        super().__init__()
        self.dut = type(self).make_dut()
        self.sess = Session(self.dut, Case(**{**vars(MODEL_CASE), "steps": []}))
        self.steps: list[dict] = []
        type(self).record.clear()
        type(self).record.append(self.steps)

    def do(self, step: dict) -> None:
        if "send" in step and "expect" not in step and step["send"] != "INITIALIZE":
            step["expect"] = {"status": None}  # the model says what is right
        self.steps.append(step)
        self.sess.step(step)

    def teardown(self):
        self.dut.close()

    @initialize()
    def ready(self):
        self.sess.set_clock(20260105, 90000)
        self.steps.append({"set_clock": "20260105 090000"})
        for s in ({"send": "INITIALIZE", "fields": {"date": 20260105, "time": 90000}},
                  {"bureau": "sell_roll", "start": 1, "end": 60}, {"send": "LOAD_ROLL"},
                  {"set_clock": "20260105 100000"}):
            self.do(s)

    @property
    def m(self):
        return self.sess.model.state

    @rule(a=amounts, item=st.sampled_from([1, 1, 2, 5]), kind=st.sampled_from([1, 1, 1, 2, 3]),
          pick=st.integers(0, 1000))
    def issue(self, a, item, kind, pick):
        if kind == 3:
            self.do({"send": "ISSUE_INVOICE", "fields": {"kind": 3, "ref_number": 0, "cashier": "c",
                                                         "payer": "", "total": 0, "lines": []}})
            return
        ref = 0
        if kind == 2:
            normals = [i["number"] for i in self.m.invoices if i["kind"] == 1]
            ref = normals[pick % len(normals)] if normals else 7
        self.do({"send": "ISSUE_INVOICE", "invoice": a, "item": item, "kind": kind, "ref": ref})

    @rule()
    def daily_close(self):
        self.do({"send": "DAILY_CLOSE"})

    @rule(back=st.integers(0, 3), zero=st.booleans())
    def declare(self, back, zero):
        end = 0 if zero or not self.m.closed else self.m.closed
        if end and back:
            end = add_days(end, -back)
        self.do({"send": "DECLARE", "fields": {"end": end}})

    @rule(days=st.integers(10, 60))
    def bureau_clears(self, days):
        if any(r.status == "signed" for r in self.m.user_decls) and self.m.user_slot == "user":
            self.do({"bureau": "clear", "deadline": add_days(self.m.decl.end if self.m.decl else self.m.date,
                                                              days)})

    @rule()
    def clear_unlock(self):
        self.do({"send": "CLEAR_UNLOCK"})

    @rule(size=st.integers(1, 40))
    def sell_and_load(self, size):
        if self.m.user_slot == "user" and len(self.m.user_rolls) < 2:  # the user card holds 16 rolls
            top = max([r.end for r in self.m.user_rolls] + [self.m.roll.end if self.m.roll else 0])
            self.do({"bureau": "sell_roll", "start": top + 1, "end": top + size})
        self.do({"send": "LOAD_ROLL"})

    @rule(days=st.integers(0, 40), hours=st.integers(0, 6))
    def time_travel(self, days, hours):
        if hour_of(self.m.time) + hours >= 23:
            hours = 0
        self.do({"advance": {"days": days, "hours": hours}})

    @rule()
    def power_cycle(self):
        self.do({"power_cycle": True})

    @rule(at=st.integers(0, 8), after=st.booleans(), a=amounts)
    def power_cut_invoice(self, at, after, a):
        if "power_loss" not in self.dut.capabilities or not a:
            return
        self.do({"power_cut": {"at": at, "after": after}})
        self.do({"send": "ISSUE_INVOICE", "invoice": a, "expect": {"status": None}})
        self.do({"power_cycle": True})
        self.do({"send": "ISSUE_INVOICE", "invoice": a, "rid": "same", "expect": {"status": None}})

    @rule()
    def retry_last(self):
        lr = self.m.last_req
        if lr is None:
            return
        name = commands.BY_CODE[lr["cmd"]].name
        self.do({"send": name, "payload": lr["payload"].hex(), "rid": lr["rid"], "expect": {"status": None}})

    @rule(slot_content=st.sampled_from(["management", "user"]))
    def swap_user_card(self, slot_content):
        if "cards" in self.dut.capabilities:
            self.do({"card": {"slot": "user", "insert": slot_content}})

    @rule(days=st.integers(-1, 3))
    def set_time(self, days):
        self.do({"send": "SET_TIME", "fields": {"date": add_days(self.m.date, days), "time": 120000},
                 "expect": {"status": None}})

    @rule(kind=st.sampled_from([1, 2, 3, 4]), back=st.integers(0, 10), span=st.integers(0, 5))
    def report(self, kind, back, span):
        start = add_days(self.m.date, -back)
        self.do({"send": "REPORT", "fields": {"kind": kind, "start": start, "end": add_days(start, span)},
                 "expect": {"status": None}})

    @rule(n=st.integers(0, 70))
    def document(self, n):
        self.do({"send": "GET_DOCUMENT", "fields": {"number": n}, "expect": {"status": None}})

    @rule()
    def inspect(self):
        self.do({"send": "INSPECT", "expect": {"status": None}})

    @invariant()
    def status_agrees(self):
        if self.sess.model is not None and self.steps:
            self.do({"expect_status_fields": {}})  # a step, so the written scenario replays it


def make_machine(make_dut, record: list):
    """A TillMachine class that opens DUTs with ``make_dut`` and writes each example's steps to ``record``."""
    return type("TillMachine", (TillMachine,), {"make_dut": staticmethod(make_dut), "record": record})


def _yaml_step(s: dict) -> dict:
    s = dict(s)
    if s.get("expect") == {"status": None}:
        s["expect"] = {"status": None}
    return s


class Found:
    def __init__(self, verdict: Verdict, scenario: Path | None) -> None:
        self.verdict = verdict
        self.scenario = scenario


def model_run(make_dut, *, seed: int = 0, examples: int = 25, steps: int = 30, out_dir: Path | None = None,
              shrink: bool = True) -> Found:
    record: list = []
    machine = make_machine(make_dut, record)
    t0 = _time.monotonic()
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    cfg = settings(max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=False,
                   database=None, phases=phases, suppress_health_check=list(HealthCheck), print_blob=False,
                   report_multiple_bugs=False)
    v = Verdict(MODEL_CASE.id, MODEL_CASE.title, MODEL_CASE.area, MODEL_CASE.requirement, "pass",
                detail="%d sequences of up to %d steps, seed %d" % (examples, steps, seed))
    scenario = None
    try:
        _run(machine, cfg, seed)
    except CaseFailed as e:
        v.verdict, v.detail = "fail", "shrunk to %d steps: %s" % (len(record[0]) if record else 0, e)
    except Exception as e:  # noqa: BLE001 - a run reports, it does not stop
        v.verdict, v.detail = "error", "%s: %s" % (type(e).__name__, e)
    if v.verdict != "pass" and record and out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        scenario = out_dir / ("found-seed%d.yaml" % seed)
        doc = {"area": "MODEL", "cases": [{
            "id": "FC-FOUND-%d" % seed, "title": "shrunk failure of the model-based run (seed %d)" % seed,
            "requirement": "as FC-MODEL-001: " + v.detail.splitlines()[0][:200],
            "rules": list(MODEL_CASE.rules), "given": "fresh",
            "steps": [_yaml_step(s) for s in record[0]]}]}
        scenario.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    v.seconds = round(_time.monotonic() - t0, 3)
    return Found(v, scenario)


def _run(machine, cfg, seed: int) -> None:
    import hypothesis.stateful as hs
    from hypothesis import seed as hseed

    def factory():
        return machine()
    hseed(seed)(factory)  # @seed on the factory: run_state_machine_as_test copies it (reproducible runs)
    hs.run_state_machine_as_test(factory, settings=cfg)
