"""Totals arithmetic on the wire-shaped records (protocol.records' Totals, parsed by Construct or as dicts):

    {"normal_count", "return_count", "void_count", "normal_total", "return_total",
     "lines": [{"item", "normal", "returned"}, ...]}      # six lines; item 0 carries no amount

The rules, stated once for the bureau's verifier, its auditor and the conformance model:
  * a record adds up when its totals are the sums of its lines' amounts (normal and returned alike);
  * a period's sums are the sums of its days: the three counts, and per tax item the normal and returned
    amounts (item 0 never counts; an item with nothing in the period is not listed);
  * the card's Sums (DAILY_COLLECT_SIGN, DECLARE_DUTY) carry the counts and the lines column by column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

COUNTS = ("normal_count", "return_count", "void_count")
AMOUNTS = ("normal_total", "return_total")


class PeriodSums(NamedTuple):
    counts: tuple[int, int, int]            # normal, return, void
    items: dict[int, tuple[int, int]]       # item -> (normal, returned), only items with an amount


def counts_of(t) -> tuple[int, int, int]:
    """(normal, return, void) counts of one record."""
    return t["normal_count"], t["return_count"], t["void_count"]


def lines_of(t) -> list[tuple[int, int, int]]:
    """The lines as (item, normal, returned), in the record's order."""
    return [(ln["item"], ln["normal"], ln["returned"]) for ln in t["lines"]]


def lines_add_up(t) -> bool:
    """The record's totals are the sums of its lines."""
    return (sum(ln["normal"] for ln in t["lines"]) == t["normal_total"]
            and sum(ln["returned"] for ln in t["lines"]) == t["return_total"])


def period_sums(days: Iterable) -> PeriodSums:
    """Counts and per-item amounts summed over the days' totals."""
    n = r = v = 0
    per_item: dict[int, tuple[int, int]] = {}
    for t in days:
        n, r, v = n + t["normal_count"], r + t["return_count"], v + t["void_count"]
        for ln in t["lines"]:
            if ln["item"]:
                a, b = per_item.get(ln["item"], (0, 0))
                per_item[ln["item"]] = (a + ln["normal"], b + ln["returned"])
    return PeriodSums((n, r, v), {i: ab for i, ab in per_item.items() if any(ab)})


def card_sums(t) -> dict:
    """The card's Sums fields (protocol.apdu) of one record: counts, then the lines column by column."""
    lines = t["lines"]
    return dict(normal_count=t["normal_count"], return_count=t["return_count"], void_count=t["void_count"],
                items=[ln["item"] for ln in lines], normal=[ln["normal"] for ln in lines],
                returned=[ln["returned"] for ln in lines])
