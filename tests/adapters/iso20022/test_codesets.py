"""The packaged ISO 20022 External Code Sets of adapters.iso20022.codesets."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from adapters.iso20022.codesets import (
    CODE_SET_NAMES,
    CodeSet,
    UnknownCodeSetError,
    code_set,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "iso20022"

# name -> (ISO 20022 code set, a code in it)
EXPECTED = {
    "status_reason": ("ExternalStatusReason1Code", "AC01"),
    "payment_transaction_status": ("ExternalPaymentTransactionStatus1Code", "ACSC"),
    "payment_group_status": ("ExternalPaymentGroupStatus1Code", "PART"),
    "return_reason": ("ExternalReturnReason1Code", "AC04"),
    "cancellation_reason": ("ExternalCancellationReason1Code", "DUPL"),
    "payment_cancellation_rejection": ("ExternalPaymentCancellationRejection1Code", "ARDT"),
    "purpose": ("ExternalPurpose1Code", "SALA"),
    "category_purpose": ("ExternalCategoryPurpose1Code", "SUPP"),
}


def packaged_files() -> list[str]:
    folder = resources.files("adapters.iso20022").joinpath("codesets")
    return sorted(entry.name for entry in folder.iterdir() if entry.is_file())


def test_the_eight_code_sets_are_named() -> None:
    assert set(CODE_SET_NAMES) == set(EXPECTED)
    assert len(CODE_SET_NAMES) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_code_set_loads(name: str) -> None:
    iso_name, sample_code = EXPECTED[name]
    codes = code_set(name)
    assert isinstance(codes, CodeSet)
    assert codes.name == iso_name
    assert sample_code in codes
    assert codes.definition(sample_code)
    assert len(codes) == len(codes.codes) > 10
    assert list(codes) == sorted(codes.codes)
    assert codes.description
    assert repr(codes) == f"CodeSet({iso_name!r}, {len(codes)} codes)"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_codes_are_four_upper_case_characters(name: str) -> None:
    for code in code_set(name).codes:
        assert 1 <= len(code) <= 4
        assert code.isascii()
        assert code.isalnum()
        assert code == code.upper()


def test_a_code_set_is_loaded_once() -> None:
    assert code_set("purpose") is code_set("purpose")


def test_codes_are_read_only() -> None:
    codes = code_set("status_reason").codes
    with pytest.raises(TypeError):
        codes["ZZ99"] = "made up"  # type: ignore[index]
    assert "ZZ99" not in code_set("status_reason")


def test_membership_is_exact() -> None:
    reasons = code_set("status_reason")
    assert "AM04" in reasons
    assert "am04" not in reasons
    assert " AM04" not in reasons
    assert "" not in reasons
    assert 4 not in reasons
    assert None not in reasons


def test_definition_of_an_unknown_code_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="'ZZ99' is not a code of ExternalStatusReason1Code"):
        code_set("status_reason").definition("ZZ99")


def test_definitions_match_the_published_texts() -> None:
    reasons = code_set("status_reason")
    assert reasons.definition("AC01") == "Account number is invalid or missing."
    assert reasons.definition("NARR").startswith("Reason is provided as narrative")
    assert code_set("return_reason").definition("RR04") == "Regulatory Reason"


def test_unknown_name_is_a_key_error_naming_the_known_sets() -> None:
    with pytest.raises(KeyError) as caught:
        code_set("reason")
    error = caught.value
    assert isinstance(error, UnknownCodeSetError)
    assert error.name == "reason"
    assert error.known == CODE_SET_NAMES
    for name in CODE_SET_NAMES:
        assert name in str(error)


def test_unknown_name_suggests_a_close_one() -> None:
    with pytest.raises(UnknownCodeSetError) as caught:
        code_set("return_reasons")
    assert caught.value.suggestions[0] == "return_reason"
    assert "did you mean 'return_reason'?" in str(caught.value)


def test_the_canonical_status_table_uses_existing_codes() -> None:
    # design/CANONICAL.md, "Status and reason codes": every ISO 20022 code it maps to.
    reasons = code_set("status_reason")
    for code in ("AM12", "AC01", "FF01", "AM04", "AG01", "AG03", "AM02", "AC06", "AB08"):
        assert code in reasons
    for code in ("AB05", "AM05", "AB09", "NARR"):
        assert code in reasons
    statuses = code_set("payment_transaction_status")
    assert {"ACSC", "ACSP", "RJCT"} <= set(statuses)


def test_packaged_files_are_the_shared_ones_byte_for_byte() -> None:
    shared = SHARED / "codesets"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not there")
    expected = sorted(path.name for path in shared.iterdir() if path.is_file())
    assert packaged_files() == expected
    folder = resources.files("adapters.iso20022").joinpath("codesets")
    for name in expected:
        assert folder.joinpath(name).read_bytes() == (shared / name).read_bytes(), name


def test_every_packaged_json_file_is_a_known_code_set() -> None:
    folder = resources.files("adapters.iso20022").joinpath("codesets")
    json_files = [name for name in packaged_files() if name.endswith(".json")]
    assert len(json_files) == len(CODE_SET_NAMES)
    loaded = {code_set(name).name for name in CODE_SET_NAMES}
    for name in json_files:
        data = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
        assert data["name"] in loaded
