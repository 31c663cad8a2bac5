"""amqps://: the transport over TLS 1.3 with mutual TLS to a RabbitMQ node of the tests' own
(tests/tls_broker.py: TLS listener only, client certificates required), its refusals (wrong
CA either way, no client certificate, an expired one either way, a wrong name, TLS 1.2, a
plain port; an expired broker certificate and a TLS 1.2 listener from a stand-in server)
reported at once with the broker and the reason, and SASL EXTERNAL (the certificate as the
login). The shared behaviour over amqps runs in test_transport.py (backend ``amqps``)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from hub.tls import client_context
from routing.amqp import AmqpTransport, node_parameters
from routing.amqps import BrokerTls
from routing.transport import Topology, TransportUnavailableError
from tests.certs import TestAuthority
from tests.routing.conftest import (
    LoopThread,
    amqp_url,
    delete_topology,
    make_topology,
    message,
    require_broker,
)
from tests.tls_broker import TlsBroker


@pytest.fixture
def topology(tls_broker: TlsBroker) -> Iterator[Topology]:
    topology = make_topology()
    yield topology
    with contextlib.suppress(pika.exceptions.AMQPError):
        delete_topology(tls_broker.url, topology, tls=tls_broker.tls())


def _refusal(url: str, tls: BrokerTls | None, *, on_loop: bool = False) -> str:
    """The error of starting a transport that must be refused (long before its timeout)."""
    transport = AmqpTransport(url, make_topology(), tls=tls, reconnect_delays=(0.05,))
    loop = LoopThread() if on_loop else None
    try:
        with pytest.raises(TransportUnavailableError) as caught:
            _start(transport, loop)
    finally:
        if loop is not None:
            loop.close()
    return str(caught.value)


def _start(transport: AmqpTransport, loop: LoopThread | None) -> None:
    # 60 s: a refusal must end the start at once, not when the timeout runs out
    if loop is None:
        transport.start(timeout=60)
    else:
        loop.run(transport.start_async(timeout=60), timeout=90)


def test_mutual_tls_publishes_and_consumes_over_tls_1_3(
    tls_broker: TlsBroker, topology: Topology
) -> None:
    with AmqpTransport(tls_broker.url, topology, tls=tls_broker.tls()) as transport:
        transport.publish(message(1))
        assert transport.queue_depth(topology.queue("core")) == 1
    # what the broker negotiated, seen from a plain pika connection with the same settings
    connection = pika.BlockingConnection(node_parameters(tls_broker.url, tls_broker.tls()))
    try:
        stream = connection._impl._transport._sock  # the TLS socket itself
        assert stream.version() == "TLSv1.3"
    finally:
        connection.close()


def test_the_certificate_logs_in_with_sasl_external(
    tls_broker: TlsBroker, topology: Topology
) -> None:
    url = f"amqps://localhost:{tls_broker.port}/%2F"  # no user name, no password
    with AmqpTransport(url, topology, tls=tls_broker.tls(external=True)) as transport:
        transport.publish(message(1))
        assert transport.queue_depth(topology.queue("core")) == 1


@pytest.mark.parametrize("on_loop", [False, True], ids=["thread", "loop"])
def test_a_broker_certificate_from_another_ca_is_refused_at_once(
    tls_broker: TlsBroker, tmp_path: Path, on_loop: bool
) -> None:
    other = TestAuthority(tmp_path / "other")
    hub = other.issue("hub", "isobridge hub", server=False)
    tls = BrokerTls(client_context(other.files.cert, hub.cert, hub.key))
    text = _refusal(tls_broker.url, tls, on_loop=on_loop)
    assert text == (
        f"the broker at amqps://guest:***@localhost:{tls_broker.port}/%2F: TLS with"
        f" localhost:{tls_broker.port} refused: the broker's certificate was refused:"
        " self-signed certificate in certificate chain (not issued by the configured CA)"
    )


def test_a_wrong_server_name_is_refused(tls_broker: TlsBroker) -> None:
    base = tls_broker.tls()
    text = _refusal(tls_broker.url, BrokerTls(base.context, server_name="mq.bank.example"))
    assert "the broker's certificate was refused: Hostname mismatch" in text
    assert "(check [routing.tls] server_name)" in text


def test_no_client_certificate_is_refused_by_the_broker(tls_broker: TlsBroker) -> None:
    tls = BrokerTls(client_context(tls_broker.certs / "ca.crt"))
    text = _refusal(tls_broker.url, tls)
    assert text.endswith(
        "refused: no client certificate presented (the broker requires one:"
        " set [routing.tls] cert and key)"
    )


@pytest.mark.parametrize("expired", [False, True], ids=["other-ca", "expired"])
def test_a_client_certificate_the_broker_does_not_trust_is_refused(
    tls_broker: TlsBroker, tmp_path: Path, expired: bool
) -> None:
    if expired:
        authority = _broker_authority(tls_broker, tmp_path)
    else:
        authority = TestAuthority(tmp_path / "other")
    hub = authority.issue("hub", "isobridge hub", server=False, expired=expired)
    ca = tls_broker.certs / "ca.crt"
    text = _refusal(tls_broker.url, BrokerTls(client_context(ca, hub.cert, hub.key)))
    assert "refused: the broker refused the hub's client certificate" in text
    assert ("expired" in text) == expired


def _broker_authority(tls_broker: TlsBroker, tmp_path: Path) -> TestAuthority:
    """The broker's own CA (isobridge certs dev's, in its certs/), to sign with."""
    directory = tmp_path / "broker-ca"
    directory.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copyfile(tls_broker.certs / name, directory / name)
    return TestAuthority.existing(directory)


def test_the_broker_refuses_a_tls_1_2_client(tls_broker: TlsBroker) -> None:
    context = ssl.create_default_context(cafile=str(tls_broker.certs / "ca.crt"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(
        tls_broker.certs / "hub-client.crt", tls_broker.certs / "hub-client.key"
    )
    with (
        socket.create_connection(("localhost", tls_broker.port), 10) as raw,
        pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"),
    ):
        context.wrap_socket(raw, server_hostname="localhost")


@contextlib.contextmanager
def _tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A TLS server on a free port standing in for a broker's listener that the hub must
    refuse (TLS 1.2 only, an expired certificate): the handshake fails before any AMQP."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with raw, contextlib.suppress(OSError):
                raw.settimeout(10)
                context.wrap_socket(raw, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_tls_1_2_only_broker_is_refused_never_downgraded(tls_broker: TlsBroker) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls_broker.certs / "rabbitmq.crt", tls_broker.certs / "rabbitmq.key")
    with _tls_server(context) as port:
        text = _refusal(f"amqps://guest:guest@localhost:{port}/%2F", tls_broker.tls())
    assert text.endswith(
        f"TLS with localhost:{port} refused: the broker does not speak TLS 1.3"
        " (TLS 1.2 or older offered: only TLS 1.3 is accepted)"
    )


def test_a_broker_with_an_expired_certificate_is_refused(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    expired = _broker_authority(tls_broker, tmp_path).issue(
        "broker", "isobridge dev broker", server=True, expired=True
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(expired.cert, expired.key)
    with _tls_server(context) as port:
        text = _refusal(f"amqps://guest:guest@localhost:{port}/%2F", tls_broker.tls())
    assert text.endswith(
        f"TLS with localhost:{port} refused: the broker's certificate was refused:"
        " certificate has expired"
    )


def test_amqps_to_a_plain_amqp_port_is_refused(tls_broker: TlsBroker) -> None:
    url = amqp_url()
    require_broker(url)
    plain = url.replace("amqp://", "amqps://", 1)
    text = _refusal(plain, tls_broker.tls())
    assert "refused: the broker did not answer in TLS (is it a plain amqp:// port?)" in text


def test_tls_settings_with_a_plain_url_are_an_error_not_ignored(tls_broker: TlsBroker) -> None:
    with pytest.raises(TransportUnavailableError) as caught:
        AmqpTransport(
            "amqp://guest:guest@localhost:5672/%2F", make_topology(), tls=tls_broker.tls()
        )
    assert str(caught.value) == (
        "bad broker URL amqp://guest:***@localhost:5672/%2F: TLS settings are given but the"
        " URL is amqp:// (plain TCP): use amqps://"
    )


def test_a_node_list_over_tls_goes_on_to_the_node_that_answers(
    tls_broker: TlsBroker, topology: Topology
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = int(probe.getsockname()[1])
    url = f"amqps://guest:guest@localhost:{dead},localhost:{tls_broker.port}/%2F"
    with AmqpTransport(url, topology, tls=tls_broker.tls(), reconnect_delays=(5.0,)) as transport:
        assert transport.connected_node == ("localhost", tls_broker.port)
        transport.publish(message(1))
        assert transport.queue_depth(topology.queue("core")) == 1


def test_operator_tools_over_tls_name_the_refusal(tls_broker: TlsBroker, tmp_path: Path) -> None:
    """Dead-letter reads use a blocking connection of their own: refused the same way."""
    other = TestAuthority(tmp_path / "other")
    transport = AmqpTransport(
        tls_broker.url, make_topology(), tls=BrokerTls(client_context(other.files.cert))
    )
    with pytest.raises(TransportUnavailableError) as caught:
        transport.dead_letters("core")
    assert str(caught.value).startswith(
        f"cannot reach the broker at amqps://guest:***@localhost:{tls_broker.port}/%2F:"
        " TLS refused: the broker's certificate was refused:"
    )
