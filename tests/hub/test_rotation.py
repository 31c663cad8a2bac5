"""Key rotation schedules on real SQLite and PostgreSQL databases, with an injected clock:
policies by age and by uses, rows and tokens from before a rotation still open after it,
JWKS pre-publication and overlap, rotation under load with nothing refused, a key provider
that is down, and several processes that are due at once rotating once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.engine import Engine

from canonical_model.pan import PanToken, contains_clear_pan
from canonical_model.random_ids import token_hex
from gateway.consents import ConsentStore
from gateway.ports import AccountDirectory
from gateway.security.authserver import AuthorizationServer, ClientRegistration
from gateway.security.authstate import AuthorizationState
from gateway.security.jose import JoseError, PublicJwk, parse_compact, verify_signature
from gateway.store import create_engine as gateway_create_engine
from gateway.store import upgrade as gateway_upgrade
from hub.config_file import ConfigError, TableReader
from hub.rotation import (
    JournalTenantKeys,
    KeysConfig,
    RotationPolicy,
    RotationProbe,
    RotationScheduler,
    SigningKeys,
    VaultDataKeys,
    keys_config,
)
from journal import Event, EventKind, Journal, Sealed, TransactionIds
from journal.keys import StaticMasterKeys
from journal.migrate import upgrade as journal_upgrade
from observability.metrics import KeyRotationMetrics
from tests.support import migrated_database
from tests.vault.conftest import master_keys
from tests.vault.strategies import luhn_pans
from vault.errors import KeyProviderError
from vault.keys import KeyProvider
from vault.migrate import upgrade as vault_upgrade
from vault.policy import Caller
from vault.schema import DataKeyRow
from vault.sql import SqlVault

DAY = 86400.0
START = 1_800_000_000.0
OPERATOR = Caller("ops-1", frozenset({"operator"}))
CLIENT = ClientRegistration("tpp-1", "tpp-1", frozenset({"accounts"}))


class Clock:
    """The tests' time: epoch seconds, moved by hand, shared by every part."""

    def __init__(self) -> None:
        self.now = START
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def utc(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now, dt.UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class SwitchableKms:
    """A key provider in front of real master keys that can be taken down, as a KMS that
    stops answering: while down, every master key request raises."""

    def __init__(self, inner: KeyProvider) -> None:
        self.inner = inner
        self.down = False
        self.requests = 0

    @property
    def current_version(self) -> int:
        return self.inner.current_version

    def versions(self) -> tuple[int, ...]:
        return self.inner.versions()

    def master_key(self, version: int) -> bytes:
        self.requests += 1
        if self.down:
            raise KeyProviderError("KMS unreachable: connection refused")
        return self.inner.master_key(version)


class Interleave:
    """Load and rotations taking turns without timing: the rotator steps once at least
    ``each`` operations were done since its last step, and workers wait while ``2 * each``
    are, so every step falls in the middle of the load however fast either side runs."""

    def __init__(self, each: int, workers: int) -> None:
        self.each = each
        self.count = 0
        self.workers_left = workers
        self.rotating = True
        self.steps = 0
        self._turn = threading.Condition()

    def operation(self) -> None:
        """Before an operation of the load."""
        with self._turn:
            self._turn.wait_for(lambda: self.count < 2 * self.each or not self.rotating)
            self.count += 1
            self._turn.notify_all()

    def worker_finished(self) -> None:
        with self._turn:
            self.workers_left -= 1
            self._turn.notify_all()

    def step(self) -> bool:
        """Before a rotator step: whether the load is still running."""
        with self._turn:
            self._turn.wait_for(lambda: self.count >= self.each or not self.workers_left)
            return self.workers_left > 0

    def stepped(self) -> None:
        with self._turn:
            self.count = 0
            self.steps += 1
            self._turn.notify_all()

    def stop(self) -> None:
        with self._turn:
            self.rotating = False
            self._turn.notify_all()

    def rotate(self, steps: int, step: Callable[[], None], failures: list[BaseException]) -> None:
        """The rotator thread's body: ``steps`` steps, each in the middle of the load."""
        try:
            for _ in range(steps):
                if not self.step():
                    break
                step()
                self.stepped()
        except BaseException as exc:
            failures.append(exc)
        finally:
            self.stop()


# -- databases ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def vault_db(kind: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with migrated_database(kind, tmp_path, "vault", SqlVault.create_engine, vault_upgrade) as db:
        yield db


@pytest.fixture
def gateway_db(kind: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with migrated_database(kind, tmp_path, "gateway", gateway_create_engine, gateway_upgrade) as db:
        yield db


@pytest.fixture
def clock() -> Clock:
    return Clock()


VaultMaker = Callable[..., SqlVault]


@pytest.fixture
def make_vault(vault_db: tuple[str, dict[str, Any]], clock: Clock) -> Iterator[VaultMaker]:
    """Vaults on one database, each with an engine of its own, like hub processes."""
    url, options = vault_db
    opened: list[SqlVault] = []

    def build(keys: KeyProvider | None = None, **vault_options: Any) -> SqlVault:
        vault = SqlVault(
            SqlVault.create_engine(url, **options),
            keys or master_keys(1),
            now=clock.utc,
            **vault_options,
        )
        opened.append(vault)
        return vault

    yield build
    for vault in opened:
        vault.close()


ServerMaker = Callable[..., AuthorizationServer]


@pytest.fixture
def make_server(gateway_db: tuple[str, dict[str, Any]], clock: Clock) -> Iterator[ServerMaker]:
    """Built-in authorization servers on one database, like gateway processes."""
    url, options = gateway_db
    engines: list[Engine] = []

    def build(**server_options: Any) -> AuthorizationServer:
        engine = gateway_create_engine(url, **options)
        engines.append(engine)
        return AuthorizationServer(
            issuer="https://as.isobridge.test",
            audience="https://api.isobridge.test",
            clients=[CLIENT],
            consents=ConsentStore(engine),
            directory=AccountDirectory([]),
            state=AuthorizationState(engine, clock=clock),
            clock=clock,
            **server_options,
        )

    yield build
    for engine in engines:
        engine.dispose()


def _metrics() -> tuple[KeyRotationMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return KeyRotationMetrics(registry), registry


def _rotations(registry: CollectorRegistry, family: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "isobridge_key_rotations_total", {"family": family, "outcome": outcome}
    )
    return value or 0.0


def _failing(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("isobridge_key_rotation_failing", {"family": "vault.data"})


def _journal(tmp_path: Path) -> Journal:
    return Journal.open(
        f"sqlite:///{tmp_path / 'journal.db'}", StaticMasterKeys({1: bytes(32)}), create=True
    )


# -- vault data keys -----------------------------------------------------------------------


def test_a_data_key_past_its_max_age_rotates_and_every_older_row_still_decrypts(
    make_vault: VaultMaker, clock: Clock, tmp_path: Path
) -> None:
    vault = make_vault()
    cards = luhn_pans(40, seed=3)
    before = vault.tokenize_many(cards[:20], tenant="acme")
    vault.tokenize_many(cards[20:25], tenant="globex")
    metrics, registry = _metrics()
    journal = _journal(tmp_path)
    scheduler = RotationScheduler(
        [VaultDataKeys(vault)],
        KeysConfig((RotationPolicy("vault.data", max_age=30 * DAY),)),
        metrics=metrics,
        journal=journal,
        clock=clock,
    )
    clock.advance(29 * DAY)
    assert scheduler.check() == []
    assert registry.get_sample_value("isobridge_key_age_seconds", {"family": "vault.data"}) == (
        29 * DAY
    )
    clock.advance(DAY)
    results = scheduler.check()
    assert sorted((r.scope, r.old_key, r.new_key, r.reason, r.outcome) for r in results) == [
        ("acme", "1", "2", "max_age", "rotated"),
        ("globex", "1", "2", "max_age", "rotated"),
    ]
    after = vault.tokenize_many(cards[25:], tenant="acme")
    stats = {s.tenant: s for s in vault.stats()}
    assert stats["acme"].rows_by_key_version == {1: 20, 2: 15}
    reader = make_vault()  # another process, from the database alone
    assert reader.detokenize_many(
        [*before, *after], tenant="acme", purpose="t", caller=OPERATOR
    ) == [
        *cards[:20],
        *cards[25:],
    ]
    assert vault.verify().ok
    assert scheduler.check() == []  # the new keys are young
    assert _rotations(registry, "vault.data", "rotated") == 2
    audited = [e for e in journal.events() if e.kind is EventKind.KEY_ROTATION]
    assert sorted((e.tenant, e.body["old_key"], e.body["new_key"]) for e in audited) == [
        ("acme", "1", "2"),
        ("globex", "1", "2"),
    ]
    journal.close()


def test_a_rotation_is_journaled_even_when_a_random_id_drawn_looks_like_a_card_number(
    make_vault: VaultMaker, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit event's id is random: a draw that holds a Luhn-valid run (one in some 600
    for 32 hex digits) must not make the journal refuse the event as a clear card number."""
    vault = make_vault()
    vault.tokenize_many(luhn_pans(2, seed=5), tenant="acme")
    journal = _journal(tmp_path)
    scheduler = RotationScheduler(
        [VaultDataKeys(vault)],
        KeysConfig((RotationPolicy("vault.data", max_age=30 * DAY),)),
        journal=journal,
        clock=clock,
    )
    clock.advance(30 * DAY)
    looks_like_a_pan = "4111111111111111abcdefabcdefabcd"
    draws = iter([looks_like_a_pan])
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(hex=looks_like_a_pan))
    monkeypatch.setattr(
        "canonical_model.pan.token_hex", lambda size: next(draws, None) or token_hex(size)
    )
    assert [(r.scope, r.outcome) for r in scheduler.check()] == [("acme", "rotated")]
    audited = [e for e in journal.events() if e.kind is EventKind.KEY_ROTATION]
    assert [(e.tenant, e.body["old_key"], e.body["new_key"]) for e in audited] == [
        ("acme", "1", "2")
    ]
    assert not contains_clear_pan(audited[0].ids.transaction_id)
    journal.close()


def test_a_data_key_used_max_uses_times_rotates_with_counts_written_in_batches(
    make_vault: VaultMaker, clock: Clock
) -> None:
    vault = make_vault()
    other = make_vault()
    cards = luhn_pans(30, seed=4)
    scheduler = RotationScheduler(
        [VaultDataKeys(vault), VaultDataKeys(other)],
        KeysConfig((RotationPolicy("vault.data", max_uses=25),)),
        clock=clock,
    )
    vault.tokenize_many(cards[:12], tenant="acme")
    other.tokenize_many(cards[12:24], tenant="acme")
    vault.tokenize_many(cards[:12], tenant="acme")  # known cards: no encryption, no use
    with vault.engine.connect() as connection:
        stored = connection.execute(select(DataKeyRow.uses)).scalar_one()
    assert stored == 0  # counted in memory only, no write per use
    assert [k.uses for k in vault.data_keys()] == [12]
    assert scheduler.check() == []  # 24 uses, both processes' counts flushed
    with vault.engine.connect() as connection:
        assert connection.execute(select(DataKeyRow.uses)).scalar_one() == 24
    other.tokenize(cards[24], tenant="acme")
    (result,) = scheduler.check()
    assert (result.old_key, result.new_key, result.reason) == ("1", "2", "max_uses")
    assert [(k.version, k.uses) for k in vault.data_keys()] == [(2, 0)]


def test_two_processes_due_at_once_rotate_once(make_vault: VaultMaker, clock: Clock) -> None:
    first = make_vault()
    first.tokenize(luhn_pans(1, seed=5)[0], tenant="acme")
    config = KeysConfig((RotationPolicy("vault.data", max_age=DAY),))
    schedulers = [
        RotationScheduler([VaultDataKeys(make_vault())], config, clock=clock) for _ in range(6)
    ]
    clock.advance(2 * DAY)
    start = threading.Barrier(len(schedulers))

    def check(scheduler: RotationScheduler) -> list[str]:
        start.wait()
        return [r.outcome for r in scheduler.check()]

    with ThreadPoolExecutor(len(schedulers)) as pool:
        outcomes = [o for found in pool.map(check, schedulers) for o in found]
    assert outcomes.count("rotated") == 1
    assert set(outcomes) <= {"rotated", "skipped"}
    assert first.stats()[0].key_versions == {1: "active", 2: "active"}
    # A process that saw version 1 as current and rotates late changes nothing.
    family = VaultDataKeys(first)
    (stale,) = family.active_keys()
    assert stale.key_id == "2"
    late = RotationScheduler([family], config, clock=clock)
    old = type(stale)(stale.family, stale.scope, "1", stale.created_at, stale.uses)
    assert late.rotate(family, old, "max_age").outcome == "skipped"
    assert first.stats()[0].key_versions == {1: "active", 2: "active"}


def test_a_key_provider_that_is_down_fails_the_rotation_visibly_keeps_the_key_and_is_retried(
    make_vault: VaultMaker, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kms = SwitchableKms(master_keys(1))
    vault = make_vault(kms)
    cards = luhn_pans(10, seed=6)
    tokens = vault.tokenize_many(cards[:5], tenant="acme")
    metrics, registry = _metrics()
    journal = _journal(tmp_path)
    scheduler = RotationScheduler(
        [VaultDataKeys(vault)],
        KeysConfig(
            (RotationPolicy("vault.data", max_age=DAY),), retry_initial=60.0, retry_max=200.0
        ),
        metrics=metrics,
        journal=journal,
        clock=clock,
    )
    probe = RotationProbe(scheduler)
    clock.advance(2 * DAY)
    kms.down = True
    with caplog.at_level(logging.ERROR, logger="isobridge.keys"):
        (failed,) = scheduler.check()
    assert failed.outcome == "failed" and failed.new_key is None
    assert failed.error is not None and "KMS unreachable" in failed.error
    (line,) = [r for r in caplog.records if r.name == "isobridge.keys"]
    assert line.levelno == logging.ERROR and "the current key 1 stays in use" in line.getMessage()
    assert (line.__dict__["outcome"], line.__dict__["family"]) == ("failed", "vault.data")
    assert _rotations(registry, "vault.data", "failed") == 1
    assert (
        registry.get_sample_value("isobridge_key_rotation_failing", {"family": "vault.data"}) == 1
    )
    assert scheduler.failing == {("vault.data", "acme"): failed.error}
    assert asyncio.run(probe.ready()) is False
    # Nothing changed: the current key stays, tokenizing and detokenizing go on with it.
    assert vault.stats()[0].key_versions == {1: "active"}
    more = vault.tokenize_many(cards[5:], tenant="acme")
    assert vault.stats()[0].rows_by_key_version == {1: 10}
    assert vault.detokenize_many([*tokens, *more], tenant="acme", purpose="t", caller=OPERATOR) == (
        cards
    )
    # Retried after the back-off, not before; the delay doubles.
    requests = kms.requests
    clock.advance(59.0)
    assert scheduler.check() == [] and kms.requests == requests
    clock.advance(1.0)
    assert [r.outcome for r in scheduler.check()] == ["failed"]
    clock.advance(119.0)
    assert scheduler.check() == []
    kms.down = False
    clock.advance(1.0)
    (rotated,) = scheduler.check()
    assert (rotated.outcome, rotated.new_key) == ("rotated", "2")
    assert scheduler.failing == {} and asyncio.run(probe.ready()) is True
    assert (
        registry.get_sample_value("isobridge_key_rotation_failing", {"family": "vault.data"}) == 0
    )
    outcomes = [e.body["outcome"] for e in journal.events() if e.kind is EventKind.KEY_ROTATION]
    assert outcomes == ["failed", "failed", "rotated"]
    journal.close()


def test_a_database_that_cannot_be_reached_fails_the_check_and_is_retried(
    make_vault: VaultMaker, clock: Clock
) -> None:
    vault = make_vault()
    vault.tokenize(luhn_pans(1, seed=7)[0], tenant="acme")
    metrics, registry = _metrics()
    unreachable = SqlVault(
        SqlVault.create_engine("postgresql+psycopg://nobody:x@127.0.0.1:9/none"),
        master_keys(1),
    )
    scheduler = RotationScheduler(
        [VaultDataKeys(unreachable)],
        KeysConfig((RotationPolicy("vault.data", max_age=DAY),)),
        metrics=metrics,
        clock=clock,
    )
    (failed,) = scheduler.check()
    assert (failed.outcome, failed.scope, failed.reason) == ("failed", "*", "check")
    assert "VaultUnavailableError" in (failed.error or "")
    assert scheduler.check() == []  # backing off
    assert _rotations(registry, "vault.data", "failed") == 1
    unreachable.close()


def test_rotation_under_load_refuses_nothing_and_leaves_no_undecryptable_row(
    make_vault: VaultMaker, clock: Clock
) -> None:
    # Three hub processes: one re-reads its keys at every call, two only every minute.
    processes = [make_vault(key_refresh=0.0), make_vault(), make_vault()]
    cards = luhn_pans(1200, seed=8)
    processes[0].tokenize(cards[0], tenant="acme")
    scheduler = RotationScheduler(
        [VaultDataKeys(processes[0])],
        KeysConfig((RotationPolicy("vault.data", max_age=DAY, max_uses=150),)),
        clock=clock,
    )
    failures: list[BaseException] = []
    issued: dict[str, str] = {}
    turns = Interleave(each=4, workers=8)
    lock = threading.Lock()

    def worker(n: int) -> None:
        vault = processes[n % len(processes)]
        mine = cards[1 + n * 100 : 1 + (n + 1) * 100]
        rng = random.Random(n)
        try:
            for start in range(0, len(mine), 10):
                turns.operation()
                batch = mine[start : start + 10]
                tokens = vault.tokenize_many(batch, tenant="acme")
                with lock:
                    issued.update((t.value, pan) for t, pan in zip(tokens, batch, strict=True))
                    sample = rng.sample(sorted(issued.items()), min(5, len(issued)))
                clear = vault.detokenize_many(
                    [PanToken(t) for t, _ in sample], tenant="acme", purpose="load", caller=OPERATOR
                )
                assert clear == [pan for _, pan in sample]
        except BaseException as exc:
            failures.append(exc)
        finally:
            turns.worker_finished()

    def step() -> None:
        clock.advance(DAY / 2)
        scheduler.check()

    # 8 steps of half a day, at most 8 operations apart: they end before the 80 batches do.
    rotating = threading.Thread(target=turns.rotate, args=(8, step, failures))
    rotating.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    rotating.join()
    assert failures == []
    assert turns.steps == 8
    versions = processes[0].stats()[0].key_versions
    assert len(versions) >= 5, versions  # a rotation a day at least, during the load
    fresh = make_vault()
    tokens = [PanToken(t) for t in issued]
    assert fresh.detokenize_many(tokens, tenant="acme", purpose="check", caller=OPERATOR) == [
        issued[t.value] for t in tokens
    ]
    report = fresh.verify()
    assert report.ok and report.rows_checked == len(issued) + 1


# -- journal tenant keys -----------------------------------------------------------------------


@pytest.fixture
def journal_db(kind: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with migrated_database(kind, tmp_path, "journal", Journal.create_engine, journal_upgrade) as db:
        yield db


def test_a_journal_tenant_key_past_its_max_age_rotates_and_older_events_still_decrypt(
    journal_db: tuple[str, dict[str, Any]], clock: Clock
) -> None:
    url, options = journal_db
    journal = Journal(Journal.create_engine(url, **options), StaticMasterKeys({1: bytes(32)}),
                      now=clock.utc)  # fmt: skip

    def record(n: int) -> None:
        ids = TransactionIds(f"m-{n}")
        journal.record([Event(EventKind.RECEIVED, "acme", ids, clock.utc(), {"n": n},
                              personal={"debtor": f"Customer {n}"})])  # fmt: skip

    record(1)
    scheduler = RotationScheduler(
        [JournalTenantKeys(journal)],
        KeysConfig((RotationPolicy("journal.tenant", max_age=DAY),)),
        clock=clock,
    )
    assert scheduler.check() == []
    clock.advance(DAY)
    (result,) = scheduler.check()
    assert (result.scope, result.old_key, result.new_key) == ("acme", "1", "2")
    record(2)
    assert [(t, v) for t, v, _ in journal.tenant_keys()] == [("acme", 2)]
    assert [e.personal for e in journal.events()] == [
        {"debtor": "Customer 1"},
        {"debtor": "Customer 2"},
    ]
    assert journal.rotate_tenant_key("acme", if_current=1) is None  # rotated already
    assert journal.verify().ok
    assert journal.shred_tenant("acme") == 2  # crypto-shredding destroys every version
    assert [e.personal for e in journal.events()] == [Sealed.ERASED, Sealed.ERASED]
    journal.close()


# -- the authorization server's signing keys ---------------------------------------------------


class JwksCache:
    """A resource server's view of the JWKS: fetched again ``ttl`` seconds after the last
    fetch, never on an unknown ``kid`` (so a key that was not pre-published is refused)."""

    def __init__(self, server: AuthorizationServer, clock: Clock, ttl: float) -> None:
        self.server = server
        self.clock = clock
        self.ttl = ttl
        self.fetched_at: float | None = None
        self.keys: dict[str, PublicJwk] = {}
        self._lock = threading.Lock()

    def key(self, kid: str) -> PublicJwk | None:
        with self._lock:
            now = self.clock()
            if self.fetched_at is None or now - self.fetched_at >= self.ttl:
                document = self.server.jwks()
                self.keys = {k["kid"]: PublicJwk.from_dict(k) for k in document["keys"]}
                self.fetched_at = now
            return self.keys.get(kid)

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid token; ``None`` if it expired; raises if it is refused."""
        now = self.clock()
        jws = parse_compact(token)
        key = self.key(str(jws.header["kid"]))
        claims: dict[str, Any] = json.loads(jws.payload)
        if claims["exp"] <= now:
            return None
        if key is None:
            raise JoseError(
                f"unknown kid {jws.header['kid']} for a token valid until {claims['exp']}"
            )
        verify_signature(jws, key)
        return claims


def _kids(server: AuthorizationServer) -> list[str]:
    return [key["kid"] for key in server.jwks()["keys"]]


def test_a_signing_key_is_published_before_it_signs_and_stays_until_its_tokens_expire(
    make_server: ServerMaker, clock: Clock
) -> None:
    server = make_server(token_ttl=300, key_refresh=30.0)
    assert server.overlap == 330.0
    old = server.signing_key.kid
    scheduler = RotationScheduler(
        [SigningKeys(server, prepublish=120.0)],
        KeysConfig((RotationPolicy("authserver.signing", max_age=DAY),)),
        clock=clock,
    )
    verifier = JwksCache(make_server(), clock, ttl=120.0)
    clock.advance(DAY)
    early = server.issue(CLIENT, "accounts", {"jkt": "x"})
    (result,) = scheduler.check()
    assert (result.old_key, result.reason, result.outcome) == (old, "max_age", "rotated")
    new = result.new_key
    assert new is not None and _kids(server) == [new, old]  # published, not yet signing
    assert server.signing_key.kid == old
    assert verifier.verify(early) is not None  # the cached JWKS now holds both keys
    clock.advance(119.0)
    assert server.signing_key.kid == old
    last_old = server.issue(CLIENT, "accounts", {"jkt": "x"})
    clock.advance(1.0)
    assert server.signing_key.kid == new  # on time, and every cache fetched it already
    first_new = server.issue(CLIENT, "accounts", {"jkt": "x"})
    assert verifier.verify(first_new) is not None
    assert verifier.verify(last_old) is not None
    assert parse_compact(first_new).header["kid"] == new
    # Until the old key's last token has expired, the old key stays published, whatever
    # else is rotated meanwhile.
    clock.advance(298.0)
    server.state.forget_expired(retain=1, overlap=server.overlap)
    assert old in _kids(server) and verifier.verify(last_old) is not None
    clock.advance(331.0)
    server.state.forget_expired(retain=1, overlap=server.overlap)
    assert _kids(server) == [new]
    records = server.key_records()
    assert [(r.key.kid, r.uses) for r in records] == [(new, 1)]


def test_no_token_may_outlive_the_overlap_of_its_key(make_server: ServerMaker) -> None:
    with pytest.raises(ValueError, match=r"overlap 100\.0 s is shorter than a token lives"):
        make_server(token_ttl=300, key_refresh=30.0, overlap=100.0)
    server = make_server(token_ttl=300, key_refresh=30.0, overlap=600.0)
    assert server.issue(CLIENT, "accounts", {"jkt": "x"}, lifetime=570)
    with pytest.raises(ValueError, match="lifetime of 571 s outlives the signing key overlap"):
        server.issue(CLIENT, "accounts", {"jkt": "x"}, lifetime=571)


def test_signing_keys_used_max_uses_times_rotate_and_two_gateways_rotate_once(
    make_server: ServerMaker, clock: Clock
) -> None:
    servers = [make_server(), make_server()]
    config = KeysConfig((RotationPolicy("authserver.signing", max_uses=10),))
    schedulers = [
        RotationScheduler([SigningKeys(s, prepublish=60.0)], config, clock=clock) for s in servers
    ]
    old = servers[0].signing_key.kid
    assert servers[1].signing_key.kid == old  # the second process found the first's key
    for n in range(10):
        servers[n % 2].issue(CLIENT, "accounts", {"jkt": "x"})
    start = threading.Barrier(2)

    def check(scheduler: RotationScheduler) -> list[str]:
        start.wait()
        return [r.outcome for r in scheduler.check()]

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(o for found in pool.map(check, schedulers) for o in found)
    # The first to flush its 5 uses sees 5 (not due) or 10 (due); the other one too.
    assert outcomes.count("rotated") == 1, outcomes
    keys = servers[0].key_records()
    assert len(keys) == 2 and keys[1].key.kid == old and keys[1].uses == 10
    assert [r.outcome for s in schedulers for r in s.check()] == []  # the new key is unused


def test_signing_key_rotation_under_load_refuses_no_valid_token(
    make_server: ServerMaker, clock: Clock
) -> None:
    # Two gateway processes sign; two resource servers verify with cached key sets.
    signers = [make_server(token_ttl=300, key_refresh=30.0) for _ in range(2)]
    verifiers = [JwksCache(make_server(), clock, ttl=60.0) for _ in range(2)]
    scheduler = RotationScheduler(
        [SigningKeys(signers[0], prepublish=60.0)],
        KeysConfig((RotationPolicy("authserver.signing", max_age=250.0, max_uses=400),)),
        clock=clock,
    )
    failures: list[BaseException] = []
    verified = [0, 0]  # valid and verified, expired (a worker that stalled 300 s)
    kids: set[str] = set()
    lock = threading.Lock()
    turns = Interleave(each=5, workers=6)

    def worker(n: int) -> None:
        signer, verifier = signers[n % 2], verifiers[(n // 2) % 2]
        try:
            for _ in range(150):
                turns.operation()
                token = signer.issue(CLIENT, "accounts", {"jkt": "x"})
                claims = verifier.verify(token)
                with lock:
                    verified[claims is None] += 1
                    kids.add(str(parse_compact(token).header["kid"]))
        except BaseException as exc:
            failures.append(exc)
        finally:
            turns.worker_finished()

    def step() -> None:
        clock.advance(20.0)
        scheduler.check()

    # 60 steps of 20 s, at most 10 tokens apart: they end before the 900 tokens do.
    rotating = threading.Thread(target=turns.rotate, args=(60, step, failures))
    rotating.start()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(worker, range(6)))
    rotating.join()
    assert failures == []  # no valid token refused
    assert turns.steps == 60 and sum(verified) == 900 and verified[0] > 0
    # Due at 250 s of age: new keys sign from 320, 640 and 960 s (pre-published 60 s).
    assert len(kids) >= 4, kids


# -- configuration -----------------------------------------------------------------------------


def _read(table: dict[str, Any]) -> KeysConfig:
    return keys_config(TableReader("hub.toml", Path.cwd()), table)


def test_the_keys_table_is_read_and_checked_with_errors_naming_the_key() -> None:
    config = _read(
        {
            "check_interval": "5m",
            "policies": [
                {"family": "vault.data", "max_age": "90d", "max_uses": 1_000_000},
                {"family": "authserver.signing", "max_age": 86400},
            ],
        }
    )
    assert config.check_interval == 300.0
    assert config.policy("vault.data") == RotationPolicy("vault.data", 90 * DAY, 1_000_000)
    assert config.policy("authserver.signing") == RotationPolicy("authserver.signing", DAY)
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {"policies": [{"family": "vault"}]},
            "keys.policies[0].family: 'vault' is not a key family",
        ),
        ({"policies": [{"family": "vault.data"}]}, "keys.policies[0]: a policy needs max_age"),
        (
            {"policies": [{"family": "vault.data", "max_age": "ninety days"}]},
            "keys.policies[0].max_age: 'ninety days' is not a duration",
        ),
        (
            {"policies": [{"family": "vault.data", "max_uses": 0}]},
            "keys.policies[0].max_uses: 0 is not a positive integer",
        ),
        (
            {"policies": [{"family": "vault.data", "max_age": 1}] * 2},
            "keys.policies[1].family: 'vault.data' has a policy already",
        ),
        ({"policies": [{"family": "vault.data", "max_ages": 1}]}, "keys.policies[0].max_ages"),
        ({"check_interval": -1}, "keys.check_interval: -1: a duration must be positive"),
        ({"retry_initial": 10, "retry_max": 5}, "keys.retry_max: must not be less"),
        ({"intervall": 1}, "keys.intervall: unknown key"),
        (
            {"policies": [{"family": "journal.tenant", "max_uses": 5}]},
            "keys.policies[0].max_uses: journal.tenant keys rotate by age only",
        ),
    ]
    for table, message in bad:
        with pytest.raises(ConfigError) as caught:
            _read(table)
        assert str(caught.value).startswith(f"hub.toml: {message}"), str(caught.value)
