"""ISO 7816-4 APDU framing for the till's card slots (protocol/apdu.py is the Construct definition).

Commands are dicts: cla, ins, p1, p2, data (bytes), le (None, 1..256 short, up to 65536 extended).
The extended form is used only when data exceeds 255 bytes or Le exceeds 256.
"""


def encode_command(cla, ins, p1, p2, data=b"", le=None):
    for v in (cla, ins, p1, p2):
        if not 0 <= v <= 0xFF:
            raise ValueError("header byte out of range")
    n = len(data)
    if n > 65535 or (le is not None and not 1 <= le <= 65536):
        raise ValueError("Lc or Le out of range")
    out = bytearray((cla, ins, p1, p2))
    if n > 255 or (le is not None and le > 256):
        out.append(0)
        if n:
            out.append(n >> 8)
            out.append(n & 0xFF)
            out += data
        if le is not None:
            out.append((le >> 8) & 0xFF)
            out.append(le & 0xFF)
    else:
        if n:
            out.append(n)
            out += data
        if le is not None:
            out.append(le & 0xFF)
    return bytes(out)


def decode_command(raw):
    """Parse a command APDU into a dict; ValueError if Lc/Le do not account for every byte."""
    if len(raw) < 4:
        raise ValueError("APDU shorter than its header")
    body = raw[4:]
    n = len(body)
    data = b""
    le = None
    if n == 1:
        le = body[0] or 256
    elif n >= 2 and body[0] != 0:
        lc = body[0]
        if n != 1 + lc and n != 2 + lc:
            raise ValueError("Lc does not match")
        data = bytes(body[1:1 + lc])
        if n == 2 + lc:
            le = body[n - 1] or 256
    elif n == 2:
        raise ValueError("Lc of 0 in a short APDU")
    elif n == 3:
        le = (body[1] << 8 | body[2]) or 65536
    elif n > 3:
        lc = body[1] << 8 | body[2]
        if lc == 0 or (n != 3 + lc and n != 5 + lc):
            raise ValueError("extended Lc does not match")
        data = bytes(body[3:3 + lc])
        if n == 5 + lc:
            le = (body[n - 2] << 8 | body[n - 1]) or 65536
    return {"cla": raw[0], "ins": raw[1], "p1": raw[2], "p2": raw[3], "data": data, "le": le}


def decode_response(raw):
    """(data, sw) of a response APDU."""
    if len(raw) < 2:
        raise ValueError("response shorter than its status word")
    n = len(raw)
    return bytes(raw[:n - 2]), raw[n - 2] << 8 | raw[n - 1]


def encode_response(data, sw):
    if not 0 <= sw <= 0xFFFF:
        raise ValueError("sw out of range")
    return bytes(data) + bytes((sw >> 8, sw & 0xFF))
