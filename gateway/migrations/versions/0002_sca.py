"""Strong customer authentication: the PSUs' TOTP enrolments and their failed attempts.

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
    op.create_table(
        "gateway_sca_enrolments",
        sa.Column("psu", sa.String(128), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("master_version", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", sa.Float(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("psu", name="pk_gateway_sca_enrolments"),
    )
    op.create_table(
        "gateway_sca_failures",
        sa.Column("failure_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("psu", sa.String(128), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("failure_id", name="pk_gateway_sca_failures"),
    )
    op.create_index("ix_gateway_sca_failures_psu", "gateway_sca_failures", ["psu", "failed_at"])


def downgrade() -> None:
    op.drop_index("ix_gateway_sca_failures_psu", "gateway_sca_failures")
    op.drop_table("gateway_sca_failures")
    op.drop_table("gateway_sca_enrolments")
