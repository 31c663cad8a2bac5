"""The ``isobridge`` command line.

Commands::

    isobridge adapters                      list adapters, variants and capabilities
    isobridge translate --from A --to B     translate one message (file or stdin)
    isobridge inspect --from A              show a wire message field by field, PAN masked
    isobridge validate FILE...              validate ISO 20022 files: XSD, then business rules
    isobridge schema canonical              print the canonical JSON Schema
    isobridge run [--config hub.toml]       run the hub (see hub.service, hub.config_file)
    isobridge demo [--part hub|translations] the whole hub on sample traffic (every main flow,
                                            a live summary), then the translations step by step
    isobridge vault init|stats|tokenize|detokenize|rotate|verify|purge-expired|shred
                                            the tokenization vault (see hub.vault_cli)
    isobridge routes check|explain          route rules (see hub.routes_cli)
    isobridge copybook show X.cpy           a COBOL copybook's layout (see hub.copybook_cli)
    isobridge convert FILE --copybook X.cpy --to jsonl|csv|canonical-json|camt.053
                                            a mainframe record file, streamed
    isobridge dlq list|show|replay|purge    dead-lettered messages (see hub.dlq_cli)
    isobridge journal init|rebuild|checkpoint|shred, audit verify, trace ID
                                            the event journal (see hub.journal_cli)
    isobridge certs dev [--out DIR]         a throwaway CA and TLS certificates (hub.certs_cli)
    isobridge sagas list|show ID|retry ID   payment sagas (see hub.sagas_cli)
    isobridge keys status|rotate FAMILY     key rotation schedules (see hub.keys_cli)
    isobridge mask IN OUT [--format F]      a masked non-production copy of an ISO 8583,
                                            ISO 20022 or fixed-width file (hub.mask_cli)
    isobridge sca enrol|unlock PSU          the gateway's second factor: enrol a PSU's
                                            authenticator app (TOTP), lift a lockout
                                            (hub.sca_cli)

``A`` and ``B`` are an adapter (``iso8583``, ``iso8583:ebcdic-cp037``) or ``canonical-json``.
Binary input is read raw, or as hex text with ``--hex`` (binary output is then hex too).
Bad input gets a message naming the field and the byte offset, exit status 1; for an ISO 8583
request the response that the hub would send back (field 39 = 30) is shown as well.
"""

from __future__ import annotations

import argparse
import binascii
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from adapters.base import (
    Adapter,
    AdapterDecodeError,
    AdapterError,
    BatchAdapter,
    Inspectable,
)
from adapters.registry import AdapterRegistry, default_registry
from canonical_model.json_form import CanonicalJsonError, from_dict, json_schema, to_dict, to_json
from canonical_model.messages import CanonicalMessage
from hub.bootstrap import Hub, open_vault
from hub.certs_cli import add_certs_commands, run_certs_command
from hub.cli_support import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, CliError
from hub.config import Settings
from hub.config_file import HubConfig
from hub.copybook_cli import add_copybook_commands, run_copybook_command
from hub.dlq_cli import add_dlq_commands, run_dlq_command
from hub.gateway_cli import add_gateway_command, run_gateway_command
from hub.journal_cli import JOURNAL_COMMANDS, add_journal_commands, run_journal_command
from hub.keys_cli import KEYS_COMMAND, add_keys_commands, run_keys_command
from hub.mask_cli import add_mask_command, run_mask_command
from hub.routes_cli import add_routes_commands, run_routes_command
from hub.sagas_cli import SAGAS_COMMAND, add_sagas_commands, run_sagas_command
from hub.sca_cli import SCA_COMMAND, add_sca_commands, run_sca_command
from hub.vault_cli import add_vault_commands, run_vault_command
from observability.logs import configure_logging
from vault.errors import VaultError

if TYPE_CHECKING:
    from hub.config_file import HubConfig
    from hub.gateway import BuiltGateway
    from hub.workers import WorkerMetrics

__all__ = ["CANONICAL_JSON", "main"]

CANONICAL_JSON = "canonical-json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isobridge",
        description="ISO 8583 / ISO 20022 adapter hub",
    )
    parser.add_argument("--tenant", default="default", help="tenant id (default: default)")
    parser.add_argument(
        "--vault-url", help="vault database URL (default: $ISOBRIDGE_VAULT_URL or SQLite)"
    )
    parser.add_argument(
        "--key-file", help="master key file (default: $ISOBRIDGE_KEY_FILE or in the state dir)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("adapters", help="list adapters, variants and capabilities")

    translate = commands.add_parser("translate", help="translate one message")
    translate.add_argument("--from", dest="source", required=True, metavar="FORMAT")
    translate.add_argument("--to", dest="target", required=True, metavar="FORMAT")
    translate.add_argument("--hex", action="store_true", help="binary input/output as hex")
    translate.add_argument("input", nargs="?", default="-", help="file to read (default: stdin)")

    inspect = commands.add_parser("inspect", help="show a message field by field, PAN masked")
    inspect.add_argument("--from", dest="source", default="iso8583", metavar="FORMAT")
    inspect.add_argument("--hex", action="store_true", help="input is hex text")
    inspect.add_argument("input", nargs="?", default="-", help="file to read (default: stdin)")

    validate = commands.add_parser("validate", help="validate ISO 20022 files (XSD + rules)")
    validate.add_argument("files", nargs="+", metavar="FILE")

    schema = commands.add_parser("schema", help="print a JSON Schema")
    schema.add_argument("which", choices=["canonical"])

    add_gateway_command(commands)
    add_certs_commands(commands)

    run = commands.add_parser("run", help="run the hub: edges, routing, core banking")
    run.add_argument(
        "--config", help="hub.toml (default: the embedded defaults, no listener)", default=None
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="hub processes sharing the listeners (default: [hub] workers, or 1)",
    )
    run.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument(
        "--gateway",
        default=None,
        help="gateway.toml: serve the open-banking gateway in the hub process (in each worker)",
    )

    demo = commands.add_parser(
        "demo", help="run the whole hub on sample traffic, then show the translations step by step"
    )
    demo.add_argument("--variant", action="append", help="ISO 8583 variant(s) to show")
    demo.add_argument(
        "--part",
        choices=["all", "hub", "translations"],
        default="all",
        help="the running hub (every main flow), the translations, or both (default)",
    )
    demo.add_argument("--terminals", type=int, default=8, help="concurrent terminals (default 8)")
    demo.add_argument(
        "--purchases", type=int, default=150, help="purchases per terminal (default 150)"
    )

    add_vault_commands(commands)
    add_routes_commands(commands)
    add_copybook_commands(commands)
    add_dlq_commands(commands)
    add_journal_commands(commands)
    add_sagas_commands(commands)
    add_keys_commands(commands)
    add_mask_command(commands)
    add_sca_commands(commands)
    return parser


def _read_input(path: str, stdin: BinaryIO) -> bytes:
    if path == "-":
        return stdin.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _from_hex(data: bytes) -> bytes:
    text = b"".join(data.split())
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if chr(c) not in "0123456789abcdefABCDEF"), None)
        where = f" at offset {bad}" if bad is not None else " (odd number of digits)"
        raise CliError(f"--hex input is not hexadecimal{where}") from None


def _demo(args: argparse.Namespace, out: TextIO, hub: Hub | None) -> int:
    from hub.demo import run_demo
    from hub.demo_hub import run_hub_demo

    ok = True
    if args.part in ("all", "hub"):
        out.write("isobridge demo: the running hub, on the embedded defaults\n")
        ok = run_hub_demo(out, terminals=args.terminals, per_terminal=args.purchases)
        out.write(f"\nevery check held: {ok}\n")
    if args.part in ("all", "translations"):
        if args.part == "all":
            out.write("\n")
        run_demo(out, variants=args.variant, hub=hub)
    return EXIT_OK if ok else EXIT_BAD_INPUT


def _configure_logging(environ: Mapping[str, str] | None, err: TextIO) -> None:
    """Log as ``$ISOBRIDGE_LOG_FORMAT`` / ``$ISOBRIDGE_LOG_LEVEL`` say (readable text at
    warning level by default), every line masked (observability.logs)."""
    import os

    from hub.config_file import ConfigError, TableReader, logging_config

    try:
        config = logging_config(
            TableReader("environment", Path.cwd()), {}, os.environ if environ is None else environ
        )
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    configure_logging(config, err)


def _run_with_gateway(
    config_path: str | None,
    gateway_path: str,
    environ: Mapping[str, str] | None,
    out: TextIO,
    err: TextIO,
    *,
    workers: int | None = None,
    worker: int | None = None,
) -> int:
    """``run --gateway``: the hub and the gateway in each process (hub.gateway_cli); with
    several workers, the gateway's port is shared like the listeners' (hub.workers)."""
    from hub.config_file import ConfigError, load_config
    from hub.gateway_cli import (
        load_gateway_for_run,
        open_gateway_database,
        run_event_loop,
        serve_hub_with_gateway,
    )
    from hub.service import prepare_state, settle_heap
    from hub.workers import die_with_parent, report_ready, supervise

    try:
        config = load_config(Path(config_path) if config_path else None, environ)
        gateway = load_gateway_for_run(gateway_path)
        if config.mainframe is None:
            raise ConfigError(config.source, "mainframe", "the gateway needs a [mainframe]")
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    configure_logging(config.logging, err)
    config = _with_workers(config, workers)
    if config.workers > 1 and gateway.port == 0:
        raise CliError(
            f"--workers {config.workers}: [gateway] port is 0 (any free port), which workers"
            " cannot share: name a port",
            EXIT_USAGE,
        )
    if config.workers > 1 and worker is None:
        prepare_state(config, out)
        open_gateway_database(config, gateway).dispose()
        return supervise(
            config_path, config.workers, out, _worker_metrics(config), gateway_path=gateway_path
        )
    if worker is not None:
        die_with_parent()

    def ready(_built: BuiltGateway, _port: int) -> None:
        settle_heap()
        if worker is not None:
            report_ready()

    run_event_loop(serve_hub_with_gateway(config, gateway, out, ready=ready))
    return EXIT_OK


def _with_workers(config: HubConfig, workers: int | None) -> HubConfig:
    """``config`` with ``--workers`` applied (checked: a listener of port 0 is not shared)."""
    if workers is None:
        return config
    if not 1 <= workers <= 64:
        raise CliError(f"--workers: {workers} is outside 1..64", EXIT_USAGE)
    shared = [listener.name for listener in config.listeners if listener.port == 0]
    if workers > 1 and shared:
        raise CliError(
            f"--workers {workers}: listener {shared[0]!r} has port 0 (any free port),"
            " which workers cannot share: name a port",
            EXIT_USAGE,
        )
    return dataclasses.replace(config, workers=workers)


def _run(
    config_path: str | None,
    environ: Mapping[str, str] | None,
    out: TextIO,
    err: TextIO,
    *,
    workers: int | None = None,
    worker: int | None = None,
) -> int:
    from hub.config_file import ConfigError, load_config
    from hub.service import prepare_state, run_forever
    from hub.workers import die_with_parent, report_ready, supervise
    from routing.rules import RouteRulesError
    from routing.transport import RoutingError

    try:
        config = load_config(Path(config_path) if config_path else None, environ)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    configure_logging(config.logging, err)
    config = _with_workers(config, workers)
    if config.workers > 1 and worker is None:
        prepare_state(config, out)
        return supervise(config_path, config.workers, out, _worker_metrics(config))
    if worker is not None:
        die_with_parent()
    try:
        return run_forever(
            config,
            out=out,
            name=f"isobridge[worker {worker}]" if worker else None,
            ready=(lambda _service: report_ready()) if worker is not None else None,
        )
    except RouteRulesError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except RoutingError as exc:
        raise CliError(f"transport {config.routing.transport.split('@')[-1]}: {exc}") from None


def _worker_metrics(config: HubConfig) -> WorkerMetrics | None:
    """``[metrics]`` for a supervisor: the workers' directory, the broker's queues."""
    from hub.service import HubService
    from hub.workers import WorkerMetrics
    from routing.amqp import AmqpTransport

    if config.metrics is None:
        return None
    url = config.routing.transport
    queues = None
    if url.startswith(("amqp://", "amqps://")):
        # never started: reads only
        queues = AmqpTransport(url, HubService(config).topology, tls=config.routing.broker_tls())
    return WorkerMetrics(config.settings.home / "metrics", config.metrics.listen, queues)


def _adapter(registry: AdapterRegistry, spec: str) -> Adapter:
    try:
        return registry.get(spec)
    except AdapterError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _decode(hub: Hub, adapter: Adapter, payload: bytes, tenant: str) -> list[CanonicalMessage]:
    try:
        if isinstance(adapter, BatchAdapter):
            return adapter.decode_batch(payload, hub.decode_context(tenant))
        return [adapter.decode(payload, hub.decode_context(tenant))]
    except AdapterDecodeError as exc:
        answer = adapter.reject(exc, hub.encode_context(adapter, tenant))
        message = str(exc)
        if answer is not None:
            shown = answer.decode() if answer.startswith(b"<?xml") else answer.hex().upper()
            message += f"\nanswer on the wire: {shown}"
        raise CliError(message) from None


def _read_canonical(raw: bytes) -> list[CanonicalMessage]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CliError(f"canonical JSON: not JSON ({exc})") from None
    items = data if isinstance(data, list) else [data]
    try:
        return [from_dict(item) for item in items]
    except CanonicalJsonError as exc:
        raise CliError(f"canonical JSON: {exc}") from None


def _translate(args: argparse.Namespace, hub: Hub, stdin: BinaryIO, out: TextIO) -> None:
    raw = _read_input(args.input, stdin)
    source, target = args.source, args.target
    if source == CANONICAL_JSON:
        messages = _read_canonical(raw)
    else:
        payload = _from_hex(raw) if args.hex else raw
        messages = _decode(hub, _adapter(hub.registry, source), payload, args.tenant)
    if not messages:
        raise CliError("the input holds no message")
    if target == CANONICAL_JSON:
        if len(messages) == 1:
            out.write(to_json(messages[0], indent=2) + "\n")
        else:
            out.write(json.dumps([to_dict(m) for m in messages], indent=2) + "\n")
        return
    adapter = _adapter(hub.registry, target)
    context = hub.encode_context(adapter, messages[0].tenant)
    try:
        if len(messages) == 1:
            encoded = adapter.encode(messages[0], context)
        elif isinstance(adapter, BatchAdapter):
            encoded = adapter.encode_batch(messages, context)
        else:
            raise CliError(
                f"{target} writes one message at a time; the input holds {len(messages)}"
            )
    except AdapterError as exc:
        raise CliError(str(exc)) from None
    if args.hex:
        out.write(encoded.hex().upper() + "\n")
        return
    binary = getattr(out, "buffer", None)
    if binary is None:
        raise CliError("binary output needs a byte stream; use --hex", EXIT_USAGE)
    out.flush()
    binary.write(encoded)
    binary.flush()


def _inspect(
    args: argparse.Namespace, registry: AdapterRegistry, stdin: BinaryIO, out: TextIO
) -> None:
    raw = _read_input(args.input, stdin)
    payload = _from_hex(raw) if args.hex else raw
    adapter = _adapter(registry, args.source)
    if not isinstance(adapter, Inspectable):
        raise CliError(f"adapter {adapter.name!r} has no field-by-field view", EXIT_USAGE)
    views, error = adapter.describe(payload)
    for view in views:
        offset = "" if view.offset is None else f"@{view.offset:<5}"
        out.write(f"{view.field:>4} {offset} {view.description[:34]:<34} {view.value}\n")
    if error is not None:
        raise CliError(str(error))


def _validate(files: Sequence[str], out: TextIO) -> None:
    from adapters.iso20022.adapter import Iso20022Adapter

    adapter = Iso20022Adapter()
    failed = 0
    for path in files:
        try:
            with open(path, "rb") as handle:
                payload = handle.read()
        except OSError as exc:
            out.write(f"{path}: UNREADABLE {exc.strerror}\n")
            failed += 1
            continue
        report = adapter.validate(payload)
        kind = report.message_type or "unknown message"
        if report.ok:
            flagged = f" ({len(report.warnings)} warning(s))" if report.warnings else ""
            out.write(f"{path}: VALID {kind}{flagged}\n")
        else:
            failed += 1
            out.write(f"{path}: INVALID {kind} (reason code {report.reason_code})\n")
        for where, reason in report.problems:
            out.write(f"  error   {where}: {reason}\n")
        for where, reason in report.warnings:
            out.write(f"  warning {where}: {reason}\n")
    if failed:
        raise CliError(f"{failed} of {len(files)} file(s) failed validation")


def _list_adapters(registry: AdapterRegistry, out: TextIO) -> None:
    for name in registry.names():
        cls = registry.adapter_class(name)
        caps = registry.get(name).capabilities
        out.write(f"{name}\n")
        out.write(f"  variants:   {', '.join(cls.variants)}\n")
        out.write(f"  kinds:      {', '.join(sorted(k.value for k in caps.kinds))}\n")
        out.write(f"  functions:  {', '.join(sorted(f.value for f in caps.functions))}\n")
        out.write(f"  directions: {', '.join(sorted(d.value for d in caps.directions))}\n")
        out.write(f"  framings:   {', '.join(caps.framings) or '-'}\n")
        out.write(f"  clear PAN:  {'needed to encode' if caps.needs_clear_pan else 'never'}\n")
        out.write(f"  round trip: {caps.round_trip.value}\n")


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    hub: Hub | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the CLI; returns the exit status.

    ``hub`` defaults to one wired from the settings (:mod:`hub.config`, read from
    ``environ``), built only by the commands that need a vault.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = _parser().parse_args(argv)
    try:
        _configure_logging(environ, err)
    except CliError as exc:
        err.write(f"isobridge: {exc}\n")
        return exc.status

    def settings() -> Settings:
        try:
            return Settings.from_environment(
                environ, vault_url=args.vault_url, key_file=args.key_file
            )
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None

    def wired() -> Hub:
        nonlocal hub
        if hub is None:
            hub = Hub(default_registry(), open_vault(settings(), notes=err))
        return hub

    try:
        if args.command == "adapters":
            _list_adapters(default_registry() if hub is None else hub.registry, out)
        elif args.command == "translate":
            _translate(args, wired(), stdin or sys.stdin.buffer, out)
        elif args.command == "inspect":
            _inspect(
                args,
                default_registry() if hub is None else hub.registry,
                stdin or sys.stdin.buffer,
                out,
            )
        elif args.command == "validate":
            _validate(args.files, out)
        elif args.command == "schema":
            out.write(json.dumps(json_schema(), indent=2) + "\n")
        elif args.command == "run":
            if args.gateway is not None:
                return _run_with_gateway(
                    args.config,
                    args.gateway,
                    environ,
                    out,
                    err,
                    workers=args.workers,
                    worker=args.worker,
                )
            return _run(args.config, environ, out, err, workers=args.workers, worker=args.worker)
        elif args.command == "gateway":
            return run_gateway_command(args, environ, out, err)
        elif args.command == "demo":
            return _demo(args, out, hub)
        elif args.command == "vault":
            run_vault_command(args, settings, stdin or sys.stdin.buffer, out, err, hub)
        elif args.command == "routes":
            run_routes_command(args, wired, stdin or sys.stdin.buffer, out)
        elif args.command in ("copybook", "convert"):
            return run_copybook_command(args, out, err)
        elif args.command == "dlq":
            run_dlq_command(args, environ, out, err)
        elif args.command == "certs":
            run_certs_command(args, out)
        elif args.command == "mask":
            return run_mask_command(args, environ, out, err)
        elif args.command in JOURNAL_COMMANDS:
            run_journal_command(args, settings, out, err)
        elif args.command == SAGAS_COMMAND:
            run_sagas_command(args, settings, out, err)
        elif args.command == SCA_COMMAND:
            return run_sca_command(args, environ, out, err)
        elif args.command == KEYS_COMMAND:
            run_keys_command(args, settings, environ, out, err)
    except CliError as exc:
        err.write(f"isobridge: {exc}\n")
        return exc.status
    except (VaultError, OSError) as exc:
        err.write(f"isobridge: {exc}\n")
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
