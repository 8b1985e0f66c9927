"""protocol.money.yuan: fen shown as yuan, two decimals, sign before the amount, read back by the stations."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.stations.income import MAX_FEN, parse_yuan
from protocol.money import yuan


@pytest.mark.parametrize("fen, text", [(0, "0.00"), (5, "0.05"), (50, "0.50"), (100, "1.00"), (123456, "1234.56"),
                                       (-5, "-0.05"), (-150, "-1.50"), (-123456, "-1234.56"),
                                       (10 ** 15, "10000000000000.00")])
def test_yuan_has_two_decimals_and_the_sign_before_the_amount(fen, text):
    assert yuan(fen) == text


@given(st.integers(0, MAX_FEN - 1))  # 13 yuan digits: the stations' input limit
def test_the_stations_read_back_what_yuan_prints(fen):
    assert parse_yuan(yuan(fen)) == fen


@given(st.integers(1, MAX_FEN))
def test_a_negative_amount_is_the_positive_one_with_a_minus(fen):
    assert yuan(-fen) == "-" + yuan(fen)
