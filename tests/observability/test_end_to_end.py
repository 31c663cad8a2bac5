"""Traces and logs of the running hub, end to end: a real RabbitMQ (a topology of this test's
own), the real mainframe simulator over TCP, ISO 8583 over TCP at the edge.

- One 0200 makes one trace whose spans cover edge -> adapter -> publish -> (AMQP) ->
  consume -> connector -> reply, each the child it should be, and the journal names it.
- Chaos (track data and PIN blocks in the requests, format errors, an unroutable card,
  malformed messages dead-lettered on the broker, a slow then killed then restarted
  mainframe: timeouts and reversals): afterwards no clear card number, track data or PIN
  block is in the log lines (JSON, every logger), the spans, the queues and dead-letter
  queues, the journal rows or any database file of the hub or the mainframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import sqlite3
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import iso8583
import pika
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind

from adapters.iso8583.specs import SPECS
from hub.bootstrap import open_journal
from hub.config import Settings
from hub.config_file import MainframeConfig, load_config
from hub.service import HubService
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from observability.logs import LoggingConfig, configure_logging
from observability.tracing import Tracing, TracingConfig
from routing.wire import CONTENT_TYPE, KIND, SCHEMA, TENANT
from tests.broker import own_name
from tests.hub.test_service import _config
from tests.mainframe_sim.samples import ANNA, JONAS
from tests.routing.conftest import amqp_url, delete_topology, require_broker
from tests.support import on_event_loop

PAN = "4111111111111111"
OFF_US_PAN = "6011000990139424"  # no rule routes its BIN: parked as unroutable
DISCRETIONARY = "987654321"
TRACK2 = f"{PAN}=2512101{DISCRETIONARY}"
CARDHOLDER = "DOE/JOHN"
TRACK1 = f"B{PAN}^{CARDHOLDER}^2512101000000"
PIN_BLOCK = "0412AC89ABCDEF67"
SPEC = SPECS["ascii"]
RULES = """
[fallback]
dead_letter = "no rule for this card"

[[rule]]
name = "visa"
destination = "core"
bin = ["400000-499999"]
"""


def _purchase(stan: int, account: str, pan: str = PAN, amount: int = 1_000) -> bytes:
    doc = {
        "t": "0200",
        "2": pan,
        "3": "000000",
        "4": f"{amount:012d}",
        "7": "1129101500",
        "11": f"{stan:06d}",
        "12": "101500",
        "13": "1129",
        "37": f"{stan:012d}",
        "41": "TERM0001",
        "42": "MERCHANT0000001",
        "49": "978",
        "102": account,
    }
    if pan == PAN:
        doc |= {"35": TRACK2, "45": TRACK1, "52": PIN_BLOCK}
    raw, _ = iso8583.encode(doc, SPEC)
    return bytes(raw)


class _Terminal:
    """A len2-binary ISO 8583 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> _Terminal:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, payload: bytes) -> str:
        """Send a request; field 39 of the answer."""
        self.writer.write(struct.pack(">H", len(payload)) + payload)
        await self.writer.drain()
        (length,) = struct.unpack(">H", await self.reader.readexactly(2))
        answer, _ = iso8583.decode(bytearray(await self.reader.readexactly(length)), SPEC)
        return str(answer["39"])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class _Hub:
    service: HubService
    ledger: Ledger
    mainframe: MainframeServer
    mainframe_port: int
    faults: Faults
    spans: InMemorySpanExporter  # as exported: behind the masking exporter
    raw_spans: InMemorySpanExporter  # as the hub made them


@contextlib.asynccontextmanager
async def _traced_hub(tmp_path: Path) -> AsyncIterator[_Hub]:
    url = amqp_url()
    require_broker(url)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_ledger(ledger)
    faults = Faults(seed=7)
    mainframe = MainframeServer(ledger, faults=faults)
    _, port = await mainframe.start("127.0.0.1", 0)
    config = load_config(_config(tmp_path, port, url, RULES), environ={})
    config = dataclasses.replace(
        config,
        mainframe=MainframeConfig(
            port=port, timeout=0.3, connections=2, failure_threshold=3, reset_after=0.5
        ),
    )
    spans, raw_spans = InMemorySpanExporter(), InMemorySpanExporter()
    tracing = Tracing.from_config(TracingConfig(), exporters=[spans])
    assert tracing.provider is not None
    tracing.provider.add_span_processor(SimpleSpanProcessor(raw_spans))
    service = HubService(config, tracing=tracing)
    prefix = own_name("t", 10)  # the shared broker: queues of this test's own
    service.topology = dataclasses.replace(
        service.topology,
        exchange=f"{prefix}.canonical",
        dead_letter_exchange=f"{prefix}.dlx",
        prefix=prefix,
    )
    hub = _Hub(service, ledger, mainframe, port, faults, spans, raw_spans)
    try:
        async with service:
            yield hub
    finally:
        try:
            await hub.mainframe.close()
            ledger.close()
            tracing.shutdown()
        finally:
            await asyncio.to_thread(delete_topology, url, service.topology)


async def _finished(exporter: InMemorySpanExporter, name: str, count: int) -> None:
    """Wait until ``count`` spans called ``name`` have ended (the edge's ends after the
    reply is written, just after the terminal reads it)."""
    for _ in range(500):
        if sum(span.name == name for span in exporter.get_finished_spans()) >= count:
            return
        await asyncio.sleep(0.01)


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_one_purchase_is_one_trace_across_the_amqp_hop(tmp_path: Path) -> None:
    spans: tuple[ReadableSpan, ...] = ()

    @on_event_loop
    async def scenario() -> None:
        nonlocal spans
        async with _traced_hub(tmp_path) as hub:
            terminal = await _Terminal.connect(hub.service.edges[0].port)
            assert await terminal.exchange(_purchase(1, ANNA)) == "00"
            await terminal.close()
            await _finished(hub.spans, "edge receive", 1)
            spans = hub.spans.get_finished_spans()
            assert PAN not in "".join(span.to_json() for span in hub.raw_spans.get_finished_spans())

    scenario()
    named = _by_name(spans)
    assert set(named) == {
        "edge receive",
        "adapter decode",
        "publish core",
        "process core",
        "mainframe posting",
        "adapter encode",
        "reply write",
    }
    edge = named["edge receive"]
    (trace_id,) = {span.context.trace_id for span in spans}
    assert edge.parent is None
    for child in ("adapter decode", "publish core", "adapter encode", "reply write"):
        assert _parent(named[child]) == edge.context.span_id, child
    process = named["process core"]
    assert process.parent is not None and process.parent.is_remote  # came in a header
    assert _parent(process) == named["publish core"].context.span_id
    assert _parent(named["mainframe posting"]) == process.context.span_id
    kinds = {name: span.kind for name, span in named.items()}
    assert kinds["edge receive"] is SpanKind.SERVER
    assert kinds["publish core"] is SpanKind.PRODUCER
    assert kinds["process core"] is SpanKind.CONSUMER
    assert kinds["mainframe posting"] is SpanKind.CLIENT
    edge_attributes = dict(edge.attributes or {})
    assert edge_attributes["iso8583.response_code"] == "00"
    assert str(edge_attributes["isobridge.card.token_masked"]).startswith("411111")
    assert edge_attributes["isobridge.stan"] == "000001"
    publish = dict(named["publish core"].attributes or {})
    assert publish["messaging.system"] == "rabbitmq"
    assert publish["isobridge.rule"] == "visa"
    journal = open_journal(Settings.from_environment({"ISOBRIDGE_HOME": str(tmp_path / "home")}))
    try:
        (transaction,) = journal.trace("000000000001")
    finally:
        journal.close()
    assert transaction.events[0].body["trace_id"] == f"{trace_id:032x}"


# -- chaos ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _json_logs() -> Iterator[io.StringIO]:
    """Every record of every logger, at debug level, as the hub writes them (JSON, masked)."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(LoggingConfig("json", "DEBUG"), stream, force=True)
    try:
        yield stream
    finally:
        if handler is not None:
            root.removeHandler(handler)
        root.setLevel(level)


def _publish_malformed(hub: _Hub) -> None:
    """Messages that are not canonical, put on the core destination by a foreign producer."""
    topology = hub.service.topology
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        key = "core.financial.request.bank-a"
        good = {SCHEMA: 1, KIND: "financial", TENANT: "bank-a"}
        for body, headers in (
            (b"{not json", good),
            (b'{"kind": "financial"}', good),
            (b"{}", {SCHEMA: 9, KIND: "financial", TENANT: "bank-a"}),
        ):
            channel.basic_publish(
                topology.exchange,
                key,
                body,
                pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    message_id=uuid.uuid4().hex,
                    headers=headers,
                    delivery_mode=2,
                ),
            )
    finally:
        connection.close()


def _queue_contents(hub: _Hub) -> list[str]:
    """Every message left in the topology's queues (bodies and properties), left there."""
    topology = hub.service.topology
    names = [topology.unroutable_queue]
    for destination in topology.destinations:
        names += [topology.queue(destination.name), topology.dead_letter_queue(destination.name)]
        names += [topology.retry_queue(destination.name, d) for d in destination.retry.delays_ms]
    found = []
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    try:
        channel = connection.channel()
        for name in names:
            while True:
                method, properties, body = channel.basic_get(name, auto_ack=False)
                if method is None:
                    break
                found.append(f"{name} {properties!r} {body!r} {body.decode('utf-8', 'replace')}")
    finally:
        connection.close()  # unacknowledged: they stay in their queues
    return found


def _database_texts(tmp_path: Path) -> tuple[list[str], list[bytes]]:
    """Every row of every table of the hub's and the mainframe's SQLite databases, and the
    raw bytes of every file in the hub's home and of the ledger."""
    rows = []
    files = sorted((tmp_path / "home").rglob("*")) + sorted(tmp_path.glob("ledger.db*"))
    for path in files:
        if path.suffix != ".db":
            continue
        with contextlib.closing(sqlite3.connect(path)) as database:
            tables = database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in tables.fetchall():
                for row in database.execute(f'SELECT * FROM "{table}"'):
                    rows.append(f"{path.name} {table} {row!r}")
    return rows, [path.read_bytes() for path in files if path.is_file()]


def _forbidden() -> list[str]:
    """The card data this test sent, as text, in each way it could be written."""
    pin_bytes = repr(bytes.fromhex(PIN_BLOCK))[2:-1]  # b'\x04\x12...' as Python shows it
    texts = [DISCRETIONARY, CARDHOLDER, PIN_BLOCK, PIN_BLOCK.lower(), pin_bytes]
    for pan in (PAN, OFF_US_PAN):
        groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
        texts += [pan, " ".join(groups), "-".join(groups)]
    return texts


def test_no_card_data_anywhere_after_an_end_to_end_run_with_chaos(tmp_path: Path) -> None:
    codes: list[str] = []
    queues: list[str] = []
    spans: list[str] = []

    @on_event_loop
    async def scenario() -> None:
        async with _traced_hub(tmp_path) as hub:
            port = hub.service.edges[0].port
            stans = iter(range(1, 1000))

            async def purchases(count: int, account: str) -> None:
                terminal = await _Terminal.connect(port)
                for _ in range(count):
                    codes.append(await terminal.exchange(_purchase(next(stans), account)))
                await terminal.close()

            await asyncio.gather(purchases(5, ANNA), purchases(5, JONAS))
            terminal = await _Terminal.connect(port)
            codes.append(await terminal.exchange(_purchase(next(stans), ANNA, OFF_US_PAN)))
            bad_amount = _purchase(next(stans), ANNA).replace(b"000000001000", b"0000000010X0")
            codes.append(await terminal.exchange(bad_amount))  # 30, format error
            await terminal.close()
            await asyncio.to_thread(_publish_malformed, hub)
            hub.faults.set(FaultPlan.parse("latency=fixed:600ms"))  # the hub waits 0.3 s
            await purchases(4, ANNA)
            hub.faults.set(FaultPlan())
            await hub.mainframe.close()  # killed: connections cut, then refused
            await purchases(4, JONAS)
            hub.mainframe = MainframeServer(hub.ledger)
            await hub.mainframe.start("127.0.0.1", hub.mainframe_port)
            reversals = hub.service.reversals
            assert reversals is not None
            for _ in range(300):
                if not reversals.pending():
                    break
                await asyncio.sleep(0.1)
            assert reversals.pending() == []
            await asyncio.sleep(0.6)  # the breaker's reset period
            await purchases(3, ANNA)
            for _ in range(100):
                if len(hub.service.transport.dead_letters("core")) >= 3:
                    break
                await asyncio.sleep(0.05)
            queues.extend(await asyncio.to_thread(_queue_contents, hub))
            await _finished(hub.spans, "edge receive", len(codes))
            for exporter in (hub.spans, hub.raw_spans):
                spans.extend(span.to_json() for span in exporter.get_finished_spans())

    with _json_logs() as logs:
        scenario()
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    rows, files = _database_texts(tmp_path)

    # The chaos happened: every kind of answer, the parked messages, the reversals.
    assert {"00", "91", "92", "30"} <= set(codes), codes
    assert sum(name.split()[0].endswith(".dlq") for name in queues) >= 3
    assert sum(name.split()[0].endswith(".unroutable") for name in queues) == 1
    assert any("reversed" in row for row in rows)
    format_errors = [line for line in lines if "format error" in line["message"]]
    assert format_errors
    assert all(line["tenant"] == "bank-a" for line in format_errors)  # the listener's
    assert any(line["logger"].startswith("pika") for line in lines)
    traced = [line for line in lines if "trace_id" in line and "tenant" in line]
    assert traced, "no log line names its trace and tenant"
    assert len(spans) >= 2 * 7 * codes.count("00")

    everything = "\n".join(
        [logs.getvalue(), *queues, *spans, *rows, *(f.decode("latin-1") for f in files)]
    )
    for text in _forbidden():
        assert text not in everything, text
    for pan in (PAN, OFF_US_PAN):
        assert not any(pan.encode("cp037") in f for f in files)  # EBCDIC, the mainframe's
    assert not any(bytes.fromhex(PIN_BLOCK) in f for f in files)

    # The read model that the CLI and the gateway query is the events' projection: rebuilt
    # from scratch after this mixed run, it is the live one, row for row.
    journal = open_journal(Settings.from_environment({"ISOBRIDGE_HOME": str(tmp_path / "home")}))
    try:
        live = journal.transactions()
        assert {view.status for view in live} >= {"ACSC", "RJCT"}
        assert journal.rebuild() > 0
        assert journal.transactions() == live
        assert journal.verify().ok
    finally:
        journal.close()


class _CardLikeIds(IdGenerator):
    """Trace ids whose hex form holds a Luhn-valid 16-digit run (a foreign tracer's might)."""

    def generate_trace_id(self) -> int:
        return int(f"abcdefabcdefabcd{PAN}", 16)

    def generate_span_id(self) -> int:
        return 0xABCDEF0123456789


def test_a_trace_id_that_could_pass_for_a_card_number_is_not_journaled(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        mainframe = MainframeServer(ledger)
        _, port = await mainframe.start("127.0.0.1", 0)
        config = load_config(_config(tmp_path, port, "memory://", RULES), environ={})
        provider = TracerProvider(id_generator=_CardLikeIds(), shutdown_on_exit=False)
        try:
            async with HubService(config, tracing=Tracing(provider)) as service:
                terminal = await _Terminal.connect(service.edges[0].port)
                assert await terminal.exchange(_purchase(1, ANNA)) == "00"
                await terminal.close()
                assert service.tracing.trace_id() is None  # outside any request
        finally:
            await mainframe.close()
            ledger.close()

    scenario()
    journal = open_journal(Settings.from_environment({"ISOBRIDGE_HOME": str(tmp_path / "home")}))
    try:
        (transaction,) = journal.trace("000000000001")
    finally:
        journal.close()
    # Recorded, all of it (a refused event would have held its whole batch back).
    assert [event.kind.value for event in transaction.events] == ["received", "routed", "answered"]
    assert "trace_id" not in transaction.events[0].body
