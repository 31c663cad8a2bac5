"""An asyncio client of the simulated mainframe, for tests, the bench and the CLI.

It frames requests the way :mod:`mainframe_sim.server` expects (``len2``, ``len4`` or
``cics``) and cuts replies; :meth:`MainframeClient.request` does one round trip on decoded
values, :meth:`~MainframeClient.send` and :meth:`~MainframeClient.receive` let a caller
pipeline or send bytes that are not a valid record.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Mapping
from typing import Any

from adapters.framing import FrameDecoder
from mainframe_sim.records import Records
from mainframe_sim.server import DEFAULT_TRAN_ID, reply_framer, request_framer
from mainframe_sim.transactions import Reply

__all__ = ["MainframeClient"]


class MainframeClient:
    """One TCP connection to the simulator; replies are read in order."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        framing: str,
        records: Records,
        tran_id: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.framing = framing
        self.records = records
        self._tran_id = tran_id.encode(records.codepage)
        self._request_framer = request_framer(framing)
        self._decoder = FrameDecoder(reply_framer(framing))
        self._replies: collections.deque[bytes] = collections.deque()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        framing: str = "len2",
        records: Records | None = None,
        tran_id: str = DEFAULT_TRAN_ID,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> MainframeClient:
        """Open a connection to ``host``:``port`` (TLS with ``tls``)."""
        if tls is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=server_hostname or host
            )
        return cls(reader, writer, framing=framing, records=records or Records(),
                   tran_id=tran_id)  # fmt: skip

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """The mainframe's certificate as :meth:`ssl.SSLSocket.getpeercert` gives it (TLS),
        or None (plain TCP)."""
        certificate = self._writer.get_extra_info("peercert")
        return dict(certificate) if certificate else None

    def send(self, record: bytes) -> None:
        """Frame and queue ``record`` for sending (call :meth:`drain` to wait for it)."""
        if self.framing == "cics":
            self._writer.write(self._tran_id + record)
        else:
            self._writer.write(self._request_framer.frame(record))

    def send_raw(self, data: bytes) -> None:
        """Queue ``data`` as it is, unframed."""
        self._writer.write(data)

    async def drain(self) -> None:
        """Wait until the queued bytes are handed to the socket."""
        await self._writer.drain()

    async def receive(self, timeout: float | None = None) -> bytes:
        """The next reply record; ``TimeoutError`` after ``timeout`` seconds,
        ``ConnectionResetError`` when the server closed the connection."""
        async with asyncio.timeout(timeout):
            while not self._replies:
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionResetError("the mainframe closed the connection")
                self._replies.extend(frame.payload for frame in self._decoder.feed(data))
        return self._replies.popleft()

    async def request(self, fields: Mapping[str, Any], timeout: float | None = 10.0) -> Reply:
        """Send one request and decode its reply."""
        self.send(self.records.encode_request(fields))
        await self.drain()
        return self.records.decode_reply(await self.receive(timeout))

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
