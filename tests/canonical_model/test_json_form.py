"""The canonical JSON form: exact round trip, strict reading, and its JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from canonical_model import (
    CANONICAL_VERSION,
    CanonicalJsonError,
    CanonicalMessage,
    Card,
    Identifiers,
    MessageFunction,
    MessageKind,
    Money,
    PanToken,
    from_dict,
    from_json,
    json_schema,
    to_dict,
    to_json,
)
from tests.canonical_model.strategies import messages


@settings(max_examples=300)
@given(messages)
def test_json_round_trip_is_exact(message: CanonicalMessage) -> None:
    text = to_json(message)
    assert from_json(text) == message
    assert to_json(from_json(text)) == text


def _minimal() -> dict[str, Any]:
    return {
        "canonical_version": CANONICAL_VERSION,
        "kind": "financial",
        "function": "request",
        "tenant": "t",
        "ids": {"message_id": "m"},
    }


def test_amounts_are_decimal_strings_scaled_to_the_currency() -> None:
    message = CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "t",
        Identifiers("m"),
        amount=Money.of("7", "BHD"),
    )
    assert to_dict(message)["amount"] == {"amount": "7.000", "currency": "BHD"}


@pytest.mark.parametrize(
    ("patch", "path", "reason"),
    [
        ({"canonical_version": 2}, "$.canonical_version", "unsupported canonical version 2"),
        ({"kind": "purchase"}, "$.kind", "'purchase' is not one of"),
        ({"amount": {"amount": 1.5, "currency": "EUR"}}, "$.amount.amount", "got float"),
        ({"amount": {"amount": "1.505", "currency": "EUR"}}, "$.amount", "decimal places"),
        ({"amount": {"amount": "1", "currency": "XXY"}}, "$.amount.currency", "unknown ISO 4217"),
        ({"tenant": None}, "$.tenant", "expected a string"),
        ({"colour": "red"}, "$", "unknown field 'colour'"),
        ({"card": {"token": "4111111111111111"}}, "$.card.token", "Luhn"),
        ({"transmitted_at": "2026-11-28T10:00:00"}, "$.transmitted_at", "no UTC offset"),
    ],
)
def test_bad_json_is_refused_with_its_path(patch: dict[str, Any], path: str, reason: str) -> None:
    data = {**_minimal(), **patch}
    with pytest.raises(CanonicalJsonError) as info:
        from_dict(data)
    assert info.value.path == path
    assert reason in info.value.reason


def test_missing_required_field_is_named() -> None:
    data = _minimal()
    del data["ids"]["message_id"]
    with pytest.raises(CanonicalJsonError, match=r"\$\.ids: missing required field 'message_id'"):
        from_dict(data)


def test_not_json_names_the_offset() -> None:
    with pytest.raises(CanonicalJsonError, match="offset 1"):
        from_json("{x")


def test_clear_pan_cannot_enter_a_card() -> None:
    with pytest.raises(ValueError, match="Luhn"):
        Card(token=PanToken("5413330089010012"))


def _walk_refs(node: object, refs: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            refs.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _walk_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, refs)


def test_schema_is_closed_and_every_reference_resolves() -> None:
    schema = json_schema()
    json.dumps(schema)
    assert schema["required"][:2] == ["canonical_version", "kind"]
    refs: set[str] = set()
    _walk_refs(schema, refs)
    assert refs <= set(schema["$defs"])
    assert "Money" in refs and "Card" in refs
    for definition in schema["$defs"].values():
        assert definition["additionalProperties"] is False


@settings(max_examples=100)
@given(messages)
def test_every_written_field_is_in_the_schema(message: CanonicalMessage) -> None:
    schema = json_schema()

    def check(data: object, node: dict[str, Any]) -> None:
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        if isinstance(data, dict):
            assert node["type"] == "object"
            for key, value in data.items():
                assert key in node["properties"], key
                check(value, node["properties"][key])
            for key in node.get("required", []):
                assert key in data
        elif isinstance(data, list):
            assert node["type"] == "array"
            for item in data:
                check(item, node["items"])
        elif isinstance(data, str):
            assert node.get("type") == "string" or "const" in node
            if "enum" in node:
                assert data in node["enum"]

    check(to_dict(message), schema)
