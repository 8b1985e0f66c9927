"""Declared income as the operator types it or as a file brings it; every input checked, with a clear message.

Typed: yuan with at most two decimals ("12345", "12345.6", "12345.67"); no sign, no exponent, no grouping.

JSON file, one filing:
    {"taxpayer_no": "91440101MA5CXXXX1X", "period_end": "2026-01-31", "income": "1234.50",
     "items": {"1": "1000.00", "2": "234.50"}}          # items optional: declared income per tax item
CSV file (header row, then one row; an itemised filing adds columns item_<index>):
    taxpayer_no,period_end,income[,item_1,item_2...]

taxpayer_no and period_end, when present, must match the filing they are used for (a file for another
taxpayer or period is refused); items, when given, must be the taxpayer's tax items and add up to the
income exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from protocol import calendar

from .common import BAD_INPUT, Refused

MAX_FEN = 10 ** 15  # 10 trillion yuan: far beyond any till's limits, below every integer column
_YUAN = re.compile(r"^(\d{1,13})(?:\.(\d{1,2}))?$")


@dataclass(frozen=True)
class DeclaredIncome:
    income: int  # fen
    items: dict[int, int] | None = None  # {tax item: fen}, or None
    taxpayer_no: str | None = None
    period_end: int | None = None
    source: str = "typed"

    def as_dict(self) -> dict:
        return {"income_fen": self.income, "items_fen": self.items, "source": self.source}


def parse_yuan(text, what: str = "income") -> int:
    """Fen from yuan text; Refused(bad-input) naming `what` otherwise."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise Refused(BAD_INPUT, "%s must be an amount in yuan such as 1234.50, got %r" % (what, text))
    m = _YUAN.match(str(text).strip())
    if not m:
        raise Refused(BAD_INPUT, "%s must be an amount in yuan with at most two decimals (e.g. 1234.50), got %r"
                      % (what, text))
    fen = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
    if fen > MAX_FEN:
        raise Refused(BAD_INPUT, "%s %s is beyond any plausible amount" % (what, text))
    return fen


def parse_date(text, what: str = "date") -> int:
    """YYYYMMDD int from 'YYYY-MM-DD' or 'YYYYMMDD'."""
    try:
        return calendar.parse_day(text)
    except ValueError:
        raise Refused(BAD_INPUT, "%s must be a date YYYY-MM-DD, got %r" % (what, text)) from None


def typed(text: str) -> DeclaredIncome:
    return DeclaredIncome(parse_yuan(text))


def _items(raw: dict, where: str) -> dict[int, int]:
    out = {}
    for k, v in raw.items():
        ks = str(k).strip()
        if not ks.isdigit() or not 1 <= int(ks) <= 255:
            raise Refused(BAD_INPUT, "%s: tax item %r is not an item index 1-255" % (where, k))
        out[int(ks)] = parse_yuan(v, "%s: income of tax item %s" % (where, ks))
    if not out:
        raise Refused(BAD_INPUT, "%s: items is empty; leave it out for an unitemised filing" % where)
    return out


def _build(fields: dict, where: str) -> DeclaredIncome:
    unknown = set(fields) - {"taxpayer_no", "period_end", "income", "items"}
    if unknown:
        raise Refused(BAD_INPUT, "%s: unknown field(s) %s" % (where, ", ".join(sorted(unknown))))
    if "income" not in fields or fields["income"] in ("", None):
        raise Refused(BAD_INPUT, "%s: the field income is missing" % where)
    income = parse_yuan(fields["income"], "%s: income" % where)
    items = None
    if fields.get("items") is not None:
        if not isinstance(fields["items"], dict):
            raise Refused(BAD_INPUT, "%s: items must map tax item index to yuan" % where)
        items = _items(fields["items"], where)
        if sum(items.values()) != income:
            raise Refused(BAD_INPUT, "%s: items add up to %d fen, not the income %d fen" % (
                where, sum(items.values()), income))
    tp = fields.get("taxpayer_no")
    if tp is not None and (not isinstance(tp, str) or not tp.strip()):
        raise Refused(BAD_INPUT, "%s: taxpayer_no must be text" % where)
    end = fields.get("period_end")
    return DeclaredIncome(income, items, tp.strip() if tp else None,
                          parse_date(end, "%s: period_end" % where) if end not in (None, "") else None,
                          "file:%s" % where)


def load(path: str | Path) -> DeclaredIncome:
    """A filing from a .json or .csv file (by extension)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise Refused(BAD_INPUT, "cannot read %s: %s" % (p, e.strerror or e)) from None
    except UnicodeDecodeError:
        raise Refused(BAD_INPUT, "%s is not UTF-8 text" % p) from None
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise Refused(BAD_INPUT, "%s is not valid JSON: %s" % (p.name, e)) from None
        if not isinstance(doc, dict):
            raise Refused(BAD_INPUT, "%s must hold one JSON object" % p.name)
        return _build(doc, p.name)
    if p.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        if len(rows) != 1:
            raise Refused(BAD_INPUT, "%s must have a header row and exactly one filing row, found %d rows"
                          % (p.name, len(rows)))
        if None in rows[0]:
            raise Refused(BAD_INPUT, "%s: a row has more cells than the header" % p.name)
        row = {(k or "").strip(): (v or "").strip() for k, v in rows[0].items()}
        items = {k[5:]: v for k, v in row.items() if k.startswith("item_") and v != ""}
        fields = {k: v for k, v in row.items() if not k.startswith("item_")}
        if items:
            fields["items"] = items
        return _build(fields, p.name)
    raise Refused(BAD_INPUT, "%s: a filing file must be .json or .csv" % p.name)


def check_against(declared: DeclaredIncome, taxpayer_no: str, period_end: int, rates: dict[int, int]) -> None:
    """Refuse a file made for another taxpayer or period, or itemising items the taxpayer does not have."""
    if declared.taxpayer_no is not None and declared.taxpayer_no != taxpayer_no:
        raise Refused(BAD_INPUT, "the filing is for taxpayer %s, not %s" % (declared.taxpayer_no, taxpayer_no))
    if declared.period_end is not None and declared.period_end != period_end:
        raise Refused(BAD_INPUT, "the filing is for the period ending %d, the card's declaration ends %d"
                      % (declared.period_end, period_end))
    if declared.items is not None:
        unknown = sorted(set(declared.items) - set(rates))
        if unknown:
            raise Refused(BAD_INPUT, "tax item(s) %s are not items of taxpayer %s (has %s)" % (
                ", ".join(map(str, unknown)), taxpayer_no, ", ".join(map(str, sorted(rates)))))
