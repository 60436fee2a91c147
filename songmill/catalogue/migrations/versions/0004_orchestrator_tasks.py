"""orchestrator task tries (Airflow's listener)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('orchestrator_tasks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('dag_run_id', sa.String(length=250), nullable=False),
    sa.Column('task_id', sa.String(length=250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('hostname', sa.String(length=250), nullable=True),
    sa.Column('queue', sa.String(length=100), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('release_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_orchestrator_tasks_dag_id', 'orchestrator_tasks', ['dag_id'])
    op.create_index('ix_orchestrator_tasks_dag_run_id', 'orchestrator_tasks', ['dag_run_id'])


def downgrade() -> None:
    op.drop_index('ix_orchestrator_tasks_dag_run_id', table_name='orchestrator_tasks')
    op.drop_index('ix_orchestrator_tasks_dag_id', table_name='orchestrator_tasks')
    op.drop_table('orchestrator_tasks')
