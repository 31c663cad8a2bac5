"""The hub's tracer: off by default and then free of context switches, spans linked across a
``traceparent`` header, masked on the way out, ids that never look like a card number."""

from __future__ import annotations

import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from canonical_model.messages import (
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
)
from observability.tracing import CardSafeIdGenerator, Tracing, TracingConfig

PAN = "4111111111111111"


def _message() -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "bank-a",
        Identifiers("m-1", end_to_end_id="000000000042", instruction_id="000042"),
    )


def _traced() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing.from_config(TracingConfig(), exporters=[exporter]), exporter


def test_disabled_tracing_opens_no_span_and_propagates_nothing() -> None:
    tracing = Tracing.from_config(TracingConfig())
    assert not tracing.enabled
    first = tracing.adapter("decode", "iso8583:ascii")
    assert first is tracing.reply_write()  # one shared do-nothing context manager
    with first as span:
        assert not span.is_recording()
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert tracing.traceparent() is None
        assert tracing.trace_id() is None


def test_the_consumer_continues_the_producers_trace_from_the_header() -> None:
    tracing, exporter = _traced()
    consumer_side, consumer_exporter = _traced()  # another process: a provider of its own
    with (
        tracing.edge_receive(peer="10.0.0.7:51000", port=8583, framing="len2", adapter="a"),
        tracing.publish(
            system="rabbitmq",
            exchange="isobridge.canonical",
            routing_key="core.financial.request.bank-a",
            destination="core",
            message=_message(),
            rule="visa",
        ),
    ):
        header = tracing.traceparent()
        trace_id = tracing.trace_id()
    assert header is not None and trace_id is not None
    assert re.fullmatch(rf"00-{trace_id}-[0-9a-f]{{16}}-0[13]", header)
    with consumer_side.consume(
        system="rabbitmq",
        destination="core",
        queue="isobridge.core",
        headers={"traceparent": header.encode()},  # AMQP may hand strings back as bytes
        message=_message(),
        correlation_id="c-1",
    ) as span:
        assert span.is_recording()
    edge, publish = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    (process,) = consumer_exporter.get_finished_spans()
    assert (edge.kind, publish.kind, process.kind) == (
        SpanKind.SERVER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    )
    assert publish.parent is not None and publish.parent.span_id == edge.context.span_id
    assert process.parent is not None and process.parent.is_remote
    assert process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == edge.context.trace_id
    assert process.name == "process core"
    attributes = dict(publish.attributes or {})
    assert attributes["messaging.rabbitmq.destination.routing_key"] == (
        "core.financial.request.bank-a"
    )
    assert attributes["messaging.message.id"] == "m-1"
    assert dict(edge.attributes or {})["network.peer.port"] == 51000
    assert dict(process.attributes or {})["messaging.message.conversation_id"] == "c-1"


def test_a_missing_or_bad_header_starts_a_new_trace() -> None:
    tracing, exporter = _traced()
    for headers in ({}, {"traceparent": "garbage"}, {"traceparent": 7}):
        with tracing.consume(
            system="memory",
            destination="core",
            queue="isobridge.core",
            headers=headers,
            message=_message(),
        ):
            pass
    assert all(span.parent is None for span in exporter.get_finished_spans())


def _text(span: ReadableSpan) -> str:
    return str(span.to_json())


def test_every_string_of_an_exported_span_is_masked() -> None:
    tracing, exporter = _traced()

    def fail() -> None:
        with tracing.connector_call(peer=f"host {PAN}") as span:
            span.set_attribute("note", f"track ;{PAN}=2512101?")
            span.set_attribute("list", [PAN, "x"])
            raise ValueError(f"card {PAN}")

    with pytest.raises(ValueError, match="card"):
        fail()
    (exported,) = exporter.get_finished_spans()
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.status.description == "ValueError: card 411111******1111"
    (event,) = exported.events
    assert event.name == "exception"
    assert "411111******1111" in str(dict(event.attributes or {})["exception.stacktrace"])
    assert dict(exported.attributes or {})["list"] == ("411111******1111", "x")
    assert PAN not in _text(exported)
    assert "2512101" not in _text(exported)


def test_outcome_and_description_only_when_recording() -> None:
    tracing, exporter = _traced()
    with tracing.reply_write() as span:
        Tracing.describe(span, _message())
    Tracing.describe(trace.INVALID_SPAN, _message())  # no error on a span that records nothing
    (exported,) = exporter.get_finished_spans()
    assert dict(exported.attributes or {})["isobridge.message.id"] == "m-1"


def test_a_trace_not_sampled_records_nothing_on_either_side() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.from_config(TracingConfig(sample_ratio=0.0), exporters=[exporter])
    consumer_side, consumer_exporter = _traced()  # would sample everything it starts
    with tracing.edge_receive(peer="p", port=1, framing="f", adapter="a") as edge:
        assert not edge.is_recording()
        assert tracing.trace_id() is None  # nothing for the journal to point at
        with tracing.adapter("decode", "a") as decode:
            assert decode is trace.INVALID_SPAN  # children of an unsampled span: none
        header = tracing.traceparent()
    assert header is not None
    assert int(header[-2:], 16) & 1 == 0  # the sampled flag off: "not sampled", passed on
    with consumer_side.consume(
        system="rabbitmq",
        destination="core",
        queue="isobridge.core",
        headers={"traceparent": header},
        message=_message(),
    ) as span:
        assert not span.is_recording()
    assert exporter.get_finished_spans() == ()
    assert consumer_exporter.get_finished_spans() == ()


def test_ids_never_hold_thirteen_digits_in_a_row() -> None:
    ids = CardSafeIdGenerator()
    for _ in range(20_000):
        assert re.search("[0-9]{13}", f"{ids.generate_trace_id():032x}") is None
        assert re.search("[0-9]{13}", f"{ids.generate_span_id():016x}") is None


def test_a_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exporter 'jaeger'"):
        TracingConfig("jaeger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        TracingConfig(sample_ratio=2.0)
