"""Benchmark: what tracing costs the hub per card payment, off and on, in one run.

**Spans per payment** (micro): the span work the hub does for one 0200 (``hub/edge.py``,
``hub/service.py``, ``hub/core.py``): edge receive, adapter decode, the log context bound,
publish with its ``traceparent``, process continued from that header, mainframe posting,
the outcome on two spans, adapter encode, reply write; each payment in a context of its own,
as each is an asyncio task in the hub. Cases:

- **off**: :class:`observability.tracing.Tracing` disabled (``[tracing] exporter = "none"``);
- **raw API, no SDK** (the floor of "off"): the same seven spans through the OpenTelemetry
  API with no SDK installed (its no-op tracer), as plain instrumentation would cost;
- **on**: tracing enabled as ``exporter = "otlp"`` sets it up (sampled, batched, behind
  :class:`MaskingSpanExporter`), exporting to an exporter that drops the spans: the batch
  thread's work (the masking included) is CPU of this process too, so it is in the figure
  once the queue is flushed at the end of each case;
- **raw SDK** (the floor of "on"): the same seven spans with the same attributes straight
  through the OpenTelemetry SDK, batched to the same dropping exporter, no wrapper, no
  masking.

**Hub in process**: ``HubService`` (``memory://`` transport, the mainframe simulator on the
same event loop, a fresh home), ``--payments`` 0200 purchases from ``--connections``
terminals, tracing off and on in alternate rounds; payments per second and the process's
CPU time per payment, the median of ``--rounds``.

Run::

    .venv/bin/python -m bench.tracing_overhead [--spans 20000] [--payments 2000]
        [--connections 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import iso8583
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from adapters.iso8583.specs import SPECS
from canonical_model.codes import status_from_iso8583
from canonical_model.messages import (
    Acceptor,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
)
from canonical_model.replies import reply_to
from hub.config_file import MainframeConfig, load_config
from hub.service import HubService
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import SEED_ACCOUNTS, seed_ledger
from mainframe_sim.server import MainframeServer
from observability.logs import bind_message
from observability.tracing import CardSafeIdGenerator, MaskingSpanExporter, Tracing

SPEC = SPECS["ascii"]
PAN = "4111111111111111"
_QUEUE = 1 << 20  # room for every span of a case: all are exported, so all are counted


class Dropping(SpanExporter):
    """Takes the spans and keeps nothing (counts them)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _messages() -> tuple[CanonicalMessage, CanonicalMessage]:
    request = CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "bank-a",
        Identifiers("3f2c9a0d5e", end_to_end_id="000000000042", instruction_id="000042"),
        acceptor=Acceptor(terminal_id="TERM0001"),
    )
    reply = reply_to(request, status_from_iso8583("00"), message_id="9b1d", transmitted_at=None)
    return request, reply


def hub_spans(tracing: Tracing, request: CanonicalMessage, reply: CanonicalMessage) -> None:
    """The span work of one payment, as the hub does it."""
    with tracing.edge_receive(
        peer="10.0.0.7:51000", port=8583, framing="len2-binary", adapter="iso8583:ascii"
    ) as span:
        with tracing.adapter("decode", "iso8583:ascii"):
            pass
        bind_message(request)
        tracing.describe(span, request)
        with tracing.publish(
            system="rabbitmq",
            exchange="isobridge.canonical",
            routing_key="core.financial.request.bank-a",
            destination="core",
            message=request,
            rule="visa",
        ):
            header = tracing.traceparent()
        with tracing.consume(
            system="rabbitmq",
            destination="core",
            queue="isobridge.core",
            headers={"traceparent": header} if header else {},
            message=request,
            correlation_id="c-1",
        ) as consumed:
            with tracing.connector_call(peer="mainframe 127.0.0.1:7070", reference="A1B2"):
                pass
            tracing.outcome(consumed, reply)
        tracing.outcome(span, reply)
        with tracing.adapter("encode", "iso8583:ascii"):
            pass
        with tracing.reply_write():
            pass


_PROPAGATOR = TraceContextTextMapPropagator()


def raw_spans(tracer: trace.Tracer) -> None:
    """Seven spans with the same attributes through the OpenTelemetry API directly."""
    attributes = {
        "isobridge.tenant": "bank-a",
        "isobridge.message.id": "3f2c9a0d5e",
        "isobridge.message.kind": "financial",
        "isobridge.message.function": "request",
        "isobridge.stan": "000042",
        "isobridge.end_to_end_id": "000000000042",
        "isobridge.terminal_id": "TERM0001",
    }
    with tracer.start_as_current_span(
        "edge receive",
        kind=SpanKind.SERVER,
        attributes={"network.transport": "tcp", "server.port": 8583},
    ) as span:
        with tracer.start_as_current_span("adapter decode", attributes={"a": "iso8583"}):
            pass
        span.set_attributes(attributes)
        carrier: dict[str, str] = {}
        with tracer.start_as_current_span(
            "publish core", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            _PROPAGATOR.inject(carrier)
        with tracer.start_as_current_span(
            "process core",
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as consumed:
            with tracer.start_as_current_span("mainframe posting", kind=SpanKind.CLIENT):
                pass
            consumed.set_attributes({"isobridge.status": "ACSC", "iso8583.response_code": "00"})
        span.set_attributes({"isobridge.status": "ACSC", "iso8583.response_code": "00"})
        with tracer.start_as_current_span("adapter encode", attributes={"a": "iso8583"}):
            pass
        with tracer.start_as_current_span("reply write"):
            pass


def _batched(exporter: SpanExporter) -> Tracing:
    """Tracing as ``exporter = "otlp"`` sets it up, exporting to ``exporter``: batched, on
    the SDK's export thread, behind the masking exporter."""
    provider = TracerProvider(
        sampler=ParentBased(ALWAYS_ON),
        id_generator=CardSafeIdGenerator(),
        shutdown_on_exit=False,
    )
    processor = BatchSpanProcessor(MaskingSpanExporter(exporter), max_queue_size=_QUEUE)
    provider.add_span_processor(processor)
    return Tracing(provider)


def _per_payment_us(run: Callable[[], None], flush: Callable[[], object], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        contextvars.copy_context().run(run)  # each payment: a task of its own
    flush()  # the export thread's share
    return (time.process_time() - started) / count * 1e6


def micro(count: int, rounds: int) -> None:
    request, reply = _messages()
    off = Tracing.disabled()
    dropped = Dropping()
    on = _batched(dropped)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=_QUEUE))
    raw_sdk = provider.get_tracer("bench")
    no_sdk = trace.NoOpTracer()
    assert on.provider is not None
    nothing: Callable[[], object] = lambda: None  # noqa: E731
    cases: list[tuple[str, Callable[[], None], Callable[[], object]]] = [
        ("off (exporter = none)", lambda: hub_spans(off, request, reply), nothing),
        ("raw API, no SDK", lambda: raw_spans(no_sdk), nothing),
        ("on, masked, exported", lambda: hub_spans(on, request, reply), on.provider.force_flush),
        ("raw SDK, exported", lambda: raw_spans(raw_sdk), provider.force_flush),
    ]
    results: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(rounds):
        for name, run, flush in cases:
            results[name].append(_per_payment_us(run, flush, count))
    on.shutdown()
    assert dropped.spans == 7 * count * rounds
    median = {name: statistics.median(values) for name, values in results.items()}
    print(f"spans per payment, {count} payments x {rounds} rounds (median CPU µs per payment):")
    print("| case | CPU µs per payment | ratio to its floor |")
    print("|---|---:|---:|")
    floors = {
        "off (exporter = none)": "raw API, no SDK",
        "on, masked, exported": "raw SDK, exported",
    }
    for name, _, _ in cases:
        floor = floors.get(name)
        ratio = f"{median[name] / median[floor]:.2f}" if floor else "floor"
        print(f"| {name} | {median[name]:.1f} | {ratio} |")
    provider.shutdown()


def _purchase(stan: int, account: str) -> bytes:
    doc = {
        "t": "0200", "2": PAN, "3": "000000", "4": "000000000100", "7": "1129101500",
        "11": f"{stan % 1_000_000:06d}", "12": "101500", "13": "1129",
        "37": f"{stan:012d}", "41": f"T{stan % 97:07d}", "42": "MERCHANT0000001", "49": "978",
        "102": account,
    }  # fmt: skip
    raw, _ = iso8583.encode(doc, SPEC)
    return bytes(raw)


async def _terminal(port: int, payloads: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for payload in payloads:
        writer.write(struct.pack(">H", len(payload)) + payload)
        await writer.drain()
        (length,) = struct.unpack(">H", await reader.readexactly(2))
        await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()


async def _hub_round(
    home: Path, traced: bool, payments: int, connections: int
) -> tuple[float, float]:
    ledger = Ledger.open(f"sqlite:///{home / 'ledger.db'}")
    seed_ledger(ledger)
    mainframe = MainframeServer(ledger)
    _, port = await mainframe.start("127.0.0.1", 0)
    toml = home / "hub.toml"
    toml.write_text(f"[hub]\nhome = \"{home / 'state'}\"\n[[listeners]]\nname = 'pos'\nport = 0\n")
    config = dataclasses.replace(
        load_config(toml, environ={}), mainframe=MainframeConfig(port=port, timeout=5.0)
    )
    dropped = Dropping()
    tracing = _batched(dropped) if traced else Tracing.disabled()
    accounts = [a.number for a in SEED_ACCOUNTS if a.status == "open" and a.opening > 1_000_000]
    per = payments // connections
    try:
        async with HubService(config, tracing=tracing) as service:
            edge = service.edges[0].port
            batches = [
                [_purchase(c * per + i + 1, accounts[c % len(accounts)]) for i in range(per)]
                for c in range(connections)
            ]
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(_terminal(edge, batch) for batch in batches))
            if tracing.provider is not None:
                tracing.provider.force_flush()  # the export thread's share
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await mainframe.close()
        ledger.close()
        tracing.shutdown()
    if traced:
        assert dropped.spans >= 7 * per * connections
    return per * connections / wall, cpu / (per * connections) * 1e6


def hub(payments: int, connections: int, rounds: int) -> None:
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for number in range(rounds):
        for traced in (False, True) if number % 2 == 0 else (True, False):
            with tempfile.TemporaryDirectory(prefix="isobridge-bench-") as home:
                results[traced].append(
                    asyncio.run(_hub_round(Path(home), traced, payments, connections))
                )
    print(f"\nhub in process, memory:// transport, {payments} payments x {rounds} rounds (median):")
    print("| tracing | payments per second | CPU µs per payment |")
    print("|---|---:|---:|")
    medians = {}
    for traced in (False, True):
        tps = statistics.median(r[0] for r in results[traced])
        cpu = statistics.median(r[1] for r in results[traced])
        medians[traced] = (tps, cpu)
        print(
            f"| {'on (7 spans, masked, exported)' if traced else 'off'} | {tps:,.0f} | {cpu:,.0f} |"
        )
    (tps_off, cpu_off), (tps_on, cpu_on) = medians[False], medians[True]
    print(
        f"\ntracing on: throughput x{tps_on / tps_off:.2f}, CPU per payment x{cpu_on / cpu_off:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=20_000, help="payments in the micro case")
    parser.add_argument("--payments", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    micro(args.spans, args.rounds)
    hub(args.payments, args.connections, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
