"""Masking one value: card numbers, IBANs, ids, names, text, dates; keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.iso20022.rules import IBAN_LENGTHS, iban_problem
from canonical_model.pan import contains_clear_pan, luhn_valid
from hub.masking.values import (
    Masker,
    MaskingError,
    MaskingKey,
    iban_check_digits,
    luhn_check_digit,
    sensitive_content,
)

MASKER = Masker(MaskingKey(bytes(range(32))))
OTHER = Masker(MaskingKey(bytes(range(1, 33))))

digits = st.text(alphabet="0123456789", min_size=1)


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=11, max_size=18))
    return body + luhn_check_digit(body)


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = draw(
        st.text(
            alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            min_size=IBAN_LENGTHS[country] - 4,
            max_size=IBAN_LENGTHS[country] - 4,
        )
    )
    return country + iban_check_digits(country, bban) + bban


@given(card_numbers())
def test_a_card_number_keeps_bin_length_and_luhn(pan: str) -> None:
    masked = MASKER.pan(pan)
    keep = min(6, len(pan) - 7)
    assert len(masked) == len(pan)
    assert masked[:keep] == pan[:keep]
    assert luhn_valid(masked)
    assert MASKER.pan(pan) == masked  # consistent
    assert masked.isdigit()


@given(st.lists(card_numbers(), min_size=2, max_size=20, unique=True))
def test_card_numbers_never_collide(pans: list[str]) -> None:
    assert len({MASKER.pan(pan) for pan in pans}) == len(pans)


def test_a_card_number_is_replaced_and_depends_on_the_key() -> None:
    pan = "4111111111111111"
    assert MASKER.pan(pan) != pan
    assert MASKER.pan(pan) != OTHER.pan(pan)
    assert MASKER.pan(pan)[6:-1] != pan[6:-1]


def test_a_card_number_failing_luhn_stays_failing() -> None:
    masked = MASKER.pan("4111111111111112")
    assert not luhn_valid(masked)
    with pytest.raises(MaskingError, match="12 to 19 digits"):
        MASKER.pan("41111")


@given(ibans())
def test_an_iban_keeps_country_length_bank_and_validity(iban: str) -> None:
    masked = MASKER.iban(iban)
    assert iban_problem(masked) is None
    assert masked[:2] == iban[:2]
    assert len(masked) == len(iban)
    assert MASKER.iban(iban) == masked


def test_an_iban_keeps_the_bank_code_and_masks_the_account() -> None:
    masked = MASKER.iban("DE89370400440532013000")
    assert masked[4:12] == "37040044"
    assert masked[12:] != "0532013000"
    assert MASKER.iban("GB82WEST12345698765432")[4:14] == "WEST123456"
    with pytest.raises(MaskingError, match="not a valid IBAN: check digits"):
        MASKER.iban("DE00370400440532013000")


def test_an_account_is_masked_as_what_it_is() -> None:
    assert iban_problem(MASKER.account("GB33BUKB20201555555555")) is None
    assert luhn_valid(MASKER.account("5413330089010012"))
    token = MASKER.account("5413337527960012")  # a vault token: BIN kept, Luhn still failing
    assert token[:6] == "541333" and not luhn_valid(token)
    assert MASKER.apply("name", "NOTPROVIDED") == "NOTPROVIDED"
    masked = MASKER.account("AC-00042-X")
    assert masked[2] == "-" and masked[8] == "-" and masked[3:8].isdigit()


@given(st.text(alphabet="0123456789ABCxyz-/ ", min_size=1, max_size=40))
def test_an_id_keeps_its_shape_and_never_looks_like_a_card(value: str) -> None:
    masked = MASKER.identifier(value)
    assert len(masked) == len(value)
    for before, after in zip(value, masked, strict=True):
        if before.isdigit():
            assert after.isdigit()
        elif before.isalpha():
            assert after.isalpha() and after.isupper() == before.isupper()
        else:
            assert after == before
    if not contains_clear_pan(value):
        assert not contains_clear_pan(masked)


@given(st.lists(st.text(alphabet="0123456789", min_size=6, max_size=12), unique=True, max_size=30))
def test_ids_of_six_digits_or_more_never_collide(values: list[str]) -> None:
    assert len({MASKER.identifier(v) for v in values}) == len(values)


def test_a_name_is_realistic_consistent_and_keeps_its_case() -> None:
    upper = MASKER.name("JOHN  SMITH")
    assert upper.isupper() and len(upper.split()) == 2
    assert MASKER.name("John Smith") == upper.title()
    assert "SMITH" not in upper
    assert MASKER.name("Jane Doe") != OTHER.name("Jane Doe") or MASKER.name(
        "Erika Mustermann"
    ) != OTHER.name("Erika Mustermann")


@given(st.text(max_size=60))
def test_text_keeps_length_and_character_classes(value: str) -> None:
    masked = MASKER.text(value)
    assert len(masked) == len(value)
    for before, after in zip(value, masked, strict=True):
        if before.isascii() and before.isdigit():
            assert after.isdigit()
        elif before.isalpha():
            assert after.isascii() and after.isalpha()
        else:
            assert after == before


def test_a_date_stays_in_its_year_and_form() -> None:
    masked = MASKER.date("1980-07-14")
    assert masked.startswith("1980-") and len(masked) == 10
    assert MASKER.date("19800714").startswith("1980")
    with pytest.raises(MaskingError, match="not a real date"):
        MASKER.date("1980-02-30")


def test_binary_keeps_its_length() -> None:
    assert len(MASKER.binary("1A2B3C4D5E6F7081")) == 16
    assert MASKER.binary("1A2B3C4D5E6F7081") != "1A2B3C4D5E6F7081"


def test_keys_from_a_master_key_and_a_passphrase() -> None:
    master = bytes(32)
    assert MaskingKey.from_master(master) == MaskingKey.from_master(master)
    assert MaskingKey.from_master(master).secret != master
    assert "secret" not in repr(MaskingKey.from_master(master)).replace("<secret>", "")
    key = MaskingKey.from_passphrase("correct horse battery staple")
    assert key == MaskingKey.from_passphrase("correct horse battery staple")
    with pytest.raises(MaskingError, match="at least 16"):
        MaskingKey.from_passphrase("short")
    assert MaskingKey.random() != MaskingKey.random()


def test_sensitive_content() -> None:
    assert sensitive_content("ref 4111111111111111") == "a card number"
    assert sensitive_content("to DE89370400440532013000 today") == "an IBAN"
    assert sensitive_content("20230604011104238Sc04Step1MsgId") is None
    assert sensitive_content("nothing here 12345") is None


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(MaskingError, match="unknown masking rule"):
        MASKER.apply("shuffle", "x")
