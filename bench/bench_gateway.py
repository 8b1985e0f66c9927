"""Bureau gateway benchmark: filings per second on SQLite and PostgreSQL against the raw signature-verify
rate, and the audit read-out over a paced pty against the line rate.

Run: .venv/bin/python bench/bench_gateway.py [--filings 1500] [--journal-mib 4] [--skip-pg] [--skip-audit]
Prints the figures and ratios, writes bench/results/gateway.json.  Nothing is asserted here.

Filing = gateway.stations.decide on the raw 161-byte declaration: verify (check bytes, MAC1, Ed25519
signature), the taxpayer's row locked, the declaration recorded, 一窗式 compare, surcharge, clear-unlock
sealed and recorded, five events, one durable commit (SQLite WAL + synchronous=FULL; PostgreSQL with
fsync on, synchronous_commit on).  The card write (phase 2) is not part of it: it waits on a card, not
on the bureau.  Raw rate = cryptography's Ed25519PublicKey.verify on the same payloads, one core.
Targets: SQLite >= 0.25 x raw; PostgreSQL with 8 concurrent clients (processes) >= 0.5 x raw.  Each is
measured with one commit per filing and with group commit (decide_batch, --batch filings per commit).

Audit: a till with a 4 MiB flash filled through the simulator (invoices over 26 days, each day closed,
until the detail ring has wrapped), then read out with READ_JOURNAL over its pty paced at 115200 baud (SimTill
pace=True); the time against bytes / 11 520 B/s.  Target <= 1.10.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from gateway import stations  # noqa: E402
from gateway.db import open_store  # noqa: E402
from gateway.issuance import Limits, Taxpayer  # noqa: E402
from gateway.keystore import KeyStore  # noqa: E402
from gateway.stations.income import DeclaredIncome  # noqa: E402
from protocol import apdu  # noqa: E402
from protocol import crypto  # noqa: E402
from protocol.crypto import SigKind  # noqa: E402

ITEMS = [{"index": 1, "rate": 300, "code": "10101", "name": "餐饮"}, {"index": 2, "rate": 500, "code": "10201", "name": "住宿"}]
MACHINES_PER_TAXPAYER = 10
CLIENTS = 8
LINE_RATE = 115200 / 10  # bytes per second: 8N1 is 10 bits a byte


def month_ends(n: int, first=dt.date(2026, 1, 31)) -> list[int]:
    out, d = [], first
    for _ in range(n):
        out.append(d.year * 10000 + d.month * 100 + d.day)
        nxt = (d.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        d = (nxt + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return out


def declaration(ks: KeyStore, card_no: bytes, machine_no: str, start: int, end: int, n: int) -> bytes:
    """A DATA_COLLECT record (161 bytes) as a fiscal card makes it: MAC1 and signature under the test keys."""
    keys = crypto.derive_fiscal_card_keys(ks.master(), card_no)
    normal = [1000 * n, 500 * n, 0, 0, 0, 0]
    sums = dict(normal_count=2 * n, return_count=0, void_count=1, items=[1, 2, 0, 0, 0, 0], normal=normal,
                returned=[0] * 6)
    data = apdu.DeclareDutyData.build(dict(start=start, end=end, sums=sums))
    payload = data[:-1] + sum(normal).to_bytes(4, "big") + bytes(4) + b"\x00"
    mac1 = crypto.declaration_mac(keys.decl_mac, payload, card_no, machine_no)
    sig = crypto.sign_record(keys, SigKind.DECLARATION, payload)
    resp = apdu.DeclareDutyResponse.build(dict(normal_total=sum(normal), return_total=0, status=0, mac1=mac1, signature=sig))
    return card_no + data + resp


def populate(url: str, taxpayers: int, filings_each: int) -> list[list[tuple[str, bytes, int]]]:
    """Register taxpayers and machines; per taxpayer the filings (taxpayer_no, record, income) to make."""
    st = stations.Station(open_store(url), KeyStore.for_tests(), name="bench-setup", clock=lambda: 20300101)
    work = []
    periods = -(-filings_each // MACHINES_PER_TAXPAYER)
    ends = month_ends(periods)
    for t in range(taxpayers):
        tp_no = "BENCH%014d" % t
        stations.register_taxpayer(st, Taxpayer(tp_no, "1%014d" % t, "bench %d" % t, "144010000000"), tax_items=ITEMS)
        mine = []
        for k in range(MACHINES_PER_TAXPAYER):
            machine = "9%03d%012d" % (t, k)
            fc, uc = "32%02x%012x" % (t, 2 * k), "32%02x%012x" % (t, 2 * k + 1)
            stations.register_machine(st, tp_no, machine, Limits(20260131, 10 ** 6, 10 ** 8, 10 ** 6))
            stations.issue_cards(st, tp_no, machine, fiscal_card_no=fc, user_card_no=uc, valid_from=20260101, valid_to=20401231)
            for i, end in enumerate(ends):
                start = 20260101 if i == 0 else ends[i - 1] + 1 if ends[i - 1] % 100 < 28 else _next_day(ends[i - 1])
                mine.append((tp_no, declaration(st.keystore, bytes.fromhex(fc), machine, start, end, i + 1), 1500 * (i + 1)))
        mine.sort(key=lambda w: w[1][8:16])  # period order within each machine is kept; machines interleave
        work.append(mine[:filings_each])
    st.store.close()
    return work


def _next_day(d: int) -> int:
    n = dt.date(d // 10000, d // 100 % 100, d % 100) + dt.timedelta(days=1)
    return n.year * 10000 + n.month * 100 + n.day


def raw_verify_rate(records: list[bytes], seconds: float = 1.5) -> float:
    """cryptography's Ed25519 verify on the same signed payloads, key objects pre-loaded: one core."""
    ks = KeyStore.for_tests()
    keys = {}
    items = []
    for rec in records[:200]:
        card = rec[:8]
        if card not in keys:
            keys[card] = Ed25519PublicKey.from_public_bytes(crypto.derive_fiscal_card_keys(ks.master(), card).public_key)
        payload = rec[8:82] + rec[83:92]
        items.append((keys[card], rec[96:160], bytes([1, 2]) + payload))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for key, sig, msg in items:
            key.verify(sig, msg)
        n += len(items)
    return n / (time.perf_counter() - t0)


def run_filings(url: str, work: list[tuple[str, bytes, int]], name: str) -> tuple[int, float]:
    st = stations.Station(open_store(url, migrate_schema=False), KeyStore.for_tests(), name=name, clock=lambda: 20300101)
    t0 = time.perf_counter()
    for tp_no, record, income in work:
        outcome, _ = stations.decide(st, tp_no, DeclaredIncome(income), record=record)
        assert outcome.accepted
    dt_ = time.perf_counter() - t0
    st.store.close()
    return len(work), dt_


def run_batches(url: str, work: list[tuple[str, bytes, int]], name: str, batch: int) -> tuple[int, float]:
    """Group commit (gateway.stations.decide_batch): `batch` filings per durable commit."""
    st = stations.Station(open_store(url, migrate_schema=False), KeyStore.for_tests(), name=name, clock=lambda: 20300101)
    t0 = time.perf_counter()
    for i in range(0, len(work), batch):
        results = stations.decide_batch(st, [(tp, rec, DeclaredIncome(inc)) for tp, rec, inc in work[i:i + batch]])
        assert all(not isinstance(r, Exception) and r[0].accepted for r in results), results
    dt_ = time.perf_counter() - t0
    st.store.close()
    return len(work), dt_


def _client(url, work, name, barrier, q, batch):
    barrier.wait()
    q.put(run_batches(url, work, name, batch) if batch > 1 else run_filings(url, work, name))


def run_concurrent(url: str, works: list[list], batch: int = 1) -> tuple[int, float]:
    ctx = mp.get_context("fork")
    barrier, q = ctx.Barrier(len(works) + 1), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, w, "bench-%d" % i, barrier, q, batch)) for i, w in enumerate(works)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    results = [q.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return sum(n for n, _ in results), wall


# ---- audit read-out -------------------------------------------------------------------------------------------
def audit_readout(mib: int, folder: Path) -> dict:
    from gateway.link import TillClient
    from gateway.stations.audit import read_journal
    from testbed.simtill import SimTill
    from testbed.simrig import SimRig
    state = folder / "till"
    sectors = mib * 1024 * 1024 // 4096
    t0 = time.perf_counter()
    with SimRig(state, "cpython", flash_sectors=sectors) as rig:
        rig.rtc.set(20260105, 90000)
        rig.initialize()
        ring_bytes = (sectors - 318) * 4096
        day = dt.date(2026, 1, 5)
        start = 1
        rig.bureau_sells_roll(start, start + 9999)
        rig.ok("LOAD_ROLL")
        issued = 0
        target = int(ring_bytes * 1.05 / 84) + 1  # invoices until the detail ring has wrapped
        per_day = -(-target // 26)  # all before the demo cards' first deadline (2026-01-31), within its limits
        while issued < target:
            rig.rtc.set(day.year * 10000 + day.month * 100 + day.day, 100000)
            for _ in range(min(per_day, target - issued)):
                if issued and issued % 10000 == 0:
                    start += 10000
                    rig.bureau_sells_roll(start, start + 9999)
                    rig.ok("LOAD_ROLL")
                rig.ok("ISSUE_INVOICE", **rig.invoice(1000))
                issued += 1
            day += dt.timedelta(days=1)
        rig.rtc.set(day.year * 10000 + day.month * 100 + day.day, 90000)
        rig.ok("DAILY_CLOSE")
    fill_s = time.perf_counter() - t0
    with SimTill(state, "cpython", pace=True) as sim, TillClient(sim.port, timeout=10) as till:
        t0 = time.perf_counter()
        stream = read_journal(till)
        seconds = time.perf_counter() - t0
    limit = len(stream) / LINE_RATE
    return {"flash_mib": mib, "invoices": issued, "fill_seconds": round(fill_s, 1), "journal_bytes": len(stream),
            "seconds": round(seconds, 2), "line_rate_limit_seconds": round(limit, 2), "ratio": round(seconds / limit, 4),
            "target_max": 1.10}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--filings", type=int, default=1500, help="filings per database run (default 1500)")
    ap.add_argument("--journal-mib", type=int, default=4, help="flash size for the audit read-out (default 4)")
    ap.add_argument("--batch", type=int, default=50, help="filings per commit in the group-commit runs (default 50)")
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--skip-audit", action="store_true")
    ap.add_argument("--audit-only", action="store_true", help="only the read-out (keeps the other figures on file)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    out: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    res = ROOT / "bench" / "results" / "gateway.json"
    if args.audit_only:
        out = json.loads(res.read_text()) if res.exists() else out
        a = out["audit_readout"] = audit_readout(args.journal_mib, tmp)
        print("audit read-out at 115200 baud: %d bytes in %.1f s, line-rate limit %.1f s, ratio %.3f (target <= 1.10)"
              % (a["journal_bytes"], a["seconds"], a["line_rate_limit_seconds"], a["ratio"]))
        res.write_text(json.dumps(out, indent=2) + "\n")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        url = "sqlite:///%s" % (tmp / "bureau.db")
        (work,) = populate(url, 1, args.filings)
        raw = raw_verify_rate([w[1] for w in work])
        out["raw_verify_per_s"] = round(raw)
        print("raw Ed25519 verify: %.0f/s (one core)" % raw)
        n, secs = run_filings(url, work, "bench")
        rate = n / secs
        out["sqlite"] = {"filings": n, "seconds": round(secs, 3), "per_s": round(rate, 1), "ratio": round(rate / raw, 4),
                         "target_min": 0.25, "journal_mode": "wal", "synchronous": "full"}
        print("SQLite (WAL, synchronous FULL): %d filings in %.2f s = %.0f/s, ratio %.3f (target >= 0.25)" % (
            n, secs, rate, rate / raw))
        url = "sqlite:///%s" % (tmp / "bureau-batch.db")
        (work,) = populate(url, 1, args.filings)
        n, secs = run_batches(url, work, "bench", args.batch)
        rate = n / secs
        out["sqlite_group_commit"] = {"filings": n, "batch": args.batch, "seconds": round(secs, 3), "per_s": round(rate, 1),
                                      "ratio": round(rate / raw, 4), "target_min": 0.25}
        print("SQLite, group commit of %d: %d filings in %.2f s = %.0f/s, ratio %.3f" % (args.batch, n, secs, rate, rate / raw))
        if not args.skip_pg:
            from pg import PgServer
            server = PgServer(fsync=True)
            try:
                purl = server.migrated_database()
                works = populate(purl, CLIENTS, max(1, args.filings // CLIENTS))
                n, wall = run_concurrent(purl, works)
                rate = n / wall
                out["postgresql"] = {"clients": CLIENTS, "filings": n, "seconds": round(wall, 3), "per_s": round(rate, 1),
                                     "ratio": round(rate / raw, 4), "target_min": 0.5, "fsync": True}
                print("PostgreSQL, %d clients (fsync on): %d filings in %.2f s = %.0f/s, ratio %.3f (target >= 0.5)" % (
                    CLIENTS, n, wall, rate, rate / raw))
                purl = server.migrated_database()
                works = populate(purl, CLIENTS, max(1, args.filings // CLIENTS))
                n, wall = run_concurrent(purl, works, args.batch)
                rate = n / wall
                out["postgresql_group_commit"] = {"clients": CLIENTS, "batch": args.batch, "filings": n,
                                                  "seconds": round(wall, 3), "per_s": round(rate, 1),
                                                  "ratio": round(rate / raw, 4), "target_min": 0.5}
                print("PostgreSQL, %d clients, group commit of %d: %d filings in %.2f s = %.0f/s, ratio %.3f" % (
                    CLIENTS, args.batch, n, wall, rate, rate / raw))
            finally:
                server.stop()
        if not args.skip_audit:
            a = audit_readout(args.journal_mib, tmp)
            out["audit_readout"] = a
            print("audit read-out at 115200 baud: %d bytes in %.1f s, line-rate limit %.1f s, ratio %.3f (target <= 1.10)"
                  % (a["journal_bytes"], a["seconds"], a["line_rate_limit_seconds"], a["ratio"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", res.relative_to(ROOT))


if __name__ == "__main__":
    main()
