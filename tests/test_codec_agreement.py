"""The firmware's struct codec and the Construct definitions agree byte for byte, in both directions,
for every layout (tests/layout_pairs.py), and reject the same malformed inputs."""

import construct as cs
import pytest
from hypothesis import given, settings, strategies as st

from fiscal_till import layouts, schema
from layout_pairs import ALIASES, PAIRS
from protocol import apdu, cardfiles, commands, records, types
from strategies import for_layout, plain

IDS = [p[0] for p in PAIRS]


@pytest.mark.parametrize("name,construct,fw_name", PAIRS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_firmware_encode_equals_construct_build(name, construct, fw_name, data):
    layout = getattr(layouts, fw_name)
    value = data.draw(for_layout(layout))
    built = construct.build(value)
    assert schema.encode(layout, value, size=8192) == built
    assert schema.decode(layout, built) == plain(construct.parse(built))


@pytest.mark.parametrize("name,construct,fw_name", PAIRS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_construct_parses_what_firmware_encodes(name, construct, fw_name, data):
    layout = getattr(layouts, fw_name)
    value = data.draw(for_layout(layout))
    encoded = schema.encode(layout, value, size=8192)
    assert plain(construct.parse(encoded)) == value


def _construct_parse(construct, raw):
    try:
        value = plain(construct.parse(raw))
    except (cs.ConstructError, UnicodeDecodeError):
        return "rejected"
    # Construct ignores bytes after a fixed layout; the firmware refuses them.  Compare like for like.
    try:
        if len(construct.build(value)) != len(raw):
            return "rejected"
    except (cs.ConstructError, UnicodeEncodeError):
        return "rejected"
    return value


def _firmware_parse(layout, raw):
    try:
        return schema.decode(layout, raw)
    except (ValueError, UnicodeError):
        return "rejected"


@pytest.mark.parametrize("name,construct,fw_name", PAIRS, ids=IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_both_decoders_accept_and_reject_the_same_bytes(name, construct, fw_name, data):
    layout = getattr(layouts, fw_name)
    good = schema.encode(layout, data.draw(for_layout(layout)), size=8192)
    # mutate a valid encoding: flip a byte, cut it short, or add a byte
    how = data.draw(st.sampled_from(["flip", "cut", "extend", "random"]))
    if how == "flip" and good:
        i = data.draw(st.integers(0, len(good) - 1))
        raw = good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1:]
    elif how == "cut" and good:
        raw = good[:data.draw(st.integers(0, len(good) - 1))]
    elif how == "extend":
        raw = good + data.draw(st.binary(min_size=1, max_size=3))
    else:
        raw = data.draw(st.binary(max_size=len(good) + 4))
    assert _firmware_parse(layout, raw) == _construct_parse(construct, raw)


@pytest.mark.parametrize("kind,value", [
    ("I", 1 << 32), ("I", -1), ("B", 256), ("H", 65536), ("h", 0x8000), ("D", 100_000_000), ("T", -1),
    (("s", 4), b"abc"), (("a", 4), "abcde"), (("a", 4), "é"), (("u", 2), "éé"), ("p", "x" * 256),
    (("A", 2, "B"), [1]), (("L", "B"), list(range(256))),
])
def test_firmware_refuses_out_of_range_values_instead_of_wrapping(kind, value):
    with pytest.raises(ValueError):
        schema.encode(kind, value)


def test_amount_overflowing_32_bits_is_an_error_on_both_sides():
    value = {"deadline": 20261231, "single_limit": 1 << 32, "cumulative_limit": 0, "return_limit": 0}
    with pytest.raises(ValueError):
        schema.encode(layouts.CONTROLS, value)
    with pytest.raises(cs.ConstructError):
        types.Controls.build(value)


def _public_constructs(module):
    return {n for n, v in vars(module).items()
            if isinstance(v, cs.Construct) and n[:1].isupper() and not n.isupper()}


def test_every_layout_is_paired():
    listed = {p[0] for p in PAIRS} | set(ALIASES)
    not_layouts = {"BcdDate", "BcdTime", "Amount", "ShortText", "Empty", "Command", "Response",
                   "HeaderFields", "Frame"}
    for module in (types, records, commands, apdu, cardfiles):
        missing = _public_constructs(module) - listed - not_layouts
        assert not missing, "Construct layouts without a firmware twin in %s: %s" % (module.__name__, missing)
    fw = {n for n, v in vars(layouts).items() if n.isupper() and not n.startswith("_")
          and isinstance(v, tuple) and n not in ("EMPTY",)}
    assert fw - {p[2] for p in PAIRS} == set()


def test_command_and_record_tables_agree():
    for cmd in commands.COMMANDS:
        req, rep = layouts.COMMANDS[cmd.code]
        for construct, layout in ((cmd.request, req), (cmd.reply, rep)):
            twin = [p for p in PAIRS if p[1] is construct]
            if construct is commands.Empty:
                assert layout == layouts.EMPTY
            else:
                assert twin and getattr(layouts, twin[0][2]) is layout, cmd.name
    assert set(layouts.COMMANDS) == {cmd.code for cmd in commands.COMMANDS}
    for code, (rname, construct) in records.RECORDS.items():
        twin = [p for p in PAIRS if p[1] is construct]
        assert twin and getattr(layouts, twin[0][2]) is layouts.RECORDS[code], rname
    assert set(layouts.RECORDS) == set(records.RECORDS)
