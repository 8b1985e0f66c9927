"""Host-link benchmark.

    .venv/bin/python bench/bench_link.py [--quick]

1. Link efficiency of a maximum-size READ_JOURNAL reply, from the real frame builder: journal bytes per
   wire byte (target >= 0.97).
2. Wire rate over a real pty at 115200 baud with pacing on: a burst of GET_INFO requests is written at
   once and the replies' bytes are divided by the time from the write to the last reply byte, then by the
   line rate (115200 / 10 = 11,520 B/s).  Near 1.0 means the till keeps the line busy; pacing caps it
   there (a hair above: the last slice of the burst arrives up to 5 ms early, hw_sim.uart).  Run under both interpreters, and once unpaced to show the pty's own speed.
3. Journal read-out over a real pty at 115200 baud, paced: a fiscal memory of JOURNAL_KIB KiB (invoice
   records appended straight into the simulator's flash image) read with back-to-back full-frame
   READ_JOURNAL requests by TillClient.  Rate = journal bytes / elapsed time, against the line rate
   bytes / 11,520 B/s of the reply frames; the gap is the request turnaround (host -> till is not
   paced) and the firmware's flash reads (over the board bus under MicroPython).  Both interpreters,
   paced and unpaced.
Writes bench/results/link.json.  Informational only: no test asserts on timings.
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402

from hw_sim.sim_config import SimTillError  # noqa: E402
from testbed.simtill import SimTill  # noqa: E402
from hw_sim.uart import BITS_PER_BYTE  # noqa: E402
from protocol import frame  # noqa: E402
from fiscal_till.fiscal import machine_device_id  # noqa: E402
from fiscal_till.journal import Journal  # noqa: E402
from gateway.link import TillClient  # noqa: E402
from hw_sim.nor_flash import NorFlash  # noqa: E402
from protocol.commands import BY_NAME, READ_JOURNAL_MAX, ReadJournalReply  # noqa: E402
from protocol.records import REC_INVOICE, InvoiceRecord  # noqa: E402

BAUD = 115200
TARGET_EFFICIENCY = 0.97
JOURNAL_KIB = 200  # ~50 ring sectors: more does not mount on a 256 KiB MicroPython heap yet (see results)


def efficiency() -> dict:
    payload = ReadJournalReply.build({"offset": 0, "total": READ_JOURNAL_MAX, "data": bytes(READ_JOURNAL_MAX)})
    wire = frame.reply(BY_NAME["READ_JOURNAL"].code, 1, 0, payload)
    return {
        "journal_bytes": READ_JOURNAL_MAX,
        "payload_bytes": len(payload),
        "wire_bytes": len(wire),
        "journal_per_wire": READ_JOURNAL_MAX / len(wire),
        "payload_per_wire": len(payload) / len(wire),
        "seconds_at_115200": len(wire) * BITS_PER_BYTE / BAUD,
    }


def burst(interpreter: str, pace: bool, count: int) -> dict:
    """Bytes per second of `count` GET_INFO replies to one burst of requests."""
    requests = b"".join(frame.request(BY_NAME["GET_INFO"].code, rid) for rid in range(1, count + 1))
    with tempfile.TemporaryDirectory() as state, SimTill(state, interpreter, baud=BAUD, pace=pace) as sim:
        with serial.serial_for_url(sim.port, BAUD, timeout=0.01) as port:
            rx = frame.FrameReceiver()
            got = frames = 0
            start = time.perf_counter()
            port.write(requests)
            deadline = start + 30
            while frames < count and time.perf_counter() < deadline:
                data = port.read(port.in_waiting or 1)
                got += len(data)
                frames += len(rx.feed(data))
            elapsed = time.perf_counter() - start
    rate = got / elapsed
    return {"replies": frames, "bytes": got, "seconds": elapsed, "bytes_per_s": rate,
            "of_line_rate": rate / (BAUD / BITS_PER_BYTE)}


def make_journal(state: Path, kib: int) -> int:
    """A simulator state folder whose fiscal memory holds about `kib` KiB of read-out stream."""
    with SimTill(state, "cpython", cards="none") as sim:  # writes config.json and a formatted flash.img
        sectors, machine_no = sim.config["flash_sectors"], sim.config["machine_no"]
    flash = NorFlash(sector_count=sectors, sector_size=4096)
    flash.attach(str(state / "flash.img"))
    jn = Journal(flash, machine_device_id(machine_no))
    number = 0
    while jn.stream_length() < kib * 1024:
        number += 1
        jn.append(REC_INVOICE, InvoiceRecord.build(dict(
            request=dict(rid=number, digest=0), kind=1, code="1440012345", number=number, date=20260105,
            time=100000, ref_number=0, total=1000, lines=[dict(item=1, amount=1000)] + [dict(item=0, amount=0)] * 5,
            fiscal_code=bytes(8))))
    total = jn.stream_length()
    flash.close()
    return total


def read_out(state: Path, interpreter: str, pace: bool) -> dict:
    with SimTill(state, interpreter, baud=BAUD, pace=pace) as sim, TillClient(sim.port, BAUD, timeout=5.0) as till:
        start = time.perf_counter()
        got = frames = wire = 0
        total = 1
        while got < total:
            r = till.call_ok("READ_JOURNAL", {"offset": got, "length": READ_JOURNAL_MAX})
            got += len(r.data)
            total = r.total
            frames += 1
            wire += len(r.data) + 8 + frame.OVERHEAD  # offset, total, then the frame's header and CRCs
        elapsed = time.perf_counter() - start
    line_time = wire * BITS_PER_BYTE / BAUD
    return {"journal_bytes": got, "frames": frames, "wire_bytes": wire, "seconds": elapsed,
            "journal_bytes_per_s": got / elapsed,
            "line_rate_seconds": line_time, "of_line_rate": line_time / elapsed}


def main() -> None:
    quick = "--quick" in sys.argv
    count = 32 if quick else 128
    eff = efficiency()
    results: dict[str, Any] = {"efficiency": eff, "wire_rate": {}, "baud": BAUD,
               "python": platform.python_version(), "machine": platform.machine()}
    print("READ_JOURNAL max reply: %d journal bytes in %d wire bytes = %.4f (target >= %.2f), %.3f s at %d"
          % (eff["journal_bytes"], eff["wire_bytes"], eff["journal_per_wire"], TARGET_EFFICIENCY,
             eff["seconds_at_115200"], BAUD))
    for interpreter in ("cpython", "micropython"):
        for pace in (True, False):
            r = burst(interpreter, pace, count)
            results["wire_rate"]["%s_%s" % (interpreter, "paced" if pace else "unpaced")] = r
            print("%-11s %-8s %d GET_INFO replies, %d bytes in %.3f s: %.0f B/s = %.3f of line rate"
                  % (interpreter, "paced" if pace else "unpaced", r["replies"], r["bytes"], r["seconds"],
                     r["bytes_per_s"], r["of_line_rate"]))
    kib = 48 if quick else JOURNAL_KIB
    results["journal_readout"] = {}
    with tempfile.TemporaryDirectory() as state:
        stream = make_journal(Path(state), kib)
        print("READ_JOURNAL read-out of a %d-byte stream (%d full frames), %d baud:"
              % (stream, -(-stream // READ_JOURNAL_MAX), BAUD))
        for interpreter in ("cpython", "micropython"):
            for pace in (True, False):
                key = "%s_%s" % (interpreter, "paced" if pace else "unpaced")
                try:
                    r = read_out(Path(state), interpreter, pace)
                except SimTillError as e:  # e.g. the firmware runs out of heap mounting the journal
                    results["journal_readout"][key] = {"error": str(e).splitlines()[-1]}
                    print("%-11s %-8s failed: %s" % (interpreter, "paced" if pace else "unpaced",
                                                    str(e).splitlines()[-1]))
                    continue
                results["journal_readout"][key] = r
                print("%-11s %-8s %d bytes in %.2f s: %.0f journal B/s; line time %.2f s = %.3f of line rate"
                      % (interpreter, "paced" if pace else "unpaced", r["journal_bytes"], r["seconds"],
                         r["journal_bytes_per_s"], r["line_rate_seconds"], r["of_line_rate"]))
    out = ROOT / "bench" / "results" / "link.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("wrote", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
