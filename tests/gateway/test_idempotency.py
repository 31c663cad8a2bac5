"""x-idempotency-key storage: claims, the 24-hour window per tenant and endpoint, purging,
and one winner among racing processes; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from gateway.idempotency import (
    IDEMPOTENCY_WINDOW,
    Claimed,
    IdempotencyStore,
    Pending,
    StoredAnswer,
)
from gateway.store import insert_or_ignore, signing_keys_table, transaction


def test_answers_live_for_24_hours_per_tenant_and_endpoint(gateway_engine: Engine) -> None:
    now = [1_000.0]
    store = IdempotencyStore(gateway_engine, clock=lambda: now[0])
    digest = store.digest(b'{"a":1}')
    claim = store.claim("tpp-1", "payments", "k", digest)
    assert isinstance(claim, Claimed)
    assert store.find("tpp-1", "payments", "k") is None  # nothing answered yet
    assert store.claim("tpp-1", "payments", "k", digest) == Pending(digest)
    stored = store.complete(
        "tpp-1", "payments", "k", claim.holder, status=201, body=b"{}", headers={"x": "y"}
    )
    assert stored
    found = store.find("tpp-1", "payments", "k")
    assert found is not None and (found.status, found.body_digest) == (201, digest)
    assert store.claim("tpp-1", "payments", "k", "other") == StoredAnswer(
        digest, 201, b"{}", {"x": "y"}, 1_000.0
    )  # the caller compares the digests
    assert isinstance(store.claim("tpp-2", "payments", "k", digest), Claimed)
    assert isinstance(store.claim("tpp-1", "consents", "k", digest), Claimed)
    now[0] += IDEMPOTENCY_WINDOW - 1
    assert store.find("tpp-1", "payments", "k") is not None
    now[0] += 2
    assert store.find("tpp-1", "payments", "k") is None  # the key may be used again
    assert isinstance(store.claim("tpp-1", "payments", "k", "other"), Claimed)
    assert IDEMPOTENCY_WINDOW == 86_400


def test_a_refused_request_gives_its_key_back(gateway_engine: Engine) -> None:
    store = IdempotencyStore(gateway_engine)
    claim = store.claim("t", "e", "k", "d1")
    assert isinstance(claim, Claimed)
    store.release("t", "e", "k", "not-the-holder")
    assert isinstance(store.claim("t", "e", "k", "d1"), Pending)
    store.release("t", "e", "k", claim.holder)
    assert isinstance(store.claim("t", "e", "k", "d2"), Claimed)


def test_work_in_the_claims_transaction_is_undone_with_it(gateway_engine: Engine) -> None:
    store = IdempotencyStore(gateway_engine)
    row = {"kid": "k1", "alg": "ES256", "private_pem": "-", "created_at": 0.0}

    def refuse(connection: Connection) -> None:
        insert_or_ignore(connection, signing_keys_table, row, ("kid",))
        raise LookupError("refused")

    with pytest.raises(LookupError):
        store.claim("t", "e", "k", "d", then=refuse)
    with transaction(gateway_engine) as connection:
        assert connection.execute(select(signing_keys_table)).all() == []
    kept: list[Connection] = []
    claim = store.claim("t", "e", "k", "d", then=kept.append)  # the key was given back
    assert isinstance(claim, Claimed) and len(kept) == 1
    assert isinstance(store.claim("t", "e", "k", "d", then=refuse), Pending)  # not run


def test_a_vanished_holder_is_taken_over_after_the_lease(gateway_engine: Engine) -> None:
    now = [0.0]
    store = IdempotencyStore(gateway_engine, lease=60.0, clock=lambda: now[0])
    first = store.claim("t", "e", "k", "d")
    assert isinstance(first, Claimed)
    now[0] = 59.0
    assert isinstance(store.claim("t", "e", "k", "d"), Pending)
    now[0] = 61.0
    second = store.claim("t", "e", "k", "d")
    assert isinstance(second, Claimed) and second.holder != first.holder
    # the first holder's late answer is not kept: the key is the second's
    assert not store.complete("t", "e", "k", first.holder, status=201, body=b"", headers={})
    assert store.complete("t", "e", "k", second.holder, status=201, body=b"2", headers={})


def test_expired_keys_are_purged(gateway_engine: Engine) -> None:
    now = [0.0]
    store = IdempotencyStore(gateway_engine, clock=lambda: now[0])
    for key in ("a", "b"):
        claim = store.claim("t", "e", key, "d")
        assert isinstance(claim, Claimed)
        store.complete("t", "e", key, claim.holder, status=201, body=b"", headers={})
    now[0] = IDEMPOTENCY_WINDOW + 1
    assert store.purge() == 2
    assert store.purge() == 0
    busy = IdempotencyStore(gateway_engine, clock=lambda: now[0], purge_every=3)
    for key in ("c", "d"):
        busy.claim("t", "e", key, "d")
    now[0] = 3 * IDEMPOTENCY_WINDOW
    busy.claim("t", "e", "f", "d")  # the third claim purges c and d on the way
    assert busy.purge() == 0


def test_of_racing_first_uses_one_wins(gateway_engine: Engine) -> None:
    stores = [IdempotencyStore(gateway_engine) for _ in range(2)]  # two processes' stores
    start = threading.Barrier(8)

    def claim(n: int) -> Claimed | Pending | StoredAnswer:
        start.wait()
        return stores[n % 2].claim("tpp-1", "domestic-payments", "race", "d")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert sum(isinstance(r, Claimed) for r in results) == 1
    assert all(isinstance(r, Claimed | Pending) for r in results)
