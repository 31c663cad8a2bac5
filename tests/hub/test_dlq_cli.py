"""``isobridge dlq ...`` through ``main``, against the RabbitMQ of the tests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.cli import main
from routing.amqp import AmqpTransport
from routing.transport import Outcome, Topology, as_batch_handler
from tests.certs import TestAuthority
from tests.routing.conftest import (
    amqp_url,
    delete_topology,
    make_topology,
    message,
    require_broker,
    wait_until,
)
from tests.tls_broker import TlsBroker


def run(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err, environ=environ or {})
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def parked() -> Iterator[tuple[dict[str, str], Topology, AmqpTransport]]:
    """A topology with m-0 (financial) and m-1 (authorization) parked on core's DLQ."""
    url = amqp_url()
    require_broker(url)
    topology = make_topology()
    transport = AmqpTransport(url, topology)
    transport.start(timeout=20)
    try:
        consumer = transport.consume(
            "core",
            as_batch_handler(
                lambda d: Outcome.dead_letter(
                    f"card 4111111111111111 of {d.message.ids.message_id}"
                )
            ),
        )
        transport.publish(message(0))
        transport.publish(message(1), "authorization.request.acme")
        wait_until(lambda: len(transport.dead_letters("core")) == 2, what="two dead letters")
        consumer.stop()
        environ = {"ISOBRIDGE_TRANSPORT_URL": url}
        yield environ, topology, transport
    finally:
        transport.close()
        delete_topology(url, topology)


def test_list_shows_reasons_without_a_pan(
    parked: tuple[dict[str, str], Topology, AmqpTransport],
) -> None:
    environ, topology, _ = parked
    status, out, err = run(
        "dlq", "--prefix", topology.prefix, "list", "-d", "core", environ=environ
    )
    assert status == 0, err
    assert "m-0" in out and "m-1" in out
    assert "card 411111******1111 of m-0" in out
    assert "4111111111111111" not in out
    assert err == "2 parked message(s) on core\n"
    status, out, _ = run(
        "dlq",
        "--prefix",
        topology.prefix,
        "list",
        "-d",
        "core",
        "--routing-key",
        "authorization.request.acme",
        "--json",
        environ=environ,
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["message_id"], r["original_routing_key"], r["attempts"]) for r in rows] == [
        ("m-1", "authorization.request.acme", 1)
    ]


def test_show_prints_one_message_in_full(
    parked: tuple[dict[str, str], Topology, AmqpTransport],
) -> None:
    environ, topology, _ = parked
    status, out, _ = run(
        "dlq", "--prefix", topology.prefix, "show", "-d", "core", "m-1", environ=environ
    )
    assert status == 0
    shown = json.loads(out)
    assert shown["body"]["ids"] == {"message_id": "m-1"}
    assert shown["original_exchange"] == topology.exchange
    assert shown["headers"]["x-isobridge-kind"] == "financial"
    assert shown["original_routing_key"] == "authorization.request.acme"
    status, _, err = run(
        "dlq", "--prefix", topology.prefix, "show", "-d", "core", "m-9", environ=environ
    )
    assert (status, err) == (1, "isobridge: no parked message with id 'm-9' on core\n")


def test_replay_dry_run_then_for_real(
    parked: tuple[dict[str, str], Topology, AmqpTransport],
) -> None:
    environ, topology, transport = parked
    args = ("dlq", "--prefix", topology.prefix, "replay", "-d", "core", "--id", "m-0")
    status, out, _ = run(*args, "--dry-run", environ=environ)
    assert status == 0
    assert out.endswith("would replay 1 message(s) from core (filter: message id in ['m-0'])\n")
    assert len(transport.dead_letters("core")) == 2
    status, out, _ = run(*args, environ=environ)
    assert out.endswith("replayed 1 message(s) from core (filter: message id in ['m-0'])\n")
    assert [d.message_id for d in transport.dead_letters("core")] == ["m-1"]
    assert transport.queue_depth(topology.queue("core")) == 1


def test_purge_needs_yes(parked: tuple[dict[str, str], Topology, AmqpTransport]) -> None:
    environ, topology, transport = parked
    args = ("dlq", "--prefix", topology.prefix, "purge", "-d", "core", "--reason", "m-1")
    status, _, err = run(*args, environ=environ)
    assert (status, err) == (
        2,
        "isobridge: purge deletes for good: add --yes (or --dry-run to see what)\n",
    )
    status, out, _ = run(*args, "--yes", environ=environ)
    assert status == 0
    assert out.endswith("purged 1 message(s) from core (filter: reason contains 'm-1')\n")
    assert [d.message_id for d in transport.dead_letters("core")] == ["m-0"]


def test_without_a_broker_url_the_answer_says_how_to_give_one() -> None:
    status, _, err = run("dlq", "list", "-d", "core")
    assert status == 2
    assert "--transport-url amqp://... or $ISOBRIDGE_TRANSPORT_URL" in err


def test_a_missing_queue_is_a_clear_error() -> None:
    url = amqp_url()
    require_broker(url)
    status, _, err = run(
        "dlq",
        "--prefix",
        "nosuchprefix",
        "list",
        "-d",
        "core",
        environ={"ISOBRIDGE_TRANSPORT_URL": url},
    )
    assert status == 1
    assert err.startswith("isobridge: queue 'nosuchprefix.core.dlq': NOT_FOUND - no queue")


def test_a_broker_that_is_down_is_a_clear_error() -> None:
    status, _, err = run(
        "dlq",
        "--connect-timeout",
        "0.5",
        "list",
        "-d",
        "core",
        environ={"ISOBRIDGE_TRANSPORT_URL": "amqp://guest:guest@127.0.0.1:1/"},
    )
    assert status == 1
    assert err.startswith(
        "isobridge: cannot reach the broker at amqp://guest:***@127.0.0.1:1/ after "
    )


def test_over_amqps_with_a_client_certificate_and_a_refusal(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    certs = tls_broker.certs
    tls = ["--tls-ca", str(certs / "ca.crt"), "--tls-cert", str(certs / "hub-client.crt")]
    tls += ["--tls-key", str(certs / "hub-client.key")]
    environ = {"ISOBRIDGE_TRANSPORT_URL": tls_broker.url}
    status, _, err = run(
        "dlq", *tls, "--prefix", "nosuchprefix", "list", "-d", "core", environ=environ
    )
    assert status == 1  # connected over TLS: the broker answered that the queue is missing
    assert err.startswith("isobridge: queue 'nosuchprefix.core.dlq': NOT_FOUND - no queue")
    other = TestAuthority(tmp_path / "other")
    status, _, err = run(
        "dlq", "--tls-ca", str(other.files.cert), "list", "-d", "core", environ=environ
    )
    assert status == 1
    assert err.startswith(
        f"isobridge: the broker at amqps://guest:***@localhost:{tls_broker.port}/%2F: TLS with"
        f" localhost:{tls_broker.port} refused: the broker's certificate was refused:"
    )
    status, _, err = run("dlq", "--tls-cert", "x.crt", "list", "-d", "core", environ=environ)
    assert (status, err.strip()) == (
        2,
        "isobridge: --tls-cert, --tls-key and --tls-server-name need --tls-ca",
    )
