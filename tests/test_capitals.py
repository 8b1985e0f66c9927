"""Amounts in Chinese capitals (大写) on invoices."""

import pytest
from hypothesis import given, strategies as st

from fiscal_till.capitals import capitals


@pytest.mark.parametrize("fen,text", [
    (0, "零元整"),
    (5, "伍分"),
    (50, "伍角"),
    (1_000, "壹拾元整"),
    (1_500, "壹拾伍元整"),
    (15_800, "壹佰伍拾捌元整"),
    (100_550, "壹仟零伍元伍角"),
    (168_032, "壹仟陆佰捌拾元零叁角贰分"),
    (10_005, "壹佰元零伍分"),
    (10_010_000, "壹拾万零壹佰元整"),
    (100_010_000, "壹佰万零壹佰元整"),
    (1_010_101, "壹万零壹佰零壹元零壹分"),
    (100_000_009, "壹佰万元零玖分"),
    (10_000_000_000, "壹亿元整"),
    (10_000_000_100, "壹亿零壹元整"),
    (4_294_967_295, "肆仟贰佰玖拾肆万玖仟陆佰柒拾贰元玖角伍分"),
    (1_234_567_890_123, "壹佰贰拾叁亿肆仟伍佰陆拾柒万捌仟玖佰零壹元贰角叁分"),
])
def test_capitals_of_known_amounts(fen, text):
    assert capitals(fen) == text


@pytest.mark.parametrize("bad", [-1, 1.5, "100"])
def test_capitals_refuses_what_is_not_fen(bad):
    with pytest.raises(ValueError):
        capitals(bad)


_D = {c: i for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")}
_U = {"拾": 10, "佰": 100, "仟": 1000}


def _parse_int(s: str) -> int:
    total, section, digit = 0, 0, 0
    for ch in s:
        if ch in _D:
            digit = _D[ch]
        elif ch in _U:
            section += digit * _U[ch]
            digit = 0
        elif ch == "万":
            total += (section + digit) * 10_000
            section = digit = 0
        elif ch == "亿":
            total = (total + section + digit) * 100_000_000
            section = digit = 0
    return total + section + digit


def parse(text: str) -> int:
    """An independent reader of 大写, for the round-trip property."""
    if text == "零元整":
        return 0
    yuan, _, rest = text.rpartition("元") if "元" in text else ("", "", text)
    fen = _parse_int(yuan) * 100
    rest = rest.removesuffix("整").lstrip("零")
    if "角" in rest:
        j, rest = rest.split("角")
        fen += _D[j] * 10
    if "分" in rest:
        fen += _D[rest.rstrip("分")[-1]]
    return fen


@given(st.integers(0, 10 ** 13))
def test_capitals_read_back_to_the_same_amount(fen):
    text = capitals(fen)
    assert parse(text) == fen
    assert "零零" not in text and not text.startswith("零") or text == "零元整"
    assert not text.startswith("拾")
