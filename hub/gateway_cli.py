"""``isobridge gateway`` and ``isobridge run --gateway``: the open-banking gateway under uvicorn.

``isobridge run --config hub.toml --gateway gateway.toml`` runs the hub and the gateway in
one process (:func:`serve_hub_with_gateway`): the gateway uses the hub's core banking
worker, journal and transport (dead letters). ``isobridge gateway --config hub.toml
--gateway gateway.toml`` runs the gateway alone, on one event loop, with:

- the core banking connector of ``hub.toml``'s ``[mainframe]`` (``hub.core``), with the
  reversal store (``<home>/gateway.db``) and its forwarder, so a debit whose answer was lost
  is reversed until the mainframe acknowledges it;
- the journal of the state directory (``hub.bootstrap.open_journal``);
- the clearing queue pair of ``gateway.toml``'s ``[clearing]`` (:mod:`hub.clearing_outgoing`);
- the application (:func:`hub.gateway.build_gateway`) under uvicorn on ``[gateway] host`` /
  ``port``; SIGINT / SIGTERM stop it, then everything else. With ``[gateway.tls]`` it is
  served over TLS 1.3 (:mod:`hub.gateway_tls`), and SIGHUP or a change of the certificate
  files reloads them (under ``run --gateway``, SIGHUP reloads the hub's certificates too).

The configuration is checked before anything starts; an error names the file and the key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hub.cli_support import EXIT_OK, EXIT_USAGE
from hub.config_file import ConfigError, HubConfig, load_config
from observability.logs import configure_logging

if TYPE_CHECKING:  # the web stack is imported when the command runs, not by every CLI call
    from prometheus_client import CollectorRegistry

    from gateway.ports import CoreBankingPort
    from hub.gateway import BuiltGateway
    from hub.gateway_config import GatewayConfig
    from journal import Journal
    from routing.transport import Transport

__all__ = [
    "add_gateway_command",
    "load_gateway_for_run",
    "run_gateway_command",
    "serve_gateway",
    "serve_hub_with_gateway",
]


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
    from hub.store import ReversalForwarder, ReversalStore, create_engine, upgrade

    if hub_config.mainframe is None:
        raise ConfigError(hub_config.source, "mainframe", "the gateway needs a [mainframe]")
    connector = corebank_exchange(hub_config.mainframe)
    await connector.start()
    home = hub_config.settings.home
    home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{home / 'gateway.db'}")
    await asyncio.to_thread(upgrade, engine)
    reversals = ReversalStore(engine, posting_reference=posting_reference)
    core = CoreBanking(connector, reversals=reversals)
    halt = asyncio.Event()
    forwarder = asyncio.create_task(ReversalForwarder(reversals, core).run(halt))
    journal = await asyncio.to_thread(open_journal, hub_config.settings, notes=out)
    try:
        await _serve(config, out, core=core, journal=journal, ready=ready, stop=stop)
    finally:
        halt.set()
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
        await connector.close()
        journal.close()
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

    # The gateway's /metrics shows the hub's metrics too: they are measured either way.
    async with HubService(hub_config, notes=out, metrics=HubMetrics()) as service:
        if service.core is None or service.journal is None:
            raise ConfigError(hub_config.source, "mainframe", "the gateway needs a [mainframe]")
        assert service.metrics is not None
        await _serve(
            config,
            out,
            core=service.core,
            journal=service.journal,
            dead_letters=service.transport,
            metrics_registry=service.metrics.registry,
            ready=ready,
            stop=stop,
            on_hangup=service.reload_certificates,
        )


async def _serve(
    config: GatewayConfig,
    out: TextIO,
    *,
    core: CoreBankingPort,
    journal: Journal,
    dead_letters: Transport | None = None,
    metrics_registry: CollectorRegistry | None = None,
    ready: Callable[[BuiltGateway, int], None] | None,
    stop: asyncio.Event | None,
    on_hangup: Callable[[], object] | None = None,
) -> None:
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from gateway.journaled import JournalPayments
    from hub.clearing_outgoing import ClearingOutgoing
    from hub.gateway import build_gateway
    from hub.gateway_tls import GatewayTls
    from hub.tls import CertificateFiles

    holder: list[BuiltGateway] = []

    async def on_status(document: bytes) -> int:
        return await holder[0].payments.receive_status_report(document)

    tls: GatewayTls | None = None
    watcher: asyncio.Task[None] | None = None
    hangups: list[Callable[[], object]] = []
    clearing = ClearingOutgoing(
        config.clearing_url,
        asyncio.get_running_loop(),
        on_status,
        outgoing=config.outgoing,
        status=config.status,
    )
    try:
        await asyncio.to_thread(clearing.start)
        built = build_gateway(
            core=core,
            clearing=clearing,
            journal=journal,
            issuer=config.issuer,
            clients=config.clients,
            directory=config.directory,
            settings=config.settings,
            statement_files=config.statement_files,
            response_signing_key=config.response_signing_key,
            probes=(clearing,),
            dead_letters=dead_letters,
            metrics_registry=metrics_registry,
        )
        holder.append(built)
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
                http=tls.protocol_class(AutoHTTPProtocol) if tls is not None else "auto",
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
        serving = asyncio.create_task(server.serve())
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
        if watcher is not None:
            watcher.cancel()
        if hangups:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await asyncio.to_thread(clearing.stop)


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
    asyncio.run(serve_gateway(hub_config, config, out))
    return EXIT_OK


def load_gateway_for_run(path: str) -> GatewayConfig:
    """``run --gateway``'s file, loaded (:class:`hub.config_file.ConfigError` if bad)."""
    from hub.gateway_config import load_gateway_config

    return load_gateway_config(Path(path))
