"""Public names are pinned: a change to any ``__all__`` is a deliberate edit here too."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "canonical_model": [
        "Acceptor",
        "Account",
        "AdditionalAmount",
        "Agent",
        "Agents",
        "AmountError",
        "CANONICAL_VERSION",
        "CURRENCIES",
        "CanonicalJsonError",
        "CanonicalMessage",
        "Card",
        "ClearPanError",
        "Currency",
        "EmvTag",
        "Extension",
        "ISO8583_APPROVAL_CODES",
        "ISO8583_FORMAT_ERROR",
        "Identifiers",
        "MessageFunction",
        "MessageKind",
        "Money",
        "NetworkAction",
        "NetworkManagement",
        "OriginalCode",
        "OriginalTransaction",
        "PanToken",
        "Party",
        "PostalAddress",
        "ProcessingCode",
        "Status",
        "TransactionStatus",
        "UnknownCurrencyError",
        "contains_clear_pan",
        "currency",
        "find_clear_pans",
        "from_dict",
        "from_json",
        "iso8583_response_code",
        "json_schema",
        "luhn_valid",
        "mask_pan",
        "status_from_iso8583",
        "to_dict",
        "to_json",
    ],
    "vault": [
        "DEFAULT_MAX_ATTEMPTS",
        "DEFAULT_POLICY",
        "DetokenizationRecord",
        "InMemoryVault",
        "InvalidPanError",
        "MAX_KEEP_FIRST",
        "MAX_KEEP_LAST",
        "MAX_PAN_LENGTH",
        "MIN_KEY_BYTES",
        "MIN_MIDDLE_DIGITS",
        "MIN_PAN_LENGTH",
        "TokenPolicy",
        "TokenSpaceExhaustedError",
        "UnknownTokenError",
        "VaultError",
        "derive_token",
        "fingerprint",
        "validate_key",
        "validate_pan",
        "validate_tenant",
    ],
    "adapters.base": [
        "Adapter",
        "AdapterDecodeError",
        "AdapterEncodeError",
        "AdapterError",
        "Capabilities",
        "CapabilityError",
        "DecodeContext",
        "Direction",
        "EncodeContext",
        "FieldView",
        "Inspectable",
        "PanDetokenizer",
        "PanTokenizer",
        "RoundTrip",
        "scrub",
    ],
    "adapters.registry": [
        "AdapterLoadError",
        "AdapterRegistry",
        "BUILTIN_ADAPTERS",
        "DuplicateAdapterError",
        "ENTRY_POINT_GROUP",
        "UnknownAdapterError",
        "default_registry",
        "get_adapter",
        "split_spec",
    ],
    "adapters.framing": [
        "BadLengthHeaderError",
        "DEFAULT_MAX_PAYLOAD",
        "FRAMERS",
        "Frame",
        "FrameDecoder",
        "FrameTooLargeError",
        "Framer",
        "FramingError",
        "Len2BcdFramer",
        "Len2BinaryFramer",
        "Len2TpduFramer",
        "Len4AsciiFramer",
        "Len4BinaryFramer",
        "TPDU_SIZE",
        "UnknownFramingError",
        "get_framer",
        "tpdu_reply",
    ],
    "adapters.codepages": [
        "CP1047_DECODING_TABLE",
        "EBCDIC_CODEPAGES",
        "ensure_codecs",
    ],
    "adapters.iso8583.adapter": [
        "ADDRESSING_FIELDS",
        "Iso8583Adapter",
    ],
    "adapters.iso8583.specs": [
        "FIELDS",
        "FieldFormat",
        "FieldType",
        "LengthForm",
        "SPECS",
        "SpecDict",
        "VARIANTS",
        "VARIANT_DESCRIPTIONS",
        "build_spec",
    ],
    "adapters.iso8583.emv": [
        "EmvTag",
        "MAX_VALUE_LENGTH",
        "TlvError",
        "build_tlv",
        "build_tlv_hex",
        "parse_tlv",
    ],
    "adapters.iso8583.mti": [
        "BALANCE_ENQUIRY_PROCESSING",
        "MtiMeaning",
        "UnsupportedMtiError",
        "build_mti",
        "correlation_class",
        "parse_mti",
        "response_mti",
    ],
    "hub.bootstrap": [
        "Hub",
        "build_hub",
        "open_vault",
    ],
    "hub.cli": [
        "CANONICAL_JSON",
        "main",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_public_names_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == PUBLIC_API[module_name]


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_every_public_name_exists_and_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value) and getattr(value, "__module__", "").split(".")[0] in {
            "canonical_model",
            "adapters",
            "vault",
            "hub",
        }:
            assert value.__doc__, f"{module_name}.{name} has no docstring"
