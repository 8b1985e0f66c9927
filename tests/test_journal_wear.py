"""Wear: years of a busy till (300 invoices a day) keep every sector far from its endurance and spread
ring erases evenly; the fiscal area is erased once, at format."""

import pytest

from fiscal_till.journal import Journal
from hw_sim.nor_flash import NorFlash

INIT, DAILY, DECL, CLEAR, ROLL_LOAD, ROLL_USAGE, INVOICE, EVENT = 1, 2, 3, 4, 5, 6, 7, 8
DEVICE = b"\x32\x01\x00\x00\x12\x34\x56\x78"


def operate(days, sectors, per_day=300):
    """A till's life: daily close every day, a declaration and clear-unlock every 30 days, a roll of
    1000 invoices loaded when the previous one is used up, one event a day."""
    f = NorFlash(sector_count=sectors, sector_size=4096, endurance=100000)
    Journal.format(f, DEVICE, format_id=b"\x00\x00\x00\x01")
    j = Journal(f, DEVICE)
    j.append(INIT, b"\x01" * 353)
    j.append(ROLL_LOAD, b"\x05" * 33)
    inv = bytes(range(76))
    issued = 0
    for day in range(days):
        j.append(EVENT, b"\x08" * 21)
        for k in range(per_day):
            j.append(INVOICE, inv)
            issued += 1
            if issued % 1000 == 0:
                j.append(ROLL_USAGE, b"\x06" * 38)
                j.append(ROLL_LOAD, b"\x05" * 33)
        j.append(DAILY, b"\x02" * 150)
        if day % 30 == 29:
            j.append(DECL, b"\x03" * 165)
            j.append(CLEAR, b"\x04" * 39)
    return f, j


def wear_report(f, j):
    ring = f.erase_counts[j.F:]
    fiscal = f.erase_counts[:j.F]
    return max(f.erase_counts), min(f.erase_counts), max(ring), min(ring), max(fiscal)


def check_life(days, sectors):
    f, j = operate(days, sectors)
    hi, lo, ring_hi, ring_lo, fiscal_hi = wear_report(f, j)
    print("%d days on %d KiB: erase counts max %d min %d (ring %d..%d, fiscal max %d)"
          % (days, sectors * 4, hi, lo, ring_hi, ring_lo, fiscal_hi))
    assert hi < f.endurance // 100  # two orders of magnitude of margin
    assert ring_hi - ring_lo <= 1  # the ring wears evenly
    assert fiscal_hi == 1  # the fiscal area is never erased after format
    recorded = j.erase_counts()  # what the sector headers say
    assert all(r is None or abs(r - c) <= 1 for r, c in zip(recorded, f.erase_counts))
    again = Journal(f, DEVICE)
    assert again.damage == [] and again.chain_head() == j.chain_head()
    assert again.counters()[DAILY] == days
    return hi, lo


def test_a_year_at_300_invoices_a_day_on_2_mib():
    check_life(366, 512)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("sectors", [512, 1024], ids=["2MiB", "4MiB"])
def test_five_years_at_300_invoices_a_day(sectors):
    check_life(5 * 366, sectors)
