"""The OBIE documents: the packaged copies, the lenient load, and schema problems as OBIE errors."""

from __future__ import annotations

import json

import pytest

from gateway.spec import SPEC_FILES, load_spec, spec
from tests.gateway.conftest import SHARED_SPECS
from tests.gateway.harness import payment_consent_body


@pytest.mark.parametrize("name", sorted(SPEC_FILES))
def test_packaged_copies_equal_the_shared_collection(name: str) -> None:
    from importlib import resources

    packaged = resources.files("gateway").joinpath("specs", SPEC_FILES[name]).read_bytes()  # type: ignore[index]
    assert packaged == (SHARED_SPECS / SPEC_FILES[name]).read_bytes()  # type: ignore[index]


def test_the_repeated_enum_value_is_dropped_and_recorded() -> None:
    raw = json.loads((SHARED_SPECS / SPEC_FILES["payment-initiation"]).read_text())
    values = raw["components"]["schemas"]["OBFrequency6Code"]["enum"]
    assert values.count("WEEK") == 2  # the published file repeats it
    loaded = spec("payment-initiation")
    assert loaded.repaired == ("#/components/schemas/OBFrequency6Code",)
    assert loaded.document["components"]["schemas"]["OBFrequency6Code"]["enum"].count("WEEK") == 1
    assert loaded.version == "4.0.0"
    assert spec("account-info").repaired == ()


def test_a_valid_consent_has_no_problems() -> None:
    assert (
        spec("payment-initiation").problems("OBWriteDomesticConsent4", payment_consent_body()) == []
    )


def test_problems_name_the_path_and_never_repeat_the_value() -> None:
    body = payment_consent_body()
    initiation = body["Data"]["Initiation"]
    del initiation["EndToEndIdentification"]
    initiation["InstructedAmount"]["Amount"] = "12,3456-SECRET"
    initiation["Surprise"] = 1
    problems = spec("payment-initiation").problems("OBWriteDomesticConsent4", body)
    by_path = {item.path: item for item in problems}
    assert by_path["Data.Initiation.EndToEndIdentification"].name == "UK.OBIE.Field.Missing"
    assert by_path["Data.Initiation.InstructedAmount.Amount"].name == "UK.OBIE.Field.Invalid"
    assert by_path["Data.Initiation.Surprise"].name == "UK.OBIE.Field.Unexpected"
    assert all("SECRET" not in item.message for item in problems)


def test_load_spec_reads_given_text() -> None:
    text = (SHARED_SPECS / SPEC_FILES["account-info"]).read_bytes()
    assert load_spec("account-info", text).document["info"]["version"] == "4.0.0"
