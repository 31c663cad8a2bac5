"""``isobridge sagas list | show | retry`` on a real SQLite journal holding sagas in every
phase, moved there by a real runner."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import update

from hub.bootstrap import open_journal
from hub.cli import main
from hub.config import Settings
from hub.sagas.runner import SagaRunner
from hub.sagas.store import Phase, SagaStore
from journal.schema import SAGAS
from tests.hub.sagas.test_runner import RESERVATION, Seats, settle, start
from tests.support import on_event_loop


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def store(isolated_hub_home: Path) -> SagaStore:
    """Three sagas: ``done-1`` finished, ``wait-1`` waiting, ``stuck-1`` needing attention."""
    assert run("journal", "init")[0] == 0
    store = SagaStore(open_journal(Settings.from_environment()))
    seats = Seats()

    @on_event_loop
    async def scenario() -> None:
        runner = SagaRunner(store, [RESERVATION], seats.actions(), owner="hub-test")
        for saga_id in ("done-1", "wait-1"):
            await start(runner, saga_id)
        await settle(runner)
        await runner.signal("done-1", "yes", "answer-1")
        seats.failures["reserve"] = 3
        await start(runner, "stuck-1")
        for _ in range(3):
            await settle(runner)
            record = store.get("stuck-1")
            assert record is not None
            if record.phase is Phase.ATTENTION:
                break
            with store.engine.begin() as connection:  # make the retry due without waiting
                connection.execute(
                    update(SAGAS)
                    .where(SAGAS.c.saga_id == "stuck-1")
                    .values(next_at=record.created_at)
                )
        await settle(runner)

    scenario()
    return store


def test_list_shows_each_saga_where_it_stands(store: SagaStore) -> None:
    status, out, err = run("sagas", "list")
    assert status == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}
    assert lines["done-1"][2:4] == ["done", "book"] and lines["done-1"][-1] == "booked"
    assert lines["wait-1"][2:5] == ["waiting", "confirm", "0"]
    assert lines["stuck-1"][2:5] == ["attention", "reserve", "3"]
    assert out.splitlines()[-1] == "phases: attention 1, done 1, waiting 1"

    status, out, _ = run("sagas", "list", "--phase", "attention", "--json")
    (only,) = [json.loads(line) for line in out.splitlines()]
    assert (only["saga_id"], only["attempts"], only["next"]) == ("stuck-1", 3, None)
    assert "failed 3 times" in only["last_error"]
    waiting = json.loads(run("sagas", "list", "--phase", "waiting", "--json")[1])
    record = store.get("wait-1")
    assert record is not None and record.deadline is not None
    assert waiting["next"] == record.deadline.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_show_gives_the_state_answers_and_history(store: SagaStore) -> None:
    status, out, err = run("sagas", "show", "done-1")
    assert status == 0, err
    assert "saga done-1 (reservation), tenant acme" in out
    assert "phase done  step book" in out and "outcome booked  status ACSC" in out
    assert "yes        consumed  answer-1" in out
    history = out.split("history:\n")[1].splitlines()
    assert [line.split()[2] for line in history] == [
        "saga_started", "saga_step", "saga_signal", "saga_finished",
    ]  # fmt: skip
    status, out, _ = run("sagas", "show", "stuck-1")
    assert "last error: reserve failed 3 times: reserve: no answer" in out
    assert out.count("saga_step") == 2 and "saga_attention" in out


def test_retry_re_arms_a_stuck_step_and_refuses_what_cannot_be_retried(store: SagaStore) -> None:
    status, out, err = run("sagas", "retry", "stuck-1")
    assert status == 0, err
    assert out == "saga stuck-1: step reserve re-armed (active); a running hub picks it up now\n"
    record = store.get("stuck-1")
    assert record is not None and (record.phase, record.attempts) == (Phase.ACTIVE, 0)
    assert store.history("stuck-1")[-1].body["by"].startswith("cli:")

    status, out, err = run("sagas", "retry", "wait-1")  # act on the timeout now
    assert status == 0
    record = store.get("wait-1")
    assert record is not None and record.deadline is not None
    assert record.deadline <= record.updated_at

    assert run("sagas", "retry", "done-1")[2] == (
        "isobridge: saga done-1 is finished (booked): nothing to retry\n"
    )
    status, _, err = run("sagas", "show", "nope")
    assert (status, err) == (1, "isobridge: no saga 'nope' in the journal\n")
    assert run("sagas", "retry", "nope")[2] == "isobridge: no saga 'nope'\n"
    assert (
        run("sagas", "list", "--limit", "0")[2] == "isobridge: --limit must be at least 1, not 0\n"
    )
