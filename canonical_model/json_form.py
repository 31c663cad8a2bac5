"""The canonical JSON form: versioned, exact round trip, with a JSON Schema.

``to_json`` writes a :class:`~canonical_model.messages.CanonicalMessage` as JSON with a
``canonical_version`` key; ``from_json`` reads it back to an equal message (and
``to_json(from_json(s)) == s`` for anything ``to_json`` wrote). Fields at their default
(``None``, empty, ``false``) are left out. Amounts are decimal strings (never floats),
currencies their alphabetic code, times ISO 8601, a PAN token its digits.

Converters are derived once per dataclass from its type hints, so the JSON form, the
reader and the JSON Schema (:func:`json_schema`) cannot drift apart.

>>> from canonical_model.messages import CanonicalMessage, Identifiers, MessageKind, MessageFunction
>>> from canonical_model.money import Money
>>> m = CanonicalMessage(MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme",
...                      Identifiers("m-1"), amount=Money.of("1.50", "GBP"))
>>> text = to_json(m)
>>> text
'{"canonical_version":1,"kind":"financial","function":"request","tenant":"acme","ids":{"message_id":"m-1"},"amount":{"amount":"1.50","currency":"GBP"}}'
>>> from_json(text) == m
True
>>> from_json(
...     '{"canonical_version":1,"kind":"financial","function":"request","tenant":"a",'
...     '"ids":{"message_id":"m"},"amount":{"amount":1.5,"currency":"GBP"}}'
... )
Traceback (most recent call last):
...
canonical_model.json_form.CanonicalJsonError: $.amount.amount: expected a decimal string, got float
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from canonical_model.currency import Currency, UnknownCurrencyError, currency
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import PanToken

__all__ = [
    "CANONICAL_VERSION",
    "CanonicalJsonError",
    "from_dict",
    "from_json",
    "json_schema",
    "to_dict",
    "to_json",
]

CANONICAL_VERSION = 1
_VERSION_KEY = "canonical_version"

JsonValue = Any
_Dump = Callable[[Any], JsonValue]
_Load = Callable[[JsonValue, str], Any]


class CanonicalJsonError(ValueError):
    """Canonical JSON that does not describe a valid message; names the JSON path."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _expect(value: JsonValue, kind: type, what: str, path: str) -> None:
    if type(value) is kind:  # the common case, decided at once
        return
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise CanonicalJsonError(path, f"expected {what}, got {type(value).__name__}")


def _load_str(value: JsonValue, path: str) -> str:
    if type(value) is str:
        return value
    _expect(value, str, "a string", path)
    return typing.cast(str, value)


def _load_bool(value: JsonValue, path: str) -> bool:
    _expect(value, bool, "true or false", path)
    return typing.cast(bool, value)


def _load_int(value: JsonValue, path: str) -> int:
    _expect(value, int, "an integer", path)
    return typing.cast(int, value)


def _load_decimal(value: JsonValue, path: str) -> Decimal:
    _expect(value, str, "a decimal string", path)
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise CanonicalJsonError(path, f"{value!r} is not a decimal number") from None
    if not result.is_finite():
        raise CanonicalJsonError(path, f"{value!r} is not a finite number")
    return result


def _load_datetime(value: JsonValue, path: str) -> dt.datetime:
    _expect(value, str, "an ISO 8601 date-time string", path)
    try:
        result = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CanonicalJsonError(path, f"{value!r} is not an ISO 8601 date-time") from None
    if result.tzinfo is None:
        raise CanonicalJsonError(path, f"{value!r} has no UTC offset")
    return result


def _load_date(value: JsonValue, path: str) -> dt.date:
    _expect(value, str, "an ISO 8601 date string", path)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CanonicalJsonError(path, f"{value!r} is not an ISO 8601 date") from None


def _load_time(value: JsonValue, path: str) -> dt.time:
    _expect(value, str, "an ISO 8601 time string", path)
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise CanonicalJsonError(path, f"{value!r} is not an ISO 8601 time") from None


def _load_currency(value: JsonValue, path: str) -> Currency:
    _expect(value, str, "an ISO 4217 alphabetic code", path)
    try:
        return currency(value)
    except UnknownCurrencyError as exc:
        raise CanonicalJsonError(path, str(exc)) from None


def _load_token(value: JsonValue, path: str) -> PanToken:
    _expect(value, str, "a token string", path)
    try:
        return PanToken(value)
    except ValueError as exc:
        raise CanonicalJsonError(path, str(exc)) from None


def _identity(value: Any) -> JsonValue:
    return value


_SCALARS: dict[Any, tuple[_Dump, _Load, dict[str, Any]]] = {
    str: (_identity, _load_str, {"type": "string"}),
    bool: (_identity, _load_bool, {"type": "boolean"}),
    int: (_identity, _load_int, {"type": "integer"}),
    Decimal: (str, _load_decimal, {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}),
    dt.datetime: (dt.datetime.isoformat, _load_datetime, {"type": "string", "format": "date-time"}),
    dt.date: (dt.date.isoformat, _load_date, {"type": "string", "format": "date"}),
    dt.time: (dt.time.isoformat, _load_time, {"type": "string", "format": "time"}),
    Currency: (
        lambda c: c.alpha,
        _load_currency,
        {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 alphabetic code"},
    ),
    PanToken: (
        lambda t: t.value,
        _load_token,
        {
            "type": "string",
            "pattern": r"^\d{12,19}$",
            "description": "PAN token: PAN length, fails the Luhn check",
        },
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    dump: _Dump
    load: _Load
    default: Any
    required: bool


_CONVERTERS: dict[Any, tuple[_Dump, _Load]] = {}
_SCHEMA_DEFS: dict[str, dict[str, Any]] = {}


_BUILDING = threading.RLock()


def _converter(hint: Any) -> tuple[_Dump, _Load]:
    cached = _CONVERTERS.get(hint)
    if cached is not None:
        return cached
    # A dataclass converter is registered before its fields are resolved (recursion): other
    # threads must not see it half-built, so building is one thread at a time.
    with _BUILDING:
        cached = _CONVERTERS.get(hint)
        if cached is not None:
            return cached
        built = _build_converter(hint)
        _CONVERTERS[hint] = built
        return built


def _build_converter(hint: Any) -> tuple[_Dump, _Load]:
    if hint in _SCALARS:
        dump, load, _ = _SCALARS[hint]
        return dump, load
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return _converter(inner)
    if origin is tuple:
        item_dump, item_load = _converter(args[0])

        def dump_tuple(value: tuple[Any, ...]) -> JsonValue:
            return [item_dump(item) for item in value]

        def load_tuple(value: JsonValue, path: str) -> tuple[Any, ...]:
            _expect(value, list, "an array", path)
            return tuple(item_load(item, f"{path}[{i}]") for i, item in enumerate(value))

        return dump_tuple, load_tuple
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        enum_type = hint
        allowed = ", ".join(m.value for m in enum_type)

        def load_enum(value: JsonValue, path: str) -> StrEnum:
            _expect(value, str, "a string", path)
            try:
                return enum_type(value)
            except ValueError:
                raise CanonicalJsonError(path, f"{value!r} is not one of: {allowed}") from None

        return str, load_enum
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_converter(hint)
    raise TypeError(f"no canonical JSON form for {hint!r}")


def _fields(cls: type) -> list[_Field]:
    hints = typing.get_type_hints(cls)
    result = []
    for field in dataclasses.fields(cls):
        dump, load = _converter(hints[field.name])
        has_default = field.default is not dataclasses.MISSING
        result.append(_Field(field.name, dump, load, field.default, not has_default))
    return result


def _dataclass_converter(cls: type) -> tuple[_Dump, _Load]:
    fields: list[_Field] = []
    names: frozenset[str] = frozenset()

    def dump(value: Any) -> JsonValue:
        out: dict[str, JsonValue] = {}
        for f in fields:
            item = getattr(value, f.name)
            if not f.required and (item is None or item == f.default):
                continue
            out[f.name] = f.dump(item)
        return out

    loaders: dict[str, _Load] = {}
    required: tuple[str, ...] = ()

    def load(value: JsonValue, path: str) -> Any:
        _expect(value, dict, "an object", path)
        unknown = value.keys() - names
        if unknown:
            raise CanonicalJsonError(path, f"unknown field {sorted(unknown)[0]!r}")
        for name in required:
            if name not in value:
                raise CanonicalJsonError(path, f"missing required field {name!r}")
        # Only the fields present are visited: most of a message's ~35 fields are absent.
        kwargs = {name: loaders[name](item, f"{path}.{name}") for name, item in value.items()}
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise CanonicalJsonError(path, str(exc)) from None

    # Registered before the fields are resolved, so recursive types terminate.
    _CONVERTERS[cls] = (dump, load)
    fields.extend(_fields(cls))
    names = frozenset(f.name for f in fields)
    loaders.update((f.name, f.load) for f in fields)
    required = tuple(f.name for f in fields if f.required)
    return dump, load


def to_dict(message: CanonicalMessage) -> dict[str, JsonValue]:
    """The canonical JSON form as Python data (``json.dumps`` writes it)."""
    dump, _ = _converter(CanonicalMessage)
    body: dict[str, JsonValue] = dump(message)
    return {_VERSION_KEY: CANONICAL_VERSION, **body}


def from_dict(data: JsonValue) -> CanonicalMessage:
    """A message from its canonical JSON form as Python data."""
    _expect(data, dict, "an object", "$")
    version = data.get(_VERSION_KEY)
    if version != CANONICAL_VERSION:
        raise CanonicalJsonError(
            f"$.{_VERSION_KEY}",
            f"unsupported canonical version {version!r} (this build reads {CANONICAL_VERSION})",
        )
    body = {k: v for k, v in data.items() if k != _VERSION_KEY}
    _, load = _converter(CanonicalMessage)
    return typing.cast(CanonicalMessage, load(body, "$"))


def to_json(message: CanonicalMessage, *, indent: int | None = None) -> str:
    """The canonical JSON text of a message (compact unless ``indent`` is given)."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(to_dict(message), separators=separators, indent=indent, ensure_ascii=False)


def from_json(text: str | bytes) -> CanonicalMessage:
    """A message from canonical JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CanonicalJsonError("$", f"not JSON: {exc.msg} at offset {exc.pos}") from None
    return from_dict(data)


# -- JSON Schema ---------------------------------------------------------------------------


def _schema_for(hint: Any) -> dict[str, Any]:
    if hint in _SCALARS:
        return dict(_SCALARS[hint][2])
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return _schema_for(inner)
    if origin is tuple:
        return {"type": "array", "items": _schema_for(args[0])}
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return {"type": "string", "enum": [m.value for m in hint]}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in _SCHEMA_DEFS:
            _SCHEMA_DEFS[name] = {}  # placeholder against recursion
            _SCHEMA_DEFS[name] = _object_schema(hint)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {hint!r}")


def _object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(cls):
        properties[field.name] = _schema_for(hints[field.name])
        if field.default is dataclasses.MISSING:
            required.append(field.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split("\n\n")[0].split())
    if required:
        schema["required"] = required
    return schema


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the canonical JSON form, for integration engineers."""
    root = _object_schema(CanonicalMessage)
    _schema_for(CanonicalMessage)
    root["properties"] = {
        _VERSION_KEY: {"const": CANONICAL_VERSION},
        **root["properties"],
    }
    root["required"] = [_VERSION_KEY, *root.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://isobridge.dev/schema/canonical/v{CANONICAL_VERSION}.json",
        "title": "isobridge canonical message",
        **root,
        "$defs": {k: v for k, v in sorted(_SCHEMA_DEFS.items()) if k != "CanonicalMessage"},
    }


# Built at import, before any thread can ask: the converters are then read-only.
_converter(CanonicalMessage)
