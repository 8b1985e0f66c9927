"""Money rules of the filing window: filing deadline, tax due, late surcharge (滞纳金), the next deadline.

All integer fen; no floats.  Each rule is one function so a deployment can change it in one place.

Filing deadline (征期): the 15th day of the month after the period's end (FILING_DAY), for monthly and
quarterly filers alike (a quarter ends on a month end).  [our choice; the collection law lets the tax
authority set it, and the 15th is the common 征期]

Days late: calendar days from the day after the filing deadline through the day the filing is accepted,
inclusive: max(0, filed_on - deadline).

Base (tax due): the declared income taxed at the tax items' rates (basis points).  With an itemised
filing, each item's declared income at its rate.  Without, the card's recorded net income of each item
(normal - returned) at its rate, and any income declared beyond the record at the highest rate of the
taxpayer's items (the taxpayer may itemise to be taxed at the right rate).  Each item's tax is rounded
half up to the fen (as on a tax form, line by line); the base is never below 0.

Surcharge: 0.05 % of the base per day late (SURCHARGE_PER_10K = 5 per ten thousand per day), computed on
base x days at once and rounded half up to the fen once (not per day, which would lose up to half a fen
a day).

Next invoice deadline after a clear-unlock: the last day of the filing period (month, or quarter for
quarterly filers) that contains the filing day; if that is not after the declared period's end, the
last day of the period after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import calendar
from protocol import cardfiles
from protocol import rules

FILING_DAY = rules.THRESHOLDS["FILING_DAY_OF_MONTH"]  # R-SURCHARGE: the filing deadline's day (征期)
SURCHARGE_PER_10K = rules.THRESHOLDS["SURCHARGE_PER_10K_PER_DAY"]  # R-SURCHARGE: 0.05 % a day


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in integers."""
    q, r = divmod(abs(numerator), denominator)
    q += 2 * r >= denominator
    return q if numerator >= 0 else -q


def filing_deadline(period_end: int) -> int:
    return calendar.day_of_next_month(period_end, FILING_DAY)


def days_late(period_end: int, filed_on: int) -> int:
    return max(0, calendar.days_between(filing_deadline(period_end), filed_on))


def tax_due(rates: dict[int, int], recorded_lines: list, declared: int, items: dict[int, int] | None) -> int:
    """`rates` {item: basis points}; `recorded_lines` [(item, normal, returned)] from the card;
    `declared` the declared income (fen); `items` {item: fen} when the filing is itemised."""
    # R-SURCHARGE: the base of the surcharge
    if items is not None:
        due = sum(round_half_up(amount * rates[i], 10000) for i, amount in items.items())
    else:
        recorded = {i: n - r for i, n, r in recorded_lines if i}
        due = sum(round_half_up(net * rates.get(i, 0), 10000) for i, net in recorded.items())
        excess = declared - sum(recorded.values())
        if excess > 0:
            due += round_half_up(excess * max(rates.values(), default=0), 10000)
    return max(0, due)


@dataclass(frozen=True)
class Assessment:
    filing_deadline: int
    filed_on: int
    days: int
    base: int
    amount: int

    def as_dict(self) -> dict:
        return {"filing_deadline": self.filing_deadline, "filed_on": self.filed_on, "days_late": self.days,
                "base_fen": self.base, "rate_per_day": "%d/10000" % SURCHARGE_PER_10K, "surcharge_fen": self.amount}


def assess(period_end: int, filed_on: int, base: int) -> Assessment:
    # R-SURCHARGE: days late times the rate on the tax due, rounded once; nothing here can waive it
    days = days_late(period_end, filed_on)
    return Assessment(filing_deadline(period_end), filed_on, days, base,
                      round_half_up(base * days * SURCHARGE_PER_10K, 10000))


def next_deadline(period_end: int, filed_on: int, filing_mode: int) -> int:
    months = calendar.QUARTERLY if filing_mode == cardfiles.FILING_QUARTERLY else calendar.MONTHLY
    last = calendar.period_last_day(filed_on, months)
    if last <= period_end:
        last = calendar.period_last_day(calendar.next_day(period_end), months)
    return last
