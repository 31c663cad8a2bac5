"""The running hub: every configured service wired and started (``isobridge run``).

One :class:`HubService` holds, from a :class:`hub.config_file.HubConfig`:

- the vault (tokenization at the edges) and the transport (``memory://`` or ``amqp://``), on a
  topology with one destination per route-rule destination, bound by ``<destination>.#``;
- the route rules (``[routing] rules``; without a file: everything to ``core``);
- the core banking worker: consumes every destination named ``core`` or ``core.*`` and
  serves it through :class:`hub.core.CoreBanking` over the mainframe connector
  (``[mainframe]``), replying on the requester's reply queue;
- with ``[routing] core_shards = N``, each core destination declared as N shard queues
  ``<destination>.shard<i>`` with one active consumer each (RabbitMQ single active consumer:
  whichever instance consumed first; another takes over when it dies), a request published
  to the shard of its account or card (:func:`routing.ordering.shard_of` of its
  :func:`~routing.ordering.ordering_key`) and handled one at a time per account or card
  (:class:`routing.ordering.KeySequencer`): the order in which they were published is the
  order in which they are posted, across instances;
- the reversals of card requests whose outcome was lost: with the journal, card reversal
  sagas (:mod:`hub.sagas.card`, ``isobridge sagas list``) run by the process's saga runner
  (in the journal's database, which instances on several machines share on PostgreSQL);
  without it, the reversal store and forwarder (:mod:`hub.store`, in ``<home>/hub.db`` or
  the database of ``ISOBRIDGE_STORE_URL``, which instances on several machines share);
- with ``[clearing]``, the clearing system's queue pair (:mod:`hub.clearing_queue`):
  pacs.008 in, credited on the mainframe, pacs.002 out; with ``[clearing] sagas = true``,
  the payment sagas instead (:class:`hub.sagas.service.PaymentSagas`): pacs.008 in, credited
  or returned; route destinations ``clearing`` / ``clearing.*`` sent out as outbound credit
  transfers (hold, pacs.008 on ``[clearing] outgoing``, answers from ``[clearing] status``);
- one ISO 8583 edge per ``[[listeners]]``;
- for each destination ``upstream.<name>``, the ``[[upstreams]]`` host of that name
  (:mod:`hub.upstream`).

A request from an edge is routed by the rules: to a destination, published with routing key
``<destination>.<kind>.<function>.<tenant>`` and waited for on the hub instance's reply queue.
When the reply does not come in time (or the publish was not confirmed), the acquirer gets
``91`` and, for a core destination, a reversal of the request is stored and forwarded until
the mainframe acknowledges it: the posting may have been made while its answer was lost;
when no rule routes it, the acquirer gets ``92`` (no routing) and the message is parked on
the transport's unroutable queue with its reason.

Everything runs on one event loop: the edges, the route, the core worker's postings and, with
``amqp://``, the transport's I/O itself (``start_async``): a card payment crosses no thread
between its 0200 and its 0210 (with ``memory://``, the transport's consumer threads hand
deliveries to the loop).

With ``[metrics]`` (or a :class:`~observability.metrics.HubMetrics` handed in), the adapters,
the vault calls, the edges, the transport's retries and dead-letters, the circuit breakers
and the queue depths are measured, and (one process) ``/metrics`` is served on
``[metrics] listen``; with workers, :mod:`hub.workers` serves the sum over them.

With the persistent vault, the key rotation scheduler (:mod:`hub.rotation`) runs as a task:
it writes the vault's data key use counts every ``[keys] check_interval`` seconds and
rotates the vault's and the journal's tenant keys ``[[keys.policies]]`` say are due
(:attr:`HubService.key_rotation`).

SIGHUP under :func:`run_forever`, and a change of a certificate file (checked every ``[hub]
tls_reload_interval`` seconds), reload the TLS certificates of the listeners, the mainframe
connector and the upstream hosts from their files (:meth:`HubService.reload_certificates`).
Stopping (:meth:`HubService.close`, or SIGINT / SIGTERM under :func:`run_forever`) closes
the edges first (no new requests), then the consumers, the connector and the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, cast
from urllib.parse import urlsplit

from sqlalchemy import Engine

from adapters.registry import AdapterRegistry, default_registry
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import contains_clear_pan
from hub.bootstrap import Hub, build_hub, open_journal, open_vault
from hub.breaker import CircuitBreaker
from hub.clearing import ClearingInbound
from hub.clearing_queue import ClearingQueueEdge
from hub.config_file import HubConfig
from hub.connector import RecordConnector
from hub.core import (
    CoreBanking,
    RunningExchange,
    corebank_exchange,
    immediate_answer,
    posting_reference,
)
from hub.edge import Iso8583Edge
from hub.gateway_cli import run_event_loop
from hub.journaling import JournalWriter
from hub.rotation import JournalTenantKeys, KeyFamily, RotationScheduler, VaultDataKeys
from hub.sagas.card import CardReversals
from hub.sagas.runner import SagaRunner
from hub.sagas.service import HubSagas, PaymentSagas, start_hub_sagas
from hub.store import ReversalForwarder, ReversalStore, create_engine, upgrade
from hub.tls import CertificateFiles
from hub.upstream import UpstreamHost
from journal import EventKind, Journal
from observability.logs import bind_message
from observability.metrics import HubMetrics, MetricsServer, QueueDepthSource, serve_metrics
from observability.tracing import Tracing
from routing.ordering import KeySequencer, ordering_key, shard_of
from routing.reqreply import Requester
from routing.rules import RouteTable, RuleSet, compile_rules, load_rules, parse_rules
from routing.transport import (
    AsyncBatchHandler,
    Consumer,
    Delivery,
    Destination,
    Outcome,
    PublishTimeoutError,
    RetryPolicy,
    RoutingError,
    Topology,
    Transport,
    open_transport,
    routing_key_for,
)
from vault.sql import SqlVault

__all__ = ["DEFAULT_RULES", "HubService", "core_destinations", "prepare_state", "run_forever"]

_log = logging.getLogger("isobridge.service")

DEFAULT_RULES = '[fallback]\ndestination = "core"\n'
"""The rules without a rules file: every message to the core banking mainframe."""

NO_ROUTING = "92"
ISSUER_INOPERATIVE = "91"
SYSTEM_MALFUNCTION = "96"
CORE_CONSUMERS = 4
"""Consumers per core destination, each with one batch of postings in flight."""


def _destinations(rules: RuleSet) -> tuple[str, ...]:
    names = [rule.destination for rule in rules.rules if rule.destination is not None]
    if rules.fallback.destination is not None:
        names.append(rules.fallback.destination)
    return tuple(dict.fromkeys(names))


def core_destinations(names: Sequence[str]) -> tuple[str, ...]:
    """The destinations the core banking worker serves: ``core`` and ``core.*``."""
    return tuple(name for name in names if name == "core" or name.startswith("core."))


@dataclass(slots=True)
class _Parts:
    transport: Transport
    requester: Requester
    connector: RunningExchange | None
    consumers: list[Consumer]
    edges: list[Iso8583Edge]
    forwarder_task: asyncio.Task[None] | None
    clearing: ClearingQueueEdge | None = None
    upstreams: list[UpstreamHost] = field(default_factory=list)
    sagas: HubSagas | None = None


class HubService:
    """See the module docstring. ``async with HubService(config) as hub: ...``"""

    def __init__(
        self,
        config: HubConfig,
        *,
        registry: AdapterRegistry | None = None,
        hub: Hub | None = None,
        request_timeout: float | None = None,
        notes: TextIO | None = None,
        metrics: HubMetrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self.metrics = metrics or (HubMetrics() if config.metrics is not None else None)
        self.metrics_server: MetricsServer | None = None
        self._hub = hub
        self._opened_vault: SqlVault | None = None
        self._notes = notes
        rules = (
            load_rules(config.routing.rules)
            if config.routing.rules is not None
            else parse_rules(DEFAULT_RULES, source="(built-in rules)")
        )
        self.rules: RouteTable = compile_rules(rules)
        names = _destinations(rules)
        namespace = config.routing.namespace
        self.core_destinations = core_destinations(names)
        shards = config.routing.core_shards
        self._shards = dict.fromkeys(self.core_destinations, shards) if shards else {}
        self.topology = Topology(
            tuple(
                destination
                for name in names
                for destination in _declared(name, self._shards.get(name, 0))
            ),
            exchange=f"{namespace}.canonical",
            dead_letter_exchange=f"{namespace}.dlx",
            prefix=namespace,
        )
        self._request_timeout = request_timeout
        self._parts: _Parts | None = None
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.core: CoreBanking | None = None
        self.reversals: ReversalStore | CardReversals | None = None
        self.saga_runner: SagaRunner | None = None
        self.sagas: PaymentSagas | None = None
        self.edges: list[Iso8583Edge] = []
        self.clearing: ClearingQueueEdge | None = None
        self.journal: Journal | None = None
        self.journal_writer: JournalWriter | None = None
        self._tls_watch: asyncio.Task[None] | None = None
        self.key_rotation: RotationScheduler | None = None
        self._key_rotation_task: asyncio.Task[None] | None = None
        # Spans as [tracing] says, on a provider of this hub's own from start() to close();
        # a given one belongs to the caller.
        self._owns_tracing = tracing is None
        self.tracing = tracing or Tracing.disabled()
        self._messaging_system = (
            "memory" if config.routing.transport.startswith("memory:") else "rabbitmq"
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every service; raises with a clear message if one cannot start."""
        self._loop = asyncio.get_running_loop()
        # Blocking work (databases, the memory transport's consumers) runs on threads.
        self._loop.set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="isobridge")
        )
        config = self.config
        if self._owns_tracing:
            self.tracing = Tracing.from_config(config.tracing)
        hub = self._hub
        if hub is None:
            self._opened_vault = open_vault(config.settings, notes=self._notes)
            hub = build_hub(self.registry, self._opened_vault)
        if self.metrics is not None and hub.metrics is None:
            hub = dataclasses.replace(hub, metrics=self.metrics)
        self._hub = hub
        if config.journal:
            self.journal = await asyncio.to_thread(open_journal, config.settings, notes=self._notes)
            self.journal_writer = JournalWriter(
                self.journal, interval=config.journal_flush_interval, process=True
            )
            await self.journal_writer.start()
        options: dict[str, object] = {"observer": self.metrics} if self.metrics is not None else {}
        tls = config.routing.broker_tls()
        if tls is not None:
            options["tls"] = tls
        transport = open_transport(config.routing.transport, self.topology, **options)
        await transport.start_async()
        requester = Requester(transport, default_timeout=self._requester_timeout())
        await requester.start_async()
        parts = _Parts(transport, requester, None, [], [], None)
        self._parts = parts
        try:
            if config.mainframe is not None:
                await self._start_core(parts)
            await self._start_upstreams(parts)
            for listener in config.listeners:
                adapter = hub.adapter(listener.adapter)
                edge = Iso8583Edge(
                    dataclasses.replace(listener.edge_settings(), reuse_port=config.workers > 1),
                    adapter=adapter,
                    decode_context=hub.decode_context(listener.tenant),
                    encode_context=hub.encode_context(adapter, listener.tenant),
                    handler=self.route,
                    observer=self.metrics.edge(listener.name) if self.metrics else None,
                    tracing=self.tracing,
                )
                await edge.start()
                parts.edges.append(edge)
                self.edges.append(edge)
            if self.metrics is not None:
                self._start_metrics(self.metrics, parts)
            families: list[KeyFamily] = []
            if isinstance(hub.vault, SqlVault):
                families.append(VaultDataKeys(hub.vault))
            if self.journal is not None:
                families.append(JournalTenantKeys(self.journal))
            if families:
                self.key_rotation = RotationScheduler(
                    families,
                    config.keys,
                    metrics=self.metrics.keys if self.metrics is not None else None,
                    journal=self.journal,
                    audit_tenant=config.tenant,
                )
                self._key_rotation_task = asyncio.create_task(self.key_rotation.run(self._stop))
            watched = [path for files, _, _ in self._tls_targets() for path in files]
            if watched:
                self._tls_watch = asyncio.create_task(
                    CertificateFiles(watched).watch(
                        self.reload_certificates, config.tls_reload_interval
                    )
                )
        except BaseException:
            await self.close()
            raise

    def _start_metrics(self, metrics: HubMetrics, parts: _Parts) -> None:
        """Follow the breakers and the queues; serve ``/metrics`` when this process is the
        whole hub (with workers, the supervisor serves)."""
        breakers = [getattr(parts.connector, "breaker", None)]
        breakers += [host.connector.breaker for host in parts.upstreams]
        for breaker in breakers:
            if isinstance(breaker, CircuitBreaker):
                metrics.watch_breaker(breaker)
        depths = getattr(parts.transport, "queue_depths", None)
        if depths is not None:
            metrics.watch_queues(cast(QueueDepthSource, parts.transport))
        if self.config.metrics is not None and self.config.workers == 1:
            self.metrics_server = serve_metrics(
                self.config.metrics.listen, metrics.exposition_registry()
            )

    async def _start_upstreams(self, parts: _Parts) -> None:
        names = {f"upstream.{u.name}": u for u in self.config.upstreams}
        for destination in self.topology.destinations:
            if not destination.name.startswith("upstream."):
                continue
            upstream_config = names.get(destination.name)
            if upstream_config is None:
                raise ValueError(
                    f"route destination {destination.name!r} names no [[upstreams]] entry"
                    f" (known: {', '.join(sorted(names)) or 'none'})"
                )
            host = UpstreamHost(upstream_config, self.hub, tenant=self.config.tenant)
            await host.start()
            parts.upstreams.append(host)
            consumer = await parts.transport.consume_async(
                destination.name,
                self._batch_handler(host.handle),
                prefetch=256,
                batch_size=64,
                batch_wait=0.0,
            )
            parts.consumers.append(consumer)

    async def _start_core(self, parts: _Parts) -> None:
        config = self.config
        if config.mainframe is None:
            raise RuntimeError("internal error: expected config.mainframe is not None")
        connector = corebank_exchange(config.mainframe)
        await connector.start()
        parts.connector = connector
        reversals: ReversalStore | CardReversals
        if self.journal is not None:
            reversals = CardReversals(on_acknowledged=self._reversal_acknowledged)
        else:
            engine = await asyncio.to_thread(_reversal_database, config)
            reversals = ReversalStore(engine, posting_reference=posting_reference)
        self.reversals = reversals
        self.core = CoreBanking(
            connector,
            reversals=reversals,
            on_reversal_stored=self._reversal_stored,
            tracing=self.tracing,
            peer=f"mainframe {config.mainframe.host}:{config.mainframe.port}",
        )
        if isinstance(reversals, ReversalStore):
            forwarder = ReversalForwarder(
                reversals,
                self.core,
                on_acknowledged=self._reversal_acknowledged,
                lease=_reversal_lease(config.mainframe.timeout),
            )
            parts.forwarder_task = asyncio.create_task(forwarder.run(self._stop))
        elif self.journal is not None:
            sagas = await start_hub_sagas(config, self.journal, connector, self.core, reversals)
            parts.sagas, self.saga_runner, self.sagas = sagas, sagas.runner, sagas.payments
            parts.forwarder_task = asyncio.create_task(sagas.runner.run(self._stop))
        if config.clearing is not None and self.sagas is None:
            clearing = ClearingInbound(self.core, self.hub, tenant=config.tenant)
            edge = ClearingQueueEdge(
                config.clearing.url,
                clearing,
                asyncio.get_running_loop(),
                inbound=config.clearing.inbound,
                outbound=config.clearing.outbound,
                tls=config.clearing.broker_tls(),
            )
            await asyncio.to_thread(edge.start)
            parts.clearing = edge
            self.clearing = edge
        if parts.sagas is not None and parts.sagas.payments is not None:
            to_clearing = self._batch_handler(parts.sagas.send_to_clearing)
            for destination in self.topology.destinations:
                if destination.name == "clearing" or destination.name.startswith("clearing."):
                    consumer = await parts.transport.consume_async(
                        destination.name, to_clearing, prefetch=256, batch_size=64, batch_wait=0.0
                    )
                    parts.consumers.append(consumer)
        core_batch = self._batch_handler(self.core.handle)
        for name in self.core_destinations:
            if name in self._shards:
                await self._consume_shards(parts, name, self.core.handle)
                continue
            # A consumer on a thread (memory://) waits for its batch's postings: several
            # keep the core busy. On the loop, batches run at once anyway.
            for _ in range(CORE_CONSUMERS):
                consumer = await parts.transport.consume_async(
                    name, core_batch, prefetch=256, batch_size=64, batch_wait=0.0
                )
                parts.consumers.append(consumer)

    async def _consume_shards(
        self,
        parts: _Parts,
        name: str,
        handle: Callable[[CanonicalMessage], Awaitable[CanonicalMessage]],
    ) -> None:
        """One consumer per shard queue of destination ``name`` (the broker makes one of
        the instances' consumers active), handling one message at a time per account or
        card, in queue order."""
        sequencer = KeySequencer()

        async def in_order(message: CanonicalMessage) -> CanonicalMessage:
            return await sequencer.submit(ordering_key(message), lambda: handle(message))

        batch = self._batch_handler(in_order)
        for shard in range(self._shards[name]):
            consumer = await parts.transport.consume_async(
                _shard_name(name, shard), batch, prefetch=256, batch_size=64, batch_wait=0.0
            )
            parts.consumers.append(consumer)

    def published_to(self, destination: str, request: CanonicalMessage) -> str:
        """Where a request routed to ``destination`` is published: the destination, or with
        ``[routing] core_shards`` the shard of its account or card (of its message id when
        it has neither)."""
        shards = self._shards.get(destination)
        if not shards:
            return destination
        key = ordering_key(request) or request.ids.message_id
        return _shard_name(destination, shard_of(key, shards))

    async def close(self) -> None:
        """Stop everything, edges first."""
        parts, self._parts = self._parts, None
        if parts is None:
            await self._close_tracing()
            return
        self._stop.set()
        if self._key_rotation_task is not None:
            with contextlib.suppress(Exception):
                await self._key_rotation_task
            self._key_rotation_task = None
        if self._tls_watch is not None:
            self._tls_watch.cancel()
            self._tls_watch = None
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.close)
            self.metrics_server = None
        for edge in parts.edges:
            await edge.close()
        if parts.clearing is not None:
            await asyncio.to_thread(parts.clearing.stop)
        if parts.sagas is not None:
            await parts.sagas.stop_queues()
        for consumer in parts.consumers:
            await asyncio.to_thread(consumer.stop)
        if parts.forwarder_task is not None:
            parts.forwarder_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await parts.forwarder_task
        if parts.connector is not None:
            await parts.connector.close()
        for host in parts.upstreams:
            await host.close()
        await asyncio.to_thread(parts.requester.close)
        await parts.transport.close_async()
        if self.journal_writer is not None:
            await self.journal_writer.close()
        if self.journal is not None:
            self.journal.close()
        if isinstance(self.reversals, ReversalStore):
            self.reversals.engine.dispose()
        if self._opened_vault is not None:
            self._opened_vault.close()
            self._opened_vault = None
        await self._close_tracing()

    async def _close_tracing(self) -> None:
        if self._owns_tracing and self.tracing.enabled:
            tracing, self.tracing = self.tracing, Tracing.disabled()
            await asyncio.to_thread(tracing.shutdown)

    async def __aenter__(self) -> HubService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def reload_certificates(self) -> int:
        """Rebuild the TLS context of every listener, the mainframe connector and each
        upstream host from its files; how many. Files that cannot be used are logged and
        the previous certificates stay in use."""
        reloaded = 0
        for files, build, use in self._tls_targets():
            try:
                use(build())
            except (ssl.SSLError, OSError, ValueError) as exc:
                _log.error("TLS certificates in %s not reloaded: %s", files[0].parent, exc)
            else:
                reloaded += 1
        return reloaded

    def _tls_targets(
        self,
    ) -> list[
        tuple[tuple[Path, ...], Callable[[], ssl.SSLContext], Callable[[ssl.SSLContext], None]]
    ]:
        """(files, build the context, use it) of everything that speaks TLS."""
        targets: list[
            tuple[tuple[Path, ...], Callable[[], ssl.SSLContext], Callable[[ssl.SSLContext], None]]
        ] = []
        for edge, listener in zip(self.edges, self.config.listeners, strict=True):
            if listener.tls is not None:
                targets.append(
                    (listener.tls.files, listener.tls.server_context, edge.use_tls_context)
                )
        parts = self._parts
        mainframe = self.config.mainframe
        if (
            parts is not None
            and mainframe is not None
            and mainframe.tls is not None
            and isinstance(parts.connector, RecordConnector)
        ):
            connector = parts.connector
            targets.append(
                (mainframe.tls.files, mainframe.tls.client_context, connector.use_tls_context)
            )
        for host in parts.upstreams if parts is not None else ():
            if host.config.tls is not None:
                tls = host.config.tls
                targets.append((tls.files, tls.client_context, host.connector.use_tls_context))
        return targets

    @property
    def hub(self) -> Hub:
        """The wired registry and vault."""
        if self._hub is None:
            raise RuntimeError("the hub is not running")
        return self._hub

    @property
    def upstream_hosts(self) -> tuple[UpstreamHost, ...]:
        """The running ``[[upstreams]]`` hosts that route rules send to."""
        return tuple(self._parts.upstreams) if self._parts is not None else ()

    @property
    def transport(self) -> Transport:
        """The running transport."""
        if self._parts is None:
            raise RuntimeError("the hub is not running")
        return self._parts.transport

    # -- the edges' handler -----------------------------------------------------------------

    def _requester_timeout(self) -> float:
        if self._request_timeout is not None:
            return self._request_timeout
        budgets = [listener.request_timeout for listener in self.config.listeners]
        # Leave the edge time to answer 91 itself if even the requester's answer is late.
        return max(0.1, min(budgets, default=30.0) * 0.9)

    async def route(self, request: CanonicalMessage) -> CanonicalMessage:
        """Route one request by the rules and wait for its reply."""
        if self._parts is None:
            raise RuntimeError("the hub is not running")
        # The loop the hub started on (asyncio.get_running_loop() costs a system call).
        loop = self._loop or asyncio.get_running_loop()
        started = loop.time()
        tracing = self.tracing
        received = _received_body(request)
        trace_id = tracing.trace_id()
        # The journal refuses a body that looks like it holds a card number; our ids never
        # do (observability.tracing.CardSafeIdGenerator), a foreign one might.
        if trace_id is not None and not contains_clear_pan(trace_id):
            received["trace_id"] = trace_id
        self._record(EventKind.RECEIVED, request, received)
        route = self.rules.match(request)
        if route.destination is None:
            self._record(EventKind.DEAD_LETTERED, request, {"reason": route.reason})
            key = f"unrouted.{routing_key_for(request)}"
            with self._publish_span("unrouted", key, request):
                await self._parts.transport.publish_async(
                    request, key, traceparent=tracing.traceparent()
                )
            _log.warning("no route for %s: %s", request.ids.message_id, route.reason)
            return immediate_answer(request, NO_ROUTING)
        self._record(
            EventKind.ROUTED, request, {"destination": route.destination, "rule": route.rule}
        )
        target = (
            self.published_to(route.destination, request) if self._shards else route.destination
        )
        key = f"{target}.{routing_key_for(request)}"
        requester = self._parts.requester
        timeout = self._requester_timeout()
        deadline = loop.time() + timeout
        try:
            # A broker that is down holds the publish until it is back: the acquirer's
            # budget bounds the wait (the publish may still complete later).
            with self._publish_span(route.destination, key, request, route.rule):
                correlation_id, reply = await requester.send_async(
                    request, key, timeout=timeout, traceparent=tracing.traceparent()
                )
        except (PublishTimeoutError, TimeoutError) as exc:  # it may still arrive and post
            _log.warning("request %s not confirmed in time: %r", request.ids.message_id, exc)
            await self._reverse_if_posted(request, route.destination)
            return immediate_answer(request, ISSUER_INOPERATIVE)
        except RoutingError as exc:  # not published: nothing can have been posted
            _log.warning("request %s not sent: %s", request.ids.message_id, exc)
            return immediate_answer(request, ISSUER_INOPERATIVE)
        try:
            answer = await _reply_by(loop, reply, deadline)
        except TimeoutError:
            self._record(EventKind.TIMED_OUT, request, {"waited_s": round(timeout, 3)})
            requester.abandon(correlation_id)
            _log.warning(
                "no reply to %s from %s within %.1f s", request.ids.message_id, key, timeout
            )
            await self._reverse_if_posted(request, route.destination)
            return immediate_answer(request, ISSUER_INOPERATIVE)
        self._record(
            EventKind.ANSWERED,
            request,
            _answered_body(answer, loop.time() - started),
        )
        return answer

    def _publish_span(
        self, destination: str, key: str, request: CanonicalMessage, rule: str | None = None
    ) -> AbstractContextManager[object]:
        return self.tracing.publish(
            system=self._messaging_system,
            exchange=self.topology.exchange,
            routing_key=key,
            destination=destination,
            message=request,
            rule=rule,
        )

    def _record(self, kind: EventKind, request: CanonicalMessage, body: dict[str, object]) -> None:
        if self.journal_writer is not None:
            self.journal_writer.emit(kind, request, body)

    def _reversal_stored(self, request: CanonicalMessage) -> None:
        self._record(EventKind.REVERSED, request, {"reason": "outcome unknown: stored, forwarded"})

    def _reversal_acknowledged(self, reversal: CanonicalMessage, code: str) -> None:
        if self.journal_writer is None:
            return
        original = reversal.original
        self.journal_writer.emit(
            EventKind.STATUS_CHANGED,
            reversal,
            {
                "status": "REVERSED" if code == "00" else "NOT_POSTED",
                "response_code": code,
                "reason": "the core acknowledged the reversal",
            },
            transaction_id=original.message_id if original is not None else None,
        )

    async def _reverse_if_posted(self, request: CanonicalMessage, destination: str) -> None:
        """The request reached, or may have reached, the core and its answer is lost: store a
        reversal, forwarded until the mainframe acknowledges it (``25`` if it never posted)."""
        core = self.core
        if core is not None and destination in self.core_destinations:
            await core.store_reversal(request)

    # -- the core worker and the upstreams' consumers (on the event loop) ---------------------

    def _batch_handler(
        self, handle: Callable[[CanonicalMessage], Awaitable[CanonicalMessage]]
    ) -> AsyncBatchHandler:
        """A transport batch handler (on the hub's event loop) that runs ``handle`` for every
        delivery at once and acks each with its reply."""

        tracing = self.tracing

        async def traced(delivery: Delivery) -> CanonicalMessage:
            message = delivery.message
            bind_message(message)  # this delivery's task: its log lines name it
            envelope = delivery.envelope
            with tracing.consume(
                system=self._messaging_system,
                destination=delivery.destination,
                queue=self.topology.queue(delivery.destination),
                headers=envelope.headers,
                message=message,
                correlation_id=envelope.correlation_id,
            ) as span:
                reply = await handle(message)
                tracing.outcome(span, reply)
                return reply

        async def run(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
            replies: list[CanonicalMessage | BaseException]
            if len(deliveries) == 1:  # no task of its own for a batch of one
                try:
                    replies = [await traced(deliveries[0])]
                except Exception as exc:
                    replies = [exc]
            else:
                replies = await asyncio.gather(
                    *(traced(d) for d in deliveries), return_exceptions=True
                )
            outcomes = []
            for delivery, reply in zip(deliveries, replies, strict=True):
                if isinstance(reply, BaseException):
                    # A bug, not a bad message: answer 96 rather than hold the requester up.
                    _log.error("failed on %s: %r", delivery.message.ids.message_id, reply)
                    reply = immediate_answer(delivery.message, SYSTEM_MALFUNCTION)
                outcomes.append(Outcome.ack(reply=reply))
            return outcomes

        return run


def _shard_name(destination: str, shard: int) -> str:
    return f"{destination}.shard{shard}"


def _declared(name: str, shards: int) -> tuple[Destination, ...]:
    """The destinations route-rule destination ``name`` is declared as: itself, or its
    ``shards`` shard queues, each with one active consumer at a time."""
    if not shards:
        return (Destination(name, (f"{name}.#",), retry=RetryPolicy((1_000, 5_000), 3)),)
    # A retry would overtake later messages: the core worker answers instead (96 at worst).
    return tuple(
        Destination(
            _shard_name(name, shard),
            (f"{_shard_name(name, shard)}.#",),
            retry=RetryPolicy((1_000,), 1),
            single_active_consumer=True,
        )
        for shard in range(shards)
    )


async def _reply_by(
    loop: asyncio.AbstractEventLoop, reply: asyncio.Future[CanonicalMessage], deadline: float
) -> CanonicalMessage:
    """``reply``'s message, or :class:`TimeoutError` at loop time ``deadline``: a timer on
    the future (the loop's own code) rather than a timeout scope around the await, a third
    of its cost per request. A reply that comes later finds the future done: the requester
    counts it late."""
    if reply.done():
        return reply.result()
    timer = loop.call_at(deadline, _fail_late, reply)
    try:
        return await reply
    finally:
        timer.cancel()


def _fail_late(reply: asyncio.Future[CanonicalMessage]) -> None:
    if not reply.done():
        reply.set_exception(TimeoutError())


def _reversal_database(config: HubConfig) -> Engine:
    """The reversal store's database (``<home>/hub.db`` unless ``ISOBRIDGE_STORE_URL``
    names another), its schema up to date."""
    settings = config.settings
    if settings.store_embedded:
        settings.home.mkdir(parents=True, exist_ok=True)
        if "," in urlsplit(config.routing.transport).netloc:
            # Workers of one machine share the file safely (SQLite's locks); instances on
            # other machines, which a broker cluster suggests, would not see its reversals.
            _log.warning(
                "the reversal store is %s, on this machine only: with hub instances on"
                " other machines, set ISOBRIDGE_STORE_URL to the PostgreSQL database they"
                " share, or a reversal stored here waits for this home's next start",
                settings.store_url,
            )
    engine = create_engine(settings.store_url)
    upgrade(engine)
    return engine


def _reversal_lease(core_timeout: float) -> float:
    """How long a forwarder holds a claimed reversal: well past one send to the core (its
    timeout), short enough that another instance soon takes over from one that died."""
    return max(10.0, 3 * core_timeout)


def prepare_state(config: HubConfig, notes: TextIO) -> None:
    """Set up, once, what several hub processes share (:mod:`hub.workers` calls it before
    it starts them): the master keys, the vault, the journal and the reversal store, so
    that no two workers race to create them."""
    open_vault(config.settings, notes=notes).close()
    if config.journal:
        open_journal(config.settings, notes=notes).close()
    if config.mainframe is not None:
        _reversal_database(config).dispose()


def _received_body(request: CanonicalMessage) -> dict[str, object]:
    amount = request.amount
    return {
        "message_kind": request.kind.value,
        "function": request.function.value,
        "amount": str(amount.amount) if amount is not None else None,
        "currency": amount.currency.alpha if amount is not None else None,
    }


def _answered_body(answer: CanonicalMessage, latency: float) -> dict[str, object]:
    status = answer.status
    original = status.original if status is not None else None
    return {
        "status": status.code.value if status is not None else None,
        "reason_code": status.reason if status is not None else None,
        "response_code": original.code if original is not None else None,
        "latency_ms": round(latency * 1000, 1),
    }


def settle_heap() -> None:
    """Tune the garbage collector for serving, once started.

    What start-up allocated (adapters' schemas and code sets, compiled codecs, the framework)
    lives as long as the process: frozen, full passes no longer scan it again and again
    (they paused the event loop up to ~100 ms each). The youngest generation is collected
    after 10,000 allocations instead of 700, so that a request's short-lived objects are
    freed by reference counting before a pass sees them: at 400 payments/s, collection
    time fell from ~660 ms to ~85 ms over 13 s (bench/RESULTS.md, e2e)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def run_forever(
    config: HubConfig,
    *,
    out: TextIO,
    ready: Callable[[HubService], None] | None = None,
    name: str | None = None,
) -> int:
    """Run the hub until SIGINT / SIGTERM; the exit status. ``name`` starts each line it
    writes (default ``isobridge``; a worker's name under :mod:`hub.workers`).

    On uvloop when installed (:func:`hub.gateway_cli.run_event_loop`): its loop, futures'
    callbacks and socket transports are compiled, about a tenth of the hub's CPU per card
    payment (bench/RESULTS.md, e2e)."""
    name = name or "isobridge"

    async def main() -> None:
        async with HubService(config, notes=out) as service:
            for edge in service.edges:
                out.write(
                    f"{name}: ISO 8583 edge on {edge.settings.host}:{edge.port}"
                    f" ({edge.settings.framing}, {edge.adapter.variant})\n"
                )
            if service.metrics_server is not None:
                host, port = service.metrics_server.address
                out.write(f"{name}: metrics on http://{host}:{port}/metrics\n")
            if config.mainframe is not None:
                out.write(
                    f"{name}: core banking at {config.mainframe.host}:{config.mainframe.port}"
                    f" ({config.mainframe.framing}); destinations"
                    f" {', '.join(service.core_destinations) or '(none)'}\n"
                )
            out.write(f"{name}: transport {_masked_url(config.routing.transport)}; running\n")
            out.flush()
            settle_heap()
            if ready is not None:
                ready(service)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.add_signal_handler(signal.SIGHUP, service.reload_certificates)
            await stop.wait()
            served = sum(edge.stats.requests for edge in service.edges)
            out.write(f"{name}: stopping after {served} requests\n")

    run_event_loop(main())
    return 0


def _masked_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"
