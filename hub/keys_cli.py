"""``isobridge keys ...``: the key rotation schedules (:mod:`hub.rotation`) from the shell.

Commands::

    isobridge keys status [--config hub.toml] [--gateway gateway.toml]
        every active key: family, scope (tenant), key id, age, uses, the policy and when it
        is due next (a rotation failing in a running hub or gateway shows in its log, its
        metrics and the gateway's /readyz)
    isobridge keys rotate FAMILY [--tenant T] [--config hub.toml] [--gateway gateway.toml]
        rotate now, as the scheduler would (audited in the journal, logged): ``vault.data``
        or ``journal.tenant`` (every tenant, or ``--tenant``), ``authserver.signing`` (with
        ``--gateway``: the built-in authorization server's key, pre-published ``[keys]
        jwks_prepublish`` seconds before it signs)

The vault is that of ``--config`` (else of the environment, :mod:`hub.config`); the policies
are ``--config``'s ``[keys]``. The signing keys are in the gateway's database, named by
``--gateway`` (``gateway.toml``). A rotation that cannot complete exits with status 1 and
says why; the current key stays in use.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from hub.bootstrap import open_journal, open_vault
from hub.cli_support import EXIT_USAGE, CliError
from hub.config import Settings
from hub.config_file import ConfigError, HubConfig, load_config
from hub.rotation import (
    FAMILIES,
    JournalTenantKeys,
    KeyFamily,
    KeysConfig,
    KeyStatus,
    RotationScheduler,
    SigningKeys,
    VaultDataKeys,
)
from vault.errors import VaultError

__all__ = ["KEYS_COMMAND", "add_keys_commands", "format_duration", "run_keys_command"]

KEYS_COMMAND = "keys"


def add_keys_commands(commands: Any) -> None:
    """Add ``keys status`` and ``keys rotate`` to the top-level subparsers."""
    keys = commands.add_parser("keys", help="key rotation schedules: status, rotate now")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name, text in (
        ("status", "active keys, their age and uses, when each is due"),
        ("rotate", "rotate a key family now"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", help="hub.toml: the vault, the journal, [keys]")
        action.add_argument("--gateway", help="gateway.toml: the authorization server's keys")
        if name == "rotate":
            action.add_argument("family", choices=FAMILIES, metavar="FAMILY")
            action.add_argument("--tenant", help="vault.data, journal.tenant: only this tenant")


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest two units.

    >>> format_duration(93784), format_duration(59), format_duration(3600)
    ('1d 2h', '59s', '1h 0m')
    """
    whole = int(seconds)
    for size, unit, smaller, small_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // smaller}{small_unit}"
    return f"{whole}s"


def run_keys_command(
    args: argparse.Namespace,
    settings: Callable[[], Settings],
    environ: Mapping[str, str] | None,
    out: TextIO,
    err: TextIO,
) -> None:
    """Run ``isobridge keys <action>``."""
    closers: list[Callable[[], None]] = []
    try:
        config = load_config(Path(args.config), environ) if args.config else None
        hub_settings = config.settings if config is not None else settings()
        keys = config.keys if config is not None else KeysConfig()
        families = _families(args, config, hub_settings, keys, err, closers)
        # after the vault: the embedded default sets a new vault up only before its key file
        journal = open_journal(hub_settings, notes=err)
        closers.append(journal.close)
        if getattr(args, "family", None) in (None, "journal.tenant"):
            families.append(JournalTenantKeys(journal))
        if args.keys_command == "status":
            _status(RotationScheduler(families, keys), out)
            return
        scheduler = RotationScheduler(
            families,
            keys,
            journal=journal,
            audit_tenant=config.tenant if config is not None else "default",
        )
        try:
            results = scheduler.rotate_family(args.family, scope=args.tenant)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if not results:
            out.write(f"{args.family}: no key to rotate\n")
        failed = 0
        for result in results:
            scope = f" {result.scope}" if result.scope else ""
            if result.outcome == "failed":
                failed += 1
                out.write(
                    f"{result.family}{scope}: rotation failed, key {result.old_key} stays in "
                    f"use: {result.error}\n"
                )
            elif result.outcome == "skipped":
                out.write(f"{result.family}{scope}: rotated by another process meanwhile\n")
            else:
                out.write(f"{result.family}{scope}: {result.old_key} -> {result.new_key}\n")
        if failed:
            raise CliError(f"{failed} rotation(s) failed; the current keys stay in use")
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    finally:
        for close in reversed(closers):
            close()


def _families(
    args: argparse.Namespace,
    config: HubConfig | None,
    settings: Settings,
    keys: KeysConfig,
    err: TextIO,
    closers: list[Callable[[], None]],
) -> list[KeyFamily]:
    wanted = getattr(args, "family", None)
    families: list[KeyFamily] = []
    if wanted in (None, "vault.data"):
        try:
            vault = open_vault(settings, notes=err)
        except VaultError as exc:
            if wanted is not None:
                raise
            err.write(f"isobridge: vault.data not shown: {exc}\n")
        else:
            closers.append(vault.close)
            families.append(VaultDataKeys(vault))
    if args.gateway is not None:
        families.append(_signing_keys(args.gateway, config, keys, closers))
    elif wanted == "authserver.signing":
        raise CliError("authserver.signing: name the gateway's configuration with --gateway")
    return families


def _signing_keys(
    path: str, config: HubConfig | None, keys: KeysConfig, closers: list[Callable[[], None]]
) -> SigningKeys:
    from gateway.consents import ConsentStore
    from gateway.security.authserver import AuthorizationServer
    from gateway.security.authstate import AuthorizationState
    from hub.gateway_cli import open_gateway_database
    from hub.gateway_config import load_gateway_config

    gateway = load_gateway_config(Path(path))
    if gateway.issuer.jwks_url is not None:
        raise CliError(
            f"{path}: [issuer] jwks_url names an outside issuer; its keys are rotated there"
        )
    hub_config = config if config is not None else load_config(None)
    engine = open_gateway_database(hub_config, gateway)
    closers.append(engine.dispose)
    server = AuthorizationServer(
        issuer=gateway.issuer.issuer,
        audience=gateway.issuer.audience,
        clients=gateway.clients,
        consents=ConsentStore(engine),
        directory=gateway.directory,
        state=AuthorizationState(engine),
        algorithm=gateway.issuer.algorithm,
    )
    return SigningKeys(server, prepublish=keys.jwks_prepublish)


def _status(scheduler: RotationScheduler, out: TextIO) -> None:
    rows = [("FAMILY", "SCOPE", "KEY", "AGE", "USES", "POLICY", "NEXT DUE")]
    now = scheduler.clock()
    for status in scheduler.status():
        rows.append(
            (
                status.key.family,
                status.key.scope or "-",
                status.key.key_id,
                format_duration(status.age),
                str(status.key.uses),
                _policy_text(status),
                _next_due_text(status, now),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            + "\n"
        )
    if len(rows) == 1:
        out.write("no keys yet\n")


def _policy_text(status: KeyStatus) -> str:
    policy = status.policy
    if policy is None:
        return "none"
    parts = []
    if policy.max_age is not None:
        parts.append(f"age {format_duration(policy.max_age)}")
    if policy.max_uses is not None:
        parts.append(f"{policy.max_uses} uses")
    return ", ".join(parts)


def _next_due_text(status: KeyStatus, now: float) -> str:
    policy = status.policy
    if policy is None:
        return "-"
    if policy.due(age=status.age, uses=status.key.uses) is not None:
        return "now"
    parts = []
    if status.next_due is not None:
        when = dt.datetime.fromtimestamp(status.next_due, dt.UTC)
        parts.append(f"{when:%Y-%m-%d %H:%M} UTC (in {format_duration(status.next_due - now)})")
    if policy.max_uses is not None:
        parts.append(f"after {policy.max_uses - status.key.uses} more uses")
    return " or ".join(parts)
