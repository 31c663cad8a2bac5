"""Benchmark: the simulated mainframe's CPU per posting at paced rates, as a process of its own.

Starts ``python -m mainframe_sim serve`` (SQLite ledger in a temporary directory, len2
framing) and sends it ``DEBT`` postings over ``--connections`` connections: first at each
``--rates`` (postings per second offered, spread evenly over time), then as fast as
``--window`` requests in flight per connection allow (``peak``). For each run: postings per
second answered, the server process's CPU (user + system from ``/proc/PID/stat``, all its
threads) per posting and as a share of one core, and the round trip p50 / p99.

The client pre-builds its records (one encoded template, the posting reference patched in),
so it spends little of the shared cores. Run::

    .venv/bin/python -m bench.mainframe_sim_cpu [--rates 250 500 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from mainframe_sim.records import Records
from mainframe_sim.seed import SEED_ACCOUNTS

ACCOUNTS = [seed.number for seed in SEED_ACCOUNTS[:11]]
_REF_START, _REF_END = 4, 28  # CB-POSTING-REF in CB-REQUEST
_RESULT_START, _RESULT_END = 28, 30  # CB-RP-RESULT-CODE in CB-REPLY
_APPROVED = "00".encode("cp037")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One load level's figures."""

    label: str
    answered: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def line(self) -> str:
        """One table row."""
        tps = self.answered / self.seconds if self.seconds else 0.0
        cpu_us = self.cpu_seconds / self.answered * 1e6 if self.answered else 0.0
        cuts = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [0] * 99
        return (
            f"| {self.label} | {tps:,.0f} | {cpu_us:,.0f} | {self.cpu_seconds / self.seconds:.0%}"
            f" | {cuts[49] * 1000:.1f} | {cuts[98] * 1000:.1f} | {self.errors} |"
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _debit(account: str) -> dict[str, object]:
    return {
        "CB-TRAN-CODE": "DEBT", "CB-POSTING-REF": "", "CB-ORIG-POSTING-REF": "",
        "CB-ACCOUNT-NO": account, "CB-CONTRA-ACCOUNT": "", "CB-AMOUNT": Decimal("0.01"),
        "CB-CURRENCY": "EUR", "CB-VALUE-DATE": 0, "CB-CHANNEL": "BNCH", "CB-NARRATIVE": "BENCH",
    }  # fmt: skip


class Postings:
    """Framed DEBT requests with fresh posting references (``prefix`` + a counter)."""

    def __init__(self, records: Records, prefix: str) -> None:
        self._records = records
        self._prefix = prefix
        self._counter = iter(range(10**9))
        self._templates = [
            bytearray(records.encode_request(_debit(account))) for account in ACCOUNTS
        ]

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        number = next(self._counter)
        record = self._templates[number % len(self._templates)]
        ref = f"{self._prefix}{number:012d}".ljust(_REF_END - _REF_START)
        record[_REF_START:_REF_END] = ref.encode(self._records.codepage)
        return struct.pack(">H", len(record)) + bytes(record)


@dataclass(frozen=True)
class Load:
    """``connections`` for ``seconds``: ``rate`` postings/s in all, or (None) as fast as
    ``window`` requests in flight per connection allow."""

    connections: int
    window: int
    seconds: float
    rate: float | None


async def _drive(port: int, run: Run, postings: Postings, load: Load) -> None:
    """Send ``load``; ``run`` gathers the answers."""
    connections, window, seconds, rate = load.connections, load.window, load.seconds, load.rate
    links = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    sent_at: list[list[float]] = [[] for _ in links]
    slots = [asyncio.Semaphore(window) for _ in links]

    async def read(index: int, reader: asyncio.StreamReader) -> None:
        times = sent_at[index]
        received = 0
        while True:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
            reply = await reader.readexactly(length)
            run.latencies.append(time.perf_counter() - times[received])
            received += 1
            run.answered += 1
            run.errors += reply[_RESULT_START:_RESULT_END] != _APPROVED
            slots[index].release()

    async def send_windowed(index: int, writer: asyncio.StreamWriter, stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            await slots[index].acquire()
            sent_at[index].append(time.perf_counter())
            writer.write(next(postings))
            await writer.drain()

    async def send_paced(stop_at: float, rate: float) -> None:
        started = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) < stop_at:
            due = int((now - started) * rate) - sent
            for _ in range(due):
                index = sent % connections
                sent_at[index].append(now)
                links[index][1].write(next(postings))
                sent += 1
            await asyncio.sleep(0.002)

    readers = [asyncio.create_task(read(i, reader)) for i, (reader, _) in enumerate(links)]
    started = time.perf_counter()
    stop_at = started + seconds
    if rate is None:
        await asyncio.gather(
            *(send_windowed(i, writer, stop_at) for i, (_, writer) in enumerate(links))
        )
    else:
        await send_paced(stop_at, rate)
    expected = sum(len(times) for times in sent_at)
    while run.answered < expected and time.perf_counter() < stop_at + 30:
        await asyncio.sleep(0.001)
    run.seconds = time.perf_counter() - started
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for _, writer in links:
        writer.close()


def _measure(pid: int, port: int, run: Run, postings: Postings, load: Load) -> Run:
    before = _cpu_seconds(pid)
    asyncio.run(_drive(port, run, postings, load))
    run.cpu_seconds = _cpu_seconds(pid) - before
    return run


@contextlib.contextmanager
def _server(home: Path, port: int) -> Iterator[int]:
    command = [
        sys.executable, "-m", "mainframe_sim", "--db", f"sqlite:///{home / 'ledger.db'}",
        "serve", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.1)
        print(f"simulator pid {process.pid} (for py-spy)", file=sys.stderr, flush=True)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", type=float, nargs="*", default=[250.0, 500.0, 1000.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=8, help="in flight per connection (peak)")
    parser.add_argument("--no-peak", action="store_true", help="skip the unpaced run")
    args = parser.parse_args(argv)
    records = Records()
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="mf-cpu-") as tmp,
        _server(Path(tmp), port := _free_port()) as pid,
    ):

        def load(seconds: float, rate: float | None) -> Load:
            return Load(args.connections, args.window, seconds, rate)

        _measure(pid, port, Run("warm-up"), Postings(records, "W"), load(2.0, 200.0))
        for number, rate in enumerate(args.rates):
            run = Run(f"{rate:,.0f}/s offered")
            postings = Postings(records, f"P{number}-")
            runs.append(_measure(pid, port, run, postings, load(args.seconds, rate)))
        if not args.no_peak:
            run = Run(f"peak, {args.connections} x {args.window} in flight")
            runs.append(_measure(pid, port, run, Postings(records, "X"), load(args.seconds, None)))
    print(f"Python {sys.version.split()[0]}, SQLite, DEBT postings, len2, {os.cpu_count()} CPUs")
    print("| load | postings/s | server CPU us/posting | server CPU | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        print(run.line())
    return 0 if all(run.errors == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
