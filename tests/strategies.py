"""Hypothesis strategies for any firmware layout (fiscal_till.schema kinds), and value normalisation
so Construct containers and firmware dicts compare equal."""

import construct as cs
from hypothesis import strategies as st

_INT = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFFFFFF), "h": (-0x8000, 0x7FFF),
        "i": (-0x80000000, 0x7FFFFFFF)}


def _text(max_bytes: int, ascii_only: bool) -> st.SearchStrategy[str]:
    if ascii_only:
        chars = st.characters(min_codepoint=1, max_codepoint=0x7F)
    else:
        chars = st.characters(min_codepoint=1, exclude_categories=("Cs",))
    return st.text(chars, max_size=max_bytes).filter(lambda s: len(s.encode("utf-8")) <= max_bytes)


def for_kind(kind, max_list: int = 4) -> st.SearchStrategy:
    if isinstance(kind, str):
        if kind in _INT:
            return st.integers(*_INT[kind])
        if kind == "D":
            return st.integers(0, 99_999_999)
        if kind == "T":
            return st.integers(0, 999_999)
        if kind == "p":
            return _text(255, False)
        if kind == "g":
            return st.binary(max_size=64)
        raise ValueError(kind)
    tag = kind[0]
    if tag == "s":
        return st.binary(min_size=kind[1], max_size=kind[1])
    if tag in ("a", "u"):
        return _text(kind[1], tag == "a")
    if tag in ("S", "X"):
        return st.fixed_dictionaries({name: for_kind(k, max_list) for name, k in kind[1]})
    if tag == "A":
        return st.lists(for_kind(kind[2], max_list), min_size=kind[1], max_size=kind[1])
    if tag == "L":
        return st.lists(for_kind(kind[1], max_list), max_size=max_list)
    raise ValueError(kind)


def for_layout(layout) -> st.SearchStrategy:
    if layout and isinstance(layout[0], str):
        return for_kind(layout)
    return for_kind(("S", layout))


def plain(v):
    """Construct containers -> dicts and lists, without Construct's private keys."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items() if not k.startswith("_")}
    if isinstance(v, (list, cs.ListContainer)):
        return [plain(x) for x in v]
    return v


def to_json(v):
    """Values as the golden-vector file stores them: bytes as {"$hex": ...}."""
    if isinstance(v, (bytes, bytearray)):
        return {"$hex": bytes(v).hex()}
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items() if not k.startswith("_")}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    return v


def from_json(v):
    if isinstance(v, dict):
        if set(v) == {"$hex"}:
            return bytes.fromhex(v["$hex"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v
