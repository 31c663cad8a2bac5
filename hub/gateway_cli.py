"""``isobridge gateway`` and ``isobridge run --gateway``: the open-banking gateway under uvicorn.

``isobridge run --config hub.toml --gateway gateway.toml`` runs the hub and the gateway in
one process (:func:`serve_hub_with_gateway`): the gateway uses the hub's core banking
worker, journal and transport (dead letters). With ``--workers N`` (or ``[hub] workers``)
each of the N hub processes serves the gateway too, all on ``[gateway] port``
(``SO_REUSEPORT``, :mod:`hub.workers`), sharing the gateway's database; each takes
``1/N`` of a client's rate limit (:mod:`gateway.limits`). ``isobridge gateway --config hub.toml
--gateway gateway.toml`` runs the gateway alone, on one event loop, with:

- the gateway's database (``[gateway] database``, default ``<home>/gateway.db``): its
  consents, idempotency keys, payments and built-in authorization server
  (:mod:`gateway.store`), shared by every gateway process pointed at it;
- the core banking connector of ``hub.toml``'s ``[mainframe]`` (``hub.core``), with the
  reversal store (in the gateway's database) and its forwarder, so a debit whose answer was
  lost is reversed until the mainframe acknowledges it;
- the journal of the state directory (``hub.bootstrap.open_journal``);
- the clearing queue pair of ``gateway.toml``'s ``[clearing]`` (:mod:`hub.clearing_outgoing`);
  with ``[clearing] sagas = true``, the payment sagas (:class:`hub.sagas.service.PaymentSagas`,
  their runner a task of the loop) carry the payments and take the status queue's answers;
- the application (:func:`hub.gateway.build_gateway`) under uvicorn on ``[gateway] host`` /
  ``port``; SIGINT / SIGTERM stop it, then everything else. With ``[gateway.tls]`` it is
  served over TLS 1.3 (:mod:`hub.gateway_tls`), and SIGHUP or a change of the certificate
  files reloads them (under ``run --gateway``, SIGHUP reloads the hub's certificates too);
- with the built-in authorization server, the rotation schedule of its signing keys
  (``hub.toml``'s ``[keys]``, :mod:`hub.rotation`): a task, and the ``/readyz`` probe
  ``key_rotation`` that fails while a rotation fails.

Without TLS, each connection's response writes of one turn of the event loop go out in one
system call (:func:`coalescing_protocol`): uvicorn writes a response's head and its body
apart, and uvloop sends each write at once.

Both commands run on the event loop uvicorn itself would pick (its ``loop="auto"``): uvloop
when it is installed (a dependency where it builds), else asyncio's
(:func:`run_event_loop`).

The configuration is checked before anything starts; an error names the file and the key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from hub.cli_support import EXIT_OK, EXIT_USAGE
from hub.config_file import ConfigError, HubConfig, load_config
from hub.rotation import KeysConfig, RotationProbe, RotationScheduler, SigningKeys
from observability.logs import configure_logging
from observability.metrics import KeyRotationMetrics

if TYPE_CHECKING:  # the web stack is imported when the command runs, not by every CLI call
    from prometheus_client import CollectorRegistry
    from sqlalchemy.engine import Engine

    from gateway.ports import CoreBankingPort
    from hub.clearing_outgoing import ClearingOutgoing
    from hub.gateway import BuiltGateway
    from hub.gateway_config import GatewayConfig
    from hub.sagas.service import PaymentSagas
    from journal import Journal
    from routing.transport import Transport

__all__ = [
    "CoalescingTransport",
    "add_gateway_command",
    "coalescing_protocol",
    "load_gateway_for_run",
    "open_gateway_database",
    "run_event_loop",
    "run_gateway_command",
    "serve_gateway",
    "serve_hub_with_gateway",
]


class CoalescingTransport(asyncio.Transport):
    """``transport`` with the writes of one turn of the event loop joined into one write,
    made at the end of the turn (or at once by :meth:`close`, :meth:`flush` and when they
    add up to 64 KiB). Everything else is ``transport``'s."""

    _LIMIT = 65536

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self.transport = transport
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            asyncio.get_running_loop().call_soon(self.flush)
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size >= self._LIMIT:
            self.flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is held now."""
        if not self._held:
            return
        held, self._held, self._size = self._held, [], 0
        if not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self.transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._size + self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


def coalescing_protocol(http: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A uvicorn ``http`` protocol class: ``http`` writing through a
    :class:`CoalescingTransport`, so a response's head and body (two writes of uvicorn's)
    leave in one system call; a quarter of the gateway's CPU per balance read went to the
    two (``bench/RESULTS.md``)."""

    class Coalescing(http):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not asyncio.Transport subclasses; both write
            super().connection_made(CoalescingTransport(cast(asyncio.Transport, transport)))

    Coalescing.__name__ = Coalescing.__qualname__ = f"Coalescing{http.__name__}"
    return Coalescing


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to its end on uvloop when installed, else on asyncio's loop."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def add_gateway_command(commands: Any) -> None:
    """The ``gateway`` subcommand of the CLI."""
    parser = commands.add_parser("gateway", help="serve the open-banking gateway (OBIE v4.0)")
    parser.add_argument("--config", required=True, help="hub.toml ([mainframe], state directory)")
    parser.add_argument("--gateway", required=True, help="gateway.toml (module hub.gateway_config)")


async def serve_gateway(
    hub_config: HubConfig,
    config: GatewayConfig,
    out: TextIO,
    *,
    ready: Callable[[BuiltGateway, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the gateway on its own connector (``isobridge gateway``) until ``stop`` is set
    (or a signal, under uvicorn's handlers)."""
    from hub.bootstrap import open_journal
    from hub.core import CoreBanking, corebank_exchange, posting_reference
    from hub.gateway_config import database_url
    from hub.store import ReversalForwarder, ReversalStore, create_engine, upgrade

    if hub_config.mainframe is None:
        raise ConfigError(hub_config.source, "mainframe", "the gateway needs a [mainframe]")
    # Blocking work (the gateway's database, the journal) runs on threads, as in the hub
    # (hub.service): the default pool's few threads would queue a payment's several hops.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=32, thread_name_prefix="isobridge-gateway")
    )
    engine = await asyncio.to_thread(open_gateway_database, hub_config, config)
    # the reversals share the database, on an engine of the hub's store: every commit on disk
    reversal_engine = create_engine(database_url(config, hub_config.settings.home))
    await asyncio.to_thread(upgrade, reversal_engine)
    connector = corebank_exchange(hub_config.mainframe)
    await connector.start()
    reversals = ReversalStore(reversal_engine, posting_reference=posting_reference)
    core = CoreBanking(connector, reversals=reversals)
    halt = asyncio.Event()
    forwarder = asyncio.create_task(ReversalForwarder(reversals, core).run(halt))
    journal = await asyncio.to_thread(open_journal, hub_config.settings, notes=out)
    try:
        await _serve(
            config,
            out,
            core=core,
            journal=journal,
            engine=engine,
            ready=ready,
            stop=stop,
            codepage=hub_config.mainframe.codepage,
            keys=hub_config.keys,
            audit_tenant=hub_config.tenant,
        )
    finally:
        halt.set()
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
        await connector.close()
        journal.close()
        reversal_engine.dispose()
        engine.dispose()


async def serve_hub_with_gateway(
    hub_config: HubConfig,
    config: GatewayConfig,
    out: TextIO,
    *,
    ready: Callable[[BuiltGateway, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """``isobridge run --gateway``: the hub (:class:`hub.service.HubService`) and the gateway
    in one process, on one event loop; the gateway uses the hub's core banking worker, its
    journal, and its transport for the dead-letter endpoints."""
    from hub.service import HubService
    from observability.metrics import HubMetrics

    engine = await asyncio.to_thread(open_gateway_database, hub_config, config)
    try:
        # The gateway's /metrics shows the hub's metrics too: they are measured either way.
        metrics = HubMetrics()
        async with HubService(hub_config, notes=out, metrics=metrics) as service:
            if service.core is None or service.journal is None:
                raise ConfigError(hub_config.source, "mainframe", "the gateway needs a [mainframe]")
            await _serve(
                config,
                out,
                core=service.core,
                journal=service.journal,
                engine=engine,
                dead_letters=service.transport,
                metrics_registry=metrics.registry,
                workers=hub_config.workers,
                ready=ready,
                stop=stop,
                on_hangup=service.reload_certificates,
                codepage=hub_config.mainframe.codepage if hub_config.mainframe else "cp037",
                keys=hub_config.keys,
                key_metrics=metrics.keys,
                audit_tenant=hub_config.tenant,
            )
    finally:
        engine.dispose()


def open_gateway_database(hub_config: HubConfig, config: GatewayConfig) -> Engine:
    """An engine on the gateway's database (``[gateway] database``, or ``gateway.db`` in the
    hub's state directory), its tables created or upgraded."""
    from gateway.store import create_engine, upgrade
    from hub.gateway_config import database_url

    home = hub_config.settings.home
    home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url(config, home))
    upgrade(engine)
    return engine


async def _serve(
    config: GatewayConfig,
    out: TextIO,
    *,
    core: CoreBankingPort,
    journal: Journal,
    engine: Engine,
    dead_letters: Transport | None = None,
    metrics_registry: CollectorRegistry | None = None,
    workers: int = 1,
    ready: Callable[[BuiltGateway, int], None] | None,
    stop: asyncio.Event | None,
    on_hangup: Callable[[], object] | None = None,
    codepage: str = "cp037",
    keys: KeysConfig | None = None,
    key_metrics: KeyRotationMetrics | None = None,
    audit_tenant: str = "default",
) -> None:
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from gateway.journaled import JournalPayments
    from hub.clearing_outgoing import ClearingOutgoing
    from hub.gateway import build_gateway
    from hub.gateway_tls import GatewayTls
    from hub.sagas.service import ANSWER_HANDLERS
    from hub.tls import CertificateFiles

    holder: list[BuiltGateway] = []
    sagas: list[PaymentSagas] = []

    async def on_status(document: bytes) -> int:
        if sagas:
            return await sagas[0].receive_answer(document)
        return await holder[0].payments.receive_status_report(document)

    tls: GatewayTls | None = None
    watcher: asyncio.Task[None] | None = None
    rotation_probe = RotationProbe()
    rotation: asyncio.Task[None] | None = None
    rotation_stop = asyncio.Event()
    hangups: list[Callable[[], object]] = []
    clearing = ClearingOutgoing(
        config.clearing_url,
        asyncio.get_running_loop(),
        on_status,
        outgoing=config.outgoing,
        status=config.status,
        tls=config.clearing_tls.broker_tls() if config.clearing_tls is not None else None,
        handlers=ANSWER_HANDLERS if config.sagas else 1,
    )
    halt = asyncio.Event()
    saga_task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(clearing.start)
        if config.sagas:
            sagas.append(_payment_sagas(core, journal, clearing, codepage))
            saga_task = asyncio.create_task(sagas[0].run(halt))
        built = build_gateway(
            core=core,
            clearing=clearing,
            journal=journal,
            engine=engine,
            issuer=config.issuer,
            clients=config.clients,
            directory=config.directory,
            settings=config.settings,
            statement_files=config.statement_files,
            response_signing_key=config.response_signing_key,
            probes=(clearing, rotation_probe),
            dead_letters=dead_letters,
            metrics_registry=metrics_registry,
            workers=workers,
            consent_cache_ttl=config.consent_cache_seconds,
            sca=config.sca,
            sagas=sagas[0] if sagas else None,
        )
        holder.append(built)
        if built.authorization_server is not None:
            # The built-in server's signing keys rotate on [keys]'s schedule (hub.rotation).
            keys = keys or KeysConfig()
            scheduler = RotationScheduler(
                [SigningKeys(built.authorization_server, prepublish=keys.jwks_prepublish)],
                keys,
                metrics=key_metrics or KeyRotationMetrics(built.services.metrics.registry),
                journal=journal,
                audit_tenant=audit_tenant,
            )
            rotation_probe.scheduler = scheduler
            rotation = asyncio.create_task(scheduler.run(rotation_stop))
        restored = await built.payments.restore(JournalPayments(journal))
        if restored:
            out.write(f"isobridge: {restored} payments restored from the journal\n")
        if config.tls is not None:
            tls = GatewayTls(config.tls, config.issuer.client_cert_header)
        server = uvicorn.Server(
            uvicorn.Config(
                tls.wrap(built.app) if tls is not None else built.app,
                host=config.host,
                port=config.port,
                log_level="warning",
                lifespan="off",
                http=(
                    tls.protocol_class(AutoHTTPProtocol)
                    if tls is not None
                    else coalescing_protocol(AutoHTTPProtocol)
                ),
                # uvicorn's records go to the root logger's handler: masked, in its format
                log_config=None,
            )
        )
        hangups += [job for job in (on_hangup, tls.reload if tls else None) if job is not None]
        if hangups:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: [job() for job in hangups]
                )
        if tls is not None and config.tls is not None:
            watcher = asyncio.create_task(
                CertificateFiles(config.tls.files).watch(tls.reload, config.tls.reload_interval)
            )
        # several workers share the port (SO_REUSEPORT), as the hub's listeners do
        sockets = [_shared_socket(config.host, config.port)] if workers > 1 else None
        serving = asyncio.create_task(server.serve(sockets=sockets))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if serving.done():
            await serving  # raises why it could not start
        port = server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if tls is not None else "http"
        out.write(f"isobridge: open-banking gateway on {scheme}://{config.host}:{port}\n")
        out.flush()
        if ready is not None:
            ready(built, port)
        if stop is not None:
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            waiter.cancel()
        await serving
    finally:
        rotation_stop.set()
        if rotation is not None:
            with contextlib.suppress(Exception):
                await rotation
        if watcher is not None:
            watcher.cancel()
        if hangups:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        halt.set()
        if saga_task is not None:
            await saga_task
        await asyncio.to_thread(clearing.stop)


def _payment_sagas(
    core: CoreBankingPort, journal: Journal, clearing: ClearingOutgoing, codepage: str
) -> PaymentSagas:
    """The payment sagas on the core's mainframe connector and the gateway's queue pair."""
    from hub.core import CoreBanking
    from hub.sagas.service import PaymentSagas

    if not isinstance(core, CoreBanking):
        raise RuntimeError("the payment sagas need the hub's core banking connector")
    return PaymentSagas(journal, core.exchange, clearing, tenant="open-banking", codepage=codepage)


def _shared_socket(host: str, port: int) -> socket.socket:
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listening.bind((host, port))
    return listening


def run_gateway_command(
    args: argparse.Namespace, environ: Mapping[str, str] | None, out: TextIO, err: TextIO
) -> int:
    """``isobridge gateway``: the exit status."""
    from hub.gateway_config import load_gateway_config

    try:
        hub_config = load_config(Path(args.config), environ)
        config = load_gateway_config(Path(args.gateway))
        if hub_config.mainframe is None:
            raise ConfigError(hub_config.source, "mainframe", "the gateway needs a [mainframe]")
    except ConfigError as exc:
        err.write(f"isobridge: {exc}\n")
        return EXIT_USAGE
    configure_logging(hub_config.logging, err)
    from hub.service import settle_heap

    run_event_loop(
        serve_gateway(hub_config, config, out, ready=lambda _built, _port: settle_heap())
    )
    return EXIT_OK


def load_gateway_for_run(path: str) -> GatewayConfig:
    """``run --gateway``'s file, loaded (:class:`hub.config_file.ConfigError` if bad)."""
    from hub.gateway_config import load_gateway_config

    return load_gateway_config(Path(path))
