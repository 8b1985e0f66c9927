"""`make firmware`: the .mpy set runs on MicroPython and reports the hash of the sources it was built from."""

import subprocess

import pytest

from conftest import FIRMWARE
from fiscal_till import version
from hw_sim import firmware_image


@pytest.mark.micropython
def test_built_image_runs_and_reports_its_source_hash(tmp_path, micropython):
    info = firmware_image.build(tmp_path)
    assert info["hash"] == version.source_hash(str(FIRMWARE / "fiscal_till")).hex()
    assert (tmp_path / "main.py").exists()
    assert set(info["files"]) >= {"device.mpy", "link.mpy", "schema.mpy", "_build.mpy"}
    script = ("from fiscal_till import version, selftest\nimport binascii\n"
              "print(binascii.hexlify(version.firmware_hash()).decode())\nselftest.main([])\n")
    r = subprocess.run([micropython, "-X", "heapsize=256k", "-c", script], capture_output=True, text=True,
                       timeout=60, env={"MICROPYPATH": str(tmp_path)})
    lines = r.stdout.split()
    assert r.returncode == 0 and lines[0] == info["hash"], r.stdout + r.stderr
    assert r.stdout.strip().endswith("passed, 0 failed")
