"""The inbound credit transfer saga: a pacs.008 from clearing is credited, or returned.

ARCHITECTURE.md, main flow 3, as a saga (:mod:`hub.sagas.definition`)::

    credit ──ok──> confirm (pacs.002 ACSC) ──ok──> credited (ACSC)
       │
       refused ──> return (pacs.004) ──ok──> returned (RJCT, the return reason)

=============  ==============================================================================
step           what it does
=============  ==============================================================================
``credit``     ``CRDT`` of the creditor account (:mod:`hub.sagas.mainframe`), keyed by the
               saga and step: a redelivered pacs.008 credits once
``confirm``    a pacs.002.001.10 ``ACSC`` to the clearing system
``return``     the posting could not be made: a pacs.004.001.09 returns the money to the
               sender with the reason the mainframe's answer maps to (``62`` closed ->
               ``AC04``, ``14`` unknown -> ``AC01``, ``13`` amount -> ``AM09``, else
               ``MS03`` with the mainframe's reason text): never a silent drop
=============  ==============================================================================

:meth:`InboundCreditTransfers.receive` takes one pacs.008 document and starts a saga per
transaction; the saga id is derived from the tenant and the transaction's UETR (else the
document's message id and the end-to-end id), so a document delivered twice starts nothing
new. A document that cannot be read is answered at once with the adapter's pacs.002
``RJCT`` (its reason code), as :mod:`hub.clearing` does. Answers go to the clearing
system's queue through a :class:`~hub.sagas.payments.ClearingSender`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from adapters.base import AdapterDecodeError, BatchAdapter, DecodeContext, EncodeContext
from adapters.registry import AdapterRegistry, default_registry
from canonical_model.codes import Status, TransactionStatus
from canonical_model.json_form import from_dict, to_dict
from canonical_model.messages import (
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
)
from canonical_model.pan import PanToken, random_hex_id
from hub.sagas.definition import Finish, Goto, SagaDefinition, Step
from hub.sagas.mainframe import MainframePostings
from hub.sagas.payments import PACS008, ClearingSender
from hub.sagas.runner import Action, SagaRunner, StepContext, StepFailedError, StepResult

__all__ = [
    "INBOUND",
    "RETURN_REASONS",
    "InboundCreditTransfers",
    "InboundReceipt",
    "inbound_definition",
    "inbound_saga_id",
]

INBOUND: Final = "inbound-credit-transfer"
"""The inbound credit transfer saga's name."""

RETURN_REASONS: Final[Mapping[str, str]] = {"62": "AC04", "14": "AC01", "13": "AM09"}
"""Mainframe result code (ISO 8583 field 39) -> ExternalReturnReason1Code of the pacs.004."""
UNSPECIFIED_REASON: Final = "MS03"


def inbound_definition() -> SagaDefinition:
    """The inbound credit transfer saga (module docstring)."""
    return SagaDefinition(
        INBOUND,
        first="credit",
        steps=(
            Step(
                "credit",
                action="post_credit",
                on={"ok": Goto("confirm"), "refused": Goto("return")},
                status="RCVD",
            ),
            Step("confirm", action="send_pacs002", on={"ok": Finish("credited", "ACSC")}),
            Step("return", action="send_pacs004", on={"ok": Finish("returned", "RJCT")}),
        ),
    )


def inbound_saga_id(transfer: CanonicalMessage) -> str:
    """The saga id of an incoming credit transfer: the same for every copy of it.

    >>> from canonical_model.messages import Identifiers
    >>> one = CanonicalMessage(MessageKind.FINANCIAL, MessageFunction.REQUEST, "bank-a",
    ...     Identifiers("m-1", uetr="6f1c9a4e-1b2c-4d3e-8f4a-000000000001"))
    >>> inbound_saga_id(one) == inbound_saga_id(dataclasses.replace(one, ids=Identifiers(
    ...     "m-2", uetr="6f1c9a4e-1b2c-4d3e-8f4a-000000000001")))
    True
    >>> len(inbound_saga_id(one)), inbound_saga_id(one).count("g") >= 2
    (29, True)
    """
    ids = transfer.ids
    identity = ids.uetr or f"{ids.source_message_id or ''}\x1f{ids.end_to_end_id or ''}"
    digest = hashlib.blake2b(f"{transfer.tenant}\x1f{identity}".encode(), digest_size=12)
    raw = digest.hexdigest()
    # A "g" after every 8 characters: never 13 digits in a row, which the journal would
    # refuse as a card number (as gateway.ports.new_id does).
    return "in-" + "g".join(raw[start : start + 8] for start in range(0, len(raw), 8))


@dataclass(frozen=True, slots=True)
class InboundReceipt:
    """What became of one pacs.008 document: sagas started (or already there), or the
    pacs.002 that refuses the document as a whole."""

    started: int
    repeated: int
    refusal: bytes | None = None


class _NoCards:
    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        raise RuntimeError("a credit transfer from clearing held a card number")


def _batch(registry: AdapterRegistry, variant: str) -> BatchAdapter:
    adapter = registry.get(f"iso20022:{variant}")
    if not isinstance(adapter, BatchAdapter):
        raise TypeError("the iso20022 adapter must read and write batches")
    return adapter


class InboundCreditTransfers:
    """The saga's definition and actions (:attr:`actions`), and :meth:`receive`."""

    def __init__(
        self,
        postings: MainframePostings,
        clearing: ClearingSender,
        *,
        tenant: str,
        registry: AdapterRegistry | None = None,
    ) -> None:
        self.postings = postings
        self.clearing = clearing
        self.tenant = tenant
        registry = registry or default_registry()
        self._pacs008 = _batch(registry, "pacs.008")
        self._pacs002 = _batch(registry, "pacs.002")
        self._pacs004 = _batch(registry, "pacs.004")
        self._refuser = registry.get("iso20022:pacs.002")
        self.definition = inbound_definition()
        self.actions: Mapping[str, Action] = {
            "post_credit": self._post_credit,
            "send_pacs002": self._send_pacs002,
            "send_pacs004": self._send_pacs004,
        }

    async def receive(self, runner: SagaRunner, document: bytes) -> InboundReceipt:
        """Start a saga for each transaction of ``document`` (see the module docstring)."""
        context = DecodeContext(self.tenant, _NoCards(), new_message_id=random_hex_id)
        try:
            transfers = self._pacs008.decode_batch(document, context)
        except AdapterDecodeError as exc:
            refusal = self._refuser.reject(exc, EncodeContext(self.tenant))
            if refusal is None:
                raise
            return InboundReceipt(0, 0, refusal)
        started = repeated = 0
        for transfer in transfers:
            amount = transfer.amount
            values = {
                "amount": None if amount is None else str(amount.amount),
                "currency": None if amount is None else amount.currency.alpha,
            }
            new = await runner.start_saga(
                INBOUND,
                inbound_saga_id(transfer),
                self.tenant,
                {key: value for key, value in values.items() if value is not None},
                personal={"message": to_dict(transfer)},
                end_to_end_id=transfer.ids.end_to_end_id,
                uetr=transfer.ids.uetr,
                status="RCVD",
                summary={key: value for key, value in values.items() if value is not None},
            )
            started += new
            repeated += not new
        return InboundReceipt(started, repeated)

    # -- the actions ----------------------------------------------------------------------

    @staticmethod
    async def _transfer(context: StepContext) -> CanonicalMessage:
        personal = await context.personal()
        try:
            return from_dict(personal["message"])
        except (KeyError, ValueError) as exc:
            raise StepFailedError(f"the saga's transfer cannot be read: {exc}") from None

    async def _post_credit(self, context: StepContext) -> StepResult:
        transfer = await self._transfer(context)
        account = transfer.creditor_account
        number = None if account is None else account.iban or account.other_id
        if number is None or transfer.amount is None:
            return StepResult("refused", {"reason_code": "AC01", "mainframe": "14"})
        answer = await self.postings.credit(
            context.reference(),
            number,
            Decimal(str(transfer.amount.amount)),
            transfer.amount.currency.alpha,
            f"CREDIT {transfer.ids.end_to_end_id or ''}",
        )
        if answer.approved:
            return StepResult("ok", {"credit_ref": context.reference()})
        reason = RETURN_REASONS.get(answer.code, UNSPECIFIED_REASON)
        return StepResult(
            "refused",
            {"reason_code": reason, "mainframe": answer.code, "why": answer.reason[:60]},
        )

    def _original(self, transfer: CanonicalMessage) -> OriginalTransaction:
        ids = transfer.ids
        return OriginalTransaction(
            message_type=PACS008,
            message_id=ids.source_message_id,
            instruction_id=ids.instruction_id,
            end_to_end_id=ids.end_to_end_id,
            uetr=ids.uetr,
            transmitted_at=transfer.transmitted_at,
        )

    async def _send_pacs002(self, context: StepContext) -> StepResult:
        transfer = await self._transfer(context)
        answer_id = context.reference()
        report = dataclasses.replace(
            transfer,
            function=MessageFunction.RESPONSE,
            ids=Identifiers(
                answer_id,
                end_to_end_id=transfer.ids.end_to_end_id,
                instruction_id=transfer.ids.instruction_id,
                uetr=transfer.ids.uetr,
            ),
            transmitted_at=dt.datetime.now(dt.UTC),
            status=Status(TransactionStatus.ACSC),
            original=self._original(transfer),
        )
        document = self._pacs002.encode_batch([report], EncodeContext(context.tenant))
        await self.clearing.publish(document, message_id=answer_id)
        return StepResult("ok")

    async def _send_pacs004(self, context: StepContext) -> StepResult:
        transfer = await self._transfer(context)
        answer_id = context.reference()
        reason = str(context.values.get("reason_code") or UNSPECIFIED_REASON)
        why = context.values.get("why")
        returned = CanonicalMessage(
            MessageKind.RETURN,
            MessageFunction.REQUEST,
            context.tenant,
            Identifiers(
                answer_id,
                end_to_end_id=transfer.ids.end_to_end_id,
                instruction_id=transfer.ids.instruction_id,
                uetr=transfer.ids.uetr,
            ),
            transmitted_at=dt.datetime.now(dt.UTC),
            settlement_date=dt.datetime.now(dt.UTC).date(),
            amount=transfer.amount,
            debtor=transfer.creditor,
            creditor=transfer.debtor,
            original=self._original(transfer),
            status=Status(
                TransactionStatus.RJCT,
                reason,
                additional_info=str(why) if reason == UNSPECIFIED_REASON and why else None,
            ),
        )
        document = self._pacs004.encode_batch([returned], EncodeContext(context.tenant))
        await self.clearing.publish(document, message_id=answer_id)
        return StepResult("ok")
