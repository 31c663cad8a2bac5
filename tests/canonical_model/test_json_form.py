"""The canonical JSON form: exact round trip, strict reading, and its JSON Schema."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical_model import (
    CANONICAL_VERSION,
    CanonicalJsonError,
    CanonicalMessage,
    Card,
    Currency,
    Identifiers,
    MessageFunction,
    MessageKind,
    Money,
    PanToken,
    from_dict,
    from_json,
    json_form,
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


# -- the generated converters against the rules they were generated from ---------------------


def _reference_dump(value: object) -> Any:
    """The JSON form by its rules, read off the value: fields by name in order, an optional
    field left out when ``None`` or at its default; scalars as the module docstring says."""
    if isinstance(value, PanToken):
        return value.value
    if isinstance(value, Currency):
        return value.alpha
    if dataclasses.is_dataclass(value):
        out = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            optional = field.default is not dataclasses.MISSING
            if optional and (item is None or item == field.default):
                continue
            out[field.name] = _reference_dump(item)
        return out
    if isinstance(value, tuple):
        return [_reference_dump(item) for item in value]
    if isinstance(value, StrEnum | Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    assert isinstance(value, str | bool | int)
    return value


@settings(max_examples=300)
@given(messages)
def test_to_dict_follows_the_rules_field_by_field(message: CanonicalMessage) -> None:
    expected = {"canonical_version": CANONICAL_VERSION, **_reference_dump(message)}
    assert to_dict(message) == expected
    assert list(to_dict(message)) == list(expected)
    assert to_json(message) == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
    assert to_json(message, indent=2) == json.dumps(
        expected, separators=(",", ": "), indent=2, ensure_ascii=False
    )


_ODD_VALUES: list[object] = [
    None, 0, 1, True, 1.5, "", "x", [], {}, ["a"], [{}], {"zz": 1},
    "2026-11-28T10:00:00", "1.005", "4111111111111111", "XXY", "purchase",
]  # fmt: skip


@st.composite
def damaged(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (deep-copied) with one value replaced, one key removed, or one added, at
    some depth."""
    data = json.loads(json.dumps(data))
    node: Any = data
    for _ in range(draw(st.integers(0, 4))):
        children = list(node.values() if isinstance(node, dict) else node)
        containers = [child for child in children if isinstance(child, dict | list) and child]
        if not containers:
            break
        node = draw(st.sampled_from(containers))
    if isinstance(node, list):
        node[draw(st.integers(0, len(node) - 1))] = draw(st.sampled_from(_ODD_VALUES))
        return data
    operation = draw(st.sampled_from(["replace", "remove", "add"]))
    if operation == "add" or not node:
        key = draw(st.sampled_from(["colour", "amount", "tag", "kind", "message_id"]))
    else:
        key = draw(st.sampled_from(sorted(node)))
    if operation == "remove" and node:
        del node[key]
    else:
        node[key] = draw(st.sampled_from(_ODD_VALUES))
    return data


def _slow_and_fast(body: dict[str, Any]) -> tuple[object, object]:
    """What the path-tracking loader and the fast loader make of ``body``: a message, or
    the exception (type and text)."""
    outcomes = []
    for load in (json_form._MESSAGE.load, json_form._MESSAGE_FAST_LOAD):
        try:
            outcomes.append(load(body, "$"))
        except Exception as exc:
            outcomes.append((type(exc).__name__, str(exc)))
    return outcomes[0], outcomes[1]


@settings(max_examples=200)
@given(messages)
def test_the_fast_loader_reads_every_message_as_the_path_tracking_one(
    message: CanonicalMessage,
) -> None:
    body = {k: v for k, v in to_dict(message).items() if k != "canonical_version"}
    slow, fast = _slow_and_fast(body)
    assert slow == message
    assert fast == message


@settings(max_examples=500)
@given(messages, st.data())
def test_the_fast_loader_accepts_nothing_the_path_tracking_one_refuses(
    message: CanonicalMessage, data: st.DataObject
) -> None:
    body = {k: v for k, v in to_dict(message).items() if k != "canonical_version"}
    slow, fast = _slow_and_fast(data.draw(damaged(body)))
    if isinstance(fast, CanonicalMessage):
        assert slow == fast
    if not isinstance(slow, CanonicalMessage):
        assert not isinstance(fast, CanonicalMessage)
        assert isinstance(slow, tuple) and slow[0] == "CanonicalJsonError"


def _off_type(message: CanonicalMessage, **changes: object) -> CanonicalMessage:
    """``message`` with values of types its fields do not declare (set past the checks)."""
    copy = dataclasses.replace(message)
    for name, value in changes.items():
        object.__setattr__(copy, name, value)
    return copy


@pytest.mark.parametrize(
    "changes",
    [
        {"tenant": None},
        {"tenant": 7},
        {"repeat": 1},
        {"approval_code": 1.5},
        {"remittance": ("a", None, 2)},
        {"extensions": [{"key": "k"}]},
        {"approval_code": MessageKind.FINANCIAL},
    ],
)
def test_off_type_values_are_written_as_json_dumps_writes_them(changes: dict[str, object]) -> None:
    # The direct text writer knows strings, booleans, integers and None; anything else is
    # left to json.dumps, so the text (or the error) is json.dumps's whatever the values.
    message = _off_type(from_dict(_minimal()), **changes)
    outcomes = []
    for write in (
        to_json,
        lambda m: json.dumps(to_dict(m), separators=(",", ":"), ensure_ascii=False),
    ):
        try:
            outcomes.append(write(message))
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
    assert outcomes[0] == outcomes[1]
