"""Benchmark: what a pause costs the next piece of work on this machine (the host's share of
the hub's latency at a paced rate).

The same work, one ISO 8583 0200 decoded with pyiso8583 (the raw library, the edge's first
step), timed alone: back to back, then after a sleep of each ``--gaps`` before every call.
The ratio column is each gap's median against back to back, measured in the same run. On
these virtual machines the work after a pause ran as on cold caches: it took 1.7-2x as long
after 2 ms asleep and about 3x after 10 ms (bench/RESULTS.md). A hub at 500 payments/s
pauses between most of its events, and so does every process of the chain, which is why
its CPU per payment at that rate is about twice what it is when saturated.

``--warm-cpu``: a process of the lowest priority (``SCHED_IDLE``) spins on the same CPU
meanwhile, so that the CPU never halts while this one sleeps (the spinner yields at once to
any other work), to tell the halt's share of the penalty from the rest. Both are pinned to
one CPU (``--cpu``). Run::

    .venv/bin/python -m bench.idle_penalty [--gaps 0.5 2 10] [--calls 500] [--warm-cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import iso8583

from adapters.iso8583.specs import SPECS

SPEC = SPECS["ascii"]
_SPIN = "import os; os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass"


def purchase_requests(count: int) -> list[bytes]:
    """``count`` ISO 8583 0200 purchases, encoded by pyiso8583 (ascii spec)."""
    requests = []
    for number in range(count):
        fields = {
            "t": "0200", "2": "4111111111111111", "3": "000000", "4": f"{1 + number:012d}",
            "7": "1129120000", "11": f"{number:06d}", "12": "120000", "13": "1129",
            "37": f"{number:012d}", "41": "BNCH0001", "42": "BENCHMERCHANT01", "49": "978",
        }  # fmt: skip
        raw, _ = iso8583.encode(fields, SPEC)
        requests.append(bytes(raw))
    return requests


def timed_calls(requests: list[bytes], gap: float, calls: int) -> list[float]:
    """Seconds each of ``calls`` decodes took, each after a sleep of ``gap`` seconds."""
    took = []
    for number in range(calls):
        if gap:
            time.sleep(gap)
        started = time.perf_counter()
        iso8583.decode(requests[number % len(requests)], SPEC)
        took.append(time.perf_counter() - started)
    return took


@contextlib.contextmanager
def _warm_cpu(cpu: int) -> Iterator[None]:
    spinner = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", _SPIN])
    try:
        time.sleep(0.2)
        yield
    finally:
        spinner.kill()
        spinner.wait()


def run(gaps: list[float], calls: int, cpu: int, warm_cpu: bool) -> list[str]:
    os.sched_setaffinity(0, {cpu})
    requests = purchase_requests(100)
    timed_calls(requests, 0.0, calls)  # warm the interpreter's caches
    lines = [
        f"idle penalty: pyiso8583 decode of a 0200, {calls} calls per case, pinned to CPU {cpu}"
        f"{', a SCHED_IDLE spinner on it' if warm_cpu else ''};"
        f" load average {os.getloadavg()[0]:.1f}"
    ]
    with _warm_cpu(cpu) if warm_cpu else contextlib.nullcontext():
        base = statistics.median(timed_calls(requests, 0.0, calls))
        lines.append(f"  back to back            median {base * 1e6:7.1f} us  1.00x")
        for gap in gaps:
            took = sorted(timed_calls(requests, gap / 1000, calls))
            median = statistics.median(took)
            p90 = took[int(0.9 * len(took))]
            lines.append(
                f"  after {gap:5.1f} ms asleep    median {median * 1e6:7.1f} us"
                f"  {median / base:4.2f}x  (p90 {p90 * 1e6:.1f} us)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.5, 2.0, 10.0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--warm-cpu", action="store_true")
    args = parser.parse_args(argv)
    for line in run(args.gaps, args.calls, args.cpu, args.warm_cpu):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
