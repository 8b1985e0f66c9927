"""PostgreSQL roles: the owner migrates, the stations' role can only add to the event log.

    FISCAL_DB_OWNER_URL=postgresql://fiscal_owner@db/fiscal fiscal-gateway setup-roles --role fiscal_station
    FISCAL_DB_URL=postgresql://fiscal_station@db/fiscal      (what every station then uses)

`grant_station_role(owner_url, role)` migrates the database as its owner, creates `role` (LOGIN; password
from $FISCAL_STATION_PASSWORD if set) if it does not exist, and grants it exactly:
  events                      SELECT, INSERT (no UPDATE, DELETE, TRUNCATE; not the owner, so no DROP or ALTER);
  every other table           SELECT, INSERT, UPDATE (the stations move rows from "writing" to "written"...);
  alembic_version             SELECT (a station checks the schema is current, never migrates);
  the tables' id sequences    USAGE.
Tables added by a later migration get no grants until this runs again (it is idempotent: run it after every
upgrade).  PostgreSQL before 15 lets every role CREATE in the public schema; revoke that from PUBLIC there.
"""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.engine import make_url

from .engine import database_url, make_engine, migrate
from .models import Base

ENV_PASSWORD = "FISCAL_STATION_PASSWORD"
EVENTS = "events"


class RoleSetupError(Exception):
    """The roles cannot be set up (not PostgreSQL, a bad role name)."""


def _ident(name: str) -> str:
    if not name or not (name.replace("_", "a").isalnum() and name.isascii() and not name[0].isdigit()):
        raise RoleSetupError("a role name is letters, digits and _ (not first a digit), got %r" % name)
    return '"%s"' % name.lower()


def grant_station_role(owner_url: str, role: str, password: str | None = None) -> dict:
    """Migrate as the owner, then create and grant the stations' role (see the module docstring)."""
    url = database_url(owner_url)
    if make_url(url).get_backend_name() != "postgresql":
        raise RoleSetupError("roles are a PostgreSQL feature; a SQLite file has none (see docs/GATEWAY.md)")
    r = _ident(role)
    password = password if password is not None else os.environ.get(ENV_PASSWORD)
    engine = make_engine(url)
    try:
        migrate(engine)
        tables = [t.name for t in Base.metadata.sorted_tables if t.name != EVENTS]
        with engine.begin() as c:
            c.exec_driver_sql("SELECT pg_advisory_xact_lock(1887240)")
            exists = c.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role.lower()}).scalar()
            if not exists:
                c.exec_driver_sql("CREATE ROLE %s LOGIN" % r)
            if password:  # a utility statement takes no parameters: psycopg quotes the literal
                from psycopg import sql
                c.connection.dbapi_connection.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role.lower()), sql.Literal(password)))
            db = c.exec_driver_sql("SELECT current_database()").scalar()
            c.exec_driver_sql('GRANT CONNECT ON DATABASE "%s" TO %s' % (db.replace('"', '""'), r))
            c.exec_driver_sql("GRANT USAGE ON SCHEMA public TO %s" % r)
            c.exec_driver_sql("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %s" % r)
            c.exec_driver_sql("GRANT SELECT, INSERT ON %s TO %s" % (EVENTS, r))
            c.exec_driver_sql("GRANT SELECT, INSERT, UPDATE ON %s TO %s" % (", ".join(tables), r))
            c.exec_driver_sql("GRANT SELECT ON alembic_version TO %s" % r)
            c.exec_driver_sql("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %s" % r)
            owner = c.exec_driver_sql("SELECT tableowner FROM pg_tables WHERE tablename = 'events'").scalar()
    finally:
        engine.dispose()
    station_url = make_url(url).set(username=role.lower(), password=None)
    return {"role": role.lower(), "owner": owner, "database": db,
            "station_url": station_url.render_as_string(hide_password=True).replace("postgresql+psycopg://",
                                                                                    "postgresql://"),
            "events": "SELECT, INSERT", "other_tables": "SELECT, INSERT, UPDATE"}
