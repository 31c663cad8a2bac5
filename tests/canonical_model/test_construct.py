"""fast_constructor and fast_replacer: the very instance calling the class (or
dataclasses.replace) gives, checks included."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from canonical_model import CanonicalMessage, Identifiers, MessageFunction, MessageKind, Money
from canonical_model.construct import fast_constructor, fast_replacer
from canonical_model.currency import currency
from canonical_model.pan import ClearPanError, PanToken
from tests.canonical_model.strategies import messages


def _rebuilt(value: Any) -> Any:
    """``value`` with every dataclass in it built again by its fast constructor."""
    if isinstance(value, tuple):
        return tuple(_rebuilt(item) for item in value)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    values = [_rebuilt(getattr(value, field.name)) for field in dataclasses.fields(value)]
    return fast_constructor(type(value))(*values)


@settings(max_examples=200)
@given(messages)
def test_every_model_class_is_rebuilt_equal(message: CanonicalMessage) -> None:
    rebuilt = _rebuilt(message)
    assert rebuilt == message
    assert repr(rebuilt) == repr(message)
    assert hash(rebuilt.ids) == hash(message.ids)


def test_keywords_and_defaults_are_the_classes() -> None:
    new_message = fast_constructor(CanonicalMessage)
    built = new_message(
        kind=MessageKind.FINANCIAL,
        function=MessageFunction.REQUEST,
        tenant="t",
        ids=Identifiers("m"),
        approval_code="A1",
    )
    assert built == CanonicalMessage(
        MessageKind.FINANCIAL, MessageFunction.REQUEST, "t", Identifiers("m"), approval_code="A1"
    )
    with pytest.raises(TypeError):
        new_message(MessageKind.FINANCIAL)  # type: ignore[call-arg]


def test_instances_stay_frozen() -> None:
    ids = fast_constructor(Identifiers)("m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ids.message_id = "other"  # type: ignore[misc]


def test_post_init_runs_checks_and_normalisation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fast_constructor(CanonicalMessage)(
            MessageKind.FINANCIAL,
            MessageFunction.REQUEST,
            "t",
            Identifiers("m"),
            transmitted_at=dt.datetime(2026, 11, 28, 10, 0),
        )
    with pytest.raises(ClearPanError):
        fast_constructor(PanToken)("4111111111111111")
    money = fast_constructor(Money)(Decimal("7"), currency("BHD"))
    assert money.amount.as_tuple().exponent == -3
    assert money == Money(Decimal("7"), currency("BHD"))


@dataclasses.dataclass(frozen=True)
class _NoSlots:
    value: int


@dataclasses.dataclass(slots=True)
class _NotFrozen:
    value: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Factory:
    values: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class _KeywordOnly:
    value: int = dataclasses.field(kw_only=True)


@dataclasses.dataclass(frozen=True, slots=True)
class _NotInit:
    value: int = dataclasses.field(init=False, default=0)


@dataclasses.dataclass(frozen=True, slots=True)
class _WithInitVar:
    value: int
    scale: dataclasses.InitVar[int]

    def __post_init__(self, scale: int) -> None:
        object.__setattr__(self, "value", self.value * scale)


@dataclasses.dataclass(frozen=True, slots=True)
class _OwnNew:
    value: int

    def __new__(cls, value: int) -> _OwnNew:
        return super().__new__(cls)


@pytest.mark.parametrize(
    "cls", [_NoSlots, _NotFrozen, _Factory, _KeywordOnly, _NotInit, _WithInitVar, _OwnNew, int]
)
def test_classes_it_cannot_build_exactly_are_refused(cls: type) -> None:
    with pytest.raises(TypeError):
        fast_constructor(cls)
    with pytest.raises(TypeError):
        fast_replacer(cls)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, messages)
def test_a_replaced_message_is_dataclasses_replace(message: CanonicalMessage, other: Any) -> None:
    changes = {
        field.name: getattr(other, field.name)
        for index, field in enumerate(dataclasses.fields(CanonicalMessage))
        if index % 3 == len(message.ids.message_id) % 3
    }
    replaced = fast_replacer(CanonicalMessage)(message, **changes)
    assert replaced == dataclasses.replace(message, **changes)
    assert repr(replaced) == repr(dataclasses.replace(message, **changes))
    assert fast_replacer(CanonicalMessage)(message) == message
    ids = fast_replacer(Identifiers)(message.ids, message_id="other")
    assert ids == dataclasses.replace(message.ids, message_id="other")
    assert hash(ids) == hash(dataclasses.replace(message.ids, message_id="other"))


def test_a_replacement_runs_post_init_and_refuses_unknown_fields() -> None:
    request = CanonicalMessage(
        MessageKind.FINANCIAL, MessageFunction.REQUEST, "t", Identifiers("m")
    )
    replace = fast_replacer(CanonicalMessage)
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(request, transmitted_at=dt.datetime(2026, 11, 28, 10, 0))
    with pytest.raises(TypeError, match="unexpected keyword argument 'tenant_id'"):
        replace(request, tenant_id="x")
    money = fast_replacer(Money)(Money(Decimal("7"), currency("EUR")), currency=currency("BHD"))
    assert money.amount.as_tuple().exponent == -3
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace(request).tenant = "x"  # type: ignore[misc]
