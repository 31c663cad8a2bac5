"""``python -m mainframe_sim``: run, seed, query and misbehave the simulated mainframe.

Commands::

    serve    [--port 7070] [--framing len2|len4|cics] [--admin-port 7071] [--mq amqp://...]
             [--faults "latency=exp:20ms drop=0.05"]   TCP server (+ admin port, + MQ pair)
             [--tls-cert F --tls-key F [--tls-client-ca F]]   TLS 1.3, client certificates
                                                              from the CA required
    seed                                               create the seeded accounts
    balance  ACCOUNT                                   ledger and available balance
    extract  --date YYYY-MM-DD --out FILE              end-of-day statement extract (FB 120)
    faults   [--admin HOST:PORT] set NAME=VALUE... | clear | show | status

Every command takes ``--db URL`` (SQLAlchemy URL; default ``$MAINFRAME_SIM_DB``, else
``sqlite:///mainframe_sim.db`` in the current directory). ``serve`` seeds an empty database;
with ``--tls-cert`` it listens with TLS 1.3 only (and with ``--tls-client-ca``, mutual TLS:
a client without a certificate from that CA is refused and the refusal logged), and SIGHUP
reloads the certificate, key and CA from their files.
Exit status 0 on success, 1 on a refused or failed command, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TextIO

from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.mq import DEFAULT_REPLY_QUEUE, DEFAULT_REQUEST_QUEUE, MqResponder
from mainframe_sim.records import Records
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import FRAMINGS, MainframeServer
from mainframe_sim.statement import write_statement
from mainframe_sim.tls import server_context

__all__ = ["DEFAULT_DB", "main"]

DEFAULT_DB = "sqlite:///mainframe_sim.db"
"""The database when neither ``--db`` nor ``$MAINFRAME_SIM_DB`` says otherwise."""


class _CommandError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mainframe_sim",
        description="A simulated core banking mainframe: EBCDIC fixed-width records over TCP "
        "and RabbitMQ, a double-entry ledger, fault injection.",
    )
    parser.add_argument("--db", help=f"SQLAlchemy URL of the ledger (default {DEFAULT_DB})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the TCP server (and admin port, MQ pair)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=7070, help="TCP port (0: any free one)")
    serve.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="len2",
        help="len2/len4: binary length header; cics: 4-char tran id + record",
    )
    serve.add_argument("--codepage", default="cp037", help="EBCDIC code page of the records")
    serve.add_argument("--tran-id", default="CBRQ", help="CICS transaction id (--framing cics)")
    serve.add_argument("--admin-port", type=int, help="line-based admin port (faults, status)")
    serve.add_argument("--mq", metavar="AMQP_URL", help="also serve a RabbitMQ queue pair")
    serve.add_argument("--request-queue", default=DEFAULT_REQUEST_QUEUE, help="MQ request queue")
    serve.add_argument("--reply-queue", default=DEFAULT_REPLY_QUEUE)
    serve.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum",
                       help="type of the MQ queues (default quorum)")  # fmt: skip
    serve.add_argument("--faults", default="", help='initial faults, e.g. "latency=exp:20ms"')
    serve.add_argument("--fault-seed", type=int, help="seed of the fault draws (repeatable)")
    serve.add_argument("--tls-cert", help="TLS 1.3: the server's certificate (PEM)")
    serve.add_argument("--tls-key", help="TLS 1.3: its private key (PEM)")
    serve.add_argument(
        "--tls-client-ca", help="mutual TLS: clients need a certificate from this CA"
    )

    commands.add_parser("seed", help="create the seeded accounts (idempotent)")

    balance = commands.add_parser("balance", help="show an account's balances")
    balance.add_argument("account")

    extract = commands.add_parser("extract", help="write the end-of-day statement extract")
    extract.add_argument("--date", required=True, help="booking date, YYYY-MM-DD")
    extract.add_argument("--out", required=True, help="output file")
    extract.add_argument("--codepage", default="cp037")

    faults = commands.add_parser("faults", help="set or show faults through the admin port")
    faults.add_argument("--admin", default="127.0.0.1:7071", help="HOST:PORT of the admin port")
    faults.add_argument("action", choices=["set", "clear", "show", "status"])
    faults.add_argument("settings", nargs="*", metavar="NAME=VALUE")
    return parser


def _open(args: argparse.Namespace, environ: Mapping[str, str]) -> Ledger:
    url = args.db or environ.get("MAINFRAME_SIM_DB") or DEFAULT_DB
    try:
        return Ledger.open(url)
    except Exception as exc:
        raise _CommandError(f"cannot open the ledger {url}: {exc}") from None


def _money(minor: int) -> str:
    return f"{Decimal(minor).scaleb(-2):,}"


def _balance(ledger: Ledger, number: str, out: TextIO) -> None:
    account = ledger.account(number)
    if account is None or account.kind != "customer":
        raise _CommandError(f"no account {number}")
    out.write(
        f"{account.number} {account.name} ({account.status})\n"
        f"ledger balance:    {_money(account.ledger_balance)} {account.currency}\n"
        f"available balance: {_money(account.available)} {account.currency}\n"
        f"overdraft limit:   {_money(account.overdraft_limit)} {account.currency}\n"
    )


def _extract(ledger: Ledger, args: argparse.Namespace, out: TextIO) -> None:
    try:
        date = dt.date.fromisoformat(args.date)
    except ValueError:
        raise _CommandError(f"--date {args.date!r} is not YYYY-MM-DD", 2) from None
    records = Records(args.codepage)
    try:
        with open(args.out, "wb") as handle:
            totals = write_statement(ledger, records, date, handle)
    except OSError as exc:
        raise _CommandError(f"cannot write {args.out}: {exc.strerror}") from None
    out.write(f"{args.out}: {totals.accounts} accounts, {totals.details} entries on {date}\n")


def _admin(address: str, line: str) -> str:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=10) as sock:
            sock.sendall(line.encode() + b"\nquit\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except (OSError, ValueError) as exc:
        raise _CommandError(f"cannot reach the admin port {address}: {exc}") from None
    return answer.decode().strip()


def _faults(args: argparse.Namespace, out: TextIO) -> None:
    if args.action == "set":
        if not args.settings:
            raise _CommandError("faults set needs NAME=VALUE settings", 2)
        line = "faults set " + " ".join(args.settings)
    else:
        line = {"clear": "faults clear", "show": "faults", "status": "status"}[args.action]
    answer = _admin(args.admin, line)
    out.write(answer + "\n")
    if not answer.startswith("ok"):
        raise _CommandError("the admin port refused the command")


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The listener's TLS context from ``--tls-*``, or None; errors name the option."""
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise _CommandError("--tls-client-ca needs --tls-cert and --tls-key", 2)
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise _CommandError("--tls-cert and --tls-key go together", 2)
    for option, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key),
                         ("--tls-client-ca", args.tls_client_ca)):  # fmt: skip
        if path is not None and not os.path.isfile(path):
            raise _CommandError(f"{option}: no such file: {path}", 2)
    try:
        return server_context(args.tls_cert, args.tls_key, args.tls_client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise _CommandError(
            f"--tls-cert / --tls-key / --tls-client-ca: cannot use them: {exc}", 2
        ) from None


def _reload_tls(server: MainframeServer, args: argparse.Namespace, out: TextIO) -> None:
    try:
        context = _tls_context(args)
    except _CommandError as exc:
        out.write(f"mainframe_sim: TLS certificates not reloaded: {exc}\n")
    else:
        if context is not None:
            server.use_tls_context(context)
            out.write("mainframe_sim: TLS certificates reloaded\n")
    out.flush()


async def _serve(ledger: Ledger, args: argparse.Namespace, out: TextIO) -> None:
    try:
        plan = FaultPlan.parse(args.faults)
    except ValueError as exc:
        raise _CommandError(f"--faults: {exc}", 2) from None
    faults = Faults(plan, seed=args.fault_seed)
    tls = _tls_context(args)
    server = MainframeServer(ledger, framing=args.framing, codepage=args.codepage, faults=faults,
                             tran_id=args.tran_id, tls=tls)  # fmt: skip
    responder: MqResponder | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    if tls is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, _reload_tls, server, args, out)
    try:
        host, port = await server.start(args.host, args.port)
        security = ""
        if tls is not None:
            security = ", TLS 1.3" + (
                ", client certificates required" if args.tls_client_ca else ""
            )
        out.write(f"mainframe_sim: {args.framing} on {host}:{port}{security}, faults: {plan}\n")
        if args.admin_port is not None:
            admin_host, admin_port = await server.start_admin(args.host, args.admin_port)
            out.write(f"mainframe_sim: admin on {admin_host}:{admin_port}\n")
        if args.mq:
            responder = MqResponder(ledger, args.mq, request_queue=args.request_queue,
                                    reply_queue=args.reply_queue, records=server.records,
                                    faults=faults, queue_type=args.queue_type)  # fmt: skip
            responder.start()
            out.write(f"mainframe_sim: MQ {args.request_queue} -> {args.reply_queue}\n")
        out.flush()
        await stop.wait()
    except OSError as exc:
        raise _CommandError(f"cannot listen: {exc.strerror}") from None
    finally:
        if responder is not None:
            await asyncio.to_thread(responder.stop)
        await server.close()


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the command line; the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        if args.command == "faults":
            _faults(args, out)
            return 0
        ledger = _open(args, env)
        try:
            if args.command == "seed":
                created = seed_ledger(ledger)
                out.write(f"seeded {created} accounts ({len(ledger.accounts())} in all)\n")
            elif args.command == "balance":
                _balance(ledger, args.account, out)
            elif args.command == "extract":
                _extract(ledger, args, out)
            else:
                if ledger.is_empty():
                    seed_ledger(ledger)
                if not logging.getLogger().handlers:
                    # Refused TLS handshakes and the like reach the operator on stderr.
                    logging.basicConfig(
                        stream=err, level=logging.WARNING, format="mainframe_sim: %(message)s"
                    )
                asyncio.run(_serve(ledger, args, out))
        finally:
            ledger.close()
    except _CommandError as exc:
        err.write(f"mainframe_sim: {exc}\n")
        return exc.status
    return 0
