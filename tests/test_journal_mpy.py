"""The journal on the real MicroPython unix port, through the same block-device protocol and the same
power-loss model as under CPython, under a 256 KiB heap."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIRMWARE, ROOT

sys.path.insert(0, str(Path(__file__).parent / "mpy"))
import journal_campaign as jc  # noqa: E402

CAMPAIGN = ROOT / "tests" / "mpy" / "journal_campaign.py"
MODULES = [FIRMWARE / "fiscal_till" / "journal.py", FIRMWARE / "fiscal_till" / "journal_format.py",
           FIRMWARE / "fiscal_till" / "errnos.py", FIRMWARE / "fiscal_till" / "codes.py",
           ROOT / "hw_sim" / "nor_flash.py", CAMPAIGN]


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory, mpy_cross):
    """The modules compiled to .mpy, as a board runs them (compiling source on a 256 KiB heap would
    fragment it)."""
    out = tmp_path_factory.mktemp("mpy")
    (out / "fiscal_till").mkdir()
    for src, dst in [(FIRMWARE / "fiscal_till" / "__init__.py", "fiscal_till/__init__.mpy"),
                     (FIRMWARE / "fiscal_till" / "journal.py", "fiscal_till/journal.mpy"),
                     (FIRMWARE / "fiscal_till" / "journal_format.py", "fiscal_till/journal_format.mpy"),
                     (FIRMWARE / "fiscal_till" / "errnos.py", "fiscal_till/errnos.mpy"),
                     (FIRMWARE / "fiscal_till" / "codes.py", "fiscal_till/codes.mpy"),
                     (ROOT / "hw_sim" / "nor_flash.py", "nor_flash.mpy"), (CAMPAIGN, "journal_campaign.mpy")]:
        subprocess.run([mpy_cross, "-o", str(out / dst), str(src)], check=True)
    return out


def run_mpy(micropython, mpy_dir, *args):
    script = "import journal_campaign\njournal_campaign.main(%r)\n" % [str(a) for a in args]
    r = subprocess.run([micropython, "-X", "heapsize=256k", "-c", script], capture_output=True, text=True,
                       timeout=600, env={"MICROPYPATH": str(mpy_dir)})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_compiles_with_mpy_cross(path, mpy_cross):
    r = subprocess.run([mpy_cross, "-o", "/dev/null", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.micropython
@pytest.mark.parametrize("geo,step,offset", [("1k", 11, 3), ("4k", 31, 7)])
def test_power_loss_campaign_passes_on_micropython(micropython, mpy_dir, geo, step, offset):
    out = run_mpy(micropython, mpy_dir, "campaign", geo, step, offset)
    assert out.startswith("OK"), out


@pytest.mark.micropython
@pytest.mark.parametrize("cut,tear", [(40, 2), (211, 1), (377, 0)])
def test_micropython_and_cpython_write_the_same_bytes(micropython, mpy_dir, cut, tear):
    digest, head, n = jc.image_after("1k", cut, tear)
    out = run_mpy(micropython, mpy_dir, "image", "1k", cut, tear)
    assert out == "IMAGE %s %s %d" % (digest.hex(), head.hex(), n)
