"""Shared ISO 20022 building blocks: Max35Text ids that never read as a card number."""

from __future__ import annotations

import dataclasses
import uuid

from hypothesis import given
from hypothesis import strategies as st

from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import sample_bytes
from adapters.iso20022.adapter import Iso20022Adapter
from adapters.iso20022.components import max35
from canonical_model import find_clear_pans
from tests.support import decode_context, encode_context, fixed_vault

# Its dashes all gone, this UUID holds the Luhn-valid run 4111111111114115.
LUHN_VALID_WITHOUT_DASHES = "41111111-1111-4115-a123-b45c67d89e0f"


def test_a_uuid_loses_only_its_first_dash() -> None:
    assert find_clear_pans(LUHN_VALID_WITHOUT_DASHES.replace("-", "")) == ["4111111111114115"]
    shortened = max35(LUHN_VALID_WITHOUT_DASHES)
    assert shortened == "411111111111-4115-a123-b45c67d89e0f"
    assert len(shortened) == 35 and find_clear_pans(shortened) == []


@given(st.uuids(version=4))
def test_no_uuid_shortened_holds_a_card_number(value: uuid.UUID) -> None:
    shortened = max35(str(value))
    assert len(shortened) == 35 and shortened.replace("-", "") == value.hex
    assert find_clear_pans(shortened) == []


@given(st.text(alphabet="ab-1", max_size=60))
def test_what_is_too_long_loses_dashes_from_the_left_then_is_cut(text: str) -> None:
    shortened = max35(text)
    assert len(shortened) == min(len(text), 35)
    if len(text) <= 35:
        assert shortened == text
    elif text.count("-") >= len(text) - 35:
        assert shortened == text.replace("-", "", len(text) - 35)
    else:
        assert shortened == text.replace("-", "")[:35]


def test_a_pacs008_for_a_hub_id_so_shaped_holds_no_card_number() -> None:
    vault = fixed_vault()
    iso8583 = Iso8583Adapter("ascii")
    purchase = iso8583.decode(sample_bytes("0200-purchase", "ascii"), decode_context(vault))
    ids = dataclasses.replace(purchase.ids, message_id=LUHN_VALID_WITHOUT_DASHES)
    pacs008 = Iso20022Adapter("pacs.008")
    xml = pacs008.encode(dataclasses.replace(purchase, ids=ids), encode_context(pacs008, vault))
    assert b"<MsgId>411111111111-4115-a123-b45c67d89e0f</MsgId>" in xml
    assert find_clear_pans(xml.decode()) == []
