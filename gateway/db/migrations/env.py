"""Alembic environment.  Used two ways:
  - gateway.db.engine.migrate(): the caller passes an open connection in config.attributes["connection"];
  - the alembic command: `FISCAL_DB_URL=... alembic -c gateway/db/alembic.ini upgrade head`.
"""

from alembic import context

from gateway.db.engine import database_url, make_engine
from gateway.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url(config.get_main_option("sqlalchemy.url") or None))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: give a database URL")
run()
