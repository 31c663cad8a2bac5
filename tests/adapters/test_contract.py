"""The contract every registered adapter keeps (``ARCHITECTURE.md``, "The adapter seam").

Runs over every adapter in the registry and every variant: fixtures decode to the expected
canonical JSON, ``encode(decode(x))`` round-trips as the adapter's capabilities promise, no
clear PAN in repr / JSON / error text, property-based round trips, and random bytes give a
typed error, never a crash.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Adapter, AdapterDecodeError, BatchAdapter, RoundTrip
from adapters.registry import default_registry
from canonical_model import CanonicalMessage, find_clear_pans, to_dict, to_json
from tests.adapters.contracts import CONTRACTS, ContractFixture
from tests.support import decode_context, encode_context, fixed_vault

REGISTRY = default_registry()
ADAPTERS = [
    (name, variant)
    for name in REGISTRY.names()
    for variant in REGISTRY.adapter_class(name).variants
]
CASES = [
    pytest.param(name, variant, fixture, id=f"{name}:{variant}:{fixture.name}")
    for name, variant in ADAPTERS
    for fixture in CONTRACTS[name].fixtures(variant)
]


def _without_message_id(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "ids": {k: v for k, v in data["ids"].items() if k != "message_id"}}


def _without_sender_ids(message: CanonicalMessage) -> CanonicalMessage:
    """The message without the identifiers its sender chose (message, end-to-end,
    instruction ids...): they pass through verbatim by design, and a numeric one can be
    Luhn-valid by chance (a FedNow MsgId starts with a date and a routing number)."""
    ids = message.ids
    entry = message.statement_entry
    account = entry.counterparty_account if entry is not None else None
    if entry is not None and account is not None and account.scheme not in (None, "TOKEN"):
        # An account id under a declared scheme (BBAN...) is an account, not a card number,
        # even when its digits happen to pass the Luhn check.
        message = dataclasses.replace(
            message, statement_entry=dataclasses.replace(entry, counterparty_account=None)
        )
    return dataclasses.replace(message, ids=dataclasses.replace(
        ids, end_to_end_id=None, instruction_id=None, transaction_id=None,
        source_message_id=None, clearing_reference=None, correlation_key=None,
    ), business_header=None, original=None)  # fmt: skip


def test_every_registered_adapter_has_a_contract() -> None:
    assert sorted(CONTRACTS) == REGISTRY.names()


@pytest.mark.parametrize(("name", "variant"), ADAPTERS)
def test_adapter_satisfies_the_protocol(name: str, variant: str) -> None:
    adapter = REGISTRY.get(f"{name}:{variant}")
    assert isinstance(adapter, Adapter)
    assert adapter.name == name
    assert adapter.variant == variant
    assert adapter.capabilities.kinds


@pytest.mark.parametrize(("name", "variant", "fixture"), CASES)
def test_fixture_decodes_to_expected_canonical_json(
    name: str, variant: str, fixture: ContractFixture
) -> None:
    adapter = REGISTRY.get(f"{name}:{variant}")
    message = adapter.decode(fixture.payload, decode_context(fixed_vault()))
    assert _without_message_id(to_dict(message)) == _without_message_id(fixture.expected)


@pytest.mark.parametrize(("name", "variant", "fixture"), CASES)
def test_fixture_round_trips(name: str, variant: str, fixture: ContractFixture) -> None:
    adapter = REGISTRY.get(f"{name}:{variant}")
    if adapter.capabilities.round_trip is RoundTrip.NONE:
        pytest.skip(f"{name} promises no round trip")
    vault = fixed_vault()
    message = adapter.decode(fixture.payload, decode_context(vault))
    encoded = adapter.encode(message, encode_context(adapter, vault))
    if fixture.exact_bytes or adapter.capabilities.round_trip is RoundTrip.BYTES:
        assert encoded == fixture.payload
    else:
        assert encoded != fixture.payload  # it held data the adapter drops on purpose
    again = adapter.decode(encoded, decode_context(vault))
    assert again.same_transaction(message)


@pytest.mark.parametrize(("name", "variant", "fixture"), CASES)
def test_no_clear_pan_in_repr_json_or_error_text(
    name: str, variant: str, fixture: ContractFixture
) -> None:
    adapter = REGISTRY.get(f"{name}:{variant}")
    message = _without_sender_ids(adapter.decode(fixture.payload, decode_context(fixed_vault())))
    assert find_clear_pans(repr(message)) == []
    assert find_clear_pans(to_json(message)) == []
    for cut in range(0, len(fixture.payload), max(1, len(fixture.payload) // 400)):
        broken = fixture.payload[:cut]
        try:
            adapter.decode(broken, decode_context(fixed_vault()))
        except AdapterDecodeError as exc:
            text = f"{exc} {exc.context} {exc.reason}"
            assert find_clear_pans(text) == [], (cut, text)
            assert exc.__cause__ is None
            assert exc.__context__ is None


@pytest.mark.parametrize(("name", "variant"), ADAPTERS)
def test_property_round_trip(name: str, variant: str) -> None:
    adapter = REGISTRY.get(f"{name}:{variant}")
    payloads = CONTRACTS[name].payloads(variant)

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(payloads)
    def check(payload: bytes) -> None:
        vault = fixed_vault()
        if isinstance(adapter, BatchAdapter):
            messages = adapter.decode_batch(payload, decode_context(vault))
            encoded = adapter.encode_batch(messages, encode_context(adapter, vault))
            again = adapter.decode_batch(encoded, decode_context(vault))
        else:
            messages = [adapter.decode(payload, decode_context(vault))]
            encoded = adapter.encode(messages[0], encode_context(adapter, vault))
            again = [adapter.decode(encoded, decode_context(vault))]
        if all(m.card is None or not m.card.dropped for m in messages):
            assert encoded == payload
        assert len(again) == len(messages)
        for second, first in zip(again, messages, strict=True):
            assert second.same_transaction(first)
            assert find_clear_pans(to_json(_without_sender_ids(first))) == []

    check()


@pytest.mark.parametrize(("name", "variant"), ADAPTERS)
def test_random_bytes_give_a_typed_error_never_a_crash(name: str, variant: str) -> None:
    adapter = REGISTRY.get(f"{name}:{variant}")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def check(payload: bytes) -> None:
        try:
            adapter.decode(payload, decode_context(fixed_vault()))
        except AdapterDecodeError as exc:
            assert find_clear_pans(str(exc)) == []

    check()
