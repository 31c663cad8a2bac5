"""Benchmark: what the Prometheus metrics add to one card payment, against the same work
without them, in one run.

Per card payment the hub measures: the edge's observer (request started, request finished
with its latency), the ISO 8583 adapter's decode and encode (count by type, latency), and
the vault's tokenize (count, latency). Both paths here do the same payment-shaped work
(``Iso8583Adapter.decode`` of a 0200 with its PAN tokenized, ``encode`` of it back) with the
in-memory vault; the instrumented path goes through ``observability.metrics`` wrappers
exactly as the hub wires them (:meth:`HubMetrics.instrument_adapter`,
:meth:`HubMetrics.tokenizer`, :meth:`HubMetrics.edge`).

Rounds alternate between the two so that machine noise hits both alike; the figure is the
median round, in CPU microseconds (``time.process_time``). The difference is the metrics'
cost per payment, to compare with the hub's whole CPU per payment (``bench.e2e``). Run::

    .venv/bin/python -m bench.metrics_overhead [--rounds 15] [--ops 2000]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable

import iso8583

from adapters.base import DecodeContext, EncodeContext, PanTokenizer
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.specs import SPECS
from bench.iso8583_roundtrip import BENCH_MESSAGE, NOW, TENANT
from observability.metrics import HubMetrics
from vault.memory import InMemoryVault


def _cpu_us_per_op(operation: Callable[[], object], ops: int) -> float:
    start = time.process_time_ns()
    for _ in range(ops):
        operation()
    return (time.process_time_ns() - start) / ops / 1000.0


def run(rounds: int, ops: int) -> dict[str, float]:
    spec = SPECS["ascii"]
    payload = bytes(iso8583.encode(dict(BENCH_MESSAGE), spec)[0])
    vault = InMemoryVault()
    plain = Iso8583Adapter("ascii")
    metrics = HubMetrics()
    measured = metrics.instrument_adapter(Iso8583Adapter("ascii"))
    edge = metrics.edge("pos")

    def context(tokenizer: PanTokenizer) -> DecodeContext:
        return DecodeContext(TENANT, tokenizer, now=lambda: NOW, new_message_id=lambda: "b")

    plain_decode, plain_encode = context(vault), EncodeContext(TENANT, vault)
    measured_decode = context(metrics.tokenizer(vault))
    measured_encode = EncodeContext(TENANT, metrics.detokenizer(vault))

    latencies: deque[float] = deque(maxlen=1000)  # the edge keeps its latencies either way

    def without_metrics() -> bytes:
        started = time.perf_counter()
        reply = plain.encode(plain.decode(payload, plain_decode), plain_encode)
        latencies.append(time.perf_counter() - started)
        return reply

    def with_metrics() -> bytes:
        edge.request_started()
        started = time.perf_counter()
        reply = measured.encode(measured.decode(payload, measured_decode), measured_encode)
        latency = time.perf_counter() - started
        latencies.append(latency)
        edge.request_finished(latency)
        return reply

    assert without_metrics() == with_metrics() == payload
    cases = {"without metrics": without_metrics, "with metrics": with_metrics}
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for operation in cases.values():
        _cpu_us_per_op(operation, ops // 10)  # warm-up
    for _ in range(rounds):
        for label, operation in cases.items():
            samples[label].append(_cpu_us_per_op(operation, ops))
    return {label: statistics.median(values) for label, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args(argv)
    version = importlib.metadata.version("prometheus-client")
    print(f"python {sys.version.split()[0]}, prometheus_client {version}")
    print(f"rounds {args.rounds} x {args.ops} payments each, median round, CPU time\n")
    results = run(args.rounds, args.ops)
    for label, micros in results.items():
        print(f"  {label:<16} {micros:7.1f} us/payment")
    extra = results["with metrics"] - results["without metrics"]
    print(f"  metrics cost     {extra:7.1f} us/payment")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
