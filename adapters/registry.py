"""The adapter registry: a name table, imported lazily, and ``isobridge.adapters`` entry points.

A built-in adapter is one line in :data:`BUILTIN_ADAPTERS` (``name -> "module:Class"``);
its module is imported only when the adapter is first asked for. Adapters from other
distributions declare an entry point::

    [project.entry-points."isobridge.adapters"]
    myformat = "my_package.my_module:MyAdapter"

An adapter is addressed as ``name`` or ``name:variant`` (``iso8583:ebcdic-cp037``). Two
adapters may not share a name; an unknown name or variant gets a "did you mean".

>>> split_spec("iso8583:ascii")
('iso8583', 'ascii')
>>> get_adapter("iso8538")
Traceback (most recent call last):
...
adapters.registry.UnknownAdapterError: unknown adapter 'iso8538'; did you mean 'iso8583'?
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from adapters.base import Adapter, AdapterError

__all__ = [
    "BUILTIN_ADAPTERS",
    "ENTRY_POINT_GROUP",
    "AdapterLoadError",
    "AdapterRegistry",
    "DuplicateAdapterError",
    "UnknownAdapterError",
    "default_registry",
    "get_adapter",
    "split_spec",
]

ENTRY_POINT_GROUP = "isobridge.adapters"

BUILTIN_ADAPTERS: Mapping[str, str] = {
    "fixedwidth": "adapters.fixedwidth.adapter:FixedWidthAdapter",
    "iso20022": "adapters.iso20022.adapter:Iso20022Adapter",
    "iso8583": "adapters.iso8583.adapter:Iso8583Adapter",
}
"""Built-in adapters: one line each, ``name -> "module:Class"``."""


class UnknownAdapterError(AdapterError, LookupError):
    """No adapter (or no variant) by that name; suggests close names."""

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        known_list = ", ".join(sorted(known))
        tail = hint or f" (known: {known_list})"
        super().__init__(f"unknown {what} {name!r}{tail}")
        self.name = name
        self.suggestions = tuple(close)


class DuplicateAdapterError(AdapterError):
    """Two registrations claim the same adapter name."""


class AdapterLoadError(AdapterError):
    """A registration whose module or class cannot be imported."""


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"name:variant"`` -> ``("name", "variant")``; ``"name"`` -> ``("name", None)``."""
    name, sep, variant = spec.partition(":")
    return name, (variant if sep else None)


@dataclass(frozen=True, slots=True)
class _Registration:
    target: str
    source: str

    def load(self, name: str) -> type[Adapter]:
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            return cast("type[Adapter]", getattr(module, attr))
        except (ImportError, AttributeError) as exc:
            raise AdapterLoadError(
                f"adapter {name!r} ({self.target}, {self.source}) cannot be loaded: {exc}"
            ) from exc


class AdapterRegistry:
    """Adapter classes by name; instances by ``name[:variant]``."""

    def __init__(
        self,
        builtins: Mapping[str, str] = BUILTIN_ADAPTERS,
        entry_points_: Iterable[EntryPoint] | None = None,
    ) -> None:
        self._registrations: dict[str, _Registration] = {}
        for name, target in builtins.items():
            self._add(name, target, "built-in")
        eps = entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_
        for ep in eps:
            self._add(ep.name, ep.value, f"entry point of {ep.dist.name if ep.dist else '?'}")
        self._classes: dict[str, type[Adapter]] = {}
        self._instances: dict[tuple[str, str | None], Adapter] = {}

    def _add(self, name: str, target: str, source: str) -> None:
        existing = self._registrations.get(name)
        if existing is not None:
            raise DuplicateAdapterError(
                f"adapter name {name!r} is registered twice: {existing.target} ({existing.source})"
                f" and {target} ({source})"
            )
        self._registrations[name] = _Registration(target, source)

    def names(self) -> list[str]:
        """Every registered adapter name, sorted."""
        return sorted(self._registrations)

    def adapter_class(self, name: str) -> type[Adapter]:
        """The adapter class registered under ``name`` (its module imported on first use)."""
        cls = self._classes.get(name)
        if cls is None:
            registration = self._registrations.get(name)
            if registration is None:
                raise UnknownAdapterError("adapter", name, self._registrations)
            cls = registration.load(name)
            if cls.name != name:
                raise DuplicateAdapterError(
                    f"{registration.target} is registered as {name!r} but calls itself {cls.name!r}"
                )
            self._classes[name] = cls
        return cls

    def get(self, spec: str) -> Adapter:
        """The adapter for ``name`` or ``name:variant``; instances are shared, adapters pure."""
        name, variant = split_spec(spec)
        key = (name, variant)
        adapter = self._instances.get(key)
        if adapter is None:
            cls = self.adapter_class(name)
            if variant is not None and variant not in cls.variants:
                raise UnknownAdapterError(f"{name} variant", variant, cls.variants)
            adapter = cls(variant)
            self._instances[key] = adapter
        return adapter


_default: AdapterRegistry | None = None


def default_registry() -> AdapterRegistry:
    """The process-wide registry: built-ins plus installed entry points."""
    global _default
    if _default is None:
        _default = AdapterRegistry()
    return _default


def get_adapter(spec: str) -> Adapter:
    """Shortcut for ``default_registry().get(spec)``."""
    return default_registry().get(spec)
