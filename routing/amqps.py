"""``amqps://``: AMQP 0-9-1 to RabbitMQ over TLS 1.3 (RFC 8446), never over plain TCP.

An ``amqps://`` URL (port 5671 unless given; node lists as for ``amqp://``, see
:func:`routing.amqp.node_urls`) connects over TLS; ``amqp://`` never does. TLS settings given
with an ``amqp://`` URL are an error, not ignored: traffic meant to be encrypted is never sent
in the clear.

- :class:`BrokerTls`: the client context (built by the caller: the hub builds it with
  :func:`hub.tls.client_context` from ``[routing.tls]``: TLS 1.3 only, the broker's
  certificate verified against the configured CA and its host name, the hub's own certificate
  presented for mutual TLS), the name to check instead of each node's host, and whether to log
  in with the client certificate (SASL ``EXTERNAL``, RabbitMQ's ``rabbitmq_auth_mechanism_ssl``
  plugin) instead of the URL's user name and password.
- Without a :class:`BrokerTls`, an ``amqps://`` URL gets :func:`default_context`: the system's
  trusted CAs, TLS 1.3 only, host names checked.
- :func:`tls_refusal`: a failed TLS handshake with the broker in words (pika reports it as
  the text of an exception): the broker's certificate refused (not from the configured CA,
  expired, wrong name), the hub's certificate refused or missing, no TLS 1.3.

RabbitMQ's TLS guide: https://www.rabbitmq.com/docs/ssl.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any

import pika
import pika.credentials

__all__ = ["BrokerTls", "apply_tls", "default_context", "tls_refusal"]


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """How to connect to an ``amqps://`` broker: the client ``context``, the certificate
    name to check (``server_name``; default: each node's host) and ``external``: log in as
    the client certificate's identity (SASL EXTERNAL) rather than with a password."""

    context: ssl.SSLContext
    server_name: str | None = None
    external: bool = False


def default_context() -> ssl.SSLContext:
    """TLS 1.3 only, the system's trusted CAs, host names checked."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def apply_tls(parameters: Any, scheme: str, tls: BrokerTls | None) -> None:
    """Set pika's ``SSLOptions`` (and, for EXTERNAL, its credentials) on ``parameters`` of
    one node; ``ValueError`` when TLS settings come with a plain ``amqp://`` URL.

    >>> import pika
    >>> parameters = pika.URLParameters("amqps://hub:pw@mq1/%2F")
    >>> apply_tls(parameters, "amqps", None)
    >>> parameters.port, parameters.ssl_options.context.minimum_version.name
    (5671, 'TLSv1_3')
    >>> apply_tls(pika.URLParameters("amqp://mq1/"), "amqp", BrokerTls(default_context()))
    Traceback (most recent call last):
    ValueError: TLS settings are given but the URL is amqp:// (plain TCP): use amqps://
    """
    if scheme != "amqps":
        if tls is not None:
            raise ValueError(
                "TLS settings are given but the URL is amqp:// (plain TCP): use amqps://"
            )
        return
    context = tls.context if tls is not None else default_context()
    if context.minimum_version < ssl.TLSVersion.TLSv1_3:
        raise ValueError("the TLS context allows versions before TLS 1.3")
    server_name = (tls.server_name if tls is not None else None) or parameters.host
    parameters.ssl_options = pika.SSLOptions(context, server_name)
    if tls is not None and tls.external:
        parameters.credentials = pika.credentials.ExternalCredentials()


# OpenSSL's reason in an SSLError's text: "[SSL: CERTIFICATE_VERIFY_FAILED] certificate ..."
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\] ([^(]*)")
_VERSION_REASONS = frozenset(
    {
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
    }
)
_OUR_CERTIFICATE_REFUSED = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "no client certificate presented (the broker requires "
    "one: set [routing.tls] cert and key)",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker refused the hub's client certificate: not issued by "
    "a CA it trusts",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker refused the hub's client certificate: expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused the hub's client certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the broker refused the hub's client certificate",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the broker refused the hub's client certificate",
    "TLSV1_ALERT_ACCESS_DENIED": "the broker refused the hub's client certificate",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the broker refused the handshake (no common TLS 1.3 "
    "cipher suite, or a certificate it will not accept)",
}


def _innermost(error: BaseException) -> BaseException:
    """The error under pika's wrappers (a workflow's last attempt, a phase's cause)."""
    for _ in range(8):
        exceptions = getattr(error, "exceptions", None)
        inner = getattr(error, "exception", None)
        if isinstance(exceptions, tuple) and exceptions:
            error = exceptions[-1]
        elif isinstance(inner, BaseException):
            error = inner
        elif error.args and isinstance(error.args[0], BaseException):
            error = error.args[0]
        else:
            break
    return error


def tls_refusal(error: BaseException | str) -> str | None:
    """Why a TLS handshake with the broker failed, from what pika reports (an exception that
    wraps the :class:`ssl.SSLError`, or only its text); ``None`` when it is not about TLS.

    >>> print(tls_refusal("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:"
    ...                   " certificate has expired (_ssl.c:1006)"))
    the broker's certificate was refused: certificate has expired
    >>> tls_refusal("SSLError(1, '[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol"
    ...             " version (_ssl.c:1006)')")
    'the broker does not speak TLS 1.3 (TLS 1.2 or older offered: only TLS 1.3 is accepted)'
    >>> tls_refusal("ConnectionRefusedError: [Errno 111] Connection refused") is None
    True
    """
    texts = [error] if isinstance(error, str) else [str(_innermost(error)), repr(error)]
    found = next((hit for text in texts if (hit := _SSL_REASON.search(text))), None)
    if found is None:
        return None
    reason, words = found.group(1), found.group(2).strip().rstrip(":").strip()
    if reason == "CERTIFICATE_VERIFY_FAILED":
        detail = words.partition("certificate verify failed:")[2].strip() or words
        if detail in {
            "unable to get local issuer certificate",
            "unable to get issuer certificate",
            "certificate signature failure",
            "self-signed certificate in certificate chain",
        }:
            detail += " (not issued by the configured CA)"
        elif detail == "self-signed certificate":
            detail += " (no configured CA vouches for it)"
        elif "mismatch" in detail:
            detail += " (check [routing.tls] server_name)"
        return f"the broker's certificate was refused: {detail}"
    if reason in _VERSION_REASONS:
        return (
            "the broker does not speak TLS 1.3 (TLS 1.2 or older offered: only TLS 1.3 is accepted)"
        )
    if reason == "WRONG_VERSION_NUMBER":
        return "the broker did not answer in TLS (is it a plain amqp:// port?)"
    if reason in _OUR_CERTIFICATE_REFUSED:
        return _OUR_CERTIFICATE_REFUSED[reason]
    return f"TLS handshake failed: {words or reason} ({reason})"
