"""The firmware checks its own codecs: built-in check values, and golden vectors when given the file.

    micropython -X heapsize=256k -m fiscal_till.selftest tests/vectors/golden.json

Runs on the board too (copy the JSON next to it).  Prints one line per failure and a closing
'N passed, M failed' line; exit status 1 on any failure.
"""

import sys
from binascii import hexlify, unhexlify

from . import apdu, crc, layouts, link, schema


def _from_json(v):
    if isinstance(v, dict):
        if len(v) == 1 and "$hex" in v:
            return unhexlify(v["$hex"])
        out = {}
        for k in v:
            out[k] = _from_json(v[k])
        return out
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    return v


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL", what)


def builtin(t):
    t.check(crc.crc8(b"123456789") == 0xF4, "crc8 check value")
    t.check(crc.crc32(b"123456789") == 0xCBF43926, "crc32 check value")
    t.check(crc.crc32_soft(b"123456789") == 0xCBF43926, "crc32_soft check value")
    f = link.build_frame(link.KIND_REQUEST, 1, 7, 0, b"")
    t.check(hexlify(f) == b"a551010000000700000000cbdcc1473d", "GET_INFO frame bytes")
    d = link.FrameDecoder()
    d.feed(b"\x00\xa5" + f)
    t.check(d.next_frame() == (link.KIND_REQUEST, 1, 7, 0, b""), "frame after garbage")
    v = {"deadline": 20261231, "single_limit": 1, "cumulative_limit": 2, "return_limit": 3}
    t.check(schema.decode(layouts.CONTROLS, schema.encode(layouts.CONTROLS, v)) == v, "controls round trip")
    try:
        schema.encode("I", 1 << 32)
        t.check(False, "32-bit overflow refused")
    except ValueError:
        t.check(True, "")


def vectors(t, path):
    import json
    with open(path) as fh:
        data = json.load(fh)
    for v in data["layouts"]:
        layout = getattr(layouts, v["firmware"])
        raw = unhexlify(v["hex"])
        fields = _from_json(v["fields"])
        try:
            t.check(schema.decode(layout, raw) == fields, v["name"] + " decode")
            t.check(schema.encode(layout, fields, 8192) == raw, v["name"] + " encode")
        except Exception as e:  # report and go on: a lab wants every failure, not the first
            t.check(False, v["name"] + " raised " + repr(e))
    for v in data["frames"]:
        raw = unhexlify(v["hex"])
        f = _from_json(v["fields"])
        d = link.FrameDecoder()
        d.feed(raw)
        got = d.next_frame()
        want = (f["kind"], f["command"], f["rid"], f["status"], f["payload"])
        t.check(got == want, "frame decode " + v["hex"][:24])
        t.check(link.build_frame(*want) == raw, "frame encode " + v["hex"][:24])
    for v in data["apdus"]:
        raw = unhexlify(v["hex"])
        a = _from_json(v["fields"])
        t.check(apdu.decode_command(raw) == a, "apdu decode " + v["hex"][:24])
        t.check(apdu.encode_command(a["cla"], a["ins"], a["p1"], a["p2"], a["data"], a["le"]) == raw,
                "apdu encode " + v["hex"][:24])


def main(argv):
    t = Tally()
    builtin(t)
    for path in argv:
        vectors(t, path)
    print("selftest: %d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
