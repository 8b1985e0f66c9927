"""The bureau database: created and migrated on first use, durable settings, the schema's own rules."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.db import database_url, open_store
from gateway.db.engine import ENV_URL
from gateway.db.models import Event, KeyRef, Taxpayer
from pg import pg_server, pg_url, store  # noqa: F401  (fixtures)

TABLES = {"taxpayers", "tax_items", "machines", "key_refs", "cards", "declarations", "comparisons", "surcharges",
          "clear_unlocks", "roll_codes", "rolls", "referrals", "audits", "events", "alembic_version"}


def test_a_new_sqlite_file_is_created_and_migrated_on_first_use(tmp_path):
    path = tmp_path / "sub" / "bureau.db"
    s = open_store(path)
    assert set(inspect(s.engine).get_table_names()) == TABLES
    with s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
    s.close()
    open_store(path).close()  # a second opening finds it migrated


def test_the_url_comes_from_the_argument_the_environment_or_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    assert database_url() == "sqlite:///fiscal-gateway.db"
    monkeypatch.setenv(ENV_URL, "postgresql://u@h/db")
    assert database_url() == "postgresql+psycopg://u@h/db"
    assert database_url("x.db") == "sqlite:///" + str(tmp_path / "x.db")


def test_the_event_log_is_append_only(store):
    with store.transaction() as s:
        s.add(Event(station="t", kind="test", data={"n": 1}))
    for sql in ("UPDATE events SET kind = 'changed'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as c:
                c.execute(text(sql))
    with store.transaction() as s:
        assert [e.kind for e in s.query(Event)] == ["test"]


def test_unique_constraints_hold_whatever_the_code_does(store):
    with store.transaction() as s:
        s.add(KeyRef(key_id=0x81, test=True))
    with pytest.raises(IntegrityError):
        with store.transaction() as s:
            s.add(KeyRef(key_id=0x81, test=True))
    with pytest.raises(IntegrityError):
        with store.transaction() as s:
            for _ in range(2):
                s.add(Taxpayer(taxpayer_no="X1", taxpayer_id="1", name="n", bureau_code="1", filing_mode=1,
                               roll_quota=1))


def test_the_alembic_command_line_migrates_too(tmp_path):
    env_url = "sqlite:///%s" % (tmp_path / "cli.db")
    r = subprocess.run([sys.executable, "-m", "alembic", "-c", "gateway/db/alembic.ini", "upgrade", "head"],
                       capture_output=True, text=True, env={"FISCAL_DB_URL": env_url, "PATH": ""}, cwd=_root())
    assert r.returncode == 0, r.stderr
    s = open_store(env_url, migrate_schema=False)
    assert set(inspect(s.engine).get_table_names()) == TABLES
    s.close()


def _root():
    from pathlib import Path
    return Path(__file__).resolve().parent.parent
