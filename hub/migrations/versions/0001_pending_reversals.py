"""The hub's first schema: reversals stored until the core acknowledges them.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_pending_reversals",
        sa.Column("posting_ref", sa.String(24), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("reversal", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("posting_ref", name="pk_hub_pending_reversals"),
    )
    op.create_index(
        "ix_hub_pending_reversals_next_attempt_at", "hub_pending_reversals", ["next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_hub_pending_reversals_next_attempt_at", "hub_pending_reversals")
    op.drop_table("hub_pending_reversals")
