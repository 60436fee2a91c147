"""what each delivery delivered (the audio of each track) and which delivery it replaced

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a foreign key to an existing table in place
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('content', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('replaced_because', sa.Text(), nullable=True))
        batch.create_foreign_key('fk_deliveries_replaces_id', 'deliveries', ['replaces_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_constraint('fk_deliveries_replaces_id', type_='foreignkey')
        batch.drop_column('replaced_because')
        batch.drop_column('replaces_id')
        batch.drop_column('content')
