"""Codec throughput: encode+decode round trips per second of an invoice record (68 B) and a status reply,
for the firmware codec on CPython, Construct plain and compiled, and the firmware codec on MicroPython.

    .venv/bin/python bench/bench_codec.py [--quick]

Prints ratios measured in this one run (the machine is shared and noisy) and writes
bench/results/codec.json.  (Link efficiency is bench_link.py's.)
"""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))

from fiscal_till import layouts, schema  # noqa: E402
from protocol import commands, records  # noqa: E402

INVOICE = dict(request=dict(rid=77, digest=0x1234), kind=1, code="1440012345", number=1001, date=20261127, time=143005, ref_number=0, total=15_800,
               lines=[dict(item=1, amount=12_800), dict(item=2, amount=3_000)] + [dict(item=0, amount=0)] * 4,
               fiscal_code=bytes.fromhex("0123456789abcdef"))
STATUS = dict(state=1, date=20261127, time=143005, lock_reasons=0, warnings=17, deadline=20261231,
              days_to_deadline=34, single_limit=1_000_000, amount_left=47_965_500, return_left=4_990_000,
              roll_code="1440012345", roll_next=1002, roll_end=1500, invoices_left=499, journal_permille=12,
              last_number=1001, last_declared_end=20261031)
CASES = [("InvoiceRecord", records.InvoiceRecord, layouts.INVOICE_RECORD, INVOICE),
         ("StatusReply", commands.StatusReply, layouts.STATUS_REPLY, STATUS)]

MPY_SCRIPT = r"""
import time
from fiscal_till import layouts, schema
INVOICE = %r
STATUS = %r
buf = bytearray(256)
for name, layout, value in (("InvoiceRecord", layouts.INVOICE_RECORD, INVOICE),
                            ("StatusReply", layouts.STATUS_REPLY, STATUS)):
    n = %d
    t = time.ticks_us()
    for _ in range(n):
        end = schema.encode_into(layout, value, buf, 0)
        schema.decode(layout, buf, 0, end)
    dt = time.ticks_diff(time.ticks_us(), t)
    print(name, n * 1e6 / dt)
"""


def rate(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(50):
            fn()
        n += 50
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def main():
    quick = "--quick" in sys.argv
    secs = 0.3 if quick else 1.5
    results = {}
    for name, construct, layout, value in CASES:
        compiled = construct.compile()
        buf = bytearray(256)

        def fw():
            end = schema.encode_into(layout, value, buf, 0)
            schema.decode(layout, buf, 0, end)

        results[name] = {
            "firmware_cpython": rate(fw, secs),
            "construct": rate(lambda: construct.parse(construct.build(value)), secs),
            "construct_compiled": rate(lambda: compiled.parse(compiled.build(value)), secs),
        }
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        script = MPY_SCRIPT % (INVOICE, STATUS, 2000 if quick else 20000)
        env = {"MICROPYPATH": str(ROOT / "firmware")}
        out = subprocess.run([str(exe), "-X", "heapsize=256k", "-c", script], capture_output=True, text=True,
                             env=env, timeout=300)
        for line in out.stdout.splitlines():
            name, r = line.split()
            results[name]["firmware_micropython"] = float(r)
    print("round trips (encode+decode) per second, measured in one run:")
    for name, r in results.items():
        base = r["construct"]
        print("  %-14s " % name + "  ".join("%s %.0f/s (x%.2f vs construct)" % (k, v, v / base)
                                             for k, v in r.items()))
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "codec.json").write_text(json.dumps({"round_trips_per_s": results}, indent=1))


if __name__ == "__main__":
    main()
