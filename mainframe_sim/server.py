r"""The simulated mainframe's TCP server (asyncio) and its admin port.

Framings (``--framing``):

``len2``
    A 2-byte big-endian binary length, then the 200-byte CB-REQUEST; replies the same way
    (:class:`adapters.framing.Len2BinaryFramer`).
``len4``
    A 4-byte big-endian binary length, then the record (:class:`adapters.framing.Len4BinaryFramer`).
``cics``
    CICS sockets style: the 4-character transaction id in EBCDIC (``CBRQ`` unless configured),
    then the 200-byte record, no length; the reply is the bare 200-byte CB-REPLY. A request
    under another transaction id is answered ``30`` (the record is still consumed, so the
    stream stays in step).

Many connections at once; on one connection requests may be pipelined (sent without waiting
for replies): replies come back **in request order**, each also carrying its posting
reference. A connection is a protocol, not a task: its frames are cut and decoded as the
bytes arrive, and its replies written from the batch's completion, in order: no task,
queue or future per request (bench/RESULTS.md, mainframe simulator: CPU per posting).
Requests from all connections are applied in batches, one database transaction per batch
(:class:`LedgerBatcher`): while one batch commits, the next one gathers (in the sockets'
buffers, or in the batcher's list while a batch runs on a worker thread), so the commit
rate, not the request rate, is the limit (ARCHITECTURE.md, field notes). A reply is written
only after its batch has committed.

Bad input gets an answer: a record of the wrong length or that does not decode is answered
``30`` with the field and offset; a length header above the limit (4096) is answered ``30``
and the connection is closed, since the stream is out of step.

Faults (:mod:`mainframe_sim.faults`) apply to each reply after its commit (their draw is made
when the request arrives, under the plan then in force): latency, dropped reply, disconnect,
garbage; ``down`` closes every connection and refuses new ones.

With ``tls`` (:func:`mainframe_sim.tls.server_context`) the listener speaks TLS 1.3 only and,
with a client CA, requires the hub's client certificate: a refused handshake (expired,
self-signed or wrong-CA certificate, none, TLS 1.2 or older) is logged with the peer and the
reason and counted (``tls_refused``); :meth:`MainframeServer.use_tls_context` swaps the
certificates for new connections without a restart (``serve`` does it on SIGHUP). The admin
port stays plain TCP on its own port (bind it to 127.0.0.1). The handshake uses
``loop.start_tls``, so with TLS the server runs on asyncio's loop (``serve`` does): uvloop
reads the ClientHello before it could start (the hub's listeners handle that, in
:mod:`hub.tls`, which the simulator may not import).

The admin port is a line protocol (``faults set drop=0.1``, ``faults clear``, ``status``;
see :func:`mainframe_sim.faults.admin_command`), one answer line per command line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

from adapters.framing import Frame, FrameDecoder, Framer, FramingError, get_framer
from mainframe_sim.faults import Decision, FaultPlan, Faults, admin_command
from mainframe_sim.ledger import Ledger
from mainframe_sim.records import Records
from mainframe_sim.tls import refusal_reason
from mainframe_sim.transactions import Reply, process_batch

__all__ = [
    "DEFAULT_TRAN_ID",
    "FRAMINGS",
    "FixedRecordFramer",
    "LedgerBatcher",
    "MainframeServer",
    "ServerStats",
    "reply_framer",
    "request_framer",
]

_log = logging.getLogger(__name__)

FRAMINGS: Final = ("len2", "len4", "cics")
"""The framings the server speaks."""

DEFAULT_TRAN_ID: Final = "CBRQ"
"""The CICS transaction id of the ``cics`` framing."""

MAX_FRAME: Final = 4096
"""The largest length header accepted; larger ones are answered 30 and the link closed."""

RECORD_LENGTH: Final = 200


class FixedRecordFramer:
    """No length: a ``header_size``-byte header (the CICS transaction id) and a fixed-length
    record. Implements :class:`adapters.framing.Framer`."""

    name: ClassVar[str] = "cics"

    def __init__(self, record_length: int, header_size: int) -> None:
        self.record_length = record_length
        self.header_size = header_size

    @property
    def max_payload(self) -> int:
        """The record length: every frame is exactly this long."""
        return self.record_length

    def frame(self, payload: bytes, header: bytes = b"") -> bytes:
        """``header`` + ``payload``; both must have their fixed sizes."""
        if len(header) != self.header_size or len(payload) != self.record_length:
            raise FramingError(
                f"cics takes a {self.header_size}-byte header and a {self.record_length}-byte"
                f" record, not {len(header)} + {len(payload)}"
            )
        return header + payload

    def deframe(self, buffer: bytes | bytearray | memoryview) -> tuple[Frame | None, int]:
        """The next header + record once the buffer holds them."""
        size = self.header_size + self.record_length
        if len(buffer) < size:
            return None, 0
        data = bytes(buffer[:size])
        return Frame(data[self.header_size :], data[: self.header_size]), size


def request_framer(framing: str) -> Framer:
    """The framer that cuts requests (server side) or frames them (client side)."""
    if framing == "cics":
        return FixedRecordFramer(RECORD_LENGTH, 4)
    return _length_framer(framing)


def reply_framer(framing: str) -> Framer:
    """The framer of replies: as requests, but a ``cics`` reply has no transaction id."""
    if framing == "cics":
        return FixedRecordFramer(RECORD_LENGTH, 0)
    return _length_framer(framing)


def _length_framer(framing: str) -> Framer:
    names = {"len2": "len2-binary", "len4": "len4-binary"}
    if framing not in names:
        raise ValueError(f"unknown framing {framing!r} (one of {', '.join(FRAMINGS)})")
    return get_framer(names[framing], max_payload=MAX_FRAME)


class LedgerBatcher:
    """Group commit for asyncio callers: :meth:`submit` a decoded request, get its reply.

    The requests submitted so far are applied as one batch (at most ``max_batch``) in one
    transaction; requests that arrive meanwhile form the next batch. Where a batch runs:

    - on the event loop itself when the ledger is embedded (SQLite, :attr:`Ledger.embedded`):
      the batch is calls into SQLite and a commit that does not wait for the disk, and the
      requests that arrive meanwhile wait in the sockets' buffers. Handing each batch to a
      thread and back would cost two thread wake-ups, more CPU than a small batch itself;
    - on a worker thread when the database is a server (PostgreSQL): the loop does not wait
      for its round trips and fsync, and keeps reading requests meanwhile.

    ``in_loop`` overrides that choice. A batch is a callback scheduled on the loop when the
    first request of it arrives (no task, no queue): the requests the loop reads in the same
    turn join it, and each reply goes to its caller's ``deliver`` function as soon as the
    batch has committed.
    """

    def __init__(
        self, ledger: Ledger, *, max_batch: int = 256, in_loop: bool | None = None
    ) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._waiting: list[tuple[dict[str, Any], Callable[[Reply], None]]] = []
        self.in_loop = ledger.embedded if in_loop is None else in_loop
        self._executor = (
            None
            if self.in_loop
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="mf-ledger")
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False  # a batch is due on the loop, or running on the worker
        self._closed = False
        self._running: asyncio.Future[list[Reply]] | None = None
        self.batches = 0
        self.requests = 0

    def start(self) -> None:
        """Bind to the running loop (batches run there, or are handed from there)."""
        self._loop = asyncio.get_running_loop()

    def submit(self, request: dict[str, Any]) -> asyncio.Future[Reply]:
        """Queue ``request`` for the next batch; the future of its reply, set once the batch
        committed."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def deliver(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        self.submit_with(request, deliver)
        return future

    def submit_with(self, request: dict[str, Any], deliver: Callable[[Reply], None]) -> None:
        """Queue ``request`` for the next batch; ``deliver`` gets its reply once the batch
        committed (on the loop)."""
        if self._closed:
            return
        self._waiting.append((request, deliver))
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._next_batch)

    def _take(self) -> list[tuple[dict[str, Any], Callable[[Reply], None]]]:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        return batch

    def _next_batch(self) -> None:
        if self._closed or not self._waiting:
            self._scheduled = False
            return
        batch = self._take()
        requests = [request for request, _ in batch]
        if self._executor is None:
            self._deliver(batch, process_batch(self._ledger, requests))
            self._after_batch()
            return
        loop = self._loop or asyncio.get_running_loop()
        running = loop.run_in_executor(self._executor, process_batch, self._ledger, requests)
        self._running = running

        def done(finished: asyncio.Future[list[Reply]]) -> None:
            self._running = None
            if finished.cancelled() or self._closed:
                return
            self._deliver(batch, finished.result())
            self._after_batch()

        running.add_done_callback(done)

    def _deliver(
        self, batch: list[tuple[dict[str, Any], Callable[[Reply], None]]], replies: list[Reply]
    ) -> None:
        self.batches += 1
        self.requests += len(batch)
        for (_, deliver), reply in zip(batch, replies, strict=True):
            deliver(reply)

    def _after_batch(self) -> None:
        if self._waiting and not self._closed:
            # the next batch after this one's replies went out (no busy turn on the loop)
            (self._loop or asyncio.get_running_loop()).call_soon(self._next_batch)
        else:
            self._scheduled = False

    async def close(self) -> None:
        """Stop batching (a batch being applied finishes first) and end the worker thread."""
        self._closed = True
        running = self._running
        if running is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(running)
        self._waiting.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)


@dataclass
class ServerStats:
    """Counters shown by the admin ``status`` command."""

    connections: int = 0
    open_connections: int = 0
    requests: int = 0
    replies: int = 0
    format_errors: int = 0
    dropped: int = 0
    garbage: int = 0
    disconnects: int = 0
    refused: int = 0
    tls_refused: int = 0

    def __str__(self) -> str:
        return " ".join(f"{name}={value}" for name, value in vars(self).items())


class _Slot:
    """One reply a connection owes: when its request arrived, its fault decision, and the
    reply once its batch committed."""

    __slots__ = ("arrived", "decision", "owner", "reply")

    def __init__(self, owner: _ReplyQueue, arrived: float, decision: Decision) -> None:
        self.owner = owner
        self.arrived = arrived
        self.decision = decision
        self.reply: Reply | None = None

    def deliver(self, reply: Reply) -> None:
        """The reply is known: send it, and the ones after it that are, in request order."""
        self.reply = reply
        self.owner.send_ready()


class _ReplyQueue:
    """The replies of one connection, written in request order as they become known.

    Called back from the batcher (no task per connection): a reply goes out as soon as its
    batch committed and every earlier one went out; a fault delay holds it (and those after
    it) back on a timer. ``on_sent`` is called whenever the queue runs empty or the link
    closes.
    """

    __slots__ = ("_closed", "_on_sent", "_server", "_slots", "_timer", "_transport")

    def __init__(
        self,
        server: MainframeServer,
        transport: asyncio.WriteTransport,
        *,
        on_sent: Callable[[], None],
    ) -> None:
        self._server = server
        self._transport = transport
        self._on_sent = on_sent
        self._slots: collections.deque[_Slot] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False  # disconnected (fault) or the link failed: nothing more is sent

    @property
    def idle(self) -> bool:
        """No reply is owed (or none can be sent any more)."""
        return self._closed or not self._slots

    def expect(self, arrived: float, decision: Decision) -> _Slot:
        """The slot of the next request's reply."""
        slot = _Slot(self, arrived, decision)
        self._slots.append(slot)
        return slot

    def send_ready(self) -> None:
        """Write the replies at the head of the queue that are known and due."""
        slots = self._slots
        server = self._server
        stats = server.stats
        transport = self._transport
        while slots and not self._closed:
            slot = slots[0]
            reply = slot.reply
            if reply is None:
                return
            decision = slot.decision
            if decision.delay:
                wait = slot.arrived + decision.delay - time.monotonic()
                if wait > 0:
                    if self._timer is None:
                        self._timer = asyncio.get_running_loop().call_later(wait, self._wake)
                    return
            slots.popleft()
            action = decision.action
            if action == "drop":
                stats.dropped += 1
                continue
            if action == "disconnect":
                stats.disconnects += 1
                self._closed = True
                transport.close()
                break
            if action == "garbage":
                stats.garbage += 1
                data = server.records.garbage_reply(server.faults.random_bytes(RECORD_LENGTH))
            else:
                data = server.records.encode_reply(reply)
            if transport.is_closing():
                self._closed = True
                break
            transport.write(server._reply_framer.frame(data))
            stats.replies += 1
        self._on_sent()

    def _wake(self) -> None:
        self._timer = None
        self.send_ready()

    def abandon(self) -> None:
        """The link is gone: send nothing more."""
        self._closed = True
        self._slots.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _RequestProtocol(asyncio.Protocol):
    """One client connection: frames cut from each read as it arrives, requests handed to
    the batcher, replies written by the connection's :class:`_ReplyQueue` (no task, no
    stream reader). With TLS the handshake runs first (``loop.start_tls``); bytes that
    follow it before the handshake task resumes are kept and handled then."""

    def __init__(self, server: MainframeServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(server._request_framer)
        self._replies: _ReplyQueue | None = None
        self._early: list[bytes] = []
        self._lost: asyncio.Future[None] | None = None
        self._ending = False  # no more requests are read; close once the replies went out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes; they have its methods
        transport = cast(asyncio.Transport, transport)
        server = self._server
        self._transport = transport
        if server.faults.down:
            server.stats.refused += 1
            transport.close()
            return
        self._lost = asyncio.get_running_loop().create_future()
        server._open.add(self._lost)
        context = server.tls_context
        if context is None:
            self._accept(transport)
            return
        transport.pause_reading()  # resumed by start_tls once it owns the transport
        server._track(asyncio.get_running_loop().create_task(self._handshake(transport, context)))

    async def _handshake(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        server = self._server
        try:
            secured = await asyncio.get_running_loop().start_tls(
                transport, self, context, server_side=True, ssl_handshake_timeout=30.0
            )
        except (ssl.SSLError, OSError, TimeoutError, EOFError, ConnectionError) as exc:
            server.stats.tls_refused += 1
            peer = transport.get_extra_info("peername")
            where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
            _log.warning("TLS handshake with %s refused: %s", where, refusal_reason(exc))
            self._early.clear()
            transport.close()
            return
        if secured is None:
            transport.close()
            return
        self._transport = secured
        self._accept(secured)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def _accept(self, transport: asyncio.Transport) -> None:
        server = self._server
        server.stats.connections += 1
        server.stats.open_connections += 1
        server._writers.add(transport)
        self._replies = _ReplyQueue(server, transport, on_sent=self._sent)

    def data_received(self, data: bytes) -> None:
        replies = self._replies
        if replies is None:
            self._early.append(data)
            return
        if self._ending:
            return
        server = self._server
        arrived = time.monotonic()
        decide = server.faults.decide
        try:
            frames = self._decoder.feed(data)
        except FramingError as exc:
            for frame in exc.frames:
                server._handle(frame, replies.expect(arrived, decide()))
            answer = Reply("", "", "30", reason_text=f"framing @{exc.offset}: {exc.reason}"[:40])
            server.stats.format_errors += 1
            replies.expect(arrived, decide()).deliver(answer)
            self._end()
            return
        for frame in frames:
            if not frame.payload and not frame.header:
                continue  # a zero length: keep-alive
            # The reply's fate is drawn when its request arrives, under the plan then in force.
            server._handle(frame, replies.expect(arrived, decide()))

    def eof_received(self) -> bool:
        self._end()
        # keep the transport open for the replies still owed (TLS cannot half-close)
        return self._server.tls_context is None

    def _end(self) -> None:
        """Read no more; close once every reply owed was sent."""
        self._ending = True
        transport = self._transport
        if transport is None:
            return
        if self._replies is None or self._replies.idle:
            transport.close()
        elif not transport.is_closing():
            with contextlib.suppress(RuntimeError, NotImplementedError):
                transport.pause_reading()

    def _sent(self) -> None:
        """The reply queue went empty (or the link closed)."""
        if self._ending and self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        if self._replies is not None:
            self._replies.abandon()
            if self._transport is not None and self._transport in server._writers:
                server._writers.discard(self._transport)
                server.stats.open_connections -= 1
        if self._lost is not None:
            server._open.discard(self._lost)
            if not self._lost.done():
                self._lost.set_result(None)


class MainframeServer:
    """The TCP server and its admin port, on one ledger.

    ``max_batch`` and ``in_loop``: the group commit's largest batch, and where batches run
    (see :class:`LedgerBatcher`).

    >>> async def main() -> None:
    ...     server = MainframeServer(Ledger.open("sqlite://"), framing="len4")
    ...     host, port = await server.start("127.0.0.1", 0)
    ...     await server.close()
    >>> asyncio.run(main())
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        framing: str = "len2",
        codepage: str = "cp037",
        faults: Faults | None = None,
        tran_id: str = DEFAULT_TRAN_ID,
        max_batch: int = 256,
        in_loop: bool | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ledger = ledger
        self.framing = framing
        self.records = Records(codepage)
        self.faults = faults or Faults()
        self.tran_id = tran_id
        self.stats = ServerStats()
        self._request_framer = request_framer(framing)
        self._reply_framer = reply_framer(framing)
        self._batcher = LedgerBatcher(ledger, max_batch=max_batch, in_loop=in_loop)
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open: set[asyncio.Future[None]] = set()  # each connection's, done when it is lost
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tls_context = tls
        self.faults.on_change.append(self._on_fault_change)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen for requests; the address bound (port 0 picks a free one)."""
        self._loop = asyncio.get_running_loop()
        self._batcher.start()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _RequestProtocol(self), host, port)
        self._servers.append(server)
        address: tuple[str, int] = server.sockets[0].getsockname()[:2]
        return address

    async def start_admin(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen for admin commands; the address bound."""
        server = await asyncio.start_server(self._admin, host, port)
        self._servers.append(server)
        address: tuple[str, int] = server.sockets[0].getsockname()[:2]
        return address

    def use_tls_context(self, context: ssl.SSLContext) -> None:
        """Handshake new connections with ``context`` (reloaded certificates); open ones
        carry on."""
        if self.tls_context is None:
            raise RuntimeError("this server does not use TLS")
        self.tls_context = context
        _log.info("mainframe_sim: TLS certificates reloaded")

    @property
    def batches(self) -> int:
        """Database transactions (batches of requests) committed so far."""
        return self._batcher.batches

    def status(self) -> str:
        """One line: framing, counters, batches, ledger balanced or not."""
        check = self.ledger.check()
        return (
            f"framing={self.framing} {self.stats} batches={self.batches}"
            f" postings={check.postings} balanced={'yes' if check.balanced else 'NO'}"
        )

    async def close(self) -> None:
        """Stop listening, close every connection, stop the batcher."""
        if self._on_fault_change in self.faults.on_change:
            self.faults.on_change.remove(self._on_fault_change)
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        # Closed sockets end every handler; cancelling them instead would make asyncio's
        # stream protocol log the cancellation as an error.
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._open:
            await asyncio.wait(list(self._open), timeout=5)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await self._batcher.close()

    def _on_fault_change(self, plan: FaultPlan) -> None:
        if not plan.down or self._loop is None:
            return
        # The admin port and the CLI may change faults from another thread.
        self._loop.call_soon_threadsafe(self._close_all)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handle(self, frame: Frame, slot: _Slot) -> None:
        self.stats.requests += 1
        decoded = self.records.decode_request(frame.payload)
        if not isinstance(decoded, Reply) and self.framing == "cics":
            tran_id = frame.header.decode(self.records.codepage, errors="replace")
            if tran_id != self.tran_id:
                decoded = Reply(
                    str(decoded.get("CB-TRAN-CODE", "")), str(decoded.get("CB-POSTING-REF", "")),
                    "30", reason_text=f"TRANID @0: {tran_id!r} is not {self.tran_id}"[:40],
                )  # fmt: skip
        if isinstance(decoded, Reply):
            self.stats.format_errors += 1
            slot.deliver(decoded)
            return
        self._batcher.submit_with(decoded, slot.deliver)

    async def _admin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._track(task)
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", errors="replace").strip()
                if text in {"quit", "exit"}:
                    break
                if not text:
                    continue
                answer = await asyncio.to_thread(admin_command, text, self.faults, self.status)
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # ValueError: a line longer than the stream's limit
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
