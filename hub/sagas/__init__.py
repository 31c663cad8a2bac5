"""Payment sagas with compensation (issue 10): holds, clearing outcomes, recalls, returns.

A payment crosses the mainframe ledger, the hub and the clearing system with no distributed
transaction between them; a saga keeps them consistent by compensating what was done when a
later step fails. The parts:

- :mod:`hub.sagas.definition`: a saga as data (steps, outcomes, compensations, timeouts,
  attempts);
- :mod:`hub.sagas.store`: where sagas live (a row per saga in the journal's database, every
  transition a journal event, leases safe with several hub processes);
- :mod:`hub.sagas.runner`: :class:`SagaRunner`, which interprets the definitions;
- :mod:`hub.sagas.mainframe`: holds, releases, debits and credits on the mainframe, keyed by
  saga and step;
- :mod:`hub.sagas.payments`: the outbound credit transfer saga (hold, pacs.008, pacs.002 /
  camt.056 recall / pacs.004 return / camt.029) and the matching of clearing answers;
- :mod:`hub.sagas.inbound`: the inbound credit transfer saga (credit, or a pacs.004 return);
- :mod:`hub.sagas.card`: the card request whose outcome was lost: its reversal (0420
  semantics), forwarded until the core acknowledges it;
- :mod:`hub.sagas.service`: :class:`PaymentSagas`, all of it wired for one hub process (the
  port the gateway and the clearing queues call).

``isobridge sagas list | show ID | retry ID`` (:mod:`hub.sagas_cli`) shows and re-arms them.
"""

from hub.sagas.definition import Compensate, Finish, Goto, SagaDefinition, Step
from hub.sagas.runner import SagaRunner, StepContext, StepFailedError, StepResult
from hub.sagas.service import PaymentSagas
from hub.sagas.store import Phase, SagaError, SagaRecord, SagaStore

__all__ = [
    "Compensate",
    "Finish",
    "Goto",
    "PaymentSagas",
    "Phase",
    "SagaDefinition",
    "SagaError",
    "SagaRecord",
    "SagaRunner",
    "SagaStore",
    "Step",
    "StepContext",
    "StepFailedError",
    "StepResult",
]
