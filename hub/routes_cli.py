"""``isobridge routes ...``: check a route rules file, and explain where a message goes.

Commands::

    isobridge routes check FILE                 load and check the rules (routing.rules);
                                                print them, or the error (exit status 1)
    isobridge routes explain --rules FILE MESSAGE
                                                which rule matches the message and why; for
                                                each rule before it, the condition that failed
                         [--from ADAPTER[:VARIANT]] [--hex]
                                                MESSAGE is a wire message to decode first
                                                (through the vault, like ``translate``);
                                                without --from it is canonical JSON

MESSAGE is a file, or ``-`` for stdin; canonical JSON may hold one message or an array. The
explanation ends with the route and the message's ordering key (:mod:`routing.ordering`).
"""

from __future__ import annotations

import argparse
import binascii
import json
from collections.abc import Callable
from typing import Any, BinaryIO, TextIO

from adapters.base import AdapterDecodeError, AdapterError, BatchAdapter
from canonical_model.json_form import CanonicalJsonError, from_dict
from canonical_model.messages import CanonicalMessage
from hub.bootstrap import Hub
from hub.cli_support import EXIT_USAGE, CliError
from routing.ordering import ordering_key
from routing.rules import RouteRulesError, RouteTable, RuleSet, compile_rules, load_rules

__all__ = ["add_routes_commands", "run_routes_command"]


def add_routes_commands(commands: Any) -> None:
    """Add ``routes`` and its subcommands to the top-level subparsers."""
    routes = commands.add_parser("routes", help="check route rules, explain a message's route")
    actions = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="load and check a rules file")
    check.add_argument("file", metavar="FILE")
    explain = actions.add_parser("explain", help="which rule matches a message, and why")
    explain.add_argument("--rules", required=True, metavar="FILE", help="the rules file")
    explain.add_argument(
        "--from", dest="source", metavar="ADAPTER", help="decode MESSAGE with this adapter"
    )
    explain.add_argument("--hex", action="store_true", help="MESSAGE is hex text (with --from)")
    explain.add_argument("message", metavar="MESSAGE", help="file to read, - for stdin")


def run_routes_command(
    args: argparse.Namespace, wired: Callable[[], Hub], stdin: BinaryIO, out: TextIO
) -> None:
    """Run ``isobridge routes <action>``; ``wired`` gives the hub (only to decode with
    ``--from``)."""
    if args.routes_command == "check":
        _check(_load(args.file), out)
        return
    table = compile_rules(_load(args.rules))
    raw = _read(args.message, stdin)
    if args.source is None:
        if args.hex:
            raise CliError("--hex needs --from ADAPTER (canonical JSON is text)", EXIT_USAGE)
        messages = _canonical(raw)
    else:
        messages = _decoded(wired(), args.source, _unhex(raw) if args.hex else raw, args.tenant)
    if not messages:
        raise CliError("the input holds no message")
    for position, message in enumerate(messages):
        if position:
            out.write("\n")
        _explain(table, message, out)


def _load(path: str) -> RuleSet:
    try:
        return load_rules(path)
    except RouteRulesError as exc:
        raise CliError(str(exc)) from None


def _check(rules: RuleSet, out: TextIO) -> None:
    fallback = rules.fallback
    after = (
        f"-> {fallback.destination}"
        if fallback.destination
        else f"dead-letter ({fallback.dead_letter})"
    )
    out.write(
        f"{rules.source}: OK, {len(rules.rules)} rule(s), BINs of {rules.token_bin_digits} digits\n"
    )
    width = max((len(rule.name) for rule in rules.rules), default=0)
    to_width = max((len(rule.destination) for rule in rules.rules), default=0)
    for index, rule in enumerate(rules.rules, start=1):
        conditions = []
        for key, values in (
            ("kind", [k.value for k in rule.kinds]),
            ("function", [f.value for f in rule.functions]),
            ("tenant", list(rule.tenants)),
            ("bin", [str(b) for b in rule.bins]),
            ("processing_code", list(rule.processing_codes)),
            ("currency", list(rule.currencies)),
        ):
            if values:
                conditions.append(f"{key}={','.join(values)}")
        if rule.amount is not None:
            band = rule.amount
            low = "" if band.minimum is None else str(band.minimum)
            high = "" if band.maximum is None else str(band.maximum)
            conditions.append(f"amount={low}..{high} {band.currency}")
        shown = " ".join(conditions) or "(every message)"
        out.write(f"  {index:>3} {rule.name:<{width}} -> {rule.destination:<{to_width}}  {shown}\n")
    out.write(f"  fallback {after}\n")


def _read(path: str, stdin: BinaryIO) -> bytes:
    if path == "-":
        return stdin.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _unhex(raw: bytes) -> bytes:
    try:
        return binascii.unhexlify(b"".join(raw.split()))
    except (binascii.Error, ValueError):
        raise CliError("--hex input is not hexadecimal") from None


def _canonical(raw: bytes) -> list[CanonicalMessage]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CliError(
            f"canonical JSON: not JSON ({exc}); for a wire message add --from ADAPTER"
        ) from None
    items = data if isinstance(data, list) else [data]
    try:
        return [from_dict(item) for item in items]
    except CanonicalJsonError as exc:
        raise CliError(f"canonical JSON: {exc}") from None


def _decoded(hub: Hub, spec: str, payload: bytes, tenant: str) -> list[CanonicalMessage]:
    try:
        adapter = hub.registry.get(spec)
    except AdapterError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    context = hub.decode_context(tenant)
    try:
        if isinstance(adapter, BatchAdapter):
            return adapter.decode_batch(payload, context)
        return [adapter.decode(payload, context)]
    except AdapterDecodeError as exc:
        raise CliError(str(exc)) from None


def _explain(table: RouteTable, message: CanonicalMessage, out: TextIO) -> None:
    explanation = table.explain(message)
    out.write(
        f"message {message.ids.message_id}: {message.kind.value} {message.function.value}, "
        f"tenant {message.tenant}\n"
    )
    out.write(str(explanation) + "\n")
    route = explanation.route
    if route.destination is None:
        out.write(f"route: dead-letter ({route.reason})\n")
    else:
        by = f"rule {route.rule!r}" if route.rule else "fallback"
        out.write(f"route: {route.destination} ({by})\n")
    out.write(f"ordering key: {ordering_key(message) or '(none: any consumer)'}\n")
