"""``isobridge certs dev``: a throwaway CA and certificates for the demo and for trying TLS.

Commands::

    isobridge certs dev [--out DIR] [--host NAME]... [--days N] [--force]

It writes, in ``DIR`` (default ``dev-certs``), the CA (``ca.crt``, ``ca.key``) and each
certificate of :data:`hub.certs.DEV_CERTIFICATES` with its key (mode 0600), then prints the
configuration that uses them. Server certificates name ``localhost``, ``127.0.0.1`` and each
``--host``. A directory that already holds a CA is left alone unless ``--force``: replacing a
CA silently would break every certificate it signed. These certificates are for a demo and
tests only; README ("TLS") shows how to configure a bank's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from hub.certs import create_dev_certificates
from hub.cli_support import EXIT_USAGE, CliError

__all__ = ["add_certs_commands", "run_certs_command"]


def add_certs_commands(commands: Any) -> None:
    """Add ``certs`` and its subcommands to the top-level subparsers."""
    certs = commands.add_parser("certs", help="TLS certificates (a throwaway dev CA)")
    actions = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    dev = actions.add_parser("dev", help="create a throwaway CA and certificates (demo, tests)")
    dev.add_argument("--out", default="dev-certs", help="directory to write (default dev-certs)")
    dev.add_argument(
        "--host",
        action="append",
        default=[],
        help="another name or address for the server certificates (repeatable)",
    )
    dev.add_argument("--days", type=int, default=30, help="validity in days (default 30)")
    dev.add_argument("--force", action="store_true", help="replace a CA already in --out")


def run_certs_command(args: argparse.Namespace, out: TextIO) -> None:
    """Run ``certs dev``; :class:`hub.cli_support.CliError` when it cannot."""
    directory = Path(args.out)
    if not 1 <= args.days <= 3650:
        raise CliError(f"--days {args.days}: between 1 and 3650", EXIT_USAGE)
    if (directory / "ca.key").exists() and not args.force:
        raise CliError(
            f"--out {directory}: already holds a CA (ca.key); --force replaces it", EXIT_USAGE
        )
    if directory.exists() and not directory.is_dir():
        raise CliError(f"--out {directory}: not a directory", EXIT_USAGE)
    made = create_dev_certificates(directory, hosts=args.host, days=args.days)
    out.write(f"a throwaway CA and certificates, valid {args.days} days (not for production):\n")
    out.write(f"  {made.ca.cert}  (the CA; its key {made.ca.key})\n")
    for files in made.leaves.values():
        out.write(f"  {files.cert}  {files.key}\n")
    d = directory.resolve()
    out.write(
        f"""
# hub.toml
[[listeners]]
name = "pos-tls"
port = 8583
[listeners.tls]
cert = "{d}/hub-edge.crt"
key = "{d}/hub-edge.key"
client_ca = "{d}/ca.crt"

[mainframe]
port = 7070
[mainframe.tls]
ca = "{d}/ca.crt"
cert = "{d}/hub-client.crt"
key = "{d}/hub-client.key"
server_name = "localhost"

# gateway.toml
[gateway.tls]
cert = "{d}/gateway.crt"
key = "{d}/gateway.key"
client_ca = "{d}/ca.crt"

# the simulated mainframe
#   python -m mainframe_sim serve --port 7070 --tls-cert {d}/mainframe.crt \\
#       --tls-key {d}/mainframe.key --tls-client-ca {d}/ca.crt
# acquirers present {d}/acquirer.crt, TPPs {d}/tpp.crt (each with its key)
"""
    )
