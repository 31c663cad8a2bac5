"""The card financial request's timeout path as a saga: the stored reversal (0420 semantics),
forwarded until the core acknowledges it.

ARCHITECTURE.md, main flow 1 (ISO 8583:1987 0200 / 0210, and 0420 / 0430 store-and-forward
reversal advices), on the runner of :mod:`hub.sagas.runner`. The flow and where the saga
takes over::

    0200 ──> routed ──> DEBT posting ──answer in time──> 0210 (no saga: nothing more written)
                              │
                              no answer in time (the hub's wait for the core worker, an
                              unconfirmed publish, or the core worker's mainframe request)
                              v
                  the saga is started, holding the reversal ──> 0210 91 to the acquirer
                              v
                  reverse ──00──> reversed
                     │ ──25──> not-posted (the posting was never applied)
                     └─ no answer, another code: again after ``retry_after`` s, doubling
                        up to ``max_retry_after`` s; after ``max_attempts``: attention

=============  ==============================================================================
step           what it does
=============  ==============================================================================
``reverse``    ``REVS`` of the original posting (:meth:`hub.core.CoreBanking.reverse`): the
               mainframe applies a reversal's posting reference (``R`` and the original's
               reference) once and answers a repeat with its stored reply, so a reversal
               sent again after a crash, or also sent by the acquirer (0420 / 0421
               repeats), is applied once. ``00`` (reversed) and ``25`` (no such posting)
               end the saga
=============  ==============================================================================

The approved-in-time path costs nothing here: a saga (one commit, with its ``saga_started``
event) exists only for a request whose outcome was lost. It is stored, through
:class:`CardReversals` (the core's :class:`hub.core.PendingReversals`), before the acquirer
hears ``91``, so a hub restart cannot lose it; its id derives from the posting reference
(:func:`card_saga_id`), so the hub's own timeout and the core worker's, both on one request,
store one reversal. The reversal itself (card token, account, amount: the canonical message)
is the encrypted personal part of the ``saga_started`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

from canonical_model.json_form import from_dict, to_dict
from canonical_model.messages import CanonicalMessage
from hub.core import posting_reference
from hub.sagas.definition import Finish, SagaDefinition, Step
from hub.sagas.runner import Action, SagaRunner, StepContext, StepFailedError, StepResult
from hub.sagas.store import LIVE_PHASES, Phase, SagaRecord
from hub.store import DONE_CODES, ReversalSender, store_reversal_while_unreachable

__all__ = ["CARD_REVERSAL", "CardReversals", "card_definition", "card_saga_id"]

CARD_REVERSAL: Final = "card-reversal"
"""The card reversal saga's name."""

REVERSED: Final = "00"


def card_definition(
    *, retry_after: float = 1.0, max_retry_after: float = 300.0, max_attempts: int = 30
) -> SagaDefinition:
    """The card reversal saga (module docstring). With the defaults a reversal is sent for
    about two hours (1 s doubling to 5 min) before an operator is asked to look."""
    return SagaDefinition(
        CARD_REVERSAL,
        first="reverse",
        steps=(
            Step(
                "reverse",
                action="send_reversal",
                on={"reversed": Finish("reversed"), "not_posted": Finish("not-posted")},
                max_attempts=max_attempts,
                retry_after=retry_after,
                max_retry_after=max_retry_after,
            ),
        ),
    )


def card_saga_id(reference: str) -> str:
    """The saga id of the reversal of the posting ``reference``: ``rev-`` and the reference
    in groups of eight (never 13 digits in a row: the journal would take them for a card
    number).

    >>> card_saga_id("0123456789ABCDEF01234567")
    'rev-01234567-89ABCDEF-01234567'
    """
    return "rev-" + "-".join(reference[i : i + 8] for i in range(0, len(reference), 8))


class CardReversals:
    """The saga's definition and action, and the store of reversals the core hands it
    (:class:`hub.core.PendingReversals`).

    Wire it: put :attr:`definition` and :attr:`actions` into the process's one
    :class:`~hub.sagas.runner.SagaRunner`, then :meth:`attach` the runner and the sender
    (:class:`hub.core.CoreBanking`) on the runner's event loop. ``on_acknowledged`` is told
    of each reversal the core acknowledged, with its code (at least once: again if the hub
    dies between the answer and its recording).
    """

    def __init__(
        self,
        *,
        on_acknowledged: Callable[[CanonicalMessage, str], None] | None = None,
        retry_after: float = 1.0,
        max_retry_after: float = 300.0,
        max_attempts: int = 30,
    ) -> None:
        self.on_acknowledged = on_acknowledged
        self.definition = card_definition(
            retry_after=retry_after, max_retry_after=max_retry_after, max_attempts=max_attempts
        )
        self.actions: Mapping[str, Action] = {"send_reversal": self._send_reversal}
        self._runner: SagaRunner | None = None
        self._sender: ReversalSender | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, runner: SagaRunner, sender: ReversalSender) -> None:
        """Use ``runner`` (on the running event loop) and send reversals with ``sender``."""
        self._runner = runner
        self._sender = sender
        self._loop = asyncio.get_running_loop()

    @property
    def runner(self) -> SagaRunner:
        """The runner :meth:`attach` gave."""
        if self._runner is None:
            raise RuntimeError("the card reversals are not attached to a saga runner")
        return self._runner

    unreachable_wait: float = 60.0
    """Seconds :meth:`store` keeps trying a journal database it cannot reach (restarting)."""

    def store(self, reversal: CanonicalMessage) -> None:
        """Start the saga of ``reversal`` (committed on return); storing it again changes
        nothing. Blocking: call it off the event loop (``CoreBanking`` does). Waits for a
        journal database that cannot be reached up to :attr:`unreachable_wait` seconds."""
        runner = self.runner
        reference = posting_reference(reversal)
        original = reversal.original
        amount = reversal.amount
        values: dict[str, Any] = {"posting_ref": reference}
        if original is not None and original.message_id:
            values["original_message_id"] = original.message_id
        summary: dict[str, Any] = {}
        if amount is not None:
            summary = {"amount": str(amount.amount), "currency": amount.currency.alpha}
        new, event = runner.new_saga(
            CARD_REVERSAL,
            card_saga_id(reference),
            reversal.tenant,
            {**values, **summary},
            personal={"reversal": to_dict(reversal)},
            end_to_end_id=reversal.ids.end_to_end_id,
            summary=summary,
        )
        created = store_reversal_while_unreachable(
            lambda: runner.store.create(new, event), reference, self.unreachable_wait
        )
        if created and self._loop is not None:
            self._loop.call_soon_threadsafe(runner.wake)

    def pending(self) -> list[SagaRecord]:
        """The reversals not acknowledged yet (live sagas, and those needing attention)."""
        records = self.runner.store.sagas(phases=(*LIVE_PHASES, Phase.ATTENTION), limit=10_000)
        return [record for record in records if record.definition == CARD_REVERSAL]

    async def _send_reversal(self, context: StepContext) -> StepResult:
        if self._sender is None:
            raise StepFailedError("no reversal sender attached")
        personal = await context.personal()
        try:
            reversal = from_dict(personal["reversal"])
        except (KeyError, ValueError) as exc:
            raise StepFailedError(f"the saga's reversal cannot be read: {exc}") from None
        code = await self._sender.reverse(reversal)
        if code is None:
            raise StepFailedError("the core did not answer the reversal")
        if code not in DONE_CODES:
            raise StepFailedError(f"the core answered {code} to the reversal")
        if self.on_acknowledged is not None:
            self.on_acknowledged(reversal, code)
        return StepResult("reversed" if code == REVERSED else "not_posted", {"response_code": code})
