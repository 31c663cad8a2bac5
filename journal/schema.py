"""The journal's tables (SQLAlchemy Core); the migrations in :mod:`journal.migrations` create them.

==========================  ===============================================================
table                       holds
==========================  ===============================================================
``journal_events``          the events, append-only: ``seq`` (1, 2, ... no gaps), time,
                            kind, tenant, the transaction's ids (indexed for ``trace``),
                            the body (JSON text), the personal part as AES-256-GCM
                            ciphertext with its key version, ``prev_hash`` and ``hash``
``journal_head``            one row: the chain head (last ``seq`` and ``hash``), the last
                            checkpoint and the checkpoint interval. Every append updates
                            it first, which serializes appenders (PostgreSQL row lock,
                            SQLite write lock)
``journal_checkpoints``     signed checkpoints: (seq, hash, time, previous checkpoint),
                            Ed25519 signature, the master key version that derived the key
``journal_tenant_keys``     per-tenant data keys (wrapped by a master key), one row per
                            version; a shredded key keeps its row with ``wrapped`` NULL
``journal_transactions``    the read model: one row per transaction (current status,
                            amount, ids, first and last event) built from the events
``journal_sagas``           one row per saga (:mod:`hub.sagas`): where it stands (step,
                            phase, attempts, when it is next due, its outcome), its
                            non-personal data, and the lease of the hub process working on
                            it. Rewritten with every transition, in the transaction that
                            appends the transition's event
``journal_saga_signals``    the answers a waiting saga is given (a pacs.002, a return...),
                            keyed by a deduplication key: a repeated answer is one row
==========================  ===============================================================

Only the read model and the saga tables are ever rewritten (``isobridge journal rebuild``); the
journal itself never updates or deletes an event.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "CHECKPOINTS",
    "EVENTS",
    "HEAD",
    "METADATA",
    "SAGAS",
    "SAGA_SIGNALS",
    "TENANT_KEYS",
    "TRANSACTIONS",
]

METADATA: Final = MetaData()

_SEQ = BigInteger().with_variant(Integer, "sqlite")

EVENTS: Final = Table(
    "journal_events",
    METADATA,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("end_to_end_id", String(64)),
    Column("stan", String(64)),
    Column("terminal_id", String(64)),
    Column("uetr", String(64)),
    Column("body", Text, nullable=False),
    Column("personal", LargeBinary),
    Column("key_version", Integer),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_journal_events_transaction_id", "transaction_id"),
    Index("ix_journal_events_end_to_end_id", "end_to_end_id"),
    Index("ix_journal_events_stan_terminal_id", "stan", "terminal_id"),
    Index("ix_journal_events_uetr", "uetr"),
)

HEAD: Final = Table(
    "journal_head",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", _SEQ, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("checkpoint_seq", _SEQ, nullable=False),
    Column("checkpoint_every", Integer, nullable=False),
)

CHECKPOINTS: Final = Table(
    "journal_checkpoints",
    METADATA,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("previous_seq", _SEQ, nullable=False),
    Column("master_version", Integer, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

TENANT_KEYS: Final = Table(
    "journal_tenant_keys",
    METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("wrapped", LargeBinary),
    Column("master_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("shredded_at", DateTime(timezone=True)),
)

TRANSACTIONS: Final = Table(
    "journal_transactions",
    METADATA,
    Column("transaction_id", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("reason_code", String(35)),
    Column("amount", String(40)),
    Column("currency", String(3)),
    Column("destination", String(128)),
    Column("attempts", Integer, nullable=False),
    Column("end_to_end_id", String(64)),
    Column("stan", String(64)),
    Column("terminal_id", String(64)),
    Column("uetr", String(64)),
    Column("first_seq", _SEQ, nullable=False),
    Column("last_seq", _SEQ, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Index("ix_journal_transactions_tenant_status", "tenant", "status"),
)

SAGAS: Final = Table(
    "journal_sagas",
    METADATA,
    Column("saga_id", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("definition", String(64), nullable=False),
    Column("step", String(32), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("outcome", String(32)),
    Column("attempts", Integer, nullable=False),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("last_error", String(200)),
    Column("end_to_end_id", String(64)),
    Column("uetr", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_journal_sagas_phase_next_at", "phase", "next_at"),
    Index("ix_journal_sagas_uetr", "uetr"),
    Index("ix_journal_sagas_end_to_end_id", "end_to_end_id"),
)

SAGA_SIGNALS: Final = Table(
    "journal_saga_signals",
    METADATA,
    Column("signal_key", String(128), primary_key=True),
    Column("saga_id", String(64), nullable=False),
    Column("signal", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Index("ix_journal_saga_signals_saga_id_state", "saga_id", "state"),
)
