"""The compiled ISO 8583 codec against pyiso8583, its reference: same fields, same bytes.

Whatever the input, :class:`~adapters.iso8583.codec.CompiledCodec` gives pyiso8583's result
or declines (``None``), and it never declines a well-formed message of the adapter's specs.
The adapter built on it decodes and refuses exactly like the adapter on pyiso8583 alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import iso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapters.iso8583.adapter as adapter_module
from adapters.base import AdapterDecodeError, AdapterEncodeError
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.codec import CompiledCodec, compile_codec
from adapters.iso8583.samples import SAMPLES
from adapters.iso8583.specs import SPECS, VARIANTS
from canonical_model import CanonicalMessage
from tests.adapters.iso8583.strategies import field_dicts
from tests.support import decode_context, encode_context, fixed_vault

CODECS = {variant: compile_codec(SPECS[variant]) for variant in VARIANTS}
variants = st.sampled_from(VARIANTS)


def _codec(variant: str) -> CompiledCodec:
    codec = CODECS[variant]
    assert codec is not None
    return codec


def _reference_decode(data: bytes, variant: str) -> dict[str, str] | None:
    try:
        return iso8583.decode(data, SPECS[variant])[0]
    except (iso8583.DecodeError, KeyError):  # KeyError: a tertiary bitmap (see specs)
        return None


def _reference_encode(fields: dict[str, str], variant: str) -> bytes | None:
    try:
        return bytes(iso8583.encode(dict(fields), SPECS[variant])[0])
    except (iso8583.EncodeError, KeyError):
        return None


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes replaced, inserted or removed, or cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, len(out)))
        byte = draw(st.sampled_from(b"0123456789 =DF\x00\x80\xf0\xff") | st.integers(0, 255))
        if operation == "replace" and position < len(out):
            out[position] = byte
        elif operation == "insert":
            out.insert(position, byte)
        elif operation == "delete":
            del out[position : position + draw(st.integers(1, 4))]
        else:
            del out[position:]
    return bytes(out)


@settings(max_examples=300)
@given(variants, field_dicts())
def test_well_formed_messages_take_the_compiled_path_with_pyiso8583_results(
    variant: str, fields: dict[str, str]
) -> None:
    raw = _codec(variant).encode(fields)
    assert raw is not None
    assert raw == _reference_encode(fields, variant)
    decoded = _codec(variant).decode(raw)
    reference = _reference_decode(raw, variant)
    assert decoded is not None
    assert decoded == reference
    assert list(decoded) == list(reference or {})  # same key order: t, p, 1, fields


@settings(max_examples=500)
@given(variants, field_dicts(), st.data())
def test_damaged_bytes_decode_like_pyiso8583_or_are_left_to_it(
    variant: str, fields: dict[str, str], data: st.DataObject
) -> None:
    raw = _reference_encode(fields, variant)
    assert raw is not None
    damaged = data.draw(mutated(raw))
    decoded = _codec(variant).decode(damaged)
    if decoded is not None:
        reference = _reference_decode(damaged, variant)
        assert decoded == reference
        assert list(decoded) == list(reference or {})


_ODD_KEYS = ["1", "65", "p", "h", "0", "02", "129", "200", "x", "64", "128", "66"]


@st.composite
def damaged_fields(draw: st.DrawFn) -> dict[str, str]:
    """A field dictionary with a value cut, lengthened, removed, or an odd key added."""
    fields = dict(draw(field_dicts()))
    key = draw(st.sampled_from(sorted(fields)))
    operation = draw(st.sampled_from(["cut", "extend", "remove", "odd-key", "any-field"]))
    if operation == "cut":
        fields[key] = fields[key][:-1]
    elif operation == "extend":
        fields[key] += draw(st.sampled_from(["0", "a", "Z", "\u00e9", "\u20ac", " ", "G"]))
    elif operation == "remove":
        del fields[key]
    elif operation == "odd-key":
        fields[draw(st.sampled_from(_ODD_KEYS))] = draw(st.sampled_from(["0000", "AB", "1"]))
    else:
        number = str(draw(st.integers(2, 128)))
        fields[number] = draw(st.text(alphabet="0123456789ABCDEFabcdef \u00e9", max_size=20))
    return fields


@settings(max_examples=500)
@given(variants, damaged_fields())
def test_damaged_fields_encode_like_pyiso8583_or_are_left_to_it(
    variant: str, fields: dict[str, str]
) -> None:
    before = dict(fields)
    raw = _codec(variant).encode(fields)
    assert fields == before  # not modified, unlike pyiso8583's argument
    if raw is not None:
        assert raw == _reference_encode(fields, variant)


def test_hex_text_bitmaps_are_kept_as_read() -> None:
    raw = _reference_encode({"t": "0800", "11": "000001", "70": "301"}, "ascii")
    assert raw is not None
    lower = raw[:4] + raw[4:36].lower() + raw[36:]
    assert _codec("ascii").decode(lower) == _reference_decode(lower, "ascii")
    assert _codec("ascii").decode(lower) == {
        "t": "0800",
        "p": "8020000000000000",
        "1": "0400000000000000",
        "11": "000001",
        "70": "301",
    }


def test_a_tertiary_bitmap_is_left_to_pyiso8583() -> None:
    raw = _reference_encode({"t": "0800", "11": "000001", "70": "301"}, "ascii-binary-bitmap")
    assert raw is not None
    with_bit_65 = raw[:12] + bytes([raw[12] | 0x80]) + raw[13:]
    assert _codec("ascii-binary-bitmap").decode(with_bit_65) is None


def _reshaped(variant: str, key: str, **changes: Any) -> dict[str, dict[str, Any]]:
    spec = {name: dict(form) for name, form in SPECS[variant].items()}
    spec[key].update(changes)
    return spec


@pytest.mark.parametrize(
    "spec",
    [
        _reshaped("ascii", "h", max_len=2),
        _reshaped("ascii", "t", data_enc="b"),
        _reshaped("ascii", "2", len_enc="b"),
        _reshaped("ascii", "2", len_enc="bcd"),
        _reshaped("ascii", "2", len_count="nibbles"),
        _reshaped("ascii", "2", len_type=4),
        _reshaped("ascii", "43", data_enc="cp037"),
        _reshaped("ascii", "1", data_enc="b"),
        {name: {**form, "data_enc": "utf-8"} for name, form in SPECS["ascii"].items()},
        {
            name: {**form, "data_enc": "cp1252", "len_enc": "cp1252"}
            for name, form in SPECS["ascii"].items()
        },
        {key: form for key, form in SPECS["ascii"].items() if key != "100"},
    ],
)
def test_specs_of_other_shapes_are_left_to_pyiso8583(spec: dict[str, dict[str, Any]]) -> None:
    assert compile_codec(spec) is None


def test_every_variant_compiles() -> None:
    assert all(codec is not None for codec in CODECS.values())


# -- the adapter, with and without the compiled codec -----------------------------------------


def _compiled_and_reference(variant: str) -> tuple[Iso8583Adapter, Iso8583Adapter]:
    """The adapter, and the same adapter on pyiso8583 alone (no compiled codec)."""
    compiled = Iso8583Adapter(variant)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter_module, "_compiled_codec", lambda variant: None)
        reference = Iso8583Adapter(variant)
    return compiled, reference


ADAPTERS = {variant: _compiled_and_reference(variant) for variant in VARIANTS}


def _outcome(adapter: Iso8583Adapter, payload: bytes) -> CanonicalMessage | tuple[Any, ...]:
    try:
        return adapter.decode(payload, decode_context(fixed_vault()))
    except AdapterDecodeError as error:
        return (str(error), error.field, error.offset, dict(error.context))


@settings(max_examples=300)
@given(variants, field_dicts(), st.data())
def test_the_adapter_decodes_and_refuses_as_on_pyiso8583_alone(
    variant: str, fields: dict[str, str], data: st.DataObject
) -> None:
    compiled, reference = ADAPTERS[variant]
    raw = _reference_encode(fields, variant)
    assert raw is not None
    payload = data.draw(st.just(raw) | mutated(raw))
    assert _outcome(compiled, payload) == _outcome(reference, payload)


@settings(max_examples=100)
@given(variants, field_dicts())
def test_the_adapter_decodes_well_formed_messages_as_on_pyiso8583_alone(
    variant: str, fields: dict[str, str]
) -> None:
    compiled, reference = ADAPTERS[variant]
    raw = _reference_encode(fields, variant)
    assert raw is not None
    assert _outcome(compiled, raw) == _outcome(reference, raw)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_adapter_encodes_as_on_pyiso8583_alone(variant: str, name: str) -> None:
    compiled, reference = ADAPTERS[variant]
    vault = fixed_vault()
    raw = _reference_encode(dict(SAMPLES[name]), variant)
    assert raw is not None
    message = compiled.decode(raw, decode_context(vault))
    assert compiled.encode(message, encode_context(compiled, vault)) == reference.encode(
        message, encode_context(reference, vault)
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_encode_errors_are_pyiso8583s(variant: str) -> None:
    compiled, reference = ADAPTERS[variant]
    vault = fixed_vault()
    raw = _reference_encode(dict(SAMPLES["0800-echo"]), variant)
    assert raw is not None
    message = compiled.decode(raw, decode_context(vault))
    too_long = dataclasses.replace(message, approval_code="1234567")  # field 38 is an 6
    errors = []
    for adapter in (compiled, reference):
        with pytest.raises(AdapterEncodeError) as info:
            adapter.encode(too_long, encode_context(adapter, vault))
        errors.append((str(info.value), info.value.field))
    assert errors[0] == errors[1]
    assert errors[0][1] == "38"
