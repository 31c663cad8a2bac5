"""``isobridge sagas list | show ID | retry ID``: where each saga stands, and re-arming one.

Commands::

    isobridge sagas list [--phase P] [--limit N] [--json]
                                  the sagas, most recently changed first: id, saga, phase,
                                  step, attempts, when it is next due (a waiting step's
                                  timeout, a failed step's next attempt), outcome
    isobridge sagas show ID       one saga: where it stands, its last error, its answers
                                  (signals) and its history (the journal's events)
    isobridge sagas retry ID      re-arm a stuck saga: one that needs attention runs its
                                  step again with fresh attempts; one that waits acts on
                                  its timeout now. Recorded in the journal with who asked

Each takes ``--journal-url`` (default ``$ISOBRIDGE_JOURNAL_URL``, else the SQLite file in
the state directory): sagas live in the journal's database (:mod:`hub.sagas.store`). An
unknown id or a saga that cannot be retried is a message naming it, exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import getpass
import json
from collections.abc import Callable
from typing import Any, Final, TextIO

from sqlalchemy.exc import SQLAlchemyError

from hub.bootstrap import open_journal
from hub.cli_support import CliError
from hub.config import Settings
from hub.sagas.store import Phase, SagaError, SagaRecord, SagaStore
from journal.keys import JournalKeyError
from journal.store import JournalError

__all__ = ["SAGAS_COMMAND", "add_sagas_commands", "run_sagas_command"]

SAGAS_COMMAND: Final = "sagas"


def add_sagas_commands(commands: Any) -> None:
    """Add ``sagas list|show|retry`` to the top-level subparsers."""
    sagas = commands.add_parser("sagas", help="payment sagas: where each stands, retry")
    actions = sagas.add_subparsers(dest="sagas_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the sagas, most recently changed first")
    listing.add_argument(
        "--phase", choices=[phase.value for phase in Phase], help="only sagas in this phase"
    )
    listing.add_argument("--limit", type=int, default=50, help="at most N sagas (default 50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = actions.add_parser("show", help="one saga: state, answers, history")
    show.add_argument("id", metavar="ID")
    retry = actions.add_parser("retry", help="re-arm a stuck saga's step")
    retry.add_argument("id", metavar="ID")
    for parser in (listing, show, retry):
        parser.add_argument(
            "--journal-url",
            help="journal database URL (default: $ISOBRIDGE_JOURNAL_URL or SQLite)",
        )


def run_sagas_command(
    args: argparse.Namespace, settings: Callable[[], Settings], out: TextIO, err: TextIO
) -> None:
    """Run ``isobridge sagas ...``."""
    base = settings()
    if args.journal_url:
        base = dataclasses.replace(base, journal_url=args.journal_url)
    try:
        journal = open_journal(base, notes=err)
        try:
            store = SagaStore(journal)
            if args.sagas_command == "list":
                _list(store, args, out)
            elif args.sagas_command == "show":
                _show(store, args.id, out)
            else:
                _retry(store, args.id, out)
        finally:
            journal.close()
    except (JournalError, JournalKeyError, SagaError) as exc:
        raise CliError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise CliError(f"journal database error: {type(exc).__name__}") from None


def _time(value: dt.datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def next_due(record: SagaRecord) -> dt.datetime | None:
    """When the saga does something next on its own: a waiting step's timeout, a failed
    step's next attempt; ``None`` when finished or stopped for attention."""
    if record.phase is Phase.WAITING:
        return record.deadline
    if record.phase in (Phase.ACTIVE, Phase.COMPENSATING):
        return record.next_at
    return None


def _as_json(record: SagaRecord) -> dict[str, Any]:
    return {
        "saga_id": record.saga_id,
        "tenant": record.tenant,
        "saga": record.definition,
        "phase": record.phase.value,
        "step": record.step,
        "attempts": record.attempts,
        "next": _time(next_due(record)) if next_due(record) else None,
        "outcome": record.outcome,
        "status": record.data.get("status"),
        "last_error": record.last_error,
        "updated_at": _time(record.updated_at),
    }


def _list(store: SagaStore, args: argparse.Namespace, out: TextIO) -> None:
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}")
    phases = [Phase(args.phase)] if args.phase else None
    records = store.sagas(phases=phases, limit=args.limit)
    if args.json:
        for record in records:
            out.write(json.dumps(_as_json(record), sort_keys=True) + "\n")
        return
    if not records:
        out.write("no sagas\n")
        return
    out.write(
        f"{'SAGA':<28} {'KIND':<26} {'PHASE':<12} {'STEP':<14} {'TRIES':>5} {'NEXT':<20} OUTCOME\n"
    )
    for record in records:
        out.write(
            f"{record.saga_id[:28]:<28} {record.definition[:26]:<26} {record.phase.value:<12} "
            f"{record.step[:14]:<14} {record.attempts:>5} {_time(next_due(record)):<20} "
            f"{record.outcome or '-'}\n"
        )
    counts = store.counts()
    out.write(
        "phases: " + ", ".join(f"{phase} {count}" for phase, count in sorted(counts.items())) + "\n"
    )


def _show(store: SagaStore, saga_id: str, out: TextIO) -> None:
    record = store.get(saga_id)
    if record is None:
        raise CliError(f"no saga {saga_id!r} in the journal")
    lines = [
        f"saga {record.saga_id} ({record.definition}), tenant {record.tenant}",
        f"  phase {record.phase.value}  step {record.step}  attempts {record.attempts}",
        f"  next {_time(next_due(record))}  outcome {record.outcome or '-'}  "
        f"status {record.data.get('status') or '-'}",
    ]
    if record.lease_owner:
        lines.append(f"  worked on by {record.lease_owner} until {_time(record.lease_until)}")
    if record.last_error:
        lines.append(f"  last error: {record.last_error}")
    ids = [f"end-to-end {record.end_to_end_id}"] if record.end_to_end_id else []
    ids += [f"UETR {record.uetr}"] if record.uetr else []
    if ids:
        lines.append("  " + "  ".join(ids))
    values = ", ".join(f"{key}={value}" for key, value in sorted(record.values.items()))
    if values:
        lines.append(f"  values: {values}")
    signals = store.signals(saga_id)
    if signals:
        lines.append("answers:")
        for signal in signals:
            lines.append(
                f"  {_time(signal.received_at)}  {signal.signal:<10} {signal.state.value:<9} "
                f"{signal.key}"
            )
    lines.append("history:")
    for event in store.history(saga_id):
        body = {key: value for key, value in event.body.items() if key != "saga"}
        lines.append(
            f"  {event.seq:>6}  {_time(event.at)}  {event.kind.value:<15} "
            + json.dumps(body, sort_keys=True, separators=(",", ":"))
        )
    out.write("\n".join(lines) + "\n")


def _retry(store: SagaStore, saga_id: str, out: TextIO) -> None:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    record = store.retry(saga_id, by=f"cli:{login}")
    out.write(
        f"saga {record.saga_id}: step {record.step} re-armed ({record.phase.value}); "
        "a running hub picks it up now\n"
    )
