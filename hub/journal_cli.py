"""``isobridge journal ...``, ``isobridge audit verify`` and ``isobridge trace ID``.

Commands::

    isobridge journal init [--checkpoint-every N]
                                         create or upgrade the journal's schema (and the
                                         master key file, unless the keys come from
                                         $ISOBRIDGE_MASTER_KEYS); N only before any event
    isobridge journal rebuild            verify the journal, then recompute the read model
                                         from the events; refused if the journal is not
                                         intact (``--unverified`` rebuilds anyway)
    isobridge journal checkpoint         sign a checkpoint of the chain head now
    isobridge journal shred --tenant T --yes
                                         destroy the tenant's journal key: its personal
                                         data is erased, the chain still verifies
    isobridge audit verify               check the hash chain and the signed checkpoints;
                                         exit 1 naming each edited, deleted, reordered or
                                         inserted event and each bad signature
    isobridge trace ID                   a transaction's path with timings; ID is the hub
                                         id, the RRN or end-to-end id, the UETR, or
                                         STAN@TERMINAL; exit 1 for an unknown id

Each takes ``--journal-url`` (default ``$ISOBRIDGE_JOURNAL_URL``, else the SQLite file in
the state directory). The master keys are the vault's (:mod:`hub.config`). A tampered
journal is reported, never repaired; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any, Final, TextIO

from sqlalchemy.exc import SQLAlchemyError

from hub.bootstrap import open_journal
from hub.cli_support import EXIT_USAGE, CliError, ProgressBar
from hub.config import Settings
from journal.keys import JournalKeyError
from journal.reading import CorruptEventError
from journal.store import Journal, JournalError
from journal.trace import format_trace

__all__ = ["JOURNAL_COMMANDS", "add_journal_commands", "run_journal_command"]

JOURNAL_COMMANDS: Final = frozenset({"journal", "audit", "trace"})
"""The top-level commands this module adds."""


def _journal_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal-url", help="journal database URL (default: $ISOBRIDGE_JOURNAL_URL or SQLite)"
    )


def add_journal_commands(commands: Any) -> None:
    """Add ``journal``, ``audit`` and ``trace`` to the top-level subparsers."""
    journal = commands.add_parser("journal", help="the event journal and its read model")
    actions = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create or upgrade the journal's schema")
    init.add_argument("--checkpoint-every", type=int, help="events between signed checkpoints")
    rebuild = actions.add_parser("rebuild", help="recompute the read model from the events")
    rebuild.add_argument(
        "--unverified", action="store_true", help="rebuild even if the journal is not intact"
    )
    checkpoint = actions.add_parser("checkpoint", help="sign a checkpoint of the chain head")
    shred = actions.add_parser("shred", help="erase a tenant's personal data (its key)")
    shred.add_argument("--tenant", required=True)
    shred.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    for parser in (init, rebuild, checkpoint, shred):
        _journal_url(parser)

    audit = commands.add_parser("audit", help="check the journal's integrity")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_actions.add_parser("verify", help="check the hash chain and the checkpoints")
    _journal_url(verify)

    trace = commands.add_parser("trace", help="a transaction's path with timings")
    trace.add_argument("id", metavar="ID", help="hub id, RRN / end-to-end id, UETR, STAN@TERMINAL")
    _journal_url(trace)


def run_journal_command(
    args: argparse.Namespace, settings: Callable[[], Settings], out: TextIO, err: TextIO
) -> None:
    """Run ``isobridge journal|audit|trace ...``."""

    def configured() -> Settings:
        base = settings()
        if args.journal_url:
            return dataclasses.replace(base, journal_url=args.journal_url)
        return base

    try:
        if args.command == "journal" and args.journal_command == "init":
            _init(configured(), args.checkpoint_every, out, err)
            return
        journal = open_journal(configured(), notes=err)
        try:
            _run(journal, args, out, err)
        finally:
            journal.close()
    except (JournalError, JournalKeyError, CorruptEventError) as exc:
        raise CliError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise CliError(f"journal database error: {type(exc).__name__}") from None


def _init(settings: Settings, every: int | None, out: TextIO, err: TextIO) -> None:
    journal = open_journal(settings, create=True, notes=err)
    try:
        if every is not None:
            journal.set_checkpoint_interval(every)
        out.write(f"journal ready: {settings.journal_url}\n")
    finally:
        journal.close()


def _run(journal: Journal, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    if args.command == "audit":
        _verify(journal, out, err)
    elif args.command == "trace":
        traces = journal.trace(args.id)
        if not traces:
            raise CliError(f"no transaction in the journal is known by {args.id!r}")
        out.write(format_trace(traces))
    elif args.journal_command == "rebuild":
        if not args.unverified:
            report = journal.verify(progress=ProgressBar("verify", err))
            first = report.first_problem
            if first is not None:
                raise CliError(
                    f"the journal is not intact (event {first.seq}: {first.kind}): the read "
                    "model was not rebuilt; see `isobridge audit verify`, or add --unverified"
                )
        count = journal.rebuild()
        out.write(f"read model rebuilt from the events: {count} transaction(s)\n")
    elif args.journal_command == "checkpoint":
        made = journal.checkpoint()
        if made is None:
            out.write("the chain head is checkpointed already\n")
        else:
            out.write(f"checkpoint signed at event {made.seq}: {made.hash}\n")
    elif args.journal_command == "shred":
        if not args.yes:
            raise CliError(
                f"shredding tenant {args.tenant!r} erases its personal data in the journal "
                "for good; add --yes to confirm",
                EXIT_USAGE,
            )
        destroyed = journal.shred_tenant(args.tenant)
        out.write(f"tenant {args.tenant!r}: {destroyed} journal key version(s) destroyed\n")


def _verify(journal: Journal, out: TextIO, err: TextIO) -> None:
    report = journal.verify(progress=ProgressBar("verify", err))
    out.write(
        f"checked {report.events_checked} event(s) and {report.checkpoints_checked} "
        f"checkpoint(s); chain head at {report.head_seq}\n"
    )
    if report.ok:
        out.write("journal intact\n")
        return
    for problem in report.problems:
        out.write(f"  {problem}\n")
    first = report.first_problem
    if first is None:
        raise RuntimeError("internal error: expected first is not None")
    raise CliError(
        f"the journal is not intact: {len(report.problems)} problem(s), the first at event "
        f"{first.seq} ({first.kind}); nothing was repaired"
    )
