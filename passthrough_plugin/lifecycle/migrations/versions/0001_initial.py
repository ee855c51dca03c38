"""The initial ledger schema.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'instances',
        sa.Column('uuid', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('headroom', sa.Text, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('deleted_at', TS, nullable=True),
    )
    op.create_index('ix_instances_project_id', 'instances', ['project_id'])
    op.create_table(
        'hotplugs',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('instance_uuid', sa.String(36),
                  sa.ForeignKey('instances.uuid'), nullable=False),
        sa.Column('alias', sa.String(255), nullable=False),
        sa.Column('requested_at', TS, nullable=False),
        sa.Column('removed_at', TS, nullable=True),
        sa.Column('removed_reason', sa.Text, nullable=True),
    )
    op.create_index('ix_hotplugs_instance_uuid', 'hotplugs',
                    ['instance_uuid'])
    op.create_table(
        'assignments',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('instance_uuid', sa.String(36),
                  sa.ForeignKey('instances.uuid'), nullable=False),
        sa.Column('project_id', sa.String(255), nullable=False),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('host_address', sa.String(16), nullable=False),
        sa.Column('guest_address', sa.String(16), nullable=True),
        sa.Column('resource_class', sa.String(255), nullable=False),
        sa.Column('alias', sa.String(255), nullable=True),
        sa.Column('source', sa.String(16), nullable=False),
        sa.Column('hotplug_id', sa.Integer, sa.ForeignKey('hotplugs.id'),
                  nullable=True),
        sa.Column('started_at', TS, nullable=False),
        sa.Column('ended_at', TS, nullable=True),
        sa.Column('end_reason', sa.Text, nullable=True),
    )
    op.create_index('ix_assignments_instance_uuid', 'assignments',
                    ['instance_uuid'])
    op.create_index('ix_assignments_project_id', 'assignments',
                    ['project_id'])
    op.create_index('ix_assignments_span', 'assignments',
                    ['started_at', 'ended_at'])
    op.create_index('uniq_assignments_open_device', 'assignments',
                    ['host', 'host_address'], unique=True,
                    sqlite_where=sa.text('ended_at IS NULL'),
                    postgresql_where=sa.text('ended_at IS NULL'))
    op.create_table(
        'pending_releases',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('instance_uuid', sa.String(36),
                  sa.ForeignKey('instances.uuid'), nullable=False),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('addresses', sa.Text, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('applied_at', TS, nullable=True),
    )
    op.create_index('ix_pending_releases_instance_uuid', 'pending_releases',
                    ['instance_uuid'])
    op.create_index('ix_pending_releases_host', 'pending_releases',
                    ['host'])
    op.create_table(
        'events',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('instance_uuid', sa.String(36),
                  sa.ForeignKey('instances.uuid'), nullable=False),
        sa.Column('action', sa.String(32), nullable=False),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('at', TS, nullable=False),
        sa.Column('detail', sa.Text, nullable=False),
    )
    op.create_index('ix_events_instance_uuid', 'events', ['instance_uuid'])


def downgrade() -> None:
    for table in ('events', 'pending_releases', 'assignments', 'hotplugs',
                  'instances'):
        op.drop_table(table)
