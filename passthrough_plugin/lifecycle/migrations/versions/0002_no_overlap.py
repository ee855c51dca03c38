"""The database refuses overlapping intervals of one device.

PostgreSQL: an exclusion constraint (btree_gist) on host, host address and
the interval's time range. SQLite: triggers that abort an insert or an
update making two intervals of a device share an instant (the ledger also
serialises its writers there with BEGIN IMMEDIATE). Other databases rely
on the ledger's own check and the unique index of open intervals.

Revision ID: 0002_no_overlap
Revises: 0001_initial
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = '0002_no_overlap'
down_revision = '0001_initial'
branch_labels = None
depends_on = None

CONSTRAINT = 'excl_assignments_device_overlap'
ORDER = 'ck_assignments_end_after_start'
# ``a`` and ``NEW`` share an instant: both non-empty and each starts
# before the other ends (an open interval ends at infinity).
_OVERLAP = """
    SELECT RAISE(ABORT, 'an interval cannot end before it starts')
    WHERE NEW.ended_at IS NOT NULL AND NEW.ended_at < NEW.started_at;
    SELECT RAISE(ABORT, 'overlapping intervals of one device')
    WHERE EXISTS (
        SELECT 1 FROM assignments a
        WHERE a.host = NEW.host AND a.host_address = NEW.host_address
          AND a.id IS NOT NEW.id
          AND (a.ended_at IS NULL OR a.ended_at > a.started_at)
          AND (NEW.ended_at IS NULL OR NEW.ended_at > NEW.started_at)
          AND (a.ended_at IS NULL OR a.ended_at > NEW.started_at)
          AND (NEW.ended_at IS NULL OR NEW.ended_at > a.started_at));
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        # btree_gist is a trusted extension (PostgreSQL 13+): a database
        # owner may create it.
        op.execute('CREATE EXTENSION IF NOT EXISTS btree_gist')
        op.execute(
            "ALTER TABLE assignments ADD CONSTRAINT %s EXCLUDE USING gist "
            "(host WITH =, host_address WITH =, "
            "tstzrange(started_at, ended_at, '[)') WITH &&)" % CONSTRAINT)
        op.execute(
            'ALTER TABLE assignments ADD CONSTRAINT %s CHECK (ended_at IS '
            'NULL OR ended_at >= started_at)' % ORDER)
    elif dialect == 'sqlite':
        for event in ('INSERT', 'UPDATE'):
            op.execute(
                'CREATE TRIGGER assignments_no_overlap_%s BEFORE %s ON '
                'assignments BEGIN %s END' % (event.lower(), event, _OVERLAP))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        for name in (ORDER, CONSTRAINT):
            op.execute('ALTER TABLE assignments DROP CONSTRAINT %s' % name)
    elif dialect == 'sqlite':
        for event in ('insert', 'update'):
            op.execute('DROP TRIGGER assignments_no_overlap_%s' % event)
