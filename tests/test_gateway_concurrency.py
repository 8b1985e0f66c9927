"""Many windows at once: real concurrent processes filing the same declaration or selling the same roll,
each with its own copy of the user card, get exactly one clear-unlock and one sale; the others are refused
with a reason, and the event log agrees with the tables and its chain verifies: one line, no gaps, no forks."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.db.eventlog import verify
from gateway.db.models import ClearUnlock, Event, Roll
from gateway.keystore import KeyStore
from gateway.stations.income import DeclaredIncome
from hw_sim.cards import store as card_store
from pg import Hall, pg_server, pg_url  # noqa: F401  (fixtures)

PROCS = 6


def _window(url: str, card_path: str, what: str, arg: int, today: int, barrier, results, name: str) -> None:
    """One station process: open the database, wait for the others, then act."""
    from gateway import stations
    from gateway.db import open_store
    from gateway.keystore import KeyStore
    from gateway.readers import SimReader
    from hw_sim.cards import CardSlot, load_card
    from testbed import demo_cards
    st = stations.Station(open_store(url, migrate_schema=False), KeyStore.for_tests(), name=name, clock=lambda: today)
    reader = SimReader(CardSlot(load_card(card_path), path=card_path))
    barrier.wait()
    try:
        if what == "file":
            stations.file(st, reader, demo_cards.TAXPAYER.taxpayer_no, DeclaredIncome(arg))
        else:
            stations.sell_roll(st, reader, demo_cards.TAXPAYER.taxpayer_no, demo_cards.MACHINE_NO, code="1440012345", start=arg, end=arg + 99)
        results.put((name, "ok"))
    except stations.Refused as e:
        results.put((name, e.reason))
    except Exception as e:  # noqa: BLE001 - reported to the test
        results.put((name, "error: %r" % e))
    finally:
        st.store.close()


def race(store, url: str, cards: list[Path], what: str, arg: int, today: int) -> list[str]:
    """Run one station process per card copy; their outcomes.  Forked (fast): the parent's pool is emptied
    first, so no process shares a database connection."""
    store.engine.dispose()
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(len(cards)), ctx.Queue()
    procs = [ctx.Process(target=_window, args=(url, str(c), what, arg, today, barrier, results, "window-%d" % i))
             for i, c in enumerate(cards)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return sorted(results.get(timeout=5)[1] for _ in procs)


def chain_verifies(store) -> None:
    """The log the racing processes appended to: seq 1..n without gaps, each row chained to the one before."""
    with store.transaction() as s:
        rep = verify(s, KeyStore.for_tests())
        seqs = [e.seq for e in s.execute(select(Event).order_by(Event.seq)).scalars()]
    assert rep.ok and rep.authenticated_through == rep.rows, rep.problems
    assert seqs == list(range(1, len(seqs) + 1))


def copies(hall: Hall, folder: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        path = folder / ("user-%d.json" % i)
        card_store.save_card(hall.rig.cards.user, path)
        out.append(path)
    return out


def concurrent(url_fixture):
    return pytest.fixture(params=["sqlite", "postgresql"])(url_fixture)


@concurrent
def db(request, tmp_path):
    from gateway.db import open_store
    url = "sqlite:///%s" % (tmp_path / "bureau.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = open_store(url)
    yield url, s
    s.close()


def test_concurrent_windows_clear_unlock_a_period_once(db, tmp_path):
    url, store = db
    hall = Hall(store).ready_to_file()
    outcomes = race(store, url, copies(hall, tmp_path, PROCS), "file", hall.income, 20260220)
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) <= {"ok", "replayed", "in-progress", "conflict"}, outcomes
    with store.transaction() as s:
        assert s.execute(select(func.count()).select_from(ClearUnlock)).scalar() == 1
        kinds = [e.kind for e in s.execute(select(Event)).scalars()]
    assert kinds.count("clear-unlock.issued") == 1 and kinds.count("clear-unlock.written") == 1
    chain_verifies(store)


def test_concurrent_windows_sell_a_roll_once(db, tmp_path):
    url, store = db
    hall = Hall(store, roll_quota=10).register().initialize()
    outcomes = race(store, url, copies(hall, tmp_path, PROCS), "sell", 1, 20260110)
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) <= {"ok", "conflict", "in-progress"}, outcomes
    with store.transaction() as s:
        assert s.execute(select(func.count()).select_from(Roll)).scalar() == 1
        kinds = [e.kind for e in s.execute(select(Event)).scalars()]
    assert kinds.count("roll.sold") == 1
    chain_verifies(store)


def _appender(url: str, n: int, barrier, results, name: str) -> None:
    """One station process appending `n` events, one transaction each, every other one under the taxpayer's lock."""
    from gateway.db import open_store
    from gateway.stations.common import Station, lock_taxpayer, log
    from testbed import demo_cards
    st = Station(open_store(url, migrate_schema=False), KeyStore.for_tests(), name=name)
    barrier.wait()
    try:
        for i in range(n):
            with st.store.transaction() as s:
                tp = lock_taxpayer(s, demo_cards.TAXPAYER.taxpayer_no) if i % 2 else None
                log(s, st, "test.append", tp, i=i)
        results.put((name, "ok"))
    except Exception as e:  # noqa: BLE001 - reported to the test
        results.put((name, "error: %r" % e))
    finally:
        st.store.close()


def test_concurrent_stations_append_one_unbroken_chain(db):
    url, store = db
    Hall(store).register()
    store.engine.dispose()
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(PROCS), ctx.Queue()
    procs = [ctx.Process(target=_appender, args=(url, 20, barrier, results, "window-%d" % i)) for i in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sorted(results.get(timeout=5)[1] for _ in procs) == ["ok"] * PROCS
    chain_verifies(store)
    with store.transaction() as s:
        assert s.execute(select(func.count()).select_from(Event)).scalar() == 3 + PROCS * 20
