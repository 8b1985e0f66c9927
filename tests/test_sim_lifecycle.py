"""The whole fiscal lifecycle on the simulated board over its real pty, under both interpreters: the same
script as the in-process bench (tests/lifecycle.py), power cycles in the middle of it, and flash power
cuts inside ISSUE_INVOICE."""
from __future__ import annotations

import threading
import time

import pytest

import lifecycle
from hw_sim.cards import store
from hw_sim.nor_flash import TEAR_NOTHING, TEAR_PREFIX, TEAR_RANDOM
from hw_sim.sim_config import SimTillError
from protocol import commands, frame, records
from protocol.commands import READ_JOURNAL_MAX
from protocol.journal_audit import audit_stream
from protocol.status import LOCK_REASONS, WARNINGS, mask_names
from testbed.simrig import SimRig

INTERPRETERS = ["cpython", pytest.param("micropython", marks=pytest.mark.micropython)]


@pytest.fixture(params=INTERPRETERS)
def rig(request, tmp_path):
    with SimRig(tmp_path / "state", request.param) as r:
        yield r


def read_journal(rig) -> bytes:
    out = bytearray()
    while True:
        r = rig.ok("READ_JOURNAL", offset=len(out), length=READ_JOURNAL_MAX)
        out += r.data
        if len(out) >= r.total:
            return bytes(out)


def journal_invoices(rig) -> list[int]:
    """Invoice numbers in fiscal memory, in order, from the audited READ_JOURNAL stream."""
    report = audit_stream(read_journal(rig))
    assert report.problems == [] and report.chain_ok
    return [records.InvoiceRecord.parse(body).number for _, t, body in report.records if t == records.REC_INVOICE]


def state_of(rig) -> dict:
    st = rig.status()
    return {k: v for k, v in st.items() if not k.startswith("_") and k != "time"}


def ready_to_issue(rig) -> None:
    rig.rtc.set(20260105, 90000)
    rig.initialize()
    rig.bureau_sells_roll(1, 100)
    rig.ok("LOAD_ROLL")


def test_whole_lifecycle(rig):
    issued = lifecycle.run(rig)
    assert rig.sim.alive and len(issued) == 50
    printed = rig.sim.printer.tail(500)
    assert printed.count("*** NON-FISCAL 非税控 测试 ***") >= 2  # demo cards: TEST keys
    assert (rig.sim.state / "printer.txt").read_text(encoding="utf-8").count("NON-FISCAL") >= 2 * 101


def test_lifecycle_survives_power_cycles_in_the_middle(rig):
    """Power cut after chosen steps (a roll loaded, mid-day, declared, cleared): the till comes back in
    the same state each time and the script carries on."""
    real_ok = rig.ok
    counts: dict[str, int] = {}
    cycled = []
    cycle_at = {("LOAD_ROLL", 1), ("ISSUE_INVOICE", 20), ("DECLARE", 1), ("CLEAR_UNLOCK", 1), ("LOAD_ROLL", 2)}

    def ok_then_cycle(name, **fields):
        reply = real_ok(name, **fields)
        counts[name] = counts.get(name, 0) + 1
        if (name, counts[name]) in cycle_at:
            before = state_of(rig)
            rig.sim.power_cycle()
            assert state_of(rig) == before, name
            cycled.append((name, counts[name]))
        return reply
    rig.ok = ok_then_cycle
    lifecycle.run(rig)
    assert sorted(cycled) == sorted(cycle_at)


def test_state_folder_holds_the_whole_till(tmp_path):
    """Close the simulator, start a new one on the folder: flash, cards, nvram and clock carry on."""
    with SimRig(tmp_path, "cpython") as rig:
        ready_to_issue(rig)
        first = rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
    assert sorted(p.name for p in (tmp_path / "cards").iterdir()) == ["fiscal.json", "management.json",
                                                                      "user.json"]
    assert (tmp_path / "nvram" / "pin").exists() and (tmp_path / "flash.img").stat().st_size == 2 << 20
    with SimRig(tmp_path, "cpython") as rig:
        assert rig.status().last_number == first.number
        assert rig.ok("ISSUE_INVOICE", **rig.invoice(2000)).number == first.number + 1
        assert journal_invoices(rig) == [1, 2]


def test_a_damaged_flash_image_is_named_not_blanked(tmp_path):
    with SimRig(tmp_path, "cpython") as rig:
        ready_to_issue(rig)
    image = tmp_path / "flash.img"
    with open(image, "r+b") as f:
        f.truncate(1 << 20)
    with pytest.raises(SimTillError, match="flash.img holds 1048576 bytes"):
        SimRig(tmp_path, "cpython")
    assert image.stat().st_size == 1 << 20


def test_bare_till_has_empty_slots(tmp_path):
    with SimRig(tmp_path, "cpython", cards="none") as rig:
        assert rig.sim.keystore is None and not rig.sim.fiscal_slot.present()
        rig.rtc.set(20260105, 90000)
        rig.refused("INITIALIZE", "CARD_FISCAL_MISSING", date=20260105, time=90000)
        assert mask_names(rig.status().warnings, WARNINGS) == []


def test_pulled_user_card_reaches_the_firmware_as_a_card_fault(rig):
    """A slot fault (OSError ENODEV from the host's slot) arrives in the firmware as an OSError: the
    declaration is refused with a card error, not a device fault, and nothing is written."""
    ready_to_issue(rig)
    rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
    rig.rtc.set(20260201, 90000)
    rig.ok("DAILY_CLOSE")
    rig.sim.user_slot.pull_after(0)
    rig.refused("DECLARE", "CARD_NO_RESPONSE", end=20260131)
    assert not rig.sim.user_slot.present()
    rig.refused("DECLARE", "CARD_USER_MISSING", end=20260131)
    card = rig.sim.user_slot.pulled
    assert store.dumps(card) == store.dumps(store.load_card(rig.sim.state / "cards" / "user.json"))
    rig.sim.user_slot.insert(card)
    assert rig.sim.user_slot.pulled is None
    assert rig.ok("DECLARE", end=20260131).totals.normal_count == 1


def test_firmware_steps_wait_for_control_calls(rig):
    """While a control call holds the simulator's lock (a test changing a card, the clock), the firmware
    does not run: its reply comes only after the lock is released."""
    rig.rtc.set(20260105, 90000)
    with rig.sim.lock:
        rig.client.port.write(frame.request(commands.BY_NAME["GET_STATUS"].code, 4242))
        time.sleep(0.3)
        assert rig.client.port.in_waiting == 0
    status, reply, _ = rig.call("GET_STATUS", rid=4242)
    assert status == 0 and reply.date == 20260105


def test_control_calls_from_another_thread_while_issuing(tmp_path):
    with SimRig(tmp_path, "cpython") as rig:
        ready_to_issue(rig)
        stop = threading.Event()
        seen = []

        def meddle() -> None:
            while not stop.is_set():
                seen.append((rig.sim.fiscal_slot.present(), rig.sim.flash.ops, rig.sim.rtc.date))
                rig.sim.printer.tail(3)
        thread = threading.Thread(target=meddle)
        thread.start()
        try:
            numbers = [rig.ok("ISSUE_INVOICE", **rig.invoice(100 + i)).number for i in range(30)]
        finally:
            stop.set()
            thread.join()
        assert numbers == list(range(1, 31)) and len(seen) > 30 and rig.sim.alive


@pytest.mark.micropython
@pytest.mark.parametrize("tear", [TEAR_NOTHING, TEAR_PREFIX, TEAR_RANDOM], ids=["nothing", "prefix", "random"])
def test_flash_power_cut_during_issue_invoice(tmp_path, tear):
    """Cut the power at each flash operation of an ISSUE_INVOICE (the card has issued it by then), boot
    again, repeat the request with the same request id: every acknowledged invoice is in fiscal memory
    exactly once, the repeated request gets one invoice, numbers stay consecutive."""
    with SimRig(tmp_path, "micropython") as rig:
        ready_to_issue(rig)
        acknowledged = [rig.ok("ISSUE_INVOICE", **rig.invoice(1000)).number]  # opens a ring sector
        ops = rig.sim.flash.ops
        acknowledged.append(rig.ok("ISSUE_INVOICE", **rig.invoice(1000)).number)
        per_invoice = rig.sim.flash.ops - ops
        assert per_invoice >= 2  # program the record, program its commit byte
        rid = 7000
        for n in range(per_invoice):
            rid += 1
            request = rig.invoice(1100 + n)
            rig.sim.flash.cut_after(n, tear)
            status, reply, _ = rig.call("ISSUE_INVOICE", rid=rid, timeout=1.0, **request)
            assert status is None and not rig.sim.powered, "the cut did not stop the till"
            rig.sim.power_cycle()
            assert rig.sim.powered
            status, reply, _ = rig.call("ISSUE_INVOICE", rid=rid, **request)
            assert status == 0 and reply.number == acknowledged[-1] + 1 and reply.total == 1100 + n
            acknowledged.append(reply.number)
            status, again, _ = rig.call("ISSUE_INVOICE", rid=rid, **request)  # a lost reply repeated
            assert status == 0 and again == reply
        assert rig.status().last_number == acknowledged[-1]
        assert mask_names(rig.status().lock_reasons, LOCK_REASONS) == []
        assert journal_invoices(rig) == acknowledged
        assert acknowledged == list(range(1, per_invoice + 3))
