"""TLS 1.3 for the open-banking gateway when it terminates TLS itself (``[gateway.tls]``).

Under uvicorn, with the TLS handshake done by the hub rather than by uvicorn, so that:

- only TLS 1.3 is spoken (:func:`hub.tls.server_context`: forward secrecy only, AEAD
  suites), and a refused handshake (expired, self-signed or wrong-CA client certificate,
  TLS 1.2 or older, plain HTTP) is logged with the peer and the reason (logger
  ``isobridge.gateway.tls``) and counted, where uvicorn would drop it silently;
- client certificates are *optional* (``CERT_OPTIONAL``): with ``client_ca`` the gateway
  asks for one and verifies it when presented (a TPP with a certificate from another CA is
  refused), while a TPP without one may still use DPoP-bound tokens (RFC 9449) or the
  authorization server's client secret;
- the verified client certificate reaches the token checks as they already read it: in the
  header a TLS terminator would forward (``[issuer] client_cert_header``, URL-escaped PEM
  like nginx's ``$ssl_client_escaped_cert``; RFC 8705 certificate-bound tokens). A header of
  that name sent by the client itself is dropped: behind no terminator, only the TLS
  connection can vouch for a certificate. With ``forwarded_client_cert = true`` (a
  terminator in front that re-encrypts to the gateway) the header is left as forwarded.
- the certificate, key and client CA are reloaded without a restart (:meth:`GatewayTls.reload`,
  on SIGHUP and when a file changes): new connections use them, open ones carry on.

How: uvicorn is given plain sockets and a protocol class (:meth:`GatewayTls.protocol_class`)
whose instances run the handshake (``loop.start_tls``) and then hand the TLS transport to
uvicorn's own HTTP protocol, with the peer's DER certificate in the connection's ASGI
``state``; :meth:`GatewayTls.wrap` turns it into the header.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from hub.tls import describe_peer_certificate, refusal_reason, server_context, server_handshake

__all__ = ["CLIENT_CERTIFICATE_STATE", "GatewayTls", "GatewayTlsConfig"]

_log = logging.getLogger("isobridge.gateway.tls")

CLIENT_CERTIFICATE_STATE: Final = "isobridge.tls_client_certificate"
"""The key, in the ASGI scope's ``state``, of the verified client certificate (DER) or None."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GatewayTlsConfig:
    """``[gateway.tls]``: the gateway's certificate and key, the CA of TPP certificates."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    forwarded_client_cert: bool = False
    reload_interval: float = 30.0

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.3 only; client certificates from ``client_ca`` asked for, not required."""
        return server_context(self.cert, self.key, self.client_ca, client_auth="optional")

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the context is built from (watched for a reload)."""
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


class GatewayTls:
    """The gateway's TLS termination: the current context, the uvicorn protocol class that
    uses it, the client-certificate header, and reloads. See the module docstring."""

    def __init__(self, config: GatewayTlsConfig, client_cert_header: str) -> None:
        self.config = config
        self.context = config.server_context()
        self.client_cert_header = client_cert_header.lower()
        self.handshakes = 0
        self.refused = 0

    def reload(self) -> bool:
        """Rebuild the context from the files; False (logged, old context kept) if they
        cannot be used."""
        try:
            context = self.config.server_context()
        except (ssl.SSLError, OSError) as exc:
            _log.error("gateway TLS certificates not reloaded: %s", exc)
            return False
        self.context = context
        _log.info("gateway TLS certificates reloaded from %s", self.config.cert)
        return True

    def wrap(self, app: AsgiApp) -> AsgiApp:
        """``app`` with the client-certificate header taken from the TLS connection."""
        if self.config.forwarded_client_cert:
            return app
        header = self.client_cert_header.encode("latin-1")

        async def from_tls(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                headers = [(name, value) for name, value in scope["headers"] if name != header]
                if len(headers) != len(scope["headers"]):
                    _log.info("dropped a %s header sent by the client itself", header.decode())
                der = scope.get("state", {}).get(CLIENT_CERTIFICATE_STATE)
                if der:
                    pem = ssl.DER_cert_to_PEM_cert(der)
                    headers.append((header, quote(pem).encode("ascii")))
                scope = dict(scope)
                scope["headers"] = headers
            await app(scope, receive, send)

        return from_tls

    def protocol_class(self, http: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
        """A uvicorn ``http`` protocol class: the TLS handshake, then ``http`` on top."""
        termination = self

        class TlsHandshake(asyncio.Protocol):
            def __init__(
                self,
                config: Any,
                server_state: Any,
                app_state: dict[str, Any],
                _loop: asyncio.AbstractEventLoop | None = None,
            ) -> None:
                self._config = config
                self._server_state = server_state
                self._app_state = app_state
                self._loop = _loop or asyncio.get_event_loop()
                self._early = bytearray()
                self._eof = False
                self._raw: asyncio.BaseTransport | None = None
                self._task: asyncio.Task[None] | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self._raw = transport
                self._server_state.connections.add(self)
                self._task = self._loop.create_task(self._handshake(transport))

            async def _handshake(self, raw: asyncio.BaseTransport) -> None:
                peername = raw.get_extra_info("peername")
                peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else "?"
                try:
                    tls = await server_handshake(raw, self, termination.context, self._early, 30.0)
                except (ssl.SSLError, OSError, TimeoutError, EOFError) as exc:
                    termination.refused += 1
                    _log.warning("TLS handshake with %s refused: %s", peer, refusal_reason(exc))
                    raw.close()
                    self._server_state.connections.discard(self)
                    return
                termination.handshakes += 1
                ssl_object = tls.get_extra_info("ssl_object")
                _log.info(
                    "TLS connection from %s (%s)", peer, describe_peer_certificate(ssl_object)
                )
                state = dict(self._app_state)
                state[CLIENT_CERTIFICATE_STATE] = ssl_object.getpeercert(binary_form=True)
                inner = http(  # type: ignore[call-arg]
                    config=self._config,
                    server_state=self._server_state,
                    app_state=state,
                    _loop=self._loop,
                )
                self._server_state.connections.discard(self)
                inner.connection_made(tls)
                tls.set_protocol(inner)
                if self._early:
                    inner.data_received(bytes(self._early))
                if self._eof:
                    inner.eof_received()

            def data_received(self, data: bytes) -> None:
                # Before the handshake: the ClientHello (uvloop reads it at once); after it:
                # application data that came before the HTTP protocol took over.
                self._early.extend(data)

            def eof_received(self) -> bool | None:
                self._eof = True
                return None

            def connection_lost(self, exc: Exception | None) -> None:
                self._server_state.connections.discard(self)

            def shutdown(self) -> None:
                """uvicorn is stopping: a connection still in its handshake is closed."""
                if self._task is not None:
                    self._task.cancel()
                if self._raw is not None:
                    self._raw.close()
                self._server_state.connections.discard(self)

        return TlsHandshake
