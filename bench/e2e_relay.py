"""Benchmark floor: a card payment relayed with the raw libraries alone, no hub code.

``bench.e2e``'s floors each measure one part of the hub's path (the simulator, the broker).
This one is the whole path, as thin as it can be written: one process, started as ``python
-m bench.e2e_relay``, that does what the hub does for a 0200 and nothing more:

1. reads len2 frames from acquirer connections (an ``asyncio.Protocol`` per connection);
2. decodes each 0200 with pyiso8583, keeps its fields in memory by a correlation id, and
   publishes the raw message, persistent, to a quorum queue on the local RabbitMQ (pika's
   ``AsyncioConnection``, publisher confirms on: a nack answers 96);
3. consumes that queue on the same connection; for each delivery, builds the ``CB-REQUEST``
   debit posting (``mainframe_sim.records``, as ``bench.e2e``'s floor 1 does) and sends it
   to ``mainframe_sim`` over one of ``--mainframe-connections`` TCP connections, pipelined;
4. on the posting's reply, answers the acquirer a 0210 (the request's fields, field 39 from
   the ``CB-REPLY``'s result code; pyiso8583) and acks the delivery.

Left out, against the hub: the canonical model, card number tokenization, routing rules,
the journal, timeouts, reversals, the breaker, tracing, masking, every check of bad input.
So its CPU per payment and its latency at a paced rate are what a Python process on this
machine pays for the payment's hops themselves: the floor under the hub's figures.

Run by ``bench.e2e`` (floor 3); alone::

    .venv/bin/python -m bench.e2e_relay --port P --mainframe-port M --queue Q
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
from collections import deque
from decimal import Decimal
from typing import Any, cast

import iso8583
import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from adapters.iso8583.specs import SPECS
from mainframe_sim.records import Records

SPEC = SPECS["ascii"]
_CURRENCIES = {"978": "EUR", "840": "USD", "826": "GBP"}


def _frames(buffer: bytearray) -> list[bytes]:
    """Cut the whole len2 frames off the front of ``buffer``."""
    frames = []
    while len(buffer) >= 2:
        size = int.from_bytes(buffer[:2], "big")
        if len(buffer) < 2 + size:
            break
        frames.append(bytes(buffer[2 : 2 + size]))
        del buffer[: 2 + size]
    return frames


class _Len2(asyncio.Protocol):
    """A TCP connection of len2 frames (a 2-byte big-endian length before each)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for frame in _frames(self.buffer):
            self.frame_received(frame)

    def frame_received(self, frame: bytes) -> None:
        raise NotImplementedError

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(payload).to_bytes(2, "big") + payload)


class _Acquirer(_Len2):
    """One acquirer connection."""

    def frame_received(self, frame: bytes) -> None:
        self.relay.request(self, frame)


class _Mainframe(_Len2):
    """One connection to the simulator: requests pipelined, replies in order."""

    def __init__(self, relay: Relay) -> None:
        super().__init__(relay)
        self.waiting: deque[tuple[str, int]] = deque()

    def frame_received(self, frame: bytes) -> None:
        self.relay.posted(self.waiting.popleft(), frame)

    def post(self, record: bytes, context: tuple[str, int]) -> None:
        self.waiting.append(context)
        self.send(record)


class Relay:
    """The relay's state: the channel, the requests in flight, the simulator's lines."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.records = Records()
        self.channel: Any = None
        self.mainframe: list[_Mainframe] = []
        self.in_flight: dict[str, tuple[_Acquirer, dict[str, str]]] = {}
        self.unconfirmed: dict[int, str] = {}
        self.numbers = itertools.count(1)
        self.published = 0

    def request(self, acquirer: _Acquirer, frame: bytes) -> None:
        fields, _ = iso8583.decode(frame, SPEC)
        number = next(self.numbers)
        key = str(number)
        self.in_flight[key] = (acquirer, fields)
        self.published += 1
        self.unconfirmed[self.published] = key
        properties = pika.BasicProperties(delivery_mode=2, correlation_id=key)
        self.channel.basic_publish("", self.queue, frame, properties)

    def confirmed(self, frame: Any) -> None:
        method = frame.method
        tags = (  # the dict keeps the tags in publish order: a multiple confirm is a prefix
            list(itertools.takewhile(lambda tag: tag <= method.delivery_tag, self.unconfirmed))
            if method.multiple
            else [method.delivery_tag]
        )
        nack = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            key = self.unconfirmed.pop(tag)
            if nack and key in self.in_flight:
                acquirer, fields = self.in_flight.pop(key)
                self.answer(acquirer, fields, "96")

    def delivered(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        key = properties.correlation_id
        _, fields = self.in_flight[key]
        amount = Decimal(int(fields["4"])) / 100
        record = self.records.encode_request(
            {
                "CB-TRAN-CODE": "DEBT", "CB-POSTING-REF": f"RELAY{key:>019}",
                "CB-ORIG-POSTING-REF": "", "CB-ACCOUNT-NO": fields["102"],
                "CB-CONTRA-ACCOUNT": "", "CB-AMOUNT": amount,
                "CB-CURRENCY": _CURRENCIES.get(fields["49"], "EUR"), "CB-VALUE-DATE": 0,
                "CB-CHANNEL": "RLAY", "CB-NARRATIVE": fields["37"],
            }
        )  # fmt: skip
        line = self.mainframe[method.delivery_tag % len(self.mainframe)]
        line.post(record, (key, method.delivery_tag))

    def posted(self, context: tuple[str, int], record: bytes) -> None:
        key, delivery_tag = context
        acquirer, fields = self.in_flight.pop(key)
        self.answer(acquirer, fields, self.records.decode_reply(record).result_code)
        self.channel.basic_ack(delivery_tag)

    def answer(self, acquirer: _Acquirer, fields: dict[str, str], code: str) -> None:
        reply = {key: value for key, value in fields.items() if key not in ("p", "1")}
        reply["t"] = "0210"
        reply["39"] = code
        raw, _ = iso8583.encode(reply, SPEC)
        acquirer.send(bytes(raw))


async def _open_channel(relay: Relay, url: str) -> AsyncioConnection:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()

    def on_open(connection: Any) -> None:
        connection.channel(on_open_callback=opened.set_result)

    def on_error(_connection: Any, error: Any) -> None:
        if not opened.done():
            opened.set_exception(RuntimeError(f"RabbitMQ: {error}"))

    connection = AsyncioConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=on_error,
        custom_ioloop=loop,
    )
    channel = await opened
    declared: asyncio.Future[Any] = loop.create_future()
    channel.queue_declare(
        relay.queue,
        durable=True,
        arguments={"x-queue-type": "quorum"},
        callback=declared.set_result,
    )
    await declared
    channel.confirm_delivery(relay.confirmed)
    qos: asyncio.Future[Any] = loop.create_future()
    channel.basic_qos(prefetch_count=256, callback=qos.set_result)
    await qos
    channel.basic_consume(relay.queue, relay.delivered)
    relay.channel = channel
    return connection


async def serve(port: int, mainframe_port: int, queue: str, lines: int, url: str) -> None:
    """Relay until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    relay = Relay(queue)
    for _ in range(lines):
        _, line = await loop.create_connection(
            lambda: _Mainframe(relay), "127.0.0.1", mainframe_port
        )
        relay.mainframe.append(line)
    connection = await _open_channel(relay, url)
    server = await loop.create_server(lambda: _Acquirer(relay), "127.0.0.1", port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the acquirers' port")
    parser.add_argument("--mainframe-port", type=int, required=True)
    parser.add_argument("--mainframe-connections", type=int, default=8)
    parser.add_argument("--queue", required=True, help="a quorum queue of this relay's own")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = parser.parse_args(argv)
    main_coroutine = serve(
        args.port, args.mainframe_port, args.queue, args.mainframe_connections, args.amqp_url
    )
    try:
        import uvloop  # the hub's loop, when installed
    except ImportError:
        asyncio.run(main_coroutine)
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main_coroutine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
