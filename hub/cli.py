"""The ``isobridge`` command line.

Commands::

    isobridge adapters                      list adapters, variants and capabilities
    isobridge translate --from A --to B     translate one message (file or stdin)
    isobridge inspect --from A              show a wire message field by field, PAN masked
    isobridge schema canonical              print the canonical JSON Schema
    isobridge demo                          translate sample messages and show each step

``A`` and ``B`` are an adapter (``iso8583``, ``iso8583:ebcdic-cp037``) or ``canonical-json``.
Binary input is read raw, or as hex text with ``--hex`` (binary output is then hex too).
Bad input gets a message naming the field and the byte offset, exit status 1; for an ISO 8583
request the response that the hub would send back (field 39 = 30) is shown as well.
"""

from __future__ import annotations

import argparse
import binascii
import json
import sys
from collections.abc import Sequence
from typing import BinaryIO, TextIO

from adapters.base import (
    Adapter,
    AdapterDecodeError,
    AdapterError,
    Inspectable,
)
from adapters.registry import AdapterRegistry, default_registry
from canonical_model.json_form import CanonicalJsonError, from_json, json_schema, to_json
from canonical_model.messages import CanonicalMessage
from hub.bootstrap import Hub, build_hub

__all__ = ["CANONICAL_JSON", "main"]

CANONICAL_JSON = "canonical-json"
EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report on stderr with an exit status; never carries the payload."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isobridge",
        description="ISO 8583 / ISO 20022 adapter hub",
    )
    parser.add_argument("--tenant", default="default", help="tenant id (default: default)")
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

    schema = commands.add_parser("schema", help="print a JSON Schema")
    schema.add_argument("which", choices=["canonical"])

    demo = commands.add_parser("demo", help="translate sample messages and show each step")
    demo.add_argument("--variant", action="append", help="ISO 8583 variant(s) to show")
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


def _adapter(registry: AdapterRegistry, spec: str) -> Adapter:
    try:
        return registry.get(spec)
    except AdapterError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _decode(hub: Hub, adapter: Adapter, payload: bytes, tenant: str) -> CanonicalMessage:
    try:
        return adapter.decode(payload, hub.decode_context(tenant))
    except AdapterDecodeError as exc:
        answer = adapter.reject(exc, hub.encode_context(adapter, tenant))
        message = str(exc)
        if answer is not None:
            message += f"\nanswer on the wire: {answer.hex().upper()}"
        raise CliError(message) from None


def _translate(args: argparse.Namespace, hub: Hub, stdin: BinaryIO, out: TextIO) -> None:
    raw = _read_input(args.input, stdin)
    source, target = args.source, args.target
    if source == CANONICAL_JSON:
        try:
            message = from_json(raw)
        except CanonicalJsonError as exc:
            raise CliError(f"canonical JSON: {exc}") from None
    else:
        payload = _from_hex(raw) if args.hex else raw
        message = _decode(hub, _adapter(hub.registry, source), payload, args.tenant)
    if target == CANONICAL_JSON:
        out.write(to_json(message, indent=2) + "\n")
        return
    adapter = _adapter(hub.registry, target)
    try:
        encoded = adapter.encode(message, hub.encode_context(adapter, message.tenant))
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


def _inspect(args: argparse.Namespace, hub: Hub, stdin: BinaryIO, out: TextIO) -> None:
    raw = _read_input(args.input, stdin)
    payload = _from_hex(raw) if args.hex else raw
    adapter = _adapter(hub.registry, args.source)
    if not isinstance(adapter, Inspectable):
        raise CliError(f"adapter {adapter.name!r} has no field-by-field view", EXIT_USAGE)
    views, error = adapter.describe(payload)
    for view in views:
        offset = "" if view.offset is None else f"@{view.offset:<5}"
        out.write(f"{view.field:>4} {offset} {view.description[:34]:<34} {view.value}\n")
    if error is not None:
        raise CliError(str(error))


def _list_adapters(hub: Hub, out: TextIO) -> None:
    for name in hub.registry.names():
        cls = hub.registry.adapter_class(name)
        caps = hub.registry.get(name).capabilities
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
) -> int:
    """Run the CLI; returns the exit status. ``hub`` defaults to :func:`build_hub`'s."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = _parser().parse_args(argv)
    hub = hub or build_hub(default_registry())
    try:
        if args.command == "adapters":
            _list_adapters(hub, out)
        elif args.command == "translate":
            _translate(args, hub, stdin or sys.stdin.buffer, out)
        elif args.command == "inspect":
            _inspect(args, hub, stdin or sys.stdin.buffer, out)
        elif args.command == "schema":
            out.write(json.dumps(json_schema(), indent=2) + "\n")
        elif args.command == "demo":
            from hub.demo import run_demo

            run_demo(hub, out, variants=args.variant)
    except CliError as exc:
        err.write(f"isobridge: {exc}\n")
        return exc.status
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
