"""NOR flash model with power-loss injection, speaking MicroPython's extended block-device protocol.

Theory of operation
-------------------
The device is ``sector_count`` erase sectors of ``sector_size`` bytes (a *block* of the block-device
protocol is one erase sector).  Erase sets a whole sector to 0xFF; programming can only clear bits
(``new = old AND data``) and is done page by page (``page_size``), so a program call that spans pages
is several *operations*.  Every page program and every sector erase is one operation; operations are
numbered from 1 since the device was created (``ops``).

Power loss: ``cut_after(n, tear)`` lets ``n`` more operations complete; the next one is *torn* and
raises :class:`PowerLoss`, like a CPU losing power in the middle of a flash write.  What the torn
operation leaves behind is chosen by ``tear``:

* ``TEAR_NOTHING`` - nothing happened (a clean cut between two operations);
* ``TEAR_PREFIX``  - a random prefix of the page was programmed / of the sector was erased;
* ``TEAR_RANDOM``  - a random subset of the bits to clear was cleared / a random subset of the sector's
  bytes went to 0xFF while the others kept their old value.

After a power loss the device is dead: every call raises :class:`PowerLoss` until :meth:`power_on`.

Wear: per-sector erase counters; past ``endurance`` an erase either raises ``OSError(EIO)``
(``WORN_EIO``) or succeeds leaving a few bits stuck at 0 (``WORN_STUCK``).

Read disturb: ``read_flip_rate`` is the probability that one ``readblocks`` call returns one flipped bit
(transient: flash contents are unchanged).  :meth:`flip_bit` damages the stored contents on purpose.

All randomness comes from one seeded xorshift generator, so a given seed tears the same bits under
CPython and under MicroPython.  This module runs on both (no dataclasses, enum, typing, f-strings with
format specs, ``bytes[::-1]``); file persistence is optional (:meth:`attach`).
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_EIO = const(5)
_EINVAL = const(22)

TEAR_NOTHING = const(0)
TEAR_PREFIX = const(1)
TEAR_RANDOM = const(2)
TEARS = (TEAR_NOTHING, TEAR_PREFIX, TEAR_RANDOM)
TEAR_NAMES = ("nothing", "prefix", "random")

WORN_EIO = const(0)
WORN_STUCK = const(1)

# ioctl operations of the extended block-device protocol
IOCTL_INIT = const(1)
IOCTL_DEINIT = const(2)
IOCTL_SYNC = const(3)
IOCTL_BLOCK_COUNT = const(4)
IOCTL_BLOCK_SIZE = const(5)
IOCTL_BLOCK_ERASE = const(6)


class PowerLoss(BaseException):
    """Raised by the operation that power was lost in, and by every call until ``power_on()``.  A
    BaseException, like SystemExit: firmware that catches its own errors must not catch the end of power."""


class NorFlash:
    def __init__(self, sector_count=64, sector_size=4096, page_size=256, endurance=100000,
                 worn=WORN_EIO, seed=1, read_flip_rate=0.0):
        if sector_size % page_size or sector_count < 1:
            raise ValueError("sector_size must be a multiple of page_size")
        self.sector_count = sector_count
        self.sector_size = sector_size
        self.page_size = page_size
        self.size = sector_count * sector_size
        self.endurance = endurance
        self.worn = worn
        self.read_flip_rate = read_flip_rate
        self.data = bytearray(self.size)
        self._ff = b"\xff" * sector_size
        self._file = None
        self._sidecar = None
        self.wipe(seed)

    def wipe(self, seed=1):
        """A factory-new chip: all 0xFF, no wear, no pending cut, counters at zero (reuses the buffer)."""
        ss = self.sector_size
        for a in range(0, self.size, ss):
            self.data[a:a + ss] = self._ff
        self.erase_counts = [0] * self.sector_count
        self._rng = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1
        self.ops = 0            # program + erase operations performed (torn one included)
        self._cut = -1          # operation number that is torn, -1 = none
        self._tear = TEAR_NOTHING
        self.dead = False
        self.power_losses = 0
        self.reset_stats()

    # ----------------------------------------------------------------- statistics
    def reset_stats(self):
        self.program_ops = 0
        self.erase_ops = 0
        self.read_ops = 0
        self.bytes_programmed = 0
        self.bytes_read = 0
        self.bytes_erased = 0

    # ----------------------------------------------------------------- randomness
    def _rand(self):
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x

    def _below(self, n):
        return self._rand() % n if n > 0 else 0

    # ----------------------------------------------------------------- fault injection
    def cut_after(self, n, tear=TEAR_NOTHING):
        """Let ``n`` more program/erase operations complete, tear the next one (power loss)."""
        if tear not in TEARS:
            raise ValueError("unknown tear behaviour")
        self._cut = self.ops + n + 1
        self._tear = tear

    def cancel_cut(self):
        self._cut = -1

    def power_on(self):
        """Power comes back: the device answers again; a pending cut is cancelled."""
        self.dead = False
        self._cut = -1

    def flip_bit(self, address, bit):
        """Permanent damage: invert one stored bit (not an operation, not counted)."""
        self.data[address] ^= 1 << bit
        self._persist(address, 1)

    def erase_bytes(self, address, n):
        """Permanent damage: set ``n`` stored bytes to 0xFF, as a partial erase would (not an operation,
        not counted).  Truncation campaigns use it to cut a journal's tail."""
        self.data[address:address + n] = b"\xff" * n
        self._persist(address, n)

    def _check_alive(self):
        if self.dead:
            raise PowerLoss("device is powered off")

    def _next_op(self):
        """Count one operation; return True if it is the torn one."""
        self.ops += 1
        return self.ops == self._cut

    def _die(self):
        self.dead = True
        self._cut = -1
        self.power_losses += 1
        raise PowerLoss("power lost in operation %d" % self.ops)

    # ----------------------------------------------------------------- primitive operations
    def read(self, address, buf):
        self._check_alive()
        n = len(buf)
        if address < 0 or address + n > self.size:
            raise OSError(_EINVAL, "out of range")
        buf[:] = self.data[address:address + n] if n else b""
        self.read_ops += 1
        self.bytes_read += n
        if self.read_flip_rate and n and self._below(1000000) < int(self.read_flip_rate * 1000000):
            i = self._below(n)
            buf[i] ^= 1 << self._below(8)

    def program(self, address, data):
        """Program ``data`` at ``address`` page by page (AND semantics)."""
        self._check_alive()
        n = len(data)
        if address < 0 or address + n > self.size:
            raise OSError(_EINVAL, "out of range")
        done = 0
        while done < n:
            a = address + done
            chunk = min(n - done, self.page_size - a % self.page_size)
            torn = self._next_op()
            self._program_page(a, data, done, chunk, torn)
            done += chunk

    def _program_page(self, a, data, start, n, torn):
        old = int.from_bytes(self.data[a:a + n], "little")
        new = old & int.from_bytes(data[start:start + n], "little")
        if torn:
            if self._tear == TEAR_NOTHING:
                new = old
            elif self._tear == TEAR_PREFIX:
                keep = self._below(n)  # bytes fully programmed; the rest untouched
                mask = (1 << (8 * keep)) - 1
                new = (new & mask) | (old & ~mask)
            else:
                clear = old & ~new  # bits the operation would clear
                sub = 0
                bitpos = 0
                while clear >> bitpos:
                    sub |= (self._rand() & (clear >> bitpos) & 0xFFFFFFFF) << bitpos
                    bitpos += 32
                new = old & ~sub
        self.data[a:a + n] = new.to_bytes(n, "little")
        self.program_ops += 1
        self.bytes_programmed += n
        self._persist(a, n)
        if torn:
            self._die()

    def erase(self, sector):
        self._check_alive()
        if sector < 0 or sector >= self.sector_count:
            raise OSError(_EINVAL, "out of range")
        if self.erase_counts[sector] >= self.endurance and self.worn == WORN_EIO:
            raise OSError(_EIO, "sector worn out")
        torn = self._next_op()
        ss = self.sector_size
        a = sector * ss
        self.erase_counts[sector] += 1
        self.erase_ops += 1
        self.bytes_erased += ss
        if not torn:
            self.data[a:a + ss] = self._ff
            if self.erase_counts[sector] > self.endurance:  # WORN_STUCK: some bits stay at 0
                for _ in range(1 + self._below(4)):
                    self.data[a + self._below(ss)] &= ~(1 << self._below(8)) & 0xFF
        elif self._tear == TEAR_PREFIX:
            k = self._below(ss)
            self.data[a:a + k] = self._ff[:k]
        elif self._tear == TEAR_RANDOM:
            for i in range(ss):
                if self._rand() & 1:
                    self.data[a + i] = 0xFF
        self._persist(a, ss)
        self._persist_counts()
        if torn:
            self._die()

    # ----------------------------------------------------------------- block-device protocol
    def readblocks(self, block_num, buf, offset=0):
        self.read(block_num * self.sector_size + offset, buf)

    def writeblocks(self, block_num, buf, offset=None):
        if offset is None:
            # MicroPython's simple protocol: erase the blocks, then program them whole.
            n = (len(buf) + self.sector_size - 1) // self.sector_size
            for i in range(n):
                self.erase(block_num + i)
            self.program(block_num * self.sector_size, buf)
        else:
            self.program(block_num * self.sector_size + offset, buf)

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.sector_count
        if op == IOCTL_BLOCK_SIZE:
            return self.sector_size
        if op == IOCTL_BLOCK_ERASE:
            self.erase(arg)
            return 0
        if op == IOCTL_SYNC:
            self._check_alive()
            self.sync()
            return 0
        if op == IOCTL_INIT or op == IOCTL_DEINIT:
            return 0
        return None

    # ----------------------------------------------------------------- persistence (optional)
    def attach(self, image_path):
        """Keep the contents in ``image_path`` (write-through) and erase counts in ``image_path + '.wear'``.

        An existing image of the right size is loaded; otherwise a blank one is written.  The image always
        equals what the flash holds, even if the process dies right after a torn operation.
        """
        self._sidecar = image_path + ".wear"
        try:
            f = open(image_path, "r+b")
            img = f.read()
            if len(img) != self.size:
                f.close()
                raise OSError(_EINVAL, "out of range")
            self.data[:] = img
        except OSError:
            f = open(image_path, "w+b")
            f.write(self.data)
            f.flush()
        self._file = f
        try:
            with open(self._sidecar) as s:
                counts = [int(x) for x in s.read().split()]
            if len(counts) == self.sector_count:
                self.erase_counts = counts
        except (OSError, ValueError):
            pass
        self._persist_counts()

    def sync(self):
        if self._file is not None:
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _persist(self, address, n):
        f = self._file
        if f is not None:
            f.seek(address)
            f.write(self.data[address:address + n])
            f.flush()

    def _persist_counts(self):
        if self._sidecar is not None:
            with open(self._sidecar, "w") as s:
                s.write(" ".join([str(c) for c in self.erase_counts]))
