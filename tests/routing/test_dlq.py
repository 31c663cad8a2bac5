"""Dead-letter tooling on both transports: filters, dry runs, limits, replay, purge."""

from __future__ import annotations

import datetime as dt

from canonical_model.messages import MessageKind
from routing.dlq import (
    DeadLetterFilter,
    list_dead_letters,
    purge_dead_letters,
    replay_dead_letters,
)
from routing.transport import DeadLetter, Delivery, Outcome, Transport, as_batch_handler
from tests.routing.conftest import Recorder, message, wait_until


def _park(transport: Transport, count: int) -> None:
    """Park m-0 .. m-(count-1) on core's dead-letter queue; reason = 'refused m-N'."""
    consumer = transport.consume(
        "core",
        as_batch_handler(lambda d: Outcome.dead_letter(f"refused {d.message.ids.message_id}")),
    )
    for number in range(count):
        transport.publish(
            message(number, MessageKind.AUTHORIZATION if number % 2 else MessageKind.FINANCIAL)
        )
    wait_until(lambda: len(transport.dead_letters("core")) == count, what="the dead letters")
    consumer.stop()


def ids(rows: list[DeadLetter]) -> list[str]:
    return sorted(d.message_id for d in rows)


def test_filters_pick_by_id_reason_kind_and_time(transport: Transport) -> None:
    _park(transport, 4)
    assert ids(list_dead_letters(transport, "core")) == ["m-0", "m-1", "m-2", "m-3"]
    assert ids(list_dead_letters(transport, "core", DeadLetterFilter(frozenset({"m-2"})))) == [
        "m-2"
    ]
    assert ids(
        list_dead_letters(transport, "core", DeadLetterFilter(reason_contains="REFUSED M-3"))
    ) == ["m-3"]
    assert ids(list_dead_letters(transport, "core", DeadLetterFilter(kind="authorization"))) == [
        "m-1",
        "m-3",
    ]
    assert ids(list_dead_letters(transport, "core", DeadLetterFilter(tenant="other"))) == []
    assert ids(
        list_dead_letters(transport, "core", DeadLetterFilter(routing_key="financial.request.acme"))
    ) == ["m-0", "m-2"]
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert list_dead_letters(transport, "core", DeadLetterFilter(since=future)) == []
    assert len(list_dead_letters(transport, "core", DeadLetterFilter(before=future))) == 4
    assert len(list_dead_letters(transport, "core", limit=3)) == 3


def test_dry_runs_change_nothing(transport: Transport) -> None:
    _park(transport, 3)
    would = replay_dead_letters(transport, "core", DeadLetterFilter(kind="financial"), dry_run=True)
    assert sorted(d.message_id for d in would) == ["m-0", "m-2"]
    assert len(purge_dead_letters(transport, "core", dry_run=True)) == 3
    assert len(transport.dead_letters("core")) == 3


def test_replay_with_a_limit_replays_that_many_once(transport: Transport) -> None:
    _park(transport, 3)
    seen = Recorder()

    def ack(delivery: Delivery) -> Outcome:
        seen.add(delivery.message.ids.message_id)
        return Outcome.ack()

    replayed = replay_dead_letters(transport, "core", limit=2)
    assert len(replayed) == 2
    consumer = transport.consume("core", as_batch_handler(ack))
    wait_until(lambda: len(seen) == 2, what="the replays")
    consumer.stop()
    assert sorted(seen.snapshot()) == sorted(d.message_id for d in replayed)  # type: ignore[type-var]
    assert len(transport.dead_letters("core")) == 1


def test_purge_deletes_the_picked_ones_only(transport: Transport) -> None:
    _park(transport, 3)
    purged = purge_dead_letters(transport, "core", DeadLetterFilter(frozenset({"m-1"})))
    assert [d.message_id for d in purged] == ["m-1"]
    assert sorted(d.message_id for d in transport.dead_letters("core")) == ["m-0", "m-2"]


def test_replaying_an_unroutable_message_parks_it_again(transport: Transport) -> None:
    transport.publish(message(1), "nobody.listens")
    replayed = replay_dead_letters(transport, "unroutable")
    assert [d.message_id for d in replayed] == ["m-1"]
    (again,) = transport.dead_letters("unroutable")
    assert again.original_routing_key == "nobody.listens"
    assert again.envelope.headers["x-isobridge-replayed"] == 1
