"""Initial schema: taxpayers, tax items, machines, key references, cards, declarations, comparisons,
surcharges, clear-unlocks, roll codes, rolls, referrals, audits and the append-only event log.

Revision ID: 0001
Revises: -
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('key_refs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('test', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_id')
    )
    op.create_table('roll_codes',
    sa.Column('code', sa.String(length=10), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('taxpayers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_no', sa.String(length=20), nullable=False),
    sa.Column('taxpayer_id', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('bureau_code', sa.String(length=12), nullable=False),
    sa.Column('filing_mode', sa.Integer(), nullable=False),
    sa.Column('roll_quota', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('taxpayer_no')
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('machines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('machine_no', sa.String(length=16), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.Integer(), nullable=False),
    sa.Column('single_limit', sa.BigInteger(), nullable=False),
    sa.Column('cumulative_limit', sa.BigInteger(), nullable=False),
    sa.Column('return_limit', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('initialized_on', sa.Integer(), nullable=True),
    sa.Column('registered_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('machine_no')
    )
    op.create_table('tax_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('rate', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=24), nullable=False),
    sa.CheckConstraint('idx BETWEEN 1 AND 255'),
    sa.CheckConstraint('rate BETWEEN 0 AND 10000'),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('taxpayer_id', 'idx')
    )
    op.create_table('audits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.Integer(), nullable=False),
    sa.Column('journal_bytes', sa.BigInteger(), nullable=False),
    sa.Column('journal_sha256', sa.String(length=64), nullable=False),
    sa.Column('chain_head', sa.String(length=64), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_no', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.Integer(), nullable=False),
    sa.Column('key_ref_id', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.Integer(), nullable=False),
    sa.Column('valid_to', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('fiscal', 'user')"),
    sa.ForeignKeyConstraint(['key_ref_id'], ['key_refs.id'], ),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('card_no')
    )
    op.create_table('declarations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Integer(), nullable=False),
    sa.Column('period_end', sa.Integer(), nullable=False),
    sa.Column('record', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('normal_count', sa.Integer(), nullable=False),
    sa.Column('return_count', sa.Integer(), nullable=False),
    sa.Column('void_count', sa.Integer(), nullable=False),
    sa.Column('normal_total', sa.BigInteger(), nullable=False),
    sa.Column('return_total', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('machine_id', 'period_end')
    )
    op.create_table('rolls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=10), nullable=False),
    sa.Column('start_no', sa.BigInteger(), nullable=False),
    sa.Column('end_no', sa.BigInteger(), nullable=False),
    sa.Column('sales_period', sa.Integer(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('record', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=False),
    sa.Column('sold_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('start_no >= 1 AND end_no >= start_no'),
    sa.ForeignKeyConstraint(['code'], ['roll_codes.code'], ),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code', 'start_no'),
    sa.UniqueConstraint('machine_id', 'sales_period', 'slot')
    )
    op.create_table('clear_unlocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('declaration_id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.Integer(), nullable=False),
    sa.Column('period_end', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('deadline', sa.Integer(), nullable=False),
    sa.Column('single_limit', sa.BigInteger(), nullable=False),
    sa.Column('cumulative_limit', sa.BigInteger(), nullable=False),
    sa.Column('return_limit', sa.BigInteger(), nullable=False),
    sa.Column('record', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['declaration_id'], ['declarations.id'], ),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('declaration_id'),
    sa.UniqueConstraint('machine_id', 'period_end')
    )
    op.create_table('comparisons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('declaration_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('declared_income', sa.BigInteger(), nullable=False),
    sa.Column('recorded_income', sa.BigInteger(), nullable=False),
    sa.Column('items', sa.JSON(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('filed_on', sa.Integer(), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("outcome IN ('accepted', 'shortfall')"),
    sa.ForeignKeyConstraint(['declaration_id'], ['declarations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('declaration_id', 'attempt')
    )
    op.create_table('referrals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('declaration_id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('assignee', sa.String(length=80), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("state IN ('open', 'assigned', 'closed')"),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparisons.id'], ),
    sa.ForeignKeyConstraint(['declaration_id'], ['declarations.id'], ),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('comparison_id')
    )
    op.create_table('surcharges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('taxpayer_id', sa.Integer(), nullable=False),
    sa.Column('filing_deadline', sa.Integer(), nullable=False),
    sa.Column('filed_on', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('base', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparisons.id'], ),
    sa.ForeignKeyConstraint(['taxpayer_id'], ['taxpayers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('comparison_id')
    )

    op.create_index("ix_events_taxpayer", "events", ["taxpayer_id", "id"])
    op.create_index("ix_declarations_taxpayer", "declarations", ["taxpayer_id", "period_end"])
    op.create_index("ix_rolls_machine", "rolls", ["machine_id", "id"])
    op.create_index("ix_referrals_state", "referrals", ["state", "id"])
    # the event log is append-only: the database itself refuses to change or delete an event
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$")
        op.execute("CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
                   "FOR EACH ROW EXECUTE FUNCTION events_append_only()")
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute("CREATE TRIGGER events_no_%s BEFORE %s ON events BEGIN "
                       "SELECT RAISE(ABORT, 'the event log is append-only'); END" % (what.lower(), what))

def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION events_append_only()")
    else:
        op.execute("DROP TRIGGER events_no_update")
        op.execute("DROP TRIGGER events_no_delete")
    for name, table in (("ix_events_taxpayer", "events"), ("ix_declarations_taxpayer", "declarations"),
                        ("ix_rolls_machine", "rolls"), ("ix_referrals_state", "referrals")):
        op.drop_index(name, table)
    op.drop_table('surcharges')
    op.drop_table('referrals')
    op.drop_table('comparisons')
    op.drop_table('clear_unlocks')
    op.drop_table('rolls')
    op.drop_table('declarations')
    op.drop_table('cards')
    op.drop_table('audits')
    op.drop_table('tax_items')
    op.drop_table('machines')
    op.drop_table('events')
    op.drop_table('taxpayers')
    op.drop_table('roll_codes')
    op.drop_table('key_refs')
