"""``isobridge dlq ...``: look at, replay and purge dead-lettered (parked) messages.

Commands::

    isobridge dlq list   -d DEST [filters] [--limit N] [--json]
                                        parked messages, oldest first, with their reason
    isobridge dlq show   -d DEST ID     one parked message: reason, origin, headers, body
    isobridge dlq replay -d DEST [filters] [--limit N] [--dry-run]
                                        back to the original exchange and routing key; a
                                        replay that fails again is parked again
    isobridge dlq purge  -d DEST [filters] [--limit N] (--dry-run | --yes)
                                        delete for good

``DEST`` is a destination name (its queue ``<prefix>.DEST.dlq``) or ``unroutable``; repeat
``-d`` for several. Filters: ``--id ID`` (repeatable), ``--reason TEXT`` (substring, any
case), ``--kind KIND``, ``--tenant T``, ``--routing-key KEY``, ``--since`` / ``--before``
(ISO 8601 time of parking). The broker is ``--transport-url`` or ``$ISOBRIDGE_TRANSPORT_URL``
(``amqp://user:password@host:5672/vhost``, or ``amqps://`` with ``--tls-ca FILE``, and
``--tls-cert FILE --tls-key FILE`` where the broker requires a client certificate, keys as in
``[routing.tls]``); the tools declare nothing, they use the topology that the hub declared
(``--prefix``, default ``isobridge``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from hub.cli_support import EXIT_USAGE, CliError
from routing.dlq import (
    DeadLetterFilter,
    list_dead_letters,
    purge_dead_letters,
    replay_dead_letters,
)
from routing.transport import (
    DeadLetter,
    Destination,
    RoutingError,
    Topology,
    Transport,
    open_transport,
)
from routing.wire import scrub

if TYPE_CHECKING:
    from routing.amqps import BrokerTls

__all__ = ["TRANSPORT_URL_ENV", "add_dlq_commands", "run_dlq_command"]

TRANSPORT_URL_ENV = "ISOBRIDGE_TRANSPORT_URL"


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", dest="ids", action="append", default=[], metavar="ID")
    parser.add_argument("--reason", help="reason contains TEXT (any case)", metavar="TEXT")
    parser.add_argument("--kind", help="message kind (financial, credit_transfer, ...)")
    parser.add_argument("--tenant")
    parser.add_argument("--routing-key", help="original routing key")
    parser.add_argument("--since", type=_time, help="parked at or after (ISO 8601)")
    parser.add_argument("--before", type=_time, help="parked before (ISO 8601)")
    parser.add_argument("--limit", type=int, help="at most N messages")


def _destinations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d",
        "--destination",
        dest="destinations",
        action="append",
        required=True,
        metavar="DEST",
        help="destination name, or 'unroutable' (repeatable)",
    )


def _time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _broker_tls(args: argparse.Namespace) -> BrokerTls | None:
    """The ``--tls-*`` options as the transport's TLS settings (None: none given)."""
    if args.tls_ca is None:
        if args.tls_cert or args.tls_key or args.tls_server_name:
            raise CliError("--tls-cert, --tls-key and --tls-server-name need --tls-ca", EXIT_USAGE)
        return None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together (mutual TLS)", EXIT_USAGE)
    from hub.tls import client_context
    from routing.amqps import BrokerTls

    try:
        context = client_context(args.tls_ca, args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(
            f"--tls-ca / --tls-cert / --tls-key: cannot use these files: {exc}"
        ) from None
    return BrokerTls(context, args.tls_server_name)


def add_dlq_commands(commands: Any) -> None:
    """Add ``dlq`` and its subcommands to the top-level subparsers."""
    dlq = commands.add_parser("dlq", help="list, show, replay and purge dead-lettered messages")
    dlq.add_argument("--transport-url", help=f"broker URL (default: ${TRANSPORT_URL_ENV})")
    dlq.add_argument("--prefix", default="isobridge", help="topology prefix (default: isobridge)")
    dlq.add_argument(
        "--tls-ca", metavar="FILE", help="amqps://: the CA of the broker's certificate"
    )
    dlq.add_argument("--tls-cert", metavar="FILE", help="amqps://: the client certificate")
    dlq.add_argument("--tls-key", metavar="FILE", help="amqps://: its key")
    dlq.add_argument("--tls-server-name", metavar="NAME", help="amqps://: default the host")
    dlq.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="keep retrying the broker this long (default: 10)",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="parked messages with their reason")
    _destinations(listing)
    _add_filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    show = actions.add_parser("show", help="one parked message in full")
    _destinations(show)
    show.add_argument("message_id", metavar="ID")
    replay = actions.add_parser("replay", help="back to the original exchange and routing key")
    _destinations(replay)
    _add_filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="say what, change nothing")
    purge = actions.add_parser("purge", help="delete parked messages for good")
    _destinations(purge)
    _add_filters(purge)
    purge.add_argument("--dry-run", action="store_true", help="say what, change nothing")
    purge.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")


def _topology(prefix: str, names: Sequence[str]) -> Topology:
    destinations = tuple(Destination(n, ()) for n in dict.fromkeys(names) if n != "unroutable")
    return Topology(
        destinations,
        exchange=f"{prefix}.canonical",
        dead_letter_exchange=f"{prefix}.dlx",
        prefix=prefix,
    )


def _filter(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(
        message_ids=frozenset(args.ids),
        reason_contains=args.reason,
        kind=args.kind,
        tenant=args.tenant,
        routing_key=args.routing_key,
        since=args.since,
        before=args.before,
    )


def _summary(dead: DeadLetter) -> dict[str, object]:
    return {
        "message_id": dead.message_id,
        "destination": dead.destination,
        "attempts": dead.attempts,
        "dead_lettered_at": dead.dead_lettered_at,
        "original_exchange": dead.original_exchange,
        "original_routing_key": dead.original_routing_key,
        "reason": dead.reason,
    }


def _table(rows: Sequence[DeadLetter], out: TextIO) -> None:
    if not rows:
        return
    out.write(
        f"{'MESSAGE ID':<36} {'DEST':<12} {'TRIES':>5} {'PARKED AT':<29} ROUTING KEY / REASON\n"
    )
    for dead in rows:
        out.write(
            f"{dead.message_id:<36} {dead.destination:<12} {dead.attempts:>5}"
            f" {dead.dead_lettered_at or '-':<29} {dead.original_routing_key}: {dead.reason}\n"
        )


def run_dlq_command(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None,
    out: TextIO,
    err: TextIO,
    transport: Transport | None = None,
) -> None:
    """Run ``isobridge dlq <action>``; ``transport`` (tests) replaces the URL's transport."""
    env = os.environ if environ is None else environ
    action = args.dlq_command
    if action == "purge" and not (args.dry_run or args.yes):
        raise CliError("purge deletes for good: add --yes (or --dry-run to see what)", EXIT_USAGE)
    owned = transport is None
    if transport is None:
        url = args.transport_url or env.get(TRANSPORT_URL_ENV)
        if not url or url.startswith("memory:"):
            raise CliError(
                "the dlq commands need the broker: --transport-url amqp://... or"
                f" ${TRANSPORT_URL_ENV} (memory:// keeps dead letters inside the hub process)",
                EXIT_USAGE,
            )
        options: dict[str, object] = {"declare": False}
        tls = _broker_tls(args)
        if tls is not None:
            options["tls"] = tls
        try:
            transport = open_transport(url, _topology(args.prefix, args.destinations), **options)
            transport.start(timeout=args.connect_timeout)
        except RoutingError as exc:
            raise CliError(str(exc)) from None
    try:
        for name in dict.fromkeys(args.destinations):
            _run_one(action, args, transport, name, out, err)
    except RoutingError as exc:
        raise CliError(str(exc)) from None
    finally:
        if owned:
            transport.close()


def _run_one(
    action: str,
    args: argparse.Namespace,
    transport: Transport,
    name: str,
    out: TextIO,
    err: TextIO,
) -> None:
    if action == "list":
        rows = list_dead_letters(transport, name, _filter(args), args.limit)
        if args.json:
            for dead in rows:
                out.write(json.dumps(_summary(dead)) + "\n")
        else:
            _table(rows, out)
            err.write(f"{len(rows)} parked message(s) on {name}\n")
    elif action == "show":
        found = list_dead_letters(
            transport, name, DeadLetterFilter(frozenset({args.message_id})), 1
        )
        if not found:
            raise CliError(f"no parked message with id {args.message_id!r} on {name}")
        dead = found[0]
        details = _summary(dead)
        details["headers"] = {k: _plain(v) for k, v in dead.envelope.headers.items()}
        details["correlation_id"] = dead.envelope.correlation_id
        details["reply_to"] = dead.envelope.reply_to
        body_text = scrub(dead.envelope.body.decode("utf-8", "replace"))
        try:
            details["body"] = json.loads(body_text)
        except ValueError:
            details["body"] = body_text
        out.write(json.dumps(details, indent=2, default=str) + "\n")
    elif action in ("replay", "purge"):
        run: Callable[..., list[DeadLetter]] = (
            replay_dead_letters if action == "replay" else purge_dead_letters
        )
        done = run(transport, name, _filter(args), dry_run=args.dry_run, limit=args.limit)
        verb = {"replay": "replayed", "purge": "purged"}[action]
        if args.dry_run:
            verb = f"would {action}"
        _table(done, out)
        out.write(
            f"{verb} {len(done)} message(s) from {name} (filter: {_filter(args).describe()})\n"
        )


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return scrub(value) if isinstance(value, str) else value
