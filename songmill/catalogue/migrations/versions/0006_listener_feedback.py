"""listener feedback: imports, events, verdicts, track attributes, review queue, plan choices, experiments

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('track_attributes',
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('melody', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('track_id')
    )
    op.create_table('feedback_imports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('layout', sa.String(length=64), nullable=False),
    sa.Column('raw_path', sa.Text(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('unknown_isrc', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    op.create_table('feedback_rejections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['feedback_imports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_feedback_rejections_import_id', 'feedback_rejections', ['import_id'])
    op.create_table('listener_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('row_key', sa.String(length=64), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=True),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('layout', sa.String(length=64), nullable=False),
    sa.Column('isrc', sa.String(length=12), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('territory', sa.String(length=8), nullable=False),
    sa.Column('store', sa.String(length=64), nullable=False),
    sa.Column('streams', sa.Integer(), nullable=False),
    sa.Column('listeners', sa.Integer(), nullable=True),
    sa.Column('skips', sa.Integer(), nullable=True),
    sa.Column('completions', sa.Integer(), nullable=True),
    sa.Column('saves', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['feedback_imports.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('row_key')
    )
    op.create_index('ix_listener_events_import_id', 'listener_events', ['import_id'])
    op.create_index('ix_listener_events_isrc', 'listener_events', ['isrc'])
    op.create_index('ix_listener_events_track_id', 'listener_events', ['track_id'])
    op.create_table('verdicts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(length=250), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_verdicts_track_id', 'verdicts', ['track_id'])
    op.create_table('review_queue',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('predicted_appeal', sa.Float(), nullable=False),
    sa.Column('uncertainty', sa.Float(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('track_id')
    )
    op.create_index('ix_review_queue_release_id', 'review_queue', ['release_id'])
    op.create_table('plan_choices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('track_number', sa.Integer(), nullable=False),
    sa.Column('attribute', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('why', sa.Text(), nullable=False),
    sa.Column('snapshot_sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_plan_choices_release_id', 'plan_choices', ['release_id'])
    op.create_table('experiment_assignments',
    sa.Column('experiment', sa.String(length=64), nullable=False),
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('arm', sa.String(length=64), nullable=False),
    sa.Column('assigned_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('experiment', 'release_id')
    )


def downgrade() -> None:
    op.drop_table('experiment_assignments')
    op.drop_index('ix_plan_choices_release_id', table_name='plan_choices')
    op.drop_table('plan_choices')
    op.drop_index('ix_review_queue_release_id', table_name='review_queue')
    op.drop_table('review_queue')
    op.drop_index('ix_verdicts_track_id', table_name='verdicts')
    op.drop_table('verdicts')
    op.drop_index('ix_listener_events_track_id', table_name='listener_events')
    op.drop_index('ix_listener_events_isrc', table_name='listener_events')
    op.drop_index('ix_listener_events_import_id', table_name='listener_events')
    op.drop_table('listener_events')
    op.drop_index('ix_feedback_rejections_import_id', table_name='feedback_rejections')
    op.drop_table('feedback_rejections')
    op.drop_table('feedback_imports')
    op.drop_table('track_attributes')
