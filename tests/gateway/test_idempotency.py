"""x-idempotency-key storage: the 24-hour window, per tenant and endpoint."""

from __future__ import annotations

from gateway.idempotency import IDEMPOTENCY_WINDOW, IdempotencyStore


def test_answers_live_for_24_hours_per_tenant_and_endpoint() -> None:
    now = [1_000.0]
    store = IdempotencyStore(clock=lambda: now[0])
    digest = store.digest(b'{"a":1}')
    store.store("tpp-1", "payments", "k", body_digest=digest, status=201, body=b"{}", headers={})
    found = store.find("tpp-1", "payments", "k")
    assert found is not None and (found.status, found.body_digest) == (201, digest)
    assert store.find("tpp-2", "payments", "k") is None
    assert store.find("tpp-1", "consents", "k") is None
    now[0] += IDEMPOTENCY_WINDOW - 1
    assert store.find("tpp-1", "payments", "k") is not None
    now[0] += 2
    assert store.find("tpp-1", "payments", "k") is None  # the key may be used again
    assert IDEMPOTENCY_WINDOW == 86_400


def test_one_lock_per_key() -> None:
    store = IdempotencyStore()
    assert store.lock("t", "e", "k") is store.lock("t", "e", "k")
    assert store.lock("t", "e", "k") is not store.lock("t", "e", "other")
