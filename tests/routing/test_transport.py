"""The behaviour suite: every test runs against ``memory://`` and ``amqp://`` (RabbitMQ)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from canonical_model.json_form import to_json
from canonical_model.messages import MessageKind
from canonical_model.pan import contains_clear_pan
from routing.transport import (
    DEFAULT_EXCHANGE,
    Delivery,
    Outcome,
    Outgoing,
    Topology,
    Transport,
    UnknownDestinationError,
    UnroutableError,
    as_batch_handler,
    replay_copy,
    reply_envelope,
)
from routing.wire import KIND, SCHEMA, TENANT, TRACEPARENT, Envelope, decode, encode
from tests.routing.conftest import TENANT as TENANT_ID
from tests.routing.conftest import Recorder, make_topology, message, wait_until


def test_published_messages_are_consumed_once_each(transport: Transport) -> None:
    seen = Recorder()
    consumer = transport.consume("core", as_batch_handler(lambda d: _ack(seen, d)))
    receipt = transport.publish_batch(
        [Outgoing(encode(message(i)), "financial.request.acme") for i in range(20)]
    )
    assert receipt.confirmed == 20
    assert receipt.parked == ()
    wait_until(lambda: len(seen) >= 20, what="20 deliveries")
    consumer.stop()
    deliveries = [d for d in seen.snapshot() if isinstance(d, Delivery)]
    assert sorted(d.message.ids.message_id for d in deliveries) == sorted(
        f"m-{i}" for i in range(20)
    )
    first = deliveries[0]
    assert first.attempt == 1
    assert first.destination == "core"
    assert first.exchange == transport.topology.exchange
    assert first.routing_key == "financial.request.acme"
    assert first.message == message(int(first.message.ids.message_id[2:]))
    assert transport.dead_letters("core") == []


def _ack(seen: Recorder, delivery: Delivery) -> Outcome:
    seen.add(delivery)
    return Outcome.ack()


def test_topic_binding_routes_by_kind(transport: Transport) -> None:
    core, ledger = Recorder(), Recorder()
    consumers = [
        transport.consume("core", as_batch_handler(lambda d: _ack(core, d))),
        transport.consume("ledger", as_batch_handler(lambda d: _ack(ledger, d))),
    ]
    transport.publish(message(1))
    transport.publish(message(2, MessageKind.CREDIT_TRANSFER))
    wait_until(lambda: len(core) == 1 and len(ledger) == 1, what="one message each")
    for consumer in consumers:
        consumer.stop()
    assert [d.message.ids.message_id for d in core.snapshot()] == ["m-1"]  # type: ignore[attr-defined]
    assert [d.message.ids.message_id for d in ledger.snapshot()] == ["m-2"]  # type: ignore[attr-defined]


def test_a_batch_handler_gets_batches_and_acks_them_together(transport: Transport) -> None:
    sizes = Recorder()

    def handle(batch: Sequence[Delivery]) -> list[Outcome]:
        sizes.add(len(batch))
        return [Outcome.ack() for _ in batch]

    transport.publish_batch(
        [Outgoing(encode(message(i)), "financial.request.acme") for i in range(50)]
    )
    consumer = transport.consume("core", handle, prefetch=50, batch_size=10, batch_wait=0.2)
    wait_until(lambda: sum(sizes.snapshot()) >= 50, what="50 messages")  # type: ignore[arg-type]
    consumer.stop()
    counts = sizes.snapshot()
    assert sum(counts) == 50  # type: ignore[arg-type]
    assert max(counts) == 10  # type: ignore[type-var]
    assert transport.dead_letters("core") == []


def test_retry_backs_off_then_succeeds(transport: Transport) -> None:
    attempts = Recorder()

    def flaky(delivery: Delivery) -> Outcome:
        attempts.add(delivery.attempt)
        if delivery.attempt < 3:
            return Outcome.retry("core system busy")
        return Outcome.ack()

    consumer = transport.consume("core", as_batch_handler(flaky))
    transport.publish(message(1))
    wait_until(lambda: len(attempts) >= 3, what="three attempts")
    consumer.stop()
    assert attempts.snapshot() == [1, 2, 3]
    assert transport.dead_letters("core") == []


def test_a_poison_message_is_parked_after_the_last_attempt(transport: Transport) -> None:
    attempts = Recorder()

    def always_fails(delivery: Delivery) -> Outcome:
        attempts.add(delivery.attempt)
        raise RuntimeError("posting failed for card 4111111111111111")

    consumer = transport.consume("core", as_batch_handler(always_fails))
    transport.publish(message(7), "financial.request.acme")
    wait_until(lambda: len(transport.dead_letters("core")) == 1, what="the dead letter")
    consumer.stop()
    assert attempts.snapshot() == [1, 2, 3]  # max_attempts=3 in make_topology
    (dead,) = transport.dead_letters("core")
    assert dead.message_id == "m-7"
    assert dead.attempts == 3
    assert dead.reason == (
        "gave up after 3 attempt(s): RuntimeError: posting failed for card 411111******1111"
    )
    assert not contains_clear_pan(dead.reason)
    assert dead.original_exchange == transport.topology.exchange
    assert dead.original_routing_key == "financial.request.acme"
    assert dead.destination == "core"
    assert dead.dead_lettered_at


def test_dead_letter_outcome_parks_at_once(transport: Transport) -> None:
    calls = Recorder()

    def refuse(delivery: Delivery) -> Outcome:
        calls.add(delivery.attempt)
        return Outcome.dead_letter("account closed")

    consumer = transport.consume("core", as_batch_handler(refuse))
    transport.publish(message(3))
    wait_until(lambda: len(transport.dead_letters("core")) == 1, what="the dead letter")
    consumer.stop()
    assert calls.snapshot() == [1]
    (dead,) = transport.dead_letters("core")
    assert (dead.reason, dead.attempts) == ("account closed", 1)


def _raw(body: bytes, headers: dict[str, object], message_id: str) -> Outgoing:
    return Outgoing(Envelope(body, message_id, headers), "financial.request.acme")


GOOD_HEADERS: dict[str, object] = {SCHEMA: 1, KIND: "financial", TENANT: TENANT_ID}


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"not json", GOOD_HEADERS, "bad message: body is not JSON: "),
        (b'{"canonical_version": 1}', GOOD_HEADERS, "bad message: body is not a canonical"),
        (None, {**GOOD_HEADERS, SCHEMA: 9}, "bad message: unknown schema version '9'"),
        (None, {SCHEMA: 1, KIND: "financial"}, f"bad message: missing header(s): {TENANT}"),
        (None, {**GOOD_HEADERS, KIND: "reversal"}, "bad message: header x-isobridge-kind="),
    ],
    ids=["not-json", "not-canonical", "unknown-version", "missing-header", "contradiction"],
)
def test_bad_input_is_dead_lettered_at_once_with_its_reason(
    transport: Transport, body: bytes | None, headers: dict[str, object], reason: str
) -> None:
    calls = Recorder()
    consumer = transport.consume("core", as_batch_handler(lambda d: _ack(calls, d)))
    raw = body if body is not None else to_json(message(5)).encode()
    transport.publish_batch([_raw(raw, headers, "bad-1")])
    wait_until(lambda: len(transport.dead_letters("core")) == 1, what="the dead letter")
    consumer.stop()
    assert len(calls) == 0
    (dead,) = transport.dead_letters("core")
    assert dead.reason.startswith(reason), dead.reason
    assert dead.attempts == 1
    assert dead.envelope.body == raw


def test_an_unroutable_message_is_parked_not_lost(transport: Transport) -> None:
    receipt = transport.publish(message(9), "statement.request.acme")
    assert receipt.parked == ("m-9",)
    (dead,) = transport.dead_letters("unroutable")
    assert dead.reason == "unroutable: no queue is bound for routing key 'statement.request.acme'"
    assert dead.original_exchange == transport.topology.exchange
    assert dead.original_routing_key == "statement.request.acme"
    with pytest.raises(UnroutableError, match="m-10"):
        transport.publish_batch(
            [Outgoing(encode(message(10)), "nothing.bound")], unroutable="raise"
        )
    assert [d.message_id for d in transport.dead_letters("unroutable")] == ["m-9"]


def test_replay_delivers_once_and_a_failing_replay_is_parked_again(transport: Transport) -> None:
    outcomes = {"m-1": [Outcome.dead_letter("not yet"), Outcome.ack()]}
    outcomes["m-2"] = [Outcome.dead_letter("still broken"), Outcome.dead_letter("broken again")]
    seen = Recorder()

    def handle(delivery: Delivery) -> Outcome:
        seen.add(delivery.message.ids.message_id)
        return outcomes[delivery.message.ids.message_id].pop(0)

    consumer = transport.consume("core", as_batch_handler(handle))
    transport.publish(message(1))
    transport.publish(message(2))
    wait_until(lambda: len(transport.dead_letters("core")) == 2, what="two dead letters")
    replayed = transport.take_dead_letters(
        "core", lambda dead: True, lambda dead: _replay(transport, dead)
    )
    assert replayed == 2
    wait_until(lambda: len(seen) == 4, what="the replays")
    wait_until(lambda: len(transport.dead_letters("core")) == 1, what="m-2 parked again")
    consumer.stop()
    assert sorted(seen.snapshot()) == ["m-1", "m-1", "m-2", "m-2"]  # type: ignore[type-var]
    (dead,) = transport.dead_letters("core")
    assert (dead.message_id, dead.reason) == ("m-2", "broken again")
    assert dead.envelope.headers["x-isobridge-replayed"] == 1


def _replay(transport: Transport, dead: object) -> None:
    from routing.transport import DeadLetter

    assert isinstance(dead, DeadLetter)
    transport.publish_batch([replay_copy(dead)])


def test_take_dead_letters_leaves_unselected_ones(transport: Transport) -> None:
    consumer = transport.consume(
        "core", as_batch_handler(lambda d: Outcome.dead_letter(d.message.ids.message_id))
    )
    for number in range(4):
        transport.publish(message(number))
    wait_until(lambda: len(transport.dead_letters("core")) == 4, what="four dead letters")
    consumer.stop()
    purged = transport.take_dead_letters(
        "core", lambda dead: dead.reason in {"m-1", "m-3"}, lambda dead: None
    )
    assert purged == 2
    assert sorted(d.message_id for d in transport.dead_letters("core")) == ["m-0", "m-2"]
    assert len(transport.dead_letters("core", limit=1)) == 1


def test_reply_goes_to_the_reply_queue_with_the_correlation_id(transport: Transport) -> None:
    reply_queue = transport.declare_reply_queue()
    replies = Recorder()
    listener = transport.consume_queue(reply_queue, as_batch_handler(lambda d: _ack(replies, d)))

    def answer(delivery: Delivery) -> Outcome:
        return Outcome.ack(reply=message(100 + int(delivery.message.ids.message_id[2:])))

    responder = transport.consume("core", as_batch_handler(answer))
    transport.publish(message(1), correlation_id="corr-1", reply_to=reply_queue)
    wait_until(lambda: len(replies) == 1, what="the reply")
    responder.stop()
    listener.stop()
    (reply,) = replies.snapshot()
    assert isinstance(reply, Delivery)
    assert reply.message.ids.message_id == "m-101"
    assert reply.envelope.correlation_id == "corr-1"
    assert reply.exchange == DEFAULT_EXCHANGE


def test_single_active_consumer_keeps_queue_order(
    transport_factory: object,
) -> None:
    topology = make_topology(single_active_consumer=True)
    assert callable(transport_factory)
    transport: Transport = transport_factory(topology)
    order: list[tuple[int, str]] = []
    lock = Recorder()

    def tagged(number: int) -> object:
        def handle(delivery: Delivery) -> Outcome:
            with lock.lock:
                order.append((number, delivery.message.ids.message_id))
            return Outcome.ack()

        return as_batch_handler(handle)

    consumers = [transport.consume("core", tagged(n), prefetch=5) for n in (1, 2)]  # type: ignore[arg-type]
    transport.publish_batch(
        [Outgoing(encode(message(i)), "financial.request.acme") for i in range(30)]
    )
    wait_until(lambda: len(order) == 30, what="30 deliveries")
    for consumer in consumers:
        consumer.stop()
    assert [m for _, m in order] == [f"m-{i}" for i in range(30)]
    assert len({n for n, _ in order}) == 1


def test_unknown_destination_gets_a_did_you_mean(transport: Transport) -> None:
    with pytest.raises(UnknownDestinationError, match="did you mean 'ledger'"):
        transport.consume("ledgr", as_batch_handler(lambda d: Outcome.ack()))
    with pytest.raises(UnknownDestinationError):
        transport.dead_letters("nowhere")


def test_topology_is_declared_idempotently(
    transport_factory: object, topology: Topology, transport: Transport
) -> None:
    assert callable(transport_factory)
    again: Transport = transport_factory(topology)
    seen = Recorder()
    consumer = again.consume("core", as_batch_handler(lambda d: _ack(seen, d)))
    transport.publish(message(1))
    wait_until(lambda: len(seen) == 1, what="the message")
    consumer.stop()


def test_submitted_batches_are_confirmed_in_their_own_time(transport: Transport) -> None:
    pending = [
        transport.submit_batch(
            [Outgoing(encode(message(n)), "financial.request.acme") for n in range(s, s + 100)]
        )
        for s in range(0, 300, 100)
    ]
    unroutable = transport.submit_batch([Outgoing(encode(message(999)), "x.y")], unroutable="raise")
    assert [p.result(timeout=20).confirmed for p in pending] == [100, 100, 100]
    with pytest.raises(UnroutableError, match="m-999"):
        unroutable.result(timeout=20)
    seen = Recorder()
    consumer = transport.consume("core", as_batch_handler(lambda d: _ack(seen, d)), prefetch=300)
    wait_until(lambda: len(seen) == 300, what="300 messages")
    consumer.stop()


def test_a_reply_envelope_answers_its_request_written_or_not() -> None:
    """The reply carries the request's correlation id (else its message id) and its trace
    context; unwritten, the same envelope with an empty body (a reply handed over
    in-process)."""
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = encode(message(1), correlation_id="c-1", reply_to="q", traceparent=trace)
    reply = message(2)
    written = reply_envelope(request, reply)
    assert (written.correlation_id, written.headers[TRACEPARENT]) == ("c-1", trace)
    assert decode(written) == reply
    unwritten = reply_envelope(request, reply, written=False)
    assert unwritten == Envelope(
        b"", written.message_id, written.headers, "c-1", None, written.content_type
    )
    untraced = reply_envelope(encode(message(3)), reply, written=False)
    assert untraced.correlation_id == "m-3"
    assert TRACEPARENT not in untraced.headers
