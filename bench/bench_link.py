"""Host-link benchmark.

    .venv/bin/python bench/bench_link.py [--quick]

1. Link efficiency of a maximum-size READ_JOURNAL reply, from the real frame builder: journal bytes per
   wire byte (target >= 0.97).
2. Wire rate over a real pty at 115200 baud with pacing on: a burst of GET_INFO requests is written at
   once and the replies' bytes are divided by the time from the write to the last reply byte, then by the
   line rate (115200 / 10 = 11,520 B/s).  Near 1.0 means the till keeps the line busy; pacing caps it
   there (a hair above: the last slice of the burst arrives up to 5 ms early, hw_sim.uart).  Run under both interpreters, and once unpaced to show the pty's own speed.
Writes bench/results/link.json.  Informational only: no test asserts on timings.
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402

from hw_sim.sim import SimTill  # noqa: E402
from hw_sim.uart import BITS_PER_BYTE  # noqa: E402
from protocol import frame  # noqa: E402
from protocol.commands import BY_NAME, READ_JOURNAL_MAX, ReadJournalReply  # noqa: E402

BAUD = 115200
TARGET_EFFICIENCY = 0.97


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


def main() -> None:
    count = 32 if "--quick" in sys.argv else 128
    eff = efficiency()
    results = {"efficiency": eff, "wire_rate": {}, "baud": BAUD,
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
    out = ROOT / "bench" / "results" / "link.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("wrote", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
