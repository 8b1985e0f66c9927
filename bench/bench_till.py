"""Till benchmarks: invoices per second (firmware in process with simulated cards, CPython), the firmware's
.mpy size, and a simulated till-year (365 days x 300 invoices + daily closes + 12 declarations and
clear-unlocks) under CPython, target <= 30 s.  MicroPython figures (invoices/s, peak heap) come from
bench_till_mpy.py, which runs the firmware as a MicroPython subprocess.

    .venv/bin/python bench/bench_till.py [--quick]

Prints the figures measured in this run and writes bench/results/till.json.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fiscal_till import link  # noqa: E402
from fiscal_till.clock import day_number, from_day_number  # noqa: E402
from protocol import commands  # noqa: E402
from gateway import issuance  # noqa: E402
from testbed.rigs import TillRig  # noqa: E402


def till_year(days=365, per_day=300):
    big = issuance.Limits(deadline=20260131, single_limit=1_000_000, cumulative_limit=4_000_000_000,
                   return_limit=100_000_000)
    rig = TillRig(limits=big, flash_sectors=1024)  # 4 MiB partition
    rig.initialize()
    rig.bureau_sells_roll(1, 120_000)
    rig.ok("LOAD_ROLL")
    payload = commands.IssueInvoiceRequest.build(rig.invoice(1_000, 580))
    server = rig.server

    def issue(rid):
        # the host side kept minimal (no Construct per request): the bench measures the till
        server.feed(link.build_frame(link.KIND_REQUEST, 0x20, rid, 0, payload))
        reply = server.poll()
        if reply[7] or reply[8]:
            raise SystemExit("ISSUE_INVOICE refused: status %02X%02X" % (reply[7], reply[8]))

    start = day_number(20260105)
    deadline = 20260131
    t0 = time.perf_counter()
    n = 0
    declarations = 0
    for d in range(days):
        date = from_day_number(start + d)
        if date > deadline:  # month over: declare (closing the days before), clear-unlock, go on
            rig.rtc.set(date, 80000)
            rig.ok("DECLARE", end=deadline)
            y, m = deadline // 10000, deadline // 100 % 100
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
            deadline = y * 10000 + m * 100 + (29 if m == 2 and y % 4 == 0 else 28 if m == 2 else
                                               30 if m in (4, 6, 9, 11) else 31)
            rig.bureau_clears(deadline=deadline, cumulative_limit=4_000_000_000, return_limit=100_000_000)
            rig.ok("CLEAR_UNLOCK")
            declarations += 1
        rig.rtc.set(date, 90000)
        for _ in range(per_day):
            n += 1
            rig.rid += 1  # one counter with the rig's own requests: request ids strictly increase
            issue(rig.rid)
    elapsed = time.perf_counter() - t0
    return dict(days=days, invoices=n, declarations=declarations, seconds=elapsed, invoices_per_s=n / elapsed)


def main():
    quick = "--quick" in sys.argv
    out = {}
    r = till_year(days=40 if quick else 365, per_day=50 if quick else 300)
    out["till_year"] = r
    print("till-%s: %d days, %d invoices, %d declarations + clear-unlocks in %.1f s (%.0f invoices/s); "
          "target for the full year <= 30 s" % ("year" if not quick else "sample", r["days"], r["invoices"],
                                                 r["declarations"], r["seconds"], r["invoices_per_s"]))
    from hw_sim import firmware_image
    info = firmware_image.build(ROOT / "build" / "bench-firmware")
    out["mpy_total_bytes"] = info["total_bytes"]
    print("firmware .mpy set: %d files, %d bytes" % (len(info["files"]), info["total_bytes"]))
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "till.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
