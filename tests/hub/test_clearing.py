"""Inbound clearing against mainframe_sim: pacs.008 in, credit postings, pacs.002 out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from adapters.base import BatchAdapter, EncodeContext
from adapters.registry import default_registry
from canonical_model.codes import TransactionStatus
from canonical_model.messages import Account, CanonicalMessage, Identifiers
from canonical_model.money import Money
from hub.bootstrap import Hub
from hub.clearing import ClearingInbound
from tests.hub.test_core import core_for, mainframe
from tests.mainframe_sim.samples import ANNA
from tests.support import decode_context, fixed_vault, on_event_loop

FIXTURE = Path(__file__).parents[1] / "adapters" / "iso20022" / "fixtures" / "fednow-pacs008.xml"
TENANT = "bank-a"


def _adapter(variant: str) -> BatchAdapter:
    adapter = default_registry().get(f"iso20022:{variant}")
    assert isinstance(adapter, BatchAdapter)
    return adapter


def _transfers() -> bytes:
    """One pacs.008 with two transfers: to ANNA (credited), to an unknown IBAN (refused)."""
    pacs008 = _adapter("pacs.008")
    (template,) = pacs008.decode_batch(FIXTURE.read_bytes(), decode_context(fixed_vault()))

    def to(iban: str, number: int) -> CanonicalMessage:
        return dataclasses.replace(
            template,
            ids=Identifiers(
                f"m-{number}",
                end_to_end_id=f"E2E-{number}",
                instruction_id=f"INSTR-{number}",
                uetr=f"6f1c9a4e-1b2c-4d3e-8f4a-00000000000{number}",
                source_message_id="MSG-IN-1",
            ),
            amount=Money.of("25.00", "EUR"),
            creditor_account=Account(iban=iban),
        )

    return pacs008.encode_batch(
        [to(ANNA, 1), to("GB33BUKB20201555555555", 2)], EncodeContext(TENANT)
    )


def test_pacs008_in_credits_and_answers_pacs002(tmp_path: Path) -> None:
    hub = Hub(default_registry(), fixed_vault())

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf, core_for(mf) as (core, _):
            before = mf.balance(ANNA)
            outcome = await ClearingInbound(core, hub, tenant=TENANT).process(_transfers())
            assert (outcome.credited, outcome.rejected, outcome.refused_document) == (1, 1, False)
            assert mf.balance(ANNA) == before + 2500
            reports = _adapter("pacs.002").decode_batch(
                outcome.status_report, decode_context(fixed_vault())
            )
            statuses = {r.ids.end_to_end_id: r.status for r in reports}
            accepted, refused = statuses["E2E-1"], statuses["E2E-2"]
            assert accepted is not None and accepted.code is TransactionStatus.ACSC
            assert refused is not None and refused.code is TransactionStatus.RJCT
            assert refused.reason == "AC01"
            assert {r.original.message_id for r in reports if r.original} == {"MSG-IN-1"}

            again = await ClearingInbound(core, hub, tenant=TENANT).process(_transfers())
            assert again.credited == 1
            assert mf.balance(ANNA) == before + 2500  # a repeated pacs.008 credits once

            broken = await ClearingInbound(core, hub, tenant=TENANT).process(b"<Document/>")
            assert broken.refused_document
            assert b"<GrpSts>RJCT</GrpSts>" in broken.status_report
            assert mf.ledger.check().balanced

    scenario()
