"""Benchmark: what mutual TLS 1.3 costs a card payment end to end (issue 12, item 1).

The load of :mod:`bench.e2e` (0200 purchases over TCP -> hub -> RabbitMQ quorum queues ->
``mainframe_sim`` -> 0210) against two hubs that differ in one thing: with TLS, the
acquirers' connections to the edge and the hub's connections to the mainframe are mutual
TLS 1.3 (``[listeners.tls]`` with ``client_ca``, ``[mainframe.tls]``; the simulator with
``--tls-client-ca``), on certificates from :func:`hub.certs.create_dev_certificates` (ECDSA
P-256); without, the same over plain TCP. Two simulators (one with TLS, one without) serve
the whole run; the hubs run in turns (TLS, plain, TLS, plain, ...) with a fresh state
directory and a warm-up each, so that the noise of this shared machine falls on both alike,
and the medians are compared:

- sustained payments per second (saturated: ``--connections`` x ``--window`` in flight);
- CPU per payment of the hub process and of the simulator (``/proc``).

Connections are long-lived (as card switches keep them), so the figure is the cost of
encrypting and decrypting the records, with the handshakes amortised; the handshakes
themselves happen once per connection (16 acquirer connections, 8 to the mainframe).

Run (RabbitMQ on 127.0.0.1:5672, as ``./scripts/test`` starts it)::

    .venv/bin/python -m bench.tls_cost [--seconds 8] [--rounds 3] [--connections 16]
        [--window 8]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from bench.e2e import (
    AMQP_URL,
    Result,
    _free_port,
    _process,
    cpu_per_payment,
    hub_rounds_main,
    measure_hub,
)
from hub.certs import DevCertificates, create_dev_certificates
from hub.tls import client_context


def _hub_round(
    home: Path,
    certs: DevCertificates | None,
    mainframe: tuple[int, int],
    load: tuple[int, int, float],
    first: int,
) -> Result:
    """One hub process, with mutual TLS when ``certs`` are given, warmed up, then measured."""
    mainframe_port, mainframe_pid = mainframe
    edge_port = _free_port()
    home.mkdir()
    listener_tls = mainframe_tls = ""
    acquirer = None
    if certs is not None:
        leaves, ca = certs.leaves, certs.ca.cert
        listener_tls = (
            f'[listeners.tls]\ncert = "{leaves["hub-edge"].cert}"\n'
            f'key = "{leaves["hub-edge"].key}"\nclient_ca = "{ca}"\n'
        )
        mainframe_tls = (
            f'[mainframe.tls]\nca = "{ca}"\ncert = "{leaves["hub-client"].cert}"\n'
            f'key = "{leaves["hub-client"].key}"\nserver_name = "localhost"\n'
        )
        acquirer = client_context(ca, leaves["acquirer"].cert, leaves["acquirer"].key)
    config = home / "hub.toml"
    config.write_text(
        f'[hub]\nhome = "{home / "state"}"\n'
        f'[routing]\ntransport = "{AMQP_URL}"\n'
        f"[[listeners]]\nname = 'pos'\nport = {edge_port}\nrequest_timeout = 10.0\n"
        + listener_tls
        + f"[mainframe]\nport = {mainframe_port}\nconnections = 8\ntimeout = 5.0\n"
        + mainframe_tls
    )
    name = "mutual TLS 1.3" if certs else "plain TCP"
    return measure_hub(name, config, edge_port, mainframe_pid, load, first, tls=acquirer)


def run(seconds: float, rounds: int, connections: int, window: int) -> list[str]:
    results: dict[bool, list[Result]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="isobridge-tls-cost-") as tmp:
        root = Path(tmp)
        certs = create_dev_certificates(root / "certs", days=1)
        leaves = certs.leaves
        ports = {True: _free_port(), False: _free_port()}
        base = [sys.executable, "-m", "mainframe_sim"]
        plain = [*base, "--db", f"sqlite:///{root / 'plain.db'}", "serve", "--port",
                 str(ports[False])]  # fmt: skip
        secured = [*base, "--db", f"sqlite:///{root / 'tls.db'}", "serve", "--port",
                   str(ports[True]), "--tls-cert", str(leaves["mainframe"].cert),
                   "--tls-key", str(leaves["mainframe"].key),
                   "--tls-client-ca", str(certs.ca.cert)]  # fmt: skip
        with (
            _process(plain, ports[False], {}, root / "plain.log") as plain_pid,
            _process(secured, ports[True], {}, root / "tls.log") as tls_pid,
        ):
            pids = {True: tls_pid, False: plain_pid}
            for number in range(rounds * 2):
                tls = number % 2 == 0
                results[tls].append(
                    _hub_round(
                        root / f"hub{number}", certs if tls else None, (ports[tls], pids[tls]),
                        (connections, window, seconds), first=1 + number * 10_000_000,
                    )
                )  # fmt: skip
    lines = [
        f"TLS cost: {connections} connections x {window} in flight, {seconds:g} s per round,"
        f" {rounds} rounds each, RabbitMQ {AMQP_URL.split('@')[-1]}"
    ]
    medians: dict[bool, tuple[float, float, float]] = {}
    for tls in (True, False):
        rates = [r.tps for r in results[tls]]
        hub_cpu = [cpu_per_payment(r, "hub") for r in results[tls]]
        mainframe_cpu = [cpu_per_payment(r, "mainframe_sim") for r in results[tls]]
        medians[tls] = (
            statistics.median(rates),
            statistics.median(hub_cpu),
            statistics.median(mainframe_cpu),
        )
        lines.append(
            f"  {'mutual TLS 1.3' if tls else 'plain TCP     '}: "
            + ", ".join(f"{rate:,.0f}/s" for rate in rates)
            + f" (median {medians[tls][0]:,.0f}/s); hub CPU per payment "
            + ", ".join(f"{cpu * 1e6:,.0f}" for cpu in hub_cpu)
            + f" us (median {medians[tls][1] * 1e6:,.0f}); mainframe_sim median"
            f" {medians[tls][2] * 1e6:,.0f} us"
        )
    (tls_rate, tls_hub, tls_mf), (plain_rate, plain_hub, plain_mf) = medians[True], medians[False]
    lines.append(
        f"  cost of mutual TLS: throughput {1 - tls_rate / plain_rate:+.1%}"
        f" (with / without {tls_rate / plain_rate:.2f}x), hub CPU per payment"
        f" {tls_hub / plain_hub - 1:+.1%} ({(tls_hub - plain_hub) * 1e6:+,.0f} us),"
        f" mainframe_sim CPU per payment {(tls_mf - plain_mf) * 1e6:+,.0f} us"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    return hub_rounds_main(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
