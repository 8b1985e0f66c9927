"""The read-out auditor: what a bureau auditor runs on the bytes of READ_JOURNAL.

:func:`audit_stream` parses every sector image (protocol/journal_format.py's layouts), checks every
header and record CRC, rebuilds the global record order and verifies the SHA-256 chain up to the head
announced in the stream header.  It reports every problem and never stops at the first one.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import construct as cs

from .journal_format import (AREA_FISCAL, AREA_RING, FISCAL_HDR_SIZE, FISCAL_REC_OVERHEAD, FISCAL_TYPES,
                             INVOICE, RING_HDR_SIZE, RING_REC_OVERHEAD, STREAM_HDR_SIZE, FiscalRecord,
                             FiscalSectorHeader, RingRecord, RingSectorHeader, StreamHeader, chain_step,
                             committed)


# ---------------------------------------------------------------------------------------------- auditor
class AuditReport:
    """Result of :func:`audit_stream`: ``records`` = list of (index, type, body) that verified, in index
    order; ``problems`` = list of (kind, where, detail); ``chain_ok`` = the chain re-computed from the
    records reaches the announced head."""

    def __init__(self) -> None:
        self.header: cs.Container | None = None
        self.records: list[tuple[int, int, bytes]] = []
        self.problems: list[tuple[str, object, str]] = []
        self.chain_ok = False

    def __repr__(self) -> str:
        return f"AuditReport({len(self.records)} records, chain_ok={self.chain_ok}, problems={self.problems})"


# CRC coverage: every header's CRC covers the bytes before it; a record's covers type..body.
_STREAM_CRC_COVERS = STREAM_HDR_SIZE - 4
_FISCAL_HDR_CRC_COVERS = FISCAL_HDR_SIZE - 4
_RING_HDR_CRC_COVERS = RING_HDR_SIZE - 5      # then the CRC and the successor byte
_FISCAL_REC_HEAD = FISCAL_REC_OVERHEAD - 5    # type, length, index, prev_head (the CRC and commit follow body)
_RING_REC_HEAD = RING_REC_OVERHEAD - 5        # type, length


class _Area:
    """How one area's sector images read: header size, record layout, the part of a record its CRC covers."""

    def __init__(self, area: int) -> None:
        fiscal = area == AREA_FISCAL
        self.area = area
        self.header_size = FISCAL_HDR_SIZE if fiscal else RING_HDR_SIZE
        self.record = FiscalRecord if fiscal else RingRecord
        self.head_len = _FISCAL_REC_HEAD if fiscal else _RING_REC_HEAD
        self.overhead = FISCAL_REC_OVERHEAD if fiscal else RING_REC_OVERHEAD


_FISCAL, _RING = _Area(AREA_FISCAL), _Area(AREA_RING)


class _Entry(NamedTuple):
    """One record in global order: `index` None when it cannot be trusted; `ordinal` for ring invoices."""
    index: int | None
    type: int
    body: bytes
    prev_head: bytes | None
    state: str          # 'good' | 'bad'
    ordinal: int | None


def _record_at(img: bytes, off: int, area: _Area, max_body: dict[int, int]):
    """(record, crc_ok) if a plausible record of `area` starts at `off`, else None."""
    try:
        r = area.record.parse(img[off:])
    except cs.ConstructError:
        return None
    if area.area == AREA_RING and r.type != INVOICE:
        return None
    if area.area == AREA_FISCAL and (r.type not in max_body or r.length > max_body[r.type]):
        return None
    return r, zlib.crc32(img[off:off + area.head_len + r.length]) == r.crc


def _next_good_record(img: bytes, off: int, area: _Area, max_body: dict[int, int]) -> int | None:
    """Offset of the next good committed record after unreadable bytes at `off`; None: a torn tail."""
    for q in range(off + 1, len(img)):
        g = _record_at(img, q, area, max_body)
        if g is not None and g[1] and committed(g[0].commit):
            return q
    return None


def _parse_image(img: bytes, area: _Area, max_body: dict[int, int], where: str,
                 problems: list) -> list[tuple[str, cs.Container, int]]:
    """Committed envelopes of one sector image: list of ('good'|'bad', record, offset).  Unreadable bytes
    are a torn tail unless a good committed record follows (then they are damage: 'garbage')."""
    out = []
    off = area.header_size
    while off < len(img):
        if img[off:] == b"\xff" * (len(img) - off):
            break
        got = _record_at(img, off, area, max_body)
        if got is None:
            q = _next_good_record(img, off, area, max_body)
            if q is None:
                break
            problems.append(("garbage", where + f"+{off}", f"unreadable bytes up to offset {q}"))
            off = q
            continue
        r, ok = got
        if committed(r.commit):
            out.append(("good" if ok else "bad", r, off))
        off += area.overhead + r.length
    return out


def _stream_header(data: bytes, rep: AuditReport) -> list[bytes] | None:
    """Check the stream header and length; the sector images, or None when the header is unreadable."""
    try:
        sh = StreamHeader.parse(data)
    except cs.ConstructError as e:
        rep.problems.append(("stream-header", 0, str(e)))
        return None
    rep.header = sh
    if zlib.crc32(data[:_STREAM_CRC_COVERS]) != sh.crc:
        rep.problems.append(("stream-header", 0, "crc"))
    ss = sh.sector_size
    want = STREAM_HDR_SIZE + (sh.fiscal_images + sh.ring_images) * ss
    if len(data) != want:
        rep.problems.append(("stream-length", len(data), f"expected {want} bytes"))
    return [data[STREAM_HDR_SIZE + i * ss:STREAM_HDR_SIZE + (i + 1) * ss]
            for i in range(sh.fiscal_images + sh.ring_images)]


def _fiscal_header_problem(img: bytes, i: int, sh: cs.Container) -> tuple[cs.Container | None, str | None]:
    """(header, None) for a sound fiscal sector header `i`, else (None, what is wrong)."""
    try:
        h = FiscalSectorHeader.parse(img)
    except cs.ConstructError:
        return None, "not a fiscal sector header"
    if zlib.crc32(img[:_FISCAL_HDR_CRC_COVERS]) != h.crc:
        return None, "crc"
    if (h.device_id, h.format_id) != (sh.device_id, sh.format_id) or h.seq != i:
        return None, "identity or sequence"
    return h, None


def _fiscal_records(images: list[bytes], sh: cs.Container, rep: AuditReport) -> list[tuple[str, cs.Container]]:
    """Every committed fiscal record, in fiscal ordinal order, as (state, record)."""
    fiscal: list[tuple[str, cs.Container]] = []
    for i in range(sh.fiscal_images):
        h, problem = _fiscal_header_problem(images[i], i, sh)
        if problem is not None:
            rep.problems.append(("sector-header", f"fiscal {i}", problem))
            continue
        if h.first_ordinal != len(fiscal):
            rep.problems.append(("lost-records", f"fiscal {i}",
                                 f"starts at ordinal {h.first_ordinal}, {len(fiscal)} before"))
        max_body = dict(zip(FISCAL_TYPES, h.max_body))
        for state, r, off in _parse_image(images[i], _FISCAL, max_body, f"fiscal {i}", rep.problems):
            if state == "bad":
                rep.problems.append(("record-crc", f"fiscal {i}+{off}", f"fiscal ordinal {len(fiscal)}"))
            fiscal.append((state, r))
    return fiscal


def _ring_header(img: bytes, sh: cs.Container) -> cs.Container | None:
    """The ring sector header when readable, its CRC right and its identity the stream's."""
    try:
        h = RingSectorHeader.parse(img)
    except cs.ConstructError:
        return None
    if zlib.crc32(img[:_RING_HDR_CRC_COVERS]) != h.crc or (h.device_id, h.format_id) != (sh.device_id, sh.format_id):
        return None
    return h


def _ring_invoices(images: list[bytes], sh: cs.Container, rep: AuditReport):
    """Ring invoices as (ordinal, state, record), and the chain head before each ring sector's first
    ordinal."""
    invoices: list[tuple[int, str, cs.Container]] = []
    ring_heads: dict[int, bytes] = {}
    for k in range(sh.ring_images):
        img = images[sh.fiscal_images + k]
        where = f"ring image {k}"
        h = _ring_header(img, sh)
        if h is None:
            rep.problems.append(("sector-header", where, "ring header unreadable: its records are lost"))
            continue
        n = h.first_ordinal
        ring_heads.setdefault(n, h.head)
        for state, r, off in _parse_image(img, _RING, {}, where, rep.problems):
            if state == "bad":
                rep.problems.append(("record-crc", f"{where}+{off}", f"invoice ordinal {n}"))
            invoices.append((n, state, r))
            n += 1
    return invoices, ring_heads


def _global_order(fiscal, invoices) -> list[_Entry]:
    """Merge: a fiscal record comes after the invoices appended before it (its index - its ordinal)."""
    seq: list[_Entry] = []
    fi = 0
    for ford, (state, r) in enumerate(fiscal):
        n_before = r.index - ford
        while fi < len(invoices) and invoices[fi][0] < n_before:
            n, st, ir = invoices[fi]
            seq.append(_Entry(n + ford, ir.type, ir.body, None, st, n))
            fi += 1
        seq.append(_Entry(r.index if state == "good" else None, r.type, r.body, r.prev_head, state, None))
    for n, st, ir in invoices[fi:]:
        seq.append(_Entry(n + len(fiscal), ir.type, ir.body, None, st, n))
    return seq


def _verify_chain(seq: list[_Entry], ring_heads: dict[int, bytes], rep: AuditReport) -> tuple[bytes | None, int]:
    """Walk the chain; fiscal records and ring headers are anchors, and detail the ring reused leaves
    gaps.  Appends the trusted records to `rep`; returns (head reached or None, last index)."""
    head: bytes | None = None
    last = -1
    for e in seq:
        if e.state != "good" or e.index is None:
            head = None
            continue
        anchor = e.prev_head if e.prev_head is not None else \
            ring_heads.get(e.ordinal) if e.ordinal is not None else None
        contiguous = head is not None and last + 1 == e.index
        if anchor is not None:
            if contiguous and anchor != head:
                rep.problems.append(("chain", e.index, "anchor differs from the chain"))
            head = anchor
        elif not contiguous:
            head = None
        if head is not None:
            head = chain_step(head, e.index, e.type, e.body)
        last = e.index
        rep.records.append((e.index, e.type, e.body))
    return head, last


def audit_stream(data: bytes) -> AuditReport:
    """Parse and verify a complete READ_JOURNAL stream."""
    rep = AuditReport()
    images = _stream_header(data, rep)
    if images is None:
        return rep
    sh = rep.header
    fiscal = _fiscal_records(images, sh, rep)
    invoices, ring_heads = _ring_invoices(images, sh, rep)
    head, last = _verify_chain(_global_order(fiscal, invoices), ring_heads, rep)
    if last + 1 != sh.next_index:
        rep.problems.append(("count", last, f"last record {last}, header announces {sh.next_index}"))
    rep.chain_ok = head is not None and head == sh.chain_head
    if not rep.chain_ok:
        rep.problems.append(("chain", last, "chain does not reach the announced head"))
    return rep
