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

``--required-work`` (floor 4) adds, on the same hops, what the hub must do for a card
payment by the issue's invariants, with the hub's own parts for each and nothing of its
frameworks (edge, transport, core worker, routing rules, deadlines): the card number
tokenized by the vault (SQLite, as ``isobridge run`` embeds it) while the 0200 is mapped to
the canonical model (``adapters.iso8583``, with the hub's time-ordered message ids), the
canonical JSON on the queue instead of the
raw 0200 (read back on delivery), the 0210 encoded from the canonical reply, and the
journal's three events per payment (received, routed, answered) through the hub's
``JournalWriter`` and its writer process. The gap between floors 3 and 4 is what that work
costs; the gap between floor 4 and the hub, what the hub's frameworks cost.

Run by ``bench.e2e`` (floor 3); alone::

    .venv/bin/python -m bench.e2e_relay --port P --mainframe-port M --queue Q
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import iso8583
import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from adapters.base import DecodeContext, EncodeContext
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.specs import SPECS
from canonical_model.codes import status_from_iso8583
from canonical_model.json_form import from_json, to_json
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import time_ordered_hex_id
from canonical_model.random_ids import uuid4_text
from canonical_model.replies import reply_to
from hub.bootstrap import open_journal, open_vault
from hub.config import Settings
from hub.edge import _RequestPans
from hub.journaling import JournalWriter
from hub.service import settle_heap
from journal import EventKind
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


class WorkingRelay(Relay):
    """Floor 4: :class:`Relay` plus the work the hub must do per payment (module docstring).

    The journal bodies are the hub's (``hub.service``): what a trace shows of a payment."""

    def __init__(self, queue: str, home: Path) -> None:
        super().__init__(queue)
        settings = Settings.from_environment({"ISOBRIDGE_HOME": str(home)})
        self.tenant = "default"  # the hub's [hub] tenant when none is set
        self.adapter = Iso8583Adapter("ascii")
        self.vault = open_vault(settings, create=True)
        self.journal = JournalWriter(open_journal(settings, create=True), process=True)
        self.started: dict[str, tuple[_Acquirer, CanonicalMessage, _RequestPans, float]] = {}

    def request(self, acquirer: _Acquirer, frame: bytes) -> None:
        started = time.perf_counter()
        # The hub edge's own: the vault's token, the clear number echoed in field 2.
        pans = _RequestPans(self.vault, None)
        request = self.adapter.decode(
            frame, DecodeContext(self.tenant, pans, new_message_id=time_ordered_hex_id)
        )
        amount = request.amount
        self.journal.emit(
            EventKind.RECEIVED,
            request,
            {
                "message_kind": request.kind.value,
                "function": request.function.value,
                "amount": str(amount.amount) if amount is not None else None,
                "currency": amount.currency.alpha if amount is not None else None,
            },
        )
        self.journal.emit(EventKind.ROUTED, request, {"destination": "core", "rule": "cards"})
        key = request.ids.message_id
        self.started[key] = (acquirer, request, pans, started)
        self.published += 1
        self.unconfirmed[self.published] = key
        properties = pika.BasicProperties(delivery_mode=2, correlation_id=key)
        self.channel.basic_publish("", self.queue, to_json(request).encode(), properties)

    def confirmed(self, frame: Any) -> None:
        method = frame.method
        tags = (
            list(itertools.takewhile(lambda tag: tag <= method.delivery_tag, self.unconfirmed))
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            key = self.unconfirmed.pop(tag)
            if isinstance(method, pika.spec.Basic.Nack) and key in self.started:
                self.reply(key, "96")

    def delivered(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        request = from_json(body.decode())
        amount = request.amount
        account = request.debtor_account
        if amount is None or account is None:
            raise ValueError("the benchmark's 0200s carry an amount and field 102")
        record = self.records.encode_request(
            {
                "CB-TRAN-CODE": "DEBT", "CB-POSTING-REF": f"RELAY{request.ids.message_id[:19]}",
                "CB-ORIG-POSTING-REF": "", "CB-ACCOUNT-NO": account.other_id or "",
                "CB-CONTRA-ACCOUNT": "", "CB-AMOUNT": amount.amount,
                "CB-CURRENCY": amount.currency.alpha, "CB-VALUE-DATE": 0,
                "CB-CHANNEL": "RLAY", "CB-NARRATIVE": request.ids.end_to_end_id or "",
            }
        )  # fmt: skip
        line = self.mainframe[method.delivery_tag % len(self.mainframe)]
        line.post(record, (properties.correlation_id, method.delivery_tag))

    def posted(self, context: tuple[str, int], record: bytes) -> None:
        key, delivery_tag = context
        self.reply(key, self.records.decode_reply(record).result_code)
        self.channel.basic_ack(delivery_tag)

    def reply(self, key: str, code: str) -> None:
        acquirer, request, pans, started = self.started.pop(key)
        answer = reply_to(
            request,
            status_from_iso8583(code),
            message_id=uuid4_text(),
            transmitted_at=request.transmitted_at,
        )
        status = answer.status
        original = status.original if status is not None else None
        self.journal.emit(
            EventKind.ANSWERED,
            request,
            {
                "status": status.code.value if status is not None else None,
                "reason_code": status.reason if status is not None else None,
                "response_code": original.code if original is not None else None,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        acquirer.send(self.adapter.encode(answer, EncodeContext(self.tenant, pans)))


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


async def serve(
    port: int, mainframe_port: int, queue: str, lines: int, url: str, home: Path | None = None
) -> None:
    """Relay until SIGTERM or SIGINT; with ``home`` (a state directory), as floor 4."""
    loop = asyncio.get_running_loop()
    relay = Relay(queue) if home is None else WorkingRelay(queue, home)
    if isinstance(relay, WorkingRelay):
        await relay.journal.start()
        settle_heap()  # the hub's collector settings, as the hub runs
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
    if isinstance(relay, WorkingRelay):
        await relay.journal.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the acquirers' port")
    parser.add_argument("--mainframe-port", type=int, required=True)
    parser.add_argument("--mainframe-connections", type=int, default=8)
    parser.add_argument("--queue", required=True, help="a quorum queue of this relay's own")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument(
        "--required-work",
        type=Path,
        metavar="HOME",
        help="floor 4: also tokenize, map, journal (the vault and journal in HOME)",
    )
    args = parser.parse_args(argv)
    main_coroutine = serve(
        args.port,
        args.mainframe_port,
        args.queue,
        args.mainframe_connections,
        args.amqp_url,
        args.required_work,
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
