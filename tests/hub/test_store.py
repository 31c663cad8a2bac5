"""The reversal store shared by several hub instances, on SQLite and on PostgreSQL: a claimed
reversal is held by one forwarder until its lease runs out, concurrent claims take each
reversal once, two forwarders on one table forward each reversal to a real mainframe_sim
once and report its acknowledgement once, and a table of the first schema is upgraded with
its reversals."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text

from canonical_model.json_form import to_json
from canonical_model.messages import CanonicalMessage
from hub.core import posting_reference
from hub.store import (
    HEAD,
    ReversalForwarder,
    ReversalStore,
    create_engine,
    current_revision,
    upgrade,
)
from tests.hub.test_core import core_for, mainframe, purchase, reversal_of
from tests.mainframe_sim.samples import ANNA
from tests.support import migrated_database, on_event_loop

START = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=30)


class Clock:
    """The time the stores see, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, engine options) of a migrated hub store: a SQLite file or a PostgreSQL schema."""
    with migrated_database(request.param, tmp_path, "hub", create_engine, upgrade) as found:
        yield found


def _instance(database: tuple[str, dict[str, Any]], clock: Clock | None = None) -> ReversalStore:
    """The store as one hub instance sees it: an engine of its own on the shared database."""
    url, options = database
    return ReversalStore(
        create_engine(url, **options), posting_reference=posting_reference, now=clock
    )


def test_a_claimed_reversal_is_held_until_its_lease_runs_out(
    database: tuple[str, dict[str, Any]],
) -> None:
    clock = Clock()
    first, second = _instance(database, clock), _instance(database, clock)
    reversal = reversal_of(purchase(1, "5.00"), 2)
    first.store(reversal)
    second.store(reversal)  # stored once, whoever stores it
    assert len(first.pending()) == 1

    (held,) = second.claim(LEASE)
    assert held.claim is not None and held.reversal == reversal
    assert first.claim(LEASE) == []  # held by the second instance

    clock.now += LEASE + dt.timedelta(seconds=1)  # the second instance died holding it
    (taken,) = first.claim(LEASE)
    assert taken.claim not in (None, held.claim)
    # The late holder's failure does not reschedule what the new claim holds.
    second.failed(held.posting_ref, "no answer", dt.timedelta(seconds=1), held.claim)
    (row,) = first.pending()
    assert (row.attempts, row.claim) == (0, taken.claim)

    first.failed(taken.posting_ref, "no answer", dt.timedelta(seconds=5), taken.claim)
    (row,) = first.pending()
    assert (row.attempts, row.claim, row.last_error) == (1, None, "no answer")
    assert second.claim(LEASE) == []  # not due for 5 s
    clock.now += dt.timedelta(seconds=5)
    assert [r.posting_ref for r in second.claim(LEASE)] == [held.posting_ref]

    assert first.acknowledged(held.posting_ref) is True
    assert second.acknowledged(held.posting_ref) is False  # acknowledged once
    assert first.pending() == []
    for store in (first, second):
        store.engine.dispose()


def test_concurrent_claims_take_each_reversal_once(database: tuple[str, dict[str, Any]]) -> None:
    writer = _instance(database)
    for stan in range(40):
        writer.store(reversal_of(purchase(100 + stan, "1.00"), 200 + stan))
    taken: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def forwarder() -> None:
        store = _instance(database)
        start.wait()
        while claimed := store.claim(LEASE, limit=3):
            with lock:
                taken.extend(pending.posting_ref for pending in claimed)
        store.engine.dispose()

    threads = [threading.Thread(target=forwarder) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(taken) == sorted(p.posting_ref for p in writer.pending())
    assert len(taken) == len(set(taken)) == 40
    writer.engine.dispose()


def test_two_forwarders_forward_each_reversal_once_and_acknowledge_it_once(
    database: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf, core_for(mf) as (core, _):
            before = mf.balance(ANNA)
            purchases = [purchase(300 + n, "2.00") for n in range(12)]
            for request in purchases:
                await core.handle(request)
            assert mf.balance(ANNA) == before - 12 * 200
            stores = [_instance(database), _instance(database)]
            core.reversals = stores[0]
            for request in purchases:  # their answers "lost": the hub's path, stored
                await core.store_reversal(request)
            requests = mf.server.stats.requests
            acknowledged: Counter[str] = Counter()

            def on_acknowledged(reversal: CanonicalMessage, code: str) -> None:
                acknowledged[posting_reference(reversal)] += 1
                assert code == "00"

            forwarders = [
                ReversalForwarder(store, core, on_acknowledged=on_acknowledged) for store in stores
            ]
            done = await asyncio.gather(*(f.forward_due() for f in forwarders))
            assert sum(done) == 12
            assert mf.server.stats.requests - requests == 12  # each reversal sent once
            assert set(acknowledged.values()) == {1} and len(acknowledged) == 12
            assert stores[1].pending() == []
            assert mf.balance(ANNA) == before
            assert mf.ledger.check().balanced
            for store in stores:
                store.engine.dispose()

    scenario()


def test_a_store_of_the_first_schema_is_upgraded_with_its_reversals(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine, "0001")
    store = ReversalStore(engine, posting_reference=posting_reference)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO hub_pending_reversals (posting_ref, tenant, reversal, attempts,"
                " created_at, next_attempt_at) VALUES (:ref, 'bank-a', :json, 2, :t, :t)"
            ),
            {"ref": "R1", "json": to_json(reversal_of(purchase(5, "1.00"), 6)), "t": START},
        )
    upgrade(engine)
    assert current_revision(engine) == HEAD
    (row,) = store.pending()
    assert (row.posting_ref, row.attempts, row.claim) == ("R1", 2, None)
    assert [p.posting_ref for p in store.claim(LEASE)] == ["R1"]
    engine.dispose()


def test_instances_starting_at_once_migrate_a_postgresql_store_once(tmp_path: Path) -> None:
    with migrated_database("postgresql", tmp_path, "hub", create_engine, lambda _: None) as (
        url,
        options,
    ):
        engines = [create_engine(url, **options) for _ in range(3)]
        errors: list[BaseException] = []

        def start(engine: sqlalchemy.Engine) -> None:
            try:
                upgrade(engine)
            except Exception as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert {current_revision(engine) for engine in engines} == {HEAD}
        for engine in engines:
            engine.dispose()
