"""TLS for every listener and every outbound link of the hub: TLS 1.3 only (RFC 8446), mutual
authentication against a configured CA, refusals reported with the peer and the reason, and
certificates reloaded without a restart.

Why TLS 1.3 only: every TLS 1.3 key exchange is ephemeral (EC)DHE, so there is no static-RSA
or static-DH exchange to switch off and every session has forward secrecy; its cipher suites
are all AEAD. OpenSSL's server also refuses PSK resumption without (EC)DHE (``psk_ke``)
unless told otherwise, which nothing here does. A TLS 1.2 or older client is refused in the
handshake (``minimum_version``), never served with a weaker protocol.

- :func:`server_context`: a listener's context; with a client CA, client certificates from
  that CA are required (``CERT_REQUIRED``) or, for the gateway, asked for and verified when
  presented (``CERT_OPTIONAL``).
- :func:`client_context`: an outbound link's context: the server is verified against the
  configured CA and its name (``server_name``), and the hub presents its own certificate.
- :func:`refusal_reason`: an :class:`ssl.SSLError` in words (expired, self-signed, not from
  the configured CA, no client certificate, TLS 1.2 or older, no common cipher suite).
- :func:`await_acceptance`: in TLS 1.3 the server checks the client's certificate after the
  client has finished its handshake; this waits until the server has accepted it (its
  session tickets arrive) or refused it (the connection ends), so a link is not used before.
- :class:`CertificateFiles`: the (mtime, size) of a set of files, to reload when one changes.
- :func:`server_handshake` and :func:`start_tls_server`: a TLS listener whose handshakes run
  in the hub's own code, so that a refused one is logged with the peer and the reason (a
  server created with ``ssl=`` drops them silently, in asyncio and in uvloop alike).

Logged on ``isobridge.tls``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

__all__ = [
    "CertificateFiles",
    "ClientAuth",
    "TlsRefusedError",
    "await_acceptance",
    "server_handshake",
    "start_tls_server",
    "client_context",
    "describe_peer_certificate",
    "refusal_reason",
    "server_context",
]

_log = logging.getLogger("isobridge.tls")

ClientAuth = Literal["required", "optional"]
"""``"required"``: a client certificate from the CA or no connection; ``"optional"``: asked
for, verified when presented (the gateway, where TPPs may bind tokens with DPoP instead)."""

_VERSION_REASONS: Final = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)


class TlsRefusedError(ConnectionError):
    """The server ended the connection after the handshake: it refused our certificate."""


def server_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    client_ca: str | os.PathLike[str] | None = None,
    *,
    client_auth: ClientAuth = "required",
) -> ssl.SSLContext:
    """A TLS 1.3 server context presenting ``cert``; with ``client_ca``, client certificates
    chaining to it are ``required`` or ``optional`` (verified when presented)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    return context


def client_context(
    ca: str | os.PathLike[str],
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3 client context that trusts ``ca`` only (not the system's store) and
    presents ``cert`` when given; host names are checked against the server's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def refusal_reason(error: BaseException) -> str:
    """Why a TLS handshake failed, in words a log reader can act on."""
    if isinstance(error, ssl.SSLCertVerificationError):
        message = str(error.verify_message or error.reason or error)
        if message in {
            "unable to get local issuer certificate",
            "certificate signature failure",
            "unable to get issuer certificate",
        }:
            message += " (not issued by the configured CA)"
        elif message == "self-signed certificate":
            message += " (no configured CA vouches for it)"
        elif "Hostname mismatch" in message or "IP address mismatch" in message:
            message += " (check server_name)"
        return f"certificate refused: {message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no client certificate presented (one from the configured CA is required)"
        if reason in _VERSION_REASONS:
            return "TLS 1.2 or older offered: only TLS 1.3 is accepted"
        if reason == "WRONG_VERSION_NUMBER":
            return "not a TLS 1.3 handshake (plain TCP, or SSL 3 / TLS 1.0-1.2 records)"
        if reason == "HTTP_REQUEST":
            return "plain HTTP sent to a TLS port"
        if reason == "NO_SHARED_CIPHER":
            return "no TLS 1.3 cipher suite in common"
        if reason.startswith(("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")):
            alert = reason.split("_ALERT_", 1)[1].lower().replace("_", " ")
            return f"the peer refused the handshake: {alert}"
        return f"TLS error: {reason or error}"
    if isinstance(error, TimeoutError):
        return "TLS handshake timed out"
    if isinstance(error, ConnectionError | EOFError | asyncio.IncompleteReadError):
        return "the peer closed the connection during the TLS handshake"
    return f"TLS handshake failed: {error}"


def describe_peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384, peer CN=...`` for a log line (no certificate:
    ``no client certificate``)."""
    if ssl_object is None:
        return "plain TCP"
    cipher = ssl_object.cipher()
    suite = cipher[0] if cipher else "?"
    peer = ssl_object.getpeercert()
    if not peer:
        return f"{ssl_object.version()} {suite}, no client certificate"
    rdns = cast("tuple[tuple[tuple[str, str], ...], ...]", peer.get("subject", ()))
    subject = ",".join(
        f"{'CN' if name == 'commonName' else name}={value}" for rdn in rdns for name, value in rdn
    )
    return f"{ssl_object.version()} {suite}, peer {subject}"


async def await_acceptance(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
) -> None:
    """Return once the server has accepted this TLS 1.3 connection's client certificate.

    The server sends session tickets once it has verified the client's certificate, and
    ends the connection instead when it refuses it. :class:`TlsRefusedError` names the
    refusal; a server that sends no ticket at all is taken as accepting after ``timeout``
    (it would have refused by then)."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None or ssl_object.version() != "TLSv1.3":
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        failure = reader.exception()
        if failure is not None:
            raise TlsRefusedError(refusal_reason(failure))
        if reader.at_eof() or writer.is_closing():
            raise TlsRefusedError(
                "the server closed the connection after the handshake:"
                " it did not accept our client certificate (see the server's log)"
            )
        session = ssl_object.session
        if session is not None and session.has_ticket:
            return
        await asyncio.sleep(0.005)


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int


class CertificateFiles:
    """Notices when any of ``paths`` changes (modification time or size), so that a listener
    or a link reloads its certificate without a restart (besides SIGHUP)."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = tuple(dict.fromkeys(paths))
        self._stamps = self._read()

    def _read(self) -> dict[Path, _Stamp | None]:
        stamps: dict[Path, _Stamp | None] = {}
        for path in self.paths:
            try:
                info = path.stat()
            except OSError:
                stamps[path] = None
            else:
                stamps[path] = _Stamp(info.st_mtime_ns, info.st_size)
        return stamps

    def changed(self) -> bool:
        """Whether a file changed since the last call (or since creation)."""
        now = self._read()
        if now == self._stamps:
            return False
        self._stamps = now
        return True

    async def watch(self, reload: Callable[[], object], interval: float) -> None:
        """Call ``reload()`` whenever a file changes, checking every ``interval`` seconds,
        until cancelled. A reload that fails is logged; the next change is tried again."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                _log.info("certificate files changed: reloading")
                try:
                    reload()
                except Exception:
                    _log.exception("certificate reload failed; the previous certificates stay")


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hand ``data`` to ``protocol`` as if it had just been read from its transport. By the
    methods it has: uvloop's protocols do not derive from asyncio's classes."""
    get_buffer = getattr(protocol, "get_buffer", None)
    buffer_updated = getattr(protocol, "buffer_updated", None)
    if get_buffer is not None and buffer_updated is not None:
        view = memoryview(data)
        while view:
            buffer = memoryview(get_buffer(len(view))).cast("B")
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            buffer_updated(size)
            view = view[size:]
    else:
        cast(asyncio.Protocol, protocol).data_received(data)


async def server_handshake(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    early: bytearray,
    timeout: float,
) -> asyncio.BaseTransport:
    """The server side of a TLS handshake on an accepted ``transport`` (its protocol:
    ``protocol``), returning the TLS transport; raises ``ssl.SSLError`` / ``OSError`` /
    ``TimeoutError`` when it fails.

    ``early``: bytes the protocol has already read (uvloop delivers the ClientHello before a
    task can call ``start_tls``, which would then wait for it forever); they are handed to
    the TLS layer once it is in place, and ``early`` is emptied."""
    loop = asyncio.get_running_loop()

    def hand_over() -> None:
        # start_tls (below) swaps in its TLS protocol at once and schedules that protocol's
        # connection_made and the transport's resume_reading; this runs after both, before
        # the client sends anything more (it waits for the ServerHello).
        if early:
            data = bytes(early)
            early.clear()
            _feed(transport.get_protocol(), data)

    loop.call_soon(loop.call_soon, hand_over)
    tls = await loop.start_tls(
        transport,  # type: ignore[arg-type]
        protocol,
        context,
        server_side=True,
        ssl_handshake_timeout=timeout,
    )
    if tls is None:
        raise ConnectionError("the TLS handshake gave no transport")
    return tls


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _TlsAccept(asyncio.Protocol):
    """One accepted connection: the TLS handshake, then asyncio streams for the handler."""

    def __init__(
        self,
        handler: StreamHandler,
        context: Callable[[], ssl.SSLContext],
        refused: Callable[[str, BaseException], None],
        timeout: float,
    ) -> None:
        self._handler = handler
        self._context = context
        self._refused = refused
        self._timeout = timeout
        self._early = bytearray()
        self._eof = False
        self._streams: asyncio.StreamReaderProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        asyncio.get_running_loop().create_task(self._run(transport))

    def data_received(self, data: bytes) -> None:
        self._early.extend(data)  # before and right after the handshake

    def eof_received(self) -> bool | None:
        self._eof = True
        return None

    async def _run(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        try:
            tls = await server_handshake(
                transport, self, self._context(), self._early, self._timeout
            )
        except (ssl.SSLError, OSError, TimeoutError, EOFError) as exc:
            transport.close()
            self._refused(peer, exc)
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        streams = asyncio.StreamReaderProtocol(reader, loop=loop)
        streams.connection_made(tls)
        tls.set_protocol(streams)
        writer = asyncio.StreamWriter(tls, streams, reader, loop)  # type: ignore[arg-type]
        if self._early:
            streams.data_received(bytes(self._early))
        if self._eof:
            streams.eof_received()
        await self._handler(reader, writer)


async def start_tls_server(
    handler: StreamHandler,
    host: str,
    port: int,
    *,
    context: Callable[[], ssl.SSLContext],
    refused: Callable[[str, BaseException], None],
    handshake_timeout: float = 30.0,
    reuse_port: bool | None = None,
) -> asyncio.Server:
    """Like ``asyncio.start_server(handler, host, port, ssl=...)``, with the handshake in
    the hub's code: ``context()`` is asked for each connection (a reload takes effect at
    once), and a failed handshake calls ``refused(peer, error)`` instead of vanishing."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _TlsAccept(handler, context, refused, handshake_timeout),
        host,
        port,
        reuse_port=reuse_port,
    )
