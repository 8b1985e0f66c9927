"""The bureau's event log is tamper-evident: every row hash-chained over the one before and MACed under the
bureau's key, the other tables anchoring it, so a change, deletion, insertion or truncation is found and named
by its sequence number, on SQLite and PostgreSQL; on PostgreSQL the stations' role cannot even try."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from gateway import stations
from gateway.cli import EXIT_TAMPERED, main
from gateway.db import eventlog, open_store
from gateway.db.engine import make_engine, migrate
from gateway.db.models import Event
from gateway.keystore import KeyStore
from gateway.stations.common import log
from gateway.stations.income import DeclaredIncome
from pg import Hall, hall, pg_server, pg_url, store  # noqa: F401  (fixtures)
from protocol.crypto import MasterKey

KEYS = KeyStore.for_tests()


def registered(store, extra: int = 3) -> Hall:
    """Registration (taxpayer, machine, cards: events 1-3, each anchored by its row) and `extra` more events."""
    h = Hall(store).register()
    for i in range(extra):
        with store.transaction() as s:
            log(s, h.st, "test.note", None, n=i)
    return h


def check(store) -> eventlog.LogReport:
    with store.transaction() as s:
        return eventlog.verify(s, KEYS)


def tamper(store, *sql: str, **params) -> None:
    """An attacker with the owner's rights: the append-only triggers off, then `sql`."""
    with store.engine.begin() as c:
        if store.dialect == "postgresql":
            c.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER USER")
        else:
            c.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_update")
            c.exec_driver_sql("DROP TRIGGER IF EXISTS events_no_delete")
        for q in sql:
            c.execute(text(q), params)


def row(store, seq: int) -> dict:
    with store.transaction() as s:
        e = s.execute(select(Event).where(Event.seq == seq)).scalar_one()
        return {c.key: getattr(e, c.key) for c in Event.__table__.columns}


def rehash(store, seq: int, **changes) -> None:
    """Rewrite event `seq` with `changes` and recompute its hash and every later one (no key: MACs kept)."""
    with store.transaction() as s:
        rows = s.execute(select(Event).where(Event.seq >= seq - 1).order_by(Event.seq)).scalars().all()
        out, prev = [], rows[0].hash if rows[0].seq < seq else eventlog.GENESIS
        for e in rows:
            if e.seq < seq:
                continue
            fields = {"at": e.at, "station": e.station, "taxpayer_id": e.taxpayer_id, "kind": e.kind, "data": e.data}
            if e.seq == seq:
                fields.update(changes)
            h = eventlog.row_hash(e.seq, fields["at"], fields["station"], fields["taxpayer_id"], fields["kind"],
                                  fields["data"], prev)
            out.append(dict(seq=e.seq, prev=prev, h=h, kind=fields["kind"], data=json.dumps(fields["data"])))
            prev = h
    for o in out:
        tamper(store, "UPDATE events SET prev_hash = :prev, hash = :h, kind = :kind, data = :data WHERE seq = :seq", **o)


# ---- a clean log ---------------------------------------------------------------------------------------------------
def test_a_clean_log_verifies_and_every_row_is_authenticated(store):
    """R-ONE-HOUSEHOLD: every bureau action is an authenticated event in the taxpayer's chained log."""
    registered(store)
    rep = check(store)
    assert rep.ok, rep.problems
    assert rep.rows == rep.head_seq == rep.authenticated_through == 6
    with store.transaction() as s:
        rows = s.execute(select(Event).order_by(Event.seq)).scalars().all()
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == eventlog.GENESIS and all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert all(e.key_id == KEYS.master().key_id and e.mac for e in rows)


def test_the_hashed_bytes_are_canonical_json_of_the_fields_and_the_previous_hash(store):
    registered(store, extra=0)
    r = row(store, 2)
    raw = eventlog.body(2, r["at"], r["station"], r["taxpayer_id"], r["kind"], r["data"], r["prev_hash"])
    assert json.loads(raw)["prev"] == row(store, 1)["hash"] and b" " not in raw.split(b'"data"')[0]
    import hashlib
    assert hashlib.sha256(raw).hexdigest() == r["hash"]


def test_rows_anchor_the_event_of_their_transaction(store):
    registered(store)
    with store.engine.connect() as c:
        anchors = [c.exec_driver_sql("SELECT event_seq FROM %s" % t).scalar() for t in ("taxpayers", "machines")]
        cards = sorted(x for (x,) in c.exec_driver_sql("SELECT event_seq FROM cards"))
    assert anchors == [1, 2] and cards == [3, 3]


# ---- tampering, each found at its sequence number ------------------------------------------------------------------
def test_a_changed_field_is_found_at_its_sequence_number(store):
    """R-ONE-HOUSEHOLD: the log is append-only; a changed event is found."""
    registered(store)
    tamper(store, "UPDATE events SET station = 'nobody' WHERE seq = 4")
    rep = check(store)
    assert rep.first_bad_seq == 4 and rep.problems[0]["kind"] == eventlog.CHANGED, rep.problems


def test_a_change_with_every_hash_recomputed_is_found_by_the_mac(store):
    registered(store)
    rehash(store, 2, data={"machine_no": "6666666666666666"})
    rep = check(store)
    assert rep.first_bad_seq == 2 and {p["kind"] for p in rep.problems} == {eventlog.FORGED}, rep.problems
    assert rep.authenticated_through == 1


def test_a_deleted_middle_row_is_found_at_its_sequence_number(store):
    """R-ONE-HOUSEHOLD: a deleted event is found."""
    registered(store)
    tamper(store, "DELETE FROM events WHERE seq = 3")
    rep = check(store)
    assert rep.first_bad_seq == 3 and rep.problems[0]["kind"] == eventlog.MISSING, rep.problems
    assert eventlog.LINK in {p["kind"] for p in rep.problems}


def test_a_forged_row_inserted_in_the_middle_is_found_at_its_sequence_number(store):
    registered(store)
    prev = row(store, 2)["hash"]
    forger = eventlog.event_key(MasterKey(0x7E, bytes(16)))  # not the bureau's key
    at = row(store, 2)["at"]
    h = eventlog.row_hash(3, at, "window-1", None, "roll.sold", {"roll_id": 99}, prev)
    tamper(store, "UPDATE events SET seq = seq + 1000 WHERE seq >= 3", "UPDATE events SET seq = seq - 999 WHERE seq >= 1000",
           "INSERT INTO events (at, station, taxpayer_id, kind, data, seq, prev_hash, hash, key_id, mac) "
           "VALUES (:at, 'window-1', NULL, 'roll.sold', '{\"roll_id\": 99}', 3, :prev, :h, :k, :mac)",
           at=at, prev=prev, h=h, k=KEYS.master().key_id, mac=eventlog.row_mac(forger, h))
    rep = check(store)
    assert rep.first_bad_seq == 3 and rep.problems[0]["kind"] == eventlog.FORGED, rep.problems
    assert rep.rows == 7 and any(p["seq"] == 4 and p["kind"] == eventlog.CHANGED for p in rep.problems)


def test_a_row_appended_around_the_stations_without_a_mac_is_found(store):
    registered(store)
    head = row(store, 6)
    h = eventlog.row_hash(7, head["at"], "x", None, "k", {}, head["hash"])
    with store.engine.begin() as c:  # an INSERT is allowed; it is the MAC that cannot be made
        c.execute(text("INSERT INTO events (at, station, kind, data, seq, prev_hash, hash) "
                       "VALUES (:at, 'x', 'k', '{}', 7, :p, :h)"), dict(at=head["at"], p=head["hash"], h=h))
    rep = check(store)
    assert rep.first_bad_seq == 7 and rep.problems[0]["kind"] == eventlog.UNAUTHENTICATED, rep.problems


def test_a_truncated_tail_is_found_through_the_anchors(store):
    registered(store, extra=0)
    tamper(store, "DELETE FROM events WHERE seq >= 2")
    rep = check(store)
    assert rep.rows == 1 and rep.first_bad_seq == 2, rep.problems
    assert rep.problems[0]["kind"] == eventlog.TRUNCATED and "cards rows record event 3" in str(rep.problems)


def test_sqlite_drop_trigger_and_delete_everything_is_found(tmp_path):
    store = open_store(tmp_path / "bureau.db")
    registered(store)
    with store.engine.begin() as c:  # the flaw on main: the application's own account can do this
        c.exec_driver_sql("DROP TRIGGER events_no_delete")
        c.exec_driver_sql("DELETE FROM events")
    rep = check(store)
    assert rep.rows == 0 and rep.first_bad_seq == 1 and rep.problems[0]["kind"] == eventlog.TRUNCATED, rep.problems
    store.close()


def test_postgresql_truncate_by_the_owner_is_found(pg_url):
    store = open_store(pg_url)
    registered(store)
    with store.engine.begin() as c:  # TRUNCATE fires no row trigger: the flaw on main
        c.exec_driver_sql("TRUNCATE events")
    rep = check(store)
    assert rep.rows == 0 and rep.first_bad_seq == 1 and rep.problems[0]["kind"] == eventlog.TRUNCATED, rep.problems
    store.close()


def test_the_audit_reports_a_tampered_event_log(hall):
    hall.ready_to_file()
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income))
    hall.rig.ok("CLEAR_UNLOCK")
    tamper(hall.store, "UPDATE events SET data = '{}' WHERE seq = 5")
    r = stations.audit_till(hall.st, hall.client, hall.machine_no)
    events = [p for p in r.findings.problems if p["kind"] == "events"]
    assert events and events[0]["where"] == "event 5" and "changed" in events[0]["detail"]
    assert r.findings.summary["event_log"]["first_bad_seq"] == 5


def test_a_clean_audit_carries_the_verified_head_of_the_log(hall):
    hall.register().initialize()
    r = stations.audit_till(hall.st, hall.client, hall.machine_no)
    log_summary = r.findings.summary["event_log"]
    assert log_summary["ok"] and log_summary["head_seq"] == 4 and log_summary["authenticated_through"] == 4


# ---- migration 0002 ------------------------------------------------------------------------------------------------
def _old_database(url: str) -> None:
    """A database at revision 0001 holding two events, as main left them."""
    engine = make_engine(url)
    migrate(engine, "0001")
    with engine.begin() as c:
        for i in range(2):
            c.execute(text("INSERT INTO events (at, station, kind, data) VALUES (:at, 'w', 'old', :d)"),
                      dict(at="2026-01-0%d 10:00:00" % (i + 1), d=json.dumps({"i": i, "x": [1, "二"]})))
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_existing_database_upgrades_and_its_events_are_chained(backend, tmp_path, request):
    url = ("sqlite:///%s" % (tmp_path / "old.db") if backend == "sqlite"
           else request.getfixturevalue("pg_server").create_database())
    _old_database(url)
    store = open_store(url)
    rep = check(store)
    assert rep.ok and rep.rows == 2 and rep.authenticated_through == 0 and rep.unvouched == 2, rep.problems
    with store.transaction() as s:
        assert [(e.seq, e.key_id, e.mac) for e in s.execute(select(Event).order_by(Event.seq)).scalars()] == [
            (1, 0, None), (2, 0, None)]
    registered(store, extra=0)  # the first authenticated row vouches for the chained ones
    rep = check(store)
    assert rep.ok and rep.rows == rep.authenticated_through == 5 and rep.unvouched == 0, rep.problems
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):  # still append-only after the rebuild
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as c:
                c.execute(text(sql))
    store.close()


# ---- PostgreSQL: the stations' role ----------------------------------------------------------------------------------
@pytest.fixture
def station_url(pg_url):
    """pg_url set up by gateway.db.roles for a role of its own; the stations' URL."""
    from gateway.db.roles import grant_station_role
    role = "station_" + pg_url.rsplit("/", 1)[1]
    doc = grant_station_role(pg_url, role)
    assert doc["owner"] == "postgres" and doc["role"] == role
    return pg_url.replace("postgres@", role + "@", 1)


@pytest.mark.parametrize("sql", [
    "TRUNCATE events", "DROP TABLE events", "ALTER TABLE events ADD COLUMN x integer",
    "ALTER TABLE events DISABLE TRIGGER USER", "DROP TRIGGER events_append_only ON events",
    "UPDATE events SET kind = 'changed'", "DELETE FROM events",
])
def test_the_station_role_is_refused_every_change_to_the_event_log_but_insert(station_url, sql):
    store = open_store(station_url)
    registered(store, extra=0)
    with pytest.raises(DBAPIError, match="permission denied|must be owner"):
        with store.engine.begin() as c:
            c.exec_driver_sql(sql)
    rep = check(store)
    assert rep.ok and rep.rows == 3, rep.problems
    store.close()


def test_the_stations_do_all_their_work_as_the_station_role(station_url):
    store = open_store(station_url)
    h = Hall(store).ready_to_file()
    o = stations.file(h.st, h.reader(), h.taxpayer_no, DeclaredIncome(h.income))
    assert o.accepted
    rep = check(store)
    assert rep.ok and rep.rows > 8, rep.problems
    store.close()


def test_a_station_role_url_migrates_through_the_owner_url(pg_server):
    from gateway.db.roles import grant_station_role
    url = pg_server.create_database()
    _old_database(url)
    engine = make_engine(url)
    with engine.begin() as c:  # a role that can read 0001 but owns nothing
        role = "station_" + url.rsplit("/", 1)[1]
        c.exec_driver_sql('CREATE ROLE "%s" LOGIN' % role)
        c.exec_driver_sql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % role)
    engine.dispose()
    station = url.replace("postgres@", role + "@", 1)
    store = open_store(station, owner_url=url)  # migrated to head by the owner
    grant_station_role(url, role)
    rep = check(store)
    assert rep.ok and rep.rows == 2, rep.problems
    store.close()


# ---- the command line ---------------------------------------------------------------------------------------------
def cli(capsys, *args):
    code = main(["verify-events", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db_file(tmp_path):
    path = tmp_path / "bureau.db"
    s = open_store(path)
    registered(s)
    s.close()
    return str(path)


def test_verify_events_says_verified_and_exits_0(capsys, db_file):
    code, out, err = cli(capsys, "--db", db_file, "--test-keys")
    assert code == 0 and "VERIFIED" in out and "authenticated through" in out and not err
    code, out, _ = cli(capsys, "--db", db_file, "--test-keys", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["head_seq"] == 6 and doc["first_bad_seq"] is None and doc["test_keys"]


def test_verify_events_names_the_first_bad_sequence_number_and_exits_4(capsys, db_file):
    s = open_store(db_file)
    tamper(s, "DELETE FROM events WHERE seq = 5")
    s.close()
    code, out, _ = cli(capsys, "--db", db_file, "--test-keys")
    assert code == EXIT_TAMPERED == 4 and "TAMPERED at event 5" in out and "missing" in out
    code, out, _ = cli(capsys, "--db", db_file, "--test-keys", "--json")
    doc = json.loads(out)
    assert code == 4 and not doc["ok"] and doc["first_bad_seq"] == 5 and doc["problems"][0]["kind"] == "missing"


def test_verify_events_finds_the_emptied_sqlite_log(capsys, db_file):
    s = open_store(db_file)
    with s.engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER events_no_delete")
        c.exec_driver_sql("DELETE FROM events")
    s.close()
    code, out, _ = cli(capsys, "--db", db_file, "--test-keys", "--json")
    assert code == 4 and json.loads(out)["problems"][0]["kind"] == "truncated"


def test_verify_events_under_another_bureaus_keys_finds_every_mac_forged(capsys, db_file, tmp_path, monkeypatch):
    other = KeyStore.for_tests()
    other._keys = {k: MasterKey(k, bytes(16)) for k in other._keys}  # same generations, other key bytes
    monkeypatch.setattr(KeyStore, "for_tests", classmethod(lambda cls: other))
    code, out, _ = cli(capsys, "--db", db_file, "--test-keys", "--json")
    doc = json.loads(out)
    assert code == 4 and doc["first_bad_seq"] == 1 and doc["problems"][0]["kind"] == "forged"


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "no database file"),
    (lambda p: p.write_bytes(b""), "is not a bureau database"),
])
def test_verify_events_explains_an_unusable_database_in_one_line_even_with_json(capsys, tmp_path, setup, message):
    path = tmp_path / "x.db"
    setup(path)
    code, out, err = cli(capsys, "--db", str(path), "--test-keys")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, err = cli(capsys, "--db", str(path), "--test-keys", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and message in doc["message"]
    assert not path.exists() or path.stat().st_size == 0  # verifying never creates a database


def test_verify_events_explains_a_database_that_is_down(capsys):
    code, out, err = cli(capsys, "--db", "postgresql://u@127.0.0.1:1/fiscal", "--test-keys", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["error"] == "unreadable" and "cannot read the database" in doc["message"]


def test_verify_events_needs_the_keys(capsys, db_file):
    code, out, _ = cli(capsys, "--db", db_file, "--json")
    assert code == 1 and json.loads(out)["refused"] == "bad-input"


def test_setup_roles_refuses_sqlite_with_a_message(capsys, db_file):
    code = main(["setup-roles", "--db", db_file, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and "PostgreSQL" in doc["message"]


def test_setup_roles_grants_the_station_role_from_the_command_line(capsys, pg_url):
    role = "cli_" + pg_url.rsplit("/", 1)[1]
    code = main(["setup-roles", "--db", pg_url, "--role", role, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["role"] == role and doc["events"] == "SELECT, INSERT"
    assert doc["station_url"].startswith("postgresql://%s@" % role)
