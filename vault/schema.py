"""The vault's tables (SQLAlchemy 2 declarative models); Alembic migrations create them.

============================  ==============================================================
table                         holds
============================  ==============================================================
``vault_tenants``             one row per tenant: its index key (wrapped), shredded time
``vault_data_keys``           tenant data keys, one row per version (wrapped), with state
                              and how many card numbers it encrypted (``uses``)
``vault_tokens``              one row per token: fingerprint (unique per tenant), the PAN
                              as AES-256-GCM ciphertext, data key version, expiry
``vault_audit``               one row per detokenization request, allowed or refused
============================  ==============================================================

No column holds a clear card number or an unwrapped key. The schema is created and
upgraded by the migrations in :mod:`vault.migrations` (``isobridge vault init``), never by
``create_all`` outside the tests of the migrations themselves.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AuditRow", "Base", "DataKeyRow", "KeyState", "TenantRow", "TokenRow"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the vault's models."""

    metadata = MetaData(naming_convention=NAMING)


class KeyState:
    """States of a data key version."""

    ACTIVE = "active"
    RETIRED = "retired"


class TenantRow(Base):
    """A tenant and its index key (root of fingerprint, token and FPE keys)."""

    __tablename__ = "vault_tenants"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    index_key: Mapped[bytes] = mapped_column(LargeBinary)
    index_key_version: Mapped[int] = mapped_column(Integer, default=1)
    index_master_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class DataKeyRow(Base):
    """One version of a tenant's data key, wrapped by a master key version."""

    __tablename__ = "vault_data_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    master_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    uses: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class TokenRow(Base):
    """A token: the PAN's fingerprint and ciphertext, never the PAN."""

    __tablename__ = "vault_tokens"
    __table_args__ = (
        UniqueConstraint("tenant", "fingerprint"),
        UniqueConstraint("tenant", "token"),
        Index("ix_vault_tokens_tenant_key_version", "tenant", "key_version"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(19))
    fingerprint: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """One detokenization request: who, which token (masked), why, allowed or not."""

    __tablename__ = "vault_audit"
    __table_args__ = (Index("ix_vault_audit_tenant_at", "tenant", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(256))
    token_masked: Mapped[str] = mapped_column(String(19))
    granted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(64))
