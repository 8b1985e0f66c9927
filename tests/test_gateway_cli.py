"""fiscal-gateway: output for people and for scripts, and one clear line for each way a port can fail."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fiscal_till import version
from gateway.cli import main
from testbed.demo_cards import MACHINE_NO
from testbed.simtill import SimTill
from protocol import frame


@pytest.fixture
def sim(tmp_path):
    with SimTill(tmp_path) as s:
        yield s


@contextmanager
def fake_device(answer: Callable[[dict], bytes]) -> Iterator[str]:
    """A pty whose far end answers every request frame with answer(frame)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    receiver = frame.FrameReceiver()

    def run() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for f in receiver.feed(data):
                os.write(master, answer(f))
    threading.Thread(target=run, daemon=True).start()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["info", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_tables(sim, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(capsys, "--port", sim.port)
    assert code == 0 and err == ""
    for text in ("Till on " + sim.port, MACHINE_NO, "FTK-1 SIM", version.firmware_hash().hex(),
                 "JOURNAL_READOUT, SIMULATOR", "NOT_INITIALIZED", "NEW", "NON_FISCAL"):
        assert text in out


def test_info_json(sim, capsys):
    code, out, _ = run_cli(capsys, "--port", sim.port, "--json")
    record = json.loads(out)
    assert code == 0 and out.count("\n") == 1
    assert record["port"] == sim.port
    assert record["info"]["machine_no"] == MACHINE_NO
    assert record["info"]["fw_hash"] == version.firmware_hash().hex()
    assert record["info"]["protocol_version"] == "1.1"
    assert record["status"]["state"] == "NEW" and record["status"]["lock_reasons"] == ["NOT_INITIALIZED"]
    assert record["status"]["days_to_deadline"] is None and record["status"]["warnings"] == ["NON_FISCAL"]


@pytest.mark.micropython
def test_console_script_against_micropython(tmp_path):
    with SimTill(tmp_path, "micropython") as s:
        exe = Path(sys.executable).with_name("fiscal-gateway")
        done = subprocess.run([str(exe), "info", "--port", s.port, "--json"], capture_output=True, text=True,
                              timeout=20)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["info"]["machine_no"] == MACHINE_NO


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("fiscal-gateway: ")
    return err


def test_port_that_does_not_exist(capsys):
    err = one_line_error(*run_cli(capsys, "--port", "/dev/pts/no-such-port"))
    assert "cannot open /dev/pts/no-such-port: No such file or directory" in err


def test_silent_port_times_out(capsys):
    with fake_device(lambda f: b"") as port:
        err = one_line_error(*run_cli(capsys, "--port", port, "--timeout", "0.1", "--retries", "1"))
    assert "no reply from %s to GET_INFO after 2 tries of 0.1 s: is a till connected" % port in err


def test_garbage_is_a_wrong_device(capsys):
    with fake_device(lambda f: b"AT+OK\r\n" * 4) as port:
        err = one_line_error(*run_cli(capsys, "--port", port, "--timeout", "0.1", "--retries", "0"))
    assert "28 bytes that are no valid frame" in err and "is this port a fiscal till" in err


def test_replies_to_other_requests_are_a_wrong_device(capsys):
    with fake_device(lambda f: frame.reply(f["command"], f["rid"] + 1, 0)) as port:
        err = one_line_error(*run_cli(capsys, "--port", port, "--timeout", "0.1", "--retries", "0"))
    assert "1 reply frame(s) to other requests" in err


def test_bad_crc_is_named(capsys):
    def corrupt(f: dict) -> bytes:
        wire = bytearray(frame.reply(f["command"], f["rid"], 0, b"\x00" * 20))
        wire[15] ^= 0x40
        return bytes(wire)
    with fake_device(corrupt) as port:
        err = one_line_error(*run_cli(capsys, "--port", port, "--timeout", "0.1", "--retries", "1"))
    assert "2 frame(s) from %s failed their CRC check" % port in err


def test_refusal_is_explained(capsys):
    with fake_device(lambda f: frame.reply(f["command"], f["rid"], 0x0102)) as port:
        err = one_line_error(*run_cli(capsys, "--port", port, "--timeout", "0.5"))
    assert "GET_INFO refused: 0x0102 LINK_NOT_SUPPORTED: command not supported by this device" in err


@pytest.mark.parametrize("argv", [[], ["info"], ["info", "--port", "x", "--timeout", "0"],
                                  ["info", "--port", "x", "--baud", "fast"], ["flash", "--port", "x"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "usage: fiscal-gateway" in capsys.readouterr().err
