"""The OBIE v4.0 OpenAPI documents, as data: request bodies are validated against them.

Source: UK Open Banking Read/Write API Specification v4.0, ``account-info-openapi.json``
and ``payment-initiation-openapi.json`` (OpenAPI 3.0.0, ``info.version`` 4.0.0), copied
unchanged into ``gateway/specs/`` from the project's shared collection
(``shared/specs/openbanking/uk-obie-v4.0``), so the installed package needs nothing beside
it.

Loading is lenient in one documented way: the payment-initiation file lists an ``enum``
value twice (``OBFrequency6Code``: ``WEEK``), which JSON Schema forbids (``enum`` items must
be unique). :func:`load_spec` drops repeated enum values (keeping the first) and records
where (:attr:`Spec.repaired`); nothing else is changed.

Schemas are OpenAPI 3.0 schema objects, a JSON Schema draft 4 dialect: they are checked with
:class:`jsonschema.Draft4Validator` against the whole document, so ``$ref`` to
``#/components/schemas/...`` resolves. :meth:`Spec.problems` turns validation errors into
OBIE error items with a JSON path (``Data.Initiation.InstructedAmount.Amount``) and a
message that never repeats the offending value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from gateway.errors import ErrorItem

__all__ = ["SPEC_FILES", "Spec", "SpecName", "load_spec", "spec"]

SpecName = Literal["account-info", "payment-initiation"]
SPEC_FILES: Final[dict[SpecName, str]] = {
    "account-info": "account-info-openapi.json",
    "payment-initiation": "payment-initiation-openapi.json",
}
_MAX_ERRORS: Final = 20


def _dedupe_enums(node: Any, path: str, repaired: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum" and isinstance(value, list):
                unique = list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in value))
                if len(unique) != len(value):
                    node[key] = [json.loads(v) for v in unique]
                    repaired.append(path)
            else:
                _dedupe_enums(value, f"{path}/{key}", repaired)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _dedupe_enums(value, f"{path}/{index}", repaired)


@dataclass(slots=True)
class Spec:
    """One OpenAPI document and validators for its component schemas."""

    name: str
    document: dict[str, Any]
    repaired: tuple[str, ...]
    _validators: dict[str, Draft4Validator] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """``info.version`` (``4.0.0``)."""
        return str(self.document["info"]["version"])

    def validator(self, schema: str) -> Draft4Validator:
        """A validator for ``#/components/schemas/<schema>``."""
        found = self._validators.get(schema)
        if found is None:
            if schema not in self.document["components"]["schemas"]:
                raise KeyError(f"{self.name} has no schema {schema}")
            uri = f"urn:isobridge:obie:{self.name}"
            registry: Registry[Any] = Registry().with_resource(
                uri, Resource.from_contents(self.document, default_specification=DRAFT4)
            )
            found = Draft4Validator(
                {"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry
            )
            self._validators[schema] = found
        return found

    def problems(self, schema: str, instance: Any) -> list[ErrorItem]:
        """What is wrong with ``instance`` as a ``schema``: OBIE error items (empty: valid)."""
        errors = sorted(
            self.validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)
        )
        items: list[ErrorItem] = []
        for error in _leaves(errors):
            items.append(_item(error))
            if len(items) >= _MAX_ERRORS:
                break
        return items


def _leaves(errors: list[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        if error.context and error.validator in ("oneOf", "anyOf"):
            best = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
            yield best
        else:
            yield error


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _item(error: ValidationError) -> ErrorItem:
    path = _json_path(error.absolute_path)
    kind = error.validator
    instance: Any = error.instance
    if kind == "required":
        missing: Any = error.validator_value
        name = next(
            (n for n in missing if isinstance(instance, dict) and n not in instance),
            "?",
        )
        full = f"{path}.{name}" if path else str(name)
        return ErrorItem("UK.OBIE.Field.Missing", f"{full} is required", full)
    if kind == "additionalProperties":
        schema: Any = error.schema
        allowed = set(schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)[:1] or ["?"]
        full = f"{path}.{extra[0]}" if path else extra[0]
        return ErrorItem("UK.OBIE.Field.Unexpected", f"{full} is not expected here", full)
    what = {
        "type": f"must be of type {error.validator_value}",
        "enum": "is not one of the allowed codes",
        "pattern": "does not have the required format",
        "minLength": f"is shorter than {error.validator_value} characters",
        "maxLength": f"is longer than {error.validator_value} characters",
        "minItems": f"needs at least {error.validator_value} items",
        "maxItems": f"has more than {error.validator_value} items",
        "format": f"is not a valid {error.validator_value}",
    }.get(str(kind), "is not valid")
    return ErrorItem("UK.OBIE.Field.Invalid", f"{path or 'the body'} {what}", path or None)


def load_spec(name: SpecName, text: str | bytes | None = None) -> Spec:
    """The document ``name`` (packaged unless ``text`` is given), repaired as documented."""
    if text is None:
        text = resources.files("gateway").joinpath("specs", SPEC_FILES[name]).read_bytes()
    document = json.loads(text)
    repaired: list[str] = []
    _dedupe_enums(document, "#", repaired)
    return Spec(name, document, tuple(repaired))


@cache
def spec(name: SpecName) -> Spec:
    """The packaged document ``name``, loaded once."""
    return load_spec(name)
