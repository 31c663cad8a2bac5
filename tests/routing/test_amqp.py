"""What only the RabbitMQ transport has: start-up failures, the broker's delivery limit,
a consumer process killed mid-batch, and broker restarts (stop_app / start_app, kill -9) in
the middle of 10,000 messages, on a node of the tests' own (tests/routing/chaos_node.py)."""

from __future__ import annotations

import asyncio
import functools
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.callback
import pika.exceptions
import pika.frame
import pika.spec
import pytest
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport

import routing.amqp
from routing.amqp import (
    AmqpTransport,
    _Connection,
    _decode_frame,
    _properties,
    _publish_frames,
    _standing_callback,
    masked_url,
)
from routing.transport import (
    Consumer,
    Delivery,
    Outcome,
    Outgoing,
    PublishTimeoutError,
    Topology,
    TransportUnavailableError,
    as_batch_handler,
)
from routing.wire import Envelope, encode
from tests.routing.chaos_node import ChaosNode
from tests.routing.conftest import (
    LoopThread,
    amqp_url,
    delete_topology,
    make_topology,
    message,
    require_broker,
    wait_until,
)
from tests.routing.effects import EffectStore

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_broker() -> Iterator[tuple[str, Topology]]:
    url = amqp_url()
    require_broker(url)
    topology = make_topology()
    try:
        yield url, topology
    finally:
        # and the queues of the tests' own under its prefix, should one have failed midway
        queues = (f"{topology.prefix}.whole", f"{topology.prefix}.confirms")
        delete_topology(url, topology, extra_queues=queues)


def test_a_broker_that_is_down_gets_retries_then_a_clear_error() -> None:
    transport = AmqpTransport(
        "amqp://guest:secret@127.0.0.1:1/%2F", make_topology(), reconnect_delays=(0.05,)
    )
    with pytest.raises(TransportUnavailableError) as caught:
        transport.start(timeout=1.0)
    text = str(caught.value)
    assert text.startswith("cannot reach the broker at amqp://guest:***@127.0.0.1:1/%2F after ")
    attempts = int(text.split(" after ")[1].split(" ")[0])
    assert attempts > 1
    assert "secret" not in text
    assert "\n" not in text


def test_wrong_credentials_are_reported_without_retrying_forever(
    shared_broker: tuple[str, Topology],
) -> None:
    url, topology = shared_broker
    wrong = url.replace("guest:guest@", "guest:wrong@")
    transport = AmqpTransport(wrong, topology, reconnect_delays=(0.05,))
    with pytest.raises(TransportUnavailableError, match="refused the login"):
        transport.start(timeout=20)


def test_a_malformed_url_is_a_clear_error() -> None:
    with pytest.raises(TransportUnavailableError, match="bad broker URL"):
        AmqpTransport("amqp://guest:guest@localhost:notaport/", make_topology())


def test_a_node_list_with_a_bad_node_is_a_clear_error_naming_it() -> None:
    with pytest.raises(TransportUnavailableError, match=r"node 2 of .* has a bad port: 'h2:x'"):
        AmqpTransport("amqp://guest:guest@h1:5672,h2:x/%2F", make_topology())
    with pytest.raises(TransportUnavailableError, match=r"node 3 of .* has no host"):
        AmqpTransport("amqp://guest:guest@h1,h2,/%2F", make_topology())


def test_a_node_list_connects_to_the_first_node_that_answers(
    shared_broker: tuple[str, Topology],
) -> None:
    url, topology = shared_broker
    parts = urlsplit(url)
    dead = _closed_port()
    nodes = f"{parts.username}:{parts.password}@127.0.0.1:{dead},{parts.hostname}:{parts.port}"
    transport = AmqpTransport(
        urlunsplit(parts._replace(netloc=nodes)), topology, reconnect_delays=(5.0,)
    )
    with transport:
        transport.start(timeout=20)  # well before the 5 s backoff: the next node at once
        assert transport.connected_node == (parts.hostname, parts.port)
        transport.publish(message(1))
        assert transport.queue_depth(topology.queue("core")) == 1  # the list, for tooling too


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_masked_url_hides_only_the_password() -> None:
    assert masked_url("amqp://localhost") == "amqp://localhost"
    assert masked_url("amqp://u:p@h/v") == "amqp://u:***@h/v"


def test_a_message_that_kills_its_consumers_is_parked_by_the_delivery_limit(
    shared_broker: tuple[str, Topology],
) -> None:
    url, _ = shared_broker
    topology = make_topology(delivery_limit=3)
    with AmqpTransport(url, topology) as transport:
        transport.publish(message(1), "financial.request.acme")
        # A consumer that dies on the message hands it back each time (what the broker sees of
        # a crash): with x-delivery-limit=3 the fourth return dead-letters it.
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            returns = 0
            while returns < 10:
                method, _, _ = channel.basic_get(topology.queue("core"))
                if method is None:
                    break
                channel.basic_nack(method.delivery_tag, requeue=True)
                returns += 1
        finally:
            connection.close()
        assert returns == 4
        wait_until(lambda: len(transport.dead_letters("core")) == 1, what="the dead letter")
        (dead,) = transport.dead_letters("core")
        assert dead.reason == "broker dead-lettered it: delivery_limit"
        assert dead.original_exchange == topology.exchange
        assert dead.original_routing_key == "financial.request.acme"
    delete_topology(url, topology)


def test_a_consumer_killed_mid_batch_applies_nothing_twice(
    shared_broker: tuple[str, Topology], tmp_path: Path
) -> None:
    url, topology = shared_broker
    total = 1_000
    db = tmp_path / "effects.db"
    with AmqpTransport(url, topology) as transport:
        transport.publish_batch(
            [Outgoing(encode(message(i)), "financial.request.acme") for i in range(total)]
        )
        crashing = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.routing.crash_consumer",
                url,
                topology.prefix,
                str(db),
                "5",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert crashing.returncode == -9, crashing.stderr
        store = EffectStore(db)
        try:
            killed_batch = store.count()
            assert 0 < killed_batch < total
            consumer = transport.consume("core", store.handle, prefetch=500, batch_size=100)
            wait_until(lambda: store.count() == total, timeout=60, what="every effect")
            consumer.stop()
            applied = store.applied()
            assert set(applied) == {f"m-{i}" for i in range(total)}
            assert set(applied.values()) == {1}
            # The batch whose acks died with the process came again, and was skipped.
            assert store.duplicates >= 50
        finally:
            store.close()


# --- broker restarts in the middle of 10,000 messages -------------------------------------

TOTAL = 10_000
BATCH = 500


@pytest.fixture(scope="module")
def chaos_node() -> Iterator[ChaosNode]:
    node = ChaosNode()
    node.start()
    yield node
    node.stop()


def _publish_all(
    transport: AmqpTransport,
    half_published: threading.Event,
    broker_back: threading.Event,
    errors: list[str],
) -> None:
    """Publish TOTAL messages in batches, like an outbox relay: a batch that was not confirmed
    in time is published again (duplicates are the consumer's inbox's business). The second
    half goes out in small paced batches until the broker is back, so that messages are on
    the wire, unconfirmed, when it goes down."""
    try:
        start = 0
        while start < TOTAL:
            size = BATCH if start < TOTAL // 2 else 50
            if start == TOTAL // 2:
                half_published.set()
            batch = [
                Outgoing(encode(message(i)), "financial.request.acme")
                for i in range(start, min(TOTAL, start + size))
            ]
            for _ in range(10):
                try:
                    transport.publish_batch(batch, timeout=30)
                    break
                except PublishTimeoutError:
                    continue
            else:
                errors.append(f"batch at {start} never confirmed")
                return
            start += size
            if start >= TOTAL // 2 and not broker_back.is_set():
                time.sleep(0.01)
                if start >= TOTAL - 1_000:  # keep some for after the outage
                    broker_back.wait(timeout=120)
    except Exception as exc:  # reported by the test, not lost in a thread
        errors.append(repr(exc))


def _run_through_outage(
    node: ChaosNode,
    tmp_path: Path,
    go_down: Callable[[AmqpTransport], None],
    come_back: Callable[[], None],
    io: str,
) -> AmqpTransport:
    """``io``: ``thread`` (the transport's own I/O thread) or ``loop`` (an event loop, with
    the consumer's handler on it)."""
    topology = make_topology()
    store = EffectStore(tmp_path / "effects.db")
    transport = AmqpTransport(node.url, topology, reconnect_delays=(0.1, 0.2, 0.5))
    loop = LoopThread() if io == "loop" else None
    try:
        consumer: Consumer
        if loop is None:
            transport.start(timeout=30)
            consumer = transport.consume("core", store.handle, prefetch=1_000, batch_size=200)
        else:

            async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
                return store.handle(deliveries)

            loop.run(transport.start_async(timeout=30))
            consumer = loop.run(
                transport.consume_async("core", handle, prefetch=1_000, batch_size=200)
            )
        half_published, broker_back = threading.Event(), threading.Event()
        errors: list[str] = []
        publisher = threading.Thread(
            target=_publish_all, args=(transport, half_published, broker_back, errors)
        )
        publisher.start()
        assert half_published.wait(timeout=60)
        wait_until(lambda: store.count() >= TOTAL // 4, timeout=60, what="a quarter consumed")
        go_down(transport)
        time.sleep(1.0)
        come_back()
        broker_back.set()
        publisher.join(timeout=180)
        assert not publisher.is_alive()
        assert errors == []
        wait_until(lambda: store.count() >= TOTAL, timeout=120, what="every effect")
        time.sleep(0.5)  # any straggling duplicate gets its chance to be (wrongly) applied
        consumer.stop()
        applied = store.applied()
        assert len(applied) == TOTAL, "lost messages"
        assert set(applied) == {f"m-{i}" for i in range(TOTAL)}
        assert set(applied.values()) == {1}, "an effect applied twice"
        assert transport.dead_letters("core") == []
        return transport
    finally:
        transport.close()
        if loop is not None:
            loop.close()
        store.close()


@pytest.mark.parametrize("io", ["thread", "loop"])
def test_broker_stop_app_start_app_mid_stream_loses_nothing_applies_nothing_twice(
    chaos_node: ChaosNode, tmp_path: Path, io: str
) -> None:
    _run_through_outage(
        chaos_node, tmp_path, lambda _transport: chaos_node.stop_app(), chaos_node.start_app, io
    )


@pytest.mark.parametrize("io", ["thread", "loop"])
def test_broker_kill_9_mid_stream_loses_nothing_applies_nothing_twice(
    chaos_node: ChaosNode, tmp_path: Path, io: str
) -> None:
    def kill_with_messages_in_flight(transport: AmqpTransport) -> None:
        # Kill while messages are on the wire, unconfirmed: they must be published again. The
        # broker is frozen first, so the confirms cannot all arrive between look and kill.
        chaos_node.freeze()
        wait_until(lambda: transport.unconfirmed_count > 0, what="unconfirmed messages")
        chaos_node.kill9()

    transport = _run_through_outage(
        chaos_node, tmp_path, kill_with_messages_in_flight, chaos_node.restart_after_kill, io
    )
    assert transport.republished_count > 0


def test_a_handler_outcome_reaches_the_broker_only_once_acked(
    shared_broker: tuple[str, Topology],
) -> None:
    url, topology = shared_broker
    with AmqpTransport(url, topology) as transport:
        release = threading.Event()
        seen: list[str] = []

        def slow(delivery: Delivery) -> Outcome:
            seen.append("called")
            release.wait(timeout=20)
            return Outcome.ack()

        consumer = transport.consume("core", as_batch_handler(slow))
        transport.publish(message(1))
        wait_until(lambda: bool(seen), what="the handler call")
        # The handler has not returned: the message is still unacked (not ready, not gone).
        assert transport.queue_depth(topology.queue("core")) == 0
        consumer.stop(timeout=0.1)
        release.set()
        wait_until(
            lambda: transport.queue_depth(topology.queue("core")) == 1,
            what="the unacked message back in its queue",
        )


def test_a_blocked_broker_holds_publishers_back_within_a_bounded_window(
    chaos_node: ChaosNode,
) -> None:
    topology = make_topology()
    transport = AmqpTransport(chaos_node.url, topology, window=50, max_in_flight=100)
    try:
        transport.start(timeout=30)
        transport.publish(message(0))
        chaos_node.set_memory_watermark(0)  # memory alarm: connection.blocked
        try:
            held = transport.submit_batch(
                [Outgoing(encode(message(n)), "financial.request.acme") for n in range(1, 101)]
            )
            wait_until(lambda: transport.blocked, what="connection.blocked")
            with pytest.raises(PublishTimeoutError, match=r"not confirmed within 0\.5 s"):
                held.result(timeout=0.5)
            # The in-flight bound is reached: a further batch waits for room, then gives up,
            # instead of queueing without limit.
            with pytest.raises(PublishTimeoutError, match=r"no room to publish within 0\.5 s"):
                transport.publish_batch(
                    [Outgoing(encode(message(101)), "financial.request.acme")], timeout=0.5
                )
        finally:
            chaos_node.set_memory_watermark(0.4)
        assert held.result(timeout=30).confirmed == 100
        assert transport.queue_depth(topology.queue("core")) == 101
    finally:
        transport.close()
        delete_topology(chaos_node.url, topology)


def test_prefetch_bounds_the_unacked_deliveries(shared_broker: tuple[str, Topology]) -> None:
    url, topology = shared_broker
    release = threading.Event()
    calls: list[str] = []

    def blocked(delivery: Delivery) -> Outcome:
        calls.append(delivery.message.ids.message_id)
        release.wait(timeout=30)
        return Outcome.ack()

    with AmqpTransport(url, topology) as transport:
        transport.publish_batch(
            [Outgoing(encode(message(n)), "financial.request.acme") for n in range(20)]
        )
        consumer = transport.consume("core", as_batch_handler(blocked), prefetch=5)
        wait_until(lambda: calls == ["m-0"], what="the first delivery in the handler")
        wait_until(
            lambda: transport.queue_depth(topology.queue("core")) == 15,
            what="15 ready: 5 delivered and unacked",
        )
        release.set()
        wait_until(lambda: len(calls) == 20, what="every delivery")
        wait_until(lambda: transport.queue_depth(topology.queue("core")) == 0, what="empty")
        consumer.stop()


def _pika_frames(
    channel: int, body_max: int, exchange: str, key: str, mandatory: bool, envelope: Envelope
) -> bytes:
    """What ``channel.basic_publish(exchange, key, body, _properties(envelope), mandatory)``
    puts on the wire, through pika's own frame objects."""
    body = envelope.body
    frames = [
        pika.frame.Method(
            channel,
            pika.spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory),
        ).marshal(),
        pika.frame.Header(channel, len(body), _properties(envelope)).marshal(),
    ]
    frames += [
        pika.frame.Body(channel, body[start : start + body_max]).marshal()
        for start in range(0, len(body), body_max)
    ]
    return b"".join(frames)


@pytest.mark.parametrize(
    "envelope",
    [
        encode(message(1)),
        encode(message(2), correlation_id="c-2", reply_to="isobridge.reply.x", traceparent="t"),
        Envelope(b"", "", {}),
        Envelope(b"x" * 70_000, "m-big", {"k": "v"}, correlation_id="ç-ü"),
        Envelope(
            b"{}",
            "m-mixed",
            {"b": b"\x00\x01", "t": True, "n": 2**40, "neg": -5, "l": [1, "a"], "d": {"x": 1}},
            reply_to="r",
        ),
        Envelope(b"{}", "m-type", {"a": 1}, content_type=""),
    ],
)
@pytest.mark.parametrize("mandatory", [True, False])
def test_publish_frames_are_pikas_byte_for_byte(envelope: Envelope, mandatory: bool) -> None:
    built = _publish_frames(7, 32_760, "isobridge.canonical", "core.x.y", mandatory, envelope)
    assert built == _pika_frames(7, 32_760, "isobridge.canonical", "core.x.y", mandatory, envelope)


def _described(decoded: tuple[int, object]) -> object:
    """A decoded frame as comparable data: its class and attributes, nested objects too."""
    consumed, value = decoded

    def describe(thing: object) -> object:
        if hasattr(thing, "__dict__"):
            return (type(thing), {key: describe(item) for key, item in vars(thing).items()})
        return (type(thing), thing)

    return consumed, describe(value), list(vars(value)) if hasattr(value, "__dict__") else None


_INCOMING = [
    pika.frame.Method(
        5, pika.spec.Basic.Deliver("ctag-1", 2**40 + 3, True, "isobridge.canonical", "core.x.y")
    ).marshal(),
    pika.frame.Method(5, pika.spec.Basic.Deliver("c", 1, False, "", "reply.q")).marshal(),
    pika.frame.Method(1, pika.spec.Basic.Deliver(b"\xff\xfe", 7, False, "e", "k")).marshal(),
    pika.frame.Method(2, pika.spec.Basic.Ack(17, True)).marshal(),
    pika.frame.Method(2, pika.spec.Basic.Ack(18, False)).marshal(),
    pika.frame.Method(2, pika.spec.Basic.Nack(19, True, True)).marshal(),
    pika.frame.Method(0, pika.spec.Channel.OpenOk()).marshal(),
    pika.frame.Header(
        3, 2**33, _properties(encode(message(2), correlation_id="c-2", reply_to="r.x"))
    ).marshal(),
    pika.frame.Header(3, 0, pika.spec.BasicProperties()).marshal(),
    pika.frame.Header(
        3, 9, pika.spec.BasicProperties(headers={"l": [1, "a"], "d": {"x": 1}, "b": b"\x00"})
    ).marshal(),
    pika.frame.Header(
        3, 9, pika.spec.BasicProperties(content_type="ç-ü", correlation_id="é", priority=3)
    ).marshal(),
    pika.frame.Header(
        3, 9, pika.spec.BasicProperties(message_id="m", timestamp=10, expiration="5", type="t")
    ).marshal(),
    pika.frame.Body(4, b"").marshal(),
    pika.frame.Body(4, b"x" * 70_000).marshal(),
    pika.frame.Heartbeat().marshal(),
    pika.frame.ProtocolHeader().marshal(),
]


@pytest.mark.parametrize("frame", _INCOMING)
def test_incoming_frames_decode_as_pikas(frame: bytes) -> None:
    for data in (frame, frame + _INCOMING[0], frame[:-1], frame[:5]):
        assert _described(_decode_frame(data)) == _described(pika.frame.decode_frame(data))
    # Headers decoded once are given out again as fresh tables.
    first, second = _decode_frame(frame)[1], _decode_frame(frame)[1]
    if isinstance(first, pika.frame.Header) and isinstance(second, pika.frame.Header):
        assert first.properties.headers is None or (
            first.properties.headers is not second.properties.headers
        )


@pytest.mark.parametrize("frame", _INCOMING)
def test_incoming_frames_decode_as_pikas_at_an_offset(frame: bytes) -> None:
    before = _INCOMING[1] + b"xyz"
    for data in (frame, frame + _INCOMING[0], frame[:-1], frame[:5]):
        expected = _described(pika.frame.decode_frame(data))
        assert _described(_decode_frame(before + data, len(before))) == expected


def test_incoming_frames_with_a_wrong_end_marker_are_refused_as_by_pika() -> None:
    broken = _INCOMING[0][:-1] + b"\x00"
    with pytest.raises(pika.exceptions.InvalidFrameError):
        pika.frame.decode_frame(broken)
    with pytest.raises(pika.exceptions.InvalidFrameError):
        _decode_frame(broken)


def test_publish_frames_leave_strings_too_long_for_amqp_to_pika() -> None:
    assert _publish_frames(1, 1000, "e", "k" * 256, True, encode(message(1))) is None
    too_long_id = Envelope(b"{}", "m" * 300, {})
    assert _publish_frames(1, 1000, "e", "k", True, too_long_id) is None


# --- deliveries handed over whole, against pika's own dispatch, on the real broker ---------

_CONTENT: list[tuple[pika.spec.BasicProperties, bytes]] = [
    # As a hub publishes (routing.amqp._properties): decoded on the connection's own path.
    (_properties(encode(message(1), correlation_id="c-1", reply_to="r.q")), b"{}" * 300),
    (_properties(encode(message(2))), encode(message(2)).body),
    (pika.spec.BasicProperties(), b""),
    (pika.spec.BasicProperties(content_type="text/plain", delivery_mode=2), b"x"),
    # Properties and tables outside that path: pika decodes them.
    (pika.spec.BasicProperties(priority=3, timestamp=10, app_id="a", expiration="60000"), b"p"),
    (pika.spec.BasicProperties(headers={"l": [1, "a"], "d": {"x": 1}, "b": True}), b"t"),
    # Not UTF-8: pika keeps the bytes.
    (pika.spec.BasicProperties(message_id=b"\xff\xfe", correlation_id=b"\xc3"), b"u"),
    # Larger than a frame (frame_max 131072): several body frames.
    (pika.spec.BasicProperties(content_type="application/octet-stream"), bytes(300_000)),
]


class _RecordingConsumer:
    """Records what a consumer is handed; done once it got ``count`` messages."""

    def __init__(
        self,
        seen: list[tuple[object, ...]],
        count: int,
        *,
        ack: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.seen = seen
        self.left = count
        self.ack = ack
        self.done: asyncio.Future[None] = loop.create_future()

    def on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        described = (type(method), vars(method), type(properties), vars(properties), body)
        self.seen.append((channel.channel_number, *described))
        if self.ack:
            channel.basic_ack(method.delivery_tag)
        self.left -= 1
        if self.left == 0:
            self.done.set_result(None)


def _settle(future: asyncio.Future[None], *_: object) -> None:
    if not future.done():
        future.set_result(None)


async def _opened(url: str, connection_class: type[AsyncioConnection]) -> AsyncioConnection:
    """A connection of ``connection_class`` to ``url`` on the running loop, once open."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()
    connection = connection_class(
        pika.URLParameters(url),
        on_open_callback=opened.set_result,
        on_open_error_callback=lambda _c, error: opened.set_exception(error),
        custom_ioloop=loop,
    )
    await asyncio.wait_for(opened, 10)
    return connection


def _consumed_twice(
    url: str, queue: str, connection_class: type[AsyncioConnection], count: int
) -> tuple[list[tuple[object, ...]], AsyncioConnection]:
    """Every message of ``queue`` as ``connection_class`` hands it to a consumer, twice: on
    a first channel (left unacked, so the broker delivers it again when that channel
    closes), then on a second one (redelivered, acked); last, the connection's byte and
    frame counts before it closed."""
    seen: list[tuple[object, ...]] = []

    async def run() -> AsyncioConnection:
        loop = asyncio.get_running_loop()
        connection = await _opened(url, connection_class)
        for round_number in (1, 2):
            channel_ready: asyncio.Future[Any] = loop.create_future()
            connection.channel(on_open_callback=channel_ready.set_result)
            channel = await asyncio.wait_for(channel_ready, 10)
            consumer = _RecordingConsumer(seen, count, ack=round_number == 2, loop=loop)
            channel.basic_consume(queue, consumer.on_message, consumer_tag=f"c-{round_number}")
            await asyncio.wait_for(consumer.done, 20)
            closed: asyncio.Future[None] = loop.create_future()
            channel.add_on_close_callback(functools.partial(_settle, closed))
            channel.close()
            await asyncio.wait_for(closed, 10)
        seen.append(("received", connection.bytes_received, connection.frames_received))
        ended: asyncio.Future[None] = loop.create_future()
        connection.add_on_close_callback(functools.partial(_settle, ended))
        connection.close()
        await asyncio.wait_for(ended, 10)
        return connection

    return seen, asyncio.run(run())


@pytest.mark.parametrize("recv_bytes", [64 * 1024, 4096, 100])
def test_deliveries_handed_over_whole_are_what_pikas_dispatch_hands_over(
    shared_broker: tuple[str, Topology], monkeypatch: pytest.MonkeyPatch, recv_bytes: int
) -> None:
    """The same messages in a queue, read by pika's own connection, then again by the
    hub's: the consumer gets the same channel numbers, methods (consumer tag, delivery tag,
    redelivered, exchange, routing key), properties and bodies, read in 64 KiB (deliveries
    whole), 4 KiB (some split) or 100 bytes (almost all split) at a time."""
    url, topology = shared_broker
    monkeypatch.setattr(routing.amqp, "_RECV_BYTES", recv_bytes)
    queue = f"{topology.prefix}.whole"
    count = len(_CONTENT) * 3
    setup = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = setup.channel()
        consumed: list[tuple[list[tuple[object, ...]], AsyncioConnection]] = []
        for connection_class in (AsyncioConnection, _Connection):
            channel.queue_declare(queue)
            for properties, body in _CONTENT * 3:
                channel.basic_publish("", queue, body, properties)
            wait_until(
                lambda: channel.queue_declare(queue, passive=True).method.message_count == count,
                what="every message in the queue",
            )
            consumed.append(_consumed_twice(url, queue, connection_class, count))
            channel.queue_delete(queue)
    finally:
        setup.close()
    (by_pika, _), (by_hub, connection) = consumed
    assert len(by_pika) == 2 * count + 1
    received = by_pika[-1][1]  # the byte count, as pika keeps it
    assert isinstance(received, int) and received > 2 * 3 * 300_000
    assert [entry[:5] for entry in by_hub] == [entry[:5] for entry in by_pika]
    assert by_hub == by_pika
    assert {cast(dict[str, object], entry[2])["redelivered"] for entry in by_hub[count:-1]} == {
        True
    }
    assert isinstance(connection, _Connection)
    if recv_bytes == 64 * 1024:
        # Most went over whole; the 300 kB ones (larger than what one read gives) did not.
        assert count // 2 < connection.assembled_deliveries < 2 * count


def _on_ack(frame: Any) -> None:
    pass


def _other(frame: Any) -> None:
    pass


def test_a_standing_callback_is_found_only_where_pika_would_call_it_alone() -> None:
    callbacks = pika.callback.CallbackManager()
    assert _standing_callback(callbacks, 5, "Basic.Ack") is None
    callbacks.add(5, pika.spec.Basic.Ack, _on_ack, False)  # as confirm_delivery does
    assert _standing_callback(callbacks, 5, "Basic.Ack") is _on_ack
    assert _standing_callback(callbacks, 6, "Basic.Ack") is None
    assert _standing_callback(callbacks, 5, "Basic.Nack") is None
    callbacks.add(5, pika.spec.Basic.Ack, _other, True)  # a one-shot beside it
    assert _standing_callback(callbacks, 5, "Basic.Ack") is None
    for one_shot, only, arguments in ((True, None, None), (False, "me", None), (False, None, {})):
        alone = pika.callback.CallbackManager()
        alone.add(7, pika.spec.Basic.Ack, _on_ack, one_shot, only, arguments)
        assert _standing_callback(alone, 7, "Basic.Ack") is None
    assert _standing_callback(object(), 5, "Basic.Ack") is None


def _confirmed(url: str, queue: str, connection_class: type[AsyncioConnection], count: int) -> Any:
    """Publish ``count`` messages with confirms on a connection of ``connection_class``; the
    acks its confirm callback got, and the connection."""
    acks: list[tuple[int, int, bool]] = []

    async def run() -> AsyncioConnection:
        loop = asyncio.get_running_loop()
        connection = await _opened(url, connection_class)
        ready: asyncio.Future[Any] = loop.create_future()
        connection.channel(on_open_callback=ready.set_result)
        channel = await asyncio.wait_for(ready, 10)
        all_confirmed: asyncio.Future[None] = loop.create_future()

        def on_confirm(frame: Any) -> None:
            acks.append((frame.channel_number, frame.method.delivery_tag, frame.method.multiple))
            if frame.method.delivery_tag == count:
                _settle(all_confirmed)

        mode: asyncio.Future[None] = loop.create_future()
        channel.confirm_delivery(on_confirm, callback=functools.partial(_settle, mode))
        await asyncio.wait_for(mode, 10)
        for number in range(count):
            channel.basic_publish("", queue, f"m{number}".encode())
        await asyncio.wait_for(all_confirmed, 20)
        acks.append((-1, connection.frames_received, False))
        ended: asyncio.Future[None] = loop.create_future()
        connection.add_on_close_callback(functools.partial(_settle, ended))
        connection.close()
        await asyncio.wait_for(ended, 10)
        return connection

    connection = asyncio.run(run())
    return acks, connection


def test_confirms_handed_straight_to_the_callback_are_what_pikas_dispatch_hands_over(
    shared_broker: tuple[str, Topology],
) -> None:
    url, topology = shared_broker
    queue = f"{topology.prefix}.confirms"
    setup = pika.BlockingConnection(pika.URLParameters(url))
    try:
        setup.channel().queue_declare(queue)
        by_pika, _ = _confirmed(url, queue, AsyncioConnection, 200)
        by_hub, connection = _confirmed(url, queue, _Connection, 200)
        setup.channel().queue_delete(queue)
    finally:
        setup.close()
    for acks in (by_pika, by_hub):
        *confirms, (_, frames, _) = acks
        tags = [tag for _, tag, _ in confirms]
        assert tags == sorted(tags) and tags[-1] == 200
        assert {channel for channel, _, _ in confirms} == {1}
        # Every frame counted: the confirms and the same set-up frames on both connections.
        assert frames - len(confirms) == by_pika[-1][1] - (len(by_pika) - 1)
    assert connection.direct_confirms == len(by_hub) - 1


def test_frames_sent_at_the_end_of_a_turn_arrive_whole_and_in_order_even_when_the_socket_balks(
    shared_broker: tuple[str, Topology],
) -> None:
    """The connection sends a turn's frames itself; what a small send buffer does not take
    goes through pika's transport: a 3 MB body among small ones arrives intact, in order."""
    url, topology = shared_broker
    queue = f"{topology.prefix}.direct-writes"
    bodies = [b"small-1", bytes(range(256)) * 12_288, b"small-2", b"small-3"]

    async def publish() -> _Connection:
        loop = asyncio.get_running_loop()
        connection = cast(_Connection, await _opened(url, _Connection))
        connection._transport._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ready: asyncio.Future[Any] = loop.create_future()
        connection.channel(on_open_callback=ready.set_result)
        channel = await asyncio.wait_for(ready, 10)
        confirmed: asyncio.Future[None] = loop.create_future()

        def on_confirm(frame: Any) -> None:
            if frame.method.delivery_tag == len(bodies):  # the last (alone or with others)
                _settle(confirmed)

        mode: asyncio.Future[None] = loop.create_future()
        channel.confirm_delivery(on_confirm, callback=functools.partial(_settle, mode))
        await asyncio.wait_for(mode, 10)
        for body in bodies:  # one turn of the loop: the four go out as one send
            channel.basic_publish("", queue, body)
        await asyncio.wait_for(confirmed, 30)
        ended: asyncio.Future[None] = loop.create_future()
        connection.add_on_close_callback(functools.partial(_settle, ended))
        connection.close()
        await asyncio.wait_for(ended, 10)
        return connection

    setup = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = setup.channel()
        channel.queue_declare(queue)
        connection = asyncio.run(publish())
        received = []
        for _ in bodies:
            _method, _properties, body = channel.basic_get(queue, auto_ack=True)
            received.append(body)
        channel.queue_delete(queue)
    finally:
        setup.close()
    assert received == bodies
    assert connection.direct_writes > 0


class _Received:
    """pika's protocol side of a transport: what ``data_received`` was given."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)


def _plaintext_transport(sock: socket.socket, limit: int) -> tuple[Any, _Received]:
    """A pika plaintext transport over ``sock`` (the attributes its ``_consume`` reads)."""
    transport = object.__new__(_AsyncPlaintextTransport)
    received = _Received()
    transport._sock = sock
    transport._protocol = received
    transport._state = transport._STATE_ACTIVE
    transport._MAX_RECV_BYTES = limit
    return transport, received


def test_the_amqp_socket_is_read_until_a_read_that_does_not_fill_the_buffer() -> None:
    """``routing.amqp._consume_until_drained``: no last ``recv`` that can only raise
    EAGAIN after a short read (pika's own ``_consume`` does one each time the socket is
    readable); a full read is followed by another, and whatever comes later is read when
    the poll reports it."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    try:
        transport, received = _plaintext_transport(ours, 4096)
        peer.sendall(b"x" * 10)
        routing.amqp._consume_until_drained(transport)
        assert received.chunks == [b"x" * 10]

        peer.sendall(b"y" * 10_000)  # two full reads and a short one
        routing.amqp._consume_until_drained(transport)
        assert [len(chunk) for chunk in received.chunks[1:]] == [4096, 4096, 1808]

        peer.sendall(b"z" * 4096)  # a full read: the next one finds nothing, as in pika
        with pytest.raises(BlockingIOError):
            routing.amqp._consume_until_drained(transport)
        assert received.chunks[-1] == b"z" * 4096

        peer.close()
        with pytest.raises(transport.RxEndOfFile):
            routing.amqp._consume_until_drained(transport)
    finally:
        ours.close()
        peer.close()
