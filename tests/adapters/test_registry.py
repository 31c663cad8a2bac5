"""The adapter registry: the built-in name table, entry points, lazy import, clear errors."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from adapters.base import Adapter
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import sample_bytes
from adapters.registry import (
    BUILTIN_ADAPTERS,
    ENTRY_POINT_GROUP,
    AdapterLoadError,
    AdapterRegistry,
    DuplicateAdapterError,
    UnknownAdapterError,
    default_registry,
    split_spec,
)
from canonical_model import from_json, to_json
from tests.adapters.plugin_example import CanonicalJsonWireAdapter
from tests.support import decode_context, encode_context, fixed_vault

PLUGIN = EntryPoint(
    name="json-wire",
    value="tests.adapters.plugin_example:CanonicalJsonWireAdapter",
    group=ENTRY_POINT_GROUP,
)


def test_an_entry_point_adds_an_adapter_in_one_line() -> None:
    registry = AdapterRegistry(entry_points_=[PLUGIN])
    assert registry.names() == ["fixedwidth", "iso20022", "iso8583", "json-wire"]
    adapter = registry.get("json-wire")
    assert isinstance(adapter, CanonicalJsonWireAdapter)
    assert isinstance(adapter, Adapter)
    vault = fixed_vault()
    iso = registry.get("iso8583")
    message = iso.decode(sample_bytes("0420-reversal-advice", "ascii"), decode_context(vault))
    wire = adapter.encode(message, encode_context(adapter, vault))
    assert from_json(wire) == message
    assert adapter.decode(wire, decode_context(vault)) == message
    assert to_json(message).encode() == wire


def test_an_entry_point_may_not_take_a_built_in_name() -> None:
    clash = EntryPoint(name="iso8583", value=PLUGIN.value, group=ENTRY_POINT_GROUP)
    with pytest.raises(DuplicateAdapterError) as info:
        AdapterRegistry(entry_points_=[clash])
    assert "registered twice" in str(info.value)
    assert BUILTIN_ADAPTERS["iso8583"] in str(info.value)


def test_two_entry_points_may_not_share_a_name() -> None:
    with pytest.raises(DuplicateAdapterError):
        AdapterRegistry(builtins={}, entry_points_=[PLUGIN, PLUGIN])


def test_a_class_registered_under_another_name_is_refused() -> None:
    misnamed = EntryPoint(
        name="iso-copy", value="adapters.iso8583.adapter:Iso8583Adapter", group=ENTRY_POINT_GROUP
    )
    registry = AdapterRegistry(entry_points_=[misnamed])
    with pytest.raises(DuplicateAdapterError) as info:
        registry.get("iso-copy")
    assert "calls itself 'iso8583'" in str(info.value)


def test_a_broken_registration_names_itself() -> None:
    registry = AdapterRegistry(builtins={"ghost": "adapters.no_such_module:Ghost"})
    assert registry.names() == ["ghost"]
    with pytest.raises(AdapterLoadError) as info:
        registry.get("ghost")
    assert "adapter 'ghost' (adapters.no_such_module:Ghost, built-in) cannot be loaded" in str(
        info.value
    )


def test_adapter_modules_are_imported_only_when_first_asked_for() -> None:
    code = (
        "import sys\n"
        "from adapters.registry import default_registry\n"
        "registry = default_registry()\n"
        "assert registry.names() == ['fixedwidth', 'iso20022', 'iso8583']\n"
        "assert 'adapters.iso8583.adapter' not in sys.modules\n"
        "registry.get('iso8583')\n"
        "assert 'adapters.iso8583.adapter' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [("iso8538", "'iso8583'"), ("iso-8583", "'iso8583'"), ("ISO8583", "'iso8583'")],
)
def test_unknown_names_get_a_did_you_mean(spec: str, suggestion: str) -> None:
    with pytest.raises(UnknownAdapterError) as info:
        default_registry().get(spec)
    assert str(info.value).endswith(f"did you mean {suggestion}?")
    assert isinstance(info.value, LookupError)


def test_a_name_with_nothing_close_lists_the_known_ones() -> None:
    with pytest.raises(UnknownAdapterError) as info:
        default_registry().get("swift-mt")
    assert str(info.value) == "unknown adapter 'swift-mt' (known: fixedwidth, iso20022, iso8583)"


def test_unknown_variants_get_a_did_you_mean() -> None:
    with pytest.raises(UnknownAdapterError) as info:
        default_registry().get("iso8583:ebcdic-1047")
    assert "unknown iso8583 variant 'ebcdic-1047'; did you mean 'ebcdic-cp1047'" in str(info.value)


def test_instances_are_shared_per_name_and_variant() -> None:
    registry = AdapterRegistry()
    first = registry.get("iso8583:ebcdic-cp500")
    assert registry.get("iso8583:ebcdic-cp500") is first
    assert registry.get("iso8583") is not first
    assert registry.get("iso8583").variant == Iso8583Adapter.variants[0]


@pytest.mark.parametrize(
    ("spec", "parts"),
    [("iso8583", ("iso8583", None)), ("iso8583:ascii", ("iso8583", "ascii")), ("a:", ("a", ""))],
)
def test_split_spec(spec: str, parts: tuple[str, str | None]) -> None:
    assert split_spec(spec) == parts
