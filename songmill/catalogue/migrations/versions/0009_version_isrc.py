"""an edited track version's own ISRC (allocated when it is first delivered) and the models it used

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('track_versions') as batch:
        batch.add_column(sa.Column('isrc', sa.String(length=12), nullable=True))
        batch.add_column(sa.Column('models', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('track_versions') as batch:
        batch.drop_column('models')
        batch.drop_column('isrc')
