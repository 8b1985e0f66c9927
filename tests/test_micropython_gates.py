"""MicroPython gates: the firmware compiles with mpy-cross, imports and answers requests on the real
MicroPython unix port under a 256 KiB heap, type-checks against the MicroPython stubs, and uses only
what MicroPython has."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIRMWARE, ROOT, mpy_env

MODULES = sorted(p for p in FIRMWARE.rglob("*.py") if "tests" not in p.parts)
FORBIDDEN = {"dataclasses", "enum", "typing", "abc", "functools", "itertools", "logging", "hmac",
             "contextlib", "__future__"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_module_compiles_with_mpy_cross(path, mpy_cross, tmp_path):
    r = subprocess.run([mpy_cross, "-o", str(tmp_path / "out.mpy"), str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_module_imports_only_what_micropython_has(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [(node.module or "").split(".")[0]]
        bad = FORBIDDEN.intersection(names)
        assert not bad, "%s:%d imports %s" % (path.name, node.lineno, bad)
        assert not isinstance(node, (ast.Match,)), "%s:%d uses match" % (path.name, node.lineno)
        if isinstance(node, ast.arguments):
            assert not node.posonlyargs, "%s: positional-only parameters" % path.name
        if isinstance(node, ast.ClassDef):
            assert not any(isinstance(d, ast.Name) and d.id == "dataclass" for d in node.decorator_list)


def test_firmware_never_imports_host_code():
    host = {"protocol", "hw_sim", "gateway", "conformance", "construct", "serial", "cryptography"}
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert (node.module or "").split(".")[0] not in host, path
            if isinstance(node, ast.Import):
                assert not host.intersection(a.name.split(".")[0] for a in node.names), path


SMOKE = r"""
import gc
gc.collect()
base = gc.mem_alloc()
import fiscal_till.selftest, fiscal_till.device, fiscal_till.server, fiscal_till.hal, fiscal_till.link
from fiscal_till import codes, layouts, schema, link
class RTC:
    def datetime(self):
        return (2026, 11, 27, 4, 14, 30, 5, 0)
board = fiscal_till.hal.Board(rtc=RTC(), identity={"machine_no": "4401123400000007"})
srv = fiscal_till.server.LinkServer(fiscal_till.device.Till(board))
srv.feed(link.build_frame(link.KIND_REQUEST, codes.CMD_GET_STATUS, 5, 0, b""))
r = bytes(srv.poll())
d = link.FrameDecoder()
d.feed(r)
kind, cmd, rid, status, payload = d.next_frame()
st = schema.decode(layouts.STATUS_REPLY, payload)
assert (kind, cmd, rid, status) == (link.KIND_REPLY, codes.CMD_GET_STATUS, 5, codes.E_OK)
assert st["date"] == 20261127 and st["time"] == 143005 and st["lock_reasons"] == 1
srv.feed(link.build_frame(link.KIND_REQUEST, codes.CMD_ISSUE_INVOICE, 0, 0, b""))
d.feed(bytes(srv.poll()))
assert d.next_frame()[3] == codes.E_LINK_RID_MISSING
gc.collect()
print("heap after imports and two requests:", gc.mem_alloc() - base)
print("smoke ok")
"""


@pytest.fixture(scope="module")
def mpy_image(tmp_path_factory):
    """The .mpy image a board runs (make firmware): compiling the sources on a 256 KiB heap would not fit."""
    from hw_sim import firmware_image
    out = tmp_path_factory.mktemp("image")
    firmware_image.build(out)
    return out


@pytest.mark.micropython
def test_firmware_imports_and_answers_under_micropython_with_256k_heap(micropython, tmp_path, mpy_image):
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE)
    r = subprocess.run([micropython, "-X", "heapsize=256k", str(script)], capture_output=True, text=True,
                       timeout=60, env={"MICROPYPATH": str(mpy_image)})
    assert r.returncode == 0 and "smoke ok" in r.stdout, r.stdout + r.stderr


@pytest.mark.micropython
def test_firmware_selftest_runs_under_micropython(micropython, mpy_image):
    r = subprocess.run([micropython, "-X", "heapsize=256k", "-m", "fiscal_till.selftest"], capture_output=True,
                       text=True, timeout=60, env={"MICROPYPATH": str(mpy_image)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("passed, 0 failed")


@pytest.mark.parametrize("config,stubs", [("firmware/mypy.ini", ".stubs"),
                                          ("firmware/boards/rp2/mypy.ini", ".stubs-rp2")])
def test_firmware_type_checks_against_micropython_stubs(config, stubs):
    if not (ROOT / stubs / "machine.pyi").exists():
        pytest.fail("MicroPython stubs missing: `make test` installs them into %s/" % stubs)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", config, "--no-incremental"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_generated_codes_are_current():
    r = subprocess.run([sys.executable, "-m", "protocol.codegen", "--check"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
