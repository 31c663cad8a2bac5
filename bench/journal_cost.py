"""Benchmark: what journaling costs a card payment end to end (issue 9's target: at most 15%).

The same load as :mod:`bench.e2e` (0200 purchases over TCP -> hub -> RabbitMQ quorum queues ->
``mainframe_sim`` -> 0210) against two hubs that differ in one setting: ``[hub] journal =
true`` (every transaction's events appended, hash-chained, in batches by
:class:`hub.journaling.JournalWriter`) and ``journal = false`` (no events). The two run in
turns (on, off, on, off, ...) against one simulator in the same run, each with a fresh state
directory and a warm-up, so that the noise of this shared machine falls on both alike; the
medians are compared. Reported per hub:

- sustained payments per second (saturated: ``--connections`` x ``--window`` in flight);
- the hub's CPU per payment (``/proc``: its process and its children, the journal writer
  process among them), the steadier figure on a busy machine;
- the CPU per payment of the hub, ``mainframe_sim`` and this client together: on a machine
  whose cores they share, throughput follows that total (RabbitMQ's, left out of it, is
  the same with and without the journal, and other runs on a shared machine use the
  broker too).

The cost is ``1 - with / without`` for throughput, and ``with / without - 1`` for CPU; the
journal's share of the total is ``(total with - total without) / total with``.

Run (RabbitMQ on 127.0.0.1:5672, as ``./scripts/test`` starts it)::

    .venv/bin/python -m bench.journal_cost [--seconds 8] [--rounds 3] [--connections 16]
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


def _hub_round(
    home: Path, journal: bool, mainframe: tuple[int, int], load: tuple[int, int, float], first: int
) -> Result:
    """One hub process with ``journal`` on or off, warmed up, then measured at saturation."""
    mainframe_port, mainframe_pid = mainframe
    edge_port = _free_port()
    home.mkdir()
    config = home / "hub.toml"
    config.write_text(
        f'[hub]\nhome = "{home / "state"}"\njournal = {str(journal).lower()}\n'
        f'[routing]\ntransport = "{AMQP_URL}"\n'
        f"[[listeners]]\nname = 'pos'\nport = {edge_port}\nrequest_timeout = 10.0\n"
        f"[mainframe]\nport = {mainframe_port}\nconnections = 8\ntimeout = 5.0\n"
    )
    return measure_hub(
        f"journal {'on' if journal else 'off'}", config, edge_port, mainframe_pid, load, first
    )


def run(seconds: float, rounds: int, connections: int, window: int) -> list[str]:
    results: dict[bool, list[Result]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="isobridge-journal-cost-") as tmp:
        root = Path(tmp)
        mainframe_port = _free_port()
        mainframe = [
            sys.executable, "-m", "mainframe_sim", "--db", f"sqlite:///{root / 'ledger.db'}",
            "serve", "--port", str(mainframe_port),
        ]  # fmt: skip
        with _process(mainframe, mainframe_port, {}, root / "mainframe.log") as mainframe_pid:
            for number in range(rounds * 2):
                journal = number % 2 == 0
                results[journal].append(
                    _hub_round(
                        root / f"hub{number}", journal, (mainframe_port, mainframe_pid),
                        (connections, window, seconds), first=1 + number * 10_000_000,
                    )
                )  # fmt: skip
    lines = [
        f"journal cost: {connections} connections x {window} in flight, {seconds:g} s per"
        f" round, {rounds} rounds each, RabbitMQ {AMQP_URL.split('@')[-1]}"
    ]
    medians: dict[bool, tuple[float, float, float]] = {}
    for journal in (True, False):
        rates = [r.tps for r in results[journal]]
        cpus = [cpu_per_payment(r, "hub") for r in results[journal]]
        totals = [
            sum(cpu_per_payment(r, name) for name in ("hub", "mainframe_sim", "client"))
            for r in results[journal]
        ]
        medians[journal] = (
            statistics.median(rates),
            statistics.median(cpus),
            statistics.median(totals),
        )
        lines.append(
            f"  journal {'on ' if journal else 'off'}: "
            + ", ".join(f"{rate:,.0f}/s" for rate in rates)
            + f" (median {medians[journal][0]:,.0f}/s); hub CPU per payment "
            + ", ".join(f"{cpu * 1e6:,.0f}" for cpu in cpus)
            + f" us (median {medians[journal][1] * 1e6:,.0f} us); hub + sim + client "
            + ", ".join(f"{cpu * 1e6:,.0f}" for cpu in totals)
            + f" us (median {medians[journal][2] * 1e6:,.0f} us)"
        )
    (with_rate, with_cpu, with_total) = medians[True]
    (without_rate, without_cpu, without_total) = medians[False]
    lines.append(
        f"  cost of journaling: throughput {1 - with_rate / without_rate:+.1%}"
        f" (with / without {with_rate / without_rate:.2f}x),"
        f" hub CPU per payment {with_cpu / without_cpu - 1:+.1%}"
        f" ({(with_cpu - without_cpu) * 1e6:+,.0f} us), hub + sim + client CPU per payment"
        f" {(with_total - without_total) * 1e6:+,.0f} us"
        f" ({(with_total - without_total) / with_total:.1%} of the total with the journal)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    return hub_rounds_main(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
