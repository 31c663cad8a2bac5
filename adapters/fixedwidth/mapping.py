"""Mapping files: which copybook field is which canonical field (TOML, data not code).

A bank's own posting layout is one copybook plus one mapping file. Paths in a mapping are
relative to the mapping file. Example (the shipped ``layouts/corebank_request.toml``)::

    [record]
    copybook = "corebank_request.cpy"
    name = "CB-REQUEST"            # the 01 level (optional when the copybook has one)
    codepage = "cp037"             # optional, default cp037
    function = "request"           # canonical MessageFunction of every decoded record

    # The message kind, from a level-88 condition (or `value = "..."` for a raw value) of
    # `kind_field`. Encoding picks the first rule whose kind (and processing code, when the
    # message has one) matches.
    [[kind]]
    condition = "CB-DEBIT-POSTING"
    kind = "financial"
    processing = "00"              # optional: canonical processing.transaction_type

    [fields]                       # copybook field = canonical path, or a table with `convert`
    "CB-POSTING-REF" = "ids.transaction_id"
    "CB-VALUE-DATE" = { to = "settlement_date", convert = "date" }

    [[money]]                      # amount + currency -> canonical Money
    amount = "CB-AMOUNT"
    currency = "CB-CURRENCY"
    to = "amount"                  # or "additional_amounts" with amount_type = "01"

Converters (``convert``): ``text`` (default; blank <-> absent), ``lines`` (a tuple of one line,
e.g. ``remittance``), ``date`` (``9(8)`` YYYYMMDD, 0 <-> absent), ``datetime`` (``9(14)``
YYYYMMDDHHMMSS in UTC), ``iso8583-status`` (a field 39 result code <-> canonical status,
through :mod:`canonical_model.codes`), ``number`` (a numeric field <-> its decimal text),
``pan`` (a card number <-> its token, e.g. ``card.token``: tokenized at decode, detokenized
at encode; the adapter then declares ``needs_clear_pan``).

Copybook fields that the mapping does not name travel as canonical extensions
``fixedwidth:<FIELD>`` (when not blank / zero), so ``encode(decode(record))`` gives back the
same bytes. A mapping that names an unknown field, path, kind or converter is refused when it
is loaded, naming the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from canonical_model.messages import MessageFunction, MessageKind

__all__ = [
    "CONVERTERS",
    "FieldRule",
    "KindRule",
    "MappingError",
    "MoneyRule",
    "RecordMapping",
    "load_mapping",
    "parse_mapping",
]

CONVERTERS: Final = frozenset(
    {"text", "lines", "date", "datetime", "iso8583-status", "number", "pan"}
)
"""The converter names a mapping may use."""


class MappingError(ValueError):
    """A mapping file that cannot be used, naming the file and the key at fault."""

    def __init__(self, reason: str, *, source: str | None = None, key: str | None = None) -> None:
        where = ", ".join(x for x in (source, f"key {key}" if key else None) if x)
        super().__init__(f"{where}: {reason}" if where else reason)
        self.source = source
        self.key = key


@dataclass(frozen=True, slots=True)
class KindRule:
    """A level-88 condition (or raw value) of the kind field -> a canonical message kind."""

    kind: MessageKind
    condition: str | None = None
    value: str | None = None
    processing: str | None = None


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One copybook field -> one canonical path (dotted), through a converter."""

    field: str
    path: tuple[str, ...]
    convert: str = "text"


@dataclass(frozen=True, slots=True)
class MoneyRule:
    """An amount field and a currency field -> canonical Money at ``path``.

    For ``additional_amounts``, ``amount_type`` (ISO 8583 field 54 style, ``01`` ledger,
    ``02`` available) tells the entries apart.
    """

    amount: str
    currency: str
    path: tuple[str, ...]
    amount_type: str | None = None
    account_type: str = "00"


@dataclass(frozen=True, slots=True)
class RecordMapping:
    """A loaded mapping: the copybook it reads and the rules, all plain data."""

    copybook: Path
    record: str | None
    codepage: str
    function: MessageFunction
    kind_field: str | None
    kinds: tuple[KindRule, ...]
    fields: tuple[FieldRule, ...]
    money: tuple[MoneyRule, ...]
    redefines: Mapping[str, str]
    source: str


def _require(table: Mapping[str, Any], key: str, source: str, where: str) -> Any:
    if key not in table:
        raise MappingError(f"missing {key!r}", source=source, key=f"{where}.{key}")
    return table[key]


def _text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise MappingError("expected a non-empty string", source=source, key=key)
    return value


def parse_mapping(data: Mapping[str, Any], *, base: Path, source: str) -> RecordMapping:
    """A :class:`RecordMapping` from parsed TOML ``data``; paths relative to ``base``."""
    known = {"record", "kind", "fields", "money"}
    for key in data:
        if key not in known:
            raise MappingError(f"unknown section {key!r}", source=source, key=key)
    record = _require(data, "record", source, "")
    if not isinstance(record, dict):
        raise MappingError("[record] must be a table", source=source, key="record")
    for key in record:
        if key not in {"copybook", "name", "codepage", "function", "kind_field", "redefines"}:
            raise MappingError(f"unknown key {key!r}", source=source, key=f"record.{key}")
    copybook = base / _text(_require(record, "copybook", source, "record"), source, "record")
    try:
        function = MessageFunction(record.get("function", "request"))
    except ValueError:
        raise MappingError(
            f"unknown function {record.get('function')!r}", source=source, key="record.function"
        ) from None
    kinds: list[KindRule] = []
    for index, rule in enumerate(data.get("kind", [])):
        key = f"kind[{index}]"
        if not isinstance(rule, dict):
            raise MappingError("each [[kind]] must be a table", source=source, key=key)
        try:
            kind = MessageKind(_require(rule, "kind", source, key))
        except ValueError:
            raise MappingError(f"unknown kind {rule['kind']!r}", source=source, key=key) from None
        condition = rule.get("condition")
        value = rule.get("value")
        if (condition is None) == (value is None):
            raise MappingError("give one of condition or value", source=source, key=key)
        kinds.append(KindRule(kind, condition, value, rule.get("processing")))
    fields: list[FieldRule] = []
    for name, target in data.get("fields", {}).items():
        key = f"fields.{name}"
        if isinstance(target, str):
            fields.append(FieldRule(name, tuple(target.split(".")), "text"))
            continue
        if not isinstance(target, dict):
            raise MappingError("expected a path or a table", source=source, key=key)
        convert = target.get("convert", "text")
        if convert not in CONVERTERS:
            raise MappingError(
                f"unknown converter {convert!r} (known: {', '.join(sorted(CONVERTERS))})",
                source=source,
                key=key,
            )
        path = _text(_require(target, "to", source, key), source, key)
        fields.append(FieldRule(name, tuple(path.split(".")), convert))
    money: list[MoneyRule] = []
    for index, rule in enumerate(data.get("money", [])):
        key = f"money[{index}]"
        money.append(
            MoneyRule(
                _text(_require(rule, "amount", source, key), source, key),
                _text(_require(rule, "currency", source, key), source, key),
                tuple(_text(_require(rule, "to", source, key), source, key).split(".")),
                rule.get("amount_type"),
                rule.get("account_type", "00"),
            )
        )
    kind_field = record.get("kind_field")
    if kinds and kind_field is None and any(k.value is not None for k in kinds):
        raise MappingError("value rules need record.kind_field", source=source, key="kind")
    return RecordMapping(
        copybook=copybook,
        record=record.get("name"),
        codepage=record.get("codepage", "cp037"),
        function=function,
        kind_field=kind_field,
        kinds=tuple(kinds),
        fields=tuple(fields),
        money=tuple(money),
        redefines=dict(record.get("redefines", {})),
        source=source,
    )


def load_mapping(path: str | Path) -> RecordMapping:
    """Read and check the mapping file at ``path``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"not valid TOML: {exc}", source=str(path)) from None
    return parse_mapping(data, base=path.parent, source=str(path))
