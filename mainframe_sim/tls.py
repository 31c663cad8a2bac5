"""TLS 1.3 for the simulated mainframe's listener (RFC 8446), as a z/OS AT-TLS policy would
set it up in front of a CICS sockets listener: TLS 1.3 only (every key exchange ephemeral
(EC)DHE: forward secrecy), and, with a client CA, a client certificate from that CA required
(mutual TLS: the hub proves who it is).

The standard library only (the simulator imports nothing of the hub). A refused handshake
is reported by :func:`refusal_reason` in words: expired, self-signed, not from the CA, no
client certificate, TLS 1.2 or older.
"""

from __future__ import annotations

import os
import ssl

__all__ = ["refusal_reason", "server_context"]


def server_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    client_ca: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3 server context presenting ``cert``; with ``client_ca``, client
    certificates chaining to it are required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def refusal_reason(error: BaseException) -> str:
    """Why a handshake failed, in words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        message = str(error.verify_message or error.reason)
        if message in {"unable to get local issuer certificate", "certificate signature failure"}:
            message += " (not issued by the configured CA)"
        return f"client certificate refused: {message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no client certificate presented (one from the configured CA is required)"
        if reason in {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"}:
            return "TLS 1.2 or older offered: only TLS 1.3 is accepted"
        if reason == "WRONG_VERSION_NUMBER":
            return "not a TLS 1.3 handshake (plain TCP, or an older protocol)"
        return f"TLS error: {reason}"
    if isinstance(error, TimeoutError):
        return "TLS handshake timed out"
    return f"TLS handshake failed: {error or type(error).__name__}"
