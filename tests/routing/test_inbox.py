"""The inbox on SQLite and PostgreSQL: claims, duplicates, transactions, retention."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from routing.inbox import (
    CLAIM_CHUNK,
    apply_once,
    claim,
    purge_received_before,
    seen_count,
)
from tests.routing.conftest import EngineFactory

T0 = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)

effects = MetaData()
ledger = Table(
    "test_routing_ledger",
    effects,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("amount", Integer, nullable=False),
)


def test_claim_returns_the_ids_not_seen_before(engine: Engine) -> None:
    with engine.begin() as connection:
        assert claim(connection, "postings", ["a", "b", "c"]) == {"a", "b", "c"}
    with engine.begin() as connection:
        assert claim(connection, "postings", ["b", "d", "c", "e"]) == {"d", "e"}
        assert claim(connection, "postings", []) == set()
        assert seen_count(connection, "postings") == 5


def test_an_id_twice_in_one_claim_counts_once(engine: Engine) -> None:
    with engine.begin() as connection:
        assert claim(connection, "postings", ["a", "a", "b", "a"]) == {"a", "b"}
        assert seen_count(connection, "postings") == 2


def test_consumers_keep_separate_records(engine: Engine) -> None:
    with engine.begin() as connection:
        assert claim(connection, "postings", ["a"]) == {"a"}
        assert claim(connection, "journal", ["a"]) == {"a"}
        assert claim(connection, "journal", ["a"]) == set()


class EffectFailedError(Exception):
    pass


def _claim_then_fail(engine: Engine, ids: list[str]) -> None:
    with engine.begin() as connection:
        assert claim(connection, "postings", ids) == set(ids)
        raise EffectFailedError


def test_a_claim_rolls_back_with_the_effect(engine: Engine) -> None:
    with pytest.raises(EffectFailedError):
        _claim_then_fail(engine, ["a", "b"])
    with engine.begin() as connection:
        assert claim(connection, "postings", ["a", "b"]) == {"a", "b"}


def test_a_claim_works_inside_an_orm_session(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        assert claim(session, "postings", ["a", "b"]) == {"a", "b"}
    with Session(engine) as session, session.begin():
        assert claim(session, "postings", ["b", "c"]) == {"c"}


def test_a_large_batch_is_claimed_in_chunks(engine: Engine) -> None:
    ids = [f"m-{i}" for i in range(CLAIM_CHUNK * 2 + 7)]
    with engine.begin() as connection:
        assert claim(connection, "postings", ids[::2]) == set(ids[::2])
    with engine.begin() as connection:
        assert claim(connection, "postings", ids) == set(ids[1::2])


def test_purge_deletes_only_rows_received_before_the_cutoff(engine: Engine) -> None:
    with engine.begin() as connection:
        claim(connection, "postings", ["old-1", "old-2"], now=T0)
        claim(connection, "journal", ["old-3"], now=T0)
        claim(connection, "postings", ["new"], now=T0 + dt.timedelta(days=8))
    with engine.begin() as connection:
        assert purge_received_before(connection, T0 + dt.timedelta(days=7)) == 3
    with engine.begin() as connection:
        assert claim(connection, "postings", ["old-1", "new"]) == {"old-1"}


def _post_once(engine: Engine, deliveries: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    def post(connection: Connection, new: Sequence[tuple[str, int]]) -> None:
        if new:
            connection.execute(
                insert(ledger), [{"message_id": m, "amount": amount} for m, amount in new]
            )

    return apply_once(engine, "postings", deliveries, lambda d: d[0], post)


def _ledger(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ledger.c.message_id, ledger.c.amount).order_by(ledger.c.id)
        )
        return [(m, a) for m, a in rows]


def test_apply_once_applies_each_message_once_across_redeliveries(engine: Engine) -> None:
    effects.create_all(engine)
    assert _post_once(engine, [("m-1", 10), ("m-2", 20), ("m-1", 10)]) == [("m-1", 10), ("m-2", 20)]
    assert _post_once(engine, [("m-2", 20), ("m-3", 30)]) == [("m-3", 30)]
    assert _post_once(engine, [("m-3", 30)]) == []
    assert _ledger(engine) == [("m-1", 10), ("m-2", 20), ("m-3", 30)]


def test_apply_once_records_nothing_when_the_effect_fails(engine: Engine) -> None:
    effects.create_all(engine)

    def failing(connection: Connection, new: Sequence[tuple[str, int]]) -> None:
        connection.execute(insert(ledger), [{"message_id": m, "amount": a} for m, a in new])
        raise RuntimeError("core banking said no")

    with pytest.raises(RuntimeError, match="core banking"):
        apply_once(engine, "postings", [("m-1", 10)], lambda d: d[0], failing)
    assert _ledger(engine) == []
    assert _post_once(engine, [("m-1", 10)]) == [("m-1", 10)]


def test_concurrent_consumers_apply_each_message_once(make_engine: EngineFactory) -> None:
    # Two consumers (each its own engine, like two processes) receive the same deliveries.
    first = make_engine()
    effects.create_all(first)
    deliveries = [(f"m-{i}", i) for i in range(200)]
    engines = [first, make_engine()]
    applied: list[list[tuple[str, int]]] = [[], []]

    def consume(which: int) -> None:
        batch = deliveries if which == 0 else deliveries[::-1]
        for start in range(0, len(batch), 25):
            applied[which].extend(_post_once(engines[which], batch[start : start + 25]))

    threads = [threading.Thread(target=consume, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(applied[0] + applied[1]) == sorted(deliveries)
    assert sorted(_ledger(first)) == sorted(deliveries)


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), max_size=6))
def test_claims_report_exactly_the_first_sighting(batches: list[list[str]]) -> None:
    from routing.store import create_engine, upgrade

    engine = create_engine("sqlite://")
    upgrade(engine)
    seen: set[str] = set()
    for batch in batches:
        with engine.begin() as connection:
            assert claim(connection, "c", batch) == set(batch) - seen
        seen |= set(batch)
    engine.dispose()
