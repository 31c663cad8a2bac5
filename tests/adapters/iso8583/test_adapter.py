"""The ISO 8583 adapter: mapping, sensitive data, bad input and the format-error answer."""

from __future__ import annotations

import dataclasses
import datetime as dt

import iso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import AdapterDecodeError, AdapterEncodeError, DecodeContext, EncodeContext
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import SAMPLES, TEST_PANS, sample_bytes
from adapters.iso8583.specs import SPECS, VARIANTS
from canonical_model import (
    CanonicalMessage,
    MessageFunction,
    MessageKind,
    Money,
    NetworkAction,
    PanToken,
    TransactionStatus,
    find_clear_pans,
    luhn_valid,
    to_json,
)
from tests.support import NOW, TENANT, decode_context, encode_context, fixed_vault
from vault.memory import InMemoryVault

ASCII = Iso8583Adapter("ascii")


def decode(fields: dict[str, str], variant: str = "ascii") -> CanonicalMessage:
    raw, _ = iso8583.encode(dict(fields), SPECS[variant])
    return Iso8583Adapter(variant).decode(bytes(raw), decode_context(fixed_vault()))


def decode_error(payload: bytes, adapter: Iso8583Adapter = ASCII) -> AdapterDecodeError:
    with pytest.raises(AdapterDecodeError) as info:
        adapter.decode(payload, decode_context(fixed_vault()))
    return info.value


def answer_fields(answer: bytes | None, variant: str = "ascii") -> dict[str, str]:
    assert answer is not None
    return iso8583.decode(answer, SPECS[variant])[0]


@pytest.mark.parametrize(
    ("name", "kind", "function", "repeat"),
    [
        ("0100-authorization", MessageKind.AUTHORIZATION, MessageFunction.REQUEST, False),
        ("0110-approved", MessageKind.AUTHORIZATION, MessageFunction.RESPONSE, False),
        ("0200-purchase", MessageKind.FINANCIAL, MessageFunction.REQUEST, False),
        ("0200-balance-enquiry", MessageKind.BALANCE_ENQUIRY, MessageFunction.REQUEST, False),
        ("0210-balance-response", MessageKind.BALANCE_ENQUIRY, MessageFunction.RESPONSE, False),
        ("0420-reversal-advice", MessageKind.REVERSAL, MessageFunction.ADVICE, False),
        ("0421-reversal-repeat", MessageKind.REVERSAL, MessageFunction.ADVICE, True),
        (
            "0430-reversal-acknowledged",
            MessageKind.REVERSAL,
            MessageFunction.ADVICE_RESPONSE,
            False,
        ),
        ("0800-echo", MessageKind.NETWORK_MANAGEMENT, MessageFunction.REQUEST, False),
    ],
)
def test_mti_maps_to_kind_function_and_repeat(
    name: str, kind: MessageKind, function: MessageFunction, repeat: bool
) -> None:
    message = decode(dict(SAMPLES[name]))
    assert (message.kind, message.function, message.repeat) == (kind, function, repeat)


def test_purchase_with_track2_and_pin_keeps_neither() -> None:
    vault = fixed_vault()
    message = ASCII.decode(sample_bytes("0200-purchase", "ascii"), decode_context(vault))
    assert message.card is not None
    assert message.card.token is not None
    assert not luhn_valid(message.card.token.value)
    assert message.card.token.value[:6] == TEST_PANS[1][:6]
    assert message.card.expiry == "2812"
    assert message.card.service_code == "201"
    assert message.card.dropped == ("track2", "pin_block")
    assert vault.detokenize(message.card.token, tenant=TENANT, purpose="test") == TEST_PANS[1]
    text = to_json(message) + repr(message)
    assert "1234567890" not in text  # track 2 discretionary data
    assert "1A2B3C4D" not in text.upper()  # PIN block
    assert find_clear_pans(text) == []
    assert message.amount == Money.of("25.50", "EUR")
    assert message.transmitted_at == dt.datetime(2026, 11, 28, 16, 6, 12, tzinfo=dt.UTC)


def test_emv_tags_carrying_the_pan_are_dropped() -> None:
    message = decode(dict(SAMPLES["0100-authorization"]))
    assert message.card is not None
    tags = [tag.tag for tag in message.card.emv]
    assert "9F26" in tags and "5F34" in tags
    assert "5A" not in tags
    assert "emv:5A" in message.card.dropped


def test_a_field_that_looks_like_a_pan_is_dropped_not_carried() -> None:
    fields = {"t": "0200", "11": "000001", "48": f"REF{TEST_PANS[2]}X", "62": "KEEP ME"}
    message = decode(fields)
    assert [(e.key, e.value) for e in message.extensions] == [("iso8583:62", "KEEP ME")]
    assert message.card is not None and message.card.dropped == ("field48",)


def test_account_number_that_is_a_pan_is_tokenized() -> None:
    message = decode({"t": "0200", "11": "000001", "102": TEST_PANS[0]})
    assert message.debtor_account is not None
    assert message.debtor_account.scheme == "TOKEN"
    assert message.debtor_account.other_id != TEST_PANS[0]


def test_an_account_number_holding_a_pan_among_other_characters_is_refused() -> None:
    # A damaged IBAN whose digits pass the Luhn check: not a card number on its own.
    raw, _ = iso8583.encode(
        {"t": "0200", "11": "000001", "41": "TERM0001", "102": "GB33BUKB20206555555555"},
        SPECS["ascii"],
    )
    error = decode_error(bytes(raw))
    assert (error.field, error.reason) == ("102", "holds a card number among other characters")
    assert "20206555555555" not in str(error)
    answer = ASCII.reject(error, encode_context(ASCII, fixed_vault()))
    assert answer is not None
    fields, _ = iso8583.decode(answer, SPECS["ascii"])
    assert (fields["t"], fields["39"]) == ("0210", "30")


def test_request_and_response_share_the_correlation_key() -> None:
    request = decode(dict(SAMPLES["0200-balance-enquiry"]))
    response = decode(dict(SAMPLES["0210-balance-response"]))
    assert request.ids.correlation_key == response.ids.correlation_key == "02:ATM00042:000003"


def test_response_code_maps_to_iso20022_and_back() -> None:
    declined = decode(dict(SAMPLES["0210-declined"]))
    assert declined.status is not None
    assert (declined.status.code, declined.status.reason) == (TransactionStatus.RJCT, "AM04")
    approved = decode(dict(SAMPLES["0110-approved"]))
    assert approved.status is not None and approved.status.code is TransactionStatus.ACSP


def test_additional_amounts_keep_their_sign() -> None:
    message = decode(dict(SAMPLES["0210-balance-response"]))
    assert [str(a.amount) for a in message.additional_amounts] == ["1500.00 USD", "-20.00 USD"]


def test_network_management_actions() -> None:
    assert decode(dict(SAMPLES["0800-sign-on"])).network is not None
    echo = decode(dict(SAMPLES["0800-echo"]))
    assert echo.network is not None and echo.network.action is NetworkAction.ECHO


def test_reversal_carries_the_original_transaction() -> None:
    message = decode(dict(SAMPLES["0420-reversal-advice"]))
    assert message.original is not None
    assert message.original.message_type == "0200"
    assert message.original.instruction_id == "000002"
    assert message.original.transmitted_at == dt.datetime(2026, 11, 28, 16, 6, 12, tzinfo=dt.UTC)


def test_year_is_inferred_across_new_year() -> None:
    context = dataclasses.replace(
        decode_context(fixed_vault()), now=lambda: dt.datetime(2027, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    )
    raw, _ = iso8583.encode({"t": "0800", "7": "1231235959", "70": "301"}, SPECS["ascii"])
    message = ASCII.decode(bytes(raw), context)
    assert message.transmitted_at == dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_zero_secondary_bitmap_is_accepted(variant: str) -> None:
    spec = SPECS[variant]
    raw, _ = iso8583.encode({"t": "0800", "11": "000001"}, spec)
    mti_size = 4
    primary = bytearray(raw[mti_size : mti_size + (16 if variant == "ascii" else 8)])
    if variant == "ascii":
        first = int(primary[0:1].decode(), 16) | 0x8
        primary[0:1] = f"{first:X}".encode()
        secondary = b"0" * 16
    else:
        primary[0] |= 0x80
        secondary = bytes(8)
    payload = (
        bytes(raw[:mti_size]) + bytes(primary) + secondary + bytes(raw[mti_size + len(primary) :])
    )
    message = Iso8583Adapter(variant).decode(payload, decode_context(fixed_vault()))
    assert message.ids.instruction_id == "000001"


# -- bad input -------------------------------------------------------------------------------


def test_truncated_message_names_field_and_offset() -> None:
    payload = sample_bytes("0800-echo", "ascii")
    error = decode_error(payload[:-2])
    assert error.field == "70"
    assert error.offset == len(payload) - 3
    assert "iso8583: cannot decode (field 70, offset" in str(error)


def test_bad_bitmap_is_named() -> None:
    payload = sample_bytes("0800-echo", "ascii")
    error = decode_error(payload[:4] + b"ZZ" + payload[6:])
    assert error.field == "primary bitmap"
    assert error.offset == 4


def test_length_prefix_over_maximum_is_refused() -> None:
    payload = b"0200" + b"4000000000000000" + b"25" + b"1" * 25
    error = decode_error(payload)
    assert error.field == "2"
    assert "larger than maximum 19" in error.reason


def test_non_numeric_numeric_field_names_the_offset() -> None:
    payload = sample_bytes("0200-purchase", "ascii")
    fields = iso8583.decode(payload, SPECS["ascii"])[1]
    start = sum(len(fields[f]["data"]) for f in ("t", "p", "1", "3"))
    broken = payload[: start + 9] + b"X" + payload[start + 10 :]
    error = decode_error(broken)
    assert (error.field, error.offset) == ("4", start + 9)
    answer = answer_fields(ASCII.reject(error, encode_context(ASCII, fixed_vault())))
    assert answer["t"] == "0210" and answer["39"] == "30"
    request = SAMPLES["0200-purchase"]
    assert answer["11"] == request["11"] and answer["41"] == request["41"]
    assert "4" not in answer and "35" not in answer


def test_a_broken_response_is_not_answered() -> None:
    payload = sample_bytes("0210-declined", "ascii")
    fields = iso8583.decode(payload, SPECS["ascii"])[1]
    start = len(fields["t"]["data"]) + len(fields["p"]["data"]) + len(fields["3"]["data"])
    error = decode_error(payload[: start + 9] + b"X" + payload[start + 10 :])
    assert error.field == "4"
    assert ASCII.reject(error, encode_context(ASCII, fixed_vault())) is None


def test_unknown_mti_gets_a_format_error_response() -> None:
    payload = b"0300" + sample_bytes("0200-balance-enquiry", "ascii")[4:]
    error = decode_error(payload)
    assert error.field == "MTI" and error.offset == 0
    assert "0300" in error.reason and "0200/0210" in error.reason
    answer = answer_fields(ASCII.reject(error, encode_context(ASCII, fixed_vault())))
    assert (answer["t"], answer["39"], answer["11"]) == ("0310", "30", "000003")


def test_card_number_failing_luhn_is_answered_with_14() -> None:
    fields = dict(SAMPLES["0200-balance-enquiry"], **{"2": "4111111111111112"})
    raw, _ = iso8583.encode(fields, SPECS["ascii"])
    error = decode_error(bytes(raw))
    assert error.field == "2"
    assert "4111111111111112" not in str(error)
    answer = answer_fields(ASCII.reject(error, encode_context(ASCII, fixed_vault())))
    assert (answer["t"], answer["39"]) == ("0210", "14")
    assert "2" not in answer


class _VaultDown:
    """A tokenizer whose store is unreachable, as a database outage looks to the adapter."""

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        raise RuntimeError("vault database unreachable")


def test_a_vault_outage_is_answered_with_96_not_a_crash() -> None:
    payload = sample_bytes("0200-balance-enquiry", "ascii")
    with pytest.raises(AdapterDecodeError) as info:
        ASCII.decode(payload, DecodeContext(TENANT, _VaultDown(), now=lambda: NOW))
    assert info.value.field == "2"
    assert info.value.context["response_code"] == "96"
    answer = answer_fields(ASCII.reject(info.value, encode_context(ASCII, fixed_vault())))
    assert (answer["t"], answer["39"]) == ("0210", "96")


def test_track2_that_disagrees_with_field_2_is_refused() -> None:
    fields = dict(SAMPLES["0200-purchase"], **{"2": TEST_PANS[0]})
    raw, _ = iso8583.encode(fields, SPECS["ascii"])
    error = decode_error(bytes(raw))
    assert error.field == "35"
    assert error.context["response_code"] == "14"


def test_amount_without_currency_is_refused() -> None:
    raw, _ = iso8583.encode({"t": "0200", "4": "000000000100"}, SPECS["ascii"])
    assert decode_error(bytes(raw)).field == "49"


def test_tertiary_bitmap_is_refused_with_a_typed_error() -> None:
    raw, _ = iso8583.encode({"t": "0800", "11": "000001", "70": "301"}, SPECS["ascii"])
    secondary = int(bytes(raw[20:36]).decode(), 16) | (1 << 63)
    payload = bytes(raw[:20]) + f"{secondary:016X}".encode() + b"F" * 16 + bytes(raw[36:])
    assert decode_error(payload).field == "65"


def test_response_to_a_response_is_not_answered() -> None:
    payload = sample_bytes("0210-declined", "ascii")
    error = decode_error(payload[:-3])
    assert ASCII.reject(error, encode_context(ASCII, fixed_vault())) is None


def test_unreadable_mti_has_no_answer() -> None:
    error = decode_error(b"\xff\xfe")
    assert ASCII.reject(error, encode_context(ASCII, fixed_vault())) is None


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(SAMPLES)),
    st.sampled_from(VARIANTS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_messages_give_typed_errors_only(
    name: str, variant: str, flips: list[tuple[int, int]]
) -> None:
    payload = bytearray(sample_bytes(name, variant))
    for position, value in flips:
        payload[position % len(payload)] = value
    adapter = Iso8583Adapter(variant)
    try:
        adapter.decode(bytes(payload), decode_context(fixed_vault()))
    except AdapterDecodeError as exc:
        assert find_clear_pans(str(exc)) == []
        adapter.reject(exc, encode_context(adapter, fixed_vault()))


# -- encode -----------------------------------------------------------------------------------


def test_encode_without_detokenizer_is_refused_naming_field_2() -> None:
    message = decode(dict(SAMPLES["0200-balance-enquiry"]))
    with pytest.raises(AdapterEncodeError) as info:
        ASCII.encode(message, EncodeContext(TENANT))
    assert info.value.field == "2"


def test_encode_of_a_kind_iso8583_lacks_is_refused() -> None:
    message = dataclasses.replace(
        decode(dict(SAMPLES["0800-echo"])), kind=MessageKind.CREDIT_TRANSFER, network=None
    )
    with pytest.raises(AdapterEncodeError, match="no message class for kind 'credit_transfer'"):
        ASCII.encode(message, encode_context(ASCII, fixed_vault()))


def test_encode_refuses_a_non_numeric_stan() -> None:
    message = decode(dict(SAMPLES["0800-echo"]))
    message = dataclasses.replace(
        message, ids=dataclasses.replace(message.ids, instruction_id="12A")
    )
    with pytest.raises(AdapterEncodeError) as info:
        ASCII.encode(message, encode_context(ASCII, fixed_vault()))
    assert info.value.field == "11"


@pytest.mark.parametrize("target", VARIANTS)
@pytest.mark.parametrize(
    "name", ["0100-authorization", "0200-purchase", "0420-reversal-advice", "0800-echo"]
)
def test_translation_between_variants_keeps_the_canonical_message(name: str, target: str) -> None:
    vault = fixed_vault()
    message = ASCII.decode(sample_bytes(name, "ascii"), decode_context(vault))
    other = Iso8583Adapter(target)
    encoded = other.encode(message, encode_context(other, vault))
    again = other.decode(encoded, decode_context(vault))
    assert again.same_transaction(message)
    assert again.card == (message.card and dataclasses.replace(message.card, dropped=()))


def test_tokens_are_per_tenant() -> None:
    vault = InMemoryVault()
    payload = sample_bytes("0200-balance-enquiry", "ascii")
    first = ASCII.decode(payload, DecodeContext("bank-a", vault, now=lambda: NOW))
    second = ASCII.decode(payload, DecodeContext("bank-b", vault, now=lambda: NOW))
    assert first.card is not None and second.card is not None
    assert first.card.token != second.card.token
