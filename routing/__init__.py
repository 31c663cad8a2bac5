"""Routing: moves canonical messages between the hub's parts over a transport.

Transports (``memory://``, the embedded default, and ``amqp://``, RabbitMQ through pika) share
one protocol and one behaviour suite; route rules are data; consumers are idempotent through an
inbox, publishers loss-free through an outbox. See the modules of this package.
"""

__all__: list[str] = []
