"""The hub's Prometheus metrics: definitions, the seams that feed them, and their exposition.

Names and units follow the Prometheus conventions (``snake_case``, base units, ``_total``
for counters, ``_seconds`` for durations); the client is ``prometheus_client`` (text
exposition format 0.0.4). Every label value comes from the configuration or from a closed
set (adapter specs, listener names, destinations, breaker names, canonical message kinds,
vault operations), never from a message: no card number, no unbounded value.

======================================================  =========  ===========================
metric                                                  type       labels
======================================================  =========  ===========================
``isobridge_adapter_decode_total``                      counter    adapter, message_type
``isobridge_adapter_decode_errors_total``               counter    adapter
``isobridge_adapter_decode_seconds``                    histogram  adapter
``isobridge_adapter_encode_total``                      counter    adapter, message_type
``isobridge_adapter_encode_errors_total``               counter    adapter
``isobridge_adapter_encode_seconds``                    histogram  adapter
``isobridge_edge_connections``                          gauge      listener
``isobridge_edge_connections_accepted_total``           counter    listener
``isobridge_edge_in_flight``                            gauge      listener
``isobridge_edge_request_seconds``                      histogram  listener
``isobridge_destination_retries_total``                 counter    destination
``isobridge_destination_dead_letters_total``            counter    destination
``isobridge_destination_queue_depth``                   gauge      destination
``isobridge_destination_dead_letter_queue_depth``       gauge      destination
``isobridge_transport_up``                              gauge      (none)
``isobridge_circuit_breaker_state``                     gauge      breaker
``isobridge_circuit_breaker_opened_total``              counter    breaker
``isobridge_vault_operations_total``                    counter    operation, outcome
``isobridge_vault_operation_seconds``                   histogram  operation
``isobridge_key_rotations_total``                       counter    family, outcome
``isobridge_key_age_seconds``                           gauge      family
``isobridge_key_uses``                                  gauge      family
``isobridge_key_rotation_failing``                      gauge      family
======================================================  =========  ===========================

The key series (:class:`KeyRotationMetrics`, fed by ``hub.rotation``): ``family`` is a key
family (``vault.data``, ``authserver.signing``), ``outcome`` ``rotated``, ``skipped``
(another process rotated first) or ``failed``; the age and uses are those of the family's
oldest / most used active key at the last check; ``failing`` is 1 while a rotation fails.

``message_type`` is the canonical ``<kind>.<function>`` (``financial.request``); the breaker
state is ``0`` closed, ``1`` half-open, ``2`` open (:data:`BREAKER_STATES`); the queue
depths are read from the transport when scraped (a passive ``queue_declare`` on RabbitMQ),
``destination="unroutable"`` being the parking queue of unroutable messages. The gateway
adds its HTTP series (``isobridge_gateway_*``, :mod:`gateway.operations`) to the same
registry when it runs in the hub process.

How the numbers are gathered, without the domain code knowing of Prometheus: the hub's
composition root wraps each adapter (:meth:`HubMetrics.instrument_adapter`) and the vault's
tokenizer and detokenizer (:meth:`HubMetrics.tokenizer`, :meth:`HubMetrics.detokenizer`),
hands each ISO 8583 edge an observer (:meth:`HubMetrics.edge`), the transport a delivery
observer (:class:`HubMetrics` itself: ``retried`` / ``dead_lettered``) and each circuit
breaker a listener (:meth:`HubMetrics.watch_breaker`).

**Several processes** (``isobridge run --workers N``): the supervisor gives every worker
the directory ``<home>/metrics`` in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
multiprocess mode: each process writes its values to memory-mapped files) and serves the
sum over the workers (:func:`multiprocess_registry`); gauges of a dead worker are dropped
(:func:`worker_exited`), its counters kept, so no counter goes backwards.

For an operations console, :func:`snapshot` reads any registry into a
:class:`MetricsSnapshot` (requests, latency histogram, errors, dead letters, breakers);
:func:`throughput` and :meth:`MetricsSnapshot.latency_quantile` compare two of them.

>>> metrics = HubMetrics()
>>> metrics.dead_lettered("core")
>>> b"isobridge_destination_dead_letters_total" in metrics.render()
True
>>> parse_listen("127.0.0.1:9464"), parse_listen(":9464")
(('127.0.0.1', 9464), ('0.0.0.0', 9464))
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, cast
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from adapters.base import (
    Adapter,
    AdapterDecodeError,
    AdapterEncodeError,
    Capabilities,
    DecodeContext,
    EncodeContext,
    PanDetokenizer,
    PanTokenizer,
)
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import PanToken
from routing.transport import Topology

__all__ = [
    "BREAKER_STATES",
    "CONTENT_TYPE",
    "FAST_BUCKETS",
    "MULTIPROCESS_ENV",
    "REQUEST_BUCKETS",
    "EdgeMetrics",
    "HubMetrics",
    "KeyRotationMetrics",
    "MetricsServer",
    "MetricsSnapshot",
    "QueueDepthCollector",
    "QueueDepthSource",
    "multiprocess_registry",
    "parse_listen",
    "prepare_multiprocess_directory",
    "serve_metrics",
    "snapshot",
    "throughput",
    "worker_exited",
]

_log = logging.getLogger("isobridge.metrics")

# No ``*_created`` series: they double the exposition, and Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The variable that puts prometheus_client in multiprocess mode (read at its import)."""

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
"""The exposition's media type (text format 0.0.4)."""

FAST_BUCKETS: Final = (
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1,
)  # fmt: skip
"""Buckets (seconds) for in-process work of tens of microseconds: decode, encode, vault."""

REQUEST_BUCKETS: Final = (
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Buckets (seconds) for a request from the wire to its reply: milliseconds to the timeout."""

BREAKER_STATES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "open": 2}
"""The value of ``isobridge_circuit_breaker_state`` for each breaker state."""


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464``; an empty host is every address) as ``(host, port)``;
    :class:`ValueError` naming what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    # ":9464" (no host) asks for every interface, as Prometheus exporters do
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104
    return host, port


class QueueDepthSource(Protocol):
    """A transport that can tell how many messages wait in its queues (both backends)."""

    @property
    def topology(self) -> Topology: ...

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]: ...


class _NamedBreaker(Protocol):
    """What :meth:`HubMetrics.watch_breaker` needs of a circuit breaker (``hub.breaker``)."""

    name: str

    @property
    def state(self) -> str: ...

    def add_listener(self, listener: Callable[[Any, Any], None]) -> None: ...


class EdgeMetrics:
    """The observer of one ISO 8583 listener (``hub.edge.EdgeObserver``): connections open,
    requests in flight, and the time from each request to its reply."""

    __slots__ = ("_accepted", "_connections", "_in_flight", "_latency")

    def __init__(self, metrics: HubMetrics, listener: str) -> None:
        self._connections = metrics.edge_connections.labels(listener)
        self._accepted = metrics.edge_connections_accepted.labels(listener)
        self._in_flight = metrics.edge_in_flight.labels(listener)
        self._latency = metrics.edge_request_seconds.labels(listener)

    def connection_opened(self) -> None:
        self._connections.inc()
        self._accepted.inc()

    def connection_closed(self) -> None:
        self._connections.dec()

    def request_started(self) -> None:
        self._in_flight.inc()

    def request_finished(self, replied_after: float | None) -> None:
        self._in_flight.dec()
        if replied_after is not None:
            self._latency.observe(replied_after)


class HubMetrics:
    """Every metric of the module docstring, in one :class:`CollectorRegistry` of its own
    (several hubs in one test process do not collide), and the seams that feed them.

    In multiprocess mode (:data:`MULTIPROCESS_ENV` set before ``prometheus_client`` was
    imported) the values go to the shared directory; :meth:`render` then sums every
    process's files.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.decoded = Counter(
            "isobridge_adapter_decode", "Messages decoded, by adapter and canonical type.",
            ("adapter", "message_type"), registry=r,
        )  # fmt: skip
        self.decode_errors = Counter(
            "isobridge_adapter_decode_errors", "Payloads an adapter could not decode.",
            ("adapter",), registry=r,
        )  # fmt: skip
        self.decode_seconds = Histogram(
            "isobridge_adapter_decode_seconds", "Time to decode one payload (tokenizing included).",
            ("adapter",), buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.encoded = Counter(
            "isobridge_adapter_encode", "Messages encoded, by adapter and canonical type.",
            ("adapter", "message_type"), registry=r,
        )  # fmt: skip
        self.encode_errors = Counter(
            "isobridge_adapter_encode_errors", "Messages an adapter could not encode.",
            ("adapter",), registry=r,
        )  # fmt: skip
        self.encode_seconds = Histogram(
            "isobridge_adapter_encode_seconds", "Time to encode one message.",
            ("adapter",), buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.edge_connections = Gauge(
            "isobridge_edge_connections", "Open acquirer connections, by listener.",
            ("listener",), registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.edge_connections_accepted = Counter(
            "isobridge_edge_connections_accepted", "Acquirer connections accepted, by listener.",
            ("listener",), registry=r,
        )  # fmt: skip
        self.edge_in_flight = Gauge(
            "isobridge_edge_in_flight", "Requests read and not yet answered, by listener.",
            ("listener",), registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.edge_request_seconds = Histogram(
            "isobridge_edge_request_seconds", "From a request read to its reply written.",
            ("listener",), buckets=REQUEST_BUCKETS, registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "isobridge_destination_retries", "Deliveries sent to a retry tier, by destination.",
            ("destination",), registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "isobridge_destination_dead_letters",
            "Messages parked on a dead-letter queue (unroutable: no queue bound).",
            ("destination",), registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "isobridge_circuit_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ("breaker",), registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.breaker_opened = Counter(
            "isobridge_circuit_breaker_opened", "Times a circuit breaker opened.",
            ("breaker",), registry=r,
        )  # fmt: skip
        self.vault_operations = Counter(
            "isobridge_vault_operations", "Vault operations, by operation and outcome.",
            ("operation", "outcome"), registry=r,
        )  # fmt: skip
        self.vault_seconds = Histogram(
            "isobridge_vault_operation_seconds", "Time of one vault operation.",
            ("operation",), buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.keys = KeyRotationMetrics(r)
        self._queue_sources: list[QueueDepthSource] = []

    @property
    def multiprocess(self) -> bool:
        """Whether the values go to a multiprocess directory."""
        return bool(os.environ.get(MULTIPROCESS_ENV))

    # -- seams ------------------------------------------------------------------------------

    def instrument_adapter(self, adapter: Adapter) -> Adapter:
        """``adapter`` counted and timed, labelled ``name:variant``; everything else of it
        (``reject``, ``describe``, ...) passes through."""
        if isinstance(adapter, _InstrumentedAdapter):
            return adapter
        # The wrapper has every member of the protocol, but as instance attributes where the
        # protocol declares class variables (name, variants): hence the cast.
        return _as_adapter(_InstrumentedAdapter(adapter, self))

    def tokenizer(self, tokenizer: PanTokenizer) -> PanTokenizer:
        """``tokenizer`` with its calls counted and timed."""
        return _TimedTokenizer(tokenizer, self)

    def detokenizer(self, detokenizer: PanDetokenizer) -> PanDetokenizer:
        """``detokenizer`` with its calls counted and timed."""
        return _TimedDetokenizer(detokenizer, self)

    def edge(self, listener: str) -> EdgeMetrics:
        """The observer of the listener called ``listener``."""
        return EdgeMetrics(self, listener)

    def retried(self, destination: str) -> None:
        """A delivery of ``destination`` went to a retry tier (``routing.DeliveryObserver``)."""
        self.retries.labels(destination).inc()

    def dead_lettered(self, destination: str) -> None:
        """A message of ``destination`` was parked (``routing.DeliveryObserver``)."""
        self.dead_letters.labels(destination).inc()

    def watch_breaker(self, breaker: _NamedBreaker) -> None:
        """Follow ``breaker``'s state from now on (its current state is set at once)."""
        self.breaker_opened.labels(breaker.name)  # the series exists from 0
        self._breaker_changed(breaker, breaker.state)
        breaker.add_listener(self._breaker_changed)

    def _breaker_changed(self, breaker: _NamedBreaker, state: str) -> None:
        self.breaker_state.labels(breaker.name).set(BREAKER_STATES[str(state)])
        if state == "open":
            self.breaker_opened.labels(breaker.name).inc()

    def watch_queues(self, source: QueueDepthSource) -> None:
        """Report ``source``'s queue depths when scraped (this process's exposition)."""
        if not self._queue_sources:
            self.registry.register(QueueDepthCollector(self._queue_sources))
        self._queue_sources.append(source)

    # -- exposition -------------------------------------------------------------------------

    def exposition_registry(self) -> CollectorRegistry:
        """The registry to render: this one, or in multiprocess mode the sum of every
        process's values (and this process's queue depths)."""
        if not self.multiprocess:
            return self.registry
        return multiprocess_registry(
            Path(os.environ[MULTIPROCESS_ENV]),
            (QueueDepthCollector(self._queue_sources),) if self._queue_sources else (),
        )

    def render(self) -> bytes:
        """The text exposition (format 0.0.4) of :meth:`exposition_registry`."""
        return generate_latest(self.exposition_registry())


class KeyRotationMetrics:
    """The key rotation series of the module docstring, in ``registry`` (the hub's, or the
    gateway's own when it runs alone)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.rotations = Counter(
            "isobridge_key_rotations", "Key rotations, by key family and outcome.",
            ("family", "outcome"), registry=r,
        )  # fmt: skip
        self.age = Gauge(
            "isobridge_key_age_seconds", "Age of the oldest active key of a family.",
            ("family",), registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.uses = Gauge(
            "isobridge_key_uses", "Uses of the most used active key of a family.",
            ("family",), registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.failing_gauge = Gauge(
            "isobridge_key_rotation_failing", "1 while a rotation of the family fails.",
            ("family",), registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self._seen: dict[str, tuple[float, int]] = {}

    def rotated(self, family: str, outcome: str) -> None:
        """One rotation of ``family`` ended with ``outcome``."""
        self.rotations.labels(family, outcome).inc()

    def observe_key(self, family: str, *, age: float, uses: int) -> None:
        """An active key of ``family`` seen at a check (the gauges keep the largest of a
        check: call :meth:`reset` between checks)."""
        old_age, old_uses = self._seen.get(family, (0.0, 0))
        age, uses = max(age, old_age), max(uses, old_uses)
        self._seen[family] = (age, uses)
        self.age.labels(family).set(age)
        self.uses.labels(family).set(uses)

    def reset(self, family: str) -> None:
        """Start a new check of ``family``."""
        self._seen.pop(family, None)

    def failing(self, family: str, failing: bool) -> None:
        """Whether a rotation of ``family`` fails now."""
        self.failing_gauge.labels(family).set(1 if failing else 0)


def _message_type(message: CanonicalMessage) -> str:
    return f"{message.kind.value}.{message.function.value}"


class _InstrumentedAdapter:
    """An adapter whose decode and encode are counted and timed (see
    :meth:`HubMetrics.instrument_adapter`)."""

    def __init__(self, inner: Adapter, metrics: HubMetrics) -> None:
        self._inner = inner
        self.name = inner.name
        self.variants = inner.variants
        label = f"{inner.name}:{inner.variant}"
        self._label = label
        self._decoded = metrics.decoded
        self._encoded = metrics.encoded
        self._decode_errors = metrics.decode_errors.labels(label)
        self._encode_errors = metrics.encode_errors.labels(label)
        self._decode_seconds = metrics.decode_seconds.labels(label)
        self._encode_seconds = metrics.encode_seconds.labels(label)
        # The children of (adapter, message_type), looked up once per type.
        self._decoded_by_type: dict[str, Any] = {}
        self._encoded_by_type: dict[str, Any] = {}

    @property
    def variant(self) -> str:
        return self._inner.variant

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    @property
    def wrapped(self) -> Adapter:
        """The adapter itself."""
        return self._inner

    def decode(self, payload: bytes, ctx: DecodeContext) -> CanonicalMessage:
        started = time.perf_counter()
        try:
            message = self._inner.decode(payload, ctx)
        except AdapterDecodeError:
            self._decode_errors.inc()
            raise
        finally:
            self._decode_seconds.observe(time.perf_counter() - started)
        kind = _message_type(message)
        child = self._decoded_by_type.get(kind)
        if child is None:
            child = self._decoded_by_type[kind] = self._decoded.labels(self._label, kind)
        child.inc()
        return message

    def encode(self, message: CanonicalMessage, ctx: EncodeContext) -> bytes:
        started = time.perf_counter()
        try:
            payload = self._inner.encode(message, ctx)
        except AdapterEncodeError:
            self._encode_errors.inc()
            raise
        finally:
            self._encode_seconds.observe(time.perf_counter() - started)
        kind = _message_type(message)
        child = self._encoded_by_type.get(kind)
        if child is None:
            child = self._encoded_by_type[kind] = self._encoded.labels(self._label, kind)
        child.inc()
        return payload

    def reject(self, error: AdapterDecodeError, ctx: EncodeContext) -> bytes | None:
        return self._inner.reject(error, ctx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"instrumented({self._inner!r})"


def _as_adapter(wrapper: _InstrumentedAdapter) -> Adapter:
    return cast("Adapter", wrapper)


class _TimedTokenizer:
    __slots__ = ("_errors", "_inner", "_ok", "_seconds")

    def __init__(self, inner: PanTokenizer, metrics: HubMetrics) -> None:
        self._inner = inner
        self._ok = metrics.vault_operations.labels("tokenize", "ok")
        self._errors = metrics.vault_operations.labels("tokenize", "error")
        self._seconds = metrics.vault_seconds.labels("tokenize")

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        started = time.perf_counter()
        try:
            token = self._inner.tokenize(pan, tenant=tenant)
        except Exception:
            self._errors.inc()
            raise
        finally:
            self._seconds.observe(time.perf_counter() - started)
        self._ok.inc()
        return token


class _TimedDetokenizer:
    __slots__ = ("_errors", "_inner", "_ok", "_seconds")

    def __init__(self, inner: PanDetokenizer, metrics: HubMetrics) -> None:
        self._inner = inner
        self._ok = metrics.vault_operations.labels("detokenize", "ok")
        self._errors = metrics.vault_operations.labels("detokenize", "error")
        self._seconds = metrics.vault_seconds.labels("detokenize")

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        started = time.perf_counter()
        try:
            pan = self._inner.detokenize(token, tenant=tenant, purpose=purpose)
        except Exception:
            self._errors.inc()
            raise
        finally:
            self._seconds.observe(time.perf_counter() - started)
        self._ok.inc()
        return pan


class QueueDepthCollector(Collector):
    """Reads, when scraped, the messages waiting in each destination's queue and dead-letter
    queue from the transports; ``isobridge_transport_up`` is 0 when the broker did not
    answer (the depths are then left out rather than guessed)."""

    def __init__(self, sources: Sequence[QueueDepthSource]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "isobridge_destination_queue_depth",
            "Messages waiting in a destination's queue.",
            labels=("destination",),
        )
        parked = GaugeMetricFamily(
            "isobridge_destination_dead_letter_queue_depth",
            "Messages parked on a destination's dead-letter queue (unroutable: no queue bound).",
            labels=("destination",),
        )
        up = 1.0
        for source in self._sources:
            topology = source.topology
            names = [d.name for d in topology.destinations]
            queues = {topology.queue(n): n for n in names}
            dead = {topology.parking_queue(n): n for n in (*names, "unroutable")}
            try:
                depths = source.queue_depths([*queues, *dead])
            except Exception as exc:  # a scrape must answer even when the broker does not
                _log.warning("queue depths not read: %s", exc)
                up = 0.0
                continue
            for queue, name in queues.items():
                if queue in depths:
                    ready.add_metric((name,), depths[queue])
            for queue, name in dead.items():
                if queue in depths:
                    parked.add_metric((name,), depths[queue])
        yield ready
        yield parked
        yield GaugeMetricFamily(
            "isobridge_transport_up", "1 if the transport answered the last scrape.", value=up
        )


# -- several processes ------------------------------------------------------------------------


def prepare_multiprocess_directory(path: Path) -> Path:
    """An empty ``path`` for the workers' value files (those of an earlier run removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def worker_exited(pid: int, path: Path) -> None:
    """Drop the live gauges of the worker ``pid`` that exited (its counters stay)."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]  # untyped upstream


def multiprocess_registry(path: Path, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry that sums the value files of every process under ``path`` (and
    ``extra`` collectors, such as a supervisor's :class:`QueueDepthCollector`)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    for collector in extra:
        registry.register(collector)
    return registry


# -- serving ----------------------------------------------------------------------------------


@dataclass(slots=True)
class MetricsServer:
    """``/metrics`` over HTTP on a thread of its own (prometheus_client's WSGI server)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(listen: str, registry: CollectorRegistry) -> MetricsServer:
    """Serve ``registry`` at ``http://<listen>/metrics`` (port 0: any free port); an
    :class:`OSError` naming the address when it cannot be bound."""
    host, port = parse_listen(listen)
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise OSError(exc.errno, f"metrics on {listen}: {exc.strerror}") from None
    return MetricsServer(server, thread)


# -- a console's view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The figures an operations console shows, read from a registry at ``taken_at``.

    ``requests`` and ``request_buckets`` (upper bound, cumulative count) are those of
    ``isobridge_edge_request_seconds`` summed over the listeners.
    """

    taken_at: float
    requests: int
    request_seconds: float
    request_buckets: tuple[tuple[float, float], ...]
    in_flight: int
    connections: int
    decoded: int
    decode_errors: int
    retries: int
    dead_letters: Mapping[str, int]
    breakers: Mapping[str, str]
    queue_depths: Mapping[str, int] = field(default_factory=dict)

    def latency_quantile(self, q: float, since: MetricsSnapshot | None = None) -> float | None:
        """The ``q``-quantile (0..1) of request latency in seconds, over every request or
        those after ``since``; interpolated within a bucket as Prometheus'
        ``histogram_quantile`` does. None without requests."""
        buckets = list(self.request_buckets)
        if since is not None:
            before = dict(since.request_buckets)
            buckets = [(le, count - before.get(le, 0.0)) for le, count in buckets]
        if not buckets or buckets[-1][1] <= 0:
            return None
        total = buckets[-1][1]
        rank = q * total
        counts = [count for _, count in buckets]
        index = min(bisect.bisect_left(counts, rank), len(buckets) - 1)
        upper, count = buckets[index]
        if upper == float("inf"):
            return buckets[index - 1][0] if index > 0 else None
        lower, below = buckets[index - 1] if index > 0 else (0.0, 0.0)
        if count == below:
            return upper
        return lower + (upper - lower) * (rank - below) / (count - below)


def throughput(earlier: MetricsSnapshot, later: MetricsSnapshot) -> float:
    """Requests answered per second between two snapshots."""
    elapsed = later.taken_at - earlier.taken_at
    if elapsed <= 0:
        return 0.0
    return max(0, later.requests - earlier.requests) / elapsed


def snapshot(
    registry: CollectorRegistry, *, now: Callable[[], float] = time.time
) -> MetricsSnapshot:
    """Read ``registry`` (a hub's, or :func:`multiprocess_registry`) into a snapshot."""
    sums: dict[str, float] = {}
    buckets: dict[float, float] = {}
    dead: dict[str, int] = {}
    depths: dict[str, int] = {}
    breakers: dict[str, str] = {}
    names = {value: name for name, value in BREAKER_STATES.items()}
    for family in registry.collect():
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "isobridge_edge_request_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + value
            elif name == "isobridge_destination_dead_letters_total":
                dead[labels["destination"]] = dead.get(labels["destination"], 0) + int(value)
            elif name == "isobridge_destination_queue_depth":
                depths[labels["destination"]] = int(value)
            elif name == "isobridge_circuit_breaker_state":
                breakers[labels["breaker"]] = names.get(int(value), str(value))
            else:
                sums[name] = sums.get(name, 0.0) + value
    return MetricsSnapshot(
        taken_at=now(),
        requests=int(sums.get("isobridge_edge_request_seconds_count", 0)),
        request_seconds=sums.get("isobridge_edge_request_seconds_sum", 0.0),
        request_buckets=tuple(sorted(buckets.items())),
        in_flight=int(sums.get("isobridge_edge_in_flight", 0)),
        connections=int(sums.get("isobridge_edge_connections", 0)),
        decoded=int(sums.get("isobridge_adapter_decode_total", 0)),
        decode_errors=int(sums.get("isobridge_adapter_decode_errors_total", 0)),
        retries=int(sums.get("isobridge_destination_retries_total", 0)),
        dead_letters=dead,
        breakers=breakers,
        queue_depths=depths,
    )
