"""The clearing status consumer on a real RabbitMQ: several answers handed over at once, each
acked only once its own handler returned, a failed one dead-lettered."""

from __future__ import annotations

import asyncio

import pika
import pytest

from hub.clearing_outgoing import ClearingOutgoing
from tests.broker import delete_queues, own_name, with_dead_letters
from tests.routing.conftest import amqp_url, require_broker
from tests.support import on_event_loop


def _publish(url: str, queue: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for number, body in enumerate(bodies):
            channel.basic_publish(
                "", queue, body, pika.BasicProperties(message_id=f"st-{number}", delivery_mode=2)
            )
    finally:
        connection.close()


def _drain(url: str, queue: str, expected: int) -> list[bytes]:
    """The bodies on ``queue`` (taken off it), once ``expected`` of them are there."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        bodies: list[bytes] = []
        for _ in range(600):
            method, _properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                if len(bodies) >= expected:
                    return bodies
                connection.sleep(0.05)
                continue
            assert isinstance(body, bytes)
            bodies.append(body)
        raise AssertionError(f"{queue}: {len(bodies)} of {expected} messages")
    finally:
        connection.close()


async def _until(condition: asyncio.Event) -> None:
    await asyncio.wait_for(condition.wait(), 30)


def test_answers_are_handed_over_together_in_order_and_acked_after_their_handler() -> None:
    url = amqp_url()
    require_broker(url)
    outgoing, status = own_name("test.clr.out"), own_name("test.clr.st")

    @on_event_loop
    async def scenario() -> None:
        started: list[bytes] = []
        release = asyncio.Event()
        four_in = asyncio.Event()
        at_once = [0, 0]  # now, most

        async def on_status(document: bytes) -> int:
            started.append(document)
            at_once[0] += 1
            at_once[1] = max(at_once)
            if at_once[0] == 4:
                four_in.set()
            await release.wait()
            at_once[0] -= 1
            return 1

        clearing = ClearingOutgoing(
            url, asyncio.get_running_loop(), on_status, outgoing=outgoing, status=status, handlers=4
        )
        await asyncio.to_thread(clearing.start)
        try:
            bodies = [f"answer {number}".encode() for number in range(10)]
            await asyncio.to_thread(_publish, url, status, bodies)
            await _until(four_in)
            assert started == bodies[:4]
            assert clearing.reports == 0  # none acked while its handler runs
            release.set()
            while clearing.reports < len(bodies):
                await asyncio.sleep(0.05)
            assert started == bodies
            assert at_once[1] == 4
        finally:
            await asyncio.to_thread(clearing.stop)
            await asyncio.to_thread(delete_queues, url, with_dead_letters(outgoing, status))

    scenario()


def test_an_answer_whose_handler_fails_is_dead_lettered_and_the_others_acked() -> None:
    url = amqp_url()
    require_broker(url)
    outgoing, status = own_name("test.clr.out"), own_name("test.clr.st")

    @on_event_loop
    async def scenario() -> None:
        async def on_status(document: bytes) -> int:
            if document == b"bad":
                raise ValueError("no saga can take it")
            return 1

        clearing = ClearingOutgoing(
            url, asyncio.get_running_loop(), on_status, outgoing=outgoing, status=status, handlers=8
        )
        await asyncio.to_thread(clearing.start)
        try:
            await asyncio.to_thread(_publish, url, status, [b"good 1", b"bad", b"good 2"])
            assert await asyncio.to_thread(_drain, url, f"{status}.dlq", 1) == [b"bad"]
            while clearing.reports < 2:
                await asyncio.sleep(0.05)
            assert clearing.reports == 2
        finally:
            await asyncio.to_thread(clearing.stop)
            await asyncio.to_thread(delete_queues, url, with_dead_letters(outgoing, status))

    scenario()


def test_an_answer_whose_handler_is_cancelled_is_delivered_again() -> None:
    url = amqp_url()
    require_broker(url)
    outgoing, status = own_name("test.clr.out"), own_name("test.clr.st")

    @on_event_loop
    async def scenario() -> None:
        seen: list[bytes] = []
        done = asyncio.Event()

        async def on_status(document: bytes) -> int:
            seen.append(document)
            if len(seen) == 1:  # as when the hub stops under it
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                await asyncio.sleep(1)
            done.set()
            return 1

        clearing = ClearingOutgoing(
            url, asyncio.get_running_loop(), on_status, outgoing=outgoing, status=status, handlers=2
        )
        await asyncio.to_thread(clearing.start)
        try:
            await asyncio.to_thread(_publish, url, status, [b"answer"])
            await _until(done)
            while clearing.reports < 1:
                await asyncio.sleep(0.05)
            assert seen == [b"answer", b"answer"]
            assert await asyncio.to_thread(_drain, url, f"{status}.dlq", 0) == []
        finally:
            await asyncio.to_thread(clearing.stop)
            await asyncio.to_thread(delete_queues, url, with_dead_letters(outgoing, status))

    scenario()


def test_handlers_must_be_at_least_one() -> None:
    async def on_status(document: bytes) -> int:
        return 0

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="handlers"):
            ClearingOutgoing(amqp_url(), loop, on_status, handlers=0)
    finally:
        loop.close()
