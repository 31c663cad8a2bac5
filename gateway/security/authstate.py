"""The built-in authorization server's state: its codes and signing keys, in the database.

Standards: RFC 6749 section 4.1.2 (an authorization code is single use and short lived),
RFC 7517 (the key set the server publishes). The server
(:mod:`gateway.security.authserver`) may run in several gateway processes at once: the PSU's
``/oauth2/authorize`` may reach one and the TPP's ``/oauth2/token`` another, and a token
signed by one is verified by all. So both live in the gateway's database
(:mod:`gateway.store`):

- codes (``gateway_authorization_codes``) are kept by their SHA-256, never in clear, and
  redeemed with one ``DELETE ... RETURNING``: of two redemptions of one code, on any
  processes, one gets it;
- signing keys (``gateway_signing_keys``): the newest signs, the newest ``retain`` are
  published; a process that starts with an empty table makes the first key. The private
  keys are stored unencrypted (PKCS#8 PEM): this server is for the demo and the tests;
  production points the gateway at the bank's own issuer (``[issuer] jwks_url``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from gateway.security.jose import SigningKey
from gateway.store import authorization_codes_table, signing_keys_table, transaction

__all__ = ["AuthorizationCode", "AuthorizationState"]


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """What a code was issued for."""

    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    consent_id: str
    psu: str
    expires_at: float


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class AuthorizationState:
    """See the module docstring."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def save_code(self, code: str, grant: AuthorizationCode) -> None:
        """Keep ``grant`` under ``code`` until it is redeemed or expires; expired codes are
        deleted on the way."""
        table = authorization_codes_table
        with transaction(self.engine) as connection:
            connection.execute(delete(table).where(table.c.expires_at < self.clock()))
            connection.execute(
                table.insert().values(
                    code_sha256=_code_hash(code),
                    client_id=grant.client_id,
                    redirect_uri=grant.redirect_uri,
                    challenge=grant.challenge,
                    scope=grant.scope,
                    consent_id=grant.consent_id,
                    psu=grant.psu,
                    expires_at=grant.expires_at,
                )
            )

    def redeem(self, code: str) -> AuthorizationCode | None:
        """What ``code`` was issued for, once: the first call takes it (expired or not; the
        server checks), every later one gets None."""
        table = authorization_codes_table
        with transaction(self.engine) as connection:
            row = connection.execute(
                delete(table).where(table.c.code_sha256 == _code_hash(code)).returning(*table.c)
            ).first()
        if row is None:
            return None
        return AuthorizationCode(
            row.client_id,
            row.redirect_uri,
            row.challenge,
            row.scope,
            row.consent_id,
            row.psu,
            row.expires_at,
        )

    def signing_keys(self) -> list[SigningKey]:
        """The signing keys, newest first."""
        table = signing_keys_table
        with transaction(self.engine) as connection:
            rows = connection.execute(
                select(table).order_by(table.c.created_at.desc(), table.c.kid)
            ).all()
        return [
            SigningKey.from_pem(row.private_pem.encode(), alg=row.alg, kid=row.kid) for row in rows
        ]

    def add_key(self, key: SigningKey, *, retain: int) -> list[SigningKey]:
        """Make ``key`` the newest and forget all but the newest ``retain``: the keys left,
        newest first."""
        table = signing_keys_table
        pem = key.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        with transaction(self.engine) as connection:
            connection.execute(
                table.insert().values(
                    kid=key.kid, alg=key.alg, private_pem=pem.decode(), created_at=self.clock()
                )
            )
            kept = select(table.c.kid).order_by(table.c.created_at.desc(), table.c.kid)
            connection.execute(delete(table).where(table.c.kid.not_in(kept.limit(retain))))
        return self.signing_keys()
