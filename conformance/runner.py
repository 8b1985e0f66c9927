"""Running scenario cases (conformance/cases/*.yaml) against a device, with the reference model in lockstep.

A case file:

    area: ISSUE                      # the catalogue area (conformance.catalogue.AREAS)
    cases:
      - id: FC-ISSUE-001
        title: numbers follow the roll
        requirement: "seed 二(七); domain §3.3; PROTOCOL.md 0x20 ISSUE_INVOICE"
        rules: [R-INVOICE-NUMBERING]   # the rules it checks (protocol/rules.py IDs; at least one)
        given: ready                 # fresh | initialized | ready (initialized, roll 1-100 loaded)
        needs: [clock]               # capabilities beyond those the steps imply
        steps:
          - send: ISSUE_INVOICE
            invoice: [1000, 250]     # line amounts (item 1 unless `item:`), kind/ref optional
            expect: {status: OK, reply: {number: 1}}
            save: first

Steps (one main key each):
    set_clock: "20260105 100000"           advance: {days: 1}
    send: NAME  (fields | invoice | payload hex | command code) [rid: n | same | 0] [expect] [save]
          [silence: s]  the host allows only s seconds without a reply or a keep-alive of this request
    raw: "a551..." [expect_frames: n] [expect_status: NAME]
    bureau: sell_roll {start, end, code} | clear {deadline, limits...} | mark_cleared
    card: {slot: fiscal|user, remove: true} | {slot, insert: user|management|fiscal|foreign_fiscal|...}
          | {slot, pull_after: n, executed: bool}
    power_cycle: true                      power_cut: {at: n, after: bool}  (the next send gets no reply)
    flash: {truncate: 300 | flip_init | erase_last_sector | format_cut: n, tear}  (damage, then boot)
    expect_status_fields: {locks: [..], warnings_include: [..], warnings_exclude: [..], <field>: value}
    audit_journal: {types: {INVOICE: 3}, events: {CLOCK_SET: 1}, event_args: {CLOCK_SET: [20260105]}}
    repeat: {times: n, steps: [...]}

Every send is also checked against the reference model (conformance.model) unless the case says
`model: false`, and every mutating request is followed by a GET_STATUS the model checks too.

Verdicts (docs/CONFORMANCE.md §3): a request that gets no reply within the time limit is an *error*
(a link or device fault: the run could not judge the case), never a *fail*; its detail and evidence say
what was sent, how long the suite waited and what arrived.  Time limits are `Limits` scaled by one
factor: `--time-scale` on the command line, FISCAL_CONFORMANCE_TIME_SCALE in the environment.
"""

from __future__ import annotations

import datetime as _dt
import os
import time as _time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from protocol import commands
from protocol import errors
from protocol import journal_audit
from protocol import records as record_types
from protocol import rules as rule_catalogue
from protocol import status as status_table
from protocol.calendar import seconds_of_day

from .dut import ControlLimits, DutError, PowerCut
from .model import Model, parse_reply, plain

CASES_DIR = Path(__file__).resolve().parent / "cases"
AREAS = {
    "LINK": "link framing and resynchronisation", "ONCE": "exactly-once", "INFO": "info and status",
    "INIT": "initialization", "ROLL": "rolls", "ISSUE": "issuing and limits", "LOCK": "lock and warnings",
    "CLOSE": "daily close and back-fill", "DECL": "declaration", "CLEAR": "clear-unlock", "CLOCK": "clock",
    "INSP": "inspection", "JRNL": "journal read-out and verification", "POWER": "power loss",
    "INPUT": "bad input", "SEC": "security", "MODEL": "model-based run",
    "CAL": "calendar edges (month and year ends, leap days, long power-off)",
}
VERDICTS = ("pass", "fail", "not tested", "error")
START = (20260105, 90000)
STEP_NEEDS = {"set_clock": "clock", "advance": "clock", "power_cycle": "power", "power_cut": "power_loss",
              "card": "cards", "bureau": "bureau", "flash": "flash"}


class CaseFailed(Exception):
    pass


class CaseError(Exception):
    """The case itself is malformed (a suite bug, not a device fault)."""


class CatalogueError(Exception):
    """A case file cannot be read (one sentence, for the command line)."""


class NoReply(Exception):
    """No reply within the time limit: a link or device fault, so the verdict is *error*, never *fail*."""


# ---------------------------------------------------------------------------------------------- time limits
TIME_SCALE_ENV = "FISCAL_CONFORMANCE_TIME_SCALE"


@dataclass(frozen=True)
class Limits:
    """How long the suite waits, in seconds, before any scaling.  Generous by default: a good device
    on a loaded machine answers well inside them (a five-year back-fill under MicroPython takes a few
    seconds); a lab with a slow board or link raises them all with one factor (`scaled`)."""
    reply: float = 60.0  # for the reply to one request
    silence: float = 1.0  # listening for frames that must NOT come (a corrupt frame is not answered)
    scale: float = 1.0

    def scaled(self, factor: float) -> "Limits":
        return Limits(self.reply * factor, self.silence * factor, self.scale * factor)


def time_scale(value: float | str | None = None) -> float:
    """The time-limit factor: `value` if given, else FISCAL_CONFORMANCE_TIME_SCALE, else 1.  ValueError
    if it is not a positive number."""
    raw = os.environ.get(TIME_SCALE_ENV, "1") if value is None else value
    try:
        factor = float(raw)
    except (TypeError, ValueError):
        raise ValueError("the time scale must be a positive number, not %r" % (raw,)) from None
    if not factor > 0 or factor == float("inf"):
        raise ValueError("the time scale must be a positive number, not %r" % (raw,))
    return factor


def limits_for(scale: float | str | None = None) -> Limits:
    """The default limits scaled by `time_scale(scale)`."""
    return Limits().scaled(time_scale(scale))


@dataclass
class Case:
    id: str
    title: str
    area: str
    requirement: str
    steps: list
    given: str = "fresh"
    needs: list = field(default_factory=list)
    model: bool = True
    provisional: str = ""  # non-empty: a case awaiting a ruling; reported, not counted in the verdict
    source: str = ""
    rules: list = field(default_factory=list)  # IDs of protocol.rules.RULES the case checks

    def required(self) -> set[str]:
        need = set(self.needs)
        if self.given != "none":
            need.add("reset")
        if self.given in ("fresh", "initialized", "ready"):
            need.update({"clock", "bureau"} if self.given == "ready" else {"clock"})
        _walk_needs(self.steps, need)
        return need


def _walk_needs(steps, need):
    for st in steps:
        for k, cap in STEP_NEEDS.items():
            if k in st:
                need.add(cap)
        if "repeat" in st:
            _walk_needs(st["repeat"]["steps"], need)


@dataclass
class Verdict:
    id: str
    title: str
    area: str
    requirement: str
    verdict: str
    detail: str = ""
    evidence: list = field(default_factory=list)
    seconds: float = 0.0
    provisional: str = ""

    def as_dict(self) -> dict:
        return dict(vars(self))


# ---------------------------------------------------------------------------------------------- catalogue
def load_cases(folder: Path | str = CASES_DIR) -> list[Case]:
    """The cases of every *.yaml file in `folder`, grouped by area (in the order the areas first
    appear; several files may add to one area).  CatalogueError if a file cannot be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CatalogueError("%s is not a folder of case files" % folder)
    out: list[Case] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            area = doc["area"]
            for raw in doc["cases"]:
                out.append(Case(id=raw["id"], title=raw["title"], area=area, requirement=raw["requirement"],
                                steps=raw.get("steps", []), given=raw.get("given", "fresh"),
                                needs=list(raw.get("needs", [])), model=raw.get("model", True),
                                provisional=raw.get("provisional", ""), source=path.name,
                                rules=_case_rules(raw)))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
            if isinstance(e, KeyError):
                why = "missing key %s" % e
            else:
                why = (str(e).splitlines() or [type(e).__name__])[0]
            raise CatalogueError("%s is not a valid case file (%s)" % (path, why)) from None
    order: dict[str, int] = {}
    for c in out:
        order.setdefault(c.area, len(order))
    return sorted(out, key=lambda c: order[c.area])  # stable: file order within an area


def _case_rules(raw: dict) -> list[str]:
    """The case's `rules:` list: one or more IDs of the rules catalogue (protocol/rules.py).  KeyError
    when it is missing, ValueError when it is empty or names an unknown rule."""
    ids = raw["rules"]
    if not isinstance(ids, list) or not ids:
        raise ValueError("case %s: rules must list at least one rule ID" % raw["id"])
    unknown = [r for r in ids if r not in rule_catalogue.BY_ID]
    if unknown:
        raise ValueError("case %s names unknown rule %s (see protocol/rules.py)"
                         % (raw["id"], ", ".join(map(str, unknown))))
    return list(ids)


def select(cases: list[Case], patterns: list[str] | None) -> list[Case]:
    import fnmatch
    if not patterns:
        return cases
    return [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def invoice_fields(amounts, item=1, kind=1, ref=0) -> dict:
    lines = [dict(tax_item=item, quantity=1000, unit_price=a, amount=a, name="item %d" % i)
             for i, a in enumerate(amounts)]
    return dict(kind=kind, ref_number=ref, cashier="李娜", payer="个人", total=sum(amounts), lines=lines)


def _when(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, 90000
    parts = str(v).split()
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 90000


GIVEN = {
    "fresh": [],
    "initialized": [{"send": "INITIALIZE", "fields": {"date": 20260105, "time": 90000}}],
    "ready": [{"send": "INITIALIZE", "fields": {"date": 20260105, "time": 90000}},
              {"bureau": "sell_roll", "start": 1, "end": 100},
              {"send": "LOAD_ROLL"},
              {"set_clock": "20260105 100000"}],
}


# ---------------------------------------------------------------------------------------------- a session
class Session:
    """One case on one device, with the model in lockstep."""

    def __init__(self, dut, case: Case, *, use_model: bool = True, rid_base: int = 1000,
                 limits: Limits | None = None) -> None:
        self.dut = dut
        self.case = case
        self.limits = limits or limits_for()
        self.model = Model(dut.profile) if (use_model and case.model) else None
        self.rid = max(rid_base, getattr(dut, "rid_floor", 0))  # ids strictly increase per till
        self.last_rid = None
        self.saved: dict = {}
        self.cut_pending = False
        self.log: list[str] = []

    def fail(self, msg: str):
        raise CaseFailed(msg)

    def run(self) -> None:
        if self.case.given in GIVEN and "clock" in self.dut.capabilities:
            self.set_clock(*START)
        for st in GIVEN.get(self.case.given, []):
            self.step(st)
        for st in self.case.steps:
            self.step(st)

    # ---- steps ---------------------------------------------------------------------------------------
    def step(self, st: dict) -> None:
        if "repeat" in st:
            for _ in range(st["repeat"]["times"]):
                for s in st["repeat"]["steps"]:
                    self.step(s)
        elif "set_clock" in st:
            self.set_clock(*_when(st["set_clock"]))
        elif "advance" in st:
            self.dut.advance(**st["advance"])
            if self.model:
                self.model.advance(_dt.timedelta(**st["advance"]))
        elif "send" in st:
            self.send(st)
        elif "raw" in st:
            self.raw(st)
        elif "bureau" in st:
            self.bureau(st)
        elif "card" in st:
            self.card(st["card"])
        elif "power_cycle" in st:
            self.dut.power_cycle()
            self.cut_pending = False
            if self.model:
                self.model.power_cycle()
                self.check_status()
        elif "power_cut" in st:
            pc = st["power_cut"]
            self.dut.cut_power_at(pc.get("at", 0), pc.get("after", False))
            self.cut_pending = True
        elif "flash" in st:  # fiscal-memory damage, then a boot (Dut.damage_flash)
            self.dut.damage_flash(st["flash"])
            self.cut_pending = False
        elif "expect_status_fields" in st:
            self.expect_status(st["expect_status_fields"])
        elif "audit_journal" in st:
            self.audit(st["audit_journal"] or {})
        elif "note" in st:
            pass
        else:
            raise CaseError("unknown step %r" % (st,))

    def set_clock(self, date: int, time: int) -> None:
        self.dut.set_clock(date, time)
        if self.model:
            self.model.set_clock(date, time)

    def _value(self, v):
        if isinstance(v, str) and v.startswith("$"):
            name, _, path = v[1:].partition(".")
            obj = self.saved[name]
            for part in path.split(".") if path else []:
                obj = obj[part]
            return obj
        if isinstance(v, dict):
            return {k: self._value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self._value(x) for x in v]
        return v

    def build(self, st: dict) -> tuple[int, bytes, str]:
        name = st["send"]
        cmd = commands.BY_NAME.get(name)
        code = st.get("command", cmd.code if cmd else None)
        if code is None:
            raise CaseError("unknown command %r" % name)
        if "payload" in st:
            return code, bytes.fromhex(st["payload"]), name
        if "invoice" in st:
            fields = invoice_fields(self._value(st["invoice"]), st.get("item", 1), st.get("kind", 1),
                                    self._value(st.get("ref", 0)))
            fields.update(self._value(st.get("fields", {})))
        else:
            fields = self._value(st.get("fields", {}))
        return code, cmd.request.build(fields), name

    def send(self, st: dict) -> dict | None:
        code, payload, name = self.build(st)
        rid = st.get("rid")
        if rid == "same":
            rid = self.last_rid
        elif rid is None:
            self.rid += 1
            rid = self.rid
        self.rid = max(self.rid, rid or 0)  # the next fresh id is above any the case chose
        self.last_rid = rid
        cut = self.cut_pending
        try:
            silence = st.get("silence")  # the longest silence allowed while busy (keep-alives restart it)
            if silence is None:
                reply = self.request(code, rid, payload, name, cut=cut)
            else:
                reply = self.dut.request(code, rid, payload, timeout=silence * self.limits.scale)
                if reply is None and not cut:  # a dead link (error) or a device silent while busy (fail)?
                    self.rid += 1
                    self.request(0x02, self.rid, b"", "GET_STATUS after a silence")
                    self.fail("%s (rid %d): silent for more than %g s while busy, no keep-alive" % (
                        name or _command_name(code), rid, silence))
        except PowerCut:
            reply = None
            if not cut:
                self.fail("%s: the device went off without a scheduled power cut" % name)
        self.cut_pending = False
        exp = st.get("expect", {})
        if self.model:
            problems = self.model.request(code, rid, payload, reply, cut=cut)
            if problems:
                self.fail("reference model: " + "; ".join(problems))
        if reply is None:
            return None
        want = exp.get("status", "OK" if not cut else None)
        if want is not None:
            allowed = [want] if isinstance(want, str) else list(want)
            codes = [errors.BY_NAME[n].code for n in allowed]
            if reply["status"] not in codes:
                self.fail("%s (rid %d): status %s, expected %s" % (name, rid, errors.describe(reply["status"]),
                                                                   " or ".join(allowed)))
        parsed = parse_reply(code, bytes(reply["payload"])) if reply["status"] == 0 and code in commands.BY_CODE else {}
        for path, value in (exp.get("reply") or {}).items():
            got = parsed
            for part in path.split("."):
                got = got[int(part)] if isinstance(got, list) else got.get(part)
            value = self._value(value)
            if isinstance(value, str) and isinstance(got, bytes):
                got = got.hex()
            if got != value:
                self.fail("%s: reply %s = %r, expected %r" % (name, path, got, value))
        if "same_reply_as" in exp:
            before = self.saved["_raw_" + exp["same_reply_as"]]
            if bytes(reply["payload"]) != before:
                self.fail("%s: the repeated request's reply differs from the first" % name)
        if "save" in st:
            self.saved[st["save"]] = parsed
            self.saved["_raw_" + st["save"]] = bytes(reply["payload"])
        if code in commands.BY_CODE and commands.BY_CODE[code].mutating and self.model:
            self.check_status()
        return reply

    def request(self, code: int, rid: int, payload: bytes, name: str = "", *, cut: bool = False,
                timeout: float | None = None) -> dict | None:
        """One request within the reply limit.  No reply (and no power cut scheduled): NoReply, with
        what was sent, how long the suite waited and what arrived."""
        t0 = _time.monotonic()
        limit = self.limits.reply if timeout is None else timeout
        reply = self.dut.request(code, rid, payload, timeout=limit)
        if reply is None and not cut:
            waited = _time.monotonic() - t0
            ev = self.dut.evidence[-1] if self.dut.evidence else None
            got = ev.received if ev is not None else []
            if ev is not None:
                ev.note = "no reply after %.1f s" % waited
            raise NoReply("%s (rid %d): no reply within %.1f s (limit %.0f s x time scale %g); a link or "
                          "device fault, not a verdict on the device\nsent: %s\nwaited: %.2f s\nreceived: %s" % (
                              name or _command_name(code), rid, limit, Limits().reply,
                              self.limits.scale, ev.sent if ev is not None else "?", waited,
                              "nothing" if not got else "%d frame(s) that are not its reply: %s" % (
                                  len(got), " ".join(got))))
        return reply

    def raw(self, st: dict) -> None:
        data = bytes.fromhex(st["raw"].replace(" ", ""))
        want = st.get("expect_frames", 1)
        wait = self.limits.silence if want == 0 else self.limits.reply
        if "timeout" in st:
            wait = st["timeout"] * self.limits.scale
        frames = self.dut.exchange(data, expect=max(want, 1), timeout=wait)
        if want and not frames:  # silence: a dead link (error) or a frame the device ignored (fail)?
            self.rid += 1
            self.request(0x02, self.rid, b"", "GET_STATUS after raw bytes that got no reply")
        if len(frames) != want:
            self.fail("raw bytes: %d reply frames, expected %d" % (len(frames), want))
        for f, name in zip(frames, st.get("expect_status", [])):
            if f["status"] != errors.BY_NAME[name].code:
                self.fail("raw bytes: status %s, expected %s" % (errors.describe(f["status"]), name))
        if st.get("check_status") and self.model:
            self.check_status()

    def bureau(self, st: dict) -> None:
        action = st["bureau"]
        p = self.dut.profile
        if action == "sell_roll":  # genuine: false: a roll made for another fiscal card (its MAC fails)
            code = st.get("code", p.roll_code)
            genuine = st.get("genuine", True)
            self.dut.bureau().sell_roll(code, st["start"], st["end"], genuine=genuine)
            if self.model:
                self.model.sell_roll(code, st["start"], st["end"], genuine)
        elif action == "clear":
            s = self.dut.bureau()
            pending = s.verify_pending()
            if len(pending) != 1:
                self.fail("bureau: %d declarations pending on the user card, expected 1" % len(pending))
            recno, report = pending[0]
            if not report.ok:
                self.fail("bureau: the declaration does not verify: %s" % (report.problems,))
            limits = ControlLimits(st["deadline"], st.get("single_limit", p.single_limit),
                                   st.get("cumulative_limit", p.cumulative_limit),
                                   st.get("return_limit", p.return_limit))
            s.clear(recno, report, limits)
            if self.model:
                self.model.bureau_clear(tuple(limits))
        elif action == "rewrite_clear":  # control data for the last declaration again; forgery n: MAC2 damaged
            limits = ControlLimits(st["deadline"], p.single_limit, p.cumulative_limit, p.return_limit)
            forgery = st.get("forgery", 0)
            self.dut.bureau().rewrite_clear(limits, forgery)
            if self.model:
                self.model.bureau_rewrite_clear(tuple(limits), forgery)
        elif action == "mark_cleared":
            self.dut.bureau().mark_cleared()
            if self.model:
                self.model.bureau_mark_cleared()
        elif action == "expect_pending":
            n = len(self.dut.bureau().verify_pending())
            if n != st.get("count", 1):
                self.fail("bureau: %d pending declarations on the user card, expected %d" % (n, st.get("count", 1)))
        else:
            raise CaseError("unknown bureau action %r" % action)

    def card(self, st: dict) -> None:
        slot = st["slot"]
        if st.get("remove"):
            self.dut.card_remove(slot)
            if self.model:
                self.model.card(slot, None)
        elif "insert" in st:
            self.dut.card_insert(slot, st["insert"])
            if self.model:
                self.model.card(slot, st["insert"])
        elif "pull_after" in st:
            self.dut.card_pull_after(slot, st["pull_after"], st.get("executed", False))
            if self.model:
                self.model.pull_after(slot, st.get("executed", False))
        else:
            raise CaseError("unknown card step %r" % (st,))

    def get_status(self) -> dict:
        self.rid += 1
        f = self.request(0x02, self.rid, b"", "GET_STATUS")
        if f["status"] != 0:
            self.fail("GET_STATUS refused: %s" % errors.describe(f["status"]))
        return plain(commands.StatusReply.parse(bytes(f["payload"])))

    def check_status(self) -> dict:
        st = self.get_status()
        if self.model:
            problems = self.model.status(st)
            if problems:
                self.fail("reference model: " + "; ".join(problems))
        return st

    def expect_status(self, want: dict) -> None:
        st = self.check_status() if self.model else self.get_status()
        locks = status_table.mask_names(st["lock_reasons"], status_table.LOCK_REASONS)
        warns = status_table.mask_names(st["warnings"], status_table.WARNINGS)
        for k, v in want.items():
            v = self._value(v)
            if k == "locks":
                if sorted(locks) != sorted(v):
                    self.fail("locks %s, expected %s" % (locks, v))
            elif k == "locks_include":
                if not set(v) <= set(locks):
                    self.fail("locks %s, expected to include %s" % (locks, v))
            elif k == "locks_exclude":
                if set(v) & set(locks):
                    self.fail("locks %s, expected none of %s" % (locks, v))
            elif k == "warnings_include":
                if not set(v) <= set(warns):
                    self.fail("warnings %s, expected to include %s" % (warns, v))
            elif k == "warnings_exclude":
                if set(v) & set(warns):
                    self.fail("warnings %s, expected none of %s" % (warns, v))
            elif st.get(k) != v:
                self.fail("status %s = %r, expected %r" % (k, st.get(k), v))

    def read_journal(self) -> bytes:
        data = bytearray()
        total = None
        while total is None or len(data) < total:
            self.rid += 1
            f = self.request(0x50, self.rid, commands.ReadJournalRequest.build(dict(offset=len(data),
                                                                            length=commands.READ_JOURNAL_MAX)),
                             "READ_JOURNAL")
            if f["status"] != 0:
                self.fail("READ_JOURNAL at %d: %s" % (len(data), errors.describe(f["status"])))
            r = commands.ReadJournalReply.parse(bytes(f["payload"]))
            total = r.total
            if not r.data and len(data) < total:
                self.fail("READ_JOURNAL at %d returned no data before the end (%d)" % (len(data), total))
            data += r.data
        return bytes(data)

    def audit(self, want: dict) -> None:
        stream = self.read_journal()
        rep = journal_audit.audit_stream(stream)
        if rep.header is not None and rep.header.next_index == 0 and not rep.records:
            # an empty journal: audit_stream has no record to start the chain from and says so
            rep.problems = [p for p in rep.problems if p[0] != "chain"]
            rep.chain_ok = True
        if rep.problems or not rep.chain_ok:
            self.fail("journal audit: %s" % (rep.problems[:5],))
        names = {code: name for code, (name, _) in record_types.RECORDS.items()}
        counts: dict[str, int] = {}
        events: dict[str, int] = {}
        event_args: dict[str, list] = {}  # event name -> the arg of each, in journal order
        numbers = []
        for _idx, t, body in rep.records:
            counts[names.get(t, str(t))] = counts.get(names.get(t, str(t)), 0) + 1
            if t == record_types.REC_EVENT:
                evr = record_types.EventRecord.parse(body)
                ev = status_table.EVENTS.get(evr.event, "?")
                events[ev] = events.get(ev, 0) + 1
                event_args.setdefault(ev, []).append(evr.arg)
            if t == record_types.REC_INVOICE:
                inv = record_types.InvoiceRecord.parse(body)
                numbers.append((inv.code, inv.number))
        if len(numbers) != len(set(numbers)):
            self.fail("journal: an invoice number is used twice: %s" % sorted(numbers))
        for name, n in (want.get("types") or {}).items():
            if counts.get(name, 0) != n:
                self.fail("journal: %d %s records, expected %d" % (counts.get(name, 0), name, n))
        for name, n in (want.get("events") or {}).items():
            if events.get(name, 0) != n:
                self.fail("journal: %d %s events, expected %d" % (events.get(name, 0), name, n))
        for name, args in (want.get("event_args") or {}).items():
            if event_args.get(name, []) != list(args):
                self.fail("journal: %s events with args %s, expected %s" % (name, event_args.get(name, []), args))
        if self.model and want.get("model", True):
            st = self.model.state
            if counts.get("INVOICE", 0) != len(st.invoices):
                self.fail("journal: %d invoices, the model issued %d" % (counts.get("INVOICE", 0), len(st.invoices)))
        if want.get("records"):
            if not self.model:
                raise CaseError("audit_journal records: needs the model")
            problems = []
            for cand in self.model.candidates:
                problems = record_problems(rep.records, cand)
                if not problems:
                    break
            if problems:
                self.fail("journal records differ from the model: " + "; ".join(problems[:6]))


# ---------------------------------------------------------------------------------------------- records
CLOCK_TICK = 900  # seconds a device's clock may have run on since the suite set it (a simulator ticks)
MODELLED_EVENTS = ("POWER_ON", "CLOCK_SET", "UNLOCKED")  # the events the model follows; others: `events:`


def _time_ok(got: int, want: int) -> bool:
    return 0 <= seconds_of_day(got) - seconds_of_day(want) <= CLOCK_TICK


def _totals(t: dict) -> dict:
    from .model import device_totals
    return device_totals(t)


def _model_totals(t: dict) -> dict:
    return {**{k: t[k] for k in ("normal_count", "return_count", "void_count", "normal_total", "return_total")},
            "items": {k: list(v) for k, v in t["items"].items() if v != [0, 0]}}


def record_problems(records, state) -> list[str]:
    """Every field of every record of a read-out compared with one model state (conformance.model
    State.history and State.invoices), type by type in journal order.  Fields no model can predict
    (signatures, MACs, the 税控码, the control-data sequence) must be present (not all zero) and the
    sequence must increase.  An empty list: the read-out is what the model says."""
    names = {code: name for code, (name, _) in record_types.RECORDS.items()}
    got: dict[str, list] = {}
    for _idx, t, body in records:
        name = names.get(t, str(t))
        rec = plain(record_types.RECORDS[t][1].parse(body)) if t in record_types.RECORDS else {}
        if name == "EVENT":
            rec["event"] = status_table.EVENTS.get(rec["event"], rec["event"])
            if rec["event"] not in MODELLED_EVENTS:
                continue
        got.setdefault(name, []).append(rec)
    want: dict[str, list] = {}
    for name, fields in state.history:
        want.setdefault(name, []).append(fields)
    want["INVOICE"] = [dict(i, ref_number=i["ref"], lines=i["items"]) for i in state.invoices]
    out = []
    for name in ("INIT", "DAILY", "DECLARATION", "CLEAR_UNLOCK", "ROLL_LOAD", "ROLL_USAGE", "INVOICE", "EVENT"):
        g, w = got.get(name, []), want.get(name, [])
        if len(g) != len(w):
            out.append("%d %s records, the model has %d" % (len(g), name, len(w)))
            continue
        last_seq = -1
        for i, (rec, exp) in enumerate(zip(g, w)):
            where = "%s #%d%s" % (name, i + 1, " (%s)" % rec.get("date", "") if "date" in rec else "")
            for key, value in exp.items():
                if key in ("digest", "ref", "items", "kind_name"):
                    continue
                if key == "rid":
                    have = (rec["request"]["rid"], rec["request"]["digest"])
                    value = (value, exp.get("digest", 0))
                    ok = have == value
                elif key == "time":
                    have = rec["time"]
                    ok = _time_ok(have, value)
                elif key == "totals":
                    have, value = _totals(rec["totals"]), _model_totals(value)
                    have["items"] = {k: v for k, v in have["items"].items() if v != [0, 0]}
                    ok = have == value
                elif key == "lines":
                    have = {ln["item"]: ln["amount"] for ln in rec["lines"] if ln["item"]}
                    ok = have == value
                elif key == "tax_items":
                    have = sorted(t["index"] for t in rec["tax_items"] if t["index"])
                    ok = have == sorted(value)
                elif key not in rec:
                    continue  # a model note, not a record field
                else:
                    have = rec[key]
                    ok = have == value
                if not ok:
                    out.append("%s: %s %r, the model says %r" % (where, key, have, value))
            for blob in ("signature", "mac", "fiscal_code"):
                if blob in rec and not any(rec[blob]):
                    out.append("%s: %s is all zero" % (where, blob))
            if name == "CLEAR_UNLOCK":
                if rec["sequence"] <= last_seq:
                    out.append("%s: control-data sequence %d after %d" % (where, rec["sequence"], last_seq))
                last_seq = rec["sequence"]
    return out


# ---------------------------------------------------------------------------------------------- the run
def _command_name(code: int) -> str:
    row = commands.BY_CODE.get(code)
    return row.name if row else "command 0x%02X" % code


def run_case(make_dut, case: Case, *, use_model: bool = True, limits: Limits | None = None) -> Verdict:
    v = Verdict(case.id, case.title, case.area, case.requirement, "pass", provisional=case.provisional)
    t0 = _time.monotonic()
    dut = None
    try:
        dut = make_dut()
        missing = case.required() - set(dut.capabilities)
        if missing:
            v.verdict, v.detail = "not tested", "the device lacks: " + ", ".join(sorted(missing))
            return v
        dut.evidence.clear()
        sess = Session(dut, case, use_model=use_model, limits=limits)
        sess.run()
    except CaseFailed as e:
        v.verdict, v.detail = "fail", str(e)
    except NoReply as e:
        v.verdict, v.detail = "error", "no reply: %s" % e
    except DutError as e:
        v.verdict, v.detail = "error", "device: %s" % e
    except CaseError as e:
        v.verdict, v.detail = "error", "case: %s" % e
    except Exception as e:  # the suite must report, not stop
        v.verdict, v.detail = "error", "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4))
    finally:
        if dut is not None:
            ev = dut.evidence
            keep = ev if v.verdict != "pass" else ev[-6:]
            v.evidence = [dict(sent=e.sent, received=e.received, **({"note": e.note} if e.note else {}))
                          for e in keep[-60:]]
            if not getattr(dut, "persistent", False):
                try:
                    dut.close()
                except Exception:
                    pass
        v.seconds = round(_time.monotonic() - t0, 4)
    return v


def run_cases(make_dut, cases: list[Case], *, progress=None, use_model: bool = True,
              limits: Limits | None = None) -> list[Verdict]:
    out = []
    for i, case in enumerate(cases):
        v = run_case(make_dut, case, use_model=use_model, limits=limits)
        out.append(v)
        if progress:
            progress(i + 1, len(cases), v)
    return out


def device_identity(make_dut, limits: Limits | None = None) -> dict:
    """GET_INFO of the device (a fresh one), for the certificate, and whether the run is a TEST run:
    `non_fiscal` (GET_STATUS warns NON_FISCAL: the device's cards are under TEST keys) and `test_keys`
    (the bureau keys the suite holds for the device are the published TEST keys)."""
    lim = limits or limits_for()
    dut = make_dut()
    try:
        f = dut.request(0x01, 1, b"", timeout=lim.reply)
        if f is None or f["status"] != 0:
            return {"error": "GET_INFO failed"}
        info = plain(commands.InfoReply.parse(bytes(f["payload"])))
        info["fw_hash"] = info["fw_hash"].hex()
        info["capabilities_names"] = [n for b, n in status_table.CAPABILITIES.items() if info["capabilities"] >> b & 1]
        info["dut"] = dut.name
        info["dut_capabilities"] = sorted(dut.capabilities)
        st = dut.request(0x02, 2, b"", timeout=lim.reply)
        if st is not None and st["status"] == 0:
            warns = commands.StatusReply.parse(bytes(st["payload"])).warnings
            info["non_fiscal"] = "NON_FISCAL" in status_table.mask_names(warns, status_table.WARNINGS)
        info["test_keys"] = dut.test_keys() if "bureau" in dut.capabilities else None
        return info
    finally:
        if not getattr(dut, "persistent", False):
            dut.close()

