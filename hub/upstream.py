"""Upstream ISO 8583 hosts: card requests the route rules send to another switch or issuer.

A route-rule destination named ``upstream.<name>`` is served by the ``[[upstreams]]`` entry
called ``<name>``: the canonical request is encoded with that host's ISO 8583 variant (the
card number detokenized through the vault, audited, since the host needs it), sent over a
:class:`hub.connector.RecordConnector` (a pool of TCP connections in the host's framing,
pipelined, timeouts, reconnection, a circuit breaker; mutual TLS 1.3 with
``[upstreams.tls]``), and the host's response is decoded
back (the PAN tokenized again) into the canonical reply.

Requests and responses are matched the ISO 8583 way (jPOS's MUX): by the MTI class and
fields 41 (terminal) and 11 (STAN), which a response echoes. When the host cannot be asked
(breaker open, no connection, its TLS handshake refused) or does not answer in time, the
reply is ``91``; the hub does
not store a reversal for an upstream host, whose own store-and-forward rules apply (the
acquirer's 0420 is routed like any request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import iso8583

from adapters.base import Adapter, AdapterDecodeError, AdapterEncodeError, EncodeContext
from adapters.framing import get_framer
from adapters.iso8583.mti import correlation_class
from canonical_model.messages import CanonicalMessage
from hub.bootstrap import Hub
from hub.breaker import CircuitBreaker
from hub.config_file import UpstreamConfig
from hub.connector import ConnectorError, ConnectorSettings, RecordConnector
from hub.core import immediate_answer

__all__ = ["UpstreamHost", "iso8583_match_key"]

_log = logging.getLogger("isobridge.upstream")

ISSUER_INOPERATIVE = "91"
SYSTEM_MALFUNCTION = "96"


def iso8583_match_key(spec: Mapping[str, Mapping[str, Any]]) -> Callable[[bytes], bytes]:
    """The key that matches a response to its request in ``spec``'s encoding: MTI class,
    field 41, field 11. Raises ``ValueError`` for bytes that do not decode."""

    def key(message: bytes) -> bytes:
        try:
            fields, _ = iso8583.decode(message, spec)
        except iso8583.DecodeError:
            raise ValueError("not an ISO 8583 message of this variant") from None
        mti = str(fields.get("t", ""))
        return f"{correlation_class(mti)}:{fields.get('41', '')}:{fields.get('11', '')}".encode()

    return key


class UpstreamHost:
    """One ``[[upstreams]]`` host (see the module docstring)."""

    def __init__(self, config: UpstreamConfig, hub: Hub, *, tenant: str) -> None:
        from adapters.iso8583.specs import SPECS

        self.config = config
        self.hub = hub
        self.tenant = tenant
        adapter: Adapter = hub.adapter(config.adapter)
        self.adapter = adapter
        variant = adapter.variant
        match = iso8583_match_key(SPECS[variant])
        framer = get_framer(config.framing)
        self.connector = RecordConnector(
            ConnectorSettings(
                name=f"upstream {config.name} {config.host}:{config.port}",
                host=config.host,
                port=config.port,
                request_framer=framer,
                reply_framer=framer,
                request_key=match,
                reply_key=match,
                connections=config.connections,
                timeout=config.timeout,
                tls=config.tls.client_context() if config.tls is not None else None,
                server_name=config.tls.server_name if config.tls is not None else None,
            ),
            CircuitBreaker(
                f"upstream {config.name}",
                failure_threshold=config.failure_threshold,
                reset_after=config.reset_after,
            ),
        )

    async def start(self) -> None:
        """Start connecting (a host down at start-up is retried in the background)."""
        await self.connector.start()

    async def close(self) -> None:
        """Close the connections."""
        await self.connector.close()

    async def handle(self, request: CanonicalMessage) -> CanonicalMessage:
        """The host's reply to ``request`` (``91`` / ``96`` when there is none)."""
        context: EncodeContext = self.hub.encode_context(self.adapter, request.tenant)
        try:
            payload = self.adapter.encode(request, context)
        except AdapterEncodeError as exc:
            _log.error("cannot encode %s for %s: %s", request.ids.message_id, self.config.name, exc)
            return immediate_answer(request, SYSTEM_MALFUNCTION)
        try:
            raw = await self.connector.request(payload)
        except ConnectorError as exc:
            _log.warning("upstream %s: %s", self.config.name, exc)
            return immediate_answer(request, ISSUER_INOPERATIVE)
        try:
            answer = self.adapter.decode(raw, self.hub.decode_context(request.tenant))
        except AdapterDecodeError as exc:
            _log.error("undecodable answer from %s: %s", self.config.name, exc)
            return immediate_answer(request, SYSTEM_MALFUNCTION)
        return answer
