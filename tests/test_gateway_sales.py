"""验旧售新: the order of operations, the roll account, the quota, and no roll sold twice."""
from __future__ import annotations

import pytest

from gateway import stations
from gateway.issuance import issue_roll
from gateway.stations.common import Refused
from gateway.stations.income import DeclaredIncome
from pg import hall, pg_server, pg_url, store  # noqa: F401  (fixtures)


def refused(reason: str, fn, *a, **kw) -> Refused:
    with pytest.raises(Refused) as e:
        fn(*a, **kw)
    assert e.value.reason == reason, e.value
    return e.value


def test_no_invoices_for_a_till_not_yet_initialized(hall):
    hall.register()
    e = refused("order", hall.sell)
    assert "not initialized" in str(e)


def test_no_new_roll_until_the_period_is_filed_and_cleared(hall):
    """R-SALE-AFTER-CLEAR: 验旧售新, no roll before the period is filed and cleared."""
    hall.ready_to_file()
    e = refused("order", hall.sell, 101, 200)
    assert "not yet accepted" in str(e)
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income - 1))  # shortfall: still not cleared
    assert "not yet accepted" in str(refused("order", hall.sell, 101, 200))
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income))
    sold = hall.sell(101, 200)
    assert sold["sales_period"] == 20260131 and sold["slot"] == 1
    assert sold["checked"]["used"] == 10 and sold["checked"]["remaining"] == 90


def test_no_new_roll_once_the_invoice_deadline_has_passed(hall):
    hall.register().initialize()
    hall.sell()
    hall.rig.rtc.set(20260202, 90000)
    assert "deadline 2026-01-31" in str(refused("order", hall.sell, 101, 200))


def test_rolls_per_period_are_limited_by_the_quota(hall):
    """R-SALE-AFTER-CLEAR: rolls are sold within the taxpayer's quota (限额限量供应)."""
    hall.register().initialize()
    hall.sell(1, 100)
    hall.sell(101, 200)
    before = hall.counts()
    e = refused("quota", hall.sell, 201, 300)
    assert "2 of its 2" in str(e) and hall.counts() == before


def test_a_roll_is_never_sold_twice(hall):
    hall.register().initialize()
    hall.sell(1, 100)
    before = hall.counts()
    e = refused("conflict", hall.sell, 50, 150)
    assert "overlap roll #1 (1-100)" in str(e)
    assert hall.counts() == before
    assert len(hall.rig.bureau_session().reader.read_records(0xEF05)) == 1


def test_check_old_accounts_for_every_roll_and_flags_a_roll_not_sold_here(hall):
    """R-SALE-AFTER-CLEAR: checking the old (验旧) accounts for every roll."""
    hall.ready_to_file()
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income))
    acc = stations.check_old(hall.st, hall.reader(), hall.taxpayer_no, hall.machine_no)
    assert acc.ok and (acc.distributed, acc.used, acc.voided, acc.remaining) == (100, 10, 0, 90)
    assert acc.rolls[0]["where"] == "distributed" and acc.rolls[0]["consumed"] == 10
    # a roll on the card the bureau never sold (made with the keys, not through the station)
    stray = issue_roll(hall.st.keystore, fiscal_card_no=bytes.fromhex("3201000000000001"), machine_no=hall.machine_no,
                       code="1440099999", start=1, end=50)
    hall.rig.bureau_session().add_roll(stray)
    acc = stations.check_old(hall.st, hall.reader(), hall.taxpayer_no, hall.machine_no)
    assert not acc.ok and "1440099999 1-50 on the user card was not sold" in acc.problems[0]
    e = refused("order", hall.sell, 101, 200)
    assert "验旧 failed" in str(e) and e.problems


def test_a_sold_roll_whose_card_write_failed_is_finished_not_sold_again(hall):
    hall.register().initialize()
    reader = hall.reader()
    from gateway.bureau_errors import ReaderError

    def fail(*a):
        raise ReaderError("pulled out")
    reader.update_record = fail
    assert "present the card again" in str(refused("card", stations.sell_roll, hall.st, reader, hall.taxpayer_no,
                                                   hall.machine_no, code="1440012345", start=1, end=100))
    sold = hall.sell(101, 200)  # the next visit writes roll #1 first, then sells #2
    assert sold["roll_id"] == 2
    rolls = hall.rig.bureau_session().reader.read_records(0xEF05)
    assert len(rolls) == 2
