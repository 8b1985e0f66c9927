"""Memory gate: the journal of a well-used till mounts and reads out under the real MicroPython unix port
with a 256 KiB heap, running from the firmware's .mpy image with the whole till loaded (its code takes
~129 KiB of that heap), as a board boots it.

The flash image (4 MiB partition, > 2 MiB of records) is built on CPython with hw_sim.nor_flash and the
journal, saved to a file and read on MicroPython through a file-backed block device (the image does not
fit the heap): mount, then the whole READ_JOURNAL stream in 4 KiB pieces, compared with CPython's."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from conftest import FIRMWARE, ROOT

sys.path.insert(0, str(FIRMWARE))
from fiscal_till.journal import Journal  # noqa: E402
from fiscal_till.journal_format import DAILY, INIT, INVOICE  # noqa: E402

from hw_sim import firmware_image  # noqa: E402
from hw_sim.nor_flash import NorFlash  # noqa: E402

DEVICE = b"MEMTEST1"
SECTORS = 1024  # 4 MiB partition: 318 fiscal sectors (default quotas), 706 ring sectors
PIECE = 4096

SCRIPT = r'''
import gc
import sys
gc.collect()
base = gc.mem_alloc()
from fiscal_till import device  # the whole till, as main.py loads it
gc.threshold(16 * 1024)  # as main.py and sim_main.py
from fiscal_till.journal import Journal
import hashlib
from binascii import hexlify


class FileFlash:
    """Read-only block device over the image file (extended protocol)."""

    def __init__(self, path, bs):
        self.f = open(path, "rb")
        self.bs = bs
        self.f.seek(0, 2)
        self.n = self.f.tell() // bs

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        raise OSError(30)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        return 0


gc.collect()
code = gc.mem_alloc() - base
before = gc.mem_alloc()
j = Journal(FileFlash(sys.argv[1], 4096), b"MEMTEST1")
gc.collect()
mounted = gc.mem_alloc()
print("MOUNT", len(j.damage), j.next_index, j.inv_count, j.stream_length(), j.chain_head().hex())
print("MEM code=%d journal=%d free=%d" % (code, mounted - before, gc.mem_free()))
total = j.stream_length()
buf = bytearray(PIECE)
h = hashlib.sha256()
off = 0
while off < total:
    h.update(j.read_stream(off, PIECE, buf))
    off += PIECE
gc.collect()
a1 = gc.mem_alloc()
h2 = hashlib.sha256()
off = 0
while off < total:  # without a buffer: one allocation per piece
    h2.update(j.read_stream(off, PIECE))
    off += PIECE
gc.collect()
print("STREAM", hexlify(h.digest()).decode(), hexlify(h2.digest()).decode())
print("MEM after-read=%d after-read-nobuf=%d free=%d" % (a1 - before, gc.mem_alloc() - before, gc.mem_free()))
'''.replace("PIECE", str(PIECE))


def _build_image(path):
    flash = NorFlash(sector_count=SECTORS, sector_size=4096)
    Journal.format(flash, DEVICE, format_id=b"\x01\x02\x03\x04")
    j = Journal(flash, DEVICE)
    j.append(INIT, b"I" * 300)
    n = 0
    while True:
        for _ in range(400):  # ~25 ring sectors a day
            j.append(INVOICE, (b"%08d" % n) * 30)
            n += 1
        j.append(DAILY, b"D" * 150)
        if j.stream_length() >= 2 * 1024 * 1024 + 64 * 1024:
            break
    with open(path, "wb") as f:
        f.write(flash.data)
    j = Journal(flash, DEVICE)
    stream = j.read_stream(0, j.stream_length())
    return j, hashlib.sha256(stream).hexdigest()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, mpy_cross):
    out = tmp_path_factory.mktemp("fw")
    firmware_image.build(out)
    return out


@pytest.mark.micropython
def test_big_journal_mounts_and_reads_out_on_256k_heap(micropython, image_dir, tmp_path):
    img = tmp_path / "flash.img"
    j, digest = _build_image(img)
    assert j.stream_length() >= 2 * 1024 * 1024 and not j.damage
    script = tmp_path / "memtest.py"
    script.write_text(SCRIPT)
    r = subprocess.run([micropython, "-X", "heapsize=256k", str(script), str(img)], capture_output=True,
                       text=True, timeout=120, env={"MICROPYPATH": str(image_dir)})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines() if " " in line)
    print(r.stdout)
    assert lines["MOUNT"] == "0 %d %d %d %s" % (j.next_index, j.inv_count, j.stream_length(), j.chain_head().hex())
    assert lines["STREAM"] == "%s %s" % (digest, digest)
