"""Data key use counts: how many card numbers each data key version has encrypted, for the
rotation policies' maximum use count (``hub.rotation``).

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
    with op.batch_alter_table("vault_data_keys") as batch:
        batch.add_column(sa.Column("uses", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("vault_data_keys") as batch:
        batch.drop_column("uses")
