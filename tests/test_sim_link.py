"""End to end over a real pty: SimTill (in-process CPython and the MicroPython unix port) and TillClient."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import serial

from fiscal_till import device, hal, server, version
from gateway.link import StatusError, TillClient, WrongDeviceError
from hw_sim.rtc import SimRTC
from hw_sim.sim_config import SimTillError
from testbed.demo_cards import MACHINE_NO
from testbed.simtill import SimTill
from protocol import frame
from protocol.errors import BY_NAME as ERR
from protocol.status import CAPABILITIES, LOCK_REASONS, STATE_NEW, WARNINGS, mask_names
from testbed.rigs import TillRig

pytestmark = pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")
INTERPRETERS = ["cpython", pytest.param("micropython", marks=pytest.mark.micropython)]


@pytest.fixture(params=INTERPRETERS)
def sim(request, tmp_path):
    with SimTill(tmp_path / "state", request.param) as s:
        yield s


@pytest.fixture
def till(sim):
    with TillClient(sim.port, timeout=1.0) as t:
        yield t


def read_for(port: serial.Serial, seconds: float) -> bytes:
    end, got = time.monotonic() + seconds, bytearray()
    while time.monotonic() < end:
        got += port.read(port.in_waiting or 1)
    return bytes(got)


# --------------------------------------------------------------------------------------- the commands
def test_get_info(sim, till):
    info = till.call_ok("GET_INFO")
    assert info.machine_no == MACHINE_NO and info.model == "FTK-1 SIM"
    assert info.fw_version == version.FW_VERSION and info.fw_hash == version.firmware_hash()
    assert info.protocol_version == 0x0101 and info.max_payload == frame.MAX_PAYLOAD
    assert "SIMULATOR" in [CAPABILITIES[b] for b in CAPABILITIES if info.capabilities >> b & 1]


def test_get_status_reads_the_simulated_clock(sim, till):
    sim.rtc.set(datetime(2027, 3, 4, 5, 6, 7))
    status = till.call_ok("GET_STATUS")
    assert status.state == STATE_NEW and mask_names(status.lock_reasons, LOCK_REASONS) == ["NOT_INITIALIZED"]
    assert status.date == 20270304 and 50607 <= status.time <= 50609
    sim.rtc.advance(86400)
    assert till.call_ok("GET_STATUS").date == 20270305


def test_link_statuses(till):
    """Each dispatch step's status, on a till fresh from the factory (demo cards in, not initialized)."""
    not_initialized = ERR["LOCK_NOT_INITIALIZED"].code
    assert till.call(0x77, payload=b"") == (ERR["LINK_UNKNOWN_COMMAND"].code, b"")
    assert till.call("ISSUE_INVOICE", TillRig.invoice(1000)) == (not_initialized, None)
    assert till.call("INSPECT") == (not_initialized, None)
    assert till.call("DAILY_CLOSE", payload=b"") == (not_initialized, None)
    assert till.call("GET_DOCUMENT", payload=b"\x00") == (ERR["LINK_BAD_PAYLOAD"].code, None)
    with pytest.raises(StatusError, match="ISSUE_INVOICE refused: 0x%04X LOCK_NOT_INITIALIZED" % not_initialized):
        till.call_ok("ISSUE_INVOICE", TillRig.invoice(1000))


def test_fresh_sim_is_non_fiscal_with_demo_cards(sim, till):
    status = till.call_ok("GET_STATUS")
    assert mask_names(status.warnings, WARNINGS) == ["NON_FISCAL"]
    assert sim.fiscal_slot.present() and sim.user_slot.present() and sim.identity["non_fiscal"] is True


def test_noise_and_bad_frames_are_ignored(sim, till):
    before = till.call("GET_INFO")
    good = bytearray(frame.request(0x01, 77))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x01
    bad_payload = bytearray(frame.request(0x02, 78, b"\x00"))
    bad_payload[12] ^= 0xFF
    bad_header = bytearray(good)
    bad_header[11] ^= 0xFF
    false_sof = b"\xa5\x51\x01\x00\x00\x00\x01\x00\x00\x10\x00\x00"  # announces 4 KiB, HCRC wrong
    noise = random.Random(18240).randbytes(3000)
    with serial.serial_for_url(sim.port, timeout=0.02) as raw:
        raw.write(noise + bad_crc + bad_payload + bad_header + false_sof + noise[:40])
        assert read_for(raw, 0.3) == b""  # nothing in a failed frame is answered
        raw.write(noise[:100] + good + noise[:50])  # a frame wrapped in noise
        replies = frame.FrameReceiver().feed(read_for(raw, 0.3))
    assert [(f["rid"], f["status"]) for f in replies] == [(77, 0)]
    assert till.call("GET_INFO") == before
    assert sim.alive


def test_pacing_keeps_the_link_working(tmp_path):
    with SimTill(tmp_path, pace=True, baud=115200) as sim, TillClient(sim.port, timeout=1.0) as till:
        assert till.call_ok("GET_INFO").machine_no == MACHINE_NO
        # the pacer counts a chunk after writing it, so the reply can reach the client first: wait for
        # the count (a hang guard, not a speed assumption)
        deadline = time.monotonic() + 30
        while sim.uart.tx_bytes == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.uart.tx_bytes > 0 and sim.uart.tx_dropped == 0


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_rfc2217(tmp_path, interpreter):
    with SimTill(tmp_path, interpreter, rfc2217_port=0) as sim:
        assert sim.rfc2217_url.startswith("rfc2217://127.0.0.1:")
        for _ in range(2):  # a second client after the first left
            with TillClient(sim.rfc2217_url, timeout=1.0) as till:
                assert till.call_ok("GET_INFO").machine_no == MACHINE_NO


@pytest.mark.micropython
def test_interpreters_agree(tmp_path):
    with SimTill(tmp_path / "c") as a, SimTill(tmp_path / "m", "micropython") as b:
        with TillClient(a.port) as ta, TillClient(b.port) as tb:
            assert ta.call("GET_INFO") == tb.call("GET_INFO")
            sa, sb = ta.call_ok("GET_STATUS"), tb.call_ok("GET_STATUS")
    fields = [k for k in sa if not k.startswith("_") and k != "time"]
    assert [sa[k] for k in fields] == [sb[k] for k in fields]


# --------------------------------------------------------------------------------------- client rules
def test_request_ids_skip_zero():
    with TillClient("loop://", first_rid=0xFFFFFFFE) as t:
        assert [t.next_rid() for _ in range(3)] == [0xFFFFFFFF, 1, 2]


def test_request_ids_start_apart():
    with TillClient("loop://") as a, TillClient("loop://") as b:
        assert a.next_rid() != b.next_rid()


def test_loopback_is_named_as_such():
    with TillClient("loop://", timeout=0.1, retries=1) as t, pytest.raises(WrongDeviceError, match="echo"):
        t.call("GET_INFO")


def test_lost_reply_is_retried_with_the_same_rid():
    """A till whose first reply is lost: the client resends the same RID and takes the second reply."""
    rtc = type("RTC", (), {"datetime": lambda self: (2026, 1, 1, 3, 0, 0, 0, 0)})()
    link = server.LinkServer(device.Till(hal.Board(rtc=rtc, identity={"machine_no": "1" * 16})))
    listener = socket.create_server(("127.0.0.1", 0))
    rids = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while len(rids) < 2:
                link.feed(conn.recv(4096))
                while (r := link.poll()) is not None:
                    rids.append(frame.parse_frame(bytes(r))["rid"])
                    if len(rids) > 1:
                        conn.sendall(r)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with TillClient("socket://127.0.0.1:%d" % listener.getsockname()[1], timeout=0.3) as t:
        assert t.call_ok("GET_INFO").machine_no == "1" * 16
    thread.join(2)
    listener.close()
    assert len(rids) == 2 and rids[0] == rids[1] != 0


# --------------------------------------------------------------------------------------- the simulator
def test_state_folder_persists_and_is_exclusive(tmp_path):
    with SimTill(tmp_path) as sim:
        sim.rtc.set(datetime(2030, 6, 1, 12, 0, 0))
        with pytest.raises(SimTillError, match="in use"):
            SimTill(tmp_path)
    assert '"machine_no": "%s"' % MACHINE_NO in (tmp_path / "config.json").read_text()
    with SimTill(tmp_path) as sim:
        assert sim.rtc.now().date() == datetime(2030, 6, 1).date()
    with pytest.raises(SimTillError, match="fixed at the factory"):
        SimTill(tmp_path, machine_no="9" * 16)


def test_new_state_takes_the_machine_number(tmp_path):
    with SimTill(tmp_path, machine_no="3201000000000042") as sim, TillClient(sim.port) as till:
        assert till.call_ok("GET_INFO").machine_no == "3201000000000042"


def test_bad_config_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"machine_no": "12", "model": "X", "baud": 9600}')
    with pytest.raises(SimTillError, match="machine_no must be 16 digits"):
        SimTill(tmp_path)


@pytest.mark.micropython
def test_micropython_death_is_reported(tmp_path):
    with SimTill(tmp_path, "micropython") as sim:
        os.kill(sim.pid, signal.SIGKILL)
        for _ in range(100):
            if sim.failure:
                break
            time.sleep(0.02)
        assert "exited with status -9" in sim.failure and "firmware.log" in sim.failure
        with pytest.raises(SimTillError):
            sim.check()


@pytest.mark.micropython
def test_fiscal_sim_command(tmp_path):
    exe = Path(sys.executable).with_name("fiscal-sim")
    proc = subprocess.Popen([str(exe), "--state", str(tmp_path), "--interpreter", "micropython",
                             "--rfc2217", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pty_path, url = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        assert pty_path.startswith("/dev/") and url.startswith("rfc2217://127.0.0.1:")
        for port in (pty_path, url):
            with TillClient(port, timeout=1.0) as till:
                assert till.call_ok("GET_INFO").machine_no == MACHINE_NO
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "is up" in err and "state folder  %s" % tmp_path in err and str(tmp_path / "flash.img") in err


@pytest.mark.parametrize("argv,message", [(["--machine-no", "12ab"], "a machine number is 16 digits"),
                                          (["--cards", "gold"], "invalid choice: 'gold'")])
def test_fiscal_sim_bad_arguments(argv, message):
    exe = Path(sys.executable).with_name("fiscal-sim")
    done = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.micropython
@pytest.mark.parametrize("entry,expected", [
    ("import sys\nsys.stderr.write('no flash found\\n')\nsys.exit(3)\n",
     "exited with status 3(.|\n)*no flash found"),
    ("print('hello from a stray print')\nimport time\ntime.sleep(30)\n",
     "broke the board bus(.|\n)*stray print"),
], ids=["exits", "prints"])
def test_firmware_that_does_not_start_is_reported(tmp_path, monkeypatch, entry, expected):
    import hw_sim.backends
    (tmp_path / "sim_main.py").write_text(entry)
    monkeypatch.setattr(hw_sim.backends, "_MPY_DIR", tmp_path)
    with pytest.raises(SimTillError, match=expected):
        SimTill(tmp_path / "state", "micropython")


def test_rtc_ticks_travels_and_persists(tmp_path):
    host = [1_800_000_000.0]  # a fake host clock
    rtc = SimRTC(tmp_path / "rtc.json", clock=lambda: host[0])
    rtc.datetime((2026, 11, 27, 0, 14, 30, 5, 0))  # weekday is derived, not taken
    assert rtc.datetime() == (2026, 11, 27, 4, 14, 30, 5, 0)
    host[0] += 61.5
    assert rtc.datetime() == (2026, 11, 27, 4, 14, 31, 6, 500000)
    rtc.advance(-86400)
    again = SimRTC(tmp_path / "rtc.json", clock=lambda: host[0])
    assert again.now() == datetime(2026, 11, 26, 14, 31, 6, 500000)
    with pytest.raises(ValueError):
        rtc.datetime((2026, 2, 30, 0, 0, 0, 0, 0))


def test_corrupt_rtc_state_is_named(tmp_path):
    (tmp_path / "rtc.json").write_text("{}")
    with pytest.raises(SimTillError, match="does not hold an RTC offset"):
        SimTill(tmp_path)
