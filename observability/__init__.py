"""Observability: Prometheus metrics, OpenTelemetry traces and structured, masked logs.

Modules:

- ``observability.metrics``: the hub's Prometheus metrics (adapters, edges, destinations,
  circuit breakers, vault) and their exposition.
- ``observability.tracing``: OpenTelemetry spans across edge -> adapter -> AMQP -> connector,
  W3C ``traceparent`` carried in AMQP headers, OTLP export by configuration.
- ``observability.logs``: JSON log lines with trace id, tenant and message ids, and the
  masking filter that keeps card numbers, track data and PIN blocks out of every line.

Domain code does not import this package; the composition root (the ``hub`` package: its edge,
service, core banking worker and CLI) wires it.
"""
