"""The power-cut campaign's bench: every multi-step operation, its reference run, and a cut run.

A *step* is one HAL action that changes something (hw_sim.mains): a card command, a flash program or
erase, an nvram write.  The steps of an operation are not hard-coded: the reference run counts them
(and logs which device each one touched), and the campaign cuts at every one of them.

    ref = reference(SCENARIOS["ISSUE_INVOICE last of roll"])
    got = cut_run(scenario, at=5, after=True)           # cut, boot again, retry with the same request id
    assert got == ref.outcome                            # reply, status, records, cards, nvram

What an outcome holds (all compared with the reference's, byte for byte):
  reply     the retry's reply payload
  status    the GET_STATUS fields a host sees
  records   every journal record as (type, body bytes), in journal order, power-on events left out
            (a boot writes one; the reference did not boot)
  cards     the fiscal and user cards' EEPROM (hw_sim.cards.store), the rotating PIN left out (every
            boot's VERIFY PIN sets a new one)
  nvram     the nvram keys other than the PIN (the intent must be gone)
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from hw_sim.cards import store
from hw_sim.nor_flash import PowerLoss
from protocol import commands, frame
from protocol import journal_audit
from protocol import records
from testbed.rigs import TillRig

RID = 0x5EED


class PowerRig(TillRig):
    """A TillRig whose board's mains (TillRig.mains) the campaign cuts."""

    def power_back(self):
        self.mains.restore()
        self.mains.before_step = None
        self.flash.power_on()
        self.boot()

    def insert_management_card(self):
        self.user_slot.remove()
        self.user_slot.insert(self.cards.management)


# ---- the states each operation starts from --------------------------------------------------------
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


def at_one_invoice_left(rig):
    rig.initialize()
    rig.bureau_sells_roll(1, 4)
    rig.ok("LOAD_ROLL")
    rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
    rig.ok("ISSUE_INVOICE", **rig.invoice(300, kind=2, ref=1))
    rig.ok("ISSUE_INVOICE", **rig.invoice(kind=3))
    rig.rtc.set(20260106, 100000)  # the last invoice back-fills 01-05 first


def at_day_with_sales(rig):
    at_roll_loaded(rig)
    rig.ok("ISSUE_INVOICE", **rig.invoice(500))


def at_days_to_close(rig):
    at_day_with_sales(rig)
    rig.rtc.set(20260110, 180000)  # DAILY_CLOSE closes 01-07 (sales), 01-08, 01-09 and 01-10


def at_period_closed(rig):
    at_day_with_sales(rig)
    rig.rtc.set(20260201, 90000)
    rig.ok("DAILY_CLOSE")


def at_declared_and_cleared_at_bureau(rig):
    at_period_closed(rig)
    rig.ok("DECLARE", end=20260131)
    rig.bureau_clears(deadline=20260228)


def at_inspector_in(rig):
    at_day_with_sales(rig)
    rig.insert_management_card()


def at_inspector_in_a_day_later(rig):
    at_inspector_in(rig)


def _inspect_view(reply: bytes) -> bytes:
    """INSPECT answers from the journal as it is now (never replayed): its size and chain head include
    the power-on event of the boot after the cut, so those two fields are left out; every count stays."""
    r = commands.BY_NAME["INSPECT"].reply.parse(reply)
    r.chain_head = bytes(32)
    r.journal_bytes = 0
    return commands.BY_NAME["INSPECT"].reply.build(r)


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: object
    command: str
    fields: dict
    view: object = None  # reply bytes -> the bytes compared (default: all of them)

    def payload(self) -> bytes:
        return commands.BY_NAME[self.command].request.build(self.fields)


_SCENARIOS = [
    Scenario("INITIALIZE", at_fresh, "INITIALIZE", dict(date=20260105, time=90000)),
    Scenario("LOAD_ROLL", at_initialized, "LOAD_ROLL", {}),
    Scenario("ISSUE_INVOICE with back-filled days", at_roll_loaded, "ISSUE_INVOICE", TillRig.invoice(1234, 566)),
    Scenario("ISSUE_INVOICE last of roll", at_one_invoice_left, "ISSUE_INVOICE", TillRig.invoice(777)),
    Scenario("DAILY_CLOSE", at_day_with_sales, "DAILY_CLOSE", {}),
    Scenario("DAILY_CLOSE of four days", at_days_to_close, "DAILY_CLOSE", {}),
    Scenario("DECLARE", at_period_closed, "DECLARE", dict(end=20260131)),
    Scenario("CLEAR_UNLOCK", at_declared_and_cleared_at_bureau, "CLEAR_UNLOCK", {}),
    Scenario("SET_TIME", at_inspector_in, "SET_TIME", dict(date=20260109, time=120000)),
    Scenario("INSPECT", at_inspector_in, "INSPECT", {}, _inspect_view),
]
SCENARIOS = {s.name: s for s in _SCENARIOS}


# ---- outcomes --------------------------------------------------------------------------------------
def _records(rig) -> list:
    jn = rig.till.fiscal.jn
    stream = bytes(jn.read_stream(0, jn.stream_length()))
    rep = journal_audit.audit_stream(stream)
    assert not rep.problems and rep.chain_ok, rep.problems[:3]
    out = []
    for _idx, t, body in rep.records:
        if t == records.REC_EVENT and records.EventRecord.parse(body).event == 1:  # EV_POWER_ON
            continue
        out.append((t, bytes(body)))
    return out


def _card(card) -> dict:
    state = json.loads(store.dumps(card))["state"]
    for k in ("pin", "prev_pin"):
        state.pop(k, None)
    return state


def outcome(rig, reply: bytes, view=None) -> dict:
    st = rig.status()
    reply = view(bytes(reply)) if view else reply
    status = {k: st[k] for k in ("state", "lock_reasons", "warnings", "amount_left", "return_left", "roll_code",
                                 "roll_next", "invoices_left", "last_number", "last_declared_end")}
    return {"reply": bytes(reply), "status": status, "records": _records(rig),
            "cards": {"fiscal": _card(rig.cards.fiscal), "user": _card(rig.cards.user)},
            "nvram": sorted(k for k in rig.nvram.data if k != "pin")}


@dataclass
class Reference:
    outcome: dict
    steps: int
    trace: list  # (step, device, method) of every step
    unreached: dict = None  # the outcome when the request first runs after a reboot


def prepared(sc: Scenario) -> PowerRig:
    """A till in the scenario's starting state, its firmware running since the setup (not rebooted:
    a boot would back-fill days the operation itself must back-fill)."""
    rig = PowerRig()
    sc.setup(rig)
    return rig


@functools.lru_cache(maxsize=None)
def _reference(name: str) -> Reference:
    sc = SCENARIOS[name]
    rig = prepared(sc)
    rig.mains.trace = []
    before = rig.mains.steps
    status, _, raw = rig.call(sc.command, rid=RID, payload=sc.payload())
    assert status == 0, "%s: reference refused (%04x)" % (name, status)
    steps = rig.mains.steps - before
    trace = [(n - before, label, method) for n, label, method in rig.mains.trace]
    rig.mains.trace = None
    ref = Reference(outcome(rig, raw["payload"], sc.view), steps, trace)
    # the request cut before its first step never reached the till: the host's retry after the reboot
    # is the first time it runs, after the boot's own work (the days before today back-filled)
    rig = prepared(sc)
    rig.power_back()
    status, _, raw = rig.call(sc.command, rid=RID, payload=sc.payload())
    assert status == 0, "%s: refused after a reboot (%04x)" % (name, status)
    ref.unreached = outcome(rig, raw["payload"], sc.view)
    return ref


def reference(sc: Scenario) -> Reference:
    return _reference(sc.name)


def _cut(sc: Scenario, at: int, after: bool, tear: int | None) -> PowerRig:
    rig = prepared(sc)
    m = rig.mains
    target = m.steps + at
    if tear is None:
        m.at, m.after = target, after
    else:
        def tear_it(n, label, flash=rig.flash):
            if n == target:
                assert label == "flash", "step %d is not a flash step" % at
                flash.cut_after(0, tear)
        m.before_step = tear_it
    try:
        rig.exchange(frame.request(commands.BY_NAME[sc.command].code, RID, sc.payload()))
    except PowerLoss:
        pass
    else:
        raise AssertionError("%s: no power cut at step %d" % (sc.name, at))
    return rig


def recovery_steps(sc: Scenario, at: int, after: bool = False) -> int:
    """How many steps the boot after this cut takes (recovery, back-fill, power-on event)."""
    rig = _cut(sc, at, after, None)
    before = rig.mains.steps
    rig.power_back()
    return rig.mains.steps - before


def cut_run(sc: Scenario, at: int, after: bool = False, tear: int | None = None,
            second: tuple | None = None) -> dict:
    """Cut the power at step `at` of the operation (before it, after it, or - `tear`, flash steps
    only - inside it, the NOR model tearing its first page or its erase), boot again (`second`:
    (step, after), cutting that boot once more at that step and booting again), retry with the same
    request id; the outcome."""
    rig = _cut(sc, at, after, tear)
    if second is not None:
        rig.mains.restore()
        rig.flash.power_on()
        rig.mains.at, rig.mains.after = rig.mains.steps + second[0], second[1]
        try:
            rig.boot()
        except PowerLoss:
            pass
        else:
            raise AssertionError("%s: no power cut at boot step %d" % (sc.name, second[0]))
    rig.power_back()
    status, _, raw = rig.call(sc.command, rid=RID, payload=sc.payload())
    assert status == 0, "%s cut at step %d: the retry was refused (%04x)" % (sc.name, at, status)
    return outcome(rig, raw["payload"], sc.view)


def expected(sc: Scenario, at: int, after: bool) -> dict:
    """The outcome a cut at step `at` must lead to: the uncut reference's, except for a cut before the
    very first step (the request never reached the till)."""
    ref = reference(sc)
    return ref.unreached if at == 0 and not after else ref.outcome


def differences(got: dict, want: dict) -> list[str]:
    """What differs, readable (records by position and type)."""
    out = []
    for k in ("reply", "status", "cards", "nvram"):
        if got[k] != want[k]:
            out.append("%s: %r != reference %r" % (k, got[k], want[k]))
    g, w = got["records"], want["records"]
    if g != w:
        gt, wt = [t for t, _ in g], [t for t, _ in w]
        if gt != wt:
            out.append("record types %s != reference %s" % (gt, wt))
        else:
            for i, (a, b) in enumerate(zip(g, w)):
                if a != b:
                    out.append("record %d (type %d): %s != reference %s" % (i, a[0], a[1].hex(), b[1].hex()))
    return out
