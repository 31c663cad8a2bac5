"""What the TLS tests share: a CA with the certificates to accept and to refuse, client
contexts that offer what must be refused, and a TLS server that records why it refused."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from hub.certs import CertFiles, CertificateAuthority, self_signed
from hub.tls import refusal_reason, server_context


@dataclass(frozen=True)
class Pki:
    """A CA, another CA nobody trusts, and certificates good and bad."""

    ca: CertFiles
    other_ca: CertFiles
    server: CertFiles
    expired_server: CertFiles
    wrong_ca_server: CertFiles
    client: CertFiles
    expired_client: CertFiles
    self_signed_client: CertFiles
    wrong_ca_client: CertFiles


def make_pki(directory: Path) -> Pki:
    authority = CertificateAuthority(directory / "ca", "isobridge test CA")
    stranger = CertificateAuthority(directory / "other", "a CA nobody configured")
    return Pki(
        ca=authority.files,
        other_ca=stranger.files,
        server=authority.issue("server", "server.test", server=True),
        expired_server=authority.issue("expired-server", "old.test", server=True, expired=True),
        wrong_ca_server=stranger.issue("stranger-server", "stranger.test", server=True),
        client=authority.issue("client", "hub-client", server=False),
        expired_client=authority.issue("expired-client", "old-client", server=False, expired=True),
        self_signed_client=self_signed(directory / "self", "self", "self-made", server=False),
        wrong_ca_client=stranger.issue("stranger-client", "stranger-client", server=False),
    )


def client(
    ca: Path, files: CertFiles | None = None, *, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A client context trusting ``ca``, presenting ``files``; ``maximum`` caps its TLS
    version (TLS 1.2 or older, to be refused)."""
    context = ssl.create_default_context(cafile=str(ca))
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = maximum
    if files is not None:
        context.load_cert_chain(files.cert, files.key)
    return context


@dataclass
class RecordingServer:
    """A TLS 1.3 server (:func:`hub.tls.server_context`) that answers ``ok\\n`` once the
    handshake is done and records the reason of each refused handshake."""

    context: ssl.SSLContext
    refusals: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> RecordingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(self.context, ssl_handshake_timeout=10)
        except (ssl.SSLError, OSError) as exc:
            self.refusals.append(refusal_reason(exc))
            writer.close()
            return
        ssl_object = writer.get_extra_info("ssl_object")
        self.accepted.append(f"{ssl_object.version()} {ssl_object.cipher()[0]}")
        writer.write(b"ok\n")
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.drain()
            await reader.read()
        writer.close()

    async def wait_for_refusal(self, count: int = 1) -> str:
        """The reason of the ``count``-th refusal, once it is recorded."""
        async with asyncio.timeout(10):
            while len(self.refusals) < count:
                await asyncio.sleep(0.01)
        return self.refusals[count - 1]


def mutual_server(pki: Pki) -> RecordingServer:
    """A server requiring client certificates from ``pki``'s CA."""
    return RecordingServer(server_context(pki.server.cert, pki.server.key, pki.ca.cert))


LOOPS = ("asyncio", "uvloop")
"""The event loops the hub runs on: asyncio's, and uvloop under the gateway commands."""


def run_on(loop: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` to its end, within a minute, on ``loop`` (one of :data:`LOOPS`)."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(scenario(), 60))
