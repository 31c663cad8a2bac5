"""The ISO 8583 acquirer edge: an asyncio TCP server that card switches and terminals call.

One listener speaks one framing (:mod:`adapters.framing`: ``len2-binary``, ``len4-binary``,
``len4-ascii``, ``len2-bcd``, ``len2-tpdu``) and one ISO 8583 variant (an adapter spec such
as ``iso8583:ebcdic-cp037``). For each frame it reads:

1. the adapter decodes it into a canonical message (the PAN tokenized on the way in);
2. a network management request (0800 sign-on, sign-off, echo, ...) is answered at the
   edge with 0810 / ``00``;
3. any other request goes to the :class:`RequestHandler` (the router, in the running hub);
   its reply is encoded and written back on the connection the request came from, framed
   like the request (a TPDU header answered with its addresses swapped). Replies go out as
   they complete, so a slow request does not hold up the ones behind it; the switch
   matches them by MTI class, field 41 and field 11.

Bounded by design (:class:`EdgeSettings`):

- ``max_message_size``: a frame announcing more is refused as soon as its length prefix
  arrives, before its bytes are buffered; the connection is closed.
- ``in_flight_per_connection``: when that many requests of one connection are unanswered,
  the edge stops reading from it (TCP backpressure) until one is answered.
- ``max_connections``: further connections are closed at once.
- ``idle_timeout``: a connection that sends nothing (not even a keep-alive) for that long is
  closed, which also bounds slow-loris clients; a zero-length frame is a keep-alive and is
  echoed.
- ``request_timeout``: a request whose handler has not answered by then is answered with
  ``91`` (issuer or switch inoperative); a handler that fails answers ``96``.
- ``tls``: an :class:`ssl.SSLContext` (:func:`hub.tls.server_context`: TLS 1.3 only, with
  ``verify_mode = CERT_REQUIRED`` for client certificates) turns the listener into TLS. The
  handshake runs in the connection's own task, so a refused one (expired, self-signed or
  wrong-CA certificate, none at all, TLS 1.2 or older) is logged with the peer and the reason
  (:func:`hub.tls.refusal_reason`) and counted (``EdgeStats.tls_refused``), on asyncio's
  loop and on uvloop (:func:`hub.tls.start_tls_server`).
  :meth:`Iso8583Edge.use_tls_context` swaps in a context rebuilt from the files, and
  :meth:`Iso8583Edge.reload_certificate` loads a new certificate into the current one, both
  without a restart (``isobridge run`` does it on SIGHUP and when the files change).

Card numbers: the adapter tokenizes the PAN of each request through the vault; the reply
echoes the request's PAN from the edge's memory of that one request (held while it is in
flight, as its bytes were), not by detokenizing through the vault, which would cost an
audited database write per reply. A reply carrying any other token is detokenized through
the vault, audited, as usual.

An :class:`EdgeObserver` (metrics, ``observability.metrics``) is told of connections opened
and closed, of each request as it starts and, when its reply is written, how long it took.

Bad input: a frame the adapter cannot decode is answered with the adapter's reject (field 39
``30``, format error) when its MTI is readable; otherwise, and on a framing error, the
connection is closed and the event logged, with the offset and reason only (never payload
bytes, so never a card number). Every other connection carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.trace import Span

from adapters.base import (
    Adapter,
    AdapterDecodeError,
    AdapterEncodeError,
    DecodeContext,
    EncodeContext,
    PanDetokenizer,
    PanTokenizer,
)
from adapters.framing import Frame, FrameDecoder, Framer, FramingError, get_framer, tpdu_reply
from canonical_model.codes import status_from_iso8583
from canonical_model.construct import fast_replacer
from canonical_model.messages import CanonicalMessage, MessageKind
from canonical_model.pan import PanToken, random_hex_id
from canonical_model.replies import reply_to
from hub.deadlines import Deadlines
from hub.tls import describe_peer_certificate, refusal_reason, start_tls_server
from observability.logs import bind, bind_message
from observability.tracing import Tracing

__all__ = [
    "EdgeObserver",
    "EdgeSettings",
    "EdgeStats",
    "Iso8583Edge",
    "RequestHandler",
]

_log = logging.getLogger("isobridge.edge")

# dataclasses.replace, faster (see canonical_model.construct): two per request.
_replace_decode_context = fast_replacer(DecodeContext)
_replace_encode_context = fast_replacer(EncodeContext)

APPROVED = "00"
ISSUER_INOPERATIVE = "91"
SYSTEM_MALFUNCTION = "96"


class RequestHandler(Protocol):
    """Where the edge sends a decoded request; returns the reply to write back."""

    def __call__(self, request: CanonicalMessage, /) -> Awaitable[CanonicalMessage]: ...


class EdgeObserver(Protocol):
    """Told what an edge does (metrics); called on the edge's event loop, must be quick."""

    def connection_opened(self) -> None: ...

    def connection_closed(self) -> None: ...

    def request_started(self) -> None: ...

    def request_finished(self, replied_after: float | None) -> None:
        """The request is done: replied after that many seconds, or None (no reply: the
        connection was closed on bad input, or the message was ignored)."""


class _Unobserved:
    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def request_started(self) -> None:
        pass

    def request_finished(self, replied_after: float | None) -> None:
        pass


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """One listener. See the module docstring for what each bound does."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see Iso8583Edge.port)
    framing: str = "len2-binary"
    tenant: str = "default"
    max_message_size: int = 8192
    in_flight_per_connection: int = 64
    max_connections: int = 1024
    idle_timeout: float = 300.0
    request_timeout: float = 30.0
    tls: ssl.SSLContext | None = None
    # Several processes listen on the same port (SO_REUSEPORT); the kernel spreads the
    # connections over them (``[hub] workers``).
    reuse_port: bool = False

    def __post_init__(self) -> None:
        for name in ("max_message_size", "in_flight_per_connection", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("idle_timeout", "request_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(slots=True)
class EdgeStats:
    """Counters of one edge, for metrics and the demo's summary."""

    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    requests: int = 0
    answered_at_edge: int = 0
    replies: int = 0
    format_errors: int = 0
    timeouts: int = 0
    handler_errors: int = 0
    closed_on_bad_input: int = 0
    closed_idle: int = 0
    tls_refused: int = 0
    # seconds from request in to reply out, the most recent ones (bounded)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


class Iso8583Edge:
    """An ISO 8583 TCP listener. See the module docstring.

    ``decode_context`` and ``encode_context`` come from the composition root (they hold the
    vault); ``clock`` and ``new_message_id`` are injectable for tests.
    """

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        adapter: Adapter,
        decode_context: DecodeContext,
        encode_context: EncodeContext,
        handler: RequestHandler,
        now: Callable[[], dt.datetime] | None = None,
        new_message_id: Callable[[], str] | None = None,
        observer: EdgeObserver | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.adapter = adapter
        self.tracing = tracing or Tracing.disabled()
        self.stats = EdgeStats()
        self.observer: EdgeObserver = observer or _Unobserved()
        self._framer: Framer = get_framer(settings.framing, max_payload=settings.max_message_size)
        self._decode_context = decode_context
        self._encode_context = encode_context
        self._handler = handler
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._new_message_id = new_message_id or random_hex_id
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.tls_context: ssl.SSLContext | None = settings.tls
        # Set by start(), on its loop: one timer each for every read's idle timeout and
        # every request's timeout (hub.deadlines; not a timeout scope each).
        self._idle_deadlines: Deadlines | None = None
        self._request_deadlines: Deadlines | None = None

    @property
    def port(self) -> int:
        """The port the listener is bound to (useful with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the edge is not listening")
        return self._port

    def reload_certificate(self, cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> None:
        """Load a new certificate and key into the listener's TLS context: connections
        accepted from now on present it, open ones carry on (no restart, no drop)."""
        if self.tls_context is None:
            raise RuntimeError("this listener does not use TLS")
        self.tls_context.load_cert_chain(cert, key)
        _log.info("ISO 8583 edge on port %d: certificate reloaded from %s", self.port, cert)

    def use_tls_context(self, context: ssl.SSLContext) -> None:
        """Handshake new connections with ``context`` (rebuilt from the certificate, key and
        client CA files); open connections carry on."""
        if self.tls_context is None:
            raise RuntimeError("this listener does not use TLS")
        self.tls_context = context
        _log.info("ISO 8583 edge on port %d: TLS certificates reloaded", self.port)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._idle_deadlines = Deadlines(loop, self.settings.idle_timeout)
        self._request_deadlines = Deadlines(loop, self.settings.request_timeout)
        if self.tls_context is not None:
            self._server = await start_tls_server(
                self._accept,
                self.settings.host,
                self.settings.port,
                context=self._current_tls_context,
                refused=self._tls_refused,
                handshake_timeout=min(self.settings.idle_timeout, 30.0),
                reuse_port=self.settings.reuse_port or None,
            )
        else:
            self._server = await asyncio.start_server(
                self._accept,
                self.settings.host,
                self.settings.port,
                reuse_port=self.settings.reuse_port or None,
            )
        self._port = int(self._server.sockets[0].getsockname()[1])
        _log.info(
            "ISO 8583 edge listening on %s:%d (%s, %s)",
            self.settings.host,
            self.port,
            self.settings.framing,
            self.adapter.variant,
        )

    async def close(self) -> None:
        """Stop accepting, close every connection, wait for them to finish."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            self._port = None

    async def __aenter__(self) -> Iso8583Edge:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- one connection -------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("internal error: expected task is not None")
        peer = _peer(writer)
        if self.stats.connections_open >= self.settings.max_connections:
            self.stats.connections_refused += 1
            _log.warning("refusing connection from %s: %d open", peer, self.stats.connections_open)
            await _close(writer)
            return
        if self.tls_context is not None:
            _log.info(
                "ISO 8583 edge on port %d: TLS connection from %s (%s)",
                self.port,
                peer,
                describe_peer_certificate(writer.get_extra_info("ssl_object")),
            )
        self._connections.add(task)
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        self.observer.connection_opened()
        try:
            # Log lines of this connection name its tenant, even before a message decodes.
            with bind(tenant=self.settings.tenant):
                await _Connection(self, reader, writer, peer).run()
        except asyncio.CancelledError:
            pass  # the edge is closing: end this connection quietly
        finally:
            self.stats.connections_open -= 1
            self.observer.connection_closed()
            self._connections.discard(task)
            await _close(writer)

    def _current_tls_context(self) -> ssl.SSLContext:
        if self.tls_context is None:
            raise RuntimeError("this listener does not use TLS")
        return self.tls_context

    def _tls_refused(self, peer: str, error: BaseException) -> None:
        self.stats.tls_refused += 1
        _log.warning(
            "ISO 8583 edge on port %d: TLS handshake with %s refused: %s",
            self.port,
            peer,
            refusal_reason(error),
        )

    async def answer(self, request: CanonicalMessage) -> CanonicalMessage:
        """The reply to one decoded request: at the edge, from the handler, or 91 / 96."""
        if request.kind is MessageKind.NETWORK_MANAGEMENT:
            self.stats.answered_at_edge += 1
            return self._reply(request, APPROVED)
        deadlines = self._request_deadlines
        if deadlines is None:
            raise RuntimeError("the edge is not started")
        deadline = deadlines.arm()
        try:
            return await self._handler(request)
        except asyncio.CancelledError:
            if not deadlines.expired(deadline):
                raise
            self.stats.timeouts += 1
            return self._reply(request, ISSUER_INOPERATIVE)
        except TimeoutError:
            self.stats.timeouts += 1
            return self._reply(request, ISSUER_INOPERATIVE)
        except Exception:
            self.stats.handler_errors += 1
            _log.exception("request handler failed (message %s)", request.ids.message_id)
            return self._reply(request, SYSTEM_MALFUNCTION)
        finally:
            deadlines.disarm(deadline)

    def _reply(self, request: CanonicalMessage, response_code: str) -> CanonicalMessage:
        return reply_to(
            request,
            status_from_iso8583(response_code),
            message_id=self._new_message_id(),
            transmitted_at=self._now(),
        )


class _Connection:
    """The read loop of one connection, and the tasks of its requests in flight."""

    def __init__(
        self,
        edge: Iso8583Edge,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.edge = edge
        self.reader = reader
        self.writer = writer
        self.peer = peer
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time.
        self.loop = asyncio.get_running_loop()
        self.decoder = FrameDecoder(edge._framer)
        self.slots = asyncio.Semaphore(edge.settings.in_flight_per_connection)
        self.requests: set[asyncio.Task[None]] = set()
        self.closing = False
        # Replies that completed in this turn of the event loop, written together at its end.
        self._outgoing: list[bytes] | None = None

    async def run(self) -> None:
        deadlines = self.edge._idle_deadlines
        if deadlines is None:
            raise RuntimeError("the edge is not started")
        try:
            while not self.closing:
                # Not wait_for: no task of its own per read, and the read's data reaches
                # this loop one turn of the event loop sooner.
                deadline = deadlines.arm()
                try:
                    data = await self.reader.read(65536)
                except asyncio.CancelledError:
                    if not deadlines.expired(deadline):
                        raise
                    self.edge.stats.closed_idle += 1
                    _log.info("closing idle connection from %s", self.peer)
                    return
                finally:
                    deadlines.disarm(deadline)
                if not data:
                    return
                try:
                    frames = self.decoder.feed(data)
                except FramingError as exc:
                    for frame in exc.frames:
                        await self._dispatch(frame)
                    self._bad_input(f"framing error: {exc}")
                    return
                for frame in frames:
                    await self._dispatch(frame)
            # A request that could not be answered closed the connection.
        except (ConnectionError, ssl.SSLError) as exc:
            _log.info("connection from %s ended: %s", self.peer, exc)
        finally:
            if self.requests:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*self.requests, return_exceptions=True)
            self._flush()

    async def _dispatch(self, frame: Frame) -> None:
        if not frame.payload:
            self._write(self.edge._framer.frame(b"", header=_reply_header(frame)))
            return
        await self.slots.acquire()  # backpressure: stop reading at the in-flight limit
        task = self.loop.create_task(self._handle(frame))
        self.requests.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.requests.discard(task)
        self.slots.release()

    async def _handle(self, frame: Frame) -> None:
        observer = self.edge.observer
        observer.request_started()
        replied_after = None
        try:
            replied_after = await self._answer_frame(frame)
        finally:
            observer.request_finished(replied_after)

    async def _answer_frame(self, frame: Frame) -> float | None:
        """Decode, answer and reply to one frame; seconds until the reply was written, or
        None when there was no reply."""
        edge = self.edge
        tracing = edge.tracing
        with tracing.edge_receive(
            peer=self.peer,
            port=edge.port,
            framing=edge.settings.framing,
            adapter=edge.adapter.variant,
        ) as span:
            return await self._answer(frame, span)

    async def _answer(self, frame: Frame, span: Span) -> float | None:
        edge = self.edge
        tracing = edge.tracing
        started = self.loop.time()
        edge.stats.requests += 1
        pans = _RequestPans(edge._decode_context.tokenizer, edge._encode_context.detokenizer)
        decode_context = _replace_decode_context(edge._decode_context, tokenizer=pans)
        # Only an adapter that declared needs_clear_pan got a detokenizer: keep it that way.
        granted = pans if edge._encode_context.detokenizer is not None else None
        encode_context = _replace_encode_context(edge._encode_context, detokenizer=granted)
        try:
            with tracing.adapter("decode", edge.adapter.variant):
                request = edge.adapter.decode(bytes(frame.payload), decode_context)
        except AdapterDecodeError as exc:
            edge.stats.format_errors += 1
            answer = edge.adapter.reject(exc, encode_context)
            if answer is None:
                self._bad_input(f"undecodable message: {exc}")
                return None
            _log.info("format error from %s answered: %s", self.peer, exc)
            return await self._send(answer, frame, started)
        bind_message(request)
        tracing.describe(span, request)
        if request.is_response:
            # Acquirers send requests; a response here has no request of ours to match.
            _log.warning("unexpected response from %s (message %s) ignored", self.peer, request.ids)
            return None
        reply = await edge.answer(request)
        tracing.outcome(span, reply)
        try:
            with tracing.adapter("encode", edge.adapter.variant):
                payload = edge.adapter.encode(reply, encode_context)
        except AdapterEncodeError as exc:
            edge.stats.handler_errors += 1
            _log.error("cannot encode the reply to %s: %s", request.ids.message_id, exc)
            fallback = edge._reply(request, SYSTEM_MALFUNCTION)
            payload = edge.adapter.encode(fallback, encode_context)
        return await self._send(payload, frame, started)

    async def _send(self, payload: bytes, request_frame: Frame, started: float) -> float:
        with self.edge.tracing.reply_write():
            self._write(self.edge._framer.frame(payload, header=_reply_header(request_frame)))
            self.edge.stats.replies += 1
            latency = self.loop.time() - started
            self.edge.stats.latencies.append(latency)
            # A client that does not read its replies holds its requests' slots: backpressure.
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await self.writer.drain()
        return latency

    def _write(self, data: bytes) -> None:
        """Write ``data`` at the end of this turn of the event loop, with whatever else this
        connection answers in it: replies that a batch of the core's answers completed
        together go out in one system call, not one each."""
        if self._outgoing is None:
            self._outgoing = [data]
            self.loop.call_soon(self._flush)
        else:
            self._outgoing.append(data)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, None
        if frames and not self.writer.is_closing():
            self.writer.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def _bad_input(self, reason: str) -> None:
        self.edge.stats.closed_on_bad_input += 1
        _log.warning("closing connection from %s: %s", self.peer, reason)
        self.closing = True
        self._flush()  # what was answered before goes out first
        self.writer.close()


class _RequestPans:
    """The PANs tokenized while decoding one request, to echo in its reply (see the module
    docstring); other tokens go to the vault's audited detokenizer."""

    __slots__ = ("_detokenizer", "_pans", "_tokenizer")

    def __init__(self, tokenizer: PanTokenizer, detokenizer: PanDetokenizer | None) -> None:
        self._tokenizer = tokenizer
        self._detokenizer = detokenizer
        self._pans: dict[str, str] = {}

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        token = self._tokenizer.tokenize(pan, tenant=tenant)
        self._pans[token.value] = pan
        return token

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        pan = self._pans.get(token.value)
        if pan is not None:
            return pan
        if self._detokenizer is None:
            raise LookupError("no detokenizer for a token the request did not carry")
        return self._detokenizer.detokenize(token, tenant=tenant, purpose=purpose)

    def __repr__(self) -> str:
        return f"_RequestPans({len(self._pans)} token(s))"


def _reply_header(frame: Frame) -> bytes:
    return tpdu_reply(frame.header) if frame.header else b""


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
        await writer.wait_closed()
