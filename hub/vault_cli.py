"""``isobridge vault ...``: set up, inspect and operate the tokenization vault.

Commands::

    isobridge vault new-master-keys            print a fresh master key as the value of
                                               $ISOBRIDGE_MASTER_KEYS (containers, CI)
    isobridge vault init                       create the master key file (unless the keys
                                               come from $ISOBRIDGE_MASTER_KEYS) and create
                                               or upgrade the database schema
    isobridge vault stats                      tokens, key versions, audit counts per tenant
    isobridge vault tokenize --tenant T        card numbers from stdin (one a line) -> tokens
    isobridge vault detokenize --tenant T --purpose P TOKEN...
                                               clear card numbers; audited, as operator
                                               ``cli:<user>`` (``--caller`` to name another)
    isobridge vault rotate [--tenant T]        new data key version, re-encrypt the rows
                       [--retire]              then retire versions no row uses
    isobridge vault rotate --master            new master key version (key file), re-wrap
                                               every tenant key under it
    isobridge vault verify                     decrypt every row; exit 1 if any fails
    isobridge vault purge-expired              delete tokens past their time to live
    isobridge vault shred --tenant T --yes     destroy a tenant's keys and tokens

The database and keys are those of :mod:`hub.config` (``--vault-url``, ``--key-file``).
Progress of long operations goes to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
from collections.abc import Callable
from typing import Any, BinaryIO, TextIO

from canonical_model.pan import PanToken
from hub.bootstrap import Hub, open_vault
from hub.cli_support import EXIT_USAGE, CliError, ProgressBar
from hub.config import Settings
from vault.keys import EnvKeyProvider, FileKeyProvider
from vault.policy import Caller
from vault.sql import SqlVault

__all__ = ["add_vault_commands", "run_vault_command"]


def add_vault_commands(commands: Any) -> None:
    """Add ``vault`` and its subcommands to the top-level subparsers."""
    vault = commands.add_parser("vault", help="set up, inspect and operate the vault")
    actions = vault.add_subparsers(dest="vault_command", required=True, metavar="ACTION")
    actions.add_parser("init", help="create keys and the database schema")
    actions.add_parser(
        "new-master-keys", help="print a new master key for $ISOBRIDGE_MASTER_KEYS (no vault)"
    )
    actions.add_parser("stats", help="tokens, key versions and audit counts per tenant")
    tokenize = actions.add_parser("tokenize", help="card numbers from stdin to tokens")
    tokenize.add_argument("--tenant", required=True)
    detokenize = actions.add_parser("detokenize", help="tokens to card numbers (audited)")
    detokenize.add_argument("--tenant", required=True)
    detokenize.add_argument("--purpose", required=True, help="why (kept in the audit)")
    detokenize.add_argument("--caller", help="who asks (default: cli:<login name>)")
    detokenize.add_argument("tokens", nargs="+", metavar="TOKEN")
    rotate = actions.add_parser("rotate", help="rotate data keys (or the master key)")
    rotate.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    rotate.add_argument("--retire", action="store_true", help="then retire unused versions")
    rotate.add_argument("--master", action="store_true", help="new master key, re-wrap keys")
    rotate.add_argument("--batch-size", type=int, default=500)
    actions.add_parser("verify", help="decrypt every row with the current keys")
    actions.add_parser("purge-expired", help="delete tokens past their time to live")
    shred = actions.add_parser("shred", help="destroy a tenant's keys and tokens")
    shred.add_argument("--tenant", required=True)
    shred.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")


def run_vault_command(
    args: argparse.Namespace,
    settings: Callable[[], Settings],
    stdin: BinaryIO,
    out: TextIO,
    err: TextIO,
    hub: Hub | None,
) -> None:
    """Run ``isobridge vault <action>``."""
    action = args.vault_command
    if action == "init":
        _init(settings(), out, err)
        return
    if action == "new-master-keys":
        out.write(EnvKeyProvider.format({1: secrets.token_bytes(32)}) + "\n")
        return
    if hub is not None and isinstance(hub.vault, SqlVault):
        vault = hub.vault
    else:
        vault = open_vault(settings(), notes=err)
    if action == "stats":
        _stats(vault, out)
    elif action == "tokenize":
        pans = [line.strip() for line in stdin.read().decode("ascii", "replace").splitlines()]
        for token in vault.tokenize_many([p for p in pans if p], tenant=args.tenant):
            out.write(token.value + "\n")
        vault.flush_key_uses()  # the uses of the data key, for its rotation policy
    elif action == "detokenize":
        _detokenize(vault, args, out)
    elif action == "rotate":
        _rotate(vault, settings(), args, out, err)
    elif action == "verify":
        report = vault.verify(progress=ProgressBar("verify", err))
        out.write(f"{report.rows_checked} rows checked, {len(report.failures)} failed\n")
        for tenant, masked, reason in report.failures:
            out.write(f"  {tenant} {masked}: {reason}\n")
        if not report.ok:
            raise CliError(f"{len(report.failures)} row(s) do not decrypt with the current keys")
    elif action == "purge-expired":
        out.write(f"{vault.purge_expired()} expired token(s) deleted\n")
    elif action == "shred":
        if not args.yes:
            raise CliError(
                f"shredding tenant {args.tenant!r} destroys its keys and tokens for good; "
                "add --yes to confirm",
                EXIT_USAGE,
            )
        out.write(f"tenant {args.tenant!r} shredded: {vault.shred_tenant(args.tenant)} token(s)\n")


def _init(settings: Settings, out: TextIO, err: TextIO) -> None:
    existed = settings.keys_from_environment or settings.key_file.exists()
    vault = open_vault(settings, create=True, notes=err)
    try:
        keys = "$ISOBRIDGE_MASTER_KEYS" if settings.keys_from_environment else settings.key_file
        out.write(f"vault ready: {settings.vault_url}\n")
        out.write(f"master keys: {keys}{' (existing)' if existed else ' (new)'}\n")
        out.write(f"token mode:  {settings.token_mode}\n")
    finally:
        vault.close()


def _stats(vault: SqlVault, out: TextIO) -> None:
    tenants = vault.stats()
    if not tenants:
        out.write("no tenants yet\n")
    for item in tenants:
        versions = ", ".join(
            f"v{v} {state} ({item.rows_by_key_version.get(v, 0)} rows)"
            for v, state in sorted(item.key_versions.items())
        )
        out.write(f"{item.tenant}\n")
        out.write(f"  tokens:          {item.tokens} ({item.expired} expired)\n")
        out.write(f"  data keys:       {versions}\n")
        out.write(f"  master versions: {', '.join(map(str, item.master_versions))}\n")
        out.write(
            f"  detokenizations: {item.detokenizations_granted} granted, "
            f"{item.detokenizations_refused} refused\n"
        )


def _detokenize(vault: SqlVault, args: argparse.Namespace, out: TextIO) -> None:
    identity = args.caller or f"cli:{getpass.getuser()}"
    tokens = []
    for position, value in enumerate(args.tokens, start=1):
        try:
            tokens.append(PanToken(value))
        except ValueError as exc:
            # The value is not echoed: it may be a card number.
            raise CliError(f"TOKEN {position} is not a token: {exc}") from None
    clear = vault.detokenize_many(
        tokens,
        tenant=args.tenant,
        purpose=args.purpose,
        caller=Caller(identity, frozenset({"operator"})),
    )
    for pan in clear:
        out.write(pan + "\n")


def _rotate(
    vault: SqlVault, settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO
) -> None:
    if args.master:
        if settings.keys_from_environment:
            raise CliError(
                "the master keys come from $ISOBRIDGE_MASTER_KEYS: add the new version there "
                "(keep the old one), then run `isobridge vault rotate --master` with a key file "
                "or re-run this to re-wrap",
                EXIT_USAGE,
            )
        provider = FileKeyProvider(settings.key_file)
        version = provider.add_version()
        vault.keys = provider
        count = vault.rewrap(progress=ProgressBar("re-wrap", err))
        out.write(f"master key version {version}: {count} tenant key(s) re-wrapped\n")
        return
    tenants = args.tenant or vault.tenants()
    for tenant in tenants:
        report = vault.rotate(
            tenant, batch_size=args.batch_size, progress=ProgressBar(f"rotate {tenant}", err)
        )
        out.write(
            f"{tenant}: data key version {report.new_version}, "
            f"{report.rows_reencrypted} row(s) re-encrypted\n"
        )
        if args.retire:
            retired = vault.retire_old_keys(tenant)
            out.write(f"{tenant}: retired version(s) {', '.join(map(str, retired)) or 'none'}\n")
