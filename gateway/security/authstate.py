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
- signing keys (``gateway_signing_keys``): the newest that has activated signs, every
  stored key is published; a process that starts with an empty table makes the first key.
  A key added on a rotation schedule (:meth:`AuthorizationState.add_key` with
  ``activates_at``) is published before it signs, and a key is forgotten only once it is
  not among the newest ``retain`` and its successor has signed for ``overlap`` seconds (the
  longest a token lives): no token it signed is still valid. Adding a key takes a lock
  (PostgreSQL: a transaction advisory lock; SQLite: ``BEGIN IMMEDIATE``) and, with
  ``if_newest``, adds nothing when another process rotated first. Tokens signed per key are
  added in batches (:meth:`AuthorizationState.add_uses`). The private
  keys are stored unencrypted (PKCS#8 PEM): this server is for the demo and the tests;
  production points the gateway at the bank's own issuer (``[issuer] jwks_url``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import overload

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.engine import Connection, Engine

from gateway.security.jose import SigningKey
from gateway.store import authorization_codes_table, signing_keys_table, transaction

__all__ = ["AuthorizationCode", "AuthorizationState", "SigningKeyRecord"]

# Any constant of the gateway's own: it names the signing keys' lock among advisory locks.
_SIGNING_KEYS_LOCK = 0x150B_5160
# When a key starts to sign (keys of the first schema start when made); newest first is
# by that, then by when it was made: a pre-published key is newer than the one it replaces.
_STARTS = func.coalesce(signing_keys_table.c.activates_at, signing_keys_table.c.created_at)
_NEWEST_FIRST = (_STARTS.desc(), signing_keys_table.c.created_at.desc(), signing_keys_table.c.kid)


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


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A stored signing key: since when it is published (``created_at``), since when it
    signs (``activates_at``), how many tokens it signed (as added by :meth:`add_uses`)."""

    key: SigningKey
    created_at: float
    activates_at: float
    uses: int


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
        """The signing keys, newest first: all are published."""
        return [record.key for record in self.key_records()]

    def key_records(self) -> list[SigningKeyRecord]:
        """The signing keys with their times and use counts, newest first."""
        table = signing_keys_table
        with transaction(self.engine) as connection:
            rows = connection.execute(select(table).order_by(*_NEWEST_FIRST)).all()
        return [
            SigningKeyRecord(
                SigningKey.from_pem(row.private_pem.encode(), alg=row.alg, kid=row.kid),
                row.created_at,
                row.created_at if row.activates_at is None else row.activates_at,
                int(row.uses or 0),
            )
            for row in rows
        ]

    @overload
    def add_key(
        self,
        key: SigningKey,
        *,
        retain: int,
        activates_at: float | None = None,
        overlap: float = 0.0,
        if_newest: None = None,
    ) -> list[SigningKey]: ...

    @overload
    def add_key(
        self,
        key: SigningKey,
        *,
        retain: int,
        activates_at: float | None = None,
        overlap: float = 0.0,
        if_newest: str,
    ) -> list[SigningKey] | None: ...

    def add_key(
        self,
        key: SigningKey,
        *,
        retain: int,
        activates_at: float | None = None,
        overlap: float = 0.0,
        if_newest: str | None = None,
    ) -> list[SigningKey] | None:
        """Make ``key`` the newest, signing from ``activates_at`` (default: now), and forget
        the keys that are not among the newest ``retain`` and whose successor has signed
        for ``overlap`` seconds: the keys left, newest first.

        With ``if_newest``, only if the newest key is still the one of that ``kid``:
        ``None`` when another process added one first.
        """
        table = signing_keys_table
        pem = key.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        now = self.clock()
        with transaction(self.engine) as connection:
            self._lock_keys(connection)
            if if_newest is not None and not self._is_newest(connection, if_newest):
                return None
            connection.execute(
                table.insert().values(
                    kid=key.kid,
                    alg=key.alg,
                    private_pem=pem.decode(),
                    created_at=now,
                    activates_at=now if activates_at is None else activates_at,
                    uses=0,
                )
            )
            self._forget_expired(connection, retain=retain, overlap=overlap, now=now)
        return self.signing_keys()

    def forget_expired(self, *, retain: int, overlap: float) -> None:
        """Forget the keys :meth:`add_key` would forget now."""
        with transaction(self.engine) as connection:
            self._lock_keys(connection)
            self._forget_expired(connection, retain=retain, overlap=overlap, now=self.clock())

    def add_uses(self, uses: Mapping[str, int]) -> None:
        """Add ``uses`` (tokens signed, by ``kid``) to the stored counts, one transaction."""
        if not uses:
            return
        table = signing_keys_table
        with transaction(self.engine) as connection:
            connection.execute(
                update(table)
                .where(table.c.kid == bindparam("b_kid"))
                .values(uses=table.c.uses + bindparam("b_uses")),
                [{"b_kid": kid, "b_uses": count} for kid, count in uses.items()],
            )

    @staticmethod
    def _is_newest(connection: Connection, kid: str) -> bool:
        # No other key starts signing at or after ``kid``: of keys made in the same clock
        # tick, none can be taken for older than ``kid`` by its name.
        table = signing_keys_table
        since = connection.execute(select(_STARTS).where(table.c.kid == kid)).scalar_one_or_none()
        if since is None:
            return False
        later = connection.execute(
            select(table.c.kid).where(table.c.kid != kid, since <= _STARTS).limit(1)
        ).first()
        return later is None

    @staticmethod
    def _lock_keys(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _SIGNING_KEYS_LOCK}
            )

    @staticmethod
    def _forget_expired(connection: Connection, *, retain: int, overlap: float, now: float) -> None:
        table = signing_keys_table
        rows = connection.execute(
            select(table.c.kid, table.c.created_at, table.c.activates_at).order_by(*_NEWEST_FIRST)
        ).all()
        forget: list[str] = []
        successor_active: float | None = None
        for position, row in enumerate(rows):
            activates = row.created_at if row.activates_at is None else row.activates_at
            if (
                position >= retain
                and successor_active is not None
                and successor_active + overlap <= now
            ):
                forget.append(row.kid)
            # The key after this one (older) stops signing when this one starts.
            if activates <= now:
                successor_active = (
                    activates if successor_active is None else min(successor_active, activates)
                )
        if forget:
            connection.execute(delete(table).where(table.c.kid.in_(forget)))
