"""Fiscal memory: an append-only, power-loss-safe journal on NOR flash (domain §5, docs/FISCAL_MEMORY.md).

Theory of operation
-------------------
The partition (any object speaking MicroPython's extended block-device protocol; one block = one erase
sector) is split in two areas, sized at format time and recorded in every sector header:

* the **fiscal area** (sectors ``0 .. F-1``) holds INIT, DAILY, DECLARATION, CLEAR_UNLOCK, ROLL_LOAD,
  ROLL_USAGE and EVENT records.  It is filled in physical order and never erased after format.
* the **detail ring** (sectors ``F .. F + R - 1``) holds INVOICE records.  Sectors are reused in physical
  order; the oldest one is erased only when every invoice in it is covered by a DAILY record (a DAILY
  covers every INVOICE appended before it).

Every record gets a global **index** (0, 1, 2, ... in append order, both areas together).  Fiscal
records store their index and the chain head before them (``prev_head``), so each is an anchor the
auditor can check on its own; invoice records store neither (write amplification), their index follows
from the fiscal records' indexes.  The chain head is ``SHA-256(head || index || type || len || body)``
over every record in index order, starting from a genesis bound to the device.

Append = program the envelope (type, length, ..., body, CRC-32) in one program call, read it back and
check the CRC, then program the commit byte.  On mount, in each sector's record list:

* committed + CRC good  -> a record;
* not committed         -> torn (power cut before the commit): skipped, never programmed over;
* committed + CRC bad   -> damage (a bit changed after the record was acknowledged);
* an unreadable header, or bytes that are not erased where free space should be -> the rest of the
  sector is abandoned (the next append opens a new sector); if a good record follows, that is damage.

A torn length can only read *larger* than it was (programming clears bits), so skipping a torn record by
its stored length always lands past its bytes.

Fast mount reads every sector header (~2 % of a 4 MiB partition), the fiscal tail sector and the newest
ring sector.  Counters come from the fiscal tail header (per-class counts at open) plus its records; the
chain head comes from whichever checkpoint is later: the last fiscal record (``prev_head``) or the
newest ring sector header (head at open), hashed forward through the few records after it.

Damage is reported in ``damage`` (kind, sector, offset, index, detail); while any is present, appends
are refused (``JournalError`` with errno EIO) so new records cannot bury the evidence.  Reads of
everything that verifies keep working.
"""

import struct
import hashlib
from array import array
from binascii import crc32

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x

from fiscal_till.codes import RULE_WARN_FM_PERMILLE
from fiscal_till.errnos import ENOENT, EIO, ENODEV, EINVAL, ENOSPC
from fiscal_till.journal_format import (
    VERSION, MAGIC, AREA_FISCAL, AREA_RING, INVOICE, DAILY, FISCAL_TYPES, FISCAL_SLOT, N_FISCAL,
    FISCAL_HDR_FMT, FISCAL_HDR_SIZE, FISCAL_HDR_CRC_AT, RING_HDR_FMT, RING_HDR_CRC_AT, RING_SUCC_AT,
    RING_HDR_SIZE, IDENT_SIZE, NO_INDEX, FISCAL_REC_HEAD, FISCAL_REC_OVERHEAD, RING_REC_OVERHEAD,
    RING_MAX_BODY, COMMIT, CHAIN_PREFIX_FMT, GENESIS_TAG, STREAM_MAGIC, STREAM_HDR_FMT, STREAM_HDR_SIZE,
    STREAM_HDR_CRC_AT, STREAM_FLAG_DAMAGED, DEFAULT_QUOTAS, SPARE_FISCAL_SECTORS, FISCAL_REC_HEAD_FMT,
    REC_LENGTH_AT, FISCAL_REC_INDEX_AT, RING_REC_HEAD,
)
from fiscal_till import journal_format  # header field offsets and positions, read once per sector



_GOOD = const(0)
_TORN = const(1)
_BAD = const(2)

_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)

# sector kinds found by mount, one byte per sector (mount keeps no parsed header per sector: RAM)
_K_BLANK = const(0)
_K_BAD_CRC = const(1)
_K_BAD_MAGIC = const(2)
_K_BAD_IDENT = const(3)
_K_F = const(4)
_K_R = const(5)
_K_FSEQ = const(6)  # valid fiscal header whose seq is not its position
_WHY = (None, "header crc", "header magic", "identity")

_FF_RUN = const(256)
_FF = memoryview(b"\xff" * _FF_RUN)  # erased flash, compared a run at a time (a sector's worth is 4 KiB of heap)


def _blank(mv, a, b):
    """``mv[a:b]`` is erased (all 0xFF)."""
    while a < b:
        n = b - a if b - a < _FF_RUN else _FF_RUN
        if mv[a:a + n] != _FF[:n]:
            return False
        a += n
    return True


def _u32(b, off):
    return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)


def _zeros(n):
    """array of ``n`` u32 zeros: 4 bytes an item (a list costs a word an item plus growth)."""
    return array("I", bytes(4 * n))


class JournalError(OSError):
    """``errno`` (ENOSPC, EIO, EINVAL, ENOENT, ENODEV), ``reason`` (one of 'not formatted', 'media',
    'damaged', 'class full', 'fiscal area full', 'ring full', 'bad record', 'no such record',
    'overwritten', 'partition too small', 'quotas', 'bad device id') and ``detail`` (the record type of a
    full class, the Damage found, the index asked for, ...)."""

    def __init__(self, code, reason, detail=None):
        super().__init__(code, reason)
        self.reason = reason
        self.detail = detail


class Damage:
    """One failed check: ``kind`` names the check, ``sector``/``offset`` where, ``index`` which record
    (or None), ``detail`` free text."""

    def __init__(self, kind, sector, offset=None, index=None, detail=""):
        self.kind = kind
        self.sector = sector
        self.offset = offset
        self.index = index
        self.detail = detail

    def __repr__(self):
        return "Damage(%s, sector=%s, offset=%s, index=%s, %s)" % (
            self.kind, self.sector, self.offset, self.index, self.detail)


def _bits(x):
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


def _committed(c):
    return _bits(c) <= 3


def genesis(device_id, format_id):
    return hashlib.sha256(GENESIS_TAG + device_id + format_id).digest()


def fiscal_sectors_for(quotas, sector_size):
    """Fiscal sectors that hold every quota at its maximum body size, plus spares.  Worst-case packing:
    a sector may end with up to one envelope minus one byte unused; INIT (quota 1) is the very first
    record, so it never is the one that did not fit."""
    total = 0
    biggest = 0
    for q, mb in quotas:
        env = FISCAL_REC_OVERHEAD + mb
        total += q * env
        if q > 1 and env > biggest:
            biggest = env
    per = sector_size - FISCAL_HDR_SIZE - biggest + 1
    return (total + per - 1) // per + SPARE_FISCAL_SECTORS


class _Probe:
    """Just enough of a Journal for ``_check_header`` (format's test for an existing journal)."""

    def __init__(self, bdev, bs, n):
        self.bdev = bdev
        self.retries = 0
        self._hb = bytearray(FISCAL_HDR_SIZE)
        self._hbm = memoryview(self._hb)

    def _blank(self, mv, a, b):
        return _blank(mv, a, b)


class Journal:
    """Mount the journal on ``bdev``.  ``device_id`` (8 bytes) is what this till expects to find; a
    partition written by another device is reported as damage.  ``retries``: re-reads of a record or
    header that fails a check (transient read errors)."""

    def __init__(self, bdev, device_id=None, retries=2):
        self.bdev = bdev
        self.expected_id = device_id
        self.retries = retries
        self.bs = bdev.ioctl(_IOCTL_BLOCK_SIZE, 0)
        self.nsect = bdev.ioctl(_IOCTL_BLOCK_COUNT, 0)
        bs = self.bs
        self._sb = bytearray(bs)  # sector buffer (cache of one sector)
        self._sbm = memoryview(self._sb)
        self._sb_sector = -1
        self._hb = bytearray(FISCAL_HDR_SIZE)
        self._hbm = memoryview(self._hb)
        self._pre = bytearray(7)
        self._one = bytearray(1)
        self.mount()
        maxenv = max(FISCAL_REC_OVERHEAD + max(self.maxbody), RING_REC_OVERHEAD + RING_MAX_BODY)
        self._eb = bytearray(maxenv)  # envelope being written
        self._ebm = memoryview(self._eb)
        self._rb = bytearray(maxenv)  # read-back
        self._rbm = memoryview(self._rb)

    # ================================================================== format
    @staticmethod
    def format(bdev, device_id, quotas=None, fiscal_sectors=None, format_id=None, force=False):
        """Erase the partition and write the first fiscal sector header.  Refuses (EEXIST-like
        JournalError ENODEV 'media') when the partition already holds a journal, unless ``force``.

        Power-safe: "holds a journal" means a sector header with a good CRC, so a format cut at any of
        its operations (erases top down, then the one header program) leaves either no valid header,
        and the next boot formats again, or the finished journal."""
        if len(device_id) != 8:
            raise JournalError(EINVAL, "bad device id", device_id)
        bs = bdev.ioctl(_IOCTL_BLOCK_SIZE, 0)
        n = bdev.ioctl(_IOCTL_BLOCK_COUNT, 0)
        if quotas is None:
            quotas = DEFAULT_QUOTAS
        if len(quotas) != N_FISCAL:
            raise JournalError(EINVAL, "quotas", len(quotas))
        for q, mb in quotas:
            if mb > bs - FISCAL_HDR_SIZE - FISCAL_REC_OVERHEAD or q > 0xFFFF or mb > 0xFFFF:
                raise JournalError(EINVAL, "quotas", (q, mb))
        if fiscal_sectors is None:
            fiscal_sectors = fiscal_sectors_for(quotas, bs)
        if fiscal_sectors < 1 or n - fiscal_sectors < 3:
            raise JournalError(ENOSPC, "partition too small", (n, fiscal_sectors))
        if not force:
            probe = _Probe(bdev, bs, n)
            for s in range(n):
                k = Journal._check_header(probe, s)  # type: ignore[arg-type]
                if k == _K_F or k == _K_R:
                    raise JournalError(ENODEV, "media", "partition already holds a journal")
        if format_id is None:
            import os
            format_id = os.urandom(4)
        # erase the ring first and sector 0 last: a torn format never leaves a valid header behind
        for s in range(n - 1, -1, -1):
            bdev.ioctl(_IOCTL_BLOCK_ERASE, s)
        hdr = bytearray(FISCAL_HDR_SIZE)
        counts = [0] * N_FISCAL
        struct.pack_into(FISCAL_HDR_FMT, hdr, 0, MAGIC, VERSION, AREA_FISCAL, device_id, format_id,
                         fiscal_sectors, n - fiscal_sectors, 0, 1, 0, 0, 0, NO_INDEX,
                         genesis(device_id, format_id), *(counts + [q for q, _ in quotas]
                                                         + [mb for _, mb in quotas] + [0]))
        struct.pack_into("<I", hdr, FISCAL_HDR_CRC_AT, crc32(memoryview(hdr)[:FISCAL_HDR_CRC_AT]))
        bdev.writeblocks(0, hdr, 0)

    # ================================================================== low-level reads
    def _load(self, s):
        """Read sector ``s`` into the sector buffer (cached)."""
        if self._sb_sector != s:
            self._sb_sector = -1
            self.bdev.readblocks(s, self._sb, 0)
            self._sb_sector = s
        return self._sbm

    def _reload(self, s):
        self._sb_sector = -1
        return self._load(s)

    def _blank(self, mv, a, b):
        return _blank(mv, a, b)

    def _check_header(self, s):
        """Read and check the header of sector ``s`` into ``self._hb`` without unpacking it.  Returns
        one of _K_F, _K_R, _K_BLANK, _K_BAD_CRC, _K_BAD_MAGIC (allocates nothing per sector)."""
        hb = self._hbm
        why = _K_BAD_MAGIC
        for attempt in range(self.retries + 1):
            self.bdev.readblocks(s, hb[:RING_HDR_SIZE], 0)
            area = hb[journal_format.HDR_AREA_AT]
            if hb[0] == MAGIC[0] and hb[1] == MAGIC[1] and area == AREA_FISCAL:
                self.bdev.readblocks(s, hb[RING_HDR_SIZE:FISCAL_HDR_SIZE], RING_HDR_SIZE)
                if crc32(hb[:FISCAL_HDR_CRC_AT]) == _u32(hb, FISCAL_HDR_CRC_AT):
                    return _K_F
                why = _K_BAD_CRC
            elif hb[0] == MAGIC[0] and hb[1] == MAGIC[1] and area == AREA_RING:
                if crc32(hb[:RING_HDR_CRC_AT]) == _u32(hb, RING_HDR_CRC_AT):
                    return _K_R
                why = _K_BAD_CRC
            elif self._blank(hb, 0, RING_HDR_SIZE):
                return _K_BLANK
            else:
                why = _K_BAD_MAGIC
        return why

    def _read_header(self, s):
        """Read and check the header of sector ``s``.  Returns a tuple
        ('F'|'R', fields) for a valid header, ('blank', None) or ('bad', reason)."""
        k = self._check_header(s)
        hb = self._hb
        if k == _K_F:
            return "F", struct.unpack_from(FISCAL_HDR_FMT, hb, 0)
        if k == _K_R:
            return "R", struct.unpack_from(RING_HDR_FMT, hb, 0) + (hb[RING_SUCC_AT],)
        if k == _K_BLANK:
            return "blank", None
        return "bad", _WHY[k]

    # ================================================================== record parsing
    def _rec_at(self, mv, off, area, end):
        """Parse the envelope at ``off``.  Returns (state, type, body_len, env_len) or None if the bytes
        there are not a plausible header (unknown type, length too big, past the sector end)."""
        t = mv[off]
        if area == AREA_RING:
            if t != INVOICE or off + RING_REC_OVERHEAD > end:
                return None
            blen = mv[off + REC_LENGTH_AT]
            if blen > RING_MAX_BODY:
                return None
            env = RING_REC_OVERHEAD + blen
            head = RING_REC_HEAD
        else:
            if t >= len(FISCAL_SLOT) or FISCAL_SLOT[t] == 0xFF or off + FISCAL_REC_OVERHEAD > end:
                return None
            blen = mv[off + REC_LENGTH_AT] | (mv[off + REC_LENGTH_AT + 1] << 8)
            if blen > self.maxbody[FISCAL_SLOT[t]]:
                return None
            env = FISCAL_REC_OVERHEAD + blen
            head = FISCAL_REC_HEAD
        if off + env > end:
            return None
        c = off + head + blen
        ok = crc32(mv[off:c]) == _u32(mv, c)
        if not _committed(mv[c + 4]):
            return _TORN, t, blen, env
        return (_GOOD if ok else _BAD), t, blen, env

    def _parse(self, s, area):
        """Parse every envelope of sector ``s`` (already checked to be ``area``).

        Returns (records, free, garbage): records = list of (offset, state, type, body_len), free = offset
        where the next record may be programmed (-1: abandoned or full), garbage = list of
        (offset, resync_offset) where unreadable bytes were followed by a good record (damage)."""
        for attempt in range(self.retries + 1):
            mv = self._reload(s) if attempt else self._load(s)
            res = self._parse_mv(mv, area)
            recs = res[0]
            if not res[2] and not [r for r in recs if r[1] == _BAD]:
                return res
        return res

    def _parse_mv(self, mv, area):
        bs = self.bs
        off = FISCAL_HDR_SIZE if area == AREA_FISCAL else RING_HDR_SIZE
        recs = []
        garbage = []
        free = -1
        while off < bs:
            if mv[off] == 0xFF and self._blank(mv, off, bs):
                free = off
                break
            r = self._rec_at(mv, off, area, bs)
            if r is None:
                q = self._hunt(mv, off + 1, area)
                if q < 0:
                    break  # torn tail: abandoned
                garbage.append((off, q))
                off = q
                continue
            recs.append((off, r[0], r[1], r[2]))
            off += r[3]
        return recs, free, garbage

    def _hunt(self, mv, off, area):
        """Next offset holding a committed record with a good CRC, or -1."""
        bs = self.bs
        while off < bs - RING_REC_OVERHEAD:
            r = self._rec_at(mv, off, area, bs)
            if r is not None and r[0] == _GOOD:
                return off
            off += 1
        return -1

    # ================================================================== chain
    def _link(self, head, index, rtype, body):
        pre = self._pre
        struct.pack_into(CHAIN_PREFIX_FMT, pre, 0, index, rtype, len(body))
        h = hashlib.sha256(head)
        h.update(pre)
        h.update(body)
        return h.digest()

    def _fiscal_fields(self, mv, off):
        """(type, body_len, index, prev_head) of the fiscal envelope at ``off``."""
        return struct.unpack_from(FISCAL_REC_HEAD_FMT, mv, off)

    # ================================================================== mount
    def _note(self, kind, sector, offset=None, index=None, detail=""):
        self.damage.append(Damage(kind, sector, offset, index, detail))

    def mount(self):
        """(Re)read the partition.  Never raises for damaged media except when no journal is found
        (JournalError ENODEV 'not formatted').  The steps: the partition's identity, a survey of every
        sector's header, the fiscal area, the detail ring, the counters and chain head.

        Memory: one byte per sector (its kind) plus the u32 arrays the journal keeps anyway (first
        ordinal/index of each sector, ring sequence and erase counts); headers are checked in place in
        ``self._hb`` and only the few fields needed are taken from them."""
        self.damage = []  # type: list
        self.notes = []
        self._sb_sector = -1
        first_kind, ident = self._find_identity()
        self.device_id, self.format_id, self.F, self.R = struct.unpack_from(journal_format.IDENT_FMT, ident, 0)
        n = self.nsect
        if self.F + self.R != n or self.F < 1 or self.R < 3:
            self._note("layout", 0, None, None, "layout does not match the partition")
            self.F = min(self.F, n)
            self.R = n - self.F
        if self.expected_id is not None and self.expected_id != self.device_id:
            self._note("foreign-device", 0, None, None, "journal of another device")
        kinds = bytearray(self.nsect)
        tail_hb = bytearray(FISCAL_HDR_SIZE)  # header of the last valid fiscal sector seen
        ring_hb = bytearray(RING_HDR_SIZE)  # header of the newest ring sector seen
        newest = self._survey(first_kind, ident, kinds, tail_hb, ring_hb)
        self._genesis = genesis(self.device_id, self.format_id)
        self._mount_fiscal(kinds, tail_hb)
        tail_hb = None
        self._mount_ring(kinds, newest, ring_hb)
        kinds = ring_hb = None
        self._mount_chain()
        if newest >= 0:  # every record of the newest ring sector was parsed: a failed CRC is damage,
            s = self.F + newest  # also before the last fiscal record, where the chain walk does not look
            noted = [d.offset for d in self.damage if d.kind == "record-crc" and d.sector == s]
            j = 0
            for off, state, t, blen in self.r_records:
                if state == _BAD and off not in noted:  # a sector's first record has its first index
                    self._note("record-crc", s, off, self.r_first_index[newest] if j == 0 else None,
                               "invoice record")
                j += 1

    def _find_identity(self):
        """(kind of sector 0, identity bytes): sector 0's identity if its header is valid, else the most
        common one (damaged media only); ENODEV when no sector has a journal header."""
        hb = self._hbm
        first_kind = self._check_header(0)
        if first_kind == _K_F:
            return first_kind, bytes(hb[journal_format.HDR_IDENT_AT:IDENT_SIZE])
        idents = {}  # type: dict  # one entry per distinct identity, not per sector
        for s in range(self.nsect):
            k = self._check_header(s)
            if k == _K_F or k == _K_R:
                key = bytes(hb[journal_format.HDR_IDENT_AT:IDENT_SIZE])
                idents[key] = idents.get(key, 0) + 1
        if not idents:
            raise JournalError(ENODEV, "not formatted", "no journal header found")
        ident = b""
        best = 0
        for key in idents:
            if idents[key] > best or (idents[key] == best and (not ident or key < ident)):
                ident, best = key, idents[key]
        return first_kind, ident

    def _survey(self, first_kind, ident, kinds, tail_hb, ring_hb):
        """Check every sector's header once: its kind into ``kinds``, the fiscal sectors' first ordinal
        and index, the ring sectors' sequence, erase count, first ordinal and index; the last valid
        fiscal header into ``tail_hb``, the newest ring header into ``ring_hb``.  Returns the newest ring
        position (-1: none)."""
        F, R = self.F, self.R
        hb = self._hbm
        newest = -1
        self.f_first_ord = _zeros(F)
        self.f_first_index = _zeros(F)
        self.r_seq = _zeros(R)
        self.r_first_ord = _zeros(R)
        self.r_first_index = _zeros(R)
        self.r_erase = _zeros(R)
        for s in range(self.nsect):
            k = first_kind if s == 0 else self._check_header(s)
            if k == _K_F or k == _K_R:
                if hb[journal_format.HDR_IDENT_AT:IDENT_SIZE] != ident:
                    self._note("foreign-sector", s, 0, None, "sector of another device or format")
                    k = _K_BAD_IDENT
                elif s < F and k == _K_F:
                    if _u32(hb, journal_format.HDR_SEQ_AT) != s:
                        k = _K_FSEQ
                    else:
                        self.f_first_ord[s] = _u32(hb, journal_format.HDR_FIRST_ORDINAL_AT)
                        self.f_first_index[s] = _u32(hb, journal_format.HDR_FIRST_INDEX_AT)
                        tail_hb[:] = hb
                elif s >= F and k == _K_R:
                    p = s - F
                    self.r_seq[p] = _u32(hb, journal_format.HDR_SEQ_AT)
                    self.r_erase[p] = _u32(hb, journal_format.HDR_ERASE_COUNT_AT)
                    self.r_first_ord[p] = _u32(hb, journal_format.HDR_FIRST_ORDINAL_AT)
                    self.r_first_index[p] = _u32(hb, journal_format.HDR_FIRST_INDEX_AT)
                    if newest < 0 or self.r_seq[p] > self.r_seq[newest]:
                        newest = p
                        ring_hb[:] = hb[:RING_HDR_SIZE]
            kinds[s] = k
        return newest

    def _header_seq(self, s):
        """``seq`` of the (valid) header of sector ``s``, re-read: only for the rare damage notes."""
        self._check_header(s)
        return _u32(self._hb, journal_format.HDR_SEQ_AT)

    # ------------------------------------------------------------------ fiscal area
    def _mount_fiscal(self, kinds, tail_hb):
        """The fiscal area: the tail (last valid sector), its header's counters, every sector's damage,
        then the records of the tail sector."""
        F = self.F
        tail = -1
        for s in range(F):
            if kinds[s] == _K_F:
                tail = s
        self.f_reopen = False
        for s in range(F):  # damage notes; a torn open sector right after the tail is erased before use
            k = kinds[s]
            if k == _K_R:
                self._note("area", s, 0, None, "ring header in the fiscal area")
            elif k == _K_FSEQ:
                self._note("sequence", s, 0, None,
                           "fiscal sector number %d at sector %d" % (self._header_seq(s), s))
            elif k == _K_F:
                pass
            elif k != _K_BLANK and s == tail + 1:
                mv = self._load(s)
                if self._blank(mv, FISCAL_HDR_SIZE, self.bs) and k != _K_BAD_IDENT:
                    self.f_reopen = True  # torn sector open: erase before use
                    self.notes.append(("torn-open", s))
                else:
                    self._note("sector-header", s, 0, None, _WHY[k])
            elif k != _K_BLANK:
                self._note("sector-header", s, 0, None, _WHY[k])
            elif s < tail:
                self._note("sequence", s, 0, None, "blank fiscal sector before the tail")
        if tail < 0:
            self._note("sector-header", 0, 0, None, "no valid fiscal sector header")
            tail = 0
            fake = bytearray(FISCAL_HDR_SIZE)  # nothing recorded, quotas of 1
            struct.pack_into(FISCAL_HDR_FMT, fake, 0, MAGIC, VERSION, AREA_FISCAL, self.device_id, self.format_id,
                             self.F, self.R, 0, 0, 0, 0, 0, NO_INDEX, self._genesis,
                             *([0] * N_FISCAL + [1] * N_FISCAL + [0] * N_FISCAL + [0]))
            self.f_hdr = struct.unpack_from(FISCAL_HDR_FMT, fake, 0)
        else:
            self.f_hdr = struct.unpack_from(FISCAL_HDR_FMT, tail_hb, 0)
        h = self.f_hdr
        self.quotas = list(h[journal_format.FH_QUOTAS:journal_format.FH_QUOTAS + N_FISCAL])
        self.maxbody = list(h[journal_format.FH_MAX_BODY:journal_format.FH_MAX_BODY + N_FISCAL])
        self.counts = list(h[journal_format.FH_COUNTS:journal_format.FH_COUNTS + N_FISCAL])
        fo = self.f_first_ord  # counters must not go back; a lost header borrows its successor's keys
        fi = self.f_first_index
        for s in range(1, tail + 1):
            if kinds[s] == _K_F and kinds[s - 1] == _K_F:
                if fo[s] < fo[s - 1] or fi[s] < fi[s - 1]:
                    self._note("sequence", s, 0, None, "counters go back")
        fv = bytearray(F)
        for s in range(F):
            if kinds[s] == _K_F or kinds[s] == _K_FSEQ:
                fv[s] = 1
        self.f_valid = fv
        for s in range(tail - 1, -1, -1):
            if not fv[s]:
                fo[s] = fo[s + 1]
                fi[s] = fi[s + 1]
        self.f_tail = tail
        self.covered = h[journal_format.FH_COVERED]
        self.f_off = -1
        self.fiscal_count = h[journal_format.FH_FIRST_ORDINAL]
        self.f_anchor = (h[journal_format.FH_ANCHOR_INDEX], h[journal_format.FH_ANCHOR_HEAD])  # type: tuple | None
        self.f_anchor_ord = self.fiscal_count - 1
        if kinds[tail] == _K_F:
            self._scan_fiscal_tail(tail)

    def _scan_fiscal_tail(self, tail):
        """Parse the tail sector's records: counts, the covered invoices, the chain anchor after the last
        record (None when a record fails its CRC) and where the next record goes."""
        recs, free, garbage = self._parse(tail, AREA_FISCAL)
        mv = self._sbm
        for g in garbage:
            self._note("garbage", tail, g[0], None, "unreadable bytes before a good record")
        f_ord = self.fiscal_count
        anchor = self.f_anchor
        anchor_ord = self.f_anchor_ord
        for off, state, t, blen in recs:
            if state == _TORN:
                continue
            if state == _BAD:
                # its index field is under the failed CRC; only the first record's (INIT) is sure
                self._note("record-crc", tail, off, 0 if f_ord == 0 else None,
                           "fiscal record (ordinal %d)" % f_ord)
                anchor = None
            else:
                _, _, idx, prev = self._fiscal_fields(mv, off)
                body = mv[off + FISCAL_REC_HEAD:off + FISCAL_REC_HEAD + blen]
                if anchor is not None and anchor[0] != NO_INDEX and anchor[0] + 1 == idx \
                        and anchor[1] != prev:
                    self._note("chain", tail, off, idx, "prev_head differs from the chain")
                anchor = (idx, self._link(prev, idx, t, body))
                if t == DAILY:
                    self.covered = idx - f_ord
                self.counts[FISCAL_SLOT[t]] += 1
            anchor_ord = f_ord
            f_ord += 1
        self.f_off = free
        self.fiscal_count = f_ord
        self.f_anchor = anchor  # None: unknown (damaged)
        self.f_anchor_ord = anchor_ord

    # ------------------------------------------------------------------ detail ring
    def _mount_ring(self, kinds, newest, ring_hb):
        """The detail ring: the run of sectors in sequence ending at the newest, their counters, and the
        records of the newest sector."""
        F, R = self.F, self.R
        self.r_heads = {}  # ring position -> chain head at its open (the newest sector's only)
        for p in range(R):
            k = kinds[F + p]
            if k == _K_F or k == _K_FSEQ:
                self._note("area", F + p, 0, None, "fiscal header in the ring")
        self.r_run = []  # ring positions, oldest first
        self.r_newest_succ = False
        self.r_off = -1
        self.r_committed = 0  # committed records in the newest sector
        self.r_records = []
        if newest < 0:  # no valid ring header: every non-blank ring sector is damage, but one torn open
            for p in range(R):
                k = kinds[F + p]
                if k != _K_BLANK and k < _K_F:
                    if p == 0 and k != _K_BAD_IDENT and self._blank(self._load(F), RING_HDR_SIZE, self.bs):
                        self.notes.append(("torn-open", F))  # first ring sector, torn open
                    else:
                        self._note("sector-header", F + p, 0, None, _WHY[k])
            return
        newest_hdr = struct.unpack_from(RING_HDR_FMT, ring_hb, 0) + (ring_hb[RING_SUCC_AT],)
        self.r_newest_succ = newest_hdr[journal_format.RH_SUCCESSOR] != 0xFF
        self.r_run = self._ring_run(kinds, newest, newest_hdr[journal_format.RH_SEQ])
        run = self.r_run  # holes (lost headers) inherit their predecessor's counters; none may go back
        fo = self.r_first_ord
        fi = self.r_first_index
        for i in range(1, len(run)):
            if kinds[F + run[i]] != _K_R:
                fo[run[i]] = fo[run[i - 1]]
                fi[run[i]] = fi[run[i - 1]]
        for i in range(1, len(run)):
            a, b = run[i - 1], run[i]
            if kinds[F + a] == _K_R and kinds[F + b] == _K_R:
                if fo[b] < fo[a] or fi[b] < fi[a]:
                    self._note("sequence", F + b, 0, None, "ring counters go back")
        s = F + newest  # the newest sector: its committed records, and where the next one goes
        recs, free, garbage = self._parse(s, AREA_RING)
        for g in garbage:
            self._note("garbage", s, g[0], None, "unreadable bytes before a good record")
        self.r_off = free
        committed = []
        for r in recs:
            if r[1] != _TORN:
                committed.append(r)
        self.r_records = committed
        self.r_committed = len(committed)
        self.r_heads[newest] = newest_hdr[journal_format.RH_HEAD]

    def _ring_run(self, kinds, newest, seq):
        """Ring positions, oldest first, of the sectors whose sequence runs down from the newest's
        ``seq``; a lost header inside the run is a hole (kept), anything else ends it."""
        F, R = self.F, self.R
        rseq = self.r_seq
        run = [newest]
        for k in range(1, R):
            p = (newest - k) % R
            kind = kinds[F + p]
            if k == R - 1 and self.r_newest_succ:
                self.notes.append(("reclaim", F + p))  # successor of the newest: being erased
                break
            if kind == _K_R and rseq[p] == seq - k:
                run.append(p)
            elif kind == _K_BLANK:
                # never used yet: everything older must be blank too
                for j in range(k + 1, R):
                    q = (newest - j) % R
                    if kinds[F + q] != _K_BLANK and not (j == R - 1 and self.r_newest_succ):
                        self._note("sequence", F + q, 0, None, "ring sector beyond the used run")
                break
            elif kind < _K_F:
                self._note("sector-header", F + p, 0, None, _WHY[kind])
                if seq < k:
                    break  # older than the first ring sector ever opened: not part of the run
                run.append(p)  # a hole: its records are lost, keep what is older
                rseq[p] = seq - k
            else:
                hseq = rseq[p] if kind == _K_R else self._header_seq(F + p)
                if hseq < seq - k and k == R - 1:
                    break
                self._note("sequence", F + p, 0, None, "ring sequence %d, expected %d" % (hseq, seq - k))
                break
        run.reverse()
        return run

    # ------------------------------------------------------------------ counters and chain head
    def _mount_chain(self):
        F = self.F
        run = self.r_run
        fa = self.f_anchor
        n_f = self.fiscal_count
        # invoices before the last fiscal record
        if fa is None:
            nf = -1  # unknown
        elif fa[0] == NO_INDEX:
            nf = 0
        else:
            nf = fa[0] - self.f_anchor_ord
        if run:
            p = run[-1]
            first_ord = self.r_first_ord[p]
            gr = self.r_first_index[p]
            inv = first_ord + self.r_committed
        else:
            p = -1
            first_ord = 0
            gr = -1
            inv = 0
        if nf > inv:
            self._note("lost-records", F + (p if p >= 0 else 0), None, None,
                       "fiscal records count %d invoices, the ring holds %d" % (nf, inv))
            inv = nf
        self.inv_count = inv
        self.next_index = n_f + inv
        self.head = None
        gf = -1 if (fa is None or fa[0] == NO_INDEX) else fa[0]
        mv = self._sbm
        if p >= 0 and gr > gf:
            # ring checkpoint is later: head at open, then every record of the newest sector
            if gr - first_ord != n_f:
                self._note("sequence", F + p, 0, None, "ring sector index does not match the counters")
            head = self.r_heads[p]
            self._load(F + p)
            i = gr
            for off, state, t, blen in self.r_records:
                if state != _GOOD:
                    self._note("record-crc", F + p, off, i, "invoice record")
                    return
                head = self._link(head, i, t, mv[off + RING_REC_HEAD:off + RING_REC_HEAD + blen])
                i += 1
            self.head = head
        elif fa is not None:
            head = fa[1] if fa[0] != NO_INDEX else self._genesis
            if p >= 0 and nf < first_ord and inv > nf:
                self._note("sequence", F + p, 0, None, "invoices after the last fiscal record are missing")
                return
            if p >= 0:
                self._load(F + p)
                o = first_ord
                i = gf + 1
                for off, state, t, blen in self.r_records:
                    if o >= nf:
                        if state != _GOOD:
                            self._note("record-crc", F + p, off, i, "invoice record")
                            return
                        head = self._link(head, i, t, mv[off + RING_REC_HEAD:off + RING_REC_HEAD + blen])
                        i += 1
                    o += 1
            self.head = head

    # ================================================================== public state
    def chain_head(self):
        """SHA-256 chain head over every record appended so far (None if damage makes it unknown)."""
        return self.head

    def counters(self):
        """{type code: records appended} for every class (INVOICE included)."""
        d = {}
        for i in range(N_FISCAL):
            d[FISCAL_TYPES[i]] = self.counts[i]
        d[INVOICE] = self.inv_count
        return d

    def usage(self):
        """Per-mille use: fiscal classes (count / quota), INVOICE (ring sectors holding detail not yet
        covered by a DAILY), and 0 for the fiscal area's sectors."""
        d = {}
        for i in range(N_FISCAL):
            q = self.quotas[i]
            d[FISCAL_TYPES[i]] = 1000 if q == 0 else self.counts[i] * 1000 // q
        d[INVOICE] = self._ring_uncovered_sectors() * 1000 // self.R
        room = self.bs - FISCAL_HDR_SIZE
        used = room if self.f_off < 0 else self.f_off - FISCAL_HDR_SIZE
        d[0] = (self.f_tail * room + used) * 1000 // (self.F * room)
        return d

    def warnings(self):
        """Type codes (0 = fiscal area) at or above RULE_WARN_FM_PERMILLE use (R-WARN-FM)."""
        u = self.usage()
        return sorted([k for k in u if u[k] >= RULE_WARN_FM_PERMILLE])

    def _ring_uncovered_sectors(self):
        run = self.r_run
        k = 0
        for i in range(len(run) - 1, -1, -1):
            p = run[i]
            end = self.inv_count if i == len(run) - 1 else self.r_first_ord[run[i + 1]]
            if end > self.covered:
                k += 1
            else:
                break
        return k

    # ================================================================== append
    def append(self, rtype, body):  # R-FM-APPEND-ONLY
        """Append one record; returns its index once it is committed to flash."""
        if self.damage:
            raise JournalError(EIO, "damaged", self.damage[0])
        if self.head is None:
            raise JournalError(EIO, "damaged", "chain head unknown")
        blen = len(body)
        if rtype == INVOICE:
            if blen > RING_MAX_BODY:
                raise JournalError(EINVAL, "bad record", "body too long")
            return self._append_ring(body)
        if rtype < 0 or rtype >= len(FISCAL_SLOT) or FISCAL_SLOT[rtype] == 0xFF:
            raise JournalError(EINVAL, "bad record", "unknown type %d" % rtype)
        slot = FISCAL_SLOT[rtype]
        if blen > self.maxbody[slot]:
            raise JournalError(EINVAL, "bad record", "body too long")
        if self.counts[slot] >= self.quotas[slot]:
            raise JournalError(ENOSPC, "class full", rtype)
        return self._append_fiscal(rtype, slot, body)

    def _program_record(self, s, off, env, crc_at):
        """Program envelope bytes [0, env-1) at (s, off), verify by read-back, then the commit byte.
        Returns False if the read-back failed (the record stays uncommitted)."""
        eb = self._ebm
        bdev = self.bdev
        if self._sb_sector == s:
            self._sb_sector = -1
        bdev.writeblocks(s, eb[:env - 1], off)
        rb = self._rbm[:env - 1]
        bdev.readblocks(s, rb, off)
        if crc32(rb[:crc_at]) != struct.unpack_from("<I", rb, crc_at)[0] or rb[crc_at:] != eb[crc_at:env - 1]:
            return False
        self._one[0] = COMMIT
        bdev.writeblocks(s, self._one, off + env - 1)
        return True

    def _append_fiscal(self, rtype, slot, body):
        blen = len(body)
        env = FISCAL_REC_OVERHEAD + blen
        idx = self.next_index
        eb = self._eb
        struct.pack_into(FISCAL_REC_HEAD_FMT, eb, 0, rtype, blen, idx, self.head)
        eb[FISCAL_REC_HEAD:FISCAL_REC_HEAD + blen] = body
        c = FISCAL_REC_HEAD + blen
        struct.pack_into("<I", eb, c, crc32(self._ebm[:c]))
        eb[c + 4] = 0xFF
        for attempt in range(3):
            if self.f_off < 0 or self.f_off + env > self.bs:
                self._open_fiscal()
            s = self.f_tail
            if self._program_record(s, self.f_off, env, c):
                break
            self.f_off = -1  # bad bytes in flash: abandon the sector
        else:
            raise JournalError(EIO, "media", "fiscal record does not read back")
        self.f_off += env
        self.head = self._link(self.head, idx, rtype, body)
        self.f_anchor = (idx, self.head)
        self.f_anchor_ord = self.fiscal_count
        if rtype == DAILY:
            self.covered = self.inv_count
        self.counts[slot] += 1
        self.fiscal_count += 1
        self.next_index = idx + 1
        return idx

    def _open_fiscal(self):
        s = self.f_tail + 1
        if s >= self.F:
            raise JournalError(ENOSPC, "fiscal area full", None)
        erases = 1  # the format erase
        if not self._blank(self._reload(s), 0, self.bs):
            # a torn header from an earlier open: nothing in this sector was ever committed
            self._sb_sector = -1
            self.bdev.ioctl(_IOCTL_BLOCK_ERASE, s)
            erases = 2
        hb = self._hb
        fa = self.f_anchor
        assert fa is not None  # appends are refused while the anchor is unknown
        args = [MAGIC, VERSION, AREA_FISCAL, self.device_id, self.format_id, self.F, self.R, s, erases,
                self.fiscal_count, self.next_index, self.covered, fa[0], fa[1]]
        args += self.counts
        args += self.quotas
        args += self.maxbody
        args.append(0)
        struct.pack_into(FISCAL_HDR_FMT, hb, 0, *args)
        struct.pack_into("<I", hb, FISCAL_HDR_CRC_AT, crc32(self._hbm[:FISCAL_HDR_CRC_AT]))
        self._sb_sector = -1
        self.bdev.writeblocks(s, hb, 0)
        self.f_reopen = False
        self.f_tail = s
        self.f_off = FISCAL_HDR_SIZE
        self.f_first_ord[s] = self.fiscal_count
        self.f_first_index[s] = self.next_index
        self.f_valid[s] = 1  # readers skip sectors without a good header: this one has one now

    def _append_ring(self, body):
        blen = len(body)
        env = RING_REC_OVERHEAD + blen
        idx = self.next_index
        eb = self._eb
        eb[0] = INVOICE
        eb[1] = blen
        eb[2:2 + blen] = body
        c = 2 + blen
        struct.pack_into("<I", eb, c, crc32(self._ebm[:c]))
        eb[c + 4] = 0xFF
        for attempt in range(3):
            run = self.r_run
            if not run or self.r_off < 0 or self.r_off + env > self.bs or \
                    (self.r_committed == 0 and self.r_first_index[run[-1]] != idx):
                self._open_ring(idx)
            p = self.r_run[-1]
            if self._program_record(self.F + p, self.r_off, env, c):
                break
            self.r_off = -1
        else:
            raise JournalError(EIO, "media", "invoice record does not read back")
        self.r_off += env
        self.r_committed += 1
        self.head = self._link(self.head, idx, INVOICE, body)
        self.inv_count += 1
        self.next_index = idx + 1
        return idx

    def _open_ring(self, idx):
        R, F = self.R, self.F
        run = self.r_run
        if run:
            newest = run[-1]
            p = (newest + 1) % R
        else:
            newest = -1
            p = 0
        reclaim = len(run) >= R or (run and run[0] == p)
        if reclaim:
            # the oldest sector may go only if a DAILY covers all of its invoices
            nxt = run[1] if len(run) > 1 else newest
            if self.r_first_ord[nxt] > self.covered or len(run) < 2:
                raise JournalError(ENOSPC, "ring full", "daily close needed")
        kind, h = self._read_header(F + p)
        if kind == "R":
            erase_count = h[journal_format.FH_ERASE_COUNT]
        elif kind == "blank":
            erase_count = 1  # the format erase (first lap)
        else:
            erase_count = max(self.r_erase)  # header lost in a torn reclaim: ring wear is even
        if newest >= 0 and not self.r_newest_succ:
            self._one[0] = 0
            self.bdev.writeblocks(F + newest, self._one, RING_SUCC_AT)
            self.r_newest_succ = True
        if reclaim:
            run.pop(0)
        if kind == "blank" and self._blank(self._reload(F + p), 0, self.bs):
            erase_count -= 1  # still erased since format: spare the erase
        else:
            self._sb_sector = -1
            self.bdev.ioctl(_IOCTL_BLOCK_ERASE, F + p)
        seq = self.r_seq[newest] + 1 if newest >= 0 else 0
        erase_count += 1
        hb = self._hb
        struct.pack_into(RING_HDR_FMT, hb, 0, MAGIC, VERSION, AREA_RING, self.device_id, self.format_id,
                         self.F, R, seq, erase_count, self.inv_count, idx, self.head, 0)
        struct.pack_into("<I", hb, RING_HDR_CRC_AT, crc32(self._hbm[:RING_HDR_CRC_AT]))
        hb[RING_SUCC_AT] = 0xFF
        self.bdev.writeblocks(F + p, self._hbm[:RING_SUCC_AT], 0)
        run.append(p)
        self.r_seq[p] = seq
        self.r_erase[p] = erase_count
        self.r_first_ord[p] = self.inv_count
        self.r_first_index[p] = idx
        self.r_heads = {p: self.head}  # only the newest sector's is ever read
        self.r_newest_succ = False
        self.r_off = RING_HDR_SIZE
        self.r_committed = 0

    # ================================================================== random access
    def _fiscal_sector_of(self, index):
        """Last fiscal sector whose first index is <= ``index`` (binary search over header data)."""
        lo, hi = 0, self.f_tail
        fi = self.f_first_index
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fi[mid] <= index:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _ring_pos_of(self, n):
        """Run position holding invoice ordinal ``n``, or -1 if it was overwritten."""
        run = self.r_run
        fo = self.r_first_ord
        if not run or n < fo[run[0]]:
            return -1
        lo, hi = 0, len(run) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fo[run[mid]] <= n:
                lo = mid
            else:
                hi = mid - 1
        return run[lo]

    def _damaged_read(self, kind, s, off, index, detail):
        d = Damage(kind, s, off, index, detail)
        self.damage.append(d)
        raise JournalError(EIO, "damaged", d)

    def read(self, index):
        """(type, body) of record ``index``.  JournalError ENOENT 'overwritten' for invoice detail the
        ring has reused, EIO 'damaged' when the record fails its checks."""
        if index < 0 or index >= self.next_index:
            raise JournalError(ENOENT, "no such record", index)
        k = self._fiscal_sector_of(index)
        recs = self._parse(k, AREA_FISCAL)[0]
        mv = self._sbm
        before = self.f_first_ord[k]
        bad = None
        for off, state, t, blen in recs:
            if state == _TORN:
                continue
            if state == _BAD:
                bad = off
                continue
            idx = _u32(mv, off + FISCAL_REC_INDEX_AT)
            if idx == index:
                return t, bytes(mv[off + FISCAL_REC_HEAD:off + FISCAL_REC_HEAD + blen])
            if idx < index:
                before += 1
        if bad is not None:
            # the record asked for is not among the good ones: the one failing its CRC is taken for it
            self._damaged_read("record-crc", k, bad, index, "fiscal record read as index %d" % index)
        if k < self.f_tail and not self.f_valid[k + 1]:
            # the next sector lost its header: its records still say who they are
            for state, t, b, idx, prev, off in self._sector_records(k + 1, AREA_FISCAL)[0]:
                if state == _GOOD and idx == index:
                    return t, b
            self._damaged_read("sector-header", k + 1, 0, index, "record position unknown")
        n = index - before
        p = self._ring_pos_of(n)
        if p < 0:
            raise JournalError(ENOENT, "overwritten", index)
        s = self.F + p
        j = n - self.r_first_ord[p]
        for off, state, t, blen in self._parse(s, AREA_RING)[0]:
            if state == _TORN:
                continue
            if j == 0:
                if state == _BAD:
                    self._damaged_read("record-crc", s, off, index, "invoice record")
                return t, bytes(self._sbm[off + RING_REC_HEAD:off + RING_REC_HEAD + blen])
            j -= 1
        self._damaged_read("lost-records", s, None, index, "invoice ordinal %d not in its sector" % n)

    def head_after(self, index):
        """Chain head right after fiscal record ``index`` (its ``prev_head`` linked with it), or None if
        no good fiscal record has that index.  The till's nvram anchor is checked with it at boot."""
        if index < 0 or index >= self.next_index:
            return None
        k = self._fiscal_sector_of(index)
        for j in (k, k + 1):
            if j > self.f_tail or not self.f_valid[j]:
                continue
            for state, t, body, idx, prev, off in self._sector_records(j, AREA_FISCAL)[0]:
                if state == _GOOD and idx == index:
                    return self._link(prev, idx, t, body)
        return None

    def _sector_records(self, s, area):
        """Committed records of sector ``s`` as a list of (state, type, body, index, prev_head, offset);
        index and prev_head are None for invoices."""
        recs, free, garbage = self._parse(s, area)
        mv = self._sbm
        out = []
        for off, state, t, blen in recs:
            if state == _TORN:
                continue
            if area == AREA_RING:
                out.append((state, t, bytes(mv[off + RING_REC_HEAD:off + RING_REC_HEAD + blen]), None, None, off))
            else:
                f = self._fiscal_fields(mv, off)
                out.append((state, t, bytes(mv[off + FISCAL_REC_HEAD:off + FISCAL_REC_HEAD + blen]),
                            f[2], f[3], off))
        return out, garbage

    def fiscal_records_reverse(self):
        """Good fiscal records newest first, as (index, type, body): what the till reads at boot to find
        its last declaration and the daily records after it without walking the invoice detail."""
        for k in range(self.f_tail, -1, -1):
            if not self.f_valid[k]:
                continue
            recs = self._sector_records(k, AREA_FISCAL)[0]
            for i in range(len(recs) - 1, -1, -1):
                state, t, body, idx, prev, off = recs[i]
                if state == _GOOD:
                    yield idx, t, body

    def invoices_reverse(self):
        """Invoice detail still in the ring, newest first, as (ordinal, body); ordinals count invoices
        from 0 and the first `covered` of them are covered by a DAILY record."""
        n = self.inv_count - 1
        while n >= 0:
            p = self._ring_pos_of(n)
            if p < 0:
                return
            first = self.r_first_ord[p]
            recs = self._sector_records(self.F + p, AREA_RING)[0]  # torn ones are already left out
            for j in range(min(len(recs), n - first + 1) - 1, -1, -1):
                if recs[j][0] == _GOOD:  # a damaged one keeps its ordinal but is not yielded
                    yield first + j, recs[j][2]
            n = first - 1

    def records(self, start=0):
        """Every available record with index >= ``start`` in index order, as
        (index, type, body, state) where state is 0 good, 2 failed its CRC (index None for a fiscal
        record whose CRC failed).  Invoice detail the ring has reused is skipped."""
        for r in self._walk(start):
            yield r[0], r[1], r[2], r[3]

    def _walk(self, start=0):
        """records() plus (sector, offset) of each record."""
        F = self.F
        # fiscal cursor: fiscal records fix the index of every invoice, so always walk them from sector 0
        fs = 0
        fl, _ = self._sector_records(fs, AREA_FISCAL)
        fi = 0
        ford = 0
        # ring cursor
        run = self.r_run
        ri = 0
        rl = []
        rpos = 0
        if run:
            rl, _ = self._sector_records(F + run[0], AREA_RING)
            n = self.r_first_ord[run[0]]
        else:
            n = 0
        while True:
            while fi >= len(fl) and fs < self.f_tail:
                fs += 1
                fl, _ = self._sector_records(fs, AREA_FISCAL)
                fi = 0
            while ri >= len(rl) and rpos + 1 < len(run):
                rpos += 1
                rl, _ = self._sector_records(F + run[rpos], AREA_RING)
                ri = 0
                n = self.r_first_ord[run[rpos]]
            f = fl[fi] if fi < len(fl) else None
            r = rl[ri] if ri < len(rl) else None
            if f is None and r is None:
                return
            # a fiscal record goes first when the invoices before it are all emitted
            if f is not None and (r is None or f[0] == _BAD or f[3] - ford <= n):
                fi += 1
                ford += 1
                if f[0] == _BAD or f[3] >= start:
                    yield (f[3] if f[0] == _GOOD else None), f[1], f[2], f[0], fs, f[5]
            else:
                assert r is not None
                ri += 1
                idx = n + ford
                n += 1
                if idx >= start:
                    yield idx, r[1], r[2], r[0], F + run[rpos], r[5]

    # ================================================================== full verification
    def verify(self):
        """Read everything and check every record, header and chain link.  Returns the list of Damage
        found (mount's findings included); appends stay refused while it is not empty."""
        F = self.F
        found = []
        seen = {}
        for d in self.damage:
            seen[(d.kind, d.sector, d.offset)] = 1
            found.append(d)

        def add(kind, s, off, idx, detail):
            if (kind, s, off) not in seen:
                seen[(kind, s, off)] = 1
                found.append(Damage(kind, s, off, idx, detail))

        counts = [0] * N_FISCAL
        unsure = False  # a record failed its CRC: its class is unknown until the next header
        ford = 0
        head = None
        last = -1
        anchors = {}
        for s in range(self.f_tail + 1):
            kind, h = self._read_header(s)
            if kind != "F":
                continue
            if h[journal_format.FH_FIRST_ORDINAL] != ford:
                ford_hdr = h[journal_format.FH_FIRST_ORDINAL]
                add("lost-records", s, 0, None,
                    "sector starts at fiscal ordinal %d, %d found before" % (ford_hdr, ford))
                ford = ford_hdr
            if list(h[journal_format.FH_COUNTS:journal_format.FH_COUNTS + N_FISCAL]) != counts and not unsure:
                add("counters", s, 0, None, "class counters in the header differ from the records")
            counts = list(h[journal_format.FH_COUNTS:journal_format.FH_COUNTS + N_FISCAL])
            unsure = False
            recs, garbage = self._sector_records(s, AREA_FISCAL)
            for g in garbage:
                add("garbage", s, g[0], None, "unreadable bytes before a good record")
            for state, t, body, idx, prev, off in recs:
                if state == _BAD:
                    add("record-crc", s, off, None, "fiscal record ordinal %d" % ford)
                    unsure = True
                else:
                    counts[FISCAL_SLOT[t]] += 1
                    anchors[idx] = prev
                ford += 1
        # chain over everything still on flash
        for idx, t, body, state, sec, off in self._walk():
            if state != _GOOD:
                if t == INVOICE:
                    add("record-crc", sec, off, idx, "invoice record")
                head = None
                continue
            if idx in anchors:
                prev = anchors[idx]
                if head is not None and last + 1 == idx and prev != head:
                    add("chain", None, None, idx, "prev_head differs from the chain")
                head = prev
            elif last + 1 != idx:
                head = None  # detail before it was reused: resume at the next anchor
            if head is not None:
                head = self._link(head, idx, t, body)
            last = idx
        if head is not None and last + 1 == self.next_index and self.head is not None and head != self.head:
            add("chain", None, None, last, "chain head differs from the mounted one")
        for d in found:
            if d not in self.damage:
                self.damage.append(d)
        return found

    # ================================================================== read-out stream (READ_JOURNAL)
    def _stream_images(self):
        """Sector images in the stream: fiscal 0..f_tail, then the ring run oldest first."""
        return self.f_tail + 1 + len(self.r_run)

    def _stream_sector(self, i):
        """Flash sector of stream image ``i`` (no list of every sector: RAM)."""
        if i <= self.f_tail:
            return i
        return self.F + self.r_run[i - self.f_tail - 1]

    def stream_length(self):
        return STREAM_HDR_SIZE + self._stream_images() * self.bs

    def stream_header(self):
        b = bytearray(STREAM_HDR_SIZE)
        self._stream_header_into(b)
        return b

    def _stream_header_into(self, b):
        struct.pack_into(STREAM_HDR_FMT, b, 0, STREAM_MAGIC, VERSION,
                         STREAM_FLAG_DAMAGED if self.damage else 0, self.bs, self.device_id, self.format_id,
                         self.f_tail + 1, len(self.r_run), self.next_index, self.fiscal_count,
                         self.inv_count, self.covered, self.head or b"\x00" * 32, 0)
        struct.pack_into("<I", b, STREAM_HDR_CRC_AT, crc32(memoryview(b)[:STREAM_HDR_CRC_AT]))

    def read_stream(self, offset, length, buf=None):
        """Bytes [offset, offset+length) of the read-out stream (short at its end).

        Without ``buf``: one bytearray of exactly the length read is allocated, filled in place and
        returned.  With ``buf`` (bytearray or writable memoryview, at least that long): nothing the size
        of the data is allocated; returns a memoryview of ``buf`` holding exactly the bytes read."""
        total = self.stream_length()
        if offset < 0 or length < 0:
            raise JournalError(EINVAL, "bad record", "offset")
        end = min(offset + length, total)
        n = end - offset if end > offset else 0
        if buf is None:
            out = bytearray(n)
            mv = memoryview(out)
        else:
            if len(buf) < n:
                raise JournalError(EINVAL, "bad record", "buffer too small")
            out = mv = memoryview(buf)[:n]  # type: ignore[assignment]
        pos = 0
        if offset < STREAM_HDR_SIZE and offset < end:
            hdr = self._hbm[:STREAM_HDR_SIZE]  # header scratch (FISCAL_HDR_SIZE >= STREAM_HDR_SIZE)
            self._stream_header_into(hdr)
            k = min(end, STREAM_HDR_SIZE) - offset
            mv[0:k] = hdr[offset:offset + k]
            pos = k
            offset += k
        bs = self.bs
        while offset < end:
            i = (offset - STREAM_HDR_SIZE) // bs
            o = (offset - STREAM_HDR_SIZE) % bs
            k = min(end - offset, bs - o)
            self.bdev.readblocks(self._stream_sector(i), mv[pos:pos + k], o)
            pos += k
            offset += k
        return out

    # ================================================================== maintenance
    def erase_counts(self):
        """Erase count per sector as recorded in the sector headers (None where unreadable)."""
        out = []
        for s in range(self.nsect):
            kind, h = self._read_header(s)
            out.append(h[journal_format.FH_ERASE_COUNT] if kind == "F" or kind == "R" else None)
        return out
