"""A simulated core banking mainframe: the other end of the hub's fixed-width interface.

Modules:

- :mod:`mainframe_sim.ledger`: accounts, double-entry postings, holds, stored replies (SQL).
- :mod:`mainframe_sim.transactions`: one CB-REQUEST to one CB-REPLY; group commit.
- :mod:`mainframe_sim.seed`: the deterministic seeded accounts.
- :mod:`mainframe_sim.records`: the EBCDIC records (copybook codecs from
  :mod:`adapters.fixedwidth`).
- :mod:`mainframe_sim.server`: the asyncio TCP server (len2 / len4 / CICS-sockets framing)
  and its admin port.
- :mod:`mainframe_sim.tls`: TLS 1.3 for the listener, client certificates required.
- :mod:`mainframe_sim.mq`: the same records over a RabbitMQ queue pair.
- :mod:`mainframe_sim.faults`: latency, dropped replies, disconnects, garbage, down.
- :mod:`mainframe_sim.statement`: the end-of-day statement extract (FB 120).
- :mod:`mainframe_sim.cli`: ``python -m mainframe_sim``.
"""

__all__: list[str] = []
