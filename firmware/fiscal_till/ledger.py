"""Totals arithmetic: a day's, a period's and a report's sums, and their card form (PeriodSums).

Totals carry counts by kind and per-tax-item normal and return amounts in six slots ordered by item
index (item 0: unused).  Void invoices count but carry no amount.
"""

from . import codes


def empty_totals():
    return {"normal_count": 0, "return_count": 0, "void_count": 0, "normal_total": 0, "return_total": 0,
            "lines": [{"item": 0, "normal": 0, "returned": 0} for _ in range(6)]}


def _line(totals, item):
    lines = totals["lines"]
    for ln in lines:
        if ln["item"] == item:
            return ln
    for i in range(6):
        if lines[i]["item"] == 0:
            lines[i] = {"item": item, "normal": 0, "returned": 0}
            _sort(lines)
            for ln in lines:
                if ln["item"] == item:
                    return ln
    raise ValueError("more than 6 tax items")


def _sort(lines):
    used = [ln for ln in lines if ln["item"]]
    used.sort(key=lambda ln: ln["item"])
    while len(used) < 6:
        used.append({"item": 0, "normal": 0, "returned": 0})
    lines[:] = used


def add_invoice(totals, kind, slots, total):
    if kind == codes.INVOICE_VOID:
        totals["void_count"] += 1
        return
    key = "normal" if kind == codes.INVOICE_NORMAL else "returned"
    for s in slots:
        if s["item"]:
            _line(totals, s["item"])[key] += s["amount"]
    if kind == codes.INVOICE_NORMAL:
        totals["normal_count"] += 1
        totals["normal_total"] += total
    else:
        totals["return_count"] += 1
        totals["return_total"] += total


def add_totals(acc, t):
    for k in ("normal_count", "return_count", "void_count", "normal_total", "return_total"):
        acc[k] += t[k]
    for ln in t["lines"]:
        if ln["item"]:
            mine = _line(acc, ln["item"])
            mine["normal"] += ln["normal"]
            mine["returned"] += ln["returned"]


def period_sums(totals):
    """Totals -> the PeriodSums the fiscal card signs (counts, then the six lines in order)."""
    lines = totals["lines"]
    return {"normal_count": totals["normal_count"], "return_count": totals["return_count"],
            "void_count": totals["void_count"], "items": [ln["item"] for ln in lines],
            "normal": [ln["normal"] for ln in lines], "returned": [ln["returned"] for ln in lines]}
