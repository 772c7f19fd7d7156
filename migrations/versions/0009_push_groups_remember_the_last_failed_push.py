"""push groups remember the last failed push

The Pushgateway keeps `push_failure_time_seconds` per group: a push it refuses after parsing
(a type clash with another group, a duplicate series, a timestamp) stamps the group, creating
it empty when there was none. Groups already in the table have never failed: 0.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('push_groups', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('last_failure_us', sa.BigInteger(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('push_groups', schema=None) as batch_op:
        batch_op.drop_column('last_failure_us')
