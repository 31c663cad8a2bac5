"""The asyncio face of every transport: the same behaviour, awaited.

Each test runs as a coroutine against ``memory://``, ``amqp://`` started with ``start`` (its
own I/O thread: the async methods hand over to threads) and ``amqp://`` started with
``start_async`` (its I/O on the test's event loop, no thread in between).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence

import pytest

from canonical_model.codes import TransactionStatus
from canonical_model.messages import CanonicalMessage
from routing.amqp import AmqpTransport
from routing.reqreply import Requester, approve
from routing.transport import (
    DEFAULT_EXCHANGE,
    AsyncBatchHandler,
    Consumer,
    DeadLetter,
    Delivery,
    Outcome,
    Outgoing,
    Topology,
    Transport,
    UnroutableError,
    open_transport,
)
from routing.wire import BadMessageError, Envelope, decode, encode
from tests.routing.conftest import (
    BACKENDS,
    amqp_url,
    broker_for,
    delete_topology,
    make_topology,
    message,
    require_broker,
)

Body = Callable[[Transport], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[Body], None]]:
    """Runs a test body on a fresh event loop with a started transport of the backend."""
    url, tls = broker_for(backend, request)
    options: dict[str, object] = {"tls": tls} if tls is not None else {}
    topologies: list[Topology] = []

    def run_body(body: Body) -> None:
        topology = make_topology()
        topologies.append(topology)

        async def main() -> None:
            transport = open_transport(url, topology, **options)
            if backend.endswith("-loop"):
                await transport.start_async(timeout=20)
            else:
                await asyncio.to_thread(transport.start, 20)
            try:
                await body(transport)
            finally:
                await transport.close_async()

        asyncio.run(main())

    yield run_body
    if backend != "memory":
        for topology in topologies:
            delete_topology(url, topology, tls=tls)


async def _eventually(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


async def _approve_all(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
    await asyncio.sleep(0)  # a real handler awaits its I/O here
    return [Outcome.ack(reply=approve(d.message)) for d in deliveries]


def test_requests_awaited_concurrently_get_their_own_replies(
    run: Callable[[Body], None],
) -> None:
    async def body(transport: Transport) -> None:
        responder = await transport.consume_async("core", _approve_all, prefetch=50, batch_size=10)
        requester = Requester(transport, default_timeout=20)
        await requester.start_async()
        try:
            answers = await asyncio.gather(
                *(requester.request_async(message(i)) for i in range(40))
            )
        finally:
            responder.stop()
            requester.close()
        assert [a.ids.message_id for a in answers] == [f"m-{i}-reply" for i in range(40)]
        assert {a.status.code for a in answers if a.status is not None} == {TransactionStatus.ACSC}

    run(body)


def test_an_unanswered_request_gets_the_timeout_outcome_and_its_late_reply_is_dropped(
    run: Callable[[Body], None],
) -> None:
    async def body(transport: Transport) -> None:
        requester = Requester(transport)
        await requester.start_async()
        try:
            answer = await requester.request_async(message(1), timeout=0.3)
            assert answer.status is not None
            assert (answer.status.code, answer.status.reason) == (TransactionStatus.RJCT, "AB05")
            # The responder comes up late: its reply finds nobody waiting.
            late = await transport.consume_async("core", _approve_all)
            await _eventually(lambda: requester.late_replies == 1, "the late reply")
            late.stop()
        finally:
            requester.close()

    run(body)


def test_async_handler_outcomes_retry_then_park_with_the_reason(
    run: Callable[[Body], None],
) -> None:
    attempts: dict[str, int] = {}

    async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        outcomes = []
        for delivery in deliveries:
            message_id = delivery.message.ids.message_id
            attempts[message_id] = delivery.attempt
            if message_id == "m-1":
                outcomes.append(Outcome.retry("core busy"))
            elif message_id == "m-2":
                outcomes.append(Outcome.dead_letter("account closed"))
            else:
                outcomes.append(Outcome.ack())
        return outcomes

    async def body(transport: Transport) -> None:
        consumer = await transport.consume_async("core", handle)
        receipt = await transport.publish_batch_async(
            [Outgoing(encode(message(i)), "financial.request.acme") for i in range(3)]
        )
        assert receipt.confirmed == 3
        await _eventually(lambda: len(transport.dead_letters("core")) == 2, "two parked")
        consumer.stop()
        parked = {d.message_id: d for d in transport.dead_letters("core")}
        assert parked["m-1"].reason == "gave up after 3 attempt(s): core busy"
        assert parked["m-2"].reason == "account closed"
        assert attempts == {"m-0": 1, "m-1": 3, "m-2": 1}

    run(body)


def test_a_raising_async_handler_is_retried_and_bad_input_is_parked_untried(
    run: Callable[[Body], None],
) -> None:
    seen: list[str] = []

    async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        seen.extend(d.message.ids.message_id for d in deliveries)
        raise ValueError("the core said no")

    async def body(transport: Transport) -> None:
        consumer = await transport.consume_async("core", handle)
        garbage = Envelope(b"{not json", "garbage-1", {}, content_type="application/json")
        await transport.publish_batch_async([Outgoing(garbage, "financial.request.acme")])
        await transport.publish_async(message(7), "financial.request.acme")
        await _eventually(lambda: len(transport.dead_letters("core")) == 2, "both parked")
        consumer.stop()
        reasons = {d.message_id: d.reason for d in transport.dead_letters("core")}
        assert reasons["garbage-1"].startswith("bad message:")
        assert reasons["m-7"] == "gave up after 3 attempt(s): ValueError: the core said no"
        assert seen == ["m-7"] * 3

    run(body)


def test_unroutable_messages_are_parked_or_reported_when_awaited(
    run: Callable[[Body], None],
) -> None:
    async def body(transport: Transport) -> None:
        receipt = await transport.publish_async(message(3), "nobody.listens.here")
        assert receipt.parked == ("m-3",)
        with pytest.raises(UnroutableError):
            await transport.publish_batch_async(
                [Outgoing(encode(message(4)), "nobody.listens.here")], unroutable="raise"
            )
        parked = transport.dead_letters("unroutable")
        assert [d.message_id for d in parked] == ["m-3"]

    run(body)


def test_a_reply_queue_declared_from_a_coroutine_takes_messages(
    run: Callable[[Body], None],
) -> None:
    got: list[CanonicalMessage] = []

    async def keep(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        got.extend(d.message for d in deliveries)
        return [Outcome.ack() for _ in deliveries]

    async def body(transport: Transport) -> None:
        queue = await transport.declare_reply_queue_async()
        consumer = await transport.consume_queue_async(queue, keep)
        await transport.publish_batch_async(
            [Outgoing(encode(message(5)), queue, DEFAULT_EXCHANGE, mandatory=False)]
        )
        await _eventually(lambda: len(got) == 1, "the message")
        consumer.stop()
        assert got == [message(5)]

    run(body)


def test_a_consumer_on_the_event_loop_handles_several_batches_at_once() -> None:
    """Only where the I/O is on the loop: a batch awaiting I/O does not hold the next."""
    url = amqp_url()
    require_broker(url)
    topology = make_topology()
    running = 0
    most = 0

    async def slow(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.2)
        running -= 1
        return [Outcome.ack() for _ in deliveries]

    async def main() -> None:
        transport = open_transport(url, topology)
        await transport.start_async(timeout=20)
        try:
            consumer = await transport.consume_async("core", slow, prefetch=20, batch_size=1)
            await transport.publish_batch_async(
                [Outgoing(encode(message(i)), "financial.request.acme") for i in range(10)]
            )
            await _eventually(lambda: most >= 5, "five batches at once")
            await _eventually(lambda: running == 0, "all handled")
            consumer.stop()
        finally:
            await transport.close_async()

    try:
        asyncio.run(main())
    finally:
        delete_topology(url, topology)


def test_a_batch_acked_while_an_earlier_one_is_handled_leaves_the_earlier_unacked() -> None:
    """Only where the I/O is on the loop: batches finish out of order, and an ack of a later
    delivery must not take an earlier one still in its handler with it (a ``multiple``
    ack): that one comes again when its channel goes."""
    url = amqp_url()
    require_broker(url)
    topology = make_topology()
    release = asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def first_waits(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        for delivery in deliveries:
            seen.append((delivery.message.ids.message_id, delivery.redelivered))
        if deliveries[0].message.ids.message_id == "m-0" and not deliveries[0].redelivered:
            await release.wait()
        return [Outcome.ack() for _ in deliveries]

    async def main() -> None:
        transport = open_transport(url, topology)
        await transport.start_async(timeout=20)
        try:
            consumer = await transport.consume_async("core", first_waits, prefetch=20, batch_size=1)
            await transport.publish_batch_async(
                [Outgoing(encode(message(i)), "financial.request.acme") for i in range(3)]
            )
            await _eventually(lambda: len(seen) == 3, "three deliveries")
            await asyncio.sleep(0.3)  # the later two acked meanwhile
            consumer.stop()  # m-0 still in its handler: its channel goes, unacked
            release.set()
            again = await transport.consume_async("core", first_waits, prefetch=20)
            await _eventually(lambda: len(seen) == 4, "m-0 again")
            again.stop()
        finally:
            await transport.close_async()

    try:
        asyncio.run(main())
    finally:
        delete_topology(url, topology)
    assert sorted(seen[:3]) == [("m-0", False), ("m-1", False), ("m-2", False)]
    assert seen[3] == ("m-0", True)


def _amqp_on_loop(body: Callable[[Topology], Coroutine[None, None, None]]) -> None:
    """Run ``body`` with a fresh topology on a broker, removing the topology after."""
    url = amqp_url()
    require_broker(url)
    topology = make_topology()
    try:
        asyncio.run(body(topology))
    finally:
        delete_topology(url, topology)


async def _started(topology: Topology) -> AmqpTransport:
    transport = open_transport(amqp_url(), topology)
    assert isinstance(transport, AmqpTransport)
    await transport.start_async(timeout=20)
    return transport


async def _request_answered_to_own_queue(
    transport: Transport, handler: AsyncBatchHandler, number: int, traceparent: str | None = None
) -> tuple[Consumer, Consumer]:
    """A reply queue of ``transport`` consumed by ``handler``, an approving responder of
    ``core`` on it too, and request ``number`` published with that queue as ``reply_to``:
    the queue's consumer and the responder."""
    queue = await transport.declare_reply_queue_async()
    replies = await transport.consume_queue_async(queue, handler)
    responder = await transport.consume_async("core", _approve_all)
    request = encode(
        message(number), correlation_id=f"c-{number}", reply_to=queue, traceparent=traceparent
    )
    await transport.publish_batch_async([Outgoing(request, "financial.request.acme")])
    return replies, responder


def test_a_reply_to_the_connections_own_reply_queue_is_handed_over_past_the_broker() -> None:
    """An edge and the core worker on one connection: the broker carries the request once;
    the reply goes to the requester at once, and the request is acked (it never comes
    again)."""
    again: list[str] = []

    async def record(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        again.extend(d.message.ids.message_id for d in deliveries)
        return [Outcome.ack() for _ in deliveries]

    async def body(topology: Topology) -> None:
        transport = await _started(topology)
        try:
            responder = await transport.consume_async("core", _approve_all, prefetch=50)
            requester = Requester(transport, default_timeout=20)
            await requester.start_async()
            answers = await asyncio.gather(
                *(requester.request_async(message(i)) for i in range(30))
            )
            responder.stop()
            requester.close()
            assert transport.local_replies == 30
            assert [a.ids.message_id for a in answers] == [f"m-{i}-reply" for i in range(30)]
            assert {a.status.code for a in answers if a.status} == {TransactionStatus.ACSC}
            late = await transport.consume_async("core", record)
            await asyncio.sleep(0.5)
            late.stop()
        finally:
            await transport.close_async()

    _amqp_on_loop(body)
    assert again == []


def test_a_reply_handed_over_in_process_is_never_written() -> None:
    """The reply reaches its consumer as the object, with the properties and headers the
    broker would have delivered and an empty body: its JSON is never written (work for
    nothing, and a body the wire would remember for a decode that never comes)."""
    handed: list[Delivery] = []
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def take(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        handed.extend(deliveries)
        return [Outcome.ack() for _ in deliveries]

    async def body(topology: Topology) -> None:
        transport = await _started(topology)
        try:
            replies, responder = await _request_answered_to_own_queue(transport, take, 9, trace)
            await _eventually(lambda: transport.local_replies == 1, "the reply handed over")
            responder.stop()
            replies.stop()
        finally:
            await transport.close_async()

    _amqp_on_loop(body)
    [reply] = handed
    assert reply.message == approve(message(9))
    assert reply.envelope.body == b""
    written = encode(reply.message, correlation_id="c-9", traceparent=trace)
    assert reply.envelope == Envelope(
        b"", written.message_id, written.headers, "c-9", None, written.content_type
    )
    with pytest.raises(BadMessageError, match="not JSON"):
        decode(reply.envelope)


def test_a_reply_to_another_connections_reply_queue_goes_through_the_broker() -> None:
    replied: list[CanonicalMessage] = []

    async def approve_and_keep(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        outcomes = await _approve_all(deliveries)
        replied.extend(o.reply for o in outcomes if o.reply is not None)
        return outcomes

    async def body(topology: Topology) -> None:
        core, edge = await _started(topology), await _started(topology)
        try:
            responder = await core.consume_async("core", approve_and_keep)
            requester = Requester(edge, default_timeout=20)
            await requester.start_async()
            answers = await asyncio.gather(*(requester.request_async(message(i)) for i in range(5)))
            responder.stop()
            requester.close()
            assert [a.ids.message_id for a in answers] == [f"m-{i}-reply" for i in range(5)]
            assert (core.local_replies, edge.local_replies) == (0, 0)
            # The core forgot the bodies it sent to the edge's queue: the edge parsed them.
            by_id = {r.ids.message_id: r for r in replied}
            for answer in answers:
                assert answer == by_id[answer.ids.message_id]
                assert answer is not by_id[answer.ids.message_id]
        finally:
            await core.close_async()
            await edge.close_async()

    _amqp_on_loop(body)


def test_a_reply_its_handler_raises_on_goes_through_the_broker_to_it() -> None:
    got: list[tuple[str, bool]] = []
    calls = 0

    async def fails_once(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("not now")
        got.extend((d.message.ids.message_id, d.message == approve(message(7))) for d in deliveries)
        return [Outcome.ack() for _ in deliveries]

    async def body(topology: Topology) -> None:
        transport = await _started(topology)
        try:
            replies, responder = await _request_answered_to_own_queue(transport, fails_once, 7)
            await _eventually(lambda: len(got) == 1, "the reply, through the broker")
            responder.stop()
            replies.stop()
            assert transport.local_replies == 0
        finally:
            await transport.close_async()

    _amqp_on_loop(body)
    assert got == [("m-7-reply", True)]


def test_a_reply_its_handler_parks_is_parked_as_a_delivered_one_would_be() -> None:
    async def refuse(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        return [Outcome.dead_letter("no taker") for _ in deliveries]

    async def body(topology: Topology) -> None:
        transport = await _started(topology)
        try:
            replies, responder = await _request_answered_to_own_queue(transport, refuse, 8)
            await _eventually(lambda: transport.local_replies == 1, "the reply handed over")
            parked: list[DeadLetter] = []
            for _ in range(100):
                parked = await asyncio.to_thread(transport.dead_letters, "unroutable")
                if parked:
                    break
                await asyncio.sleep(0.05)
            responder.stop()
            replies.stop()
        finally:
            await transport.close_async()
        assert [(d.message_id, d.reason) for d in parked] == [("m-8-reply", "no taker")]
        # Written when it had to go through the broker after all: the whole reply is there.
        assert decode(parked[0].envelope) == approve(message(8))

    _amqp_on_loop(body)
