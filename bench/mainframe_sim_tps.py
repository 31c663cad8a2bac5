"""Benchmark: postings per second through the simulated mainframe over TCP.

On a SQLite ledger in a temporary directory (the embedded default), in one process:

- floor: :func:`mainframe_sim.transactions.process_batch` called directly, one transaction
  per posting, then batches of 256 (what group commit can reach without sockets or codecs);
- TCP: ``--clients`` connections (len2 framing) each keeping ``--window`` requests in flight
  (pipelined), XFER postings between the seeded accounts; postings/s and the round-trip
  latency percentiles. The ledger is checked balanced at the end.

Run::

    .venv/bin/python -m bench.mainframe_sim_tps [--postings 20000] [--clients 16] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from mainframe_sim.client import MainframeClient
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import SEED_ACCOUNTS, seed_ledger
from mainframe_sim.server import MainframeServer
from mainframe_sim.transactions import process_batch

ACCOUNTS = [seed.number for seed in SEED_ACCOUNTS[:11]]


def _transfer(ref: str, n: int) -> dict[str, Any]:
    return {
        "CB-TRAN-CODE": "XFER", "CB-POSTING-REF": ref, "CB-ORIG-POSTING-REF": "",
        "CB-ACCOUNT-NO": ACCOUNTS[n % 11], "CB-CONTRA-ACCOUNT": ACCOUNTS[(n + 1) % 11],
        "CB-AMOUNT": Decimal("0.01"), "CB-CURRENCY": "EUR", "CB-VALUE-DATE": 0,
        "CB-CHANNEL": "BNCH", "CB-NARRATIVE": "BENCH",
    }  # fmt: skip


def _direct(ledger: Ledger, count: int, batch: int, prefix: str) -> float:
    requests = [_transfer(f"{prefix}{n}", n) for n in range(count)]
    start = time.perf_counter()
    for first in range(0, count, batch):
        replies = process_batch(ledger, requests[first : first + batch])
        assert all(reply.result_code == "00" for reply in replies)
    return count / (time.perf_counter() - start)


async def _client(port: int, worker: int, count: int, window: int, latencies: list[float]) -> None:
    client = await MainframeClient.connect("127.0.0.1", port)
    try:
        sent: list[float] = []
        received = 0
        for n in range(count):
            client.send(client.records.encode_request(_transfer(f"T{worker}-{n}", worker + n)))
            sent.append(time.perf_counter())
            if n - received + 1 >= window:
                await client.drain()
                reply = client.records.decode_reply(await client.receive(60))
                assert reply.result_code == "00", reply
                latencies.append(time.perf_counter() - sent[received])
                received += 1
        await client.drain()
        while received < count:
            reply = client.records.decode_reply(await client.receive(60))
            assert reply.result_code == "00", reply
            latencies.append(time.perf_counter() - sent[received])
            received += 1
    finally:
        await client.close()


async def _over_tcp(
    ledger: Ledger, postings: int, clients: int, window: int
) -> tuple[float, list[float], int]:
    server = MainframeServer(ledger)
    _, port = await server.start("127.0.0.1", 0)
    latencies: list[float] = []
    per_client = postings // clients
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(_client(port, w, per_client, window, latencies) for w in range(clients))
        )
        elapsed = time.perf_counter() - start
        batches = server.batches
    finally:
        await server.close()
    return per_client * clients / elapsed, latencies, batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postings", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        ledger = Ledger.open(f"sqlite:///{Path(directory) / 'bench.db'}")
        try:
            seed_ledger(ledger)
            single = _direct(ledger, min(2000, args.postings), 1, "S")
            batched = _direct(ledger, args.postings, 256, "B")
            tps, latencies, batches = asyncio.run(
                _over_tcp(ledger, args.postings, args.clients, args.window)
            )
            check = ledger.check()
        finally:
            ledger.close()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"Python {sys.version.split()[0]}, SQLite, {args.postings} postings")
    print(f"direct, one transaction per posting : {single:10,.0f} postings/s")
    print(f"direct, 256 postings per transaction: {batched:10,.0f} postings/s")
    print(f"TCP len2, {args.clients} clients x window {args.window}: {tps:10,.0f} postings/s"
          f" ({len(latencies) / max(batches, 1):.1f} postings per commit)")  # fmt: skip
    print(f"TCP round trip: p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms")
    print(f"ledger balanced: {check.balanced} ({check.postings} postings)")
    return 0 if check.balanced else 1


if __name__ == "__main__":
    sys.exit(main())
