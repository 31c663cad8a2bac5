"""Benchmark: outbound credit transfers through the saga runner against the same flow without
it, in one run.

Parts, the same for both: mainframe_sim in a process of its own (``python -m mainframe_sim
serve``, SQLite ledger, len2 framing) reached through the hub's TCP connector; RabbitMQ for
the clearing queue pair (:class:`hub.clearing_outgoing.ClearingOutgoing`, its status
consumer handing over up to ``ANSWER_HANDLERS`` answers at once in both cases); a clearing system
in a process of its own (``python -m bench.sagas clearing``) that answers every pacs.008 at
once with a pacs.002 ``ACSC``; the journal on SQLite in a temporary directory.

- **floor**: each payment as straight code, no saga: ``HOLD`` on the mainframe, the
  pacs.008 published (broker confirm), the pacs.002 awaited, ``DEBT`` consuming the hold,
  and the three journal events the gateway writes (``received``, ``sent``,
  ``status_changed``), each appended in its own transaction;
- **sagas**: :class:`hub.sagas.service.PaymentSagas`: ``submit_payment``, the runner's loop
  and the status queue's answers as signals, with everything that makes it survive a crash
  (the saga row and its lease, one journal event per transition, the stored signal).

``--payments`` payments with at most ``--in-flight`` at once (the sagas that fit are
submitted together, as a gateway's concurrent requests would be), measured from the first
submission to the last settled saga; ``--rounds`` rounds, the two cases alternated (each
on a fresh journal), so a change of load on a shared machine hits both. The medians of
payments per second and their ratio are printed (``bench/RESULTS.md``), with the journal
database's commits per payment (SQLAlchemy's ``commit`` event: the figure a loaded machine
does not blur) and this process's CPU seconds per payment::

    .venv/bin/python -m bench.sagas [--payments 400] [--in-flight 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEBTOR = "DE89370400440532013000"
CREDITOR = "GB33BUKB20201555555555"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_clearing(outgoing: str) -> None:
    """The clearing system: every pacs.008 on ``outgoing`` answered ACSC on its reply_to."""
    import pika

    from adapters.base import BatchAdapter, DecodeContext, EncodeContext
    from adapters.registry import default_registry
    from canonical_model.codes import Status, TransactionStatus
    from canonical_model.messages import MessageFunction, OriginalTransaction
    from vault.memory import InMemoryVault

    pacs002 = default_registry().get("iso20022:pacs.002")
    assert isinstance(pacs002, BatchAdapter)
    vault = InMemoryVault(fingerprint_key=b"f" * 32, token_key=b"t" * 32)
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.queue_declare(outgoing, durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_qos(prefetch_count=256)
    for method, properties, body in channel.consume(outgoing):
        (payment,) = pacs002.decode_batch(body, DecodeContext("clearing", vault))
        answer = payment.__class__(
            payment.kind,
            MessageFunction.RESPONSE,
            "clearing",
            payment.ids.__class__(
                f"st-{properties.message_id}"[:35],
                end_to_end_id=payment.ids.end_to_end_id,
                uetr=payment.ids.uetr,
            ),
            transmitted_at=dt.datetime.now(dt.UTC),
            status=Status(TransactionStatus.ACSC),
            original=OriginalTransaction(
                message_type="pacs.008.001.08",
                message_id=properties.message_id,
                end_to_end_id=payment.ids.end_to_end_id,
                uetr=payment.ids.uetr,
            ),
        )
        document = pacs002.encode_batch([answer], EncodeContext("clearing"))
        channel.basic_publish(
            "", properties.reply_to, document, pika.BasicProperties(delivery_mode=2)
        )
        channel.basic_ack(method.delivery_tag)


def _wait_for_consumer(queue: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for _ in range(600):
            declared = channel.queue_declare(queue, passive=True)
            if declared.method.consumer_count:
                return
            time.sleep(0.05)
        raise RuntimeError(f"the clearing process never consumed {queue}")
    finally:
        connection.close()


def _payment(tenant: str) -> Any:
    from canonical_model.messages import (
        Account,
        CanonicalMessage,
        Identifiers,
        MessageFunction,
        MessageKind,
        Party,
    )
    from canonical_model.money import Money
    from gateway.ports import new_id

    number = secrets.randbelow(10**8)
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        tenant,
        Identifiers(
            new_id("pmt"),  # never 13 digits in a row: the journal refuses those as a PAN
            end_to_end_id=f"E2E-{number:08d}",
            instruction_id=f"I-{number:08d}",
            uetr=str(uuid.uuid4()),
        ),
        amount=Money.of("0.01", "EUR"),
        debtor_account=Account(iban=DEBTOR),
        creditor=Party(name="Bench Creditor"),
        creditor_account=Account(iban=CREDITOR, name="Bench Creditor"),
    )


class _Parts:
    """What both cases share: the connector, the codecs, the journal keys."""

    def __init__(self, connector: Any, workdir: Path) -> None:
        from adapters.base import BatchAdapter
        from adapters.registry import default_registry
        from journal import StaticMasterKeys
        from vault.memory import InMemoryVault

        self.connector = connector
        self.workdir = workdir
        self.keys = StaticMasterKeys({1: secrets.token_bytes(32)})
        pacs008 = default_registry().get("iso20022:pacs.008")
        pacs002 = default_registry().get("iso20022:pacs.002")
        assert isinstance(pacs008, BatchAdapter) and isinstance(pacs002, BatchAdapter)
        self.pacs008, self.pacs002 = pacs008, pacs002
        self.vault = InMemoryVault(fingerprint_key=b"f" * 32, token_key=b"t" * 32)


@dataclass(frozen=True, slots=True)
class Figures:
    """One round of one case: payments per second, and per payment the journal database's
    commits and this process's CPU seconds."""

    rate: float
    commits: float
    cpu: float


async def _run_case(case: str, parts: _Parts, payments: int, in_flight: int) -> Figures:
    """The figures of ``case`` (``floor`` or ``sagas``)."""
    import dataclasses

    import pika
    from sqlalchemy import event

    from adapters.base import DecodeContext, EncodeContext
    from hub.clearing_outgoing import ClearingOutgoing
    from hub.journaling import transaction_ids
    from hub.sagas.mainframe import MainframePostings
    from hub.sagas.runner import posting_reference
    from hub.sagas.service import ANSWER_HANDLERS, PaymentSagas
    from hub.sagas.store import Phase
    from journal import Event, EventKind, Journal

    suffix = uuid.uuid4().hex[:8]
    outgoing, status = f"bench.sagas.{suffix}.out", f"bench.sagas.{suffix}.st"
    journal = Journal.open(f"sqlite:///{parts.workdir / f'{case}.db'}", parts.keys, create=True)
    commits = [0]

    def count_commit(_connection: Any) -> None:
        commits[0] += 1

    event.listen(journal.engine, "commit", count_commit)
    waiting: dict[str, asyncio.Future[None]] = {}
    holder: list[PaymentSagas] = []

    async def on_status(document: bytes) -> int:
        if holder:
            return await holder[0].receive_answer(document)
        context = DecodeContext("clearing", parts.vault)
        for report in parts.pacs002.decode_batch(document, context):
            original = report.original
            future = waiting.pop((original.message_id if original else None) or "", None)
            if future is not None:
                future.set_result(None)
        return 1

    clearing = ClearingOutgoing(
        AMQP_URL,
        asyncio.get_running_loop(),
        on_status,
        outgoing=outgoing,
        status=status,
        handlers=ANSWER_HANDLERS,
    )
    await asyncio.to_thread(clearing.start)
    peer = subprocess.Popen([sys.executable, "-m", "bench.sagas", "clearing", outgoing])
    await asyncio.to_thread(_wait_for_consumer, outgoing)  # before the clock starts
    postings = MainframePostings(parts.connector)
    gate = asyncio.Semaphore(in_flight)

    def record(message: Any, kind: EventKind, body: dict[str, str]) -> None:
        event = Event(kind, message.tenant, transaction_ids(message), dt.datetime.now(dt.UTC), body)
        journal.record([event])

    async def straight(message: Any) -> None:
        async with gate:
            saga_id = message.ids.message_id
            await asyncio.to_thread(
                record, message, EventKind.RECEIVED, {"status": "RCVD", "amount": "0.01"}
            )
            hold = posting_reference(saga_id, "hold")
            await postings.hold(hold, DEBTOR, message.amount.amount, "EUR")
            document = parts.pacs008.encode_batch(
                [dataclasses.replace(message, processing=None)], EncodeContext("bank-a")
            )
            answered = asyncio.get_running_loop().create_future()
            waiting[saga_id] = answered
            await clearing.publish(document, message_id=saga_id)
            await asyncio.to_thread(record, message, EventKind.SENT, {"status": "ACSP"})
            await answered
            settle = posting_reference(saga_id, "settle")
            await postings.debit(settle, DEBTOR, message.amount.amount, "EUR", hold=hold)
            await asyncio.to_thread(record, message, EventKind.STATUS_CHANGED, {"status": "ACSC"})

    messages = [_payment("bank-a") for _ in range(payments)]
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        commits_before = commits[0]
        if case == "floor":
            await asyncio.gather(*(straight(message) for message in messages))
        else:
            sagas = PaymentSagas(journal, parts.connector, clearing, tenant="bank-a")
            holder.append(sagas)
            sagas.runner.batch = in_flight
            stop = asyncio.Event()
            runner = asyncio.create_task(sagas.run(stop))
            submitted = 0
            while True:
                counts = await asyncio.to_thread(sagas.store.counts)
                done = counts.get(Phase.DONE.value, 0)
                if done >= payments:
                    break
                starting = messages[submitted : submitted + in_flight - (submitted - done)]
                if starting:  # at once, as a gateway's concurrent requests would
                    await asyncio.gather(*(sagas.submit_payment(each) for each in starting))
                    submitted += len(starting)
                await asyncio.sleep(0.02)
            stop.set()
            await runner
            outcomes = {record.outcome for record in sagas.store.sagas(limit=payments)}
            assert outcomes == {"settled"}, outcomes
        elapsed = time.perf_counter() - started
        return Figures(
            payments / elapsed,
            (commits[0] - commits_before) / payments,
            (time.process_time() - cpu_started) / payments,
        )
    finally:
        await asyncio.to_thread(clearing.stop)
        peer.terminate()
        peer.wait()
        journal.close()
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        for name in (outgoing, status, f"{status}.dlq"):
            channel.queue_delete(name)
        connection.close()


async def _measure(
    port: int, workdir: Path, payments: int, in_flight: int, rounds: int
) -> dict[str, list[Figures]]:
    from hub.config_file import MainframeConfig
    from hub.core import corebank_connector

    config = MainframeConfig(port=port, connections=8, timeout=5.0)
    results: dict[str, list[Figures]] = {"floor": [], "sagas": []}
    async with corebank_connector(config) as connector:
        await connector.wait_connected(config.connections)
        parts = _Parts(connector, workdir)
        for number in range(rounds):  # alternated, so a change of load hits both
            for case in ("floor", "sagas"):
                parts.workdir = workdir / f"round-{number}"
                parts.workdir.mkdir(exist_ok=True)
                results[case].append(await _run_case(case, parts, payments, in_flight))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``clearing QUEUE``, the clearing system's process)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["clearing"]:
        serve_clearing(args[1])
        return 0
    parser = argparse.ArgumentParser(prog="bench.sagas")
    parser.add_argument("--payments", type=int, default=400)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(args)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        db = f"sqlite:///{workdir / 'ledger.db'}"
        python = sys.executable
        subprocess.run(
            [python, "-m", "mainframe_sim", "--db", db, "seed"], check=True, capture_output=True
        )
        port = _free_port()
        mainframe = subprocess.Popen(
            [python, "-m", "mainframe_sim", "--db", db, "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            results = asyncio.run(
                _measure(port, workdir, options.payments, options.in_flight, options.rounds)
            )
        finally:
            mainframe.terminate()
            mainframe.wait()
    floor = statistics.median(figures.rate for figures in results["floor"])
    print(
        f"{'case':<8} {'payments/s (median)':>20} {'x floor':>8} {'commits/payment':>16} "
        f"{'CPU ms/payment':>15}  rounds"
    )
    for case, figures in results.items():
        rate = statistics.median(each.rate for each in figures)
        commits = statistics.median(each.commits for each in figures)
        cpu = statistics.median(each.cpu for each in figures) * 1000
        rounds = ", ".join(f"{each.rate:.1f}" for each in figures)
        print(
            f"{case:<8} {rate:>20.1f} {rate / floor:>8.2f} {commits:>16.2f} {cpu:>15.2f}  {rounds}"
        )
    ratios = [
        saga.rate / base.rate for base, saga in zip(results["floor"], results["sagas"], strict=True)
    ]
    print(f"ratio per round: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
    print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
