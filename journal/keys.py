"""The journal's keys: tenant data keys for personal parts, and the checkpoint signing key.

The seam
    :class:`MasterKeys` is the journal's view of a master key source: a current version and
    the 32-byte key of each version. The journal does not import the vault; the vault's key
    providers (key file, environment variable) have exactly this shape, so the hub hands
    the vault's provider in (``hub.bootstrap.open_journal``) and one set of master keys
    protects both. :class:`StaticMasterKeys` holds keys in memory (tests, benchmarks).

Tenant keys
    Each tenant has a random AES-256 journal key, wrapped (AES-256-GCM) by the current
    master key and stored in ``journal_tenant_keys`` with a version; the associated data of
    the wrap names the tenant and both versions, so a wrapped key copied to another tenant
    does not open. A personal part is AES-256-GCM ciphertext (12-byte nonce first) under
    that key, its associated data binding it to tenant, sequence number and key version:
    a ciphertext moved to another event does not decrypt.

Crypto-shredding
    :func:`shred_tenant_keys` sets ``wrapped`` to NULL on every version of the tenant's key.
    The ciphertexts stay in the chain (which hashes them, so it still verifies) but nobody
    can open them again; readers report :attr:`journal.events.Sealed.ERASED`. Events appended for
    that tenant afterwards use a fresh key version.

Checkpoint signing key
    An Ed25519 key derived with HKDF-SHA256 from a master key version
    (:func:`signing_key`). Every hub instance holding the master keys signs with the same
    key and ``audit verify`` needs nothing else; the checkpoint row records the master
    version. What this protects against: anyone who can write the database but does not
    hold the master keys (a DBA, a stolen backup restored and edited) cannot forge a
    checkpoint.

>>> keys = StaticMasterKeys({1: bytes(32)})
>>> public_key_bytes(signing_key(keys, 1)) == public_key_bytes(signing_key(keys, 1))
True
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.engine import Connection

from journal.schema import TENANT_KEYS

__all__ = [
    "JournalKeyError",
    "MasterKeys",
    "StaticMasterKeys",
    "TenantKeyring",
    "personal_aad",
    "public_key_bytes",
    "shred_tenant_keys",
    "signing_key",
]

NONCE_SIZE: Final = 12
KEY_SIZE: Final = 32

# Built once, like the append's statements (journal.store): every batch with personal
# parts runs it.
_KEYS_OF_TENANTS: Final = select(TENANT_KEYS).where(
    TENANT_KEYS.c.tenant.in_(bindparam("tenants", expanding=True))
)


class JournalKeyError(Exception):
    """A key the journal needs is missing or does not open; never holds key material."""


@runtime_checkable
class MasterKeys(Protocol):
    """Where the journal's master keys come from (the vault's ``KeyProvider`` fits)."""

    @property
    def current_version(self) -> int:
        """The version new wraps and new checkpoints use."""
        ...

    def master_key(self, version: int) -> bytes:
        """The 32-byte master key of ``version``."""
        ...


class StaticMasterKeys:
    """Master keys held in memory, ``{version: key}``; the highest version is current."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys or any(len(key) != KEY_SIZE for key in keys.values()):
            raise JournalKeyError(f"master keys must be {KEY_SIZE} bytes, at least one")
        self._keys = dict(keys)

    @property
    def current_version(self) -> int:
        return max(self._keys)

    def master_key(self, version: int) -> bytes:
        try:
            return self._keys[version]
        except KeyError:
            raise JournalKeyError(f"master key version {version} is not available") from None

    def __repr__(self) -> str:
        return f"StaticMasterKeys(versions={sorted(self._keys)})"


def _wrap_aad(tenant: str, version: int, master_version: int) -> bytes:
    return f"isobridge/journal-key/{tenant}/{version}/{master_version}".encode()


def personal_aad(tenant: str, seq: int, key_version: int) -> bytes:
    """Associated data of a personal part: its tenant, its event, its key version."""
    return f"isobridge/journal/{tenant}/{seq}/{key_version}".encode()


def signing_key(keys: MasterKeys, master_version: int) -> Ed25519PrivateKey:
    """The checkpoint signing key derived from master key ``master_version``."""
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=None,
        info=b"isobridge/journal/checkpoint-signing",
    ).derive(keys.master_key(master_version))
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of ``key``."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class _TenantKey:
    version: int
    wrapped: bytes
    cipher: AESGCM


class TenantKeyring:
    """Tenant journal keys: created on a tenant's first personal part, cached unwrapped.

    The rows are read on the caller's connection each time they are needed (one query per
    batch), so a key shredded by another process is never used again; only the unwrapping
    is cached.
    """

    def __init__(self, keys: MasterKeys) -> None:
        self.keys = keys
        self._unwrapped: dict[tuple[str, int, bytes], AESGCM] = {}

    def _open(self, tenant: str, version: int, wrapped: bytes, master_version: int) -> AESGCM:
        cached = self._unwrapped.get((tenant, version, wrapped))
        if cached is not None:
            return cached
        master = self.keys.master_key(master_version)
        try:
            key = AESGCM(master).decrypt(
                wrapped[:NONCE_SIZE],
                wrapped[NONCE_SIZE:],
                _wrap_aad(tenant, version, master_version),
            )
        except (InvalidTag, ValueError):
            raise JournalKeyError(
                f"the journal key of tenant {tenant!r} (version {version}) does not unwrap "
                f"under master key version {master_version}"
            ) from None
        cipher = AESGCM(key)
        self._unwrapped[(tenant, version, wrapped)] = cipher
        return cipher

    def current_keys(
        self, connection: Connection, tenants: Iterable[str], now: dt.datetime
    ) -> dict[str, tuple[int, AESGCM]]:
        """The live key (version, cipher) of each tenant, created where there is none.

        Call it with the chain head locked: two appenders never create a key for the same
        tenant at once.
        """
        wanted = sorted(set(tenants))
        if not wanted:
            return {}
        rows = connection.execute(_KEYS_OF_TENANTS, {"tenants": wanted}).all()
        latest: dict[str, tuple[int, bytes | None, int]] = {}
        for row in rows:
            known = latest.get(row.tenant)
            if known is None or row.version > known[0]:
                latest[row.tenant] = (row.version, row.wrapped, row.master_version)
        found: dict[str, tuple[int, AESGCM]] = {}
        for tenant in wanted:
            version, wrapped, master_version = latest.get(tenant, (0, None, 0))
            if wrapped is None:
                version, wrapped, master_version = self._create(
                    connection, tenant, version + 1, now
                )
            found[tenant] = (version, self._open(tenant, version, wrapped, master_version))
        return found

    def _create(
        self, connection: Connection, tenant: str, version: int, now: dt.datetime
    ) -> tuple[int, bytes, int]:
        master_version = self.keys.current_version
        nonce = secrets.token_bytes(NONCE_SIZE)
        wrapped = nonce + AESGCM(self.keys.master_key(master_version)).encrypt(
            nonce, secrets.token_bytes(KEY_SIZE), _wrap_aad(tenant, version, master_version)
        )
        connection.execute(
            TENANT_KEYS.insert().values(
                tenant=tenant,
                version=version,
                wrapped=wrapped,
                master_version=master_version,
                created_at=now,
            )
        )
        return version, wrapped, master_version

    def add_version(
        self, connection: Connection, tenant: str, version: int, now: dt.datetime
    ) -> None:
        """Create version ``version`` of ``tenant``'s key (a rotation): new personal parts
        use it, older versions keep decrypting theirs. Call it with the chain head locked."""
        self._create(connection, tenant, version, now)

    def readable_keys(
        self, connection: Connection, tenants: Iterable[str]
    ) -> dict[tuple[str, int], AESGCM | None]:
        """Every key version of ``tenants``: its cipher, or ``None`` once shredded."""
        wanted = sorted(set(tenants))
        if not wanted:
            return {}
        rows = connection.execute(_KEYS_OF_TENANTS, {"tenants": wanted}).all()
        return {
            (row.tenant, row.version): None
            if row.wrapped is None
            else self._open(row.tenant, row.version, row.wrapped, row.master_version)
            for row in rows
        }

    def forget(self, tenant: str) -> None:
        """Drop ``tenant``'s unwrapped keys from memory."""
        for cached in [k for k in self._unwrapped if k[0] == tenant]:
            del self._unwrapped[cached]


def shred_tenant_keys(connection: Connection, tenant: str, now: dt.datetime) -> int:
    """Destroy every version of ``tenant``'s journal key; returns the versions destroyed."""
    result = connection.execute(
        update(TENANT_KEYS)
        .where(and_(TENANT_KEYS.c.tenant == tenant, TENANT_KEYS.c.wrapped.is_not(None)))
        .values(wrapped=None, shredded_at=now)
    )
    return int(result.rowcount)
