"""The till under MicroPython: invoices per second and peak heap while issuing.

    .venv/bin/python bench/bench_till_mpy.py [--quick]

Runs the firmware as `micropython -X heapsize=256k` from its .mpy image in the simulator (hw_sim.sim,
cards and flash on the host side of the board bus), issues invoices over the pty, and reads the heap
the firmware logs with FTK_HEAP=1: gc.mem_alloc() above the level right after boot (imports done,
journal mounted), sampled at every HAL call.  Target: peak <= 32 KiB.  The same run under the cpython
backend gives the comparison.  Writes bench/results/till_mpy.json.
"""

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testbed.simrig import SimRig  # noqa: E402


def run(interpreter, n):
    os.environ["FTK_HEAP"] = "1"
    with tempfile.TemporaryDirectory() as d:
        rig = SimRig(Path(d), interpreter=interpreter)
        try:
            rig.rtc.set(20260105, 90000)
            rig.initialize()
            rig.bureau_sells_roll(1, 10_000)
            rig.ok("LOAD_ROLL")
            req = rig.invoice(1_000, 580)
            rig.ok("ISSUE_INVOICE", **req)  # warm-up
            t0 = time.perf_counter()
            for _ in range(n):
                rig.ok("ISSUE_INVOICE", **req)
            dt = time.perf_counter() - t0
            log = (Path(d) / "firmware.log").read_text(errors="replace") if interpreter == "micropython" else ""
        finally:
            rig.close()
    peaks = [int(m.group(1)) for m in re.finditer(r"heap base=\d+ peak=(-?\d+)", log)]
    return dict(invoices=n, seconds=dt, invoices_per_s=n / dt, heap_peak_above_boot=max(peaks) if peaks else None)


def main():
    n = 50 if "--quick" in sys.argv else 300
    out = {"micropython": run("micropython", n), "cpython": run("cpython", n)}
    m, c = out["micropython"], out["cpython"]
    print("invoices/s over the simulator's pty: MicroPython %.1f, CPython %.1f (x%.2f)"
          % (m["invoices_per_s"], c["invoices_per_s"], m["invoices_per_s"] / c["invoices_per_s"]))
    print("peak heap while issuing under MicroPython: %s bytes above the level after boot (target <= 32768)"
          % m["heap_peak_above_boot"])
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "till_mpy.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
