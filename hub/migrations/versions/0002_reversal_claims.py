"""Reversals shared by several hub instances: who holds one (a claim, leased until its
``next_attempt_at``), so that one instance forwards it at a time and another takes it over
when the holder dies.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_pending_reversals") as batch:
        batch.add_column(sa.Column("claim", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_pending_reversals") as batch:
        batch.drop_column("claim")
