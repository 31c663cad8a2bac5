"""The consent store: life cycle, expiry, single use, tenant isolation, the read cache; on
SQLite and PostgreSQL, by two stores on one database as two gateway processes are."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from canonical_model.pan import contains_clear_pan
from gateway.consents import ConsentKind, ConsentStatus, ConsentStore

AT = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
ACCESS = ConsentKind.ACCOUNT_ACCESS
PAYMENT = ConsentKind.DOMESTIC_PAYMENT


def test_life_cycle_expiry_and_isolation(gateway_engine: Engine) -> None:
    now = [AT]
    store = ConsentStore(gateway_engine, now=lambda: now[0])
    access = store.create(
        ACCESS, "tpp-1", {"Permissions": ["ReadBalances"]}, {"A": 1},
        expires_at=AT + dt.timedelta(hours=1),
    )  # fmt: skip
    assert access.status is ConsentStatus.AWAU and access.consent_id.startswith("aac-")
    ids = [store.create(PAYMENT, "t", {}, {}).consent_id for _ in range(50)]
    assert not any(contains_clear_pan(i) for i in ids)  # the journal would refuse them
    assert store.get(access.consent_id, "tpp-2", ACCESS) is None
    assert store.get(access.consent_id, "tpp-1", PAYMENT) is None
    assert store.get("aac-unknown", "tpp-1", ACCESS) is None
    assert store.get(access.consent_id, "tpp-1", ACCESS) == access  # as created, read back
    assert store.authorise(access.consent_id, "tpp-2", ACCESS, "p", ()) is None
    assert store.reject(access.consent_id, "tpp-2", ACCESS) is None
    authorised = store.authorise(access.consent_id, "tpp-1", ACCESS, "p", ("a", "b"))
    assert authorised is not None and authorised.status is ConsentStatus.AUTH
    assert (authorised.psu, authorised.account_ids) == ("p", ("a", "b"))
    assert authorised.data == {"Permissions": ["ReadBalances"]} and authorised.risk == {"A": 1}
    assert store.authorise(access.consent_id, "tpp-1", ACCESS, "p", ()) is None  # not AWAU
    assert not store.revoke(access.consent_id, "tpp-2")
    now[0] = AT + dt.timedelta(hours=2)
    expired = store.get(access.consent_id, "tpp-1", ACCESS)
    assert expired is not None and expired.status is ConsentStatus.EXPD
    assert store.revoke(access.consent_id, "tpp-1")
    revoked = store.get(access.consent_id, "tpp-1", ACCESS)
    assert revoked is not None and revoked.status is ConsentStatus.CANC
    assert store.count() == 51


def test_an_expired_consent_cannot_be_authorised(gateway_engine: Engine) -> None:
    now = [AT]
    store = ConsentStore(gateway_engine, now=lambda: now[0])
    consent = store.create(ACCESS, "tpp-1", {}, {}, expires_at=AT + dt.timedelta(minutes=5))
    now[0] = AT + dt.timedelta(minutes=5)
    assert store.authorise(consent.consent_id, "tpp-1", ACCESS, "p", ()) is None
    found = store.get(consent.consent_id, "tpp-1", ACCESS)
    assert found is not None and found.status is ConsentStatus.EXPD


def test_a_payment_consent_is_used_once(gateway_engine: Engine) -> None:
    store = ConsentStore(gateway_engine)
    consent = store.create(PAYMENT, "tpp-1", {"Initiation": {}}, {})
    assert store.consume(consent.consent_id, "tpp-1", "pmt-1") is None  # not authorised yet
    store.authorise(consent.consent_id, "tpp-1", PAYMENT, "p", ("a",))
    assert store.consume(consent.consent_id, "tpp-2", "pmt-1") is None
    used = store.consume(consent.consent_id, "tpp-1", "pmt-1")
    assert used is not None and used.consumed_by == "pmt-1"
    assert store.consume(consent.consent_id, "tpp-1", "pmt-2") is None
    assert store.reject(consent.consent_id, "tpp-1", PAYMENT) is None
    assert store.count() == 1


def test_one_consent_raced_by_many_processes_is_used_once(gateway_engine: Engine) -> None:
    stores = [ConsentStore(gateway_engine) for _ in range(2)]
    consent = stores[0].create(PAYMENT, "tpp-1", {"Initiation": {}}, {})
    stores[1].authorise(consent.consent_id, "tpp-1", PAYMENT, "p", ("a",))
    for store in stores:  # both hold it, authorised, in their caches
        found = store.get(consent.consent_id, "tpp-1", PAYMENT)
        assert found is not None and found.status is ConsentStatus.AUTH
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda n: stores[n % 2].consume(consent.consent_id, "tpp-1", f"pmt-{n}"),
                range(16),
            )
        )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = ConsentStore(gateway_engine, cache_ttl=0).get(consent.consent_id, "tpp-1", PAYMENT)
    assert stored == winners[0]


def test_a_revocation_or_a_use_elsewhere_takes_effect_at_once(gateway_engine: Engine) -> None:
    """Two stores on one database are two gateway processes: what one changes, the other
    sees on its next read, cached or not."""
    clock = [0.0]
    here = ConsentStore(gateway_engine, cache_ttl=60.0, clock=lambda: clock[0])
    there = ConsentStore(gateway_engine, cache_ttl=60.0, clock=lambda: clock[0])
    consent = here.create(ACCESS, "tpp-1", {}, {})
    assert there.get(consent.consent_id, "tpp-1", ACCESS) is not None  # AWAU: never cached
    here.authorise(consent.consent_id, "tpp-1", ACCESS, "p", ("a",))
    seen = there.get(consent.consent_id, "tpp-1", ACCESS)
    assert seen is not None and seen.status is ConsentStatus.AUTH  # at once
    cached = here.get(consent.consent_id, "tpp-1", ACCESS)
    assert cached is not None and cached.status is ConsentStatus.AUTH
    assert there.revoke(consent.consent_id, "tpp-1")
    for store in (there, here):  # here served it from its cache until now
        revoked = store.get(consent.consent_id, "tpp-1", ACCESS)
        assert revoked is not None and revoked.status is ConsentStatus.CANC
    # the cache never serves another tenant
    assert here.get(consent.consent_id, "tpp-1", ACCESS) is not None
    assert here.get(consent.consent_id, "tpp-2", ACCESS) is None
    payment = here.create(PAYMENT, "tpp-1", {}, {})
    here.authorise(payment.consent_id, "tpp-1", PAYMENT, "p", ("a",))
    assert here.get(payment.consent_id, "tpp-1", PAYMENT) is not None  # cached here
    used = there.consume(payment.consent_id, "tpp-1", "pmt-1")
    assert used is not None
    assert here.get(payment.consent_id, "tpp-1", PAYMENT) == used


def test_consents_outlive_the_store(gateway_engine: Engine) -> None:
    before = ConsentStore(gateway_engine)
    consent = before.create(ACCESS, "tpp-1", {"Permissions": ["ReadBalances"]}, {})
    before.authorise(consent.consent_id, "tpp-1", ACCESS, "alice", ("acc-1",))
    after = ConsentStore(gateway_engine)  # a restarted process
    found = after.get(consent.consent_id, "tpp-1", ACCESS)
    assert found is not None and found.status is ConsentStatus.AUTH
    assert found.account_ids == ("acc-1",) and found.created_at == consent.created_at
