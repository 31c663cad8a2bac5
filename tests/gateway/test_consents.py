"""The consent store: life cycle, expiry, single use, tenant isolation."""

from __future__ import annotations

import datetime as dt

from canonical_model.pan import contains_clear_pan
from gateway.consents import ConsentKind, ConsentStatus, ConsentStore

AT = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)


def test_life_cycle_expiry_and_isolation() -> None:
    now = [AT]
    store = ConsentStore(now=lambda: now[0])
    access = store.create(
        ConsentKind.ACCOUNT_ACCESS, "tpp-1", {"Permissions": ["ReadBalances"]}, {},
        expires_at=AT + dt.timedelta(hours=1),
    )  # fmt: skip
    assert access.status is ConsentStatus.AWAU and access.consent_id.startswith("aac-")
    ids = [store.create(ConsentKind.DOMESTIC_PAYMENT, "t", {}, {}).consent_id for _ in range(500)]
    assert not any(contains_clear_pan(i) for i in ids)  # the journal would refuse them
    assert store.get(access.consent_id, "tpp-2", ConsentKind.ACCOUNT_ACCESS) is None
    assert store.get(access.consent_id, "tpp-1", ConsentKind.DOMESTIC_PAYMENT) is None
    assert store.authorise(access.consent_id, "tpp-2", ConsentKind.ACCOUNT_ACCESS, "p", ()) is None
    authorised = store.authorise(
        access.consent_id, "tpp-1", ConsentKind.ACCOUNT_ACCESS, "p", ("a",)
    )
    assert authorised is not None and authorised.status is ConsentStatus.AUTH
    assert not store.revoke(access.consent_id, "tpp-2")
    now[0] = AT + dt.timedelta(hours=2)
    expired = store.get(access.consent_id, "tpp-1", ConsentKind.ACCOUNT_ACCESS)
    assert expired is not None and expired.status is ConsentStatus.EXPD
    assert store.authorise(access.consent_id, "tpp-1", ConsentKind.ACCOUNT_ACCESS, "p", ()) is None


def test_a_payment_consent_is_used_once() -> None:
    store = ConsentStore()
    consent = store.create(ConsentKind.DOMESTIC_PAYMENT, "tpp-1", {"Initiation": {}}, {})
    assert store.consume(consent.consent_id, "tpp-1", "pmt-1") is None  # not authorised yet
    store.authorise(consent.consent_id, "tpp-1", ConsentKind.DOMESTIC_PAYMENT, "p", ("a",))
    assert store.consume(consent.consent_id, "tpp-2", "pmt-1") is None
    used = store.consume(consent.consent_id, "tpp-1", "pmt-1")
    assert used is not None and used.consumed_by == "pmt-1"
    assert store.consume(consent.consent_id, "tpp-1", "pmt-2") is None
    assert store.reject(consent.consent_id, "tpp-1", ConsentKind.DOMESTIC_PAYMENT) is None
    assert store.count() == 1
