"""Hub instances sharing their state on PostgreSQL (vault, journal, reversal store), with
real RabbitMQ, a real mainframe_sim and the hub as a process:

- an instance that stored reversals (its payments timed out: the mainframe applied them but
  its answers were lost) is killed -9; another instance forwards them once the mainframe
  answers again, each acknowledged once, and the ledger reconciles: with the reversal store
  (``[hub] journal = false``) and with card reversal sagas in the journal;
- PostgreSQL restarted under load (the tests' own server, tests/own_postgres.py, never the
  shared one): the hub rides through it by itself, every payment is answered (96 while the
  vault cannot tokenize a new card, nothing posted), no journal
  event is lost or written twice, every lost answer's reversal is stored (waiting for the
  database) and forwarded, and the ledger reconciles;
- a hub whose transport is a broker cluster while its reversal store is its home's SQLite
  file is warned that instances on other machines would not see those reversals.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from canonical_model.pan import luhn_valid
from hub.bootstrap import open_journal, open_vault
from hub.config import Settings
from hub.config_file import load_config
from hub.core import posting_reference
from hub.sagas.card import CARD_REVERSAL
from hub.sagas.store import LIVE_PHASES, Phase, SagaStore
from hub.service import HubService, prepare_state
from hub.store import HEAD, ReversalStore, create_engine, current_revision, upgrade
from journal import EventKind
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_chaos import ACCOUNTS
from tests.hub.test_edge import Client, _parse
from tests.hub.test_hub_crash import _start_hub
from tests.hub.test_service import _purchase
from tests.own_postgres import OwnPostgres
from tests.routing.conftest import amqp_url, hub_namespace, require_broker
from tests.support import on_event_loop, postgres_url

STATE_VARIABLES = ("ISOBRIDGE_VAULT_URL", "ISOBRIDGE_JOURNAL_URL", "ISOBRIDGE_STORE_URL")


@contextlib.contextmanager
def shared_state(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The vault, the journal and the reversal store in one PostgreSQL schema of this test's
    own, named to every hub of the test (and its processes) by the environment, with one
    master key file; the schema is dropped afterwards."""
    schema = f"hubstate_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(url, pool_pre_ping=True)  # the server may restart
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    in_schema = f"{url}?options=-csearch_path%3D{schema}"
    for name in STATE_VARIABLES:
        monkeypatch.setenv(name, in_schema)
    monkeypatch.setenv("ISOBRIDGE_KEY_FILE", str(tmp_path / "master-keys.json"))
    settings = Settings.from_environment()
    try:
        open_vault(settings, create=True).close()
        open_journal(settings, create=True).close()
        engine = create_engine(settings.store_url)
        upgrade(engine)
        engine.dispose()
        yield settings
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _hub_toml(
    path: Path,
    home: Path,
    transport: str,
    namespace: str,
    mainframe: int,
    timeout: float = 1.0,
    journal: bool = True,
) -> Path:
    path.write_text(
        f'[hub]\nhome = "{home}"\njournal = {str(journal).lower()}\n'
        f'[routing]\ntransport = "{transport}"\nnamespace = "{namespace}"\n'
        "[[listeners]]\nname = 'pos'\nport = 0\nrequest_timeout = 10.0\n"
        # A mainframe that does not answer must not open the breaker: every payment is
        # sent, and its reversal stored.
        f"[mainframe]\nport = {mainframe}\ntimeout = {timeout}\nfailure_threshold = 1000\n"
    )
    return path


def _stored_reversals(settings: Settings, kept_in: str) -> set[str]:
    """The posting references of the reversals not acknowledged yet: in the reversal store
    (``[hub] journal = false``) or as card reversal sagas in the journal."""
    if kept_in == "store":
        store = ReversalStore(
            create_engine(settings.store_url), posting_reference=posting_reference
        )
        try:
            return {pending.posting_ref for pending in store.pending()}
        finally:
            store.engine.dispose()
    journal = open_journal(settings)
    try:
        records = SagaStore(journal).sagas(phases=(*LIVE_PHASES, Phase.ATTENTION), limit=10_000)
        return {
            str(record.values["posting_ref"])
            for record in records
            if record.definition == CARD_REVERSAL
        }
    finally:
        journal.close()


@pytest.mark.parametrize("kept_in", ["store", "sagas"])
def test_reversals_stored_by_a_killed_instance_are_forwarded_by_another(
    kept_in: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = amqp_url()
    require_broker(transport)
    database = postgres_url()

    @on_event_loop
    async def scenario(settings: Settings, namespace: str) -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        faults = Faults()
        server = MainframeServer(ledger, faults=faults)
        _, mainframe = await server.start("127.0.0.1", 0)
        before = {number: ledger.balances(number) for number in ACCOUNTS}
        journaled = kept_in == "sagas"
        first = _hub_toml(
            tmp_path / "a.toml", tmp_path / "a", transport, namespace, mainframe, journal=journaled
        )
        second = _hub_toml(
            tmp_path / "b.toml", tmp_path / "b", transport, namespace, mainframe, journal=journaled
        )
        # The mainframe applies every posting (and every reversal) but its answers are lost.
        faults.set(FaultPlan(drop=1.0))
        hub, port = await _start_hub(first)
        try:

            async def terminal(first_stan: int) -> Counter[str]:
                codes: Counter[str] = Counter()
                client = await Client.connect(port)
                for stan in range(first_stan, first_stan + 3):
                    account, amount = ACCOUNTS[stan % len(ACCOUNTS)], 100 + stan % 50
                    await client.send(_purchase(stan, amount, account))
                    codes[_parse(await client.receive(timeout=10))[1][39]] += 1
                await client.close()
                return codes

            answered = await asyncio.gather(*(terminal(100 * n) for n in range(1, 5)))
            assert sum(answered, Counter()) == Counter({"91": 12})
            stored = await asyncio.to_thread(_stored_reversals, settings, kept_in)
            assert len(stored) == 12  # stored before the acquirers heard 91
            hub.send_signal(signal.SIGKILL)
            await hub.wait()
        finally:
            if hub.returncode is None:
                hub.kill()
                await hub.wait()
        # none acknowledged
        assert await asyncio.to_thread(_stored_reversals, settings, kept_in) == stored

        faults.set(FaultPlan())  # the mainframe answers again
        try:
            async with HubService(load_config(second)) as survivor:
                assert survivor.reversals is not None
                for _ in range(600):
                    if not survivor.reversals.pending():
                        break
                    await asyncio.sleep(0.1)
                assert survivor.reversals.pending() == []
        finally:
            await server.close()
        for number in ACCOUNTS:  # nothing was approved: every posting is reversed
            assert ledger.balances(number) == before[number], number
        assert ledger.check().balanced
        ledger.close()

        if kept_in == "store":
            return  # no journal: the store's emptiness and the ledger are the record
        journal = open_journal(settings)
        acknowledged = Counter(
            event.ids.transaction_id
            for event in journal.events()
            if event.kind is EventKind.STATUS_CHANGED
            and event.body.get("reason") == "the core acknowledged the reversal"
        )
        journal.engine.dispose()
        assert len(acknowledged) == 12 and set(acknowledged.values()) == {1}

    with (
        shared_state(database, tmp_path, monkeypatch) as settings,
        hub_namespace(transport) as namespace,
    ):
        scenario(settings, namespace)


def test_postgresql_restarted_mid_load_loses_nothing_and_applies_nothing_twice(
    own_postgres: OwnPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = amqp_url()
    require_broker(transport)

    @on_event_loop
    async def scenario(settings: Settings, namespace: str) -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        faults = Faults(seed=11)
        server = MainframeServer(ledger, faults=faults)
        _, mainframe = await server.start("127.0.0.1", 0)
        # Some answers are lost all along: their reversals are stored, some of them while
        # the database is down.
        faults.set(FaultPlan(drop=0.05))
        toml = _hub_toml(
            tmp_path / "hub.toml", tmp_path / "home", transport, namespace, mainframe, 0.5
        )
        before = {number: ledger.balances(number) for number in ACCOUNTS}
        approved: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        approved_stans: set[str] = set()
        restarted = asyncio.Event()
        recovered: Counter[str] = Counter()  # the answers once the server was back
        answered = after_restart = 0
        try:
            async with HubService(load_config(toml)) as service:
                port = service.edges[0].port

                async def terminal(first: int) -> None:
                    """Purchases until 40 more (all terminals) were answered after it."""
                    nonlocal answered, after_restart
                    client = await Client.connect(port)
                    stan = first
                    while not restarted.is_set() or after_restart < 40:
                        account, amount = ACCOUNTS[stan % len(ACCOUNTS)], 100 + stan % 50
                        # A card of its own: tokenizing it needs the vault's database.
                        await client.send(_purchase(stan, amount, account, _card(stan)))
                        code = _parse(await client.receive(timeout=30))[1][39]
                        codes[code] += 1
                        answered += 1
                        if restarted.is_set():
                            after_restart += 1
                            recovered[code] += 1
                        if code == "00":
                            approved[account] += amount
                            approved_stans.add(f"{stan:06d}")
                        stan += 1
                    await client.close()

                async def restart() -> None:
                    while answered < 60:
                        await asyncio.sleep(0.01)
                    await asyncio.to_thread(own_postgres.restart)
                    restarted.set()

                await asyncio.gather(restart(), *(terminal(1000 * n) for n in range(1, 5)))
                assert service.reversals is not None
                for _ in range(300):
                    if not service.reversals.pending():
                        break
                    await asyncio.sleep(0.1)
                assert service.reversals.pending() == []
                writer = service.journal_writer
                assert writer is not None
        finally:
            await server.close()
        # Approved; 91: the mainframe's answer lost (the posting reversed); 96: the card could
        # not be tokenized while the vault's database was away (nothing sent).
        assert set(codes) <= {"00", "91", "96"}, codes
        assert codes["91"] > 0, "no answer was lost: no reversal was stored"
        assert recovered["00"] >= 30, recovered  # the hub recovered by itself
        for number in ACCOUNTS:
            start, end = before[number], ledger.balances(number)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == approved[number], number
        assert ledger.check().balanced
        ledger.close()

        assert (writer.lost, writer.refused) == (0, 0)
        journal = open_journal(settings)
        events = list(journal.events())
        # The card reversal sagas write their own events (hub.sagas.runner); the rest came
        # through the writer: none lost, none written twice.
        written = [event for event in events if not event.kind.value.startswith("saga_")]
        assert len(written) == writer.written
        answered_stans = {e.ids.stan for e in events if e.kind is EventKind.ANSWERED}
        assert approved_stans <= answered_stans
        assert journal.verify().ok
        journal.close()

    with (
        shared_state(own_postgres.url, tmp_path, monkeypatch) as settings,
        hub_namespace(transport) as namespace,
    ):
        scenario(settings, namespace)


def test_a_cluster_with_the_reversal_store_in_the_home_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\n'
        '[routing]\ntransport = "amqp://hub:pw@mq1:5672,mq2:5672/%2F"\n[mainframe]\nport = 7070\n'
    )
    with caplog.at_level(logging.WARNING, logger="isobridge.service"):
        prepare_state(load_config(toml, environ={}), io.StringIO())
    (warning,) = caplog.records
    assert "on this machine only" in warning.getMessage()
    assert "ISOBRIDGE_STORE_URL" in warning.getMessage()

    caplog.clear()
    shared = f"sqlite:///{tmp_path / 'shared.db'}"  # named: whatever it is, it was chosen
    with caplog.at_level(logging.WARNING, logger="isobridge.service"):
        prepare_state(load_config(toml, environ={"ISOBRIDGE_STORE_URL": shared}), io.StringIO())
    assert caplog.records == []
    engine = create_engine(shared)
    assert current_revision(engine) == HEAD
    engine.dispose()


def _card(number: int) -> str:
    """A Luhn-valid test card number of its own for ``number``."""
    base = f"400000{number:09d}"
    return next(base + digit for digit in "0123456789" if luhn_valid(base + digit))
