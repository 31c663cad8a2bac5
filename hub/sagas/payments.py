"""The outbound credit transfer saga, and the matching of the clearing system's answers to it.

ARCHITECTURE.md, main flow 2 (the open-banking payment, and any canonical credit transfer
routed to clearing), as a saga (:mod:`hub.sagas.definition`)::

    hold ──ok──> send ──ok──> await_status ──ACSC──> settle ──ok──> settled (ACSC)
      │                          │  │
      refused: rejected (RJCT)   │  RJCT: compensate (release the hold) -> rejected (RJCT)
                                 timeout
                                 v
                     ┌───────> recall ──ok──> await_recall ──REFUSED (camt.029)──> settle
                     └─timeout──────────────────┘  │
                                                   RETURNED (pacs.004): compensate -> returned
                                                   RJCT (a late pacs.002): compensate -> rejected

=================  ==========================================================================
step               what it does
=================  ==========================================================================
``hold``           ``HOLD`` of the amount on the debtor account (:mod:`hub.sagas.mainframe`);
                   a refusal (``51`` funds, ``14`` account, ``62`` closed...) ends the saga
                   ``rejected`` with the reason the code maps to (``AM04``, ``AC01``, ``AC06``).
                   Its compensation is ``release``
``send``           the pacs.008.001.08 on the clearing queue (``GrpHdr/MsgId`` = the saga id),
                   confirmed by the broker; the status becomes ``ACSP``
``await_status``   the pacs.002: ``ACSC`` settles, ``RJCT`` releases the hold (status
                   ``RJCT`` with the clearing system's reason); no answer within
                   ``status_timeout`` seconds: recall
``settle``         ``DEBT`` of the debtor account consuming the hold (the money leaves)
``recall``         a camt.056.001.08 (reason ``TECH``) on the clearing queue; at most
                   ``max_recalls`` times, then the saga needs attention
``await_recall``   a pacs.004 return (the money came back: release the hold, ``returned``,
                   status ``RJCT`` with the return reason) or a camt.029 refusing the recall
                   (the payment stands: settle); ``recall_timeout`` seconds, then recall again
``release``        ``RELS`` of the hold (the compensation of ``hold``)
=================  ==========================================================================

The debit is posted only once the clearing outcome is known, so at every point the ledger
agrees with the clearing system: money left the debtor account exactly for the payments the
clearing system settled and did not return, and no hold outlives its saga.

Answers (:class:`ClearingAnswers`) come back on the clearing status queue: a pacs.002, a
pacs.004 or a camt.029 is matched to its saga by the original message id (the saga id), else
the UETR, else the end-to-end id, and handed to it as a signal, deduplicated on the answer's
own message id: a repeated answer changes nothing. An answer that matches no saga, or that
cannot be read, is parked (the status queue's dead-letter queue) with its reason.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, Protocol

from adapters.base import AdapterDecodeError, BatchAdapter, DecodeContext, EncodeContext
from adapters.registry import AdapterRegistry, default_registry
from canonical_model.codes import Status, TransactionStatus, status_from_iso8583
from canonical_model.json_form import from_dict, to_dict
from canonical_model.messages import (
    Account,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
)
from canonical_model.pan import PanToken, random_hex_id
from hub.sagas.definition import Compensate, Finish, Goto, SagaDefinition, Step
from hub.sagas.mainframe import MainframePostings
from hub.sagas.runner import Action, SagaRunner, StepContext, StepFailedError, StepResult
from hub.sagas.store import SagaStore

__all__ = [
    "OUTBOUND",
    "ClearingAnswers",
    "ClearingSender",
    "OutboundCreditTransfers",
    "Parking",
    "outbound_definition",
]

_log = logging.getLogger("isobridge.sagas.payments")

OUTBOUND: Final = "outbound-credit-transfer"
"""The outbound credit transfer saga's name."""

PACS008: Final = "pacs.008.001.08"
RECALL_REASON: Final = "TECH"
"""The camt.056 cancellation reason when no status came in time (technical problems)."""
_NOTHING_TO_RELEASE: Final = frozenset({"00", "25"})


def outbound_definition(
    *, status_timeout: float = 60.0, recall_timeout: float = 300.0, max_recalls: int = 3
) -> SagaDefinition:
    """The outbound credit transfer saga (module docstring), with its timeouts in seconds."""
    return SagaDefinition(
        OUTBOUND,
        first="hold",
        steps=(
            Step(
                "hold",
                action="place_hold",
                on={"ok": Goto("send"), "refused": Finish("rejected", "RJCT")},
                compensation="release",
                status="RCVD",
            ),
            Step("send", action="send_pacs008", on={"ok": Goto("await_status")}),
            Step(
                "await_status",
                on={
                    "ACSC": Goto("settle"),
                    "RJCT": Compensate("rejected", "RJCT"),
                    "timeout": Goto("recall"),
                },
                timeout=status_timeout,
                status="ACSP",
            ),
            Step("settle", action="post_debit", on={"ok": Finish("settled", "ACSC")}),
            Step(
                "recall",
                action="send_camt056",
                on={"ok": Goto("await_recall")},
                max_attempts=max_recalls,
            ),
            Step(
                "await_recall",
                on={
                    "RETURNED": Compensate("returned", "RJCT"),
                    "REFUSED": Goto("settle"),
                    "RJCT": Compensate("rejected", "RJCT"),
                    "timeout": Goto("recall"),
                },
                timeout=recall_timeout,
            ),
            Step("release", action="release_hold"),
        ),
    )


class ClearingSender(Protocol):
    """Puts a document on the clearing system's queue and returns once the broker confirmed
    it (:meth:`hub.clearing_outgoing.ClearingOutgoing.publish`)."""

    async def publish(self, document: bytes, *, message_id: str) -> None: ...


class Parking(Protocol):
    """Parks a document nobody can take, with the reason
    (:meth:`hub.clearing_outgoing.ClearingOutgoing.park`)."""

    async def park(
        self, document: bytes, *, reason: str, message_id: str | None = None
    ) -> None: ...


class _NoCards:
    """Clearing answers hold no card numbers: tokenizing one is a bug."""

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        raise RuntimeError("a clearing answer held a card number")


def _batch_adapter(registry: AdapterRegistry, variant: str) -> BatchAdapter:
    adapter = registry.get(f"iso20022:{variant}")
    if not isinstance(adapter, BatchAdapter):
        raise TypeError("the iso20022 adapter must read and write batches")
    return adapter


def _account_number(account: Account | None) -> str | None:
    return None if account is None else account.iban or account.other_id


class OutboundCreditTransfers:
    """The saga's definition and actions; :meth:`submit` starts one for a credit transfer.

    Wire it into a runner: ``SagaRunner(store, [outbound.definition], outbound.actions)``.
    """

    def __init__(
        self,
        postings: MainframePostings,
        clearing: ClearingSender,
        *,
        registry: AdapterRegistry | None = None,
        status_timeout: float = 60.0,
        recall_timeout: float = 300.0,
        max_recalls: int = 3,
    ) -> None:
        self.postings = postings
        self.clearing = clearing
        registry = registry or default_registry()
        self._pacs008 = _batch_adapter(registry, "pacs.008")
        self._camt056 = _batch_adapter(registry, "camt.056")
        self.definition = outbound_definition(
            status_timeout=status_timeout, recall_timeout=recall_timeout, max_recalls=max_recalls
        )
        self.actions: Mapping[str, Action] = {
            "place_hold": self._place_hold,
            "send_pacs008": self._send_pacs008,
            "post_debit": self._post_debit,
            "send_camt056": self._send_camt056,
            "release_hold": self._release_hold,
        }

    async def submit(self, runner: SagaRunner, message: CanonicalMessage) -> bool:
        """Start the saga of ``message`` (a credit transfer with a debtor account, an
        amount, a creditor); its id is the message id. ``False`` for a repeat."""
        amount = message.amount
        if amount is None or _account_number(message.debtor_account) is None:
            raise ValueError("an outbound credit transfer needs an amount and a debtor account")
        ids = message.ids
        values = {
            "amount": str(amount.amount),
            "currency": amount.currency.alpha,
            "instruction_id": ids.instruction_id,
        }
        return await runner.start_saga(
            OUTBOUND,
            ids.message_id,
            message.tenant,
            {key: value for key, value in values.items() if value is not None},
            personal={"message": to_dict(message)},
            end_to_end_id=ids.end_to_end_id,
            uetr=ids.uetr,
            status="RCVD",
            summary={"amount": str(amount.amount), "currency": amount.currency.alpha},
        )

    # -- the actions ----------------------------------------------------------------------

    @staticmethod
    async def _message(context: StepContext) -> CanonicalMessage:
        personal = await context.personal()
        try:
            return from_dict(personal["message"])
        except (KeyError, ValueError) as exc:
            raise StepFailedError(f"the saga's payment cannot be read: {exc}") from None

    @staticmethod
    def _money(context: StepContext) -> tuple[Decimal, str]:
        return Decimal(str(context.values["amount"])), str(context.values["currency"])

    async def _place_hold(self, context: StepContext) -> StepResult:
        message = await self._message(context)
        amount, currency = self._money(context)
        account = _account_number(message.debtor_account) or ""
        answer = await self.postings.hold(
            context.reference(), account, amount, currency, f"PAYMENT {context.end_to_end_id}"
        )
        if answer.approved:
            return StepResult("ok", {"hold_ref": context.reference()})
        status = status_from_iso8583(answer.code)
        return StepResult(
            "refused", {"reason_code": status.reason or "NARR", "mainframe": answer.code}
        )

    async def _send_pacs008(self, context: StepContext) -> StepResult:
        message = await self._message(context)
        document = self._pacs008.encode_batch(
            [dataclasses.replace(message, processing=None)], EncodeContext(context.tenant)
        )
        await self.clearing.publish(document, message_id=context.saga_id)
        return StepResult("ok")

    async def _post_debit(self, context: StepContext) -> StepResult:
        message = await self._message(context)
        amount, currency = self._money(context)
        account = _account_number(message.debtor_account) or ""
        answer = await self.postings.debit(
            context.reference(),
            account,
            amount,
            currency,
            hold=context.reference("hold"),
            narrative=f"PAYMENT {context.end_to_end_id}",
        )
        if not answer.approved:
            raise StepFailedError(f"the debit was refused: {answer.code} {answer.reason}")
        return StepResult("ok", {"debit_ref": context.reference()})

    async def _release_hold(self, context: StepContext) -> StepResult:
        message = await self._message(context)
        account = _account_number(message.debtor_account) or ""
        answer = await self.postings.release(
            context.reference(), context.reference("hold"), account
        )
        if answer.code not in _NOTHING_TO_RELEASE:
            raise StepFailedError(f"the hold was not released: {answer.code} {answer.reason}")
        return StepResult("ok")

    async def _send_camt056(self, context: StepContext) -> StepResult:
        message = await self._message(context)
        recall_id = context.reference()
        ids = message.ids
        cancellation = CanonicalMessage(
            MessageKind.CANCELLATION,
            MessageFunction.REQUEST,
            context.tenant,
            Identifiers(
                recall_id,
                end_to_end_id=ids.end_to_end_id,
                instruction_id=ids.instruction_id,
                uetr=ids.uetr,
            ),
            transmitted_at=None,
            settlement_date=message.settlement_date,
            amount=message.amount,
            agents=message.agents,
            original=OriginalTransaction(
                message_type=PACS008,
                message_id=context.saga_id,
                instruction_id=ids.instruction_id,
                end_to_end_id=ids.end_to_end_id,
                uetr=ids.uetr,
                transmitted_at=message.transmitted_at,
            ),
            status=Status(TransactionStatus.RJCT, RECALL_REASON),
        )
        document = self._camt056.encode_batch([cancellation], EncodeContext(context.tenant))
        await self.clearing.publish(document, message_id=recall_id)
        return StepResult("ok", {"recall_id": recall_id})


class ClearingAnswers:
    """Hands pacs.002 / pacs.004 / camt.029 answers to their sagas; parks the rest.

    :meth:`receive` is the ``on_status`` of :class:`hub.clearing_outgoing.ClearingOutgoing`.
    """

    def __init__(
        self,
        runner: SagaRunner,
        store: SagaStore,
        parking: Parking,
        *,
        definitions: frozenset[str] = frozenset({OUTBOUND}),
        registry: AdapterRegistry | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        self.parking = parking
        self.definitions = definitions
        self._adapter = _batch_adapter(registry or default_registry(), "pacs.002")
        self.applied = 0
        self.duplicates = 0
        self.parked = 0

    async def receive(self, document: bytes) -> int:
        """Apply one answer document; how many of its answers moved a saga (a duplicate
        moves none). Parks what matches no saga, with the reason."""
        try:
            answers = self._adapter.decode_batch(
                document,
                DecodeContext("clearing", _NoCards(), new_message_id=random_hex_id),
            )
        except AdapterDecodeError as exc:
            await self._park(document, f"not a readable clearing answer: {exc}")
            return 0
        digest = hashlib.sha256(document).hexdigest()[:24]
        unmatched: list[str] = []
        moved = 0
        for index, answer in enumerate(answers):
            signal = _signal_of(answer)
            original = answer.original or OriginalTransaction()
            described = _describe(answer, index)
            if signal is None:
                unmatched.append(f"{described}: not an answer to a payment")
                continue
            name, body = signal
            prefix = f"{answer.kind.value}:{answer.ids.source_message_id or digest}"
            saga, new = await self.runner.signal_found(
                name,
                functools.partial(_signal_key, prefix, index),
                body,
                saga_id=original.message_id,
                uetr=original.uetr or answer.ids.uetr,
                end_to_end_id=original.end_to_end_id or answer.ids.end_to_end_id,
                definitions=self.definitions,
            )
            if saga is None:
                unmatched.append(f"{described}: matches no payment saga")
            elif new:
                moved += 1
            else:
                self.duplicates += 1
        self.applied += moved
        if unmatched:
            await self._park(document, "; ".join(unmatched))
        return moved

    async def _park(self, document: bytes, reason: str) -> None:
        self.parked += 1
        _log.warning("clearing answer parked: %s", reason[:300])
        await self.parking.park(document, reason=reason[:500])


def _signal_key(prefix: str, index: int, saga_id: str) -> str:
    """An answer's deduplication key: its kind and message id, the saga, its place."""
    return f"{prefix}:{saga_id}:{index}"


def _describe(answer: CanonicalMessage, index: int) -> str:
    kind = {
        MessageKind.RETURN: "pacs.004",
        MessageKind.CANCELLATION: "camt.029"
        if answer.function is MessageFunction.RESPONSE
        else "camt.056",
    }.get(answer.kind, "pacs.002")
    ids = answer.original or OriginalTransaction()
    who = ids.message_id or ids.uetr or ids.end_to_end_id or "no original id"
    return f"{kind} #{index + 1} ({who})"


def _signal_of(answer: CanonicalMessage) -> tuple[str, dict[str, Any]] | None:
    """The saga signal an answer is, with the values it brings; ``None``: not an answer."""
    status = answer.status
    if status is None:
        return None
    body: dict[str, Any] = {}
    if status.reason:
        body["reason_code"] = status.reason[:35]
    if answer.ids.source_message_id:
        body["answer_id"] = answer.ids.source_message_id[:35]
    if answer.kind is MessageKind.RETURN:
        return "RETURNED", body
    if answer.kind is MessageKind.CANCELLATION:
        if answer.function is not MessageFunction.RESPONSE:
            return None  # a camt.056 asks; it does not answer
        names = {TransactionStatus.RJCT: "REFUSED", TransactionStatus.CANC: "ACCEPTED"}
        return names.get(status.code, "PENDING"), body
    if not answer.function.is_response:
        return None
    code = status.code
    if code in (TransactionStatus.ACSC, TransactionStatus.ACCC):
        return "ACSC", body
    return code.value, body
