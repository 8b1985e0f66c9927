"""The tamper-evident event log: seq, prev_hash, hash, key_id, mac on events (gateway.db.eventlog), an
event_seq anchor on every other table a station writes, and the events already stored chained in id order
(key_id 0, no MAC: the next authenticated row vouches for them).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

from gateway.db.eventlog import GENESIS, LEGACY_KEY_ID, row_hash


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

ANCHORED_TABLES = ("taxpayers", "machines", "cards", "declarations", "comparisons", "surcharges", "clear_unlocks",
                   "rolls", "referrals", "audits")
CHAIN_COLUMNS = (("seq", sa.BigInteger()), ("prev_hash", sa.String(64)), ("hash", sa.String(64)),
                 ("key_id", sa.Integer()), ("mac", sa.String(64)))


def _triggers(on: bool) -> None:
    """The append-only triggers of 0001, off while this migration rewrites the log, on again after."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events %s TRIGGER events_append_only" % ("ENABLE" if on else "DISABLE"))
        return
    for what in ("UPDATE", "DELETE"):
        if on:
            op.execute("CREATE TRIGGER events_no_%s BEFORE %s ON events BEGIN "
                       "SELECT RAISE(ABORT, 'the event log is append-only'); END" % (what.lower(), what))
        else:
            op.execute("DROP TRIGGER IF EXISTS events_no_%s" % what.lower())


def upgrade() -> None:
    bind = op.get_bind()
    for name, kind in CHAIN_COLUMNS:
        op.add_column("events", sa.Column(name, kind, nullable=True))
    for table in ANCHORED_TABLES:
        op.add_column(table, sa.Column("event_seq", sa.BigInteger(), nullable=True))
    _triggers(False)
    events = sa.table("events", sa.column("id", sa.Integer), sa.column("at", sa.DateTime),
                      sa.column("station", sa.String), sa.column("taxpayer_id", sa.Integer),
                      sa.column("kind", sa.String), sa.column("data", sa.JSON), sa.column("seq", sa.BigInteger),
                      sa.column("prev_hash", sa.String), sa.column("hash", sa.String),
                      sa.column("key_id", sa.Integer))
    prev = GENESIS
    rows = bind.execute(sa.select(events.c.id, events.c.at, events.c.station, events.c.taxpayer_id,
                                  events.c.kind, events.c.data).order_by(events.c.id)).all()
    for seq, (id_, at, station, taxpayer_id, kind, data) in enumerate(rows, 1):
        h = row_hash(seq, at, station, taxpayer_id, kind, data, prev)
        bind.execute(events.update().where(events.c.id == id_).values(seq=seq, prev_hash=prev, hash=h,
                                                                       key_id=LEGACY_KEY_ID))
        prev = h
    with op.batch_alter_table("events") as b:  # SQLite: the table is rebuilt, its triggers with it
        for name in ("seq", "prev_hash", "hash"):
            b.alter_column(name, existing_type=dict(CHAIN_COLUMNS)[name], nullable=False)
        b.create_unique_constraint("uq_events_seq", ["seq"])
    _triggers(True)


def downgrade() -> None:
    _triggers(False)
    with op.batch_alter_table("events") as b:
        b.drop_constraint("uq_events_seq", type_="unique")
        for name, _kind in reversed(CHAIN_COLUMNS):
            b.drop_column(name)
    for table in ANCHORED_TABLES:
        with op.batch_alter_table(table) as b:
            b.drop_column("event_seq")
    _triggers(True)
