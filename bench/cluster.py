"""Benchmark: card payments end to end on the three-node RabbitMQ cluster, with 1, 2 and 3
hub instances, and through the loss of a broker node.

The cluster is ``scripts/rabbitmq-cluster`` (started when it does not run; ``down`` is left
to you). Each case runs ``mainframe_sim`` and ``isobridge run`` with ``workers = N`` (N hub
processes sharing the edge port and consuming the core queue as competing consumers) on the
cluster URL, and drives it like :mod:`bench.e2e` (``--connections`` ISO 8583 connections,
``--window`` purchases in flight each, for ``--seconds``), in one run:

- **the single broker**: 1 instance on the default RabbitMQ node (127.0.0.1:5672, or
  ``$ISOBRIDGE_BENCH_AMQP_URL``), what the cluster is compared with;
- **scaling**: TPS and p50 / p99 with 1, 2 and 3 instances, as ratios to the 1-instance
  figure, with the CPU per payment of each component (hub processes, simulator, the three
  RabbitMQ nodes, this client): on a 2-core machine the instances compete with the broker
  for the same cores, so the CPU figures are what to extrapolate from;
- **node kill**: one instance under the same load for 3 x ``--seconds``; ``ib1`` (the node
  every instance connects to first) is killed -9 after the first third: payments per
  second before, in the second after the kill and after it, the slowest second, and the
  answers other than 00 (a payment caught in the failover may time out: 91).

Run::

    .venv/bin/python -m bench.cluster [--seconds 10] [--connections 16] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.e2e import (
    AMQP_URL,
    Result,
    _approved,
    _cpu_meter,
    _drive,
    _free_port,
    _process,
    _purchase,
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "rabbitmq-cluster"
CLUSTER_DIR = Path("/var/tmp/isobridge-cluster")
NODES = ("ib1", "ib2", "ib3")


def _cluster(*args: str) -> str:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scripts/rabbitmq-cluster {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _node_pids() -> dict[str, int | None]:
    pids: dict[str, int | None] = {}
    for node in NODES:
        path = CLUSTER_DIR / node / "node.pid"
        pids[f"rabbitmq {node}"] = int(path.read_text().strip()) if path.exists() else None
    return pids


def _cpu_line(result: Result) -> str:
    count = len(result.latencies) or 1
    parts = [
        f"{name} {seconds / count * 1e6:,.0f} us ({seconds / result.seconds:.0%})"
        for name, seconds in result.cpu_seconds.items()
    ]
    total = sum(result.cpu_seconds.values()) / count * 1e6
    return f"    CPU per payment (share of a core): {', '.join(parts)}; all {total:,.0f} us"


class _Case:
    """mainframe_sim and ``isobridge run`` with ``workers`` instances on the cluster."""

    def __init__(self, home: Path, url: str, workers: int) -> None:
        self.home = home
        self.mainframe_port, self.edge_port = _free_port(), _free_port()
        self.config = home / "hub.toml"
        self.config.write_text(
            f'[hub]\nhome = "{home / "hub"}"\nworkers = {workers}\n'
            f'[routing]\ntransport = "{url}"\n'
            f"[[listeners]]\nname = 'pos'\nport = {self.edge_port}\nrequest_timeout = 10.0\n"
            f"[mainframe]\nport = {self.mainframe_port}\nconnections = 8\ntimeout = 5.0\n"
        )

    def mainframe(self) -> list[str]:
        return [
            sys.executable, "-m", "mainframe_sim", "--db", f"sqlite:///{self.home / 'ledger.db'}",
            "serve", "--port", str(self.mainframe_port),
        ]  # fmt: skip

    def hub(self) -> list[str]:
        return [sys.executable, "-m", "hub.cli", "run", "--config", str(self.config)]


def _scaling(url: str, workers: int, args: argparse.Namespace, name: str | None = None) -> Result:
    with tempfile.TemporaryDirectory(prefix="isobridge-cluster-bench-") as tmp:
        case = _Case(Path(tmp), url, workers)
        with (
            _process(case.mainframe(), case.mainframe_port, {}, case.home / "mf.log") as mf_pid,
            _process(
                case.hub(), case.edge_port, {"ISOBRIDGE_HOME": str(case.home / "hub")},
                case.home / "hub.log",
            ) as hub_pid,
        ):  # fmt: skip
            warm = Result("warm-up")
            asyncio.run(
                _drive(case.edge_port, warm, _purchase, _approved, connections=args.connections,
                       window=args.window, seconds=2.0, first=1)
            )  # fmt: skip
            result = Result(name or f"{workers} hub instance(s)")
            nodes = {} if name else _node_pids()
            pids = {"hub": hub_pid, "mainframe_sim": mf_pid, **nodes}
            with _cpu_meter(result, pids):
                asyncio.run(
                    _drive(case.edge_port, result, _purchase, _approved,
                           connections=args.connections, window=args.window,
                           seconds=args.seconds, first=workers * 10_000_000)
                )  # fmt: skip
            return result


def _node_kill(url: str, args: argparse.Namespace) -> list[str]:
    stamps: list[float] = []
    failed: list[float] = []

    def answered(reply: bytes) -> bool:
        now = time.perf_counter()
        stamps.append(now)
        ok = _approved(reply)
        if not ok:
            failed.append(now)
        return ok

    with tempfile.TemporaryDirectory(prefix="isobridge-cluster-bench-") as tmp:
        case = _Case(Path(tmp), url, 1)
        with (
            _process(case.mainframe(), case.mainframe_port, {}, case.home / "mf.log"),
            _process(
                case.hub(), case.edge_port, {"ISOBRIDGE_HOME": str(case.home / "hub")},
                case.home / "hub.log",
            ),
        ):  # fmt: skip
            result = Result("node kill")
            started = time.perf_counter()
            killed_at = 0.0

            async def drive_and_kill() -> None:
                nonlocal killed_at
                load = asyncio.create_task(
                    _drive(case.edge_port, result, _purchase, answered,
                           connections=args.connections, window=args.window,
                           seconds=3 * args.seconds, first=90_000_000)
                )  # fmt: skip
                await asyncio.sleep(args.seconds)
                killed_at = time.perf_counter()
                await asyncio.to_thread(_cluster, "kill", "ib1")
                await load

            asyncio.run(drive_and_kill())
    _cluster("restart", "ib1")
    seconds = int(time.perf_counter() - started) + 1
    per_second = [0] * seconds
    for stamp in stamps:
        per_second[int(stamp - started)] += 1
    kill_second = int(killed_at - started)
    before = per_second[1:kill_second]
    after = per_second[kill_second + 3 : 3 * int(args.seconds) - 1]
    slowest = min(per_second[kill_second : kill_second + 3])
    return [
        f"  node kill (ib1 killed -9 at {killed_at - started:.1f} s, 1 hub instance):",
        f"    before {sum(before) / max(1, len(before)):6.0f}/s"
        f"   the 3 s from the kill {sum(per_second[kill_second : kill_second + 3]) / 3:6.0f}/s"
        f" (slowest second {slowest}/s)"
        f"   after {sum(after) / max(1, len(after)):6.0f}/s"
        f"   answers other than 00: {len(failed)} of {len(stamps)}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args(argv)
    lines = _cluster("up").splitlines()
    url = lines[-1]
    print(
        f"cluster e2e: {args.connections} connections x {args.window} in flight,"
        f" {args.seconds:g} s per case, RabbitMQ cluster {url.split('@')[-1]}"
    )
    single = _scaling(AMQP_URL, 1, args, "1 hub instance, single broker node")
    results = [_scaling(url, workers, args) for workers in (1, 2, 3)]
    print(single.line())
    print(_cpu_line(single) + " (RabbitMQ not measured)")
    for result in results:
        ratio = result.tps / results[0].tps if results[0].tps else 0.0
        versus = result.tps / single.tps if single.tps else 0.0
        print(f"{result.line()}  {ratio:4.2f}x 1 instance, {versus:4.2f}x single node")
        print(_cpu_line(result))
    for line in _node_kill(url, args):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
