"""The outbound credit transfer saga on real parts: mainframe_sim over TCP (its ledger),
RabbitMQ queues with a scripted clearing system, the journal on SQLite.

Every test ends by reconciling the ledger with the clearing system's books: the debtor lost
exactly what clearing settled and did not return, the clearing account got it, no hold is
left, the ledger balances.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from canonical_model.codes import TransactionStatus
from canonical_model.json_form import to_json
from canonical_model.messages import (
    Account,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    Party,
)
from canonical_model.money import Money
from hub.clearing_outgoing import ClearingOutgoing
from hub.config_file import MainframeConfig
from hub.connector import RecordConnector
from hub.core import corebank_connector
from hub.sagas.mainframe import MainframePostings
from hub.sagas.payments import ClearingAnswers, OutboundCreditTransfers
from hub.sagas.runner import Action, SagaRunner, StepContext, StepResult
from hub.sagas.service import PaymentSagas
from hub.sagas.store import Phase, SagaRecord, SagaStore
from journal.store import Journal
from mainframe_sim.ledger import clearing_account
from tests.broker import delete_queues, own_name, with_dead_letters
from tests.hub.sagas.clearing_peer import AMQP_URL, ClearingPeer, status_report
from tests.hub.sagas.conftest import KEYS, Clock
from tests.hub.test_core import Mainframe, mainframe
from tests.mainframe_sim.samples import ANNA, EMPTY
from tests.support import on_event_loop

CREDITOR = "GB33BUKB20201555555555"
LEASE = 5.0
STATUS_TIMEOUT = 60.0
RECALL_TIMEOUT = 120.0


def payment(number: int, amount: str = "25.00", debtor: str = ANNA) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "bank-a",
        Identifiers(
            f"pmt-{number}-{uuid.uuid4().hex[:8]}",
            end_to_end_id=f"E2E-{number}",
            instruction_id=f"INSTR-{number}",
            uetr=str(uuid.uuid4()),
        ),
        amount=Money.of(amount, "EUR"),
        debtor_account=Account(iban=debtor),
        creditor=Party(name="Bob Creditor"),
        creditor_account=Account(iban=CREDITOR, name="Bob Creditor"),
        remittance=("invoice 42",),
    )


class Crash(BaseException):
    """The hub process dies here (not an error a step handles: nothing catches it)."""


class DyingProcessStore(SagaStore):
    """The saga store of a process that is going to die: once :attr:`dead`, it never gives
    its leases back (a process killed in a step leaves its lease to run out)."""

    dead = False

    def release(self, record: SagaRecord) -> None:
        if not self.dead:
            super().release(record)


@dataclass
class Hub:
    """One hub process's saga parts (a runner, its answers consumer) on shared databases."""

    store: SagaStore
    outbound: OutboundCreditTransfers
    runner: SagaRunner
    answers: ClearingAnswers


@dataclass
class World:
    mf: Mainframe
    connector: RecordConnector
    clearing: ClearingOutgoing
    peer: ClearingPeer
    journal_url: str
    clock: Clock
    status_queue: str
    hubs: list[Hub]

    def hub(
        self,
        owner: str,
        *,
        dead: bool = False,
        wrap: Callable[[Mapping[str, Action]], Mapping[str, Action]] | None = None,
        real_clock: bool = False,
    ) -> Hub:
        journal = Journal.open(self.journal_url, KEYS)
        store_class = DyingProcessStore if dead else SagaStore
        store = store_class(journal, now=None if real_clock else self.clock)
        outbound = OutboundCreditTransfers(
            MainframePostings(self.connector),
            self.clearing,
            status_timeout=STATUS_TIMEOUT,
            recall_timeout=RECALL_TIMEOUT,
        )
        actions = wrap(outbound.actions) if wrap else outbound.actions
        runner = SagaRunner(store, [outbound.definition], actions, owner=owner, lease=LEASE)
        hub = Hub(store, outbound, runner, ClearingAnswers(runner, store, self.clearing))
        self.hubs.append(hub)
        return hub

    async def receive(self, document: bytes) -> int:
        """The status consumer's handler: the newest hub's answers."""
        return await self.hubs[-1].answers.receive(document)

    async def run_until(
        self, hub: Hub, done: Callable[[], bool], *, answer: bool = True, rounds: int = 400
    ) -> None:
        """Run ``hub``'s saga passes and the peer until ``done()`` (bounded, never timed)."""
        for _ in range(rounds):
            if answer:
                await asyncio.to_thread(self.peer.serve_once)
            if not await hub.runner.run_once():
                self.make_retries_due(hub.store)
            if done():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the saga did not get there")

    def make_retries_due(self, store: SagaStore) -> None:
        """Move the test clock to the next attempt of a step that failed (a mainframe
        request that timed out on a loaded machine), never past a wait step's deadline."""
        retries = [
            record.next_at
            for record in store.sagas(phases=(Phase.ACTIVE, Phase.COMPENSATING))
            if record.last_error and record.next_at > self.clock.now
        ]
        if retries:
            self.clock.now = max(retries)

    def saga(self, saga_id: str) -> SagaRecord:
        record = self.hubs[-1].store.get(saga_id)
        assert record is not None
        return record

    def reconcile(self, before: Mapping[str, int]) -> None:
        """The ledger agrees with the clearing system's books, and no hold is left."""
        paid_out = int(self.peer.net_settled * 100)
        gl = clearing_account("EUR")
        assert self.mf.balance(ANNA) == before[ANNA] - paid_out
        assert self.mf.balance(gl) == before[gl] + paid_out
        balances = self.mf.ledger.balances(ANNA)
        assert balances is not None and balances.available == balances.ledger  # no hold
        assert self.mf.ledger.check().balanced


@contextlib.asynccontextmanager
async def world(tmp_path: Path, peer: ClearingPeer | None = None) -> AsyncIterator[World]:
    base = own_name("isobridge.test.sagas", 10)
    outgoing, status = f"{base}.out", f"{base}.st"
    journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
    Journal.open(journal_url, KEYS, create=True).close()
    holder: list[World] = []

    async def on_status(document: bytes) -> int:
        return await holder[0].receive(document)

    async with mainframe(tmp_path) as mf:
        config = MainframeConfig(port=mf.port, connections=2, timeout=2.0)
        async with corebank_connector(config) as connector:
            await connector.wait_connected(config.connections)
            clearing = ClearingOutgoing(
                AMQP_URL, asyncio.get_running_loop(), on_status, outgoing=outgoing, status=status
            )
            await asyncio.to_thread(clearing.start)
            try:
                the_peer = peer or ClearingPeer(outgoing)
                the_peer.outgoing = outgoing
                holder.append(
                    World(mf, connector, clearing, the_peer, journal_url, Clock(), status, [])
                )
                yield holder[0]
            finally:
                try:
                    await asyncio.to_thread(clearing.stop)
                    for hub in holder[0].hubs if holder else []:
                        hub.store.journal.close()
                finally:
                    names = with_dead_letters(outgoing, status)
                    await asyncio.to_thread(delete_queues, AMQP_URL, names)


def _parked(queue: str) -> list[tuple[bytes, str]]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    found: list[tuple[bytes, str]] = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(f"{queue}.dlq", auto_ack=True)
            if method is None:
                return found
            found.append((body, (properties.headers or {}).get("x-isobridge-reason", "")))
    finally:
        connection.close()


def balances(w: World) -> dict[str, int]:
    gl = clearing_account("EUR")
    return {ANNA: w.mf.balance(ANNA), gl: w.mf.balance(gl)}


def finished(w: World, saga_id: str) -> Callable[[], bool]:
    return lambda: w.saga(saga_id).phase is Phase.DONE


def waiting_in(w: World, saga_id: str, step: str) -> Callable[[], bool]:
    def check() -> bool:
        record = w.saga(saga_id)
        return record.phase is Phase.WAITING and record.step == step

    return check


def test_accepted_payment_holds_sends_and_settles(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path) as w:
            before = balances(w)
            hub = w.hub("hub-1")
            message = payment(1)
            assert await hub.outbound.submit(hub.runner, message)
            assert not await hub.outbound.submit(hub.runner, message)  # a repeat: nothing
            saga_id = message.ids.message_id
            await w.run_until(hub, finished(w, saga_id))
            record = w.saga(saga_id)
            assert (record.outcome, record.data["status"]) == ("settled", "ACSC")
            assert [step for kind, step in w.peer.received] == [saga_id]
            view = hub.store.journal.status(saga_id)
            assert view is not None and (view.status, view.amount) == ("ACSC", "25.00")
            steps = [e.body.get("step") for e in hub.store.history(saga_id)]
            assert steps == ["hold", "hold", "send", "await_status", "settle"]
            w.reconcile(before)
            assert w.mf.balance(ANNA) == before[ANNA] - 2500

    scenario()


def test_a_clearing_reject_releases_the_hold_with_the_reason(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path, ClearingPeer("", on_payment="RJCT:AC04")) as w:
            before = balances(w)
            hub = w.hub("hub-1")
            message = payment(2)
            await hub.outbound.submit(hub.runner, message)
            await w.run_until(hub, finished(w, message.ids.message_id))
            record = w.saga(message.ids.message_id)
            assert (record.outcome, record.values["reason_code"]) == ("rejected", "AC04")
            view = hub.store.journal.status(message.ids.message_id)
            assert view is not None and (view.status, view.reason_code) == ("RJCT", "AC04")
            assert "release" in [e.body.get("step") for e in hub.store.history(record.saga_id)]
            w.reconcile(before)
            assert w.mf.balance(ANNA) == before[ANNA]

    scenario()


def test_the_mainframe_refusing_the_hold_rejects_at_once(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path) as w:
            hub = w.hub("hub-1")
            message = payment(3, "10.00", debtor=EMPTY)
            await hub.outbound.submit(hub.runner, message)
            await w.run_until(hub, finished(w, message.ids.message_id))
            record = w.saga(message.ids.message_id)
            assert (record.outcome, record.values["reason_code"]) == ("rejected", "AM04")
            assert w.peer.received == []  # nothing went to clearing

    scenario()


@pytest.mark.parametrize(
    ("recall_answer", "outcome", "paid"), [("return", "returned", 0), ("refuse", "settled", 2500)]
)
def test_no_answer_in_time_recalls_and_follows_the_recall(
    tmp_path: Path, recall_answer: str, outcome: str, paid: int
) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path, ClearingPeer("", on_payment=None, on_recall=recall_answer)) as w:
            before = balances(w)
            hub = w.hub("hub-1")
            message = payment(4)
            saga_id = message.ids.message_id
            await hub.outbound.submit(hub.runner, message)
            await w.run_until(hub, waiting_in(w, saga_id, "await_status"))
            w.clock.advance(STATUS_TIMEOUT + 1)
            await w.run_until(hub, finished(w, saga_id))
            record = w.saga(saga_id)
            assert record.outcome == outcome
            assert [kind for kind, _ in w.peer.received] == ["financial", "cancellation"]
            view = hub.store.journal.status(saga_id)
            assert view is not None
            if outcome == "returned":
                assert (view.status, view.reason_code) == ("RJCT", "FOCR")
            else:
                assert view.status == "ACSC"
            w.reconcile(before)
            assert w.mf.balance(ANNA) == before[ANNA] - paid

    scenario()


def test_a_recall_nobody_answers_ends_in_attention_not_a_loop(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path, ClearingPeer("", on_payment=None, on_recall=None)) as w:
            before = balances(w)
            hub = w.hub("hub-1")
            message = payment(5)
            saga_id = message.ids.message_id
            await hub.outbound.submit(hub.runner, message)
            await w.run_until(hub, waiting_in(w, saga_id, "await_status"))
            w.clock.advance(STATUS_TIMEOUT + 1)
            for _ in range(4):
                await w.run_until(
                    hub,
                    lambda: (
                        w.saga(saga_id).phase in (Phase.WAITING, Phase.ATTENTION)
                        and w.saga(saga_id).step != "await_status"
                    ),
                )
                w.clock.advance(RECALL_TIMEOUT + 1)
            await w.run_until(hub, lambda: w.saga(saga_id).phase is Phase.ATTENTION)
            record = w.saga(saga_id)
            assert record.step == "recall" and "recall reached 4 times" in (record.last_error or "")
            assert [kind for kind, _ in w.peer.received].count("cancellation") == 3
            # the hold stays while the outcome is unknown: an operator decides
            held = w.mf.ledger.balances(ANNA)
            assert held is not None and held.ledger - held.available == 2500
            assert w.mf.balance(ANNA) == before[ANNA]

    scenario()


def test_unmatched_answers_are_parked_and_duplicates_change_nothing(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path) as w:
            before = balances(w)
            hub = w.hub("hub-1")
            message = payment(6)
            saga_id = message.ids.message_id
            await hub.outbound.submit(hub.runner, message)
            await w.run_until(hub, finished(w, saga_id))
            events = len(hub.store.history(saga_id))
            (acsc,) = w.peer.answers
            assert await hub.answers.receive(acsc) == 0  # the same pacs.002 again
            rjct = status_report(
                saga_id, "E2E-6", message.ids.uetr, TransactionStatus.RJCT, answer_id="late-1"
            )
            assert await hub.answers.receive(rjct) == 1  # a late contradicting one: noted...
            await hub.runner.run_once()
            assert w.saga(saga_id).outcome == "settled"  # ...and changes nothing
            assert len(hub.store.history(saga_id)) == events
            assert hub.answers.duplicates == 1

            stranger = status_report(
                "pmt-nobody", "E2E-X", str(uuid.uuid4()), TransactionStatus.ACSC
            )
            await asyncio.to_thread(w.peer.send_raw, w.status_queue, stranger)
            await asyncio.to_thread(w.peer.send_raw, w.status_queue, b"<Document>not xml")
            parked: list[tuple[bytes, str]] = []
            for _ in range(200):
                parked += await asyncio.to_thread(_parked, w.status_queue)
                if len(parked) == 2:
                    break
                await asyncio.sleep(0.05)
            reasons = sorted(reason for _, reason in parked)
            assert reasons[0].startswith("not a readable clearing answer")
            assert reasons[1] == "pacs.002 #1 (pmt-nobody): matches no payment saga"
            assert {body for body, _ in parked} == {stranger, b"<Document>not xml"}
            w.reconcile(before)

    scenario()


CRASH_POINTS = [
    # (step, before or after its effect, how clearing answers, the outcome)
    ("hold", "before", "ACSC", "settled"),
    ("hold", "after", "ACSC", "settled"),
    ("send", "after", "ACSC", "settled"),
    ("settle", "after", "ACSC", "settled"),
    ("send", "after", "RJCT:AM04", "rejected"),
    ("release", "after", "RJCT:AM04", "rejected"),
    ("recall", "after", "return", "returned"),
    ("release", "after", "return", "returned"),
    ("recall", "after", "refuse", "settled"),
    ("settle", "after", "refuse", "settled"),
]


@pytest.mark.parametrize(("step", "when", "clearing", "outcome"), CRASH_POINTS)
def test_a_hub_that_dies_in_any_step_is_taken_over_and_the_ledger_reconciles(
    tmp_path: Path, step: str, when: str, clearing: str, outcome: str
) -> None:
    on_payment = clearing if clearing in ("ACSC", "RJCT:AM04") else None
    on_recall = clearing if on_payment is None else None
    peer = ClearingPeer("", on_payment=on_payment, on_recall=on_recall)

    stores: list[SagaStore] = []

    def die() -> None:
        for store in stores:
            assert isinstance(store, DyingProcessStore)
            store.dead = True
        raise Crash

    def crashing(actions: Mapping[str, Action]) -> Mapping[str, Action]:
        def wrap(name: str, action: Action) -> Action:
            async def run(context: StepContext) -> StepResult:
                if context.step == step and when == "before":
                    die()
                result = await action(context)
                if context.step == step:
                    die()  # done, not recorded
                return result

            return run

        return {name: wrap(name, action) for name, action in actions.items()}

    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path, peer) as w:
            before = balances(w)
            dying = w.hub("hub-dying", dead=True, wrap=crashing)
            stores.append(dying.store)
            message = payment(7)
            saga_id = message.ids.message_id
            await dying.outbound.submit(dying.runner, message)

            async def until_it_dies() -> None:
                for _ in range(400):
                    await asyncio.to_thread(w.peer.serve_once)
                    if not await dying.runner.run_once():
                        w.make_retries_due(dying.store)
                    if on_payment is None and waiting_in(w, saga_id, "await_status")():
                        w.clock.advance(STATUS_TIMEOUT + 1)
                    await asyncio.sleep(0.02)

            with pytest.raises(Crash):
                await until_it_dies()
            w.clock.advance(LEASE + 1)  # the dead process's lease runs out
            fresh = w.hub("hub-fresh")
            for _ in range(400):
                await asyncio.to_thread(w.peer.serve_once)
                if not await fresh.runner.run_once():
                    w.make_retries_due(fresh.store)
                record = w.saga(saga_id)
                if record.phase is Phase.DONE:
                    break
                if (
                    record.phase is Phase.WAITING
                    and record.step == "await_status"
                    and not on_payment
                ):
                    w.clock.advance(STATUS_TIMEOUT + 1)
                await asyncio.sleep(0.02)
            record = w.saga(saga_id)
            assert (record.phase, record.outcome) == (Phase.DONE, outcome)
            w.reconcile(before)
            paid = {"settled": 2500, "rejected": 0, "returned": 0}[outcome]
            assert w.mf.balance(ANNA) == before[ANNA] - paid
            assert len(set(w.peer.settled)) <= 1  # clearing settled it at most once

    scenario()


def test_the_wired_service_runs_payments_and_transfers_as_a_hub_task(tmp_path: Path) -> None:
    """PaymentSagas as the hub runs it: its loop a task, answers from the status consumer."""

    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path) as w:
            before = balances(w)
            journal = Journal.open(w.journal_url, KEYS)
            sagas = PaymentSagas(
                journal, w.connector, w.clearing, tenant="bank-a", owner="hub-service"
            )
            w.hubs.append(Hub(sagas.store, sagas.outbound, sagas.runner, sagas.answers))
            stop = asyncio.Event()
            peer_stop = asyncio.Event()
            tasks = [
                asyncio.create_task(sagas.run(stop)),
                asyncio.create_task(w.peer.serve(peer_stop)),
            ]
            messages = [payment(10 + n, "5.00") for n in range(5)]
            for message in messages:
                assert await sagas.submit_payment(message)
            for _ in range(400):
                if all(
                    (r := sagas.store.get(m.ids.message_id)) and r.phase is Phase.DONE
                    for m in messages
                ):
                    break
                await asyncio.sleep(0.05)
            stop.set()
            peer_stop.set()
            await asyncio.gather(*tasks)
            outcomes = {sagas.store.get(m.ids.message_id).outcome for m in messages}  # type: ignore[union-attr]
            assert outcomes == {"settled"}
            w.reconcile(before)
            assert w.mf.balance(ANNA) == before[ANNA] - 2500

    scenario()


@pytest.mark.parametrize("step", ["hold", "send", "settle"])
def test_a_hub_process_killed_after_a_step_is_taken_over_by_another(
    tmp_path: Path, step: str
) -> None:
    """A real process, SIGKILLed right after the step's effect; another process's runner
    takes the saga over once the lease has run out, and the ledger reconciles."""

    @on_event_loop
    async def scenario() -> None:
        async with world(tmp_path) as w:
            before = balances(w)
            fresh = w.hub("hub-fresh", real_clock=True)  # takes answers while the other runs
            message = payment(30)
            saga_id = message.ids.message_id
            path = tmp_path / "payment.json"
            path.write_text(to_json(message))
            child = subprocess.Popen(
                [sys.executable, "-m", "tests.hub.sagas.crash_hub", w.journal_url,
                 str(w.mf.port), w.peer.outgoing, w.status_queue, step, str(path)],
                cwd=Path(__file__).resolve().parents[3],
            )  # fmt: skip
            stop = asyncio.Event()
            peer = asyncio.create_task(w.peer.serve(stop))
            try:
                assert await asyncio.to_thread(child.wait, 40) == -signal.SIGKILL
                for _ in range(400):
                    await fresh.runner.run_once()
                    if w.saga(saga_id).phase is Phase.DONE:
                        break
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await peer
                if child.poll() is None:
                    child.kill()
            record = w.saga(saga_id)
            assert (record.phase, record.outcome) == (Phase.DONE, "settled")
            steps = [e.body.get("step") for e in fresh.store.history(saga_id)]
            assert steps.count(step) >= 1 and steps[-1] == "settle"
            assert list(w.peer.settled) == [saga_id]
            w.reconcile(before)
            assert w.mf.balance(ANNA) == before[ANNA] - 2500

    scenario()
