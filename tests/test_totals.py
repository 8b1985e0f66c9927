"""protocol.totals: the totals arithmetic the bureau's verifier, its auditor and the model share."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol import apdu
from protocol import totals


def _day(lines, counts=(1, 0, 0)):
    lines = list(lines) + [(0, 0, 0)] * (6 - len(lines))
    return {"normal_count": counts[0], "return_count": counts[1], "void_count": counts[2],
            "normal_total": sum(n for _, n, _ in lines), "return_total": sum(r for _, _, r in lines),
            "lines": [{"item": i, "normal": n, "returned": r} for i, n, r in lines]}


def test_a_record_adds_up_when_its_totals_are_the_sums_of_its_lines():
    day = _day([(1, 1000, 0), (2, 250, 50)])
    assert totals.lines_add_up(day)
    assert not totals.lines_add_up(dict(day, normal_total=1249))
    assert not totals.lines_add_up(dict(day, return_total=0))


def test_period_sums_add_counts_and_per_item_amounts_over_the_days():
    days = [_day([(1, 1000, 0), (2, 250, 50)], (3, 1, 0)), _day([(2, 100, 0), (3, 0, 0)], (1, 0, 2))]
    assert totals.period_sums(days) == ((4, 1, 2), {1: (1000, 0), 2: (350, 50)})


def test_item_zero_never_counts_and_an_item_without_amounts_is_not_listed():
    days = [_day([(0, 0, 0), (5, 0, 0)], (0, 0, 1))]
    assert totals.period_sums(days) == ((0, 0, 1), {})
    assert totals.period_sums([]) == ((0, 0, 0), {})


def test_counts_and_lines_of_a_record():
    day = _day([(1, 1000, 0)], (2, 0, 1))
    assert totals.counts_of(day) == (2, 0, 1)
    assert totals.lines_of(day) == [(1, 1000, 0)] + [(0, 0, 0)] * 5


def test_card_sums_are_the_card_layout_column_by_column():
    day = _day([(1, 1000, 0), (2, 250, 50)], (3, 1, 0))
    data = apdu.DailyCollectSignData.build(dict(date=20260105, sums=totals.card_sums(day)))
    assert data[:4] == b"\x20\x26\x01\x05"
    assert totals.card_sums(day) == dict(normal_count=3, return_count=1, void_count=0, items=[1, 2, 0, 0, 0, 0],
                                         normal=[1000, 250, 0, 0, 0, 0], returned=[0, 50, 0, 0, 0, 0])


ITEM_LINES = st.lists(st.tuples(st.integers(0, 8), st.integers(0, 10 ** 6), st.integers(0, 10 ** 5)), max_size=6)


@given(st.lists(ITEM_LINES, max_size=5))
def test_period_sums_are_the_sum_of_each_days_sums(day_lines):
    days = [_day([ln for ln in lines if ln[0]]) for lines in day_lines]
    whole = totals.period_sums(days)
    parts = [totals.period_sums([d]) for d in days]
    assert whole.counts[0] == sum(p.counts[0] for p in parts)
    for item, (n, r) in whole.items.items():
        assert n == sum(p.items.get(item, (0, 0))[0] for p in parts)
        assert r == sum(p.items.get(item, (0, 0))[1] for p in parts)
