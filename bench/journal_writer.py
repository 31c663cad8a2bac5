"""Benchmark: where the hub's journaling CPU goes, on the event loop and in the writer.

The load of a card payment as the hub journals it (:mod:`hub.service`): ``received`` and
``routed`` when it arrives, ``answered`` 5 ms later, from an asyncio loop at a paced rate,
through :class:`hub.journaling.JournalWriter` into a SQLite journal (WAL) in a temporary
directory. Three variants run in turns (``--rounds`` times each, medians reported):

- ``none``: the same loop without emitting events: what the loop costs by itself;
- ``thread``: the writer appending on a worker thread of this process (``process=False``);
- ``process``: the writer appending in its writer process (``process=True``, what
  ``isobridge run`` uses).

For each: this process's CPU per payment (``resource.getrusage``: the loop, and the thread
where there is one), and the writer process's (``/proc``). The loop's share is what the
journal takes from the hub's event loop, which is what bounds a hub process's throughput;
the sum is what the journal costs the machine.

Run::

    .venv/bin/python -m bench.journal_writer [--rate 700] [--seconds 8] [--rounds 3]
        [--interval 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from canonical_model.messages import (
    Acceptor,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    ProcessingCode,
)
from canonical_model.money import Money
from hub.journaling import JournalWriter
from journal import EventKind, Journal, StaticMasterKeys

VARIANTS = ("none", "thread", "process")
_TICK = 0.005
_ANSWER_AFTER = 1  # ticks


def _purchase(number: int) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "bank-a",
        Identifiers(
            f"hub-{number:012d}",
            end_to_end_id=f"6333{number:08d}",
            instruction_id=f"{number % 1_000_000:06d}",
        ),
        processing=ProcessingCode("00"),
        amount=Money.of("12.50", "EUR"),
        acceptor=Acceptor(terminal_id="TERM0001"),
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(
    variant: str, directory: Path, rate: float, seconds: float, interval: float
) -> tuple[float, float]:
    """(this process's, the writer process's) CPU seconds per payment."""
    journal = Journal.open(
        f"sqlite:///{directory / 'journal.db'}", StaticMasterKeys({1: bytes(32)}), create=True
    )
    writer = JournalWriter(journal, interval=interval, process=variant == "process")
    await writer.start()
    emit = variant != "none"
    messages = [_purchase(number) for number in range(int(rate * seconds * 1.5) + 100)]
    per_tick = max(1, round(rate * _TICK))
    received = {"message_kind": "financial", "function": "request", "amount": "12.50"}
    answered = {"status": "ACSC", "reason_code": None, "response_code": "00"}
    waiting: list[list[CanonicalMessage]] = []
    count = 0
    own, child = _own_cpu(), _process_cpu(writer.process_id)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and count + per_tick < len(messages):
        arrived = messages[count : count + per_tick]
        count += per_tick
        if emit:
            for message in arrived:
                writer.emit(EventKind.RECEIVED, message, {**received, "currency": "EUR"})
                writer.emit(EventKind.ROUTED, message, {"destination": "core", "rule": "cards"})
        waiting.append(arrived)
        if len(waiting) > _ANSWER_AFTER:
            for message in waiting.pop(0):
                if emit:
                    writer.emit(EventKind.ANSWERED, message, {**answered, "latency_ms": 5.0})
        await asyncio.sleep(_TICK)
    pid = writer.process_id
    while emit and writer.written < 3 * (count - sum(map(len, waiting))):
        await asyncio.sleep(_TICK)
    child = _process_cpu(pid) - child
    await writer.close()
    own = _own_cpu() - own
    journal.close()
    return own / count, child / count


def run(rate: float, seconds: float, rounds: int, interval: float = 0.02) -> list[str]:
    figures: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="isobridge-journal-writer-") as tmp:
        for number in range(rounds):
            for variant in VARIANTS:
                directory = Path(tmp) / f"{variant}{number}"
                directory.mkdir()
                figures[variant].append(
                    asyncio.run(_round(variant, directory, rate, seconds, interval))
                )
    lines = [
        f"journal writer: {rate:g} payments/s paced, batches every {interval * 1000:g} ms,"
        f" {seconds:g} s, {rounds} rounds each"
    ]
    loop_alone = statistics.median(own for own, _ in figures["none"])
    lines.append(f"  none   : this process {loop_alone * 1e6:,.0f} us per payment")
    for variant in ("thread", "process"):
        own = statistics.median(own for own, _ in figures[variant])
        child = statistics.median(child for _, child in figures[variant])
        lines.append(
            f"  {variant:7s}: this process {own * 1e6:,.0f} us per payment"
            f" (journaling {(own - loop_alone) * 1e6:+,.0f} us), writer process"
            f" {child * 1e6:,.0f} us; journaling in all {(own - loop_alone + child) * 1e6:,.0f} us"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=700.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.02, help="JournalWriter's, seconds")
    args = parser.parse_args(argv)
    for line in run(args.rate, args.seconds, args.rounds, args.interval):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
