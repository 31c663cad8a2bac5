"""DPoP proofs already seen, in the gateway's database: replays refused across processes.

Standard: RFC 9449 section 11.1 (a DPoP proof is used once: the server remembers the
``jti`` of the proofs it accepted while they could still be accepted). With one gateway
process, :class:`gateway.security.tokens.MemoryProofReplays` does; with several behind one
address, a proof replayed to another process must be refused too, so
:class:`SqlProofReplays` keeps them in ``gateway_dpop_proofs`` (:mod:`gateway.store`): one
``INSERT ... ON CONFLICT DO NOTHING`` per proof, by SHA-256 of the key thumbprint and
``jti``, in the transaction that also deletes the proofs older than the window. That is a
write per DPoP-bound request; certificate-bound (mTLS) tokens need none.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete
from sqlalchemy.engine import Engine

from gateway.store import dpop_proofs_table, insert_or_ignore, transaction

__all__ = ["SqlProofReplays"]


class SqlProofReplays:
    """:class:`gateway.security.tokens.ProofReplays` in the gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(self, key: str, at: float, window: float) -> bool:
        """True the first time ``key`` is presented within ``window`` seconds, on any
        process using this database."""
        table = dpop_proofs_table
        with transaction(self.engine) as connection:
            connection.execute(delete(table).where(table.c.seen_at < at - window))
            return insert_or_ignore(
                connection,
                table,
                {"proof_sha256": hashlib.sha256(key.encode()).hexdigest(), "seen_at": at},
                ("proof_sha256",),
            )
