"""``isobridge sca ...``: strong customer authentication of the gateway's built-in server.

Commands::

    isobridge sca enrol PSU --config hub.toml --gateway gateway.toml
                                    a new TOTP secret for the PSU (replacing any earlier
                                    one); prints the otpauth:// URI for the PSU's
                                    authenticator app (show it as a QR code)
    isobridge sca unlock PSU --config hub.toml --gateway gateway.toml
                                    forget the PSU's failed attempts (lift a lockout)

The secret is kept in the gateway's database (``[gateway] database``, default
``<home>/gateway.db``), encrypted under the hub's master keys (``ISOBRIDGE_MASTER_KEYS`` or
the key file: the keys of the vault and the journal; with the embedded default they are
made on first use, with the vault, as the hub would). The URI holds the secret: hand it to
the PSU only.
Parameters of new enrolments come from ``[gateway.sca]`` (:mod:`hub.gateway_config`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from hub.cli_support import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE
from hub.config_file import ConfigError, load_config

__all__ = ["SCA_COMMAND", "add_sca_commands", "run_sca_command"]

SCA_COMMAND: Final = "sca"


def add_sca_commands(commands: Any) -> None:
    """Add ``sca`` and its subcommands to the top-level subparsers."""
    sca = commands.add_parser(
        SCA_COMMAND, help="strong customer authentication: enrol PSUs (TOTP), lift lockouts"
    )
    actions = sca.add_subparsers(dest="sca_command", required=True, metavar="ACTION")
    for name, text in (
        ("enrol", "a new TOTP secret for a PSU: prints the otpauth:// URI"),
        ("unlock", "forget a PSU's failed attempts"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("psu", metavar="PSU")
        action.add_argument("--config", required=True, help="hub.toml (state directory, keys)")
        action.add_argument("--gateway", required=True, help="gateway.toml ([gateway.sca])")


def run_sca_command(
    args: argparse.Namespace, environ: Mapping[str, str] | None, out: TextIO, err: TextIO
) -> int:
    """``isobridge sca ...``: the exit status."""
    from gateway.security.sca import SecondFactor, mask_psu
    from hub.bootstrap import open_vault
    from hub.gateway_cli import open_gateway_database
    from hub.gateway_config import load_gateway_config

    try:
        hub_config = load_config(Path(args.config), environ)
        config = load_gateway_config(Path(args.gateway))
    except ConfigError as exc:
        err.write(f"isobridge: {exc}\n")
        return EXIT_USAGE
    psu = args.psu
    if psu not in config.directory.psus():
        err.write(f"isobridge: psu: {psu!r} holds no account in {args.gateway}\n")
        return EXIT_BAD_INPUT
    settings = hub_config.settings
    if not settings.keys_from_environment and not settings.key_file.exists():
        # the embedded default's first use, as the hub would meet it: keys and vault together
        open_vault(settings, notes=err).close()
    engine = open_gateway_database(hub_config, config)
    try:
        second_factor = SecondFactor(engine, settings.key_provider(environ), config.sca)
        if args.sca_command == "enrol":
            enrolment = second_factor.enrol(psu)
            out.write(f"{enrolment.uri}\n")
            err.write(
                f"isobridge: PSU {mask_psu(psu)} enrolled ({enrolment.parameters.digits} digits,"
                f" {enrolment.parameters.step} s, {enrolment.parameters.algorithm}); the URI"
                " holds the secret: give it to the PSU only\n"
            )
        else:
            forgotten = second_factor.unlock(psu)
            out.write(f"{forgotten} failed attempt(s) of PSU {mask_psu(psu)} forgotten\n")
    finally:
        engine.dispose()
    return EXIT_OK
