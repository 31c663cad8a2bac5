"""The payment sagas of one hub process, wired: the port the gateway and the clearing queues call.

:class:`PaymentSagas` puts the parts of :mod:`hub.sagas` together on the hub's journal, its
mainframe connector and the clearing queue pair (:class:`hub.clearing_outgoing.ClearingOutgoing`):

- :meth:`PaymentSagas.submit_payment`: an outbound credit transfer (the open-banking
  payment, any canonical credit transfer routed to clearing) starts its saga; its status
  (``RCVD``, ``ACSP``, ``ACSC``, ``RJCT`` with the reason) is then in the journal's read model
  under the message id, where the gateway reads it;
- :meth:`PaymentSagas.receive_answer`: the ``on_status`` of the clearing status queue
  (pacs.002, pacs.004, camt.029);
- :meth:`PaymentSagas.receive_transfer`: an inbound pacs.008 document;
- :meth:`PaymentSagas.run`: the runner's loop, as a task of the hub's event loop, until its
  ``stop`` event is set.

Given ``card`` (:class:`hub.sagas.card.CardReversals`), the same runner also forwards the
reversals of card requests whose outcome was lost: a process runs one runner, which knows
every saga (a runner leaves a saga it has no definition for to another process).

:class:`hub.service.HubService` wires it with ``[clearing] sagas = true``: the status queue
(``[clearing] status``) to :meth:`~PaymentSagas.receive_answer`, the inbound queue to
:meth:`~PaymentSagas.receive_transfer`, and the route destinations ``clearing`` and
``clearing.*`` to :meth:`~PaymentSagas.submit_payment`. The gateway
(:mod:`hub.gateway_cli`) submits its domestic payments with :meth:`~PaymentSagas.submit_payment`
when its ``[clearing] sagas`` is true.

:func:`start_hub_sagas` builds what one hub process (:class:`hub.service.HubService`) runs:
:class:`HubSagas`.

Any number of hub processes may run it on one journal database (leases: :mod:`hub.sagas.store`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Final, Protocol

from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import random_hex_id
from canonical_model.replies import reply_to
from hub.clearing_outgoing import ClearingOutgoing
from hub.config_file import HubConfig
from hub.core import CoreBanking, PostingExchange, immediate_answer
from hub.sagas.card import CardReversals
from hub.sagas.inbound import InboundCreditTransfers, InboundReceipt
from hub.sagas.mainframe import MainframePostings
from hub.sagas.payments import ClearingAnswers, ClearingSender, OutboundCreditTransfers, Parking
from hub.sagas.runner import SagaRunner
from hub.sagas.store import SagaStore
from journal import Journal

__all__ = ["ANSWER_HANDLERS", "ClearingQueues", "HubSagas", "PaymentSagas", "start_hub_sagas"]

_log = logging.getLogger("isobridge.sagas.service")

ANSWER_HANDLERS: Final = 64
"""How many clearing answers (or inbound transfers) a queue consumer hands to the sagas at
once (``ClearingOutgoing(handlers=...)``): those that come together share one commit."""
INVALID_TRANSACTION = "12"


class ClearingQueues(ClearingSender, Parking, Protocol):
    """The clearing queue pair: publishes documents and parks answers nobody can take."""


class PaymentSagas:
    """See the module docstring. ``answers_to`` sends the answers to inbound transfers
    (pacs.002 / pacs.004) to the clearing system; default: ``clearing``."""

    def __init__(
        self,
        journal: Journal,
        exchange: PostingExchange,
        clearing: ClearingQueues,
        *,
        tenant: str,
        answers_to: ClearingSender | None = None,
        owner: str | None = None,
        lease: float = 30.0,
        status_timeout: float = 60.0,
        recall_timeout: float = 300.0,
        max_recalls: int = 3,
        codepage: str = "cp037",
        card: CardReversals | None = None,
    ) -> None:
        self.store = SagaStore(journal)
        postings = MainframePostings(exchange, codepage=codepage)
        self.outbound = OutboundCreditTransfers(
            postings,
            clearing,
            status_timeout=status_timeout,
            recall_timeout=recall_timeout,
            max_recalls=max_recalls,
        )
        self.inbound = InboundCreditTransfers(postings, answers_to or clearing, tenant=tenant)
        definitions = [self.outbound.definition, self.inbound.definition]
        actions = {**self.outbound.actions, **self.inbound.actions}
        if card is not None:
            definitions.append(card.definition)
            actions.update(card.actions)
        self.runner = SagaRunner(self.store, definitions, actions, owner=owner, lease=lease)
        self.answers = ClearingAnswers(self.runner, self.store, clearing)

    async def submit_payment(self, message: CanonicalMessage) -> bool:
        """Start the outbound saga of ``message``; ``False`` if it was started before."""
        return await self.outbound.submit(self.runner, message)

    async def receive_answer(self, document: bytes) -> int:
        """A clearing answer for the sagas (``ClearingOutgoing``'s ``on_status``)."""
        return await self.answers.receive(document)

    async def receive_transfer(self, document: bytes) -> InboundReceipt:
        """An inbound pacs.008 document: a saga per transfer."""
        return await self.inbound.receive(self.runner, document)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the sagas until ``stop`` is set."""
        await self.runner.run(stop)


@dataclass(slots=True)
class HubSagas:
    """The sagas of one hub process: its one :attr:`runner` (run it as a task), the payment
    sagas when ``[clearing] sagas = true``, and their clearing queue pairs."""

    runner: SagaRunner
    payments: PaymentSagas | None = None
    queues: list[ClearingOutgoing] = field(default_factory=list)

    async def send_to_clearing(self, request: CanonicalMessage) -> CanonicalMessage:
        """A canonical credit transfer routed to clearing: its outbound saga is started (a
        repeat starts nothing); the answer says it was received (``RCVD``, or ``12`` when
        it lacks an amount or a debtor account), and its status follows the saga in the
        journal (``ACSP``, ``ACSC``, ``RJCT``)."""
        if self.payments is None:
            raise RuntimeError("internal error: expected self.payments is not None")
        try:
            await self.payments.submit_payment(request)
        except ValueError as exc:
            _log.warning("credit transfer %s not sent: %s", request.ids.message_id, exc)
            return immediate_answer(request, INVALID_TRANSACTION)
        return reply_to(
            request,
            Status(TransactionStatus.RCVD),
            message_id=random_hex_id(),
            transmitted_at=dt.datetime.now(dt.UTC),
        )

    async def stop_queues(self) -> None:
        """Stop the clearing queue pairs' consumers and publishers."""
        for pair in self.queues:
            await asyncio.to_thread(pair.stop)


async def start_hub_sagas(
    config: HubConfig,
    journal: Journal,
    exchange: PostingExchange,
    core: CoreBanking,
    card: CardReversals,
) -> HubSagas:
    """The sagas of a hub process on ``journal`` and the mainframe ``exchange``: card
    reversals (sent by ``core``) always; with ``[clearing] sagas = true`` the payment sagas
    too, on two queue pairs (started here): pacs.008 and camt.056 out on ``[clearing]
    outgoing`` with the answers from ``status``, and pacs.008 in from ``inbound`` answered on
    ``outbound`` (a document that cannot be read is answered ``RJCT`` as a whole)."""
    clearing = config.clearing
    codepage = config.mainframe.codepage if config.mainframe is not None else "cp037"
    if clearing is None or not clearing.sagas:
        # Woken when a reversal is stored; otherwise a look a second for retries due.
        runner = SagaRunner(SagaStore(journal), [card.definition], card.actions, idle=1.0)
        card.attach(runner, core)
        return HubSagas(runner)
    loop = asyncio.get_running_loop()
    holder: list[PaymentSagas] = []

    async def on_answer(document: bytes) -> int:
        return await holder[0].receive_answer(document)

    async def on_transfer(document: bytes) -> int:
        receipt = await holder[0].receive_transfer(document)
        if receipt.refusal is not None:
            await inbound.publish(receipt.refusal, message_id=random_hex_id())
        return receipt.started

    tls = clearing.broker_tls()
    # Answers and transfers that come together share the runner's group commit.
    outbound = ClearingOutgoing(
        clearing.url,
        loop,
        on_answer,
        outgoing=clearing.outgoing,
        status=clearing.status,
        handlers=ANSWER_HANDLERS,
        tls=tls,
    )
    inbound = ClearingOutgoing(
        clearing.url,
        loop,
        on_transfer,
        outgoing=clearing.outbound,
        status=clearing.inbound,
        handlers=ANSWER_HANDLERS,
        tls=tls,
    )
    payments = PaymentSagas(
        journal,
        exchange,
        outbound,
        tenant=config.tenant,
        answers_to=inbound,
        codepage=codepage,
        card=card,
    )
    holder.append(payments)
    card.attach(payments.runner, core)
    sagas = HubSagas(payments.runner, payments)
    for pair in (outbound, inbound):
        await asyncio.to_thread(pair.start)
        sagas.queues.append(pair)
    return sagas
