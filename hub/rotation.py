"""Key rotation schedules: a policy per key family that the running hub and gateway enforce.

PCI DSS v4.0 requirement 3.6.4 asks for cryptographic keys to be changed at the end of a
defined cryptoperiod; NIST SP 800-57 part 1 (rev. 5, section 5.3) defines that period by
time and by the amount of data a key protected. A :class:`RotationPolicy` says both for one
key family (``[[keys.policies]]`` in ``hub.toml``, :func:`keys_config`): ``max_age`` seconds
and ``max_uses`` encryptions or signatures of the active key. The families:

======================  =====================================================================
family                  key, scope, what a rotation does
======================  =====================================================================
``vault.data``          each tenant's vault data key
                        (:meth:`vault.sql.SqlVault.add_data_key_version`): a new version
                        encrypts new card numbers at once, older versions keep decrypting
                        their rows (re-encrypting them and retiring old versions stays
                        ``isobridge vault rotate --retire``); uses = card numbers encrypted
``authserver.signing``  the built-in authorization server's signing key
                        (``AuthorizationServer.rotate_on_schedule``):
                        the new key is in the JWKS ``[keys] jwks_prepublish`` seconds before
                        it signs, the old one stays there until every token it signed has
                        expired; uses = tokens signed
``journal.tenant``      each tenant's journal key for personal parts
                        (:meth:`journal.store.Journal.rotate_tenant_key`): new events use the
                        new version, older events keep decrypting (crypto-shredding destroys
                        every version); by age only (``max_uses`` is refused: the journal
                        does not count them)
======================  =====================================================================

The journal's checkpoint signing key is derived from the master key version, so it changes
with the master key (``isobridge vault rotate --master``), not on a schedule.

:class:`RotationScheduler` runs in the hub (:class:`hub.service.HubService`: vault data keys)
and in the gateway (``isobridge gateway``: signing keys) as an asyncio task. Every
``check_interval`` seconds it writes the use counts counted in memory (one transaction per
family: the hot path only adds to a counter), reads each active key's age and uses, and
rotates those a policy says are due, on a thread. Several processes may be due at once: a
rotation names the key it replaces and the database refuses the second one (a conditional
insert on the key's version, a lock for the signing keys), which is then ``skipped``; the
other processes pick the new key up when they next read their keys.

Every rotation and every failed one is a log line (logger ``isobridge.keys``, with
``family``, ``scope``, ``old_key``, ``new_key``, ``reason``, ``outcome``), an event of kind
``key_rotation`` in the journal when there is one, and the metrics of
:class:`observability.metrics.KeyRotationMetrics`. A rotation that cannot complete (key
provider down, database unreachable) changes nothing: the current key stays in use, the
failure is logged as an error and counted (``outcome="failed"``), the family shows as
failing (:attr:`RotationScheduler.failing`, the gateway's ``/readyz`` probe ``key_rotation``)
and it is retried after ``retry_initial`` seconds, doubling up to ``retry_max``. Nothing ever
falls back to no key or a weaker one.

>>> RotationPolicy("vault.data", max_age=90 * 86400.0).due(age=91 * 86400.0, uses=0)
'max_age'
>>> RotationPolicy("vault.data", max_uses=1000).due(age=0.0, uses=999) is None
True
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from canonical_model.pan import random_hex_id
from journal.events import Event, EventKind, TransactionIds
from observability.metrics import KeyRotationMetrics

if TYPE_CHECKING:
    from gateway.security.authserver import AuthorizationServer
    from hub.config_file import TableReader
    from journal.store import Journal
    from vault.sql import SqlVault

__all__ = [
    "FAMILIES",
    "ActiveKey",
    "JournalTenantKeys",
    "KeyFamily",
    "KeyStatus",
    "KeysConfig",
    "RotationPolicy",
    "RotationProbe",
    "RotationResult",
    "RotationScheduler",
    "SigningKeys",
    "VaultDataKeys",
    "keys_config",
    "parse_duration",
]

FAMILIES: Final = ("vault.data", "authserver.signing", "journal.tenant")
"""The key families a policy may name."""

Outcome = Literal["rotated", "skipped", "failed"]
_TENANT_SCOPED: Final = ("vault.data", "journal.tenant")

_log = logging.getLogger("isobridge.keys")
_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a text ``"90d"``, ``"12h"``, ``"30m"``, ``"45s"``.

    >>> parse_duration("90d"), parse_duration(1.5)
    (7776000.0, 1.5)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value[-1:] in _UNITS and value[:-1].strip():
        try:
            seconds = float(value[:-1]) * _UNITS[value[-1]]
        except ValueError:
            raise ValueError(f"{value!r} is not a duration (90d, 12h, 30m, 45s)") from None
    else:
        raise ValueError(f"{value!r} is not a duration (seconds, or 90d, 12h, 30m, 45s)")
    if not seconds > 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    return seconds


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    """When the active key of ``family`` is due: older than ``max_age`` seconds or used
    ``max_uses`` times (either; ``None`` is no limit)."""

    family: str
    max_age: float | None = None
    max_uses: int | None = None

    def due(self, *, age: float, uses: int) -> str | None:
        """Why a key of ``age`` seconds and ``uses`` uses is due (``max_age`` /
        ``max_uses``), or ``None``."""
        if self.max_age is not None and age >= self.max_age:
            return "max_age"
        if self.max_uses is not None and uses >= self.max_uses:
            return "max_uses"
        return None

    def next_due(self, created_at: float) -> float | None:
        """When a key made at ``created_at`` reaches ``max_age`` (epoch seconds)."""
        return None if self.max_age is None else created_at + self.max_age


@dataclass(frozen=True, slots=True)
class KeysConfig:
    """``[keys]``: the policies and how the scheduler runs (see :func:`keys_config`)."""

    policies: tuple[RotationPolicy, ...] = ()
    check_interval: float = 60.0
    retry_initial: float = 5.0
    retry_max: float = 600.0
    jwks_prepublish: float = 300.0

    def policy(self, family: str) -> RotationPolicy | None:
        """The policy of ``family``, if one is configured."""
        return next((p for p in self.policies if p.family == family), None)


def keys_config(reader: TableReader, table: Mapping[str, Any]) -> KeysConfig:
    """``[keys]`` of a configuration file, checked; errors name the key::

    [keys]
    check_interval = 60.0          # seconds between checks of the policies
    retry_initial = 5.0            # a failed rotation is retried after this, doubling ...
    retry_max = 600.0              # ... up to this
    jwks_prepublish = 300.0        # a new signing key is in the JWKS this long before it
                                   # signs (at least the JWKS cache time of verifiers)
    [[keys.policies]]
    family = "vault.data"          # vault.data | authserver.signing | journal.tenant
    max_age = "90d"                # seconds, or 90d / 12h / 30m / 45s
    max_uses = 1000000             # encryptions / signatures of the active key
    """
    reader.known(
        table,
        "keys",
        ("check_interval", "retry_initial", "retry_max", "jwks_prepublish", "policies"),
    )
    defaults = KeysConfig()

    def duration(where: str, key: str, source: Mapping[str, Any], default: float) -> float:
        if key not in source:
            return default
        try:
            return parse_duration(source[key])
        except ValueError as exc:
            raise reader.fail(where, str(exc)) from None

    policies: list[RotationPolicy] = []
    for where, entry in reader.array_of_tables(table.get("policies", []), "keys.policies"):
        reader.known(entry, where, ("family", "max_age", "max_uses"))
        family = entry.get("family")
        if family not in FAMILIES:
            raise reader.fail(
                f"{where}.family", f"{family!r} is not a key family ({', '.join(FAMILIES)})"
            )
        if any(policy.family == family for policy in policies):
            raise reader.fail(f"{where}.family", f"{family!r} has a policy already")
        max_age = duration(f"{where}.max_age", "max_age", entry, 0.0) or None
        max_uses = entry.get("max_uses")
        if max_uses is not None and (
            isinstance(max_uses, bool) or not isinstance(max_uses, int) or max_uses < 1
        ):
            raise reader.fail(f"{where}.max_uses", f"{max_uses!r} is not a positive integer")
        if max_age is None and max_uses is None:
            raise reader.fail(where, "a policy needs max_age, max_uses or both")
        if family == "journal.tenant" and max_uses is not None:
            raise reader.fail(
                f"{where}.max_uses", "journal.tenant keys rotate by age only (max_age)"
            )
        policies.append(RotationPolicy(str(family), max_age, max_uses))
    retry_initial = duration("keys.retry_initial", "retry_initial", table, defaults.retry_initial)
    retry_max = duration("keys.retry_max", "retry_max", table, defaults.retry_max)
    if retry_max < retry_initial:
        raise reader.fail("keys.retry_max", "must not be less than keys.retry_initial")
    return KeysConfig(
        tuple(policies),
        duration("keys.check_interval", "check_interval", table, defaults.check_interval),
        retry_initial,
        retry_max,
        duration("keys.jwks_prepublish", "jwks_prepublish", table, defaults.jwks_prepublish),
    )


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """The key of ``family`` that ``scope`` (a tenant; ``""`` for one key) uses now."""

    family: str
    scope: str
    key_id: str
    created_at: float
    uses: int


class KeyFamily(Protocol):
    """What the scheduler needs of a family of keys."""

    @property
    def name(self) -> str: ...

    def flush_uses(self) -> None:
        """Write the uses counted in memory (one transaction)."""
        ...

    def active_keys(self) -> list[ActiveKey]:
        """The key each scope uses now."""
        ...

    def rotate(self, key: ActiveKey) -> str | None:
        """Replace ``key``: the new key's id, or ``None`` if another process replaced it
        first. Raises when the rotation cannot complete; then nothing changed."""
        ...


class VaultDataKeys:
    """The vault's tenant data keys as a key family (``vault.data``)."""

    name: Final = "vault.data"

    def __init__(self, vault: SqlVault) -> None:
        self.vault = vault

    def flush_uses(self) -> None:
        self.vault.flush_key_uses()

    def active_keys(self) -> list[ActiveKey]:
        return [
            ActiveKey(self.name, key.tenant, str(key.version), key.created_at.timestamp(), key.uses)
            for key in self.vault.data_keys()
        ]

    def rotate(self, key: ActiveKey) -> str | None:
        version = self.vault.add_data_key_version(key.scope, if_current=int(key.key_id))
        return None if version is None else str(version)


class SigningKeys:
    """The built-in authorization server's signing keys as a key family
    (``authserver.signing``); a new key is published ``prepublish`` seconds before it
    signs."""

    name: Final = "authserver.signing"

    def __init__(self, server: AuthorizationServer, *, prepublish: float) -> None:
        self.server = server
        self.prepublish = prepublish

    def flush_uses(self) -> None:
        self.server.flush_uses()

    def active_keys(self) -> list[ActiveKey]:
        records = self.server.key_records()
        if not records:
            return []
        # The newest key is the one the schedule is about: once a successor is published
        # (pre-published, not yet signing) the old key is no longer due.
        newest = records[0]
        return [ActiveKey(self.name, "", newest.key.kid, newest.activates_at, newest.uses)]

    def rotate(self, key: ActiveKey) -> str | None:
        new = self.server.rotate_on_schedule(prepublish=self.prepublish, if_current=key.key_id)
        return None if new is None else new.kid


class JournalTenantKeys:
    """The journal's tenant keys as a key family (``journal.tenant``), by age only."""

    name: Final = "journal.tenant"

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def flush_uses(self) -> None:
        """Nothing to write: the journal does not count uses."""

    def active_keys(self) -> list[ActiveKey]:
        return [
            ActiveKey(self.name, tenant, str(version), created.timestamp(), 0)
            for tenant, version, created in self.journal.tenant_keys()
        ]

    def rotate(self, key: ActiveKey) -> str | None:
        version = self.journal.rotate_tenant_key(key.scope, if_current=int(key.key_id))
        return None if version is None else str(version)


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What one rotation did."""

    family: str
    scope: str
    old_key: str
    new_key: str | None
    reason: str
    outcome: Outcome
    error: str | None = None


@dataclass(slots=True)
class _Failing:
    attempts: int
    retry_at: float
    error: str


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """One active key as ``isobridge keys status`` shows it."""

    key: ActiveKey
    age: float
    policy: RotationPolicy | None
    next_due: float | None
    failing: str | None = None


@dataclass
class RotationScheduler:
    """See the module docstring. :meth:`check` is one pass (tests call it with their own
    clock); :meth:`run` repeats it until stopped."""

    families: Sequence[KeyFamily]
    config: KeysConfig
    metrics: KeyRotationMetrics | None = None
    journal: Journal | None = None
    audit_tenant: str = "default"
    clock: Callable[[], float] = time.time
    _failing: dict[tuple[str, str], _Failing] = field(default_factory=dict)

    @property
    def failing(self) -> dict[tuple[str, str], str]:
        """(family, scope) of the rotations failing now, with the last error."""
        return {where: state.error for where, state in self._failing.items()}

    def status(self) -> list[KeyStatus]:
        """Every active key of every family, its age and when it is due next."""
        now = self.clock()
        result = []
        for family in self.families:
            policy = self.config.policy(family.name)
            for key in family.active_keys():
                failing = self._failing.get((key.family, key.scope))
                result.append(
                    KeyStatus(
                        key,
                        max(0.0, now - key.created_at),
                        policy,
                        None if policy is None else policy.next_due(key.created_at),
                        None if failing is None else failing.error,
                    )
                )
        return result

    def check(self) -> list[RotationResult]:
        """Flush the use counts, then rotate every key a policy says is due (and whose
        retry time, after a failure, has come)."""
        results: list[RotationResult] = []
        for family in self.families:
            policy = self.config.policy(family.name)
            now = self.clock()
            try:
                family.flush_uses()
                keys = family.active_keys()
            except Exception as exc:
                if self._retry_pending((family.name, "*"), now):
                    continue
                results.append(self._failed(family.name, "*", "?", "check", exc, now))
                continue
            self._clear((family.name, "*"))
            if self.metrics is not None:
                self.metrics.reset(family.name)
            for key in keys:
                age = max(0.0, now - key.created_at)
                if self.metrics is not None:
                    self.metrics.observe_key(family.name, age=age, uses=key.uses)
                reason = None if policy is None else policy.due(age=age, uses=key.uses)
                if reason is None or self._retry_pending((key.family, key.scope), now):
                    continue
                results.append(self.rotate(family, key, reason))
        return results

    def rotate(self, family: KeyFamily, key: ActiveKey, reason: str) -> RotationResult:
        """Replace ``key`` now (a policy's ``reason``, or ``manual``), reported."""
        now = self.clock()
        try:
            new_key = family.rotate(key)
        except Exception as exc:
            return self._failed(family.name, key.scope, key.key_id, reason, exc, now)
        self._clear((family.name, key.scope))
        result = RotationResult(
            family.name,
            key.scope,
            key.key_id,
            new_key,
            reason,
            "rotated" if new_key is not None else "skipped",
        )
        self._report(result, now)
        return result

    def rotate_family(self, name: str, *, scope: str | None = None) -> list[RotationResult]:
        """Rotate every active key of family ``name`` (of ``scope`` only, if given) now."""
        family = next((f for f in self.families if f.name == name), None)
        if family is None:
            known = ", ".join(f.name for f in self.families)
            raise ValueError(f"{name!r} is not a key family here (known: {known})")
        family.flush_uses()
        keys = [k for k in family.active_keys() if scope is None or k.scope == scope]
        if scope is not None and not keys:
            raise ValueError(f"{name}: no key of scope {scope!r}")
        return [self.rotate(family, key, "manual") for key in keys]

    async def run(self, stop: asyncio.Event) -> None:
        """:meth:`check` every ``check_interval`` seconds (on a thread) until ``stop``."""
        while not stop.is_set():
            await asyncio.to_thread(self.check)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.check_interval)
        await asyncio.to_thread(self._final_flush)

    def _final_flush(self) -> None:
        for family in self.families:
            try:
                family.flush_uses()
            except Exception as exc:
                _log.warning("key uses of %s not written at shutdown: %s", family.name, exc)

    # -- failures and reports

    def _retry_pending(self, where: tuple[str, str], now: float) -> bool:
        state = self._failing.get(where)
        return state is not None and now < state.retry_at

    def _clear(self, where: tuple[str, str]) -> None:
        if self._failing.pop(where, None) is not None and self.metrics is not None:
            self.metrics.failing(where[0], any(f == where[0] for f, _ in self._failing))

    def _failed(
        self, family: str, scope: str, old_key: str, reason: str, exc: Exception, now: float
    ) -> RotationResult:
        where = (family, scope)
        previous = self._failing.get(where)
        attempts = 1 if previous is None else previous.attempts + 1
        delay = min(self.config.retry_max, self.config.retry_initial * 2 ** (attempts - 1))
        error = f"{type(exc).__name__}: {exc}"[:500]
        self._failing[where] = _Failing(attempts, now + delay, error)
        if self.metrics is not None:
            self.metrics.failing(family, True)
        result = RotationResult(family, scope, old_key, None, reason, "failed", error)
        self._report(result, now, retry_in=delay)
        return result

    def _report(self, result: RotationResult, now: float, *, retry_in: float | None = None) -> None:
        fields = {
            "family": result.family,
            "scope": result.scope,
            "old_key": result.old_key,
            "new_key": result.new_key or "",
            "reason": result.reason,
            "outcome": result.outcome,
        }
        if result.outcome == "failed":
            _log.error(
                "key rotation of %s%s failed, the current key %s stays in use; retry in %.0f s: %s",
                result.family,
                f" ({result.scope})" if result.scope else "",
                result.old_key,
                retry_in or 0.0,
                result.error,
                extra={**fields, "error": result.error or ""},
            )
        else:
            _log.info(
                "key rotation of %s%s: %s -> %s (%s, %s)",
                result.family,
                f" ({result.scope})" if result.scope else "",
                result.old_key,
                result.new_key or "(by another process)",
                result.reason,
                result.outcome,
                extra=fields,
            )
        if self.metrics is not None:
            self.metrics.rotated(result.family, result.outcome)
        if self.journal is not None and result.outcome != "skipped":
            self._audit(result, now)

    def _audit(self, result: RotationResult, now: float) -> None:
        body: dict[str, Any] = {
            "family": result.family,
            "scope": result.scope,
            "old_key": result.old_key,
            "new_key": result.new_key,
            "reason": result.reason,
            "outcome": result.outcome,
        }
        if result.error is not None:
            body["error"] = result.error
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        event = Event(
            EventKind.KEY_ROTATION,
            result.scope if result.family in _TENANT_SCOPED and result.scope else self.audit_tenant,
            TransactionIds(f"key-rotation-{random_hex_id()}"),
            at,
            body,
        )
        try:
            if self.journal is not None:
                self.journal.record([event])
        except Exception as exc:
            _log.error("key rotation of %s not journaled: %s", result.family, exc)


class RotationProbe:
    """The gateway's readiness probe ``key_rotation``: not ready while a rotation fails."""

    def __init__(self, scheduler: RotationScheduler | None = None) -> None:
        self.name = "key_rotation"
        self.scheduler = scheduler

    async def ready(self) -> bool:
        """Whether no rotation is failing (true before a scheduler is attached)."""
        return self.scheduler is None or not self.scheduler.failing
