"""Amounts: the wire carries fen (1 yuan = 100 fen) as integers; people read yuan with two decimals.

    yuan(123456) == "1234.56"      yuan(-5) == "-0.05"      yuan(0) == "0.00"

No grouping and no currency sign: the same text the bureau's stations accept back as typed input
(gateway.stations.income.parse_yuan), so an amount shown can be pasted into a prompt.
"""

from __future__ import annotations

FEN_PER_YUAN = 100


def yuan(fen: int) -> str:
    """Fen as yuan text with exactly two decimals; the sign stands before the whole amount."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return "%s%d.%02d" % (sign, whole, cents)
