"""camt.029.001.09 (resolution of investigation): written, validated and read back, through
the module and through the adapter, and refused when it says what the hub cannot map."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters.base import AdapterDecodeError
from adapters.iso20022 import camt029
from adapters.registry import default_registry
from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import (
    CanonicalMessage,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
)
from canonical_model.money import Money
from tests.support import decode_context, fixed_vault

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
UETR = "6f1c9a4e-1b2c-4d3e-8f4a-000000000001"


def answer(code: TransactionStatus, reason: str | None = None, **extra: object) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.CANCELLATION,
        MessageFunction.RESPONSE,
        "clearing",
        Identifiers("rf-1", end_to_end_id="E2E-1", instruction_id="INSTR-1", uetr=UETR),
        amount=Money.of("25.00", "EUR"),
        original=OriginalTransaction(message_type="pacs.008.001.08", message_id="pmt-1"),
        status=Status(code, reason, additional_info=extra.get("info")),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("code", "written", "conf"),
    [
        (TransactionStatus.RJCT, "RJCR", "RJCR"),
        (TransactionStatus.CANC, "ACCR", "CNCL"),
        (TransactionStatus.PDNG, "PDCR", "CNCL"),
    ],
)
def test_a_resolution_round_trips_through_its_xsd(
    code: TransactionStatus, written: str, conf: str
) -> None:
    document = camt029.encode_resolutions([answer(code, "CUST", info="the creditor said no")],
                                          now=lambda: NOW)  # fmt: skip
    assert f"<TxCxlSts>{written}</TxCxlSts>".encode() in document
    assert f"<Conf>{conf}</Conf>".encode() in document
    (back,) = camt029.decode_resolution_document(
        document, tenant="bank-a", new_message_id=lambda: "m-1"
    )
    assert back.status == Status(code, "CUST", None, "the creditor said no")
    assert (back.kind, back.function) == (MessageKind.CANCELLATION, MessageFunction.RESPONSE)
    assert back.original is not None and back.original.message_id == "pmt-1"
    assert back.ids.uetr == UETR and back.ids.correlation_key == f"uetr:{UETR}"
    assert back.ids.source_message_id == "rf-1" and str(back.amount) == "25.00 EUR"
    assert Extension("iso20022:Conf", conf) in back.extensions
    assert back.transmitted_at == NOW


def test_the_adapter_decodes_camt029_like_the_other_answers() -> None:
    document = camt029.encode_resolutions([answer(TransactionStatus.RJCT, "LEGL")])
    adapter = default_registry().get("iso20022:pacs.002")
    (back,) = adapter.decode_batch(document, decode_context(fixed_vault()))  # type: ignore[attr-defined]
    assert back.status.code is TransactionStatus.RJCT and back.status.reason == "LEGL"


def test_what_cannot_be_mapped_or_validated_is_refused_with_its_path() -> None:
    with pytest.raises(ValueError, match="a cancellation response needs a status"):
        camt029.encode_resolutions([answer(TransactionStatus.ACSC)])
    document = camt029.encode_resolutions([answer(TransactionStatus.RJCT)])
    broken = document.replace(b"<TxCxlSts>RJCR</TxCxlSts>", b"<TxCxlSts>XXXX</TxCxlSts>")
    with pytest.raises(ValueError, match="TxCxlSts"):
        camt029.decode_resolution_document(broken, tenant="t", new_message_id=lambda: "m")
    adapter = default_registry().get("iso20022:pacs.002")
    with pytest.raises(AdapterDecodeError) as refused:
        adapter.decode_batch(broken, decode_context(fixed_vault()))  # type: ignore[attr-defined]
    assert refused.value.context["reason_code"] == "FF01"
    with pytest.raises(ValueError, match=r"not a camt\.029"):
        camt029.decode_resolution_document(
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"/>',
            tenant="t",
            new_message_id=lambda: "m",
        )
