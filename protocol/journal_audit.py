"""The read-out auditor: what a bureau auditor runs on the bytes of READ_JOURNAL.

:func:`audit_stream` parses every sector image (protocol/journal_format.py's layouts), checks every
header and record CRC, rebuilds the global record order and verifies the SHA-256 chain up to the head
announced in the stream header.  It reports every problem and never stops at the first one.
"""

from __future__ import annotations

import zlib

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


def _parse_image(img: bytes, area: int, max_body: dict[int, int], where: str,
                 problems: list) -> list[tuple[str, cs.Container, int]]:
    """Committed envelopes of one sector image: list of ('good'|'bad', record, offset)."""
    hdr = FISCAL_HDR_SIZE if area == AREA_FISCAL else RING_HDR_SIZE
    rec_t = FiscalRecord if area == AREA_FISCAL else RingRecord
    head_len = 39 if area == AREA_FISCAL else 2
    out = []

    def at(off: int):
        try:
            r = rec_t.parse(img[off:])
        except cs.ConstructError:
            return None
        if area == AREA_RING and r.type != INVOICE:
            return None
        if area == AREA_FISCAL and (r.type not in max_body or r.length > max_body[r.type]):
            return None
        ok = zlib.crc32(img[off:off + head_len + r.length]) == r.crc
        return r, ok

    off = hdr
    while off < len(img):
        if img[off:] == b"\xff" * (len(img) - off):
            break
        got = at(off)
        if got is None:
            # unreadable bytes: a torn tail unless a good committed record follows (then: damage)
            q = off + 1
            while q < len(img):
                g = at(q)
                if g is not None and g[1] and committed(g[0].commit):
                    break
                q += 1
            if q >= len(img):
                break
            problems.append(("garbage", where + f"+{off}", f"unreadable bytes up to offset {q}"))
            off = q
            continue
        r, ok = got
        if committed(r.commit):
            out.append(("good" if ok else "bad", r, off))
        off += (FISCAL_REC_OVERHEAD if area == AREA_FISCAL else RING_REC_OVERHEAD) + r.length
    return out


def audit_stream(data: bytes) -> AuditReport:
    """Parse and verify a complete READ_JOURNAL stream."""
    rep = AuditReport()
    try:
        sh = StreamHeader.parse(data)
    except cs.ConstructError as e:
        rep.problems.append(("stream-header", 0, str(e)))
        return rep
    rep.header = sh
    if zlib.crc32(data[:72]) != sh.crc:
        rep.problems.append(("stream-header", 0, "crc"))
    ss = sh.sector_size
    want = STREAM_HDR_SIZE + (sh.fiscal_images + sh.ring_images) * ss
    if len(data) != want:
        rep.problems.append(("stream-length", len(data), f"expected {want} bytes"))
    images = [data[STREAM_HDR_SIZE + i * ss:STREAM_HDR_SIZE + (i + 1) * ss]
              for i in range(sh.fiscal_images + sh.ring_images)]

    fiscal: list[tuple[str, cs.Container]] = []  # in fiscal ordinal order
    max_body: dict[int, int] = {}
    for i in range(sh.fiscal_images):
        img = images[i]
        try:
            h = FiscalSectorHeader.parse(img)
        except cs.ConstructError:
            rep.problems.append(("sector-header", f"fiscal {i}", "not a fiscal sector header"))
            continue
        if zlib.crc32(img[:132]) != h.crc:
            rep.problems.append(("sector-header", f"fiscal {i}", "crc"))
            continue
        if (h.device_id, h.format_id) != (sh.device_id, sh.format_id) or h.seq != i:
            rep.problems.append(("sector-header", f"fiscal {i}", "identity or sequence"))
            continue
        if h.first_ordinal != len(fiscal):
            rep.problems.append(("lost-records", f"fiscal {i}",
                                 f"starts at ordinal {h.first_ordinal}, {len(fiscal)} before"))
        max_body = dict(zip(FISCAL_TYPES, h.max_body))
        for state, r, off in _parse_image(img, AREA_FISCAL, max_body, f"fiscal {i}", rep.problems):
            if state == "bad":
                rep.problems.append(("record-crc", f"fiscal {i}+{off}", f"fiscal ordinal {len(fiscal)}"))
            fiscal.append((state, r))

    invoices: list[tuple[int, str, cs.Container]] = []  # (ordinal, state, record)
    ring_heads: dict[int, bytes] = {}  # first ordinal -> head before it
    for k in range(sh.ring_images):
        img = images[sh.fiscal_images + k]
        where = f"ring image {k}"
        try:
            h = RingSectorHeader.parse(img)
            if zlib.crc32(img[:68]) != h.crc or (h.device_id, h.format_id) != (sh.device_id, sh.format_id):
                raise cs.ConstructError("crc or identity")
        except cs.ConstructError:
            rep.problems.append(("sector-header", where, "ring header unreadable: its records are lost"))
            continue
        n = h.first_ordinal
        ring_heads.setdefault(n, h.head)
        for state, r, off in _parse_image(img, AREA_RING, {}, where, rep.problems):
            if state == "bad":
                rep.problems.append(("record-crc", f"{where}+{off}", f"invoice ordinal {n}"))
            invoices.append((n, state, r))
            n += 1

    # global order: a fiscal record comes after the invoices appended before it (index - ordinal)
    seq: list[tuple[int | None, int, bytes, bytes | None, str, int | None]] = []
    fi = 0
    for ford, (state, r) in enumerate(fiscal):
        n_before = r.index - ford
        while fi < len(invoices) and invoices[fi][0] < n_before:
            n, st, ir = invoices[fi]
            seq.append((n + ford, ir.type, ir.body, None, st, n))
            fi += 1
        seq.append((r.index if state == "good" else None, r.type, r.body, r.prev_head, state, None))
    for n, st, ir in invoices[fi:]:
        seq.append((n + len(fiscal), ir.type, ir.body, None, st, n))

    # chain: fiscal records and ring headers are anchors; detail the ring reused leaves gaps
    head: bytes | None = None
    last = -1
    for idx, t, body, prev, state, ordinal in seq:
        if state != "good" or idx is None:
            head = None
            continue
        anchor = prev if prev is not None else ring_heads.get(ordinal) if ordinal is not None else None
        contiguous = head is not None and last + 1 == idx
        if anchor is not None:
            if contiguous and anchor != head:
                rep.problems.append(("chain", idx, "anchor differs from the chain"))
            head = anchor
        elif not contiguous:
            head = None
        if head is not None:
            head = chain_step(head, idx, t, body)
        last = idx
        rep.records.append((idx, t, body))
    if last + 1 != sh.next_index:
        rep.problems.append(("count", last, f"last record {last}, header announces {sh.next_index}"))
    rep.chain_ok = head is not None and head == sh.chain_head
    if not rep.chain_ok:
        rep.problems.append(("chain", last, "chain does not reach the announced head"))
    return rep
