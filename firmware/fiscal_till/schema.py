"""A tiny table-driven `struct` codec: the firmware's second implementation of the protocol/ layouts.

Construct does not run on MicroPython, so every layout the till speaks is written again here as a schema
and proven byte-for-byte equal to the Construct definition by the tests (tests/test_codec_agreement.py).

A schema is a tuple of fields `(name, kind)`.  A kind is one of
    'B' 'H' 'I' 'h' 'i'   big-endian integers (u8, u16, u32, s16, s32)
    'D'  'T'              BCD date CCYYMMDD (4 bytes) / time hhmmss (3 bytes), carried as int
    'p'                   UTF-8 text with a u8 length prefix
    'g'                   all remaining bytes (last field only)
    ('s', n)              n raw bytes
    ('a', n) ('u', n)     n bytes of NUL-padded ASCII / UTF-8 text
    ('S', schema)         nested struct
    ('A', n, kind)        exactly n elements
    ('L', kind)           elements with a u8 count prefix
    ('X', schema)         schema followed by its XOR check byte (GB 18240 command data)
Values decode to dicts, lists, ints, bytes and str.  Every encoder checks ranges itself: MicroPython's
struct.pack silently truncates, and an amount overflowing 32 bits must be an error, not a wrap.
Errors are ValueError (decode: short, trailing, bad BCD/text/check byte; encode: out of range).
"""

import struct

_INT = {"B": (1, 0, 0xFF), "H": (2, 0, 0xFFFF), "I": (4, 0, 0xFFFFFFFF),
        "h": (2, -0x8000, 0x7FFF), "i": (4, -0x80000000, 0x7FFFFFFF)}
_FMT = {"B": ">B", "H": ">H", "I": ">I", "h": ">h", "i": ">i"}


def _bcd_decode(buf, off, n):
    v = 0
    for i in range(off, off + n):
        b = buf[i]
        hi = b >> 4
        lo = b & 15
        if hi > 9 or lo > 9:
            raise ValueError("not BCD")
        v = v * 100 + hi * 10 + lo
    return v


def _bcd_encode(v, buf, off, n):
    if not isinstance(v, int) or v < 0 or v >= 10 ** (2 * n):
        raise ValueError("BCD out of range")
    for i in range(off + n - 1, off - 1, -1):
        two = v % 100
        v //= 100
        buf[i] = (two // 10) << 4 | two % 10


def _text(obj, ascii_only):
    if not isinstance(obj, str):
        raise ValueError("text expected")
    raw = obj.encode("utf-8")
    if ascii_only:
        for b in raw:
            if b > 0x7F:
                raise ValueError("not ASCII")
    return raw


def _check_text(raw, ascii_only):
    if ascii_only:
        for b in raw:
            if b > 0x7F:
                raise ValueError("not ASCII")
    return str(raw, "utf-8")


def xor8(buf, start, end):
    x = 0
    for i in range(start, end):
        x ^= buf[i]
    return x


def decode_kind(kind, buf, off, end):
    """Decode one value of `kind` from buf[off:end]; returns (value, new offset)."""
    if isinstance(kind, str):
        if kind in _INT:
            size = _INT[kind][0]
            if off + size > end:
                raise ValueError("short")
            return struct.unpack_from(_FMT[kind], buf, off)[0], off + size
        if kind == "D" or kind == "T":
            size = 4 if kind == "D" else 3
            if off + size > end:
                raise ValueError("short")
            return _bcd_decode(buf, off, size), off + size
        if kind == "p":
            if off >= end:
                raise ValueError("short")
            n = buf[off]
            if off + 1 + n > end:
                raise ValueError("short")
            return _check_text(bytes(buf[off + 1:off + 1 + n]), False), off + 1 + n
        if kind == "g":
            return bytes(buf[off:end]), end
        raise ValueError("bad kind")
    tag = kind[0]
    if tag == "s" or tag == "a" or tag == "u":
        n = kind[1]
        if off + n > end:
            raise ValueError("short")
        raw = bytes(buf[off:off + n])
        if tag == "s":
            return raw, off + n
        return _check_text(raw.rstrip(b"\x00"), tag == "a"), off + n
    if tag == "S":
        return decode_struct(kind[1], buf, off, end)
    if tag == "A" or tag == "L":
        if tag == "A":
            count = kind[1]
            ek = kind[2]
        else:
            if off >= end:
                raise ValueError("short")
            count = buf[off]
            off += 1
            ek = kind[1]
        out = []
        for _ in range(count):
            v, off = decode_kind(ek, buf, off, end)
            out.append(v)
        return out, off
    if tag == "X":
        start = off
        v, off = decode_struct(kind[1], buf, off, end)
        if off >= end:
            raise ValueError("short")
        if buf[off] != xor8(buf, start, off):
            raise ValueError("check byte")
        return v, off + 1
    raise ValueError("bad kind")


def decode_struct(schema, buf, off, end):
    obj = {}
    for name, kind in schema:
        obj[name], off = decode_kind(kind, buf, off, end)
    return obj, off


def _as_kind(layout):
    # a layout is a schema (tuple of fields) or one kind such as ("X", schema)
    if layout and isinstance(layout[0], str):
        return layout
    return ("S", layout)


def decode(layout, data, off=0, end=-1):
    """Decode a whole buffer (or data[off:end]) as `layout`; trailing bytes are an error."""
    if end < 0:
        end = len(data)
    obj, pos = decode_kind(_as_kind(layout), data, off, end)
    if pos != end:
        raise ValueError("trailing bytes")
    return obj


def encode_kind(kind, obj, buf, off):
    """Encode `obj` as `kind` into bytearray buf at off; returns the new offset (IndexError if full)."""
    if isinstance(kind, str):
        if kind in _INT:
            size, lo, hi = _INT[kind]
            if not isinstance(obj, int) or obj < lo or obj > hi:
                raise ValueError("integer out of range")
            if off + size > len(buf):
                raise IndexError("buffer full")
            struct.pack_into(_FMT[kind], buf, off, obj)
            return off + size
        if kind == "D" or kind == "T":
            size = 4 if kind == "D" else 3
            if off + size > len(buf):
                raise IndexError("buffer full")
            _bcd_encode(obj, buf, off, size)
            return off + size
        if kind == "p":
            raw = _text(obj, False)
            if len(raw) > 255:
                raise ValueError("text too long")
            return _put(buf, off, bytes([len(raw)]) + raw)
        if kind == "g":
            return _put(buf, off, bytes(obj))
        raise ValueError("bad kind")
    tag = kind[0]
    if tag == "s":
        if not isinstance(obj, (bytes, bytearray)) or len(obj) != kind[1]:
            raise ValueError("wrong byte count")
        return _put(buf, off, obj)
    if tag == "a" or tag == "u":
        raw = _text(obj, tag == "a")
        n = kind[1]
        if len(raw) > n:
            raise ValueError("text too long")
        off = _put(buf, off, raw)
        return _put(buf, off, bytes(n - len(raw)))
    if tag == "S":
        return encode_struct(kind[1], obj, buf, off)
    if tag == "A" or tag == "L":
        if not isinstance(obj, (list, tuple)):
            raise ValueError("list expected")
        if tag == "A":
            if len(obj) != kind[1]:
                raise ValueError("wrong element count")
            ek = kind[2]
        else:
            if len(obj) > 255:
                raise ValueError("too many elements")
            off = _put(buf, off, bytes([len(obj)]))
            ek = kind[1]
        for v in obj:
            off = encode_kind(ek, v, buf, off)
        return off
    if tag == "X":
        start = off
        off = encode_struct(kind[1], obj, buf, off)
        return _put(buf, off, bytes([xor8(buf, start, off)]))
    raise ValueError("bad kind")


def _put(buf, off, raw):
    n = len(raw)
    if off + n > len(buf):
        raise IndexError("buffer full")
    buf[off:off + n] = raw
    return off + n


def encode_struct(schema, obj, buf, off):
    if not isinstance(obj, dict):
        raise ValueError("dict expected")
    for name, kind in schema:
        if name not in obj:
            raise ValueError("missing field " + name)
        off = encode_kind(kind, obj[name], buf, off)
    return off


# ---- compiled encoders: the same rules as encode_kind, specialised once per layout ----------------------
# Integers, structs and fixed arrays (most of every record) get closures that skip the per-field kind
# dispatch; everything else falls back to encode_kind.  The cache keeps each kind object alive beside its
# encoder, so an id() is never reused for another object while it is a key.
_ENCODERS = {}  # type: dict


def _int_encoder(kind):
    size, lo, hi = _INT[kind]
    fmt = _FMT[kind]

    def enc(v, buf, off):
        if not isinstance(v, int) or v < lo or v > hi:
            raise ValueError("integer out of range")
        if off + size > len(buf):
            raise IndexError("buffer full")
        struct.pack_into(fmt, buf, off, v)
        return off + size
    return enc


def _struct_encoder(schema):
    fields = [(name, _encoder(k)) for name, k in schema]

    def enc(obj, buf, off):
        if not isinstance(obj, dict):
            raise ValueError("dict expected")
        for name, e in fields:
            if name not in obj:
                raise ValueError("missing field " + name)
            off = e(obj[name], buf, off)
        return off
    return enc


def _array_encoder(count, elem):
    e = _encoder(elem)

    def enc(obj, buf, off):
        if not isinstance(obj, (list, tuple)) or len(obj) != count:
            raise ValueError("wrong element count")
        for v in obj:
            off = e(v, buf, off)
        return off
    return enc


def _encoder(kind):
    hit = _ENCODERS.get(id(kind))
    if hit is not None:
        return hit[1]
    if isinstance(kind, str) and kind in _INT:
        f = _int_encoder(kind)
    elif not isinstance(kind, str) and kind[0] == "S":
        f = _struct_encoder(kind[1])
    elif not isinstance(kind, str) and kind[0] == "A":
        f = _array_encoder(kind[1], kind[2])
    else:
        def f(v, buf, off, kind=kind):
            return encode_kind(kind, v, buf, off)
    _ENCODERS[id(kind)] = (kind, f)
    return f


def _layout_encoder(layout):
    hit = _ENCODERS.get(id(layout))
    if hit is not None:
        return hit[1]
    f = _encoder(layout) if layout and isinstance(layout[0], str) else _struct_encoder(layout)
    _ENCODERS[id(layout)] = (layout, f)
    return f


def encode(layout, obj, size=4096):
    """Encode into a fresh buffer and return bytes (convenience; the till's hot path uses encode_into)."""
    buf = bytearray(size)
    n = _layout_encoder(layout)(obj, buf, 0)
    return bytes(buf[:n])


def encode_into(layout, obj, buf, off=0):
    """Encode into a preallocated bytearray; returns the end offset."""
    return _layout_encoder(layout)(obj, buf, off)
