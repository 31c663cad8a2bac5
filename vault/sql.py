"""The persistent vault: tokens in SQL (SQLite by default, PostgreSQL), PANs under AES-256-GCM.

:class:`SqlVault` is the hub's vault. It keeps the token semantics of :mod:`vault.tokens`
(length kept, first 6 / last 4 kept, Luhn fails on purpose, convergent per tenant) and adds
what a production vault needs:

Storage
    One row per token (:class:`vault.schema.TokenRow`): the tenant, the token, the card
    number's HMAC-SHA256 fingerprint (unique per tenant: two processes tokenizing the same
    card at once get one token, because the second insert loses on that constraint and reads
    the winner), and the card number as AES-256-GCM ciphertext under the tenant's current
    data key, whose associated data binds it to tenant, token and key version
    (:func:`vault.keys.pan_aad`): a ciphertext moved to another row does not decrypt.

Keys (:mod:`vault.keys`)
    A master key from a :class:`~vault.keys.KeyProvider` wraps each tenant's data key
    (versions 1, 2, ...) and index key (root of the fingerprint, token and FPE keys). Tenant
    keys are created on the tenant's first tokenization and cached unwrapped in memory.

Token modes
    ``"random"`` (default): HMAC-derived digits with collision attempts (:mod:`vault.tokens`).
    ``"ff1"`` / ``"ff3-1"``: format-preserving encryption of the middle digits
    (:mod:`vault.fpe`) under the tenant's FPE key; deterministic, no collisions. Both modes
    store the row, so time to live, deletion, rotation and shredding work alike.

Detokenization
    Needs a :class:`~vault.policy.Caller` and a purpose, allowed by the
    :class:`~vault.policy.DetokenizationPolicy`; an audit row is committed for every request,
    granted or refused, before the answer leaves the vault (the clear card number is returned
    only once its audit row is durable). :meth:`SqlVault.for_caller` binds a caller, giving
    the ``detokenize(token, *, tenant, purpose)`` that adapter encode contexts use.

Rotation (:meth:`SqlVault.rotate`)
    Adds a data key version (new rows use it at once), then re-encrypts older rows in
    batches, online, reporting progress; old versions keep decrypting until
    :meth:`SqlVault.retire_old_keys` removes them, which it refuses while a row still uses
    one. Hub processes re-read a tenant's keys every ``key_refresh`` (60 s); retire only after
    that. :meth:`SqlVault.rewrap` moves every tenant key to the provider's current master
    version without touching the rows. For rotation schedules (``hub.rotation``):
    :meth:`SqlVault.add_data_key_version` starts a new version only if the current one is
    still the one the caller saw (of several processes due at once, one rotates), and every
    encryption is counted per version in memory, written by :meth:`SqlVault.flush_key_uses`
    in one transaction (never one write per card number); :meth:`SqlVault.data_keys` gives
    each tenant's current version, its age and its use count.

Deletion
    :meth:`delete_token`, a time to live per vault or per call (``ttl``;
    :class:`~vault.errors.ExpiredTokenError` after it, :meth:`purge_expired` deletes), and
    :meth:`shred_tenant`: the tenant's keys are destroyed with its rows, so any copy of the
    rows (a backup) can no longer be decrypted (crypto-shredding).

Throughput
    A known card number is answered from an in-process cache (fingerprint -> token) without
    touching the database. :meth:`tokenize_many` and :meth:`detokenize_many` do one
    transaction for a whole batch: on this class of machine the database commit, not the
    cryptography, is the cost (``ARCHITECTURE.md``, field notes), so hot paths batch.

Errors are those of :mod:`vault.errors`; a database that cannot be reached gives
:class:`~vault.errors.VaultUnavailableError` (a ``RuntimeError``: ISO 8583 answers 96).
No error text holds a clear card number.

>>> from vault.keys import EnvKeyProvider
>>> keys = EnvKeyProvider(environ={"ISOBRIDGE_MASTER_KEYS": "1:" + "A" * 43 + "="})
>>> vault = SqlVault.open("sqlite://", keys, create=True)
>>> token = vault.tokenize("4111111111111111", tenant="acme")
>>> token.masked, vault.tokenize("4111111111111111", tenant="acme") == token
('411111******1111', True)
>>> clerk = Caller("clerk-7", frozenset({"operator"}))
>>> vault.detokenize(token, tenant="acme", purpose="chargeback 114", caller=clerk)
'4111111111111111'
>>> [(r.caller, r.purpose, r.granted) for r in vault.audit_log(tenant="acme")]
[('clerk-7', 'chargeback 114', True)]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, bindparam, create_engine, delete, event, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from canonical_model.pan import PanToken, luhn_valid, mask_pan
from vault.errors import (
    DetokenizationDeniedError,
    ExpiredTokenError,
    InvalidPanError,
    MissingKeyError,
    TokenSpaceExhaustedError,
    UnknownTokenError,
    VaultError,
    VaultUnavailableError,
    WrongKeyError,
)
from vault.keys import (
    KeyProvider,
    derive_subkey,
    key_aad,
    new_key,
    pan_aad,
    unwrap_key,
    wrap_key,
)
from vault.migrate import HEAD, current_revision, upgrade
from vault.policy import DEFAULT_POLICY, Caller, DetokenizationPolicy
from vault.schema import AuditRow, DataKeyRow, KeyState, TenantRow, TokenRow
from vault.tokens import (
    DEFAULT_POLICY as DEFAULT_TOKEN_POLICY,
)
from vault.tokens import (
    HmacSha256,
    TokenPolicy,
    _derive,
    _fingerprint,
    validate_pan,
    validate_tenant,
)

__all__ = [
    "AuditRecord",
    "BoundDetokenizer",
    "DataKeyStatus",
    "RotationReport",
    "SqlVault",
    "TenantStats",
    "TokenMode",
    "VerifyReport",
]

TokenMode = Literal["random", "ff1", "ff3-1"]
TOKEN_MODES: Final[tuple[TokenMode, ...]] = ("random", "ff1", "ff3-1")
DEFAULT_MAX_ATTEMPTS: Final = 64
NONCE_SIZE: Final = 12
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One detokenization request, as stored: never a card number."""

    at: dt.datetime
    tenant: str
    caller: str
    purpose: str
    token_masked: str
    granted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class TenantStats:
    """A tenant's figures for ``isobridge vault stats``."""

    tenant: str
    tokens: int
    expired: int
    rows_by_key_version: dict[int, int]
    key_versions: dict[int, str]
    master_versions: tuple[int, ...]
    detokenizations_granted: int
    detokenizations_refused: int


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What a rotation did."""

    tenant: str
    new_version: int
    rows_reencrypted: int


@dataclass(frozen=True, slots=True)
class DataKeyStatus:
    """A tenant's current data key version: since when, and how many encryptions it did
    (those written by :meth:`SqlVault.flush_key_uses` plus this process's pending ones)."""

    tenant: str
    version: int
    created_at: dt.datetime
    uses: int


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify`` found: rows checked and the rows that did not decrypt (masked)."""

    rows_checked: int
    failures: tuple[tuple[str, str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class _TenantKeys:
    data: dict[int, AESGCM]
    current_version: int
    fingerprint_key: HmacSha256
    token_key: HmacSha256
    fpe_key: bytes
    loaded_at: float
    fpe: Any = None  # the FPE cipher, built on first use


@dataclass(slots=True)
class _CachedToken:
    token: PanToken
    expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class BoundDetokenizer:
    """A vault bound to a caller: the ``PanDetokenizer`` an encode context holds."""

    vault: SqlVault
    caller: Caller

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        """The clear card number of ``token``; audited, allowed by policy or refused."""
        return self.vault.detokenize(token, tenant=tenant, purpose=purpose, caller=self.caller)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite gives naive datetimes back; every time the vault writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        # The driver's own transaction handling is switched off so that every transaction
        # starts with BEGIN IMMEDIATE: two processes that both read and then write would
        # otherwise fail with "database is locked" instead of waiting for each other.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqlVault:
    """Tokens in SQL, card numbers under AES-256-GCM. See the module documentation."""

    def __init__(
        self,
        engine: Engine,
        keys: KeyProvider,
        *,
        policy: DetokenizationPolicy = DEFAULT_POLICY,
        token_policy: TokenPolicy = DEFAULT_TOKEN_POLICY,
        mode: TokenMode = "random",
        accept_luhn_invalid: bool = False,
        ttl: dt.timedelta | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        cache_size: int = 200_000,
        key_refresh: float = 60.0,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if mode not in TOKEN_MODES:
            raise ValueError(f"unknown token mode {mode!r} (known: {', '.join(TOKEN_MODES)})")
        if not 1 <= max_attempts <= 2**32:
            raise ValueError(f"max_attempts must be between 1 and 2**32, got {max_attempts}")
        self.engine = engine
        self.keys = keys
        self.policy = policy
        self.token_policy = token_policy
        self.mode: TokenMode = mode
        self.accept_luhn_invalid = accept_luhn_invalid
        self.ttl = ttl
        self._max_attempts = max_attempts
        self._cache_size = cache_size
        self._key_refresh = key_refresh
        self._now = now
        self._lock = threading.Lock()
        self._tenants: dict[str, _TenantKeys] = {}
        self._tokens: OrderedDict[tuple[str, str], _CachedToken] = OrderedDict()
        self._uses: dict[tuple[str, int], int] = {}
        self._dialect = engine.dialect.name

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def create_engine(url: str, **options: Any) -> Engine:
        """An engine for ``url`` set up for the vault (SQLite: WAL, waits on locks).

        ``options`` go to :func:`sqlalchemy.create_engine` (``connect_args``, pool sizes).
        """
        if url.startswith("sqlite"):
            if url in ("sqlite://", "sqlite:///:memory:"):
                options.setdefault("poolclass", StaticPool)
                options.setdefault("connect_args", {"check_same_thread": False})
            else:
                options.setdefault("connect_args", {"timeout": 30})
            engine = create_engine(url, **options)
            _configure_sqlite(engine)
            return engine
        options.setdefault("pool_pre_ping", True)
        return create_engine(url, **options)

    @classmethod
    def open(cls, url: str, keys: KeyProvider, *, create: bool = False, **options: Any) -> SqlVault:
        """The vault at ``url``; ``create=True`` runs the migrations first (``vault init``).

        Without ``create``, a database whose schema is missing or older than this code is
        refused with a message saying to run ``isobridge vault init``.
        """
        engine = cls.create_engine(url)
        try:
            if create:
                upgrade(engine)
            revision = current_revision(engine)
        except SQLAlchemyError as exc:
            raise VaultUnavailableError(f"vault database unreachable: {_db_reason(exc)}") from None
        if revision != HEAD:
            found = "no vault schema" if revision is None else f"schema revision {revision}"
            raise VaultError(
                f"the vault database has {found}, this code needs {HEAD}: "
                "run `isobridge vault init` (it creates or upgrades the schema)"
            )
        return cls(engine, keys, **options)

    def close(self) -> None:
        """Write the pending key use counts (if the database answers), release the database
        connections and forget the cached keys."""
        # Counts that cannot be written are uses not counted: the age limit still holds.
        with contextlib.suppress(VaultError, SQLAlchemyError, RuntimeError):
            self.flush_key_uses()
        with self._lock:
            self._tenants.clear()
            self._tokens.clear()
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"SqlVault({self.engine.url.render_as_string(hide_password=True)!r}, {self.mode})"

    def for_caller(self, caller: Caller) -> BoundDetokenizer:
        """This vault as ``caller``: what an encode context holds."""
        return BoundDetokenizer(self, caller)

    # -- database -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise VaultUnavailableError(f"vault database error: {_db_reason(exc)}") from None

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # -- keys -----------------------------------------------------------------------------

    def _tenant_keys(
        self, tenant: str, *, create: bool, connection: Connection | None = None
    ) -> _TenantKeys | None:
        keys = self._tenants.get(tenant)
        if keys is not None and time.monotonic() - keys.loaded_at < self._key_refresh:
            return keys
        keys = self._load_tenant(tenant, connection)
        if keys is None and create:
            self._create_tenant(tenant)
            keys = self._load_tenant(tenant)
        if keys is not None:
            with self._lock:
                self._tenants[tenant] = keys
        return keys

    def _load_tenant(self, tenant: str, connection: Connection | None = None) -> _TenantKeys | None:
        # Inside a transaction the keys are read on its connection: a second connection
        # would wait on the first one's SQLite write lock.
        if connection is None:
            with self._transaction() as own:
                return self._load_tenant(tenant, own)
        row = connection.execute(select(TenantRow).where(TenantRow.tenant == tenant)).one_or_none()
        if row is None:
            return None
        versions = connection.execute(select(DataKeyRow).where(DataKeyRow.tenant == tenant)).all()
        index = unwrap_key(
            self.keys.master_key(row.index_master_version),
            row.index_key,
            key_aad("index", tenant, row.index_key_version, row.index_master_version),
        )
        data: dict[int, AESGCM] = {}
        for version in versions:
            if version.state == KeyState.RETIRED:
                continue
            key = unwrap_key(
                self.keys.master_key(version.master_version),
                version.wrapped,
                key_aad("data", tenant, version.version, version.master_version),
            )
            data[version.version] = AESGCM(key)
        if not data:
            raise MissingKeyError(f"tenant {tenant!r} has no usable data key")
        return _TenantKeys(
            data=data,
            current_version=max(data),
            fingerprint_key=HmacSha256(derive_subkey(index, "fingerprint")),
            token_key=HmacSha256(derive_subkey(index, "token")),
            fpe_key=derive_subkey(index, "fpe"),
            loaded_at=time.monotonic(),
        )

    def _create_tenant(self, tenant: str) -> None:
        master_version = self.keys.current_version
        master = self.keys.master_key(master_version)
        now = self._now()
        tenant_row = {
            "tenant": tenant,
            "index_key": wrap_key(master, new_key(), key_aad("index", tenant, 1, master_version)),
            "index_key_version": 1,
            "index_master_version": master_version,
            "created_at": now,
        }
        key_row = {
            "tenant": tenant,
            "version": 1,
            "wrapped": wrap_key(master, new_key(), key_aad("data", tenant, 1, master_version)),
            "master_version": master_version,
            "state": KeyState.ACTIVE,
            "created_at": now,
        }
        with self._transaction() as connection:
            # Two processes may create the same tenant at once: the loser keeps the winner's.
            # RETURNING, not rowcount: with psycopg 3 an ON CONFLICT insert reports -1 rows.
            inserted = connection.execute(
                self._insert(TenantRow)
                .values(tenant_row)
                .on_conflict_do_nothing()
                .returning(TenantRow.tenant)
            ).first()
            if inserted is not None:
                connection.execute(self._insert(DataKeyRow).values(key_row))

    # -- tokenize -------------------------------------------------------------------------

    def tokenize(self, pan: str, *, tenant: str, ttl: dt.timedelta | None = None) -> PanToken:
        """The token for ``pan`` in ``tenant``: the existing one, or a new one, persisted."""
        return self.tokenize_many([pan], tenant=tenant, ttl=ttl)[0]

    def tokenize_many(
        self, pans: Sequence[str], *, tenant: str, ttl: dt.timedelta | None = None
    ) -> list[PanToken]:
        """Tokens for ``pans``, in order; new ones persisted in one transaction."""
        validate_tenant(tenant)
        check_luhn = not self.accept_luhn_invalid
        for pan in pans:
            validate_pan(pan, check_luhn=check_luhn)
        keys = self._tenant_keys(tenant, create=True)
        if keys is None:
            raise RuntimeError("internal error: expected keys is not None")
        now = self._now()
        results: list[PanToken | None] = [None] * len(pans)
        missing: dict[str, list[int]] = {}
        fingerprints: dict[str, str] = {}
        refresh = ttl is not None
        for position, pan in enumerate(pans):
            fingerprint = _fingerprint(pan, tenant, keys.fingerprint_key)
            cached = self._tokens.get((tenant, fingerprint))
            if (
                cached is not None
                and not refresh
                and (cached.expires_at is None or cached.expires_at > now)
            ):
                results[position] = cached.token
            else:
                missing.setdefault(fingerprint, []).append(position)
                fingerprints[fingerprint] = pan
        if missing:
            issued = self._issue(tenant, keys, fingerprints, now, ttl or self.ttl)
            for fingerprint, positions in missing.items():
                for position in positions:
                    results[position] = issued[fingerprint]
        return [token for token in results if token is not None]

    def _issue(
        self,
        tenant: str,
        keys: _TenantKeys,
        pans: dict[str, str],
        now: dt.datetime,
        ttl: dt.timedelta | None,
    ) -> dict[str, PanToken]:
        expires_at = None if ttl is None else now + ttl
        found: dict[str, PanToken] = {}
        pending = dict(pans)
        attempt = 0
        with self._transaction() as connection:
            rows = connection.execute(
                select(TokenRow.fingerprint, TokenRow.token, TokenRow.expires_at).where(
                    TokenRow.tenant == tenant, TokenRow.fingerprint.in_(list(pending))
                )
            ).all()
            renew = []
            for row in rows:
                token = PanToken(row.token)
                found[row.fingerprint] = token
                pending.pop(row.fingerprint)
                row_expiry = _aware(row.expires_at)
                if ttl is not None or (row_expiry is not None and row_expiry <= now):
                    renew.append(row.fingerprint)
            if renew:
                # An expired token of a card seen again comes back to life: same card, same
                # token, a new time to live.
                connection.execute(
                    update(TokenRow)
                    .where(TokenRow.tenant == tenant, TokenRow.fingerprint.in_(renew))
                    .values(expires_at=expires_at)
                )
            while pending:
                if attempt >= self._max_attempts:
                    raise TokenSpaceExhaustedError(
                        f"no free token for {len(pending)} card number(s) in tenant {tenant!r}"
                        f" after {self._max_attempts} candidate(s)"
                    )
                values = []
                candidates: dict[str, PanToken] = {}
                version = keys.current_version
                cipher = keys.data[version]
                for fingerprint, pan in pending.items():
                    token = self._candidate(pan, tenant, keys, attempt)
                    candidates[fingerprint] = token
                    nonce = secrets.token_bytes(NONCE_SIZE)
                    sealed = cipher.encrypt(
                        nonce, pan.encode("ascii"), pan_aad(tenant, token.value, version)
                    )
                    values.append(
                        {
                            "tenant": tenant,
                            "token": token.value,
                            "fingerprint": fingerprint,
                            "ciphertext": nonce + sealed,
                            "key_version": version,
                            "mode": self.mode,
                            "created_at": now,
                            "expires_at": expires_at,
                        }
                    )
                connection.execute(self._insert(TokenRow).on_conflict_do_nothing(), values)
                self._count_uses(tenant, version, len(values))
                winners = connection.execute(
                    select(TokenRow.fingerprint, TokenRow.token).where(
                        TokenRow.tenant == tenant,
                        TokenRow.fingerprint.in_(list(candidates)),
                    )
                ).all()
                for winner in winners:
                    found[winner.fingerprint] = PanToken(winner.token)
                    pending.pop(winner.fingerprint, None)
                # What is still pending lost its candidate to another card's token.
                attempt += 1
        with self._lock:
            for fingerprint, token in found.items():
                self._remember(tenant, fingerprint, token, expires_at)
        return found

    def _candidate(self, pan: str, tenant: str, keys: _TenantKeys, attempt: int) -> PanToken:
        if self.mode == "random":
            return _derive(pan, tenant, keys.token_key, attempt, self.token_policy)
        if attempt:
            raise TokenSpaceExhaustedError(
                f"the {self.mode} token of a card number in tenant {tenant!r} is held by a "
                "token of another mode; FPE tokens cannot move to another candidate"
            )
        from vault.fpe import fpe_tokenize

        first, last = self.token_policy.kept(len(pan))
        try:
            value = fpe_tokenize(
                pan, self._fpe(keys), self._fpe_tweak(tenant), keep_first=first, keep_last=last
            )
        except ValueError as exc:
            raise InvalidPanError(str(exc)) from None
        return PanToken(value)

    def _count_uses(self, tenant: str, version: int, uses: int) -> None:
        with self._lock:
            self._uses[(tenant, version)] = self._uses.get((tenant, version), 0) + uses

    def _fpe(self, keys: _TenantKeys) -> Any:
        if keys.fpe is None:
            from vault.fpe import FF1, FF3_1

            keys.fpe = FF1(keys.fpe_key) if self.mode == "ff1" else FF3_1(keys.fpe_key)
        return keys.fpe

    def _fpe_tweak(self, tenant: str) -> bytes:
        digest = derive_subkey(tenant.encode().ljust(32, b"\0")[:32], "fpe-tweak")
        return digest[:7] if self.mode == "ff3-1" else digest[:8]

    def _remember(
        self, tenant: str, fingerprint: str, token: PanToken, expires_at: dt.datetime | None
    ) -> None:
        cache = self._tokens
        cache[(tenant, fingerprint)] = _CachedToken(token, expires_at)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)

    # -- detokenize -----------------------------------------------------------------------

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str, caller: Caller) -> str:
        """The card number of ``token`` in ``tenant``, if the policy lets ``caller`` see it
        for ``purpose``; the request is audited either way."""
        return self.detokenize_many([token], tenant=tenant, purpose=purpose, caller=caller)[0]

    def detokenize_many(
        self, tokens: Sequence[PanToken], *, tenant: str, purpose: str, caller: Caller
    ) -> list[str]:
        """Card numbers of ``tokens`` in order, one audit row each, one transaction."""
        validate_tenant(tenant)
        for token in tokens:
            if not isinstance(token, PanToken):
                raise TypeError(f"token must be a PanToken, got {type(token).__name__}")
        if not isinstance(purpose, str) or not purpose.strip():
            raise ValueError("a detokenization needs a purpose (it is audited)")
        purpose_text = _mask_card_numbers(purpose)[:256]
        now = self._now()
        audit: list[dict[str, Any]] = []

        def record(token: PanToken, granted: bool, reason: str) -> None:
            audit.append(
                {
                    "at": now,
                    "tenant": tenant,
                    "caller": caller.identity[:128],
                    "purpose": purpose_text,
                    "token_masked": token.masked,
                    "granted": granted,
                    "reason": reason,
                }
            )

        if not self.policy.allows(caller, purpose, tenant=tenant):
            for token in tokens:
                record(token, False, "denied by policy")
            self._write_audit(audit)
            raise DetokenizationDeniedError(
                f"caller {caller.identity!r} may not detokenize in tenant {tenant!r} for "
                f"purpose {purpose_text!r}"
            )
        keys = self._tenant_keys(tenant, create=False)
        clear: list[str] = []
        failure: VaultError | None = None
        with self._transaction() as connection:
            rows = {}
            if keys is not None:
                rows = {
                    row.token: row
                    for row in connection.execute(
                        select(
                            TokenRow.token,
                            TokenRow.ciphertext,
                            TokenRow.key_version,
                            TokenRow.expires_at,
                        ).where(
                            TokenRow.tenant == tenant,
                            TokenRow.token.in_([t.value for t in tokens]),
                        )
                    )
                }
            for token in tokens:
                row = rows.get(token.value)
                if row is None or keys is None:
                    record(token, False, "unknown token")
                    failure = failure or UnknownTokenError(
                        f"no token {token.masked} in tenant {tenant!r}"
                    )
                    continue
                expires_at = _aware(row.expires_at)
                if expires_at is not None and expires_at <= now:
                    record(token, False, "expired")
                    failure = failure or ExpiredTokenError(
                        f"token {token.masked} in tenant {tenant!r} expired at "
                        f"{expires_at.isoformat()}"
                    )
                    continue
                try:
                    pan = self._open(
                        keys, tenant, token.value, row.key_version, row.ciphertext, connection
                    )
                except VaultError as exc:
                    record(token, False, "undecryptable")
                    failure = failure or exc
                    continue
                record(token, True, "granted")
                clear.append(pan)
            connection.execute(self._insert(AuditRow), audit)
        if failure is not None:
            raise failure
        return clear

    def _open(
        self,
        keys: _TenantKeys,
        tenant: str,
        token: str,
        version: int,
        ciphertext: bytes,
        connection: Connection | None = None,
    ) -> str:
        cipher = keys.data.get(version)
        if cipher is None:
            keys = self._tenant_keys_fresh(tenant, connection)
            cipher = keys.data.get(version)
            if cipher is None:
                raise MissingKeyError(
                    f"data key version {version} of tenant {tenant!r} is retired or missing"
                )
        try:
            plain = cipher.decrypt(
                ciphertext[:NONCE_SIZE], ciphertext[NONCE_SIZE:], pan_aad(tenant, token, version)
            )
        except InvalidTag:
            raise WrongKeyError(
                f"the card number of token {mask_pan(token)} in tenant {tenant!r} does not "
                "decrypt: the ciphertext was altered or moved from another row"
            ) from None
        return plain.decode("ascii")

    def _tenant_keys_fresh(self, tenant: str, connection: Connection | None = None) -> _TenantKeys:
        with self._lock:
            self._tenants.pop(tenant, None)
        keys = self._tenant_keys(tenant, create=False, connection=connection)
        if keys is None:
            raise MissingKeyError(f"tenant {tenant!r} has no keys (shredded?)")
        return keys

    def _write_audit(self, audit: list[dict[str, Any]]) -> None:
        if audit:
            with self._transaction() as connection:
                connection.execute(self._insert(AuditRow), audit)

    def audit_log(self, *, tenant: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        """The newest ``limit`` audit records (of ``tenant``), oldest first."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(AuditRow.tenant == tenant)
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        return [
            AuditRecord(
                at=_aware(row.at) or row.at,
                tenant=row.tenant,
                caller=row.caller,
                purpose=row.purpose,
                token_masked=row.token_masked,
                granted=row.granted,
                reason=row.reason,
            )
            for row in reversed(rows)
        ]

    # -- deletion -------------------------------------------------------------------------

    def delete_token(self, token: PanToken, *, tenant: str) -> bool:
        """Delete ``token`` of ``tenant``; ``False`` if there was none."""
        with self._transaction() as connection:
            deleted = connection.execute(
                delete(TokenRow).where(TokenRow.tenant == tenant, TokenRow.token == token.value)
            ).rowcount
        with self._lock:
            for key in [k for k, v in self._tokens.items() if k[0] == tenant and v.token == token]:
                del self._tokens[key]
        return bool(deleted)

    def purge_expired(self) -> int:
        """Delete every token past its time to live; returns how many."""
        now = self._now()
        with self._transaction() as connection:
            deleted = connection.execute(
                delete(TokenRow).where(TokenRow.expires_at.is_not(None), TokenRow.expires_at <= now)
            ).rowcount
        with self._lock:
            self._tokens.clear()
        return int(deleted)

    def shred_tenant(self, tenant: str) -> int:
        """Destroy ``tenant``'s keys and tokens (crypto-shredding); returns tokens deleted.

        Any copy of the rows made before (a backup) stays ciphertext for good: the keys that
        opened it are gone. Audit records stay; they hold no card data.
        """
        validate_tenant(tenant)
        with self._transaction() as connection:
            deleted = connection.execute(delete(TokenRow).where(TokenRow.tenant == tenant)).rowcount
            connection.execute(delete(DataKeyRow).where(DataKeyRow.tenant == tenant))
            connection.execute(delete(TenantRow).where(TenantRow.tenant == tenant))
        with self._lock:
            self._tenants.pop(tenant, None)
            for key in [k for k in self._tokens if k[0] == tenant]:
                del self._tokens[key]
        return int(deleted)

    # -- rotation -------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        """Every tenant that has keys."""
        with self._transaction() as connection:
            return list(
                connection.execute(select(TenantRow.tenant).order_by(TenantRow.tenant)).scalars()
            )

    def rotate(
        self, tenant: str, *, batch_size: int = 500, progress: Progress | None = None
    ) -> RotationReport:
        """Start data key version n+1 for ``tenant`` and re-encrypt its older rows under it.

        New tokens use the new version as soon as it is committed (this process at once,
        others within ``key_refresh``); rows are re-encrypted in batches of ``batch_size``,
        each its own transaction, so the vault keeps serving. ``progress(done, total)`` is
        called after each batch. Rows written meanwhile under an old version are picked up
        too: the loop ends when no row uses an older version.
        """
        version = self.add_data_key_version(tenant)
        if version is None:
            raise VaultError(
                f"tenant {tenant!r}: another process started a data key version at the same "
                "time; run the rotation again to re-encrypt under it"
            )
        return self.reencrypt(tenant, version, batch_size=batch_size, progress=progress)

    def add_data_key_version(self, tenant: str, *, if_current: int | None = None) -> int | None:
        """Start data key version n+1 of ``tenant``: new rows use it (this process at once,
        others within ``key_refresh``); older versions keep decrypting. Returns the version.

        With ``if_current``, only if the current version is still ``if_current``: ``None``
        when another process rotated first (the version's primary key makes the second of
        two concurrent inserts a no-op). The master key comes from the provider first, so a
        provider that is down fails the rotation before anything changes.
        """
        master_version = self.keys.current_version
        master = self.keys.master_key(master_version)
        with self._transaction() as connection:
            if (
                connection.execute(
                    select(TenantRow.tenant).where(TenantRow.tenant == tenant)
                ).one_or_none()
                is None
            ):
                raise UnknownTokenError(f"no tenant {tenant!r} in this vault")
            latest = int(
                connection.execute(
                    select(func.max(DataKeyRow.version)).where(DataKeyRow.tenant == tenant)
                ).scalar_one()
                or 0
            )
            if if_current is not None and latest != if_current:
                return None
            version = latest + 1
            inserted = connection.execute(
                self._insert(DataKeyRow)
                .values(
                    tenant=tenant,
                    version=version,
                    wrapped=wrap_key(
                        master, new_key(), key_aad("data", tenant, version, master_version)
                    ),
                    master_version=master_version,
                    state=KeyState.ACTIVE,
                    created_at=self._now(),
                    uses=0,
                )
                .on_conflict_do_nothing()
                .returning(DataKeyRow.version)
            ).first()
        if inserted is None:
            return None
        self._tenant_keys_fresh(tenant)
        return version

    def reencrypt(
        self,
        tenant: str,
        version: int,
        *,
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> RotationReport:
        """Re-encrypt ``tenant``'s rows under older versions with ``version`` (module
        documentation, Rotation)."""
        keys = self._tenant_keys_fresh(tenant)
        cipher = keys.data[version]
        with self._transaction() as connection:
            total = connection.execute(
                select(func.count())
                .select_from(TokenRow)
                .where(TokenRow.tenant == tenant, TokenRow.key_version < version)
            ).scalar_one()
        done = 0
        if progress is not None:
            progress(done, total)
        while True:
            with self._transaction() as connection:
                rows = connection.execute(
                    select(TokenRow.id, TokenRow.token, TokenRow.ciphertext, TokenRow.key_version)
                    .where(TokenRow.tenant == tenant, TokenRow.key_version < version)
                    .order_by(TokenRow.id)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                for row in rows:
                    pan = self._open(
                        keys, tenant, row.token, row.key_version, row.ciphertext, connection
                    )
                    nonce = secrets.token_bytes(NONCE_SIZE)
                    sealed = cipher.encrypt(
                        nonce, pan.encode("ascii"), pan_aad(tenant, row.token, version)
                    )
                    connection.execute(
                        update(TokenRow)
                        .where(TokenRow.id == row.id, TokenRow.key_version == row.key_version)
                        .values(ciphertext=nonce + sealed, key_version=version)
                    )
                self._count_uses(tenant, version, len(rows))
            done += len(rows)
            if progress is not None:
                progress(done, max(total, done))
        return RotationReport(tenant, version, done)

    def flush_key_uses(self) -> int:
        """Add this process's counted encryptions to the stored use counts, in one
        transaction; returns how many were written. Counts that fail to write are kept
        for the next flush."""
        with self._lock:
            pending, self._uses = self._uses, {}
        if not pending:
            return 0
        try:
            with self._transaction() as connection:
                connection.execute(
                    update(DataKeyRow)
                    .where(
                        DataKeyRow.tenant == bindparam("b_tenant"),
                        DataKeyRow.version == bindparam("b_version"),
                    )
                    .values(uses=DataKeyRow.uses + bindparam("b_uses")),
                    [
                        {"b_tenant": tenant, "b_version": version, "b_uses": uses}
                        for (tenant, version), uses in pending.items()
                    ],
                )
        except BaseException:
            with self._lock:
                for key, uses in pending.items():
                    self._uses[key] = self._uses.get(key, 0) + uses
            raise
        return sum(pending.values())

    def data_keys(self) -> list[DataKeyStatus]:
        """Each tenant's current data key version, its creation time and use count."""
        with self._transaction() as connection:
            rows = connection.execute(
                select(
                    DataKeyRow.tenant, DataKeyRow.version, DataKeyRow.created_at, DataKeyRow.uses
                )
                .where(DataKeyRow.state == KeyState.ACTIVE)
                .order_by(DataKeyRow.tenant, DataKeyRow.version.desc())
            ).all()
        with self._lock:
            pending = dict(self._uses)
        current: dict[str, DataKeyStatus] = {}
        for row in rows:
            if row.tenant not in current:
                current[row.tenant] = DataKeyStatus(
                    tenant=row.tenant,
                    version=int(row.version),
                    created_at=_aware(row.created_at) or row.created_at,
                    uses=int(row.uses or 0) + pending.get((row.tenant, row.version), 0),
                )
        return list(current.values())

    def retire_old_keys(self, tenant: str) -> list[int]:
        """Retire every data key version of ``tenant`` but the newest that no row uses.

        A retired version's wrapped key is erased: it decrypts nothing any more. A version
        still used by a row is kept (run :meth:`rotate` first). Returns the versions retired.
        """
        with self._transaction() as connection:
            versions = (
                connection.execute(
                    select(DataKeyRow.version).where(
                        DataKeyRow.tenant == tenant, DataKeyRow.state == KeyState.ACTIVE
                    )
                )
                .scalars()
                .all()
            )
            if not versions:
                return []
            newest = max(versions)
            used = set(
                connection.execute(
                    select(TokenRow.key_version).where(TokenRow.tenant == tenant).distinct()
                ).scalars()
            )
            retired = [v for v in versions if v != newest and v not in used]
            if retired:
                connection.execute(
                    update(DataKeyRow)
                    .where(DataKeyRow.tenant == tenant, DataKeyRow.version.in_(retired))
                    .values(state=KeyState.RETIRED, wrapped=b"")
                )
        self._tenant_keys_fresh(tenant)
        return sorted(retired)

    def rewrap(self, progress: Progress | None = None) -> int:
        """Re-wrap every tenant key under the provider's current master version.

        Run it after adding a master key version (the old version must still be available
        to the provider while this runs). Returns how many keys were re-wrapped.
        """
        target = self.keys.current_version
        self.keys.master_key(target)  # fails before any change if it is missing
        count = 0
        tenants = self.tenants()
        for done, tenant in enumerate(tenants, start=1):
            with self._transaction() as connection:
                row = connection.execute(select(TenantRow).where(TenantRow.tenant == tenant)).one()
                if row.index_master_version != target:
                    connection.execute(
                        update(TenantRow)
                        .where(TenantRow.tenant == tenant)
                        .values(
                            index_key=self._rewrapped(
                                row.index_key, "index", tenant, row.index_key_version,
                                row.index_master_version, target,
                            ),
                            index_master_version=target,
                        )
                    )  # fmt: skip
                    count += 1
                for key_row in connection.execute(
                    select(DataKeyRow).where(
                        DataKeyRow.tenant == tenant,
                        DataKeyRow.state == KeyState.ACTIVE,
                        DataKeyRow.master_version != target,
                    )
                ).all():
                    connection.execute(
                        update(DataKeyRow)
                        .where(DataKeyRow.tenant == tenant, DataKeyRow.version == key_row.version)
                        .values(
                            wrapped=self._rewrapped(
                                key_row.wrapped, "data", tenant, key_row.version,
                                key_row.master_version, target,
                            ),
                            master_version=target,
                        )
                    )  # fmt: skip
                    count += 1
            if progress is not None:
                progress(done, len(tenants))
        with self._lock:
            self._tenants.clear()
        return count

    def _rewrapped(
        self, wrapped: bytes, kind: str, tenant: str, version: int, old: int, new: int
    ) -> bytes:
        """A tenant key wrapped under master version ``old``, re-wrapped under ``new``."""
        key = unwrap_key(self.keys.master_key(old), wrapped, key_aad(kind, tenant, version, old))
        return wrap_key(self.keys.master_key(new), key, key_aad(kind, tenant, version, new))

    # -- verification and figures ---------------------------------------------------------

    def verify(self, *, batch_size: int = 1000, progress: Progress | None = None) -> VerifyReport:
        """Decrypt every row with the current keys; report the rows that do not open."""
        failures: list[tuple[str, str, str]] = []
        checked = 0
        with self._transaction() as connection:
            total = connection.execute(select(func.count()).select_from(TokenRow)).scalar_one()
        last_id = 0
        while True:
            with self._transaction() as connection:
                rows = connection.execute(
                    select(
                        TokenRow.id,
                        TokenRow.tenant,
                        TokenRow.token,
                        TokenRow.ciphertext,
                        TokenRow.key_version,
                    )
                    .where(TokenRow.id > last_id)
                    .order_by(TokenRow.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                break
            for row in rows:
                last_id = row.id
                checked += 1
                try:
                    keys = self._tenant_keys(row.tenant, create=False)
                    if keys is None:
                        raise MissingKeyError(f"tenant {row.tenant!r} has no keys")
                    pan = self._open(keys, row.tenant, row.token, row.key_version, row.ciphertext)
                    if not (pan.isdigit() and len(pan) == len(row.token)):
                        raise WrongKeyError(
                            "decrypted value is not a card number of the token's length"
                        )
                    if self.accept_luhn_invalid is False and not luhn_valid(pan):
                        raise WrongKeyError("decrypted card number fails the Luhn check")
                except VaultError as exc:
                    failures.append((row.tenant, mask_pan(row.token), str(exc)))
            if progress is not None:
                progress(checked, max(total, checked))
        return VerifyReport(checked, tuple(failures))

    def stats(self) -> list[TenantStats]:
        """Per-tenant figures: tokens, expired tokens, rows per key version, audit counts."""
        now = self._now()
        result = []
        with self._transaction() as connection:
            for tenant in connection.execute(
                select(TenantRow.tenant).order_by(TenantRow.tenant)
            ).scalars():
                by_version = {
                    int(version): int(count)
                    for version, count in connection.execute(
                        select(TokenRow.key_version, func.count())
                        .where(TokenRow.tenant == tenant)
                        .group_by(TokenRow.key_version)
                    )
                }
                expired = connection.execute(
                    select(func.count())
                    .select_from(TokenRow)
                    .where(
                        TokenRow.tenant == tenant,
                        TokenRow.expires_at.is_not(None),
                        TokenRow.expires_at <= now,
                    )
                ).scalar_one()
                key_rows = connection.execute(
                    select(DataKeyRow.version, DataKeyRow.state, DataKeyRow.master_version).where(
                        DataKeyRow.tenant == tenant
                    )
                ).all()
                audit = {
                    bool(granted): int(count)
                    for granted, count in connection.execute(
                        select(AuditRow.granted, func.count())
                        .where(AuditRow.tenant == tenant)
                        .group_by(AuditRow.granted)
                    )
                }
                result.append(
                    TenantStats(
                        tenant=tenant,
                        tokens=sum(by_version.values()),
                        expired=int(expired),
                        rows_by_key_version={int(k): int(v) for k, v in by_version.items()},
                        key_versions={int(r.version): r.state for r in key_rows},
                        master_versions=tuple(sorted({int(r.master_version) for r in key_rows})),
                        detokenizations_granted=int(audit.get(True, 0)),
                        detokenizations_refused=int(audit.get(False, 0)),
                    )
                )
        return result


def _mask_card_numbers(text: str) -> str:
    from canonical_model.pan import find_clear_pans

    for pan in find_clear_pans(text):
        text = text.replace(pan, mask_pan(pan))
    return text


def _db_reason(exc: SQLAlchemyError) -> str:
    # The driver's message names the server and the failure; statements and parameters
    # (which may hold ciphertext or tokens) are left out.
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
