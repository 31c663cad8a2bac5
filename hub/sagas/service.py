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

Any number of hub processes may run it on one journal database (leases: :mod:`hub.sagas.store`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from canonical_model.messages import CanonicalMessage
from hub.core import PostingExchange
from hub.sagas.card import CardReversals
from hub.sagas.inbound import InboundCreditTransfers, InboundReceipt
from hub.sagas.mainframe import MainframePostings
from hub.sagas.payments import ClearingAnswers, ClearingSender, OutboundCreditTransfers, Parking
from hub.sagas.runner import SagaRunner
from hub.sagas.store import SagaStore
from journal import Journal

__all__ = ["ClearingQueues", "PaymentSagas"]


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
