"""Engine, sessions and migrations.

Where the data lives: the URL given, else the environment variable FISCAL_DB_URL, else the SQLite file
./fiscal-gateway.db.  A bare path (no "://") is taken as a SQLite file.

SQLite, for durability and for several station processes on one file:
  journal_mode=WAL          readers never block the writer, and a commit is one WAL append;
  synchronous=FULL          the WAL is fsynced at every commit: an acknowledged filing survives power loss;
  foreign_keys=ON, busy_timeout 30 s;
  every transaction starts with BEGIN IMMEDIATE, taking the write lock at once: two stations never both
  read "not yet cleared" and then race to write (SQLite's deferred BEGIN would let them, and one would
  fail late with "database is locked").
PostgreSQL (psycopg 3): READ COMMITTED; the stations lock the taxpayer's row (SELECT ... FOR UPDATE)
before deciding anything, and unique constraints are the last word (gateway.stations.common).

PostgreSQL roles: FISCAL_DB_URL is the stations' role (SELECT and INSERT only on the event log), and
FISCAL_DB_OWNER_URL, if set, the owner role that runs the migrations (gateway.db.roles sets both up).

Migrations run on first use under a lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so
two processes opening a new database at once migrate it once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..bureau_errors import DatabaseUnavailable

DEFAULT_URL = "sqlite:///fiscal-gateway.db"
ENV_URL = "FISCAL_DB_URL"
ENV_OWNER_URL = "FISCAL_DB_OWNER_URL"  # PostgreSQL: the owner role's URL, for migrations (gateway.db.roles)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_MAGIC = b"SQLite format 3\x00"


def database_url(url: str | os.PathLike | None = None) -> str:
    """The URL to use: `url`, else $FISCAL_DB_URL, else DEFAULT_URL; a plain path means a SQLite file;
    postgresql:// and postgres:// mean psycopg 3."""
    text = str(url) if url is not None else os.environ.get(ENV_URL) or DEFAULT_URL
    if "://" not in text:
        return "sqlite:///" + str(Path(text).resolve())
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix):]
    return text


def make_engine(url: str, **kw) -> Engine:
    url = database_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        db = make_url(url).database
        if db and db != ":memory:":
            check_sqlite_file(Path(db))
        engine = create_engine(url, connect_args={"timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
                cur.execute("PRAGMA " + pragma)
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return engine
    return create_engine(url, pool_pre_ping=True, **kw)


class Store:
    """An engine and its session factory.  `transaction()` is the only way stations write."""

    def __init__(self, engine: Engine) -> None:
        from .eventlog import install
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        install(self.sessions)  # events are chained and appended at commit

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default the newest), creating it on an empty database."""
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1887240)")  # one migrator at a time
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def open_store(url: str | os.PathLike | None = None, *, migrate_schema: bool = True,
               owner_url: str | None = None, **engine_kw) -> Store:
    """Open (creating and migrating on first use) the database at `url` (see database_url).  Migrations run
    through `owner_url`, else $FISCAL_DB_OWNER_URL, else `url` itself: on PostgreSQL the stations' role
    cannot change the schema, the owner role can (gateway.db.roles)."""
    store = Store(make_engine(database_url(url), **engine_kw))
    try:
        if migrate_schema:
            _migrate(store, url, owner_url or os.environ.get(ENV_OWNER_URL))
    except SQLAlchemyError as e:
        store.close()
        raise DatabaseUnavailable(describe_failure(database_url(url), e)) from None
    return store


def _migrate(store: "Store", url, owner: str | None) -> None:
    if owner and database_url(owner) != database_url(url):
        owner_engine = make_engine(database_url(owner))
        try:
            migrate(owner_engine)
        finally:
            owner_engine.dispose()
    else:
        store.migrate()


def check_sqlite_file(db: Path) -> None:
    """Refuse, in one sentence, a SQLite path that cannot be the bureau's database: a folder, a file that
    is not a SQLite database, a folder that cannot be made.  A new file's folder is made if missing."""
    if db.is_dir():
        raise DatabaseUnavailable("%s is a folder, not a database file: give a file path, for example %s"
                                  % (db, db / "fiscal-gateway.db"))
    if db.is_file():
        try:
            with open(db, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as e:
            raise DatabaseUnavailable("cannot read the database %s (%s): check its permissions"
                                      % (db, e.strerror or e)) from None
        if head and head != SQLITE_MAGIC:
            raise DatabaseUnavailable("%s is not a SQLite database (it holds something else): give the "
                                      "bureau's database file, or a new path to start one" % db)
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatabaseUnavailable("cannot create the folder %s for the database (%s): choose a writable path"
                                  % (db.parent, e.strerror or e)) from None


def describe_failure(url: str, e: SQLAlchemyError) -> str:
    """One sentence for a database that would not open or take a write, without its password."""
    reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return ("cannot open or write the SQLite database %s (%s): check that its folder is writable and "
                "the disk is not full" % (u.database, reason))
    return ("cannot use the database %s (%s): check that the server is running and that the URL "
            "(--db or $%s) is right" % (u.render_as_string(hide_password=True), reason, ENV_URL))
