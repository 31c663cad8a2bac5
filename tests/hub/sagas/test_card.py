"""The card reversal saga on real parts: ``CoreBanking`` against mainframe_sim over TCP (its
ledger), the journal on SQLite, a real hub process killed at each step of the saga, and the
hub itself (``HubService``) answering ``91`` and listing its card sagas.

Every test ends by reconciling the ledger: a purchase whose answer was lost is reversed
exactly once (the account is back where it was), however often the reversal was sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hub.cli import main
from hub.config_file import MainframeConfig, load_config
from hub.core import CoreBanking, corebank_connector, posting_reference
from hub.sagas.card import CARD_REVERSAL, CardReversals, card_saga_id
from hub.sagas.runner import SagaRunner
from hub.sagas.store import Phase, SagaRecord, SagaStore
from hub.service import HubService
from journal.store import Journal
from mainframe_sim.faults import FaultPlan
from tests.hub.sagas.conftest import KEYS, Clock
from tests.hub.test_chaos import hub_and_mainframe
from tests.hub.test_core import Mainframe, mainframe, purchase, reversal_of
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import _purchase
from tests.mainframe_sim.samples import ANNA
from tests.support import on_event_loop

ROOT = Path(__file__).resolve().parents[3]


@dataclasses.dataclass
class Card:
    mf: Mainframe
    core: CoreBanking
    card: CardReversals
    runner: SagaRunner
    store: SagaStore
    clock: Clock

    async def settle(self) -> None:
        """Run saga passes, moving the clock to each retry, until nothing is left to do."""
        for _ in range(50):
            if not await self.runner.run_once():
                due = [r.next_at for r in self.card.pending() if r.phase is Phase.ACTIVE]
                if not due:
                    return
                self.clock.now = max(self.clock.now, min(due))

    def saga(self, stan: int) -> SagaRecord:
        record = self.store.get(card_saga_id(posting_reference(purchase(stan, "1.00"))))
        assert record is not None
        return record


@asynccontextmanager
async def card_world(tmp_path: Path, *, max_attempts: int = 30) -> AsyncIterator[Card]:
    journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
    journal = Journal.open(journal_url, KEYS, create=True)
    clock = Clock()
    try:
        async with mainframe(tmp_path) as mf:
            config = MainframeConfig(port=mf.port, connections=2, timeout=0.3)
            async with corebank_connector(config) as connector:
                await connector.wait_connected(config.connections)
                card = CardReversals(max_attempts=max_attempts)
                core = CoreBanking(connector, reversals=card)
                store = SagaStore(journal, now=clock)
                runner = SagaRunner(store, [card.definition], card.actions, owner="hub-test")
                card.attach(runner, core)
                yield Card(mf, core, card, runner, store, clock)
    finally:
        journal.close()


def test_an_answer_in_time_stores_nothing_and_a_lost_one_is_reversed_once(
    tmp_path: Path,
) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with card_world(tmp_path) as w:
            before = w.mf.balance(ANNA)
            approved = await w.core.handle(purchase(1, "3.00"))
            assert approved.status is not None and approved.status.original is not None
            assert approved.status.original.code == "00"
            assert w.store.counts() == {}  # the approved-in-time path: no saga, no commit

            w.mf.faults.set(FaultPlan(drop=1.0))  # applied, the answer never comes
            lost = await w.core.handle(purchase(2, "7.00"))
            assert lost.status is not None and lost.status.original is not None
            assert lost.status.original.code == "91"
            assert w.mf.balance(ANNA) == before - 300 - 700
            (pending,) = w.card.pending()
            assert (pending.definition, pending.step) == (CARD_REVERSAL, "reverse")
            assert pending.values["posting_ref"] == posting_reference(purchase(2, "7.00"))
            await w.core.store_reversal(purchase(2, "7.00"))  # the hub's timeout too: one saga
            assert len(w.store.sagas()) == 1

            assert await w.runner.run_once() == 1  # still dropping: a failed attempt
            assert w.saga(2).last_error == "the core did not answer the reversal"
            w.mf.faults.set(FaultPlan())
            await w.settle()
            record = w.saga(2)
            assert (record.phase, record.outcome) == (Phase.DONE, "reversed")
            assert record.values["response_code"] == "00"
            assert w.card.pending() == []
            # the acquirer's own 0420, and its 0421 repeat: the reversal is applied once
            for _ in range(2):
                answer = await w.core.handle(reversal_of(purchase(2, "7.00"), 92))
                assert answer.status is not None and answer.status.original is not None
                assert answer.status.original.code == "00"
            assert w.mf.balance(ANNA) == before - 300
            assert w.mf.ledger.check().balanced
            kinds = [event.kind.value for event in w.store.history(record.saga_id)]
            assert kinds == ["saga_started", "saga_step", "saga_finished"]

    scenario()


def test_a_reversal_of_what_never_posted_ends_not_posted(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with card_world(tmp_path) as w:
            before = w.mf.balance(ANNA)
            # the hub's wait timed out before the core worker took the request: never posted
            await w.core.store_reversal(purchase(3, "4.00"))
            await w.settle()
            record = w.saga(3)
            assert (record.phase, record.outcome) == (Phase.DONE, "not-posted")
            assert record.values["response_code"] == "25"
            assert w.mf.balance(ANNA) == before

    scenario()


def test_a_core_that_never_answers_leaves_the_reversal_to_an_operator(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with card_world(tmp_path, max_attempts=3) as w:
            before = w.mf.balance(ANNA)
            w.mf.faults.set(FaultPlan(drop=1.0))
            await w.core.handle(purchase(4, "5.00"))
            await w.settle()
            record = w.saga(4)
            assert (record.phase, record.attempts) == (Phase.ATTENTION, 3)
            assert "reverse failed 3 times" in (record.last_error or "")
            assert w.card.pending() == [record]  # still owed: listed, never dropped
            w.mf.faults.set(FaultPlan())
            w.store.retry(record.saga_id, by="cli:ops")
            await w.settle()
            assert w.saga(4).outcome == "reversed"
            assert w.mf.balance(ANNA) == before
            assert w.mf.ledger.check().balanced

    scenario()


@pytest.mark.parametrize("point", ["stored", "reverse"])
def test_a_hub_killed_at_a_step_of_the_card_saga_loses_no_reversal_and_applies_it_once(
    tmp_path: Path, point: str
) -> None:
    """A real process, SIGKILLed right after the reversal was stored (before the acquirer
    heard 91), or right after the mainframe applied it (before the step was recorded); a
    restarted hub takes the saga over once the lease has run out."""

    @on_event_loop
    async def scenario() -> None:
        journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
        Journal.open(journal_url, KEYS, create=True).close()
        async with mainframe(tmp_path) as mf:
            before = mf.balance(ANNA)
            mf.faults.set(FaultPlan(drop=1.0))
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.hub.sagas.crash_card", journal_url,
                str(mf.port), point, "50",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            )  # fmt: skip
            assert child.stdin is not None and child.stdout is not None
            try:
                if point == "reverse":
                    assert await child.stdout.readline() == b"stored 91\n"
                    mf.faults.set(FaultPlan())
                    child.stdin.write(b"go\n")
                    await child.stdin.drain()
                assert await asyncio.wait_for(child.wait(), 60) == -signal.SIGKILL
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
            mf.faults.set(FaultPlan())
            assert mf.balance(ANNA) == before - (900 if point == "stored" else 0)

            journal = Journal.open(journal_url, KEYS)
            clock = Clock()
            clock.now = clock.now.replace(year=2100)  # long after the dead process's lease
            config = MainframeConfig(port=mf.port, connections=1, timeout=2.0)
            try:
                async with corebank_connector(config) as connector:
                    await connector.wait_connected(1)
                    card = CardReversals()
                    core = CoreBanking(connector, reversals=card)
                    store = SagaStore(journal, now=clock)
                    runner = SagaRunner(store, [card.definition], card.actions, owner="restart")
                    card.attach(runner, core)
                    (pending,) = card.pending()
                    while await runner.run_once():
                        pass
                    record = store.get(pending.saga_id)
                    assert record is not None
                    assert (record.phase, record.outcome) == (Phase.DONE, "reversed")
                    # the mainframe's stored reply to the repeated reference: applied once
                    assert record.values["response_code"] == "00"
                    answer = await core.handle(reversal_of(purchase(50, "9.00"), 51))
                    assert answer.status is not None and answer.status.original is not None
                    assert answer.status.original.code == "00"  # the acquirer's 0420 too
            finally:
                journal.close()
            assert mf.balance(ANNA) == before
            assert mf.ledger.check().balanced

    scenario()


def test_the_hub_answers_91_and_lists_its_card_sagas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HubService`` with its journal: a reply later than the mainframe timeout is 91 to
    the acquirer and a card reversal saga, which ``isobridge sagas list`` shows, reversed."""

    @on_event_loop
    async def scenario() -> None:
        async with hub_and_mainframe(tmp_path) as (service, ledger, faults):
            assert isinstance(service.reversals, CardReversals)
            assert service.saga_runner is not None
            before = ledger.balances(ANNA)
            client = await Client.connect(service.edges[0].port)
            try:
                await client.send(_purchase(61, 250, ANNA))
                assert _parse(await client.receive())[1][39] == "00"
                assert service.reversals.pending() == []
                assert service.saga_runner.store.counts() == {}
                faults.set(FaultPlan.parse("latency=fixed:600ms"))  # the hub waits 0.3 s
                await client.send(_purchase(62, 300, ANNA))
                assert _parse(await client.receive())[1][39] == "91"
                faults.set(FaultPlan())
            finally:
                await client.close()
            for _ in range(200):
                if not service.reversals.pending():
                    break
                await asyncio.sleep(0.05)
            assert service.reversals.pending() == []
            (record,) = service.saga_runner.store.sagas()
            assert (record.definition, record.outcome) == (CARD_REVERSAL, "reversed")
            after = ledger.balances(ANNA)
            assert before is not None and after is not None
            assert before.ledger - after.ledger == 250
            assert ledger.check().balanced
            monkeypatch.setenv("ISOBRIDGE_HOME", str(tmp_path / "home"))  # the hub's state
            out, err = io.StringIO(), io.StringIO()
            status = main(["sagas", "list", "--json"], stdout=out, stderr=err)
            assert status == 0, err.getvalue()
            (listed,) = [json.loads(line) for line in out.getvalue().splitlines()]
            assert (listed["saga_id"], listed["saga"]) == (record.saga_id, CARD_REVERSAL)

    scenario()


def test_without_the_journal_the_hub_keeps_its_reversal_table(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text(f'[hub]\nhome = "{tmp_path / "home"}"\njournal = false\n')
    config = dataclasses.replace(load_config(toml, environ={}), mainframe=MainframeConfig(port=1))

    @on_event_loop
    async def scenario() -> None:
        async with HubService(config) as service:
            assert not isinstance(service.reversals, CardReversals)
            assert service.saga_runner is None

    scenario()
