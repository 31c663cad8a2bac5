"""Signing key rotation schedules: when a signing key starts to sign (a key is published in
the JWKS before it signs) and how many tokens it signed (``hub.rotation``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_signing_keys") as batch:
        batch.add_column(sa.Column("activates_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("uses", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("gateway_signing_keys") as batch:
        batch.drop_column("uses")
        batch.drop_column("activates_at")
