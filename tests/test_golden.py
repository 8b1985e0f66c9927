"""Golden vectors (tests/vectors/golden.json): hex plus expected fields for every layout, frame and APDU,
checked against Construct and the firmware codec under CPython, and under the real MicroPython port."""

import json
import subprocess

import pytest

from conftest import FIRMWARE, VECTORS, mpy_env
from fiscal_till import apdu as fw_apdu, layouts, link, schema
from layout_pairs import PAIRS
from protocol import apdu, frame
from strategies import from_json, plain

GOLDEN = json.loads((VECTORS / "golden.json").read_text(encoding="utf-8"))
BY_NAME = {p[0]: p for p in PAIRS}


def test_golden_file_covers_every_layout():
    assert sorted(v["name"] for v in GOLDEN["layouts"]) == sorted(BY_NAME)


@pytest.mark.parametrize("vector", GOLDEN["layouts"], ids=[v["name"] for v in GOLDEN["layouts"]])
def test_layout_vector(vector):
    _, construct, fw_name = BY_NAME[vector["name"]]
    raw = bytes.fromhex(vector["hex"])
    fields = from_json(vector["fields"])
    assert construct.build(fields) == raw
    assert plain(construct.parse(raw)) == fields
    layout = getattr(layouts, fw_name)
    assert schema.encode(layout, fields, size=8192) == raw
    assert schema.decode(layout, raw) == fields


@pytest.mark.parametrize("vector", GOLDEN["frames"], ids=lambda v: v["hex"][:24])
def test_frame_vector(vector):
    raw = bytes.fromhex(vector["hex"])
    f = from_json(vector["fields"])
    assert frame.build_frame(f["kind"], f["command"], f["rid"], f["status"], f["payload"]) == raw
    assert frame.parse_frame(raw) == f
    d = link.FrameDecoder()
    d.feed(raw)
    assert d.next_frame() == (f["kind"], f["command"], f["rid"], f["status"], f["payload"])


@pytest.mark.parametrize("vector", GOLDEN["apdus"], ids=lambda v: v["hex"][:24])
def test_apdu_vector(vector):
    raw = bytes.fromhex(vector["hex"])
    a = from_json(vector["fields"])
    assert apdu.Command.build(a) == raw
    assert plain(apdu.Command.parse(raw)) == a
    assert fw_apdu.encode_command(a["cla"], a["ins"], a["p1"], a["p2"], a["data"], a["le"]) == raw
    assert fw_apdu.decode_command(raw) == a


def test_golden_vector_example_reads_as_documented():
    # the ROLL_LOAD record of the doc: request 0x00010203 (digest CAFEF00D), date 2026-11-27 08:00:00,
    # roll 1440012345 numbers 1001..1500
    v = next(v for v in GOLDEN["layouts"] if v["name"] == "RollLoadRecord")
    assert v["hex"] == ("00010203" "cafef00d" "20261127" "080000" "31343430303132333435" "000003e9"
                        "000005dc")


@pytest.mark.micropython
def test_golden_vectors_on_real_micropython(micropython):
    r = subprocess.run([micropython, "-X", "heapsize=256k", "-m", "fiscal_till.selftest",
                        str(VECTORS / "golden.json")], capture_output=True, text=True, timeout=120,
                       cwd=FIRMWARE, env=mpy_env())
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    n = len(GOLDEN["layouts"]) * 2 + len(GOLDEN["frames"]) * 2 + len(GOLDEN["apdus"]) * 2
    assert last.startswith("selftest: ") and last.endswith(" passed, 0 failed"), r.stdout
    assert int(last.split()[1]) >= n
