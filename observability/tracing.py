"""OpenTelemetry traces of the hub: one trace per request, across the AMQP hop.

The spans of one ISO 8583 request (OpenTelemetry trace API / SDK 1.x, span kinds and
messaging attributes after the OpenTelemetry semantic conventions):

=====================  ==========  ====================================================
span                   kind        where
=====================  ==========  ====================================================
``edge receive``       SERVER      the TCP edge: from the frame read to the reply written
``adapter decode``     INTERNAL    the adapter decodes the frame (the PAN tokenized)
``publish <dest>``     PRODUCER    the router publishes to the destination, confirmed
``process <dest>``     CONSUMER    the consumer (the core banking worker) handles it
``mainframe posting``  CLIENT      the connector's request / reply with the mainframe
``adapter encode``     INTERNAL    the reply encoded for the acquirer
``reply write``        INTERNAL    the framed reply written back on the connection
=====================  ==========  ====================================================

The AMQP hop carries the producer span's context in the W3C Trace Context ``traceparent``
header of the message (:data:`routing.wire.TRACEPARENT`): :meth:`Tracing.traceparent`
gives it to the publisher, :meth:`Tracing.consume` continues the trace from it, so the
consumer's spans are children of the producer's even in another process.

**No card number in a span.** Attributes carry ids, the tenant, the masked token and
response codes only; and every exporter is wrapped in :class:`MaskingSpanExporter`, which
masks (:func:`observability.logs.mask_sensitive`) every string of every span (name,
attributes, events such as recorded exceptions, status) before it leaves the process. The
trace and span ids are drawn so that their hex form never holds 13 decimal digits in a row
(:class:`CardSafeIdGenerator`): no masking can mistake one for a card number, and the
journal, which refuses anything that looks like one, takes the trace id of a request.

**Configuration** (``[tracing]`` in ``hub.toml``, :class:`TracingConfig`): ``exporter`` is
``none`` (the default: no spans at all), ``otlp`` (OTLP over HTTP/protobuf to ``endpoint``,
default ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``http://localhost:4318/v1/traces``,
batched) or ``console`` (spans as JSON on stderr); ``service_name``; ``sample_ratio`` (of
the traces started at the edge; a continued trace follows its parent's decision). Each hub
process (each worker of ``--workers N``) has its own tracer provider, never the global one.

**Cost.** Disabled, each span method returns one shared do-nothing context manager after
one attribute test: no context switch, no allocation. Tests give :meth:`Tracing.from_config`
an in-memory exporter.
"""

from __future__ import annotations

import os
import random
import re
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final, Literal, TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from canonical_model.messages import CanonicalMessage
from observability.logs import mask_sensitive, may_hold_card_data

__all__ = [
    "CardSafeIdGenerator",
    "EXPORTERS",
    "MaskingSpanExporter",
    "Tracing",
    "TracingConfig",
]

EXPORTERS: Final = ("none", "otlp", "console")
Exporter = Literal["none", "otlp", "console"]
TRACEPARENT: Final = "traceparent"
_SCOPE: Final = "isobridge"

_THIRTEEN_DIGITS: Final = re.compile(r"[0-9]{13}")


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """``[tracing]`` in ``hub.toml`` (see the module docstring)."""

    exporter: Exporter = "none"
    endpoint: str | None = None
    service_name: str = "isobridge"
    sample_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ValueError(f"unknown exporter {self.exporter!r} (known: {', '.join(EXPORTERS)})")
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio {self.sample_ratio} is outside 0..1")


class CardSafeIdGenerator(IdGenerator):
    """Random trace and span ids whose hex form holds no run of 13 decimal digits (about one
    random trace id in 60 does; it is drawn again)."""

    def generate_span_id(self) -> int:
        while True:
            span_id = random.getrandbits(64)
            if span_id and _THIRTEEN_DIGITS.search(f"{span_id:016x}") is None:
                return span_id

    def generate_trace_id(self) -> int:
        while True:
            trace_id = random.getrandbits(128)
            if trace_id and _THIRTEEN_DIGITS.search(f"{trace_id:032x}") is None:
                return trace_id

    def is_trace_id_random(self) -> bool:
        return True


def _masked_value(value: AttributeValue) -> AttributeValue:
    if isinstance(value, str):
        return mask_sensitive(value)
    if isinstance(value, Sequence) and value and isinstance(value[0], str):
        return tuple(mask_sensitive(str(item)) for item in value)
    return value


def _masked(attributes: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    return {key: _masked_value(value) for key, value in (attributes or {}).items()}


def _strings(value: AttributeValue) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        yield from (item for item in value if isinstance(item, str))


def _may_hold_card_data(span: ReadableSpan) -> bool:
    texts = [span.name, span.status.description or ""]
    for attributes in (span.attributes, *(event.attributes for event in span.events)):
        for value in (attributes or {}).values():
            texts.extend(_strings(value))
    return may_hold_card_data("\n".join(texts))


class MaskingSpanExporter(SpanExporter):
    """Exports through ``inner`` copies of the spans with every string masked."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export(
            [self._masked(span) if _may_hold_card_data(span) else span for span in spans]
        )

    @staticmethod
    def _masked(span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, mask_sensitive(status.description))
        return ReadableSpan(
            name=mask_sensitive(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=_masked(span.attributes),
            events=[
                Event(event.name, _masked(event.attributes), event.timestamp)
                for event in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _NoSpan(AbstractContextManager[Span]):
    """What every span method returns when tracing is off: enters as the invalid span."""

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN: Final = _NoSpan()
_PROPAGATOR: Final = TraceContextTextMapPropagator()


def _message_attributes(message: CanonicalMessage) -> dict[str, AttributeValue]:
    ids = message.ids
    attributes: dict[str, AttributeValue] = {
        "isobridge.tenant": message.tenant,
        "isobridge.message.id": ids.message_id,
        "isobridge.message.kind": message.kind.value,
        "isobridge.message.function": message.function.value,
    }
    for key, value in (
        ("isobridge.stan", ids.instruction_id),
        ("isobridge.end_to_end_id", ids.end_to_end_id),
        ("isobridge.uetr", ids.uetr),
        ("isobridge.terminal_id", message.acceptor.terminal_id if message.acceptor else None),
    ):
        if value:
            attributes[key] = value
    card = message.card
    if card is not None and card.token is not None:
        attributes["isobridge.card.token_masked"] = card.token.masked
    return attributes


def _outcome_attributes(reply: CanonicalMessage) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {"isobridge.reply.message_id": reply.ids.message_id}
    status = reply.status
    if status is not None:
        attributes["isobridge.status"] = status.code.value
        if status.reason:
            attributes["isobridge.status.reason"] = status.reason
        if status.original is not None:
            attributes["iso8583.response_code"] = status.original.code
    return attributes


class Tracing:
    """The hub's spans (see the module docstring): off (:meth:`disabled`), or on a tracer
    provider of its own (:meth:`from_config`). Span methods are context managers entering
    as the span (the invalid span when off or not sampled)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer(_SCOPE) if provider is not None else None

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(None)

    @classmethod
    def from_config(
        cls,
        config: TracingConfig,
        *,
        exporters: Sequence[SpanExporter] = (),
        stream: TextIO | None = None,
        instance: str | None = None,
    ) -> Tracing:
        """Tracing as ``config`` says; ``exporters`` are added (each behind a
        :class:`MaskingSpanExporter`, spans exported as they end), and turn tracing on
        even with ``exporter = "none"``. ``stream``: the console exporter's (stderr)."""
        if config.exporter == "none" and not exporters:
            return cls.disabled()
        resource = Resource.create(
            {
                "service.name": config.service_name,
                "service.instance.id": instance or f"{os.getpid()}-{uuid.uuid4().hex[:8]}",
                "process.pid": os.getpid(),
            }
        )
        provider = TracerProvider(
            sampler=ParentBased(
                ALWAYS_ON if config.sample_ratio >= 1.0 else TraceIdRatioBased(config.sample_ratio)
            ),
            resource=resource,
            id_generator=CardSafeIdGenerator(),
            shutdown_on_exit=False,
        )
        if config.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=config.endpoint)
            provider.add_span_processor(BatchSpanProcessor(MaskingSpanExporter(otlp)))
        elif config.exporter == "console":
            # Batched too: a stderr that blocks (a full pipe) must not stall the event loop.
            console = ConsoleSpanExporter(out=stream or sys.stderr)
            provider.add_span_processor(BatchSpanProcessor(MaskingSpanExporter(console)))
        for exporter in exporters:
            provider.add_span_processor(SimpleSpanProcessor(MaskingSpanExporter(exporter)))
        return cls(provider)

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        if self.provider is not None:
            self.provider.shutdown()

    # -- spans -------------------------------------------------------------------------------

    def _span(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        context: Context | None = None,
    ) -> AbstractContextManager[Span]:
        if self._tracer is None:
            raise RuntimeError("internal error: expected self._tracer is not None")
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid and not parent.trace_flags.sampled:
            # A trace not sampled: its spans would record nothing; the context stays the
            # parent's, so the traceparent passed on says "not sampled" too.
            return _NO_SPAN
        return self._tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=attributes
        )

    def edge_receive(
        self, *, peer: str, port: int, framing: str, adapter: str
    ) -> AbstractContextManager[Span]:
        """A request read at a TCP edge, until its reply is written: a new trace."""
        if not self.enabled:
            return _NO_SPAN
        address, _, peer_port = peer.rpartition(":")
        attributes: dict[str, AttributeValue] = {
            "network.transport": "tcp",
            "network.peer.address": address or peer,
            "server.port": port,
            "isobridge.framing": framing,
            "isobridge.adapter": adapter,
        }
        if peer_port.isdigit():
            attributes["network.peer.port"] = int(peer_port)
        return self._span("edge receive", SpanKind.SERVER, attributes)

    def adapter(
        self, operation: Literal["decode", "encode"], adapter: str
    ) -> AbstractContextManager[Span]:
        """An adapter's decode or encode."""
        if not self.enabled:
            return _NO_SPAN
        return self._span(f"adapter {operation}", SpanKind.INTERNAL, {"isobridge.adapter": adapter})

    def publish(
        self,
        *,
        system: str,
        exchange: str,
        routing_key: str,
        destination: str,
        message: CanonicalMessage,
        rule: str | None = None,
    ) -> AbstractContextManager[Span]:
        """A message published to a destination; :meth:`traceparent` inside it is what the
        message must carry."""
        if not self.enabled:
            return _NO_SPAN
        attributes: dict[str, AttributeValue] = {
            "isobridge.tenant": message.tenant,
            "messaging.system": system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.id": message.ids.message_id,
            "isobridge.destination": destination,
        }
        if rule:
            attributes["isobridge.rule"] = rule
        return self._span(f"publish {destination}", SpanKind.PRODUCER, attributes)

    def consume(
        self,
        *,
        system: str,
        destination: str,
        queue: str,
        headers: Mapping[str, object],
        message: CanonicalMessage,
        correlation_id: str | None = None,
    ) -> AbstractContextManager[Span]:
        """A delivery handled by a consumer, continuing the trace of its ``traceparent``."""
        if not self.enabled:
            return _NO_SPAN
        attributes: dict[str, AttributeValue] = {
            "isobridge.tenant": message.tenant,
            "messaging.system": system,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": message.ids.message_id,
            "isobridge.destination": destination,
        }
        if correlation_id:
            attributes["messaging.message.conversation_id"] = correlation_id
        return self._span(
            f"process {destination}", SpanKind.CONSUMER, attributes, self.extract(headers)
        )

    def connector_call(
        self, *, peer: str, reference: str | None = None
    ) -> AbstractContextManager[Span]:
        """One request / reply with the mainframe (``peer``: its name or host:port)."""
        if not self.enabled:
            return _NO_SPAN
        attributes: dict[str, AttributeValue] = {"isobridge.peer": peer}
        if reference:
            attributes["isobridge.posting_reference"] = reference
        return self._span("mainframe posting", SpanKind.CLIENT, attributes)

    def reply_write(self) -> AbstractContextManager[Span]:
        """The framed reply written back to the acquirer."""
        if not self.enabled:
            return _NO_SPAN
        return self._span("reply write", SpanKind.INTERNAL, {})

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def describe(span: Span, message: CanonicalMessage) -> None:
        """Add ``message``'s ids, tenant and masked token to ``span`` (if recording)."""
        if span.is_recording():
            span.set_attributes(_message_attributes(message))

    @staticmethod
    def outcome(span: Span, reply: CanonicalMessage) -> None:
        """Add the reply's id, status, reason and response code to ``span`` (if recording)."""
        if span.is_recording():
            span.set_attributes(_outcome_attributes(reply))

    def traceparent(self) -> str | None:
        """The ``traceparent`` header value of the current span, or None."""
        if not self.enabled:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(TRACEPARENT)

    def trace_id(self) -> str | None:
        """The current trace id (32 hex digits), or None (none, or not sampled)."""
        if not self.enabled:
            return None
        context = trace.get_current_span().get_span_context()
        if not (context.is_valid and context.trace_flags.sampled):
            return None  # no trace to look up
        return f"{context.trace_id:032x}"

    @staticmethod
    def extract(headers: Mapping[str, object]) -> Context | None:
        """The remote context of a message's ``traceparent`` header, or None."""
        value = headers.get(TRACEPARENT)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if not isinstance(value, str):
            return None
        return _PROPAGATOR.extract({TRACEPARENT: value})
