"""Benchmark: the hub's instructions per card payment, counted by callgrind, against raw pika.

On these shared virtual machines a CPU time moves 10-20% from one run to the next (the
host slows the vCPUs unseen: bench/RESULTS.md, ``bench.cpu_steadiness``), so a change worth
5% to the hub cannot be seen in ``bench.e2e``'s figures without many alternated runs. A
count of instructions does not move with the host: this benchmark runs the hub under
``valgrind --tool=callgrind`` and counts what it executes per payment, to 1-3% from run
to run.

- **hub**: ``isobridge run`` (one worker, the ``amqp://`` transport on the local RabbitMQ,
  the core banking worker calling ``python -m mainframe_sim serve`` over TCP) under
  callgrind; this process is the acquirer (0200 purchases, pyiso8583, ``--connections``
  connections, one in flight each, ``--rate`` per second: paced, so that each payment is
  handled alone, as at 500/s without callgrind). After ``--warm`` payments the counters are
  zeroed, ``--payments / --rate`` seconds without traffic are counted (the hub's timers
  and pollers: its idle cost) and dumped, then ``--payments`` payments are counted and
  dumped: instructions per payment = (payments' count - idle count) / payments.
- **floor, raw pika**: a responder written with pika alone (a blocking connection that
  consumes the requests from a quorum queue, publishes each reply to the requester's reply
  queue and acks), under callgrind the same way, with the same pacing, requests and count:
  what a process that takes a request from the broker and answers it costs with the raw
  library, nothing else. The ratio hub / floor is the figure to compare between runs and
  machines.
- **floor 3, raw relay**: ``bench.e2e_relay`` (``bench.e2e``'s floor 3: the hub's whole path
  relayed with pyiso8583 and pika alone) under callgrind, driven like the hub: what the
  payment's hops cost a Python process at the least. ``bench.e2e`` measures the hub's CPU
  per payment at 500/s against this relay's; this is the same comparison in instructions.

What is counted: user-space instructions of every thread of each process (callgrind's
``Ir``). Not counted: the kernel's side of system calls, the hub's journal writer (a child
process, not traced), RabbitMQ and the simulator. So a change that removes system calls
shows in ``bench.e2e``'s CPU times, not here. Under callgrind a process runs some 50 times
slower: keep ``--rate`` low (the default 20/s).

Needs valgrind (``apt-get install -y valgrind``) and RabbitMQ on 127.0.0.1:5672 (as
``./scripts/test`` starts it). Run::

    .venv/bin/python -m bench.e2e_instructions [--payments 200] [--rate 20] [--warm 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pika

from bench.e2e import (
    AMQP_URL,
    ROOT,
    Result,
    _approved,
    _drive,
    _free_port,
    _own_queues,
    _process,
    _purchase,
    delete_queue,
    hub_config,
)

_STARTUP_SECONDS = 600.0  # the hub's imports and start, 50 times slower


def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]


def _dump(pid: int, out: Path, dumps: int) -> int:
    """Dump ``pid``'s counters (its ``dumps``-th dump) and return the instructions in it."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    path = Path(f"{out}.{dumps}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if "\ntotals:" in text:  # the last line: the dump is whole
            for line in text.splitlines():
                if line.startswith("summary:"):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"callgrind wrote no dump {path}")


def _zero(pid: int) -> None:
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)


def _counted(pid: int, out: Path, dumps: int, work: Callable[[], object]) -> tuple[int, float]:
    """The instructions ``pid`` executed while ``work`` ran (counters zeroed before, its
    ``dumps``-th dump after), and the seconds from the zero to the dump."""
    _zero(pid)
    started = time.perf_counter()
    work()
    time.sleep(0.5)  # the last replies' acks and confirms
    count = _dump(pid, out, dumps)
    return count, time.perf_counter() - started


def measure_hub(payments: int, rate: float, warm: int, *, relay: bool = False) -> tuple[float, int]:
    """The hub's instructions per payment (net of idle), and the payments counted; with
    ``relay``, those of ``bench.e2e_relay`` (floor 3 of ``bench.e2e``) doing the same."""
    namespace = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    queue = f"bench.e2e.relay.{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, _own_queues(namespace):
        home = Path(tmp)
        mainframe_port, edge_port = _free_port(), _free_port()
        ledger = f"sqlite:///{home / 'ledger.db'}"
        mainframe = [sys.executable, "-m", "mainframe_sim", "--db", ledger, "serve"]
        out = home / "callgrind.out"
        measured = (
            [sys.executable, "-m", "bench.e2e_relay", "--port", str(edge_port),
             "--mainframe-port", str(mainframe_port), "--mainframe-connections", "2",
             "--queue", queue, "--amqp-url", AMQP_URL]
            if relay
            else [sys.executable, "-m", "hub.cli", "run", "--config", str(hub_config(
                home, namespace, edge_port, mainframe_port,
                connections=2, request_timeout=30.0, mainframe_timeout=20.0,
            ))]
        )  # fmt: skip
        env = {"ISOBRIDGE_HOME": str(home / "hub")}
        mainframe += ["--port", str(mainframe_port)]
        try:
            with (
                _process(mainframe, mainframe_port, {}, home / "mf.log"),
                _process(
                    [*_callgrind(out), *measured], edge_port, env, home / "measured.log",
                    _STARTUP_SECONDS,
                ) as measured_pid,
            ):  # fmt: skip
                seconds = payments / rate

                def drive(count: int, first: int) -> Result:
                    result = Result("measured")
                    load = _drive(
                        edge_port, result, _purchase, _approved, connections=2, window=1,
                        seconds=count / rate, rate=rate, first=first,
                    )  # fmt: skip
                    asyncio.run(load)
                    return result

                drive(warm, 1)
                idle, idle_seconds = _counted(measured_pid, out, 1, lambda: time.sleep(seconds))
                results: list[Result] = []
                busy, busy_seconds = _counted(
                    measured_pid, out, 2, lambda: results.append(drive(payments, 10**6))
                )
        finally:
            if relay:
                delete_queue(queue)
    [result] = results
    done = len(result.latencies)
    if result.errors or not done:
        raise RuntimeError(f"{result.errors} payments not approved of {done}")
    return (busy - idle * busy_seconds / idle_seconds) / done, done


_FLOOR_BODY = 1500  # bytes: about a card payment's canonical JSON


def _floor_loop(queue: str, rate: float) -> None:
    """The floor process (under callgrind): for each count read from standard input, that
    many round trips at ``rate``/s, each a persistent message published to the quorum
    ``queue`` and confirmed, consumed back and acked (the broker work of a payment in a
    one-worker hub); ``done`` on standard output after each."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_qos(prefetch_count=10)
    body = bytes(_FLOOR_BODY)
    deliveries = channel.consume(queue)
    print("ready", flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        for number in range(int(line)):
            time.sleep(max(0.0, started + number / rate - time.perf_counter()))
            properties = pika.BasicProperties(delivery_mode=2, correlation_id=str(number))
            channel.basic_publish("", queue, body, properties)
            method, _, _ = next(deliveries)
            channel.basic_ack(method.delivery_tag)
        print("done", flush=True)
    channel.cancel()
    connection.close()


def measure_floor(payments: int, rate: float, warm: int) -> float:
    """The raw pika floor's instructions per round trip (net of idle)."""
    queue = f"bench.e2e.instructions.{uuid.uuid4().hex[:8]}"
    setup = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    setup.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            floor = [sys.executable, "-m", "bench.e2e_instructions", "--floor-queue", queue,
                     "--rate", str(rate)]  # fmt: skip
            process = subprocess.Popen(
                [*_callgrind(out), *floor],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            try:
                stdin, stdout = process.stdin, process.stdout
                if stdin is None or stdout is None:
                    raise RuntimeError("internal error: the floor's pipes")

                def run(count: int) -> None:
                    stdin.write(f"{count}\n")
                    stdin.flush()
                    if stdout.readline().strip() != "done":
                        raise RuntimeError("the raw pika floor stopped")

                if stdout.readline().strip() != "ready":
                    raise RuntimeError("the raw pika floor did not start")
                run(warm)
                seconds = payments / rate
                idle, idle_seconds = _counted(process.pid, out, 1, lambda: time.sleep(seconds))
                busy, busy_seconds = _counted(process.pid, out, 2, lambda: run(payments))
                stdin.close()
                process.wait(60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return (busy - idle * busy_seconds / idle_seconds) / payments
    finally:
        setup.channel().queue_delete(queue)
        setup.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--warm", type=int, default=40)
    parser.add_argument("--floor-queue", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_queue:
        _floor_loop(args.floor_queue, args.rate)
        return 0
    for name in ("payments", "rate", "warm"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("valgrind is not installed (apt-get install -y valgrind)")
    started = time.perf_counter()
    floor = measure_floor(args.payments, args.rate, args.warm)
    relay, _ = measure_hub(args.payments, args.rate, args.warm, relay=True)
    hub, done = measure_hub(args.payments, args.rate, args.warm)
    took = time.perf_counter() - started
    print(
        f"e2e instructions (callgrind): {done} payments at {args.rate:g}/s, one at a time,"
        f" after {args.warm} to warm up; net of the idle count; {took:.0f} s"
    )
    print(f"  floor: raw pika publish + confirm + consume + ack  {floor / 1e3:8.0f} k per request")
    print(f"  floor 3: raw relay (bench.e2e_relay)              {relay / 1e3:8.0f} k per payment")
    print(f"  hub: 0200 -> RabbitMQ -> mainframe -> 0210         {hub / 1e3:8.0f} k per payment")
    print(f"  hub / floor: {hub / floor:.1f}x; hub / raw relay: {hub / relay:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
