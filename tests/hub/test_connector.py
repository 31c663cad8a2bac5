"""The outbound record connector against real TCP servers written here for the purpose."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.framing import FixedRecordFramer, Framer, get_framer
from hub.breaker import CircuitBreaker
from hub.connector import (
    ConnectionLostError,
    ConnectorSettings,
    DestinationTimeoutError,
    DestinationUnavailableError,
    RecordConnector,
)
from hub.tls import client_context, refusal_reason, server_context, start_tls_server
from tests.hub.tls_support import LOOPS, make_pki, run_on
from tests.support import on_event_loop

Responder = Callable[[bytes], Awaitable[bytes | None]]


async def _echo_upper(record: bytes) -> bytes | None:
    return record.upper()


class Destination:
    """A TCP server answering each record through ``responder`` (None: no answer)."""

    def __init__(self, responder: Responder, framer: Framer, reply_framer: Framer) -> None:
        self.responder = responder
        self.framer = framer
        self.reply_framer = reply_framer
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.received: list[bytes] = []
        self.connection_of: dict[bytes, int] = {}  # record -> the connection it came on
        self.refused: list[str] = []

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        if tls is None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        else:
            self.server = await start_tls_server(
                self._serve,
                "127.0.0.1",
                port,
                context=lambda: tls,
                refused=lambda peer, error: self.refused.append(refusal_reason(error)),
            )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from adapters.framing import FrameDecoder

        self.writers.append(writer)
        connection = len(self.writers)
        decoder = FrameDecoder(self.framer)
        tasks: set[asyncio.Task[None]] = set()

        async def answer(record: bytes) -> None:
            reply = await self.responder(record)
            if reply is not None and not writer.is_closing():
                writer.write(self.reply_framer.frame(reply))

        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    self.received.append(frame.payload)
                    self.connection_of[frame.payload] = connection
                    task = asyncio.create_task(answer(frame.payload))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        for task in list(tasks):
            task.cancel()
        writer.close()


def _key(record: bytes) -> bytes:
    return record[:4].upper()


def _settings(port: int, **overrides: object) -> ConnectorSettings:
    framer = get_framer("len2-binary")
    values: dict[str, object] = {
        "name": "core",
        "host": "127.0.0.1",
        "port": port,
        "request_framer": framer,
        "reply_framer": framer,
        "request_key": _key,
        "reply_key": _key,
        "connections": 2,
        "timeout": 2.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    values.update(overrides)
    return ConnectorSettings(**values)  # type: ignore[arg-type]


def _breaker(threshold: int = 3, reset_after: float = 60.0) -> CircuitBreaker:
    return CircuitBreaker("core", failure_threshold=threshold, reset_after=reset_after)


@on_event_loop
async def test_pipelined_requests_are_matched_by_key_whatever_the_order() -> None:
    async def reverse_order(record: bytes) -> bytes:
        await asyncio.sleep(0.001 * (50 - int(record[:4])))  # later requests answer first
        return record.upper()

    framer = get_framer("len2-binary")
    destination = Destination(reverse_order, framer, framer)
    await destination.start()
    async with RecordConnector(_settings(destination.port), _breaker()) as connector:
        await connector.wait_connected(2)
        records = [f"{n:04d}-rec-{n}".encode() for n in range(50)]
        replies = await asyncio.gather(*(connector.request(r) for r in records))
    await destination.stop()
    assert replies == [r.upper() for r in records]
    assert connector.stats.replies == 50


@on_event_loop
async def test_no_reply_in_time_is_a_timeout_and_a_late_reply_is_not_misdelivered() -> None:
    release = asyncio.Event()

    async def late(record: bytes) -> bytes:
        await release.wait()
        return record.upper()

    framer = get_framer("len2-binary")
    destination = Destination(late, framer, framer)
    await destination.start()
    async with RecordConnector(_settings(destination.port, timeout=0.1), _breaker()) as connector:
        await connector.wait_connected(2)
        with pytest.raises(DestinationTimeoutError, match=r"no reply within 0\.1 s"):
            await connector.request(b"0001-late")
        release.set()
        while connector.stats.unmatched_replies == 0:
            await asyncio.sleep(0.01)
    await destination.stop()
    assert connector.stats.timeouts == 1


@on_event_loop
async def test_breaker_opens_and_requests_are_refused_unsent() -> None:
    async def silent(record: bytes) -> None:
        return None

    framer = get_framer("len2-binary")
    destination = Destination(silent, framer, framer)
    await destination.start()
    settings = _settings(destination.port, timeout=0.05)
    async with RecordConnector(settings, _breaker(threshold=2)) as connector:
        await connector.wait_connected(2)
        for number in range(2):
            with pytest.raises(DestinationTimeoutError):
                await connector.request(f"{number:04d}".encode())
        with pytest.raises(DestinationUnavailableError, match="circuit breaker open"):
            await connector.request(b"0009")
    await destination.stop()
    assert len(destination.received) == 2
    assert connector.stats.refused == 1


@on_event_loop
async def test_a_destination_down_at_start_is_reached_when_it_comes_up() -> None:
    framer = get_framer("len2-binary")
    probe = Destination(_echo_upper, framer, framer)
    await probe.start()
    port = probe.port
    await probe.stop()  # a port that was free a moment ago: nothing listens now
    async with RecordConnector(_settings(port), _breaker(threshold=100)) as connector:
        with pytest.raises(DestinationUnavailableError, match="no connection"):
            await connector.request(b"0001")
        while connector.stats.connect_failures < 2:
            await asyncio.sleep(0.01)
        destination = Destination(_echo_upper, framer, framer)
        await destination.start(port)
        await connector.wait_connected(1)
        assert await connector.request(b"0002-up") == b"0002-UP"
    await destination.stop()


@on_event_loop
async def test_a_dropped_connection_fails_its_requests_and_is_reconnected() -> None:
    framer = get_framer("len2-binary")
    hold = asyncio.Event()

    async def drop_on_request(record: bytes) -> bytes | None:
        if record.startswith(b"0001"):
            for writer in destination.writers:
                writer.close()
            return None
        await hold.wait()
        return record.upper()

    destination = Destination(drop_on_request, framer, framer)
    await destination.start()
    async with RecordConnector(
        _settings(destination.port, connections=1), _breaker(threshold=100)
    ) as connector:
        await connector.wait_connected(1)
        with pytest.raises(ConnectionLostError):
            await connector.request(b"0001-drop")
        hold.set()
        await connector.wait_connected(1)
        assert await connector.request(b"0002-again") == b"0002-AGAIN"
    await destination.stop()
    assert connector.stats.connects == 2


@on_event_loop
async def test_cics_framing_transaction_id_then_bare_record_back() -> None:
    request_framer = FixedRecordFramer(8, header_size=4)
    reply_framer = FixedRecordFramer(8)
    destination = Destination(_echo_upper, request_framer, reply_framer)
    await destination.start()
    settings = _settings(
        destination.port,
        request_framer=request_framer,
        reply_framer=reply_framer,
        request_header=b"CBRQ",
    )
    async with RecordConnector(settings, _breaker()) as connector:
        await connector.wait_connected(2)
        assert await connector.request(b"0001abcd") == b"0001ABCD"
    await destination.stop()


@on_event_loop
async def test_requests_of_one_turn_of_the_loop_go_out_in_one_write() -> None:
    framer = get_framer("len2-binary")
    destination = Destination(_echo_upper, framer, framer)
    await destination.start()
    async with RecordConnector(_settings(destination.port, connections=1), _breaker()) as connector:
        await connector.wait_connected(1)
        records = [f"{n:04d}-rec".encode() for n in range(10)]
        replies = await asyncio.gather(*(connector.request(r) for r in records))
    await destination.stop()
    assert replies == [r.upper() for r in records]
    assert (connector.stats.sent, connector.stats.writes) == (10, 1)
    assert destination.received == records


@on_event_loop
async def test_a_burst_goes_out_on_one_connection_the_next_burst_on_the_next() -> None:
    framer = get_framer("len2-binary")
    destination = Destination(_echo_upper, framer, framer)
    await destination.start()
    async with RecordConnector(_settings(destination.port, connections=4), _breaker()) as connector:
        await connector.wait_connected(4)
        first = [f"{n:04d}-one".encode() for n in range(8)]
        assert await asyncio.gather(*(connector.request(r) for r in first)) == [
            r.upper() for r in first
        ]
        assert (connector.stats.sent, connector.stats.writes) == (8, 1)
        second = [f"{n:04d}-two".encode() for n in range(8)]
        assert await asyncio.gather(*(connector.request(r) for r in second)) == [
            r.upper() for r in second
        ]
        assert (connector.stats.sent, connector.stats.writes) == (16, 2)
    await destination.stop()
    assert sorted(destination.received) == sorted(first + second)
    on = destination.connection_of
    assert len({on[r] for r in first}) == len({on[r] for r in second}) == 1
    assert on[first[0]] != on[second[0]]


@on_event_loop
async def test_a_request_cancelled_while_its_burst_waits_still_sends_the_others() -> None:
    framer = get_framer("len2-binary")
    destination = Destination(_echo_upper, framer, framer)
    await destination.start()
    async with RecordConnector(_settings(destination.port, connections=1), _breaker()) as connector:
        await connector.wait_connected(1)
        records = [f"{n:04d}-rec".encode() for n in range(5)]
        tasks = [asyncio.create_task(connector.request(r)) for r in records]
        await asyncio.sleep(0)  # every request is queued; the first waits to write them all
        tasks[0].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
    await destination.stop()
    assert isinstance(done[0], asyncio.CancelledError)
    assert done[1:] == [r.upper() for r in records[1:]]
    assert destination.received == records


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("certificate", ["client", "expired_client"])
def test_mutual_tls_links_on_each_event_loop(tmp_path: Path, loop: str, certificate: str) -> None:
    pki = make_pki(tmp_path)
    files = getattr(pki, certificate)
    framer = get_framer("len2-binary")
    destination = Destination(_echo_upper, framer, framer)
    tls = client_context(pki.ca.cert, files.cert, files.key)

    async def scenario() -> None:
        await destination.start(tls=server_context(pki.server.cert, pki.server.key, pki.ca.cert))
        settings = _settings(destination.port, tls=tls, server_name="localhost")
        async with RecordConnector(settings, _breaker()) as connector:
            if certificate == "client":
                await connector.wait_connected(2)
                assert await connector.request(b"abcd-one") == b"ABCD-ONE"
            else:
                async with asyncio.timeout(10):
                    while connector.stats.tls_refused < 2:
                        await asyncio.sleep(0.01)
                assert connector.connected == 0
                with pytest.raises(DestinationUnavailableError, match="no connection"):
                    await connector.request(b"abcd-two")
        await destination.stop()
        if certificate == "client":
            assert destination.refused == []
        else:
            assert destination.refused[0] == "certificate refused: certificate has expired"
            assert destination.received == []  # nothing reached the destination

    run_on(loop, scenario)
