"""Outbound connectors: a pool of TCP connections to one destination (the mainframe, an
upstream ISO 8583 host) that speaks request / reply records.

A :class:`RecordConnector` keeps ``connections`` TCP connections open, each with its own
reader task; requests are pipelined (sent without waiting for earlier replies) and spread
over the connected ones round-robin, a burst at a time: the requests that reach the
connector in one turn of the event loop go out on one connection in one write (under load,
one system call and one wake-up of the destination for a burst, not one per request). A
reply is matched to its request by a key both carry (:attr:`ConnectorSettings.request_key` /
``reply_key``: for the core banking interface, the posting reference), so the destination
may answer in any order.

Failures are the caller's to act on, never silent:

- :class:`DestinationUnavailableError`: the circuit breaker is open, or no connection is up. The
  request was **not** sent (an ISO 8583 edge answers ``91`` at once).
- :class:`DestinationTimeoutError`: sent, but no reply within ``timeout``. The outcome is
  unknown: a posting may have been applied (the hub stores a reversal, ISO 8583 0420
  semantics, and forwards it until acknowledged).
- :class:`ConnectionLostError`: the connection dropped with the request unanswered; unknown
  outcome, as for a timeout.

Timeouts and lost connections count as failures of the breaker (:mod:`hub.breaker`);
replies as successes. A dropped connection is reconnected in the background with
exponential backoff (``backoff_initial`` doubling to ``backoff_max``, with jitter), so a
dead core costs one refused request per breaker period, not a pile-up of waiting ones.

With ``tls`` (a :func:`hub.tls.client_context`), every connection is mutual TLS 1.3: the
destination's certificate must chain to the configured CA and match ``server_name`` (default
``host``), and the hub presents its own. A link counts as up only once the destination has
accepted the hub's certificate (:func:`hub.tls.await_acceptance`), so no request is sent on a
connection about to be refused. A refused handshake, either way, is logged as a warning
naming the destination and the reason (expired, self-signed, wrong CA, TLS 1.2 or older),
counted (``ConnectorStats.tls_refused``) and retried with the backoff; there is no fallback to
plain TCP. :meth:`RecordConnector.use_tls_context` swaps the context for new connections (a
certificate reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from adapters.framing import FrameDecoder, Framer, FramingError
from hub.breaker import CircuitBreaker
from hub.tls import TlsRefusedError, await_acceptance, refusal_reason

__all__ = [
    "ConnectionLostError",
    "ConnectorError",
    "ConnectorSettings",
    "ConnectorStats",
    "DestinationTimeoutError",
    "DestinationUnavailableError",
    "RecordConnector",
]

_log = logging.getLogger("isobridge.connector")


class ConnectorError(Exception):
    """A request that got no reply; see the subclasses for whether it was sent."""

    def __init__(self, destination: str, reason: str) -> None:
        self.destination = destination
        self.reason = reason
        super().__init__(f"{destination}: {reason}")


class DestinationUnavailableError(ConnectorError):
    """Not sent: the breaker is open or no connection is up."""


class DestinationTimeoutError(ConnectorError):
    """Sent, no reply in time: the outcome is unknown."""


class ConnectionLostError(ConnectorError):
    """Sent, then the connection dropped before the reply: the outcome is unknown."""


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """One destination. ``request_header`` goes before each request (a CICS transaction id)."""

    name: str
    host: str
    port: int
    request_framer: Framer
    reply_framer: Framer
    request_key: Callable[[bytes], bytes]
    reply_key: Callable[[bytes], bytes]
    request_header: bytes = b""
    connections: int = 4
    timeout: float = 5.0
    connect_timeout: float = 2.0
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    tls: ssl.SSLContext | None = None
    server_name: str | None = None  # checked against the certificate; default: host


@dataclass(slots=True)
class ConnectorStats:
    """Counters of one connector (``writes``: how many writes carried the ``sent``
    requests)."""

    sent: int = 0
    writes: int = 0
    replies: int = 0
    timeouts: int = 0
    lost: int = 0
    refused: int = 0
    unmatched_replies: int = 0
    connects: int = 0
    connect_failures: int = 0
    tls_refused: int = 0


class RecordConnector:
    """See the module docstring. Use as ``async with RecordConnector(...) as connector``."""

    def __init__(self, settings: ConnectorSettings, breaker: CircuitBreaker) -> None:
        self.settings = settings
        self.breaker = breaker
        self.stats = ConnectorStats()
        self._links = [_Link(self, number) for number in range(settings.connections)]
        self._next = itertools.cycle(range(settings.connections))
        self._gathering: _Link | None = None
        self._closed = False
        self.tls_context: ssl.SSLContext | None = settings.tls

    @property
    def connected(self) -> int:
        """How many connections are up."""
        return sum(1 for link in self._links if link.up)

    async def start(self) -> None:
        """Start connecting every link (in the background: a destination that is down at
        start-up is retried, not an error)."""
        for link in self._links:
            link.start()

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` connections are up (tests, start-up checks)."""
        async with asyncio.timeout(timeout):
            while self.connected < count:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close every connection; unanswered requests fail with :class:`ConnectionLostError`."""
        self._closed = True
        await asyncio.gather(*(link.close() for link in self._links))

    async def __aenter__(self) -> RecordConnector:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def request(self, payload: bytes) -> bytes:
        """Send ``payload`` and return its reply. Raises a :class:`ConnectorError`."""
        name = self.settings.name
        if not self.breaker.allow():
            self.stats.refused += 1
            raise DestinationUnavailableError(name, "circuit breaker open")
        key = self.settings.request_key(payload)
        link = self._pick(key)
        if link is None:
            self.stats.refused += 1
            self.breaker.record_failure()
            raise DestinationUnavailableError(name, "no connection")
        try:
            reply = await link.exchange(payload, key)
        except ConnectorError:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return reply

    def use_tls_context(self, context: ssl.SSLContext) -> None:
        """Connect with ``context`` from now on (open connections carry on)."""
        if self.tls_context is None:
            raise RuntimeError(f"{self.settings.name}: this connector does not use TLS")
        self.tls_context = context
        _log.info("%s: TLS certificates reloaded", self.settings.name)

    def _pick(self, key: bytes) -> _Link | None:
        # A link already gathering this turn's burst takes the request too (the burst is one
        # write, and one wake-up of the destination, not one per link), unless a request
        # with the same key (a repeat) is in flight on it.
        gathering = self._gathering
        if (
            gathering is not None
            and gathering.up
            and gathering.outbox
            and key not in gathering.pending
        ):
            return gathering
        for _ in range(len(self._links)):
            link = self._links[next(self._next)]
            if link.up:
                self._gathering = link
                return link
        return None


def _fail_late(future: asyncio.Future[bytes]) -> None:
    """The destination did not answer in time: the request's future fails (if pending)."""
    if not future.done():
        future.set_exception(TimeoutError())


class _Link:
    """One TCP connection of a connector, its reader task and its reconnect loop."""

    def __init__(self, connector: RecordConnector, number: int) -> None:
        self.connector = connector
        self.number = number
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[bytes, asyncio.Future[bytes]] = {}
        self.task: asyncio.Task[None] | None = None
        self.up = False
        self.outbox: list[bytes] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time.
        self.loop = asyncio.get_running_loop()
        self.task = self.loop.create_task(self._run(), name=f"connector-{self.number}")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def exchange(self, payload: bytes, key: bytes) -> bytes:
        settings = self.connector.settings
        stats = self.connector.stats
        writer = self.writer
        if writer is None or not self.up:
            raise DestinationUnavailableError(settings.name, "no connection")
        if key in self.pending:
            raise DestinationUnavailableError(settings.name, "a request with this key is in flight")
        loop = self.loop or asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self.pending[key] = future
        deadline = loop.time() + settings.timeout
        # A timer on the reply's future, not a timeout scope around the whole exchange: the
        # loop's own code, a third of the cost per request.
        timer = loop.call_at(deadline, _fail_late, future)
        try:
            await self._send(
                writer, settings.request_framer.frame(payload, header=settings.request_header)
            )
            stats.sent += 1
            if writer.transport.get_write_buffer_size():
                async with asyncio.timeout_at(deadline):  # a stuck peer holds the drain
                    await writer.drain()
            reply = await future
        except TimeoutError:
            stats.timeouts += 1
            raise DestinationTimeoutError(
                settings.name, f"no reply within {settings.timeout:g} s"
            ) from None
        except ConnectionError as exc:
            stats.lost += 1
            raise ConnectionLostError(settings.name, f"connection lost: {exc}") from None
        finally:
            timer.cancel()
            self.pending.pop(key, None)
        stats.replies += 1
        return reply

    async def _send(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        """Write ``frame`` together with the frames of the requests that reach here in the
        same turn of the event loop: the first waits one turn, then writes them all at
        once (one system call, and one wake-up of the destination, for a burst)."""
        self.outbox.append(frame)
        if len(self.outbox) > 1:
            return
        try:
            await asyncio.sleep(0)
        finally:  # even when this request is cancelled, the others' frames go out
            frames, self.outbox = self.outbox, []
            written = self.writer is writer
            if written:
                writer.write(b"".join(frames))
                self.connector.stats.writes += 1
        if not written:  # the connection dropped meanwhile: its requests failed with it
            raise ConnectionResetError("connection closed")

    async def _run(self) -> None:
        settings = self.connector.settings
        delay = settings.backoff_initial
        while not self.connector._closed:
            try:
                reader, writer = await self._connect()
            except (OSError, TimeoutError) as exc:
                self.connector.stats.connect_failures += 1
                if isinstance(exc, ssl.SSLError | TlsRefusedError):
                    self.connector.stats.tls_refused += 1
                    _log.warning(
                        "%s: TLS handshake refused: %s; retry in %.2f s",
                        settings.name,
                        exc if isinstance(exc, TlsRefusedError) else refusal_reason(exc),
                        delay,
                    )
                else:
                    _log.info("%s: connect failed (%s); retry in %.2f s", settings.name, exc, delay)
                # jitter spreads reconnects; nothing secret depends on it
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311
                delay = min(delay * 2, settings.backoff_max)
                continue
            self.connector.stats.connects += 1
            delay = settings.backoff_initial
            self.writer, self.up = writer, True
            try:
                await self._read(reader)
            finally:
                self.up = False
                self.writer = None
                self._fail_pending("connection closed")
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if not self.connector._closed:
                # jitter spreads reconnects; nothing secret depends on it
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection, TLS-accepted by the destination when TLS is configured."""
        settings = self.connector.settings
        context = self.connector.tls_context
        async with asyncio.timeout(settings.connect_timeout):
            if context is None:
                return await asyncio.open_connection(settings.host, settings.port)
            reader, writer = await asyncio.open_connection(
                settings.host,
                settings.port,
                ssl=context,
                server_hostname=settings.server_name or settings.host,
                ssl_handshake_timeout=settings.connect_timeout,
            )
        try:
            await await_acceptance(reader, writer, settings.connect_timeout)
        except BaseException:  # refused, or the connector closing meanwhile
            writer.close()
            raise
        return reader, writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        settings = self.connector.settings
        decoder = FrameDecoder(settings.reply_framer)
        while True:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError) as exc:
                _log.info("%s: connection %d lost: %s", settings.name, self.number, exc)
                return
            if not data:
                _log.info("%s: connection %d closed by the peer", settings.name, self.number)
                return
            try:
                frames = decoder.feed(data)
            except FramingError as exc:
                _log.warning("%s: bad reply framing (%s); reconnecting", settings.name, exc)
                return
            for frame in frames:
                self._deliver(frame.payload)

    def _deliver(self, reply: bytes) -> None:
        settings = self.connector.settings
        try:
            key = settings.reply_key(reply)
        except ValueError:
            key = b""
        future = self.pending.get(key)
        if future is None or future.done():
            # A reply after its request timed out, or garbage: logged, never matched wrongly.
            self.connector.stats.unmatched_replies += 1
            _log.warning("%s: reply matches no request in flight", settings.name)
            return
        future.set_result(reply)

    def _fail_pending(self, reason: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionResetError(reason))
        self.pending.clear()
