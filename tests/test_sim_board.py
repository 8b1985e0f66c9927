"""One board assembly (hw_sim.board.SimBoard), the clock that does not tick, the simulator's declared backend
interface, and the bureau helper of testbed on it."""
from __future__ import annotations

import datetime

import pytest

from hw_sim import backends
from hw_sim.board import SimBoard
from hw_sim.nor_flash import PowerLoss
from hw_sim.rtc import ManualRTC
from protocol import commands, frame
from testbed import demo_cards
from testbed.bureau import Bureau

IDENTITY = {"machine_no": demo_cards.MACHINE_NO, "model": "FTK-1 SIM", "non_fiscal": True}


def call(link, name: str, rid: int, **fields) -> dict:
    cmd = commands.BY_NAME[name]
    link.feed(frame.request(cmd.code, rid, cmd.request.build(fields)))
    return frame.parse_frame(bytes(link.poll()))


def demo_board() -> tuple[SimBoard, demo_cards.DemoCards]:
    cards = demo_cards.demo_cards(1, management_pin=None)
    return SimBoard.in_memory(cards.fiscal, cards.user, identity=IDENTITY), cards


def test_a_board_boots_the_firmware_on_its_devices_and_counts_their_actions_as_power_steps():
    board, _ = demo_board()
    link = board.boot()
    assert board.mains.steps > 0  # the first boot formats the blank flash: erases and a program
    reply = call(link, "GET_INFO", 1)
    assert reply["status"] == 0
    assert commands.BY_NAME["GET_INFO"].reply.parse(reply["payload"]).machine_no == demo_cards.MACHINE_NO


def test_a_cut_at_a_step_stops_the_request_and_the_next_boot_restores_the_mains():
    board, cards = demo_board()
    link = board.boot()
    board.cut_power_at(0)
    with pytest.raises(PowerLoss):
        call(link, "INITIALIZE", 1, date=20260105, time=90000)
    assert board.mains.off
    link = board.boot()
    assert not board.mains.off and board.mains.at is None
    assert call(link, "INITIALIZE", 2, date=20260105, time=90000)["status"] == 0


def test_the_bureau_helper_sells_a_roll_the_till_loads_and_clears_a_declaration():
    board, cards = demo_board()
    link = board.boot()
    hall = Bureau(board.user_slot, cards.keystore)
    assert call(link, "INITIALIZE", 1, date=20260105, time=90000)["status"] == 0
    hall.sell_roll(1, 20)
    roll = commands.BY_NAME["LOAD_ROLL"].reply.parse(call(link, "LOAD_ROLL", 2)["payload"])
    assert (roll.code, roll.start, roll.end) == (demo_cards.ROLL_CODE, 1, 20)
    board.rtc.set(20260201)
    assert call(link, "DAILY_CLOSE", 3)["status"] == 0
    assert call(link, "DECLARE", 4, end=20260131)["status"] == 0
    report = hall.clear(20260228)
    assert report.ok and report.end == 20260131
    assert call(link, "CLEAR_UNLOCK", 5)["status"] == 0


def test_the_manual_clock_reads_what_it_was_set_to():
    rtc = ManualRTC(datetime.datetime(2026, 1, 5, 9, 0, 0))
    assert rtc.datetime() == (2026, 1, 5, 0, 9, 0, 0, 0)
    rtc.set(20260228, 235959)
    rtc.advance(seconds=1)
    assert (rtc.date, rtc.datetime()[4:7]) == (20260301, (0, 0, 0))
    rtc.datetime((2027, 3, 4, 6, 5, 6, 7, 0))  # the weekday given is not taken
    assert rtc.datetime() == (2027, 3, 4, 3, 5, 6, 7, 0)


@pytest.mark.parametrize("name", sorted(backends.BACKENDS))
def test_every_simulator_backend_implements_the_declared_interface(name):
    cls = backends.BACKENDS[name]
    assert issubclass(cls, backends.FirmwareBackend) and cls.name == name
    for method in ("attach", "detach", "cut", "failure", "stop"):
        assert getattr(cls, method) is not getattr(backends.FirmwareBackend, method), (name, method)


def test_the_demo_cards_profile_is_what_the_suite_assumes_of_a_simulated_till():
    from conformance.dut import Profile
    assert demo_cards.profile() == Profile()
    assert demo_cards.profile(roll_code="1440099999").roll_code == "1440099999"
