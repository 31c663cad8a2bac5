"""Decoded copybook records <-> canonical messages, driven by a :class:`RecordMapping`.

:class:`RecordMapper` checks the mapping against the compiled record once (every field, path,
condition and converter must exist), then translates both ways. Canonical paths are dotted
attribute names of :class:`~canonical_model.messages.CanonicalMessage`
(``debtor_account.other_id``); the intermediate objects are built from the dataclasses' type
hints. Unmapped fields travel as extensions ``fixedwidth:<FIELD>``.

Card numbers: a field mapped with ``convert = "pan"`` is tokenized at decode (through the
decode context's tokenizer) and detokenized at encode (the adapter then declares
``needs_clear_pan``). A card number found in an *unmapped* text field is masked (first six,
last four) before it becomes an extension: no clear PAN passes the edge, and such a record
re-encodes with the masked text.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from adapters.base import scrub
from adapters.fixedwidth.codec import RecordCodec
from adapters.fixedwidth.errors import RecordDecodeError, RecordEncodeError
from adapters.fixedwidth.mapping import FieldRule, KindRule, MappingError, RecordMapping
from canonical_model.codes import Status, iso8583_response_code, status_from_iso8583
from canonical_model.messages import (
    AdditionalAmount,
    CanonicalMessage,
    Extension,
    Identifiers,
    MessageKind,
)
from canonical_model.money import Money
from canonical_model.pan import PanToken

__all__ = ["EXTENSION_PREFIX", "RecordMapper"]

EXTENSION_PREFIX: Final = "fixedwidth:"
"""Extensions holding unmapped copybook fields are named ``fixedwidth:<FIELD>``."""

_HEADER: Final = frozenset({"kind", "function", "tenant", "ids"})


@functools.cache
def _type_hints(owner: type) -> dict[str, Any]:
    # Resolving string annotations compiles and evaluates them: once per class, not per record.
    return typing.get_type_hints(owner)


def _hint_class(owner: type, name: str) -> type | None:
    hints = _type_hints(owner)
    if name not in hints:
        return None
    hint = hints[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = options[0] if len(options) == 1 else hint
    return hint if isinstance(hint, type) else None


def _check_path(path: tuple[str, ...], source: str, key: str) -> None:
    owner: type = CanonicalMessage
    for index, part in enumerate(path):
        known = part in _type_hints(owner) and not (
            owner is CanonicalMessage and part in ("kind", "function", "tenant")
        )
        hint = _hint_class(owner, part) if known and index < len(path) - 1 else None
        if not known or (index < len(path) - 1 and hint is None):
            raise MappingError(f"{'.'.join(path)} is not a canonical field", source=source, key=key)
        if hint is not None:
            owner = hint


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def _build(owner: type, tree: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            cls = _hint_class(owner, name)
            if cls is None:
                raise RuntimeError("internal error: expected cls is not None")
            kwargs[name] = _build(cls, value)
        else:
            kwargs[name] = value
    return owner(**kwargs)


def _get(message: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if message is None:
            return None
        message = getattr(message, part)
    return message


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == () or value == []


# converters: (decode copybook value -> canonical value | None, encode canonical -> value)
def _decode_text(value: Any) -> Any:
    return value if value != "" else None


def _decode_date(value: Any) -> Any:
    if value == 0:
        return None
    text = f"{value:08d}"
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _encode_date(value: Any) -> Any:
    return int(value.strftime("%Y%m%d")) if value is not None else 0


def _decode_datetime(value: Any) -> Any:
    """``YYYYMMDDHHMMSS`` as a number; digits by arithmetic, not ``strptime`` (a tenth of
    the time), ValueError for what is not such a moment in UTC."""
    if value == 0:
        return None
    if not 0 < value < 10**14:
        raise ValueError(f"{value} is not a YYYYMMDDHHMMSS date-time")
    date, time = divmod(value, 1_000_000)
    year, month_day = divmod(date, 10_000)
    month, day = divmod(month_day, 100)
    hour, minute_second = divmod(time, 10_000)
    minute, second = divmod(minute_second, 100)
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def _encode_datetime(value: Any) -> Any:
    if value is None:
        return 0
    return int(value.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S"))


def _decode_status(value: Any) -> Any:
    return status_from_iso8583(value) if value != "" else None


def _encode_status(value: Any) -> Any:
    return iso8583_response_code(value) if isinstance(value, Status) else ""


def _decode_number(value: Any) -> Any:
    return str(value)


def _encode_number(value: Any) -> Any:
    return Decimal(value) if value is not None else 0


_CONVERTERS: Final[dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]]] = {
    "text": (_decode_text, lambda v: v if v is not None else ""),
    "lines": (lambda v: (v,) if v != "" else None, lambda v: v[0] if v else ""),
    "date": (_decode_date, _encode_date),
    "datetime": (_decode_datetime, _encode_datetime),
    "iso8583-status": (_decode_status, _encode_status),
    "number": (_decode_number, _encode_number),
}


class RecordMapper:
    """Translate one record layout's decoded values to and from canonical messages."""

    def __init__(self, codec: RecordCodec, mapping: RecordMapping) -> None:
        self.codec = codec
        self.mapping = mapping
        source = mapping.source
        keys = set(codec.keys)
        used: set[str] = set()

        def field(name: str, key: str) -> str:
            if name not in keys:
                raise MappingError(f"{codec.name} has no field {name!r}", source=source, key=key)
            if name in used:
                raise MappingError(f"field {name} is mapped twice", source=source, key=key)
            used.add(name)
            return name

        for rule in mapping.fields:
            field(rule.field, f"fields.{rule.field}")
            _check_path(rule.path, source, f"fields.{rule.field}")
        for index, money in enumerate(mapping.money):
            field(money.amount, f"money[{index}].amount")
            if money.currency not in used:
                field(money.currency, f"money[{index}].currency")
            _check_path(money.path, source, f"money[{index}].to")
        self._kind_field: str | None = None
        for index, kind in enumerate(mapping.kinds):
            if kind.condition is not None:
                spec = codec.conditions.get(kind.condition)
                if spec is None:
                    raise MappingError(
                        f"{codec.name} has no condition {kind.condition!r}",
                        source=source,
                        key=f"kind[{index}]",
                    )
                self._kind_field = spec.field
        if mapping.kind_field is not None:
            self._kind_field = mapping.kind_field
        if self._kind_field is not None:
            if self._kind_field not in keys:
                raise MappingError(
                    f"{codec.name} has no field {self._kind_field!r}",
                    source=source,
                    key="record.kind_field",
                )
            used.add(self._kind_field)
        self._unmapped = tuple(k for k in codec.keys if k not in used)
        self._fields_by_key = {f.key: f for f in codec.fields if f.key is not None}

    # -- decode ------------------------------------------------------------------------

    def _kind_rule(self, values: Mapping[str, Any], record: int | None) -> KindRule | None:
        if not self.mapping.kinds:
            return None
        for rule in self.mapping.kinds:
            if rule.condition is not None:
                if self.codec.condition(rule.condition, values):
                    return rule
            elif self._kind_field is not None and values.get(self._kind_field) == rule.value:
                return rule
        if self._kind_field is None:
            raise RuntimeError("internal error: expected self._kind_field is not None")
        spec = self._fields_by_key[self._kind_field]
        raise RecordDecodeError(
            "no message kind for this code",
            field=self._kind_field,
            offset=spec.offset,
            record=record,
            layout=self.codec.name,
        )

    def to_canonical(
        self,
        values: Mapping[str, Any],
        *,
        tenant: str,
        message_id: str,
        record: int | None = None,
        kind: MessageKind | None = None,
        tokenize: Callable[[str], PanToken] | None = None,
    ) -> CanonicalMessage:
        """The canonical message for one decoded record (``tokenize`` for ``pan`` fields)."""
        rule = self._kind_rule(values, record)
        tree: dict[str, Any] = {}
        for field_rule in self.mapping.fields:
            if field_rule.convert == "pan":
                token = self._tokenize(field_rule, values[field_rule.field], tokenize, record)
                if token is not None:
                    _set(tree, field_rule.path, token)
                continue
            value = self._convert_in(field_rule, values[field_rule.field], record)
            if value is not None:
                _set(tree, field_rule.path, value)
        additional: list[AdditionalAmount] = []
        for money in self.mapping.money:
            amount = values[money.amount]
            code = values[money.currency]
            if code == "":
                if amount:
                    raise self._error("an amount without a currency", money.currency, record)
                continue
            try:
                value = Money.of(amount, code)
            except ValueError as exc:
                raise self._error(str(exc), money.currency, record) from None
            if money.amount_type is not None:
                additional.append(AdditionalAmount(money.account_type, money.amount_type, value))
            else:
                _set(tree, money.path, value)
        if additional:
            tree["additional_amounts"] = tuple(additional)
        if rule is not None and rule.processing is not None:
            _set(tree, ("processing", "transaction_type"), rule.processing)
        extensions = []
        for key in self._unmapped:
            text = self._extension_text(key, values[key])
            if text is not None:
                extensions.append(Extension(EXTENSION_PREFIX + key, text))
        if extensions:
            tree["extensions"] = tuple(extensions)
        ids = tree.pop("ids", {})
        ids["message_id"] = message_id
        chosen = kind or (rule.kind if rule is not None else MessageKind.FINANCIAL)
        try:
            return typing.cast(
                CanonicalMessage,
                _build(
                    CanonicalMessage,
                    {
                        "kind": chosen,
                        "function": self.mapping.function,
                        "tenant": tenant,
                        "ids": _build(Identifiers, ids),
                        **tree,
                    },
                ),
            )
        except (TypeError, ValueError) as exc:
            raise RecordDecodeError(
                f"not a valid canonical message: {exc}", record=record, layout=self.codec.name
            ) from None

    def status_and_amounts(
        self, values: Mapping[str, Any], *, record: int | None = None
    ) -> tuple[Status | None, tuple[AdditionalAmount, ...]]:
        """The ``status`` and ``additional_amounts`` that :meth:`to_canonical` would give,
        after the same checks of the kind, of every mapped field and of the amounts, without
        building the message (the core's reply to a posting or a balance enquiry is read for
        these only: ``hub.core.CoreBanking``; a fifth of the time). Layouts with card
        numbers are not read this way (ValueError)."""
        self._kind_rule(values, record)
        status: Status | None = None
        for field_rule in self.mapping.fields:
            if field_rule.convert == "pan":
                raise ValueError("a layout with card numbers is read by to_canonical")
            value = self._convert_in(field_rule, values[field_rule.field], record)
            if field_rule.path == ("status",):
                status = value
        additional: list[AdditionalAmount] = []
        for money in self.mapping.money:
            amount = values[money.amount]
            code = values[money.currency]
            if code == "":
                if amount:
                    raise self._error("an amount without a currency", money.currency, record)
                continue
            try:
                value = Money.of(amount, code)
            except ValueError as exc:
                raise self._error(str(exc), money.currency, record) from None
            if money.amount_type is not None:
                additional.append(AdditionalAmount(money.account_type, money.amount_type, value))
        return status, tuple(additional)

    def _error(self, reason: str, key: str, record: int | None) -> RecordDecodeError:
        spec = self._fields_by_key[key]
        return RecordDecodeError(
            reason, field=key, offset=spec.offset, record=record, layout=self.codec.name
        )

    def _tokenize(
        self,
        rule: FieldRule,
        value: Any,
        tokenize: Callable[[str], PanToken] | None,
        record: int | None,
    ) -> PanToken | None:
        if value == "":
            return None
        if tokenize is None:
            raise self._error("a card number field needs a tokenizer", rule.field, record)
        try:
            return tokenize(str(value).strip())
        except ValueError:
            raise self._error("card number refused by the vault", rule.field, record) from None
        except RuntimeError:
            raise self._error("the vault cannot tokenize now", rule.field, record) from None

    @property
    def has_card_numbers(self) -> bool:
        """Whether the mapping tokenizes a field (and so needs the clear PAN to encode)."""
        return any(rule.convert == "pan" for rule in self.mapping.fields)

    def _convert_in(self, rule: FieldRule, value: Any, record: int | None) -> Any:
        decode = _CONVERTERS[rule.convert][0]
        try:
            return decode(value)
        except (TypeError, ValueError) as exc:
            raise self._error(f"{rule.convert}: {exc}", rule.field, record) from None

    def _extension_text(self, key: str, value: Any) -> str | None:
        if isinstance(value, list):
            if not any(_flatten_nonblank(value)):
                return None
            return scrub(json.dumps(_jsonable(value)))
        if value == "" or (not isinstance(value, str) and value == 0 and not _negative_zero(value)):
            return None
        return scrub(str(value))

    # -- encode ------------------------------------------------------------------------

    def from_canonical(
        self,
        message: CanonicalMessage,
        *,
        detokenize: Callable[[PanToken], str] | None = None,
    ) -> dict[str, Any]:
        """The copybook values for ``message`` (to pass to :meth:`RecordCodec.encode`);
        ``detokenize`` gives back the card numbers of ``pan`` fields."""
        values: dict[str, Any] = {}
        rule = self._pick_kind(message)
        if rule is not None:
            if rule.condition is not None:
                values[rule.condition] = True
            else:
                if self._kind_field is None:
                    raise RuntimeError("internal error: expected self._kind_field is not None")
                values[self._kind_field] = rule.value
        for field_rule in self.mapping.fields:
            current = _get(message, field_rule.path)
            if field_rule.convert == "pan":
                if current is None:
                    values[field_rule.field] = ""
                elif detokenize is None:
                    raise RecordEncodeError(
                        "a card number needs a detokenizer", field=field_rule.field
                    )
                else:
                    values[field_rule.field] = detokenize(current)
                continue
            try:
                values[field_rule.field] = _CONVERTERS[field_rule.convert][1](current)
            except (TypeError, ValueError, AttributeError) as exc:
                raise RecordEncodeError(str(exc), field=field_rule.field) from None
        for money in self.mapping.money:
            amount: Money | None
            if money.amount_type is not None:
                amount = next(
                    (
                        a.amount
                        for a in message.additional_amounts
                        if a.amount_type == money.amount_type
                    ),
                    None,
                )
            else:
                found = _get(message, money.path)
                amount = found if isinstance(found, Money) else None
            if amount is None:
                values.setdefault(money.amount, 0)
                values.setdefault(money.currency, "")
                continue
            values[money.amount] = amount.amount
            previous = values.get(money.currency)
            if previous not in (None, "", amount.currency.alpha):
                raise RecordEncodeError(
                    f"two currencies for one field: {previous}, {amount.currency.alpha}",
                    field=money.currency,
                )
            values[money.currency] = amount.currency.alpha
        for extension in message.extensions:
            if not extension.key.startswith(EXTENSION_PREFIX):
                continue
            key = extension.key[len(EXTENSION_PREFIX) :]
            if key not in self._unmapped:
                continue
            values[key] = self._from_extension(key, extension.value)
        return values

    def _pick_kind(self, message: CanonicalMessage) -> KindRule | None:
        if not self.mapping.kinds:
            return None
        matching = [r for r in self.mapping.kinds if r.kind is message.kind]
        if not matching:
            raise RecordEncodeError(
                f"{self.codec.name} cannot carry a {message.kind.value} message",
                field=self._kind_field,
            )
        processing = message.processing.transaction_type if message.processing else None
        for rule in matching:
            if rule.processing == processing:
                return rule
        return matching[0]

    def _from_extension(self, key: str, text: str) -> Any:
        spec = self._fields_by_key[key]

        def convert(item: Any) -> Any:
            if isinstance(item, list):
                return [convert(x) for x in item]
            if not spec.numeric:
                return item
            try:
                number = Decimal(item)
            except InvalidOperation:
                raise RecordEncodeError("not a number", field=key) from None
            return int(number) if spec.scale <= 0 and "." not in item else number

        if spec.dims:
            try:
                return convert(json.loads(text))
            except json.JSONDecodeError:
                raise RecordEncodeError("not a JSON list", field=key) from None
        return convert(text)


def _flatten_nonblank(value: list[Any]) -> list[bool]:
    out: list[bool] = []
    for item in value:
        if isinstance(item, list):
            out.extend(_flatten_nonblank(item))
        else:
            out.append(item not in ("", 0))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str) else str(value)


def _negative_zero(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_signed()
