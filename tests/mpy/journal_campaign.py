"""Power-loss campaign for the fiscal-memory journal, shared by CPython (pytest) and MicroPython.

Runs under both interpreters: no pytest, no dataclasses, no f-string format specs.  A *run* formats a
fresh flash, arms a power cut, plays a scenario until the cut, powers the device back on, mounts, checks
the invariants, appends more records and checks again:

* every acknowledged record is present and identical (invoice detail may be missing only when a DAILY
  acknowledged before the cut covers it, and then read() says 'overwritten');
* no phantom: the only record allowed beyond the acknowledged ones is the one in flight at the cut;
* the chain head equals the chain recomputed from the records (spec formula, not journal code);
* counters agree, verify() finds no damage;
* recovery never reprograms a byte that was programmed before the cut (unless its sector was erased).
"""

import sys
import gc
import struct
import hashlib

try:
    from hw_sim.nor_flash import NorFlash, PowerLoss, TEARS
except ImportError:  # MicroPython: MICROPYPATH holds hw_sim/ itself
    from nor_flash import NorFlash, PowerLoss, TEARS
from fiscal_till.journal import Journal, JournalError, genesis

INIT, DAILY, DECL, CLEAR, ROLL_LOAD, ROLL_USAGE, INVOICE, EVENT = 1, 2, 3, 4, 5, 6, 7, 8
# body sizes of protocol/records.py
SIZES = {INIT: 353, DAILY: 150, DECL: 165, CLEAR: 39, ROLL_LOAD: 33, ROLL_USAGE: 38, INVOICE: 76, EVENT: 21}
DEVICE = b"\x32\x01\x00\x00\x12\x34\x56\x78"
FORMAT_ID = b"\x00\x00\x00\x01"

# small geometry: 1 KiB sectors, so the scenario opens fiscal sectors and wraps the detail ring
SMALL_QUOTAS = ((1, 384), (40, 160), (4, 176), (4, 48), (8, 48), (8, 48), (16, 32))
GEOMETRIES = {
    "1k": {"sector_size": 1024, "sectors": 29, "quotas": SMALL_QUOTAS},
    "4k": {"sector_size": 4096, "sectors": 10, "quotas": SMALL_QUOTAS},
}


def body(rtype, k, size=None):
    if size is None:
        size = SIZES[rtype]
    return bytes([(k * 7 + i * 13 + rtype * 31) & 0xFF for i in range(size)])


def scenario():
    """Initialization, roll loads, 200 invoice details with 10 daily records, a declaration, a
    clear-unlock, roll usage and events.  Entries are (type, k): the body is ``body(type, k)``, made
    when needed (MicroPython heaps are small)."""
    ops = [(INIT, 0), (ROLL_LOAD, 1), (EVENT, 2)]
    k = 3
    for day in range(10):
        for i in range(20):
            ops.append((INVOICE, k))
            k += 1
        ops.append((DAILY, k))
        k += 1
        if day == 4:
            ops.append((ROLL_USAGE, k))
            ops.append((ROLL_LOAD, k + 1))
            k += 2
    ops.append((DECL, k))
    ops.append((CLEAR, k + 1))
    ops.append((EVENT, k + 2))
    return ops


def more_ops(k):
    return [(INVOICE, k), (INVOICE, k + 1), (EVENT, k + 2), (INVOICE, k + 3), (DAILY, k + 4)]


def materialize(entries):
    return [(e[0], payload(e)) for e in entries]


def payload(op):
    """The body of an entry: bytes as such, an int k as ``body(type, k)``."""
    b = op[1]
    return body(op[0], b) if isinstance(b, int) else b


def chain(records, device=DEVICE, format_id=FORMAT_ID):
    """The chain head by its definition: SHA-256(head || index u32 || type u8 || length u16 || body)."""
    head = hashlib.sha256(b"FJ-genesis" + device + format_id).digest()
    for i in range(len(records)):
        t = records[i][0]
        b = payload(records[i])
        h = hashlib.sha256(head)
        h.update(struct.pack("<IBH", i, t, len(b)))
        h.update(b)
        head = h.digest()
    return head


_flashes = {}


MICROPYTHON = sys.implementation.name == "micropython"


def new_flash(geo, seed=1):
    """A blank flash of geometry ``geo`` (one buffer per geometry, reused: MicroPython heaps are small)."""
    if MICROPYTHON:
        gc.collect()
    f = _flashes.get(geo)
    if f is None:
        g = GEOMETRIES[geo]
        f = _flashes[geo] = NorFlash(sector_count=g["sectors"], sector_size=g["sector_size"], page_size=256)
        _snaps[geo] = bytearray(f.size)
    f.wipe(seed)
    return f


_snaps = {}


def format_flash(flash, geo):
    Journal.format(flash, DEVICE, quotas=GEOMETRIES[geo]["quotas"], format_id=FORMAT_ID)


class Failure(Exception):
    pass


def play(flash, ops, acked):
    """Append ``ops`` to a freshly mounted journal; returns the op in flight at a power loss, or None."""
    j = Journal(flash, DEVICE)
    if j.damage:
        raise Failure("damage at mount: %r" % (j.damage,))
    for op in ops:
        try:
            idx = j.append(op[0], payload(op))
        except PowerLoss:
            return op
        if idx != len(acked):
            raise Failure("append returned index %d, expected %d" % (idx, len(acked)))
        acked.append(op)
    return None


def check(flash, acked, inflight, where):
    """Mount and check every invariant; the in-flight record, if it made it, joins ``acked``."""
    j = Journal(flash, DEVICE)
    if j.damage:
        raise Failure("%s: damage after recovery: %r" % (where, j.damage))
    n = len(acked)
    if j.next_index == n + 1 and inflight is not None:
        acked.append(inflight)
        n += 1
    elif j.next_index != n:
        raise Failure("%s: %d records after recovery, %d acknowledged" % (where, j.next_index, n))
    last_daily = -1
    for i in range(n):
        if acked[i][0] == DAILY:
            last_daily = i
    # every acknowledged record, by index
    for i in range(n):
        t = acked[i][0]
        b = payload(acked[i])
        try:
            got = j.read(i)
        except JournalError as e:
            if e.reason == "overwritten" and t == INVOICE and i < last_daily:
                continue
            raise Failure("%s: record %d unreadable: %r" % (where, i, e.args))
        if got[0] != t or got[1] != b:
            raise Failure("%s: record %d differs" % (where, i))
    # the sequential read-out: no phantom, same bytes
    count = 0
    for idx, t, b, state in j.records():
        if idx is None or idx >= n or state != 0 or acked[idx][0] != t or payload(acked[idx]) != b:
            raise Failure("%s: phantom or altered record at index %r" % (where, idx))
        count += 1
    if j.chain_head() != chain(acked):
        raise Failure("%s: chain head differs" % where)
    counts = {}
    for a in acked:
        counts[a[0]] = counts.get(a[0], 0) + 1
    c = j.counters()
    for t in c:
        if c[t] != counts.get(t, 0):
            raise Failure("%s: counter of type %d is %d, expected %d" % (where, t, c[t], counts.get(t, 0)))
    bad = j.verify()
    if bad:
        raise Failure("%s: verify found %r" % (where, bad))
    return count


def snapshot(flash):
    for geo in _flashes:
        if _flashes[geo] is flash:
            buf = _snaps[geo]
            buf[:] = flash.data
            return buf, list(flash.erase_counts)
    return bytearray(flash.data), list(flash.erase_counts)


def check_no_overprogram(flash, snap, where):
    """Bytes programmed before the cut are unchanged, unless their sector was erased since."""
    data, counts = snap
    ss = flash.sector_size
    for s in range(flash.sector_count):
        if flash.erase_counts[s] != counts[s]:
            continue
        a = s * ss
        old = memoryview(data)[a:a + ss]
        new = memoryview(flash.data)[a:a + ss]
        if old == new:
            continue
        for i in range(ss):
            if old[i] != 0xFF and old[i] != new[i]:
                raise Failure("%s: byte %d of sector %d reprogrammed after the cut" % (where, i, s))


def one_run(geo, ops, cut, tear, seed=1):
    """Returns True if the cut point was reached (power lost), False if the scenario ended first."""
    flash = new_flash(geo, seed)
    format_flash(flash, geo)
    flash.cut_after(cut, tear)
    acked = []
    inflight = play(flash, ops, acked)
    if inflight is None and not flash.dead:
        flash.cancel_cut()
        return False
    flash.power_on()
    where = "%s cut %d tear %d" % (geo, cut, tear)
    snap = snapshot(flash)
    check(flash, acked, inflight, where)
    extra = more_ops(1000 + cut)
    if play(flash, extra, acked) is not None:
        raise Failure("%s: unexpected power loss" % where)
    check_no_overprogram(flash, snap, where)
    check(flash, acked, None, where + " (after more appends)")
    return True


def count_ops(geo, ops):
    flash = new_flash(geo)
    format_flash(flash, geo)
    base = flash.ops
    acked = []
    play(flash, ops, acked)
    return flash.ops - base


def campaign(geo, step=1, offset=0, tears=None):
    """Cut at every ``step``-th operation of the scenario under each tear behaviour.  Returns
    (cut points tried, total runs)."""
    new_flash(geo)  # the big buffers first, before the heap fills with small objects
    ops = scenario()
    total = count_ops(geo, ops)
    if tears is None:
        tears = TEARS
    runs = 0
    points = 0
    cut = offset
    while cut < total:
        points += 1
        for tear in tears:
            if not one_run(geo, ops, cut, tear, seed=cut + 1):
                raise Failure("cut %d not reached" % cut)
            runs += 1
        cut += step
    return total, points, runs


def image_after(geo, cut, tear):
    """Flash image digest and chain head after a cut, recovery and more appends (interpreter-neutral)."""
    flash = new_flash(geo, cut + 1)
    ops = scenario()
    format_flash(flash, geo)
    flash.cut_after(cut, tear)
    acked = []
    inflight = play(flash, ops, acked)
    flash.power_on()
    check(flash, acked, inflight, "image")
    play(flash, more_ops(7), acked)
    j = Journal(flash, DEVICE)
    return hashlib.sha256(flash.data).digest(), j.chain_head(), len(acked)


def main(argv):
    """``campaign GEO STEP OFFSET`` or ``image GEO CUT TEAR``; prints one line."""
    import binascii
    if argv and argv[0] == "image":
        d, h, n = image_after(argv[1], int(argv[2]), int(argv[3]))
        print("IMAGE %s %s %d" % (binascii.hexlify(d).decode(), binascii.hexlify(h).decode(), n))
        return
    geo = argv[1] if len(argv) > 1 else "1k"
    step = int(argv[2]) if len(argv) > 2 else 1
    offset = int(argv[3]) if len(argv) > 3 else 0
    try:
        total, points, runs = campaign(geo, step, offset)
        print("OK ops=%d points=%d runs=%d" % (total, points, runs))
    except Failure as e:
        print("FAIL " + str(e))


if __name__ == "__main__":
    main(["campaign"] + sys.argv[1:])
