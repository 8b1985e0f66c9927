"""The firmware's struct layouts and protocol/journal_format.py's Construct definitions agree byte for
byte, in both directions: struct-packed bytes parse with Construct to the same fields, Construct-built
bytes unpack with struct to the same fields, and what the journal really writes on flash parses."""

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from fiscal_till import journal_format as fw
from fiscal_till.journal import Journal
from hw_sim.nor_flash import NorFlash
from protocol import journal_format as pj

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
b4 = st.binary(min_size=4, max_size=4)
b8 = st.binary(min_size=8, max_size=8)
b32 = st.binary(min_size=32, max_size=32)

DEVICE = b"\x32\x01\x00\x00\x12\x34\x56\x78"


def _field_offset(layout, name):
    """Byte offset of field `name` in a Construct struct of fixed-size fields."""
    off = 0
    for sub in layout.subcons:
        if sub.name == name:
            return off
        off += sub.sizeof()
    raise KeyError(name)


def _field_position(layout, name):
    """Position of field `name` in the tuple struct.unpack gives (an array counts one item per element)."""
    pos = 0
    for sub in layout.subcons:
        if sub.name == name:
            return pos
        pos += getattr(getattr(sub, "subcon", None), "count", 1)
    raise KeyError(name)


def test_the_firmware_names_every_header_field_where_protocol_defines_it():
    for layout in (pj.FiscalSectorHeader, pj.RingSectorHeader):
        assert _field_offset(layout, "area") == fw.HDR_AREA_AT
        assert _field_offset(layout, "device_id") == fw.HDR_IDENT_AT
        assert _field_offset(layout, "seq") == fw.HDR_SEQ_AT == fw.IDENT_SIZE
        assert _field_offset(layout, "erase_count") == fw.HDR_ERASE_COUNT_AT
        assert _field_offset(layout, "first_ordinal") == fw.HDR_FIRST_ORDINAL_AT
        assert _field_offset(layout, "first_index") == fw.HDR_FIRST_INDEX_AT
        assert struct.calcsize(fw.IDENT_FMT) == fw.IDENT_SIZE - fw.HDR_IDENT_AT
    fiscal = pj.FiscalSectorHeader
    assert _field_offset(fiscal, "crc") == fw.FISCAL_HDR_CRC_AT
    for name, pos in (("seq", fw.FH_SEQ), ("erase_count", fw.FH_ERASE_COUNT), ("first_ordinal", fw.FH_FIRST_ORDINAL), ("covered", fw.FH_COVERED),
                      ("anchor_index", fw.FH_ANCHOR_INDEX), ("anchor_head", fw.FH_ANCHOR_HEAD),
                      ("counts", fw.FH_COUNTS), ("quotas", fw.FH_QUOTAS), ("max_body", fw.FH_MAX_BODY)):
        assert _field_position(fiscal, name) == pos, name
    ring = pj.RingSectorHeader
    assert _field_offset(ring, "crc") == fw.RING_HDR_CRC_AT and _field_offset(ring, "successor") == fw.RING_SUCC_AT
    for name, pos in (("seq", fw.RH_SEQ), ("erase_count", fw.FH_ERASE_COUNT), ("head", fw.RH_HEAD), ("successor", fw.RH_SUCCESSOR)):
        assert _field_position(ring, name) == pos, name
    assert _field_offset(pj.FiscalRecord, "index") == fw.FISCAL_REC_INDEX_AT
    assert struct.calcsize(fw.FISCAL_REC_HEAD_FMT) == fw.FISCAL_REC_HEAD
    for record in (pj.FiscalRecord, pj.RingRecord):
        assert _field_offset(record, "length") == fw.REC_LENGTH_AT


def test_sizes_agree():
    assert struct.calcsize(fw.FISCAL_HDR_FMT) == fw.FISCAL_HDR_SIZE == pj.FISCAL_HDR_SIZE == pj.FiscalSectorHeader.sizeof()
    assert struct.calcsize(fw.RING_HDR_FMT) + 1 == fw.RING_HDR_SIZE == pj.RING_HDR_SIZE == pj.RingSectorHeader.sizeof()
    assert struct.calcsize(fw.STREAM_HDR_FMT) == fw.STREAM_HDR_SIZE == pj.STREAM_HDR_SIZE == pj.StreamHeader.sizeof()
    assert fw.FISCAL_REC_OVERHEAD == pj.FISCAL_REC_OVERHEAD == pj.FiscalRecord.build(
        dict(type=1, length=0, index=0, prev_head=bytes(32), body=b"", crc=0, commit=0)).__len__()
    assert fw.RING_REC_OVERHEAD == pj.RING_REC_OVERHEAD
    assert fw.FISCAL_HDR_CRC_AT == fw.FISCAL_HDR_SIZE - 4 and fw.RING_HDR_CRC_AT == fw.RING_SUCC_AT - 4


fiscal_header = st.fixed_dictionaries(dict(
    version=u8, device_id=b8, format_id=b4, fiscal_sectors=u16, ring_sectors=u16, seq=u32, erase_count=u32,
    first_ordinal=u32, first_index=u32, covered=u32, anchor_index=u32, anchor_head=b32,
    counts=st.lists(u32, min_size=7, max_size=7), quotas=st.lists(u16, min_size=7, max_size=7),
    max_body=st.lists(u16, min_size=7, max_size=7), crc=u32))

FISCAL_ORDER = ("device_id", "format_id", "fiscal_sectors", "ring_sectors", "seq", "erase_count", "first_ordinal",
                "first_index", "covered", "anchor_index", "anchor_head")


def fiscal_struct(d):
    return struct.pack(fw.FISCAL_HDR_FMT, b"FJ", d["version"], fw.AREA_FISCAL, *[d[k] for k in FISCAL_ORDER],
                       *d["counts"], *d["quotas"], *d["max_body"], d["crc"])


@given(fiscal_header)
def test_fiscal_sector_header_struct_to_construct(d):
    raw = fiscal_struct(d)
    parsed = pj.FiscalSectorHeader.parse(raw)
    assert {k: parsed[k] for k in d} == d


@given(fiscal_header)
def test_fiscal_sector_header_construct_to_struct(d):
    raw = pj.FiscalSectorHeader.build(d)
    assert raw == fiscal_struct(d)
    f = struct.unpack(fw.FISCAL_HDR_FMT, raw)
    assert f[0] == fw.MAGIC and f[2] == fw.AREA_FISCAL and list(f[14:21]) == d["counts"]


ring_header = st.fixed_dictionaries(dict(
    version=u8, device_id=b8, format_id=b4, fiscal_sectors=u16, ring_sectors=u16, seq=u32, erase_count=u32,
    first_ordinal=u32, first_index=u32, head=b32, crc=u32, successor=u8))
RING_ORDER = ("device_id", "format_id", "fiscal_sectors", "ring_sectors", "seq", "erase_count", "first_ordinal",
              "first_index", "head", "crc")


def ring_struct(d):
    return struct.pack(fw.RING_HDR_FMT, b"FJ", d["version"], fw.AREA_RING, *[d[k] for k in RING_ORDER]) + \
        bytes([d["successor"]])


@given(ring_header)
def test_ring_sector_header_both_directions(d):
    raw = ring_struct(d)
    parsed = pj.RingSectorHeader.parse(raw)
    assert {k: parsed[k] for k in d} == d
    assert pj.RingSectorHeader.build(d) == raw


stream_header = st.fixed_dictionaries(dict(
    version=u8, flags=u8, sector_size=u16, device_id=b8, format_id=b4, fiscal_images=u16, ring_images=u16,
    next_index=u32, fiscal_records=u32, invoices=u32, covered=u32, chain_head=b32, crc=u32))
STREAM_ORDER = ("version", "flags", "sector_size", "device_id", "format_id", "fiscal_images", "ring_images",
                "next_index", "fiscal_records", "invoices", "covered", "chain_head", "crc")


@given(stream_header)
def test_stream_header_both_directions(d):
    raw = struct.pack(fw.STREAM_HDR_FMT, fw.STREAM_MAGIC, *[d[k] for k in STREAM_ORDER])
    parsed = pj.StreamHeader.parse(raw)
    assert {k: parsed[k] for k in d} == d
    assert pj.StreamHeader.build(d) == raw


@given(u32, u8, st.binary(max_size=600))
def test_chain_input_both_directions(index, rtype, body):
    raw = struct.pack(fw.CHAIN_PREFIX_FMT, index, rtype, len(body)) + body
    assert pj.ChainInput.build(dict(index=index, type=rtype, length=len(body), body=body)) == raw
    p = pj.ChainInput.parse(raw)
    assert (p.index, p.type, p.body) == (index, rtype, body)


# ------------------------------------------------------------------ what the journal really writes
def fresh():
    f = NorFlash(sector_count=40, sector_size=1024, page_size=256)
    quotas = ((1, 384), (40, 160), (4, 176), (4, 48), (8, 32), (8, 48), (16, 600))
    Journal.format(f, DEVICE, quotas=quotas, fiscal_sectors=30, format_id=b"\x00\x00\x00\x07")
    return f, Journal(f, DEVICE)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(fw.FISCAL_TYPES), st.binary(max_size=160), st.integers(0, 3))
def test_a_fiscal_record_written_by_the_journal_parses_and_rebuilds(rtype, body, invoices_before):
    f, j = fresh()
    for k in range(invoices_before):
        j.append(fw.INVOICE, b"\x11" * k)
    head = j.chain_head()
    idx = j.append(rtype, body)
    raw = bytes(f.data[136:136 + 44 + len(body)])
    r = pj.FiscalRecord.parse(raw)
    assert (r.type, r.length, r.index, r.prev_head, r.body, r.commit) == (rtype, len(body), idx, head, body, 0)
    assert r.crc == zlib.crc32(raw[:39 + len(body)])
    assert pj.FiscalRecord.build(r) == raw
    hdr = pj.FiscalSectorHeader.parse(bytes(f.data[0:136]))
    assert hdr.crc == zlib.crc32(bytes(f.data[0:132])) and hdr.device_id == DEVICE


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=254))
def test_an_invoice_record_written_by_the_journal_parses_and_rebuilds(body):
    f, j = fresh()
    head = j.chain_head()
    j.append(fw.INVOICE, body)
    a = j.F * 1024
    hdr = pj.RingSectorHeader.parse(bytes(f.data[a:a + 73]))
    assert (hdr.first_ordinal, hdr.first_index, hdr.head, hdr.successor) == (0, 0, head, 0xFF)
    assert hdr.crc == zlib.crc32(bytes(f.data[a:a + 68]))
    raw = bytes(f.data[a + 73:a + 73 + 7 + len(body)])
    r = pj.RingRecord.parse(raw)
    assert (r.type, r.body, r.commit, r.crc) == (fw.INVOICE, body, 0, zlib.crc32(raw[:2 + len(body)]))
    assert pj.RingRecord.build(r) == raw


def test_the_stream_header_describes_the_journal():
    f, j = fresh()
    j.append(fw.INIT, b"i")
    j.append(fw.INVOICE, b"v")
    h = pj.StreamHeader.parse(j.stream_header())
    assert (h.fiscal_images, h.ring_images, h.next_index, h.fiscal_records, h.invoices, h.chain_head) == \
        (1, 1, 2, 1, 1, j.chain_head())
    assert h.crc == zlib.crc32(bytes(j.stream_header()[:72]))


def test_the_chain_definitions_agree():
    f, j = fresh()
    g = pj.genesis(DEVICE, b"\x00\x00\x00\x07")
    assert j.chain_head() == g
    j.append(fw.EVENT, b"\x01\x02")
    assert j.chain_head() == pj.chain_step(g, 0, fw.EVENT, b"\x01\x02")


def test_default_quotas_hold_the_bodies_of_protocol_records():
    from protocol import records
    for rtype, (quota, max_body) in zip(fw.FISCAL_TYPES, fw.DEFAULT_QUOTAS):
        assert records.RECORDS[rtype][1].sizeof() <= max_body
    assert records.RECORDS[fw.INVOICE][1].sizeof() <= fw.RING_MAX_BODY
