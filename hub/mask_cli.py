"""``isobridge mask``: a masked, non-production copy of an ISO 8583, ISO 20022 or fixed-width
file (see :mod:`hub.masking`).

Command::

    isobridge mask IN OUT [--format iso8583|iso20022|fixedwidth]
        [--key-file F | --key random | --key env:NAME] [--key-version N]
        [--field NAME=RULE]... [--pan-keep-first N] [--progress]
        iso8583:    [--variant ascii] [--framing len2-binary|...|hex-lines]
        fixedwidth: --copybook X.cpy [--policy P.toml] [--record-format F] [--codepage CP]
                    [--record NAME] [--record-rule RECORD=CONDITION]...

The format is detected when not given: ``--copybook`` means fixed width, a file that starts
with ``<`` is ISO 20022, anything else an ISO 8583 capture (whose variant and framing are
never guessed: ``ascii`` and ``len2-binary`` unless given).

The key: by default the vault's master key (``--key-file``, ``$ISOBRIDGE_MASTER_KEYS`` or the
key file of the state directory; its current version unless ``--key-version``), from which
the masking key is derived for this purpose alone; ``--key random`` for a throwaway run
(consistent within the run only); ``--key env:NAME`` for a passphrase (16 characters or more)
in the environment variable NAME, to share a key between runs without the vault.

The output is written next to OUT and renamed into place once the whole input is masked: a
run that fails leaves no partial file. A failure names the file, the message or record (or
the line, for XML), the field and the byte offset, never a value. Exit status 1.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from hub.cli_support import EXIT_OK, EXIT_USAGE, CliError, ProgressBar
from hub.config import Settings
from hub.masking.values import Masker, MaskingError, MaskingKey, RecordMaskingError
from vault.errors import VaultError

__all__ = ["FORMATS", "add_mask_command", "detect_format", "run_mask_command"]

FORMATS = ("iso8583", "iso20022", "fixedwidth")


def add_mask_command(commands: Any) -> None:
    """Add ``mask`` to the top-level subparsers."""
    from adapters.fixedwidth.recordformat import RECORD_FORMATS
    from adapters.iso8583.specs import SPECS
    from hub.masking.iso8583 import FRAMINGS

    mask = commands.add_parser(
        "mask", help="a masked non-production copy of an ISO 8583, ISO 20022 or fixed-width file"
    )
    mask.add_argument("input", metavar="IN")
    mask.add_argument("output", metavar="OUT")
    mask.add_argument("--format", choices=FORMATS, help="default: detected")
    mask.add_argument("--key-file", default=argparse.SUPPRESS, help="the vault's master key file")
    mask.add_argument("--key", help="random (a throwaway key) or env:NAME (a passphrase)")
    mask.add_argument("--key-version", type=int, help="master key version (default: current)")
    mask.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME=RULE",
        help="rule of a field: keep, drop, pan, iban, account, id, name, text, date, binary",
    )
    mask.add_argument("--pan-keep-first", type=int, default=6, help="BIN digits kept (0-8)")
    mask.add_argument("--progress", action="store_true", help="progress bar even off a TTY")
    mask.add_argument("--variant", default="ascii", choices=sorted(SPECS), help="ISO 8583")
    mask.add_argument("--framing", default="len2-binary", choices=FRAMINGS, help="ISO 8583")
    mask.add_argument("--copybook", help="fixed width: copybook file or built-in layout")
    mask.add_argument("--policy", help="fixed width: TOML file of field rules")
    mask.add_argument("--record-format", default="F", choices=RECORD_FORMATS)
    mask.add_argument("--codepage", help="fixed width: cp037 (default), cp500, ... or ascii")
    mask.add_argument("--record", help="fixed width: the 01 level to use")
    mask.add_argument("--record-rule", action="append", default=[], metavar="RECORD=CONDITION")


def detect_format(path: str, copybook: str | None) -> str:
    """``fixedwidth`` with a copybook, ``iso20022`` for XML, else ``iso8583``."""
    if copybook:
        return "fixedwidth"
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return "iso20022" if head.lstrip().startswith(b"<") else "iso8583"


def _pairs(items: list[str], option: str = "--field") -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, rule = item.partition("=")
        if not sep or not name.strip() or not rule.strip():
            raise CliError(f"{option} takes NAME=VALUE, not {item!r}", EXIT_USAGE)
        pairs[name.strip()] = rule.strip()
    return pairs


def _key(args: argparse.Namespace, environ: Mapping[str, str] | None) -> MaskingKey:
    env = os.environ if environ is None else environ
    if args.key is not None:
        if args.key == "random":
            return MaskingKey.random()
        if args.key.startswith("env:"):
            name = args.key[4:]
            passphrase = env.get(name)
            if not passphrase:
                raise CliError(f"--key env:{name}: ${name} is not set", EXIT_USAGE)
            try:
                return MaskingKey.from_passphrase(passphrase)
            except MaskingError as exc:
                raise CliError(f"--key env:{name}: {exc}", EXIT_USAGE) from None
        raise CliError(
            "--key takes random or env:NAME (a key on the command line would show in ps)",
            EXIT_USAGE,
        )
    try:
        settings = Settings.from_environment(env, key_file=getattr(args, "key_file", None))
        provider = settings.key_provider(env)
        version = provider.current_version if args.key_version is None else args.key_version
        return MaskingKey.from_master(provider.master_key(version))
    except (VaultError, ValueError) as exc:
        raise CliError(
            f"no masking key: {exc} (or --key random for a throwaway run)", EXIT_USAGE
        ) from None


def run_mask_command(
    args: argparse.Namespace, environ: Mapping[str, str] | None, stdout: TextIO, stderr: TextIO
) -> int:
    """Run ``mask``; returns the exit status (CliError on failure)."""
    source_path, target_path = Path(args.input), Path(args.output)
    if not source_path.is_file():
        raise CliError(f"cannot read {args.input}: no such file")
    if target_path.exists() and target_path.resolve() == source_path.resolve():
        raise CliError("OUT is IN: masking writes a copy", EXIT_USAGE)
    fields = _pairs(args.field)
    fmt = args.format or detect_format(args.input, args.copybook)
    try:
        masker = Masker(_key(args, environ), pan_keep_first=args.pan_keep_first)
    except MaskingError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    run = _runner(fmt, args, masker, fields)
    total = source_path.stat().st_size
    show = args.progress or stderr.isatty()
    bar = ProgressBar(f"mask {source_path.name}", stderr) if show else None
    progress: Callable[[int], None] | None = None
    if bar is not None:
        progress = lambda done: bar(min(done, total), total)  # noqa: E731
    partial = target_path.with_name(target_path.name + ".partial")
    try:
        with source_path.open("rb") as source, partial.open("wb") as sink:
            count, unit = run(source, sink, progress)
        partial.replace(target_path)
    except RecordMaskingError as exc:
        raise CliError(f"{args.input}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    if bar is not None:
        bar(total, total)
    stderr.write(f"isobridge: {count} {unit} masked ({fmt}) -> {args.output}\n")
    return EXIT_OK


_Run = Callable[[BinaryIO, BinaryIO, Callable[[int], None] | None], tuple[int, str]]


def _runner(fmt: str, args: argparse.Namespace, masker: Masker, fields: dict[str, str]) -> _Run:
    try:
        if fmt == "iso8583":
            from hub.masking.iso8583 import Iso8583Masker

            captures = Iso8583Masker(
                masker, variant=args.variant, framing=args.framing, rules=fields
            )
            return lambda source, sink, progress: (
                captures.mask_stream(source, sink, progress),
                "messages",
            )
        if fmt == "iso20022":
            from hub.masking.iso20022 import Iso20022Masker

            documents = Iso20022Masker(masker, rules=fields)
            return lambda source, sink, progress: (
                documents.mask_stream(source, sink, progress),
                "values",
            )
        return _fixed_width_runner(args, masker, fields)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _fixed_width_runner(args: argparse.Namespace, masker: Masker, fields: dict[str, str]) -> _Run:
    from adapters.fixedwidth import CopybookSyntaxError, layout_names, load_copybook, load_layout
    from hub.masking.fixedwidth import FixedWidthMasker, load_policy

    if not args.copybook:
        raise CliError("fixed width needs --copybook", EXIT_USAGE)
    try:
        policy = load_policy(args.policy) if args.policy else {}
    except OSError as exc:
        raise CliError(f"cannot read {args.policy}: {exc.strerror}", EXIT_USAGE) from None
    policy.update({name.upper(): rule for name, rule in fields.items()})
    options: dict[str, Any] = {"codepage": args.codepage or "cp037"}
    if args.record_rule:
        rules = _pairs(args.record_rule, "--record-rule")
        options["record_rules"] = {name.upper(): rule.upper() for name, rule in rules.items()}
    try:
        if not Path(args.copybook).exists() and args.copybook in layout_names():
            book = load_layout(args.copybook, **options)
        else:
            book = load_copybook(args.copybook, **options)
    except CopybookSyntaxError as exc:
        raise CliError(str(exc)) from None
    except (KeyError, OSError) as exc:
        raise CliError(f"--copybook {args.copybook}: {exc}", EXIT_USAGE) from None
    records = FixedWidthMasker(masker, book, policy=policy, record=args.record)
    return lambda source, sink, progress: (
        records.mask_stream(source, sink, args.record_format, progress),
        "records",
    )
