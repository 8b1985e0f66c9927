"""Checksums of the host link (protocol/frame.py): CRC-8/SMBUS over the header, CRC-32 over the frame.

CRC-32 comes from binascii where the port has it (MICROPY_PY_BINASCII_CRC32, on by default on the unix,
rp2 and esp32 ports); a table-driven fallback keeps the firmware working on a port built without it.
"""

try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover - exercised by tests through crc32_soft
    _crc32 = None  # type: ignore[assignment]


def _table8():
    t = bytearray(256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        t[i] = c
    return bytes(t)


_T8 = _table8()
_T32 = None


def crc8(buf, start=0, end=-1):
    """CRC-8, poly 0x07, init 0 over buf[start:end]."""
    if end < 0:
        end = len(buf)
    c = 0
    t = _T8
    for i in range(start, end):
        c = t[c ^ buf[i]]
    return c


def crc32_soft(data, crc=0):
    """Reflected CRC-32 (poly 0xEDB88320), the same function as binascii.crc32."""
    global _T32
    if _T32 is None:
        t = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t.append(c)
        _T32 = t
    c = crc ^ 0xFFFFFFFF
    t = _T32
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32(data, crc=0):
    if _crc32 is not None:
        return _crc32(data, crc) & 0xFFFFFFFF
    return crc32_soft(data, crc)
