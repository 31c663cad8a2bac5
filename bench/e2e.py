"""Benchmark: card payments end to end, hub + RabbitMQ + mainframe_sim, against two floors.

Three processes besides this one: ``python -m mainframe_sim serve`` (SQLite ledger, len2),
``isobridge run`` (an ISO 8583 edge, the ``amqp://`` transport on the local RabbitMQ, the
core banking worker) and RabbitMQ. This process is the acquirer: ``--connections`` TCP
connections, each keeping ``--window`` ISO 8583 0200 purchases in flight (pyiso8583 builds
them), for ``--seconds``. Measured in the same run:

- **hub**: 0200 -> edge -> route -> RabbitMQ (quorum queue, confirms) -> core worker ->
  mainframe_sim -> reply -> 0210; sustained TPS, p50 / p99 latency, errors (any field 39
  other than 00). With one worker the edge and the core worker share a connection, so the
  reply goes to the edge in-process (``routing.amqp``): a payment crosses the broker once;
  with several, a reply crosses it too when the request came from another worker's edge;
- **floor 1, mainframe_sim direct**: the same load of ``CB-REQUEST`` records straight to the
  simulator (what the core can do, without the hub);
- **floor 2, raw pika request / reply**: the same number of broker hops (request queue and
  reply queue, both quorum) with an echoing pika responder, no hub code, and no publisher
  confirms (pika's blocking channel confirms one message at a time): an upper bound;
- **floor 3, a raw relay** (:mod:`bench.e2e_relay`): the hub's whole path (the acquirer's
  TCP connections, a quorum queue with publisher confirms, the simulator, the 0210) relayed
  by one process written with pyiso8583 and pika alone, saturated and at ``--rate``, with
  the CPU per payment of each process. The hub does more for each payment (the canonical
  model, tokenization, routing rules, the journal, timeouts, tracing, every check of bad
  input): the ratio of the two CPUs per payment at the paced rate says how much more, and
  this floor's p99 at that rate what this machine allows a Python process on the path;
- **floor 4, the relay doing the hub's required work** (``bench.e2e_relay
  --required-work``): floor 3 plus what the invariants ask of every card payment, done by
  the hub's own parts with none of its frameworks: the card number tokenized by the vault
  while the 0200 maps to the canonical model, canonical JSON on the queue, the 0210 encoded
  from the canonical reply, three journal events through the hub's journal writer. Floor 3
  to floor 4 is what that work costs; floor 4 to the hub, what the hub's frameworks (edge,
  transport, core worker, rules, deadlines, tracing hooks) cost;
- **hub at a fixed rate** (``--rate``, default 500/s): p99 latency when not saturated, and
  the CPU per payment of each process at that rate;
- **floor 2 at the same rate**, twice: one quorum hop (the request queue, the latency taken
  when the responder has the request: what a payment crosses with one worker), then the raw
  pika request / reply through a pair of queues like the hub's (a quorum queue for the
  requests, a classic one for the replies: what a reply between workers adds): the latency
  the broker alone adds at that rate on this machine, which the hub's p99 includes;
- **CPU per payment** of each process during the hub case (hub, simulator, RabbitMQ, this
  client; from ``/proc/<pid>/stat``): what each part costs, whatever else runs on the
  machine, and so where the time goes and how far the figures would scale.

The first line names the broker's Erlang scheduler binding (:func:`broker_schedulers`):
RabbitMQ pins its schedulers to one CPU each unless started with ``+stbt u``, as
``./scripts/test`` starts it, and pinned schedulers wait behind the hub's CPU work.

The hub's exchanges and queues are in a namespace of the run's own (``bench-e2e-<random>``),
deleted at the end: on a shared broker another hub of the default namespace would otherwise
take some of this hub's requests.

Run (RabbitMQ on 127.0.0.1:5672, as ``./scripts/test`` starts it)::

    .venv/bin/python -m bench.e2e [--seconds 10] [--connections 16] [--window 8] [--rate 500]
        [--workers 1] [--metrics] [--hub-priority nice:-10 | fifo:10] [--steadiness 5]

The last lines are :mod:`bench.cpu_steadiness`, measured for ``--steadiness`` seconds before
the cases (0: not at all): how often this machine's CPUs ran below half speed, and for how
long. On the virtual machines of bench/RESULTS.md each CPU ran below half speed in 6-14% of
10 ms windows, in runs of up to 160 ms, both at once in 5-8%: the slowest payments of a paced
run fall in those runs, with the hub running through them.

``--hub-priority`` starts the hub (and its journal writer) at a scheduling priority of its
own, as a deployment on a shared machine would give it (``nice -n``, or ``chrt -f``: the
real-time FIFO class), while everything else runs as usual; it needs root (or
``CAP_SYS_NICE``), and the run stops if the hub did not get it. The real-time class is
there to measure, not to deploy: a saturated hub in it starved its own core
(bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import re
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import iso8583
import pika

from adapters.iso8583.specs import SPECS
from bench import cpu_steadiness
from hub.config_file import load_config
from hub.service import HubService
from mainframe_sim.records import Records
from mainframe_sim.seed import SEED_ACCOUNTS

ROOT = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("ISOBRIDGE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SPEC = SPECS["ascii"]
CARDS = ("4111111111111111", "5500005555555559", "4012888888881881", "5105105105105100")
ACCOUNTS = [
    a.number
    for a in SEED_ACCOUNTS
    if a.currency == "EUR" and a.status == "open" and a.opening > 100_000
]


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    # The client's CPU outside the measured window (building the requests before it,
    # checking the replies after it): left out of its CPU per payment.
    untimed_cpu: float = 0.0

    @property
    def tps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def line(self, floor: Result | None = None) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000
        ratio = f"  {self.tps / floor.tps:5.2f}x floor" if floor and floor.tps else ""
        return (
            f"  {self.name:<44} {self.tps:8.0f}/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
            f"  errors {self.errors}{ratio}"
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and its children (the hub's
    workers), from Linux ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:  # a child that ended meanwhile (a thread pool's, a shell's)
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return own + sum(_cpu_seconds(int(child)) for child in children.stdout.split())


def _broker_pid() -> int | None:
    """The Erlang VM that listens on ``AMQP_URL``'s port on this machine, if one does (other
    brokers, a test's cluster nodes, may run beside it)."""
    port = urlsplit(AMQP_URL).port or 5672
    with contextlib.suppress(OSError):
        listening = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
        ).stdout
        found = re.search(r"beam\.smp\",pid=(\d+)", listening)
        if found:
            return int(found.group(1))
    found_any = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True)
    pids = found_any.stdout.split()
    return int(pids[0]) if pids else None


def broker_schedulers(pid: int | None) -> str:
    """How the broker's Erlang schedulers may use this machine's CPUs: ``unbound`` (the
    kernel places them), ``bound to CPUs 0, 1`` (RabbitMQ's default ``+stbt db``: each waits
    for its own CPU, also while another one is idle), or ``unknown`` (no broker found here,
    or its threads not readable)."""
    if pid is None:
        return "unknown"
    bound = []
    with contextlib.suppress(OSError):
        for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
            if not (task / "comm").read_text().strip().endswith("_scheduler"):
                continue
            status = (task / "status").read_text()
            allowed = re.search(r"^Cpus_allowed_list:\s*(\S+)$", status, re.MULTILINE)
            if allowed is None:
                return "unknown"
            cpus = allowed.group(1)
            if "," in cpus or "-" in cpus:
                return "unbound"
            bound.append(cpus)
    return f"bound to CPUs {', '.join(bound)}" if bound else "unknown"


@contextlib.contextmanager
def _cpu_meter(result: Result, pids: dict[str, int | None]) -> Iterator[None]:
    """Record in ``result`` the CPU seconds each process (and this one) used meanwhile."""
    known = {name: pid for name, pid in pids.items() if pid is not None}
    before = {name: _cpu_seconds(pid) for name, pid in known.items()}
    own = time.process_time()
    yield
    for name, pid in known.items():
        result.cpu_seconds[name] = _cpu_seconds(pid) - before[name]
    result.cpu_seconds["client"] = time.process_time() - own - result.untimed_cpu


def _cpu_line(result: Result) -> str:
    count = len(result.latencies) or 1
    parts = [
        f"{name} {seconds / count * 1e6:,.0f} us ({seconds / result.seconds:.0%} of a core)"
        for name, seconds in result.cpu_seconds.items()
    ]
    total = sum(result.cpu_seconds.values()) / count * 1e6
    return f"  CPU per payment: {', '.join(parts)}; all {total:,.0f} us"


def hub_config(
    home: Path,
    namespace: str,
    edge_port: int,
    mainframe_port: int,
    *,
    workers: int = 1,
    connections: int = 8,
    request_timeout: float = 10.0,
    mainframe_timeout: float = 5.0,
) -> Path:
    """Write ``home/hub.toml`` for a measured hub: its state in ``home/hub``, the local
    RabbitMQ in ``namespace``, one ISO 8583 listener, the simulator over TCP."""
    config = home / "hub.toml"
    config.write_text(
        f'[hub]\nhome = "{home / "hub"}"\nworkers = {workers}\n'
        f'[routing]\ntransport = "{AMQP_URL}"\nnamespace = "{namespace}"\n'
        f"[[listeners]]\nname = 'pos'\nport = {edge_port}\nrequest_timeout = {request_timeout}\n"
        f"[mainframe]\nport = {mainframe_port}\nconnections = {connections}\n"
        f"timeout = {mainframe_timeout}\n"
    )
    return config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def priority_prefix(priority: str | None) -> list[str]:
    """The command that starts a process at ``priority`` (``nice:N`` or ``fifo:N``).

    >>> priority_prefix("nice:-10"), priority_prefix("fifo:10"), priority_prefix(None)
    (['nice', '-n', '-10'], ['chrt', '-f', '10'], [])
    """
    if priority is None:
        return []
    kind, _, level = priority.partition(":")
    if kind == "nice" and level.lstrip("-").isdigit() and -20 <= int(level) <= 19:
        return ["nice", "-n", level]
    if kind == "fifo" and level.isdigit() and 1 <= int(level) <= 99:
        return ["chrt", "-f", level]
    raise ValueError(f"--hub-priority {priority!r}: expected nice:N (-20..19) or fifo:N (1..99)")


def _check_priority(pid: int, priority: str | None) -> None:
    """Stop the run if the process ``pid`` did not get ``priority`` (``nice`` goes on
    without it when it is not allowed to raise it)."""
    if priority is None:
        return
    kind, _, level = priority.partition(":")
    got = (
        os.getpriority(os.PRIO_PROCESS, pid) == int(level)
        if kind == "nice"
        else os.sched_getscheduler(pid) == os.SCHED_FIFO
    )
    if not got:
        raise SystemExit(
            f"the hub did not get the priority {priority} (needs root or CAP_SYS_NICE)"
        )


@contextlib.contextmanager
def _process(
    args: list[str], port: int, env: dict[str, str], log: Path, startup: float = 60.0
) -> Iterator[int]:
    """Run ``args`` (its output to ``log``, shown if the run fails) while listening on
    ``port`` (within ``startup`` seconds)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_port(port, startup)
        yield process.pid
    except BaseException:
        sys.stderr.write(f"--- {log.name}:\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _purchase(number: int) -> bytes:
    fields = {
        "t": "0200", "2": CARDS[number % 4], "3": "000000", "4": f"{1 + number % 9:012d}",
        "7": "1129120000", "11": f"{number % 1_000_000:06d}", "12": "120000", "13": "1129",
        "37": f"{number:012d}", "41": f"BNCH{number % 10_000:04d}", "42": "BENCHMERCHANT01",
        "49": "978", "102": ACCOUNTS[number % len(ACCOUNTS)],
    }  # fmt: skip
    raw, _ = iso8583.encode(fields, SPEC)
    return bytes(raw)


def _posting(number: int, records: Records) -> bytes:
    return records.encode_request(
        {
            "CB-TRAN-CODE": "DEBT", "CB-POSTING-REF": f"DIRECT{number:018d}",
            "CB-ORIG-POSTING-REF": "", "CB-ACCOUNT-NO": ACCOUNTS[number % len(ACCOUNTS)],
            "CB-CONTRA-ACCOUNT": "", "CB-AMOUNT": Decimal(1 + number % 9) / 100,
            "CB-CURRENCY": "EUR", "CB-VALUE-DATE": 0, "CB-CHANNEL": "BNCH",
            "CB-NARRATIVE": "BENCH",
        }
    )  # fmt: skip


Ok = Callable[[bytes], bool]

# Requests built ahead per second of a saturated run: above what the hub reaches, below the
# mainframe floor (which builds the rest on the fly).
PREBUILT_RATE = 4_000


@dataclass
class _Line:
    """One acquirer connection: its stream, the send times of its requests in flight (the
    replies come in order) and its free slots of the window."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    slots: asyncio.Semaphore
    sent: deque[float] = field(default_factory=deque)


async def _drive(
    port: int,
    result: Result,
    make: Callable[[int], bytes],
    ok: Ok,
    *,
    connections: int,
    window: int,
    seconds: float,
    rate: float | None = None,
    first: int = 1,
    tls: ssl.SSLContext | None = None,
) -> None:
    """``connections`` len2 connections (TLS with ``tls``), ``window`` requests in flight
    each, for ``seconds`` (at ``rate`` requests/s in all when given); replies in order per
    connection.

    The acquirer stays out of the way of what it measures, on a machine it shares with
    them: the requests are built (``make``, pyiso8583) before the clock starts, as many as
    the run can send (``rate`` x ``seconds``, or :data:`PREBUILT_RATE` x ``seconds`` when
    saturating; built on the fly past that), and the replies are checked (``ok``) after it
    stops, every one of them. Both cost the client ~120 us per payment that would
    otherwise be taken from the hub's two cores; they are left out of the client's CPU
    (:attr:`Result.untimed_cpu`).

    At a rate, one pacer sends every request, each on the next connection in turn, one
    every ``1 / rate`` seconds (as wrk2 spreads its connections, without a burst): a timer
    per connection woke this process about four times per request, ~600 us of CPU each at
    500/s on these virtual machines (a wake-up costs tens of microseconds here), taken from
    the hub's two cores; one timer for all wakes it about twice. A connection whose window
    is full holds the pacer until a reply frees a slot: the requests due meanwhile go out
    late, at once, and their latency counts from when they went out."""
    untimed_from = time.process_time()
    budget = int((rate or PREBUILT_RATE) * seconds) + connections * window
    prebuilt = deque(make(number) for number in range(first, first + budget))
    counter = iter(range(first + budget, 10**9))
    replies: list[bytes] = []
    result.untimed_cpu += time.process_time() - untimed_from

    async def open_line() -> _Line:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
        )
        return _Line(reader, writer, asyncio.Semaphore(window))

    async def read(line: _Line) -> None:
        while True:
            (length,) = struct.unpack(">H", await line.reader.readexactly(2))
            reply = await line.reader.readexactly(length)
            result.latencies.append(time.perf_counter() - line.sent.popleft())
            replies.append(reply)
            line.slots.release()

    def send(line: _Line) -> None:
        payload = prebuilt.popleft() if prebuilt else make(next(counter))
        line.sent.append(time.perf_counter())
        line.writer.write(struct.pack(">H", len(payload)) + payload)

    async def saturate(line: _Line, stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            await line.slots.acquire()
            send(line)
            await line.writer.drain()

    async def pace(lines: list[_Line], rate: float, stop_at: float) -> None:
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for number in itertools.count():
            next_at += interval
            if next_at >= stop_at:
                return
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            line = lines[number % len(lines)]
            await line.slots.acquire()
            send(line)

    lines = list(await asyncio.gather(*(open_line() for _ in range(connections))))
    readers = [asyncio.create_task(read(line)) for line in lines]
    started = time.perf_counter()
    stop_at = started + seconds
    if rate:
        await pace(lines, rate, stop_at)
    else:
        await asyncio.gather(*(saturate(line, stop_at) for line in lines))
    for line in lines:  # every reply in
        for _ in range(window):
            await line.slots.acquire()
    result.seconds = time.perf_counter() - started
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for line in lines:
        line.writer.close()
        with contextlib.suppress(OSError):
            await line.writer.wait_closed()
    untimed_from = time.process_time()
    result.errors += sum(not ok(reply) for reply in replies)
    result.untimed_cpu += time.process_time() - untimed_from


def cpu_per_payment(result: Result, process: str) -> float:
    """CPU seconds that ``process`` spent per payment of ``result``."""
    return result.cpu_seconds[process] / max(1, len(result.latencies))


def hub_rounds_main(
    run: Callable[[float, int, int, int], list[str]], description: str, argv: list[str] | None
) -> int:
    """The command line of a benchmark that runs hub rounds in turns, one variant against
    another (``bench.journal_cost``, ``bench.tls_cost``): ``run(seconds, rounds, connections,
    window)`` gives the lines to print."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args(argv)
    for line in run(args.seconds, args.rounds, args.connections, args.window):
        print(line)
    return 0


def measure_hub(
    name: str,
    config: Path,
    edge_port: int,
    mainframe_pid: int,
    load: tuple[int, int, float],
    first: int,
    tls: ssl.SSLContext | None = None,
) -> Result:
    """Run ``isobridge run --config config`` (its state in ``config``'s directory), warm it
    up for 2 s, then measure it at saturation (``load``: connections, window, seconds) with
    the CPU of every process; raises if a payment was not approved."""
    connections, window, seconds = load
    home = config.parent
    hub = [sys.executable, "-m", "hub.cli", "run", "--config", str(config)]
    env = {"ISOBRIDGE_HOME": str(home / "state")}
    with _process(hub, edge_port, env, home / "hub.log") as hub_pid:
        warm = Result("warm-up")
        asyncio.run(
            _drive(edge_port, warm, _purchase, _approved, connections=connections,
                   window=window, seconds=2.0, first=first, tls=tls)
        )  # fmt: skip
        result = Result(name)
        pids = {"hub": hub_pid, "mainframe_sim": mainframe_pid, "rabbitmq": _broker_pid()}
        with _cpu_meter(result, pids):
            asyncio.run(
                _drive(edge_port, result, _purchase, _approved, connections=connections,
                       window=window, seconds=seconds, first=first + 1_000_000, tls=tls)
            )  # fmt: skip
    if result.errors:
        raise RuntimeError(f"{result.name}: {result.errors} payments not approved")
    return result


@contextlib.contextmanager
def _own_queues(namespace: str) -> Iterator[None]:
    """Delete, once done, the exchanges and queues the hub declares in ``namespace``."""
    try:
        yield
    finally:
        topology = HubService(load_config(None, {}), request_timeout=1.0).topology
        topology = dataclasses.replace(
            topology,
            exchange=f"{namespace}.canonical",
            dead_letter_exchange=f"{namespace}.dlx",
            prefix=namespace,
        )
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            channel = connection.channel()
            queues = [topology.unroutable_queue]
            for destination in topology.destinations:
                queues += [topology.queue(destination.name)]
                queues += [topology.dead_letter_queue(destination.name)]
                queues += [
                    topology.retry_queue(destination.name, delay)
                    for delay in set(destination.retry.delays_ms)
                ]
            for queue in queues:
                channel.queue_delete(queue)
            channel.exchange_delete(topology.exchange)
            channel.exchange_delete(topology.dead_letter_exchange)
        finally:
            connection.close()


def _approved(reply: bytes) -> bool:
    decoded, _ = iso8583.decode(reply, SPEC)
    return decoded.get("39") == "00"


def _raw_pika(seconds: float, window: int, rate: float | None = None, hops: int = 2) -> Result:
    """Request / reply with pika and an echoing responder: through two quorum queues when
    saturating; at ``rate`` requests/s through the hub's own pair of queues, a quorum queue
    for the requests and a classic one for the replies (the hub's reply queue is classic,
    exclusive to its connection), so that its latency is the broker's share of the hub's.
    ``hops=1``: the request queue only, the latency taken when the responder has the request
    (what a payment crosses when the hub's edge and core worker share a connection: the
    reply is handed over in-process, ``routing.amqp``)."""
    if rate is None:
        result = Result("floor 2: raw pika request/reply (2 quorum hops)")
    elif hops == 1:
        result = Result(f"floor 2 at {rate:.0f}/s offered (1 quorum hop)")
    else:
        result = Result(f"floor 2 at {rate:.0f}/s offered (quorum + classic reply)")
    suffix = uuid.uuid4().hex[:8]
    requests, replies = f"bench.e2e.req.{suffix}", f"bench.e2e.rep.{suffix}"
    params = pika.URLParameters(AMQP_URL)
    setup = pika.BlockingConnection(params)
    channel = setup.channel()
    queues = [requests] if hops == 1 else [requests, replies]
    channel.queue_declare(requests, durable=True, arguments={"x-queue-type": "quorum"})
    if rate is None:
        channel.queue_declare(replies, durable=True, arguments={"x-queue-type": "quorum"})
    elif hops == 2:
        channel.queue_declare(replies, durable=False)
    stop = threading.Event()

    def respond() -> None:
        connection = pika.BlockingConnection(params)
        ch = connection.channel()
        # No confirms here: a BlockingChannel confirms one publish at a time, which would
        # make this floor slower than the hub's pipelined confirms. An upper bound, then.
        ch.basic_qos(prefetch_count=window * 4)
        while not stop.is_set():
            for method, properties, body in ch.consume(requests, inactivity_timeout=0.2):
                if method is None:
                    break
                if hops == 1:
                    answered(properties.correlation_id)
                    ch.basic_ack(method.delivery_tag)
                    continue
                ch.basic_publish(
                    "", replies, body,
                    pika.BasicProperties(correlation_id=properties.correlation_id,
                                         delivery_mode=2),
                )  # fmt: skip
                ch.basic_ack(method.delivery_tag)
        ch.cancel()
        connection.close()

    sent: dict[str, float] = {}
    lock = threading.Lock()
    in_flight = threading.Semaphore(window)

    def answered(correlation_id: str) -> None:
        with lock:
            started = sent.pop(correlation_id, None)
        if started is not None:
            result.latencies.append(time.perf_counter() - started)
            in_flight.release()

    responder = threading.Thread(target=respond)
    responder.start()

    def collect() -> None:
        connection = pika.BlockingConnection(params)
        ch = connection.channel()
        ch.basic_qos(prefetch_count=window * 4)
        while not stop.is_set() or sent:
            for method, properties, _ in ch.consume(replies, inactivity_timeout=0.2):
                if method is None:
                    break
                answered(properties.correlation_id)
                ch.basic_ack(method.delivery_tag)
            if stop.is_set() and not sent:
                break
        ch.cancel()
        connection.close()

    collector = threading.Thread(target=collect)
    if hops == 2:
        collector.start()
    publisher = pika.BlockingConnection(params)
    out = publisher.channel()
    body = os.urandom(512)
    started = time.perf_counter()
    stop_at = started + seconds
    number = 0
    while time.perf_counter() < stop_at:
        if not in_flight.acquire(timeout=5):
            result.errors += 1
            break
        number += 1
        if rate is not None:
            time.sleep(max(0.0, started + number / rate - time.perf_counter()))
        key = str(number)
        with lock:
            sent[key] = time.perf_counter()
        out.basic_publish(
            "", requests, body, pika.BasicProperties(correlation_id=key, delivery_mode=2)
        )
        if number % 100 == 0:
            publisher.process_data_events(0)
    while sent and time.perf_counter() < stop_at + 10:
        publisher.process_data_events(0.05)
    result.seconds = time.perf_counter() - started
    stop.set()
    if hops == 2:
        collector.join()
    responder.join()
    publisher.close()
    for queue in queues:
        channel.queue_delete(queue)
    setup.close()
    return result


def _raw_relay(
    home: Path,
    mainframe_port: int,
    mainframe_pid: int,
    load: tuple[int, int, float],
    rate: float,
    *,
    required_work: bool = False,
) -> list[Result]:
    """Floor 3 (floor 4 with ``required_work``): the hub's case, saturated then at
    ``rate``, through ``bench.e2e_relay`` (the same path relayed with pyiso8583 and pika
    alone; plus the hub's required work) instead of the hub."""
    connections, window, seconds = load
    queue = f"bench.e2e.relay.{uuid.uuid4().hex[:8]}"
    port = _free_port()
    relay = [
        sys.executable, "-m", "bench.e2e_relay", "--port", str(port),
        "--mainframe-port", str(mainframe_port), "--queue", queue, "--amqp-url", AMQP_URL,
    ]  # fmt: skip
    if required_work:
        relay += ["--required-work", str(home / "floor4")]
        saturated = Result("floor 4: relay + required work")
        paced = Result(f"floor 4 at {rate:.0f}/s offered")
    else:
        saturated = Result("floor 3: raw relay (pyiso8583 + pika, no hub)")
        paced = Result(f"floor 3 at {rate:.0f}/s offered")
    try:
        with _process(relay, port, {}, home / "relay.log") as relay_pid:
            pids = {"relay": relay_pid, "mainframe_sim": mainframe_pid, "rabbitmq": _broker_pid()}
            warm = Result("warm-up")
            asyncio.run(
                _drive(port, warm, _purchase, _approved, connections=connections,
                       window=window, seconds=2.0, first=30_000_000)
            )  # fmt: skip
            for result, paced_at, first in (
                (saturated, None, 60_000_000 if required_work else 40_000_000),
                (paced, rate, 70_000_000 if required_work else 50_000_000),
            ):
                with _cpu_meter(result, pids):
                    asyncio.run(
                        _drive(port, result, _purchase, _approved, connections=connections,
                               window=window, seconds=seconds, rate=paced_at, first=first)
                    )  # fmt: skip
    finally:
        delete_queue(queue)
    return [saturated, paced]


def delete_queue(queue: str) -> None:
    """Delete ``queue`` (a floor's own) from the broker at ``AMQP_URL``."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


def _against_relay(
    hub: Result, hub_paced: Result, relay: Result, relay_paced: Result, floor: str = "raw relay"
) -> str:
    """The hub against floor 3 (or 4): throughput, and CPU per payment at the paced rate."""
    if not relay.tps or "relay" not in relay_paced.cpu_seconds:
        return ""
    per_payment = cpu_per_payment(hub_paced, "hub") / max(
        1e-9, cpu_per_payment(relay_paced, "relay")
    )
    return (
        f"  hub / {floor}: {hub.tps / relay.tps:.2f}x saturated;"
        f" CPU per payment at the paced rate {per_payment:.2f}x the relay's"
    )


def run(
    seconds: float,
    connections: int,
    window: int,
    rate: float,
    workers: int = 1,
    metrics: bool = False,
    hub_priority: str | None = None,
    steadiness: float = 5.0,
) -> list[str]:
    host = cpu_steadiness.report(steadiness, sorted(os.sched_getaffinity(0))) if steadiness else []
    load_before = os.getloadavg()[0]
    # Queues of this run's own: on a shared broker, another hub of the default namespace
    # would take some of this hub's requests (and answer them from its own mainframe).
    namespace = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="isobridge-e2e-") as tmp, _own_queues(namespace):
        home = Path(tmp)
        mainframe_port, edge_port = _free_port(), _free_port()
        config = hub_config(home, namespace, edge_port, mainframe_port, workers=workers)
        if metrics:
            config.write_text(config.read_text() + '[metrics]\nlisten = "127.0.0.1:0"\n')
        python = sys.executable
        mainframe = [
            python, "-m", "mainframe_sim", "--db", f"sqlite:///{home / 'ledger.db'}", "serve",
            "--port", str(mainframe_port),
        ]  # fmt: skip
        hub = [
            *priority_prefix(hub_priority),
            python,
            "-m",
            "hub.cli",
            "run",
            "--config",
            str(config),
        ]
        records = Records()
        results: list[Result] = []
        with _process(mainframe, mainframe_port, {}, home / "mainframe.log") as mainframe_pid:
            direct = Result("floor 1: mainframe_sim direct (CB-REQUEST)")
            asyncio.run(
                _drive(
                    mainframe_port, direct, lambda n: _posting(n, records),
                    lambda reply: records.decode_reply(reply).result_code == "00",
                    connections=connections, window=window, seconds=seconds,
                )
            )  # fmt: skip
            results.append(direct)
            hub_env = {"ISOBRIDGE_HOME": str(home / "hub")}
            with _process(hub, edge_port, hub_env, home / "hub.log") as hub_pid:
                _check_priority(hub_pid, hub_priority)
                warm = Result("warm-up")
                asyncio.run(
                    _drive(edge_port, warm, _purchase, _approved, connections=connections,
                           window=window, seconds=2.0, first=1)
                )  # fmt: skip
                full = Result("hub: 0200 -> RabbitMQ -> mainframe -> 0210")
                pids = {"hub": hub_pid, "mainframe_sim": mainframe_pid, "rabbitmq": _broker_pid()}
                with _cpu_meter(full, pids):
                    asyncio.run(
                        _drive(edge_port, full, _purchase, _approved, connections=connections,
                               window=window, seconds=seconds, first=10_000_000)
                    )  # fmt: skip
                results.append(full)
                paced = Result(f"hub at {rate:.0f}/s offered")
                with _cpu_meter(paced, pids):
                    asyncio.run(
                        _drive(edge_port, paced, _purchase, _approved, connections=connections,
                               window=window, seconds=seconds, rate=rate, first=20_000_000)
                    )  # fmt: skip
                results.append(paced)
            load = (connections, window, seconds)
            results += _raw_relay(home, mainframe_port, mainframe_pid, load, rate)
            results += _raw_relay(
                home, mainframe_port, mainframe_pid, load, rate, required_work=True
            )
        results.append(_raw_pika(seconds, connections * window))
        results.append(_raw_pika(seconds, connections * window, rate))
        results.append(_raw_pika(seconds, connections * window, rate, hops=1))
    (
        direct, full, paced, relay, relay_paced, working, working_paced,
        raw, raw_paced, raw_paced_one_hop,
    ) = results  # fmt: skip
    return [
        f"e2e: {connections} connections x {window} in flight, {seconds:g} s per case,"
        f" hub workers {workers}, metrics {'on' if metrics else 'off'},"
        f" hub priority {hub_priority or 'as everything else'},"
        f" RabbitMQ {AMQP_URL.split('@')[-1]} (schedulers {broker_schedulers(_broker_pid())});"
        f" load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
        direct.line(),
        raw.line(),
        full.line(direct),
        _cpu_line(full),
        paced.line(),
        _cpu_line(paced),
        relay.line(),
        _cpu_line(relay),
        relay_paced.line(),
        _cpu_line(relay_paced),
        working.line(),
        _cpu_line(working),
        working_paced.line(),
        _cpu_line(working_paced),
        raw_paced_one_hop.line(),
        raw_paced.line(),
        f"  hub / raw pika: {full.tps / raw.tps:.2f}x" if raw.tps else "",
        _against_relay(full, paced, relay, relay_paced),
        _against_relay(full, paced, working, working_paced, "relay + required work"),
        *host,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--workers", type=int, default=1, help="hub processes ([hub] workers)")
    parser.add_argument(
        "--metrics", action="store_true", help="the hub measures its Prometheus metrics"
    )
    parser.add_argument(
        "--steadiness",
        type=float,
        default=5.0,
        help="seconds of bench.cpu_steadiness before the cases (0: none)",
    )
    parser.add_argument(
        "--hub-priority",
        help="start the hub at nice:N or fifo:N (real-time FIFO); needs root or CAP_SYS_NICE",
    )
    args = parser.parse_args(argv)
    try:
        priority_prefix(args.hub_priority)
    except ValueError as exc:
        parser.error(str(exc))
    if args.steadiness < 0:
        parser.error(f"--steadiness {args.steadiness:g}: expected seconds, or 0 for none")
    lines = run(
        args.seconds,
        args.connections,
        args.window,
        args.rate,
        args.workers,
        args.metrics,
        args.hub_priority,
        args.steadiness,
    )
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
