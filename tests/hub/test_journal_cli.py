"""``isobridge journal ...``, ``isobridge audit verify`` and ``isobridge trace`` on a real
SQLite journal in the test's state directory, keyed by the vault's master key file."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, text, update

from hub.bootstrap import open_journal
from hub.cli import main
from hub.config import Settings
from journal.schema import EVENTS
from journal.store import Journal
from tests.journal.factories import credit_transfer, mixed_run
from tests.support import postgres_url

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def journal(isolated_hub_home: Path) -> Journal:
    """The hub's journal after ``journal init --checkpoint-every 4`` and 18 events."""
    status, out, err = run("journal", "init", "--checkpoint-every", "4")
    assert status == 0, err
    assert out == f"journal ready: sqlite:///{isolated_hub_home / 'journal.db'}\n"
    assert err == f"isobridge: created master key file {isolated_hub_home / 'master-keys.json'}\n"
    opened = open_journal(Settings.from_environment())
    opened.record(list(mixed_run(4)))
    return opened


def test_init_is_idempotent_and_keeps_the_interval(journal: Journal) -> None:
    assert run("journal", "init") == (0, f"journal ready: {journal.engine.url}\n", "")
    status, _, err = run("journal", "init", "--checkpoint-every", "10")
    assert status == 1
    assert "the journal has 18 events and checkpoints every 4" in err


def test_verify_an_intact_journal(journal: Journal) -> None:
    status, out, err = run("audit", "verify")
    assert status == 0, err
    assert out == "checked 18 event(s) and 4 checkpoint(s); chain head at 18\njournal intact\n"
    assert "verify [" in err  # progress on stderr


def test_verify_names_the_tampered_event_and_repairs_nothing(journal: Journal) -> None:
    with journal.engine.begin() as connection:
        connection.execute(update(EVENTS).where(EVENTS.c.seq == 7).values(body='{"x":1}'))
        connection.execute(delete(EVENTS).where(EVENTS.c.seq == 11))
    status, out, err = run("audit", "verify")
    assert status == 1
    assert out.splitlines() == [
        "checked 17 event(s) and 4 checkpoint(s); chain head at 18",
        "  event 7: edited: its columns no longer match its hash",
        "  event 11: deleted: missing from the journal",
    ]
    assert err.splitlines()[-1] == (
        "isobridge: the journal is not intact: 2 problem(s), the first at event 7 (edited); "
        "nothing was repaired"
    )
    assert run("audit", "verify")[1] == out


def test_rebuild_reproduces_the_read_model(journal: Journal) -> None:
    live = journal.transactions()
    status, out, _ = run("journal", "rebuild")
    assert (status, out) == (0, "read model rebuilt from the events: 4 transaction(s)\n")
    assert journal.transactions() == live


def test_rebuild_refuses_a_tampered_journal_unless_told(journal: Journal) -> None:
    live = journal.transactions()
    with journal.engine.begin() as connection:
        connection.execute(
            update(EVENTS).where(EVENTS.c.seq == 5).values(body='{"status":"forged"}')
        )
    status, out, err = run("journal", "rebuild")
    assert (status, out) == (1, "")
    assert err.splitlines()[-1] == (
        "isobridge: the journal is not intact (event 5: edited): the read model was not "
        "rebuilt; see `isobridge audit verify`, or add --unverified"
    )
    assert journal.transactions() == live
    assert run("journal", "rebuild", "--unverified")[0] == 0
    assert journal.transactions() != live


def test_trace_by_rrn_and_by_stan_at_terminal(journal: Journal) -> None:
    status, out, _ = run("trace", "633300000002")
    assert status == 0
    assert out.splitlines()[0] == "transaction hub-0002"
    assert "status reversed (TECH)" in out.splitlines()[1]
    assert out.splitlines()[-1] == "  4 events over 30010.0 ms"
    assert run("trace", "000002@TERM0001")[1] == out


def test_trace_of_an_unknown_id_says_so(journal: Journal) -> None:
    assert run("trace", "nothing-like-it") == (
        1, "", "isobridge: no transaction in the journal is known by 'nothing-like-it'\n",
    )  # fmt: skip


def test_shred_needs_confirmation_then_erases_and_the_chain_verifies(journal: Journal) -> None:
    status, _, err = run("journal", "shred", "--tenant", "acme")
    assert status == 2
    assert "add --yes to confirm" in err
    assert run("journal", "shred", "--tenant", "acme", "--yes") == (
        0, "tenant 'acme': 1 journal key version(s) destroyed\n", "",
    )  # fmt: skip
    assert "personal: erased" in run("trace", "hub-0002")[1]
    assert run("audit", "verify")[0] == 0


def test_checkpoint_on_demand(journal: Journal) -> None:
    status, out, _ = run("journal", "checkpoint")
    assert status == 0
    assert out.startswith("checkpoint signed at event 18: ")
    assert run("journal", "checkpoint")[1] == "the chain head is checkpointed already\n"
    assert "5 checkpoint(s)" in run("audit", "verify")[1]


def test_journal_url_flag_and_variable(
    journal: Journal, tmp_path: Path, isolated_hub_home: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    status, _, err = run("audit", "verify", "--journal-url", other)
    assert status == 1
    assert "no journal schema" in err
    assert "run `isobridge journal init`" in err
    assert run("journal", "init", "--journal-url", other)[0] == 0
    settings = Settings.from_environment({"ISOBRIDGE_HOME": str(isolated_hub_home),
                                          "ISOBRIDGE_JOURNAL_URL": other})  # fmt: skip
    assert settings.journal_url == other
    assert not settings.journal_embedded
    elsewhere = open_journal(settings)
    elsewhere.record(credit_transfer(5))
    elsewhere.close()
    assert run("trace", "hub-0005", "--journal-url", other)[0] == 0
    assert run("trace", "hub-0005")[0] == 1  # not in the default journal


def test_the_embedded_journal_is_set_up_on_first_use(isolated_hub_home: Path) -> None:
    status, out, err = run("trace", "hub-0001")
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        f"isobridge: created master key file {isolated_hub_home / 'master-keys.json'}",
        f"isobridge: created journal sqlite:///{isolated_hub_home / 'journal.db'}",
        "isobridge: no transaction in the journal is known by 'hub-0001'",
    ]


def test_commands_in_their_own_process(journal: Journal) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hub.cli", "trace", "hub-0001"],
        capture_output=True, check=False, cwd=ROOT, timeout=120, env={**os.environ},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.decode().startswith("transaction hub-0001\n")


@pytest.mark.parametrize(("column", "value"), [("kind", "teleported"), ("body", "{not json")])
def test_an_unreadable_event_is_reported_by_every_command(
    journal: Journal, column: str, value: str
) -> None:
    with journal.engine.begin() as connection:
        connection.execute(update(EVENTS).where(EVENTS.c.seq == 3).values({column: value}))
    message = (
        "isobridge: event 3 cannot be read (its kind or body is not valid): the journal is "
        "damaged or was tampered with; run `isobridge audit verify`\n"
    )
    assert run("trace", "hub-0001") == (1, "", message)
    assert run("journal", "rebuild", "--unverified")[2] == message
    status, out, _ = run("audit", "verify")
    assert status == 1
    assert "  event 3: edited: its columns no longer match its hash" in out


def test_the_commands_on_postgresql(isolated_hub_home: Path) -> None:
    base = postgres_url()
    schema = f"journal_cli_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{base}?options=-csearch_path%3D{schema}"
    try:
        assert run("journal", "init", "--journal-url", url)[0] == 0
        settings = Settings.from_environment(
            {"ISOBRIDGE_HOME": str(isolated_hub_home), "ISOBRIDGE_JOURNAL_URL": url}
        )
        journal = open_journal(settings)
        journal.record(list(mixed_run(2)))
        assert run("audit", "verify", "--journal-url", url)[1].endswith("journal intact\n")
        assert run("trace", "hub-0002", "--journal-url", url)[1].startswith("transaction hub-0002")
        with journal.engine.begin() as connection:
            connection.execute(delete(EVENTS).where(EVENTS.c.seq == 2))
        status, out, _ = run("audit", "verify", "--journal-url", url)
        assert status == 1
        assert "  event 2: deleted: missing from the journal" in out
        journal.close()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
