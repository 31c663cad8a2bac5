"""The canonical JSON form: versioned, exact round trip, with a JSON Schema.

``to_json`` writes a :class:`~canonical_model.messages.CanonicalMessage` as JSON with a
``canonical_version`` key; ``from_json`` reads it back to an equal message (and
``to_json(from_json(s)) == s`` for anything ``to_json`` wrote). Fields at their default
(``None``, empty, ``false``) are left out. Amounts are decimal strings (never floats),
currencies their alphabetic code, times ISO 8601, a PAN token its digits.

Converters are derived once per dataclass from its type hints, so the JSON form, the
reader and the JSON Schema (:func:`json_schema`) cannot drift apart.

Speed: from those converters, each dataclass gets three functions generated as straight-line
Python at import (one attribute read or one look-up, and one test, per field):

- its *dump* to JSON data (:func:`to_dict`);
- its *writer* of compact JSON text, which :func:`to_json` uses: the text ``json.dumps``
  would make of the dump, string values encoded by ``json``'s own C string encoder. A value
  the writer does not know (one of a type its field does not declare) leaves the whole text
  to ``json.dumps``;
- its *fast loader*, which checks each field's JSON type but tracks no JSON path. When it
  meets anything it does not expect (a wrong type, an unknown or a missing field, a value
  refused), :func:`from_dict` reads the data again with the path-tracking loader, which
  raises the error: errors name the path exactly as before. The fast loader accepts nothing
  the other refuses, and builds the same message from what it accepts.

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

import contextlib
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

from canonical_model.construct import fast_constructor
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
_Write = Callable[[Any], str]


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


class _Converter(typing.NamedTuple):
    """How one type travels: ``dump`` to JSON data, ``load`` back (naming the JSON path in
    its errors), ``fast``, the JSON type to expect and the loader to apply (``None``: the
    value as it is) on the fast path, where paths are not tracked, and ``write``, straight
    to compact JSON text (what ``json.dumps`` makes of ``dump``'s result, or an exception).
    ``dumps_string``: ``dump`` gives a string (of a value of the right type)."""

    dump: _Dump
    load: _Load
    fast: tuple[type, _Load | None]
    write: _Write
    dumps_string: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    converter: _Converter
    default: Any
    required: bool


_CONVERTERS: dict[Any, _Converter] = {}
_SCHEMA_DEFS: dict[str, dict[str, Any]] = {}


_BUILDING = threading.RLock()


def _converter(hint: Any) -> _Converter:
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


def _build_converter(hint: Any) -> _Converter:
    if hint in _SCALARS:
        dump, load, _ = _SCALARS[hint]
        json_type = _JSON_TYPES.get(hint, str)
        if json_type is not str:
            return _Converter(dump, load, (json_type, None), _write_scalar, False)
        if dump is _identity:
            return _Converter(dump, load, (str, None), _encode_str, True)

        def write_string(value: Any) -> str:
            return _encode_str(dump(value))

        return _Converter(dump, load, (str, load), write_string, True)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return _converter(inner)
    if origin is tuple:
        item = _converter(args[0])
        item_dump, item_load, item_write = item.dump, item.load, item.write
        item_type, item_fast = item.fast

        def dump_tuple(value: tuple[Any, ...]) -> JsonValue:
            return [item_dump(item) for item in value]

        def load_tuple(value: JsonValue, path: str) -> tuple[Any, ...]:
            _expect(value, list, "an array", path)
            return tuple(item_load(item, f"{path}[{i}]") for i, item in enumerate(value))

        def fast_tuple(value: JsonValue, path: str) -> tuple[Any, ...]:
            for item in value:
                if type(item) is not item_type:
                    raise _FastPathError
            if item_fast is None:
                return tuple(value)
            return tuple([item_fast(item, path) for item in value])

        def write_tuple(value: tuple[Any, ...]) -> str:
            return "[" + ",".join([item_write(item) for item in value]) + "]"

        return _Converter(dump_tuple, load_tuple, (list, fast_tuple), write_tuple, False)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        enum_type = hint
        allowed = ", ".join(m.value for m in enum_type)

        def load_enum(value: JsonValue, path: str) -> StrEnum:
            _expect(value, str, "a string", path)
            try:
                return enum_type(value)
            except ValueError:
                raise CanonicalJsonError(path, f"{value!r} is not one of: {allowed}") from None

        def write_enum(value: StrEnum) -> str:
            return _encode_str(str(value))

        return _Converter(str, load_enum, (str, load_enum), write_enum, True)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_converter(hint)
    raise TypeError(f"no canonical JSON form for {hint!r}")


_JSON_TYPES: dict[Any, type] = {bool: bool, int: int}
"""The JSON type of the scalars that are not strings in JSON."""


_MISSING: Any = object()


class _FastPathError(Exception):
    """The fast path declines: the path-tracking loader decides (and names what is wrong)."""


def _fields(cls: type) -> list[_Field]:
    hints = typing.get_type_hints(cls)
    result = []
    for field in dataclasses.fields(cls):
        has_default = field.default is not dataclasses.MISSING
        result.append(
            _Field(field.name, _converter(hints[field.name]), field.default, not has_default)
        )
    return result


def _dataclass_converter(cls: type) -> _Converter:
    generated: dict[str, Callable[..., Any]] = {}

    # These three are reached only through a recursive type, before the code is generated.
    def dump(value: Any) -> JsonValue:
        return generated["dump"](value)

    def fast_load(value: JsonValue, path: str) -> Any:
        return generated["fast_load"](value, path)

    def write(value: Any) -> str:
        return typing.cast(str, generated["write"](value))

    names: frozenset[str] = frozenset()
    required: tuple[str, ...] = ()
    loaders: dict[str, _Load] = {}

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
    _CONVERTERS[cls] = _Converter(dump, load, (dict, fast_load), write, False)
    fields = _fields(cls)
    names = frozenset(f.name for f in fields)
    required = tuple(f.name for f in fields if f.required)
    loaders.update((f.name, f.converter.load) for f in fields)
    generated["dump"] = _generate_dump(cls, fields)
    generated["write"] = _generate_write(cls, fields)
    generated["fast_load"] = _generate_fast_load(cls, fields)
    return _Converter(
        generated["dump"], load, (dict, generated["fast_load"]), generated["write"], False
    )


def _generate(name: str, lines: list[str], namespace: dict[str, Any], cls: type) -> Any:
    """The function ``name`` defined by ``lines`` (Python source) in ``namespace``."""
    source = "\n".join(lines) + "\n"
    # source generated here from the dataclass fields, never from input data
    exec(compile(source, f"<canonical JSON {name} of {cls.__name__}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _present_fields(fields: list[_Field], emit: Callable[[int, _Field], str]) -> list[str]:
    """Source lines visiting each field of ``value`` in order: ``item`` is read, and the line
    ``emit`` gives is run unless the field is optional and ``None`` or at its default."""
    lines = []
    for index, field in enumerate(fields):
        lines.append(f"    item = value.{field.name}")
        if field.required:
            lines.append(f"    {emit(index, field)}")
            continue
        if field.default is None:
            lines.append("    if item is not None:")
        else:
            lines.append(f"    if item is not None and item != default_{index}:")
        lines.append(f"        {emit(index, field)}")
    return lines


def _namespace(fields: list[_Field]) -> dict[str, Any]:
    """What the generated code of these fields refers to: converters, defaults."""
    namespace: dict[str, Any] = {"_encode_str": _encode_str}
    for index, field in enumerate(fields):
        namespace[f"dump_{index}"] = field.converter.dump
        namespace[f"write_{index}"] = field.converter.write
        namespace[f"default_{index}"] = field.default
    return namespace


def _generate_dump(cls: type, fields: list[_Field]) -> _Dump:
    """The dump function of a dataclass, as straight-line code: one attribute read and one
    test per field, the field's converter called only when it is not the identity.
    """

    def emit(index: int, field: _Field) -> str:
        converted = "item" if field.converter.dump is _identity else f"dump_{index}(item)"
        return f"out[{field.name!r}] = {converted}"

    lines = ["def dump(value):", "    out = {}", *_present_fields(fields, emit), "    return out"]
    dump: _Dump = _generate("dump", lines, _namespace(fields), cls)
    return dump


def _generate_write(cls: type, fields: list[_Field]) -> _Write:
    """The JSON text writer of a dataclass: what ``json.dumps`` (compact, not ASCII-only)
    makes of its dump, built field by field; string values go straight to the C string
    encoder. Raises where ``json.dumps`` might write what the writer does not know."""

    def emit(index: int, field: _Field) -> str:
        key = _encode_str(field.name) + ":"
        if not field.converter.dumps_string:
            return f"out.append({key!r} + write_{index}(item))"
        if field.converter.dump is _identity:
            return f"out.append({key!r} + _encode_str(item))"
        return f"out.append({key!r} + _encode_str(dump_{index}(item)))"

    lines = [
        "def write(value):",
        "    out = []",
        *_present_fields(fields, emit),
        '    return "{" + ",".join(out) + "}"',
    ]
    write: _Write = _generate("write", lines, _namespace(fields), cls)
    return write


_encode_str: Callable[[str], str] = json.encoder.encode_basestring
"""A JSON string as ``json.dumps(..., ensure_ascii=False)`` writes it (the C function)."""


def _write_scalar(value: Any) -> str:
    """A scalar as ``json.dumps`` writes it; raises :class:`_FastPathError` for anything
    that is not ``None``, a bool, a string or an integer (left to ``json.dumps``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_str(value)
    if isinstance(value, int):
        return int.__repr__(value)
    raise _FastPathError


def _constructor(cls: type) -> Callable[..., Any]:
    """``cls``, or the faster function that builds the same instance (see :mod:`.construct`)."""
    try:
        return fast_constructor(cls)
    except TypeError:
        return cls


def _generate_fast_load(cls: type, fields: list[_Field]) -> _Load:
    """The fast-path loader of a dataclass, as straight-line code: each field looked up,
    its JSON type checked, converted if it needs to be, and the class called with every
    field in order. Raises (:class:`_FastPathError` or the converter's error) on anything else:
    a missing required field, an unknown field, a value of another type or refused.
    """
    namespace: dict[str, Any] = {
        "_cls": _constructor(cls),
        "_FastPathError": _FastPathError,
        "_MISSING": _MISSING,
    }
    lines = [
        "def fast_load(value, path):",
        "    get = value.get",
        f"    found = {sum(f.required for f in fields)}",
    ]
    arguments = []
    for index, field in enumerate(fields):
        json_type, convert = field.converter.fast
        namespace[f"type_{index}"] = json_type
        namespace[f"convert_{index}"] = convert
        namespace[f"default_{index}"] = field.default
        argument = f"a{index}"
        arguments.append(argument)
        converted = "item" if convert is None else f"convert_{index}(item, path)"
        lines.append(f"    item = get({field.name!r}, _MISSING)")
        if field.required:  # _MISSING fails the type check
            lines.append(f"    if type(item) is not type_{index}:")
            lines.append("        raise _FastPathError")
            lines.append(f"    {argument} = {converted}")
        else:
            lines.append("    if item is _MISSING:")
            lines.append(f"        {argument} = default_{index}")
            lines.append(f"    elif type(item) is type_{index}:")
            lines.append(f"        {argument} = {converted}")
            lines.append("        found += 1")
            lines.append("    else:")
            lines.append("        raise _FastPathError")
    lines.append("    if found != len(value):  # unknown fields")
    lines.append("        raise _FastPathError")
    lines.append(f"    return _cls({', '.join(arguments)})")
    fast_load: _Load = _generate("fast_load", lines, namespace, cls)
    return fast_load


def to_dict(message: CanonicalMessage) -> dict[str, JsonValue]:
    """The canonical JSON form as Python data (``json.dumps`` writes it)."""
    body: dict[str, JsonValue] = _MESSAGE.dump(message)
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
    # Declined or refused by the fast loader: the path-tracking loader decides, and says where.
    with contextlib.suppress(Exception):
        return typing.cast(CanonicalMessage, _MESSAGE_FAST_LOAD(body, "$"))
    return typing.cast(CanonicalMessage, _MESSAGE.load(body, "$"))


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``, built once."""


def to_json(message: CanonicalMessage, *, indent: int | None = None) -> str:
    """The canonical JSON text of a message (compact unless ``indent`` is given)."""
    if indent is not None:
        return json.dumps(
            to_dict(message), separators=(",", ": "), indent=indent, ensure_ascii=False
        )
    try:
        body = _MESSAGE.write(message)
    except Exception:  # a value of an undeclared type: json.dumps writes it, or raises
        return _COMPACT.encode(to_dict(message))
    return _VERSIONED + body[1:] if body != "{}" else _VERSIONED[:-1] + "}"


_VERSIONED = f'{{"{_VERSION_KEY}":{CANONICAL_VERSION},'
"""The start of every compact canonical JSON text."""


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
_MESSAGE = _converter(CanonicalMessage)
_MESSAGE_FAST_LOAD = typing.cast(_Load, _MESSAGE.fast[1])
