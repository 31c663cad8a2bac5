"""Benchmark: how steady this machine's CPUs are (the host's share of the hub's p99).

One process per CPU, each pinned to its CPU, decodes the same ISO 8583 0200 with pyiso8583
(the raw library, the edge's first step) back to back for ``--seconds``, all at once. Each
counts the decodes it finished in every 10 ms window and the CPU time the kernel gave it
there. The speed of a window is its count against the run's 90th percentile window, so the
ratio is measured against the same library on the same machine in the same run.

What it reports, per CPU:

- the share of windows **below half speed**, the slowest percentiles, and the longest run
  of consecutive slow windows (how long the CPU stayed slow);
- the **CPU share** the process had inside its slow windows: near 1.0, nothing in this
  machine took the CPU from it, and the vCPU itself ran slow (the hypervisor ran something
  else, or made it share a core), which this kernel does not count as steal time;

and for all CPUs together, the share of windows in which **every** CPU was below half speed
at once, next to what it would be if the CPUs slowed independently.

A hub that keeps a CPU busy a fraction ``u`` of the time at full speed needs ``u / s`` of it
in a window at speed ``s``: above 1.0, payments queue for as long as the slow run lasts,
and drain afterwards: the hub's p99 at 500/s on these machines (bench/RESULTS.md). Run::

    .venv/bin/python -m bench.cpu_steadiness [--seconds 10] [--cpus 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import iso8583

from adapters.iso8583.specs import SPECS
from bench.idle_penalty import purchase_requests

WINDOW = 0.010
SLOW = 0.5
SPEC = SPECS["ascii"]


def decode_windows(seconds: float) -> list[tuple[int, float]]:
    """Decodes finished and CPU seconds given, per 10 ms window, decoding back to back."""
    [request] = purchase_requests(1)
    clock, cpu_clock = time.perf_counter, time.thread_time
    for _ in range(200):  # the interpreter's caches, before the first window
        iso8583.decode(request, SPEC)
    windows: list[tuple[int, float]] = []
    start = clock()
    stop = start + seconds
    window_end = start + WINDOW
    count, cpu_start = 0, cpu_clock()
    while True:
        iso8583.decode(request, SPEC)
        count += 1
        now = clock()
        if now < window_end:
            continue
        cpu_now = cpu_clock()
        windows.append((count, cpu_now - cpu_start))
        if now >= stop:
            return windows
        count, cpu_start = 0, cpu_now
        window_end += WINDOW * (1 + int((now - window_end) / WINDOW))


@dataclass(frozen=True, slots=True)
class CpuSteadiness:
    """One CPU's windows: speeds against its 90th percentile window, and CPU shares."""

    cpu: int
    speeds: tuple[float, ...]
    cpu_shares: tuple[float, ...]

    @classmethod
    def of(cls, cpu: int, windows: Sequence[tuple[int, float]]) -> CpuSteadiness:
        counts = sorted(count for count, _ in windows)
        reference = counts[int(0.9 * (len(counts) - 1))] or 1
        return cls(
            cpu,
            tuple(count / reference for count, _ in windows),
            tuple(min(1.0, given / WINDOW) for _, given in windows),
        )

    @property
    def slow(self) -> list[bool]:
        return [speed < SLOW for speed in self.speeds]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.speeds)
        return ordered[int(fraction * (len(ordered) - 1))]

    def longest_slow_run(self) -> float:
        """Seconds of the longest run of consecutive windows below half speed."""
        longest = run = 0
        for slow in self.slow:
            run = run + 1 if slow else 0
            longest = max(longest, run)
        return longest * WINDOW

    def line(self) -> str:
        slow = self.slow
        share = sum(slow) / len(slow)
        given = [s for s, is_slow in zip(self.cpu_shares, slow, strict=True) if is_slow]
        inside = f"; CPU share inside them {sum(given) / len(given):.2f}" if given else ""
        return (
            f"  CPU {self.cpu}: {share * 100:4.1f}% of 10 ms windows below half speed"
            f" (p1 {self.percentile(0.01):.2f}x, p5 {self.percentile(0.05):.2f}x,"
            f" p50 {self.percentile(0.5):.2f}x), longest slow run"
            f" {self.longest_slow_run() * 1e3:.0f} ms{inside}"
        )


def together(cpus: Sequence[CpuSteadiness]) -> str:
    """All CPUs below half speed in the same window: measured, and if they were independent."""
    slows = [c.slow for c in cpus]
    length = min(map(len, slows))
    every = sum(all(slow[i] for slow in slows) for i in range(length)) / length
    independent = 1.0
    for slow in slows:
        independent *= sum(slow[:length]) / length
    return (
        f"  every CPU below half speed at once: {every * 100:.1f}% of windows"
        f" ({independent * 100:.1f}% if they slowed independently)"
    )


def measure(seconds: float, cpus: Sequence[int]) -> list[CpuSteadiness]:
    """Decode on every CPU of ``cpus`` at once, one pinned process each, for ``seconds``."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.cpu_steadiness", "--worker", str(cpu),
             "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
        )
        for cpu in cpus
    ]  # fmt: skip
    results = []
    for cpu, worker in zip(cpus, workers, strict=True):
        out, _ = worker.communicate()
        if worker.returncode != 0:
            raise RuntimeError(f"the worker on CPU {cpu} failed (exit {worker.returncode})")
        results.append(CpuSteadiness.of(cpu, [tuple(w) for w in json.loads(out)]))
    return results


def report(seconds: float, cpus: Sequence[int]) -> list[str]:
    measured = measure(seconds, cpus)
    lines = [
        f"cpu steadiness: pyiso8583 decodes back to back on CPUs"
        f" {', '.join(map(str, cpus))} at once for {seconds:g} s, each 10 ms window against"
        f" the run's p90 window; load average {os.getloadavg()[0]:.1f}",
        *(c.line() for c in measured),
    ]
    if len(measured) > 1:
        lines.append(together(measured))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cpus", type=int, nargs="+", default=sorted(os.sched_getaffinity(0)))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    allowed = os.sched_getaffinity(0)
    if args.seconds <= 0:
        parser.error(f"--seconds {args.seconds:g}: expected a positive number of seconds")
    unknown = sorted(set(args.cpus) - allowed)
    if unknown:
        parser.error(
            f"--cpus: no CPU {', '.join(map(str, unknown))} for this process"
            f" (it may run on {', '.join(map(str, sorted(allowed)))})"
        )
    if args.worker is not None:
        os.sched_setaffinity(0, {args.worker})
        print(json.dumps(decode_windows(args.seconds)))
        return 0
    for line in report(args.seconds, args.cpus):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
