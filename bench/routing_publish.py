"""Benchmark: the hub's RabbitMQ publish and consume paths against raw pika, in one run.

All on 1 KB messages to a durable quorum queue of a throw-away topology on the broker:

- floor: raw pika (``SelectConnection``), persistent messages, publisher confirms pipelined
  with a window of ``--window`` unconfirmed messages;
- the hub's publish path: canonical message -> wire form (``routing.wire.encode``, the
  versioned JSON) -> ``AmqpTransport.publish_batch`` (mandatory, persistent, confirms
  pipelined, returns once all are confirmed), in batches of ``--batch``;
- consume + ack: raw pika with prefetch ``--prefetch`` and ``multiple=True`` acks, against
  ``AmqpTransport.consume`` (decode every body to a canonical message, a batch handler,
  acks with ``multiple=True``).

Run (RabbitMQ on 127.0.0.1:5672, or ``--url``)::

    .venv/bin/python -m bench.routing_publish [--messages 50000] [--window 1000] [--batch 1000]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import pika

from canonical_model.messages import CanonicalMessage, Identifiers, MessageFunction, MessageKind
from canonical_model.money import Money
from routing.amqp import AmqpTransport
from routing.transport import (
    Delivery,
    Destination,
    Outcome,
    Outgoing,
    PendingPublish,
    Topology,
)
from routing.wire import Envelope, encode

BODY_TARGET = 1024


def _message(number: int, padding: str) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "bench",
        Identifiers(f"bench-{number:08d}", end_to_end_id=f"E2E{number:012d}"),
        amount=Money.of("125.40", "EUR"),
        remittance=(padding,),
    )


def _padding() -> str:
    base = len(encode(_message(0, "")).body)
    return "x" * (BODY_TARGET - base - 3)


def raw_publish(
    url: str,
    queue: str,
    count: int,
    window: int,
    body: bytes,
    exchange: str = "",
    mandatory: bool = False,
) -> float:
    """Messages per second: raw pika, persistent, confirms pipelined (to ``queue`` through
    the default exchange, or to ``exchange`` with routing key ``queue``)."""
    state = {"sent": 0, "confirmed": 0, "start": 0.0, "end": 0.0}
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/octet-stream")
    connection: Any = None

    def pump(channel: Any) -> None:
        while state["sent"] < count and state["sent"] - state["confirmed"] < window:
            channel.basic_publish(exchange, queue, body, properties, mandatory=mandatory)
            state["sent"] += 1

    def on_confirm(frame: Any) -> None:
        method = frame.method
        state["confirmed"] = method.delivery_tag if method.multiple else state["confirmed"] + 1
        if state["confirmed"] >= count:
            state["end"] = time.perf_counter()
            connection.close()
            return
        pump(channel_holder[0])

    channel_holder: list[Any] = []

    def on_channel(channel: Any) -> None:
        channel_holder.append(channel)

        def confirmed(_frame: Any) -> None:
            state["start"] = time.perf_counter()
            pump(channel)

        channel.confirm_delivery(on_confirm, callback=confirmed)

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, e: c.ioloop.stop(),
    )
    connection.ioloop.start()
    connection.ioloop.close()
    return count / (state["end"] - state["start"])


def raw_consume(url: str, queue: str, count: int, prefetch: int) -> float:
    """Messages per second: raw pika consume, ``multiple=True`` acks every prefetch/2."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    received = 0
    start = time.perf_counter()
    for method, _properties, _body in channel.consume(queue, inactivity_timeout=10):
        if method is None:
            break
        received += 1
        if received % (prefetch // 2) == 0 or received == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if received == count:
            break
    elapsed = time.perf_counter() - start
    channel.cancel()
    connection.close()
    return received / elapsed


def hub_publish(
    transport: AmqpTransport, messages: Sequence[CanonicalMessage], batch: int
) -> float:
    """Messages per second: canonical -> wire -> confirmed, as an outbox relay does it:
    batch n+1 is encoded and handed over while batch n is being confirmed, and each batch
    counts as sent only once ``result()`` returned (all confirmed)."""
    start = time.perf_counter()
    in_flight: deque[PendingPublish] = deque()
    for offset in range(0, len(messages), batch):
        items = [
            Outgoing(encode(message), "financial.request.bench")
            for message in messages[offset : offset + batch]
        ]
        in_flight.append(transport.submit_batch(items))
        if len(in_flight) > 2:
            in_flight.popleft().result()
    while in_flight:
        in_flight.popleft().result()
    return len(messages) / (time.perf_counter() - start)


def hub_publish_encoded(
    transport: AmqpTransport, envelopes: Sequence[Envelope], batch: int
) -> float:
    """Messages per second: wire form already made (an outbox row holds it) -> confirmed."""
    start = time.perf_counter()
    in_flight: deque[PendingPublish] = deque()
    for offset in range(0, len(envelopes), batch):
        items = [
            Outgoing(envelope, "financial.request.bench")
            for envelope in envelopes[offset : offset + batch]
        ]
        in_flight.append(transport.submit_batch(items))
        if len(in_flight) > 2:
            in_flight.popleft().result()
    while in_flight:
        in_flight.popleft().result()
    return len(envelopes) / (time.perf_counter() - start)


def hub_consume(transport: AmqpTransport, count: int, prefetch: int, batch: int) -> float:
    """Messages per second: decode + batch handler + multiple acks."""
    done = threading.Event()
    seen = 0

    def handle(deliveries: Sequence[Delivery]) -> list[Outcome]:
        nonlocal seen
        seen += len(deliveries)
        if seen >= count:
            done.set()
        return [Outcome.ack()] * len(deliveries)

    start = time.perf_counter()
    consumer = transport.consume("bench", handle, prefetch=prefetch, batch_size=batch)
    if not done.wait(timeout=300):
        raise RuntimeError(f"only {seen} of {count} consumed")
    elapsed = time.perf_counter() - start
    consumer.stop()
    return count / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--prefetch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args(argv)

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topology = Topology(
        (Destination("bench", ("financial.#",)),),
        exchange=f"{prefix}.canonical",
        dead_letter_exchange=f"{prefix}.dlx",
        prefix=prefix,
    )
    padding = _padding()
    body = encode(_message(0, padding)).body
    raw_queue = f"{prefix}.raw"
    transport = AmqpTransport(args.url, topology, window=args.window)
    transport.start()
    _admin(
        args.url,
        lambda channel: channel.queue_declare(
            raw_queue, durable=True, arguments={"x-queue-type": "quorum"}
        ),
    )
    try:
        print(
            f"{args.messages} messages of {len(body)} bytes, window {args.window},"
            f" {args.rounds} interleaved rounds (median); load average {os.getloadavg()[0]:.1f}"
        )
        messages = [_message(n, padding) for n in range(args.messages)]
        envelopes = [encode(message) for message in messages]
        rates: dict[str, list[float]] = {
            k: [] for k in ("raw_pub", "raw_route", "hub_pub", "hub_pre", "raw_con", "hub_con")
        }
        for _ in range(args.rounds):
            rates["raw_pub"].append(
                raw_publish(args.url, raw_queue, args.messages, args.window, body)
            )
            rates["raw_route"].append(
                raw_publish(
                    args.url,
                    "financial.request.bench",
                    args.messages,
                    args.window,
                    body,
                    exchange=topology.exchange,
                    mandatory=True,
                )
            )
            _admin(args.url, lambda channel: channel.queue_purge(topology.queue("bench")))
            rates["hub_pub"].append(hub_publish(transport, messages, args.batch))
            rates["hub_pre"].append(hub_publish_encoded(transport, envelopes, args.batch))
            rates["raw_con"].append(raw_consume(args.url, raw_queue, args.messages, args.prefetch))
            rates["hub_con"].append(
                hub_consume(transport, 2 * args.messages, args.prefetch, args.batch // 2)
            )
        raw_pub, raw_route, hub_pub, hub_pre, raw_con, hub_con = (
            statistics.median(v) for v in rates.values()
        )
        print(f"{'path':<46} {'msg/s':>8} {'x raw':>6} {'x route':>7}   rounds")
        rows = [
            ("raw pika publish, confirms pipelined", raw_pub, raw_pub, None, "raw_pub"),
            ("raw pika, the hub's route (topic, mandatory)", raw_route, raw_pub, None, "raw_route"),
            ("hub publish: canonical -> wire -> confirms", hub_pub, raw_pub, raw_route, "hub_pub"),
            ("hub publish: wire form -> confirms (relay)", hub_pre, raw_pub, raw_route, "hub_pre"),
            ("raw pika consume + multiple ack", raw_con, raw_con, None, "raw_con"),
            ("hub consume: decode + handler + ack", hub_con, raw_con, None, "hub_con"),
        ]
        for label, rate, floor, route, key in rows:
            each = " ".join(f"{r:,.0f}" for r in rates[key])
            versus_route = f"{rate / route:>7.2f}" if route else " " * 7
            print(f"{label:<46} {rate:>8,.0f} {rate / floor:>6.2f} {versus_route}   {each}")
    finally:
        transport.close()
        _admin(args.url, lambda channel: _delete(channel, topology, raw_queue))


def _admin(url: str, action: Callable[[Any], object]) -> None:
    """Run ``action(channel)`` on a short-lived connection (an idle one would miss heartbeats)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        action(connection.channel())
    finally:
        connection.close()


def _delete(channel: Any, topology: Topology, raw_queue: str) -> None:
    channel.queue_delete(raw_queue)
    delays = topology.destination("bench").retry.delays_ms
    for name in (
        topology.queue("bench"),
        topology.dead_letter_queue("bench"),
        topology.unroutable_queue,
        *(topology.retry_queue("bench", d) for d in delays),
    ):
        channel.queue_delete(name)
    channel.exchange_delete(topology.exchange)
    channel.exchange_delete(topology.dead_letter_exchange)


if __name__ == "__main__":
    main()
