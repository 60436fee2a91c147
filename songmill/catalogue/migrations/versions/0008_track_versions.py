"""track versions made by the song editor, and each track's current version

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('track_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('track_number', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('parent', sa.Integer(), nullable=True),
    sa.Column('operations', sa.JSON(), nullable=False),
    sa.Column('added', sa.JSON(), nullable=False),
    sa.Column('command', sa.Text(), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('config_sha256', sa.String(length=64), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('track_spec', sa.JSON(), nullable=False),
    sa.Column('artifacts', sa.JSON(), nullable=False),
    sa.Column('recomputed', sa.JSON(), nullable=False),
    sa.Column('measures', sa.JSON(), nullable=False),
    sa.Column('folder', sa.Text(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('release_id', 'track_number', 'number')
    )
    op.create_index('ix_track_versions_release_id', 'track_versions', ['release_id'])
    op.create_table('track_version_heads',
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('track_number', sa.Integer(), nullable=False),
    sa.Column('current', sa.Integer(), nullable=False),
    sa.Column('undone', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('release_id', 'track_number')
    )


def downgrade() -> None:
    op.drop_table('track_version_heads')
    op.drop_index('ix_track_versions_release_id', table_name='track_versions')
    op.drop_table('track_versions')
