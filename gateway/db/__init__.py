"""The bureau's database: one record per taxpayer (一户式), kept together and never losing a filing.

    store = open_store()                       # FISCAL_DB_URL, else sqlite file ./fiscal-gateway.db
    store = open_store("postgresql+psycopg://bureau@127.0.0.1:5432/fiscal")
    with store.transaction() as s:             # one unit of work; commits durably or rolls back
        s.add(...)

`open_store` creates the database on first use and brings it to the newest Alembic migration.  Models are
in `gateway.db.models`; migrations in `gateway/db/migrations` (also runnable as
`alembic -c gateway/db/alembic.ini upgrade head` with FISCAL_DB_URL set).
"""

from .engine import DEFAULT_URL, Store, database_url, open_store

__all__ = ["DEFAULT_URL", "Store", "database_url", "open_store"]
