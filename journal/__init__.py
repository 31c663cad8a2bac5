"""The journal: every state change of a transaction as a hash-chained, signed event.

Event sourcing and CQRS for the hub (``ARCHITECTURE.md``, invariant 4):

- :mod:`journal.events`: the event kinds, the event, its canonical bytes and chain hash;
- :mod:`journal.store`: :class:`Journal`: ``append(connection, events)`` in the caller's
  transaction, checkpoints, crypto-shredding, reading;
- :mod:`journal.keys`: the master key seam, tenant keys, the checkpoint signing key;
- :mod:`journal.audit`: :func:`verify`, which names every edited, deleted, reordered or
  inserted event and every bad checkpoint signature;
- :mod:`journal.read_model`: the status table built from the events, and its rebuild;
- :mod:`journal.trace`: a transaction's path with timings, found by any of its ids;
- :mod:`journal.activity`: live events per second and answer latency (operations console);
- :mod:`journal.schema`, :mod:`journal.migrate`: tables and their Alembic migrations.

The journal is infrastructure: the hub wires it (``hub.bootstrap.open_journal``); domain
code (canonical model, adapters) knows nothing of it.
"""

from journal.audit import AuditReport, Problem, ProblemKind, verify
from journal.events import Event, EventKind, Sealed, StoredEvent, TransactionIds
from journal.keys import MasterKeys, StaticMasterKeys
from journal.read_model import TransactionView
from journal.store import Checkpoint, Journal, JournalError
from journal.trace import TransactionTrace, format_trace

__all__ = [
    "AuditReport",
    "Checkpoint",
    "Event",
    "EventKind",
    "Journal",
    "JournalError",
    "MasterKeys",
    "Problem",
    "ProblemKind",
    "Sealed",
    "StaticMasterKeys",
    "StoredEvent",
    "TransactionIds",
    "TransactionTrace",
    "TransactionView",
    "format_trace",
    "verify",
]
