"""The inbound credit transfer saga on real parts: a pacs.008 from clearing credited on
mainframe_sim, or returned with a pacs.004 and its reason; answers on a real RabbitMQ queue."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pika
import pytest

from adapters.base import DecodeContext, EncodeContext
from canonical_model.codes import TransactionStatus
from canonical_model.messages import Account, CanonicalMessage, Identifiers, MessageKind
from canonical_model.money import Money
from hub.clearing_outgoing import ClearingOutgoing
from hub.config_file import MainframeConfig
from hub.core import corebank_connector
from hub.sagas.inbound import InboundCreditTransfers, inbound_saga_id
from hub.sagas.mainframe import MainframePostings
from hub.sagas.runner import Action, SagaRunner, StepContext, StepResult
from hub.sagas.store import LIVE_PHASES, Phase, SagaStore
from journal.store import Journal
from mainframe_sim.ledger import clearing_account
from tests.broker import delete_queues, own_name, with_dead_letters
from tests.hub.sagas.clearing_peer import AMQP_URL, adapter
from tests.hub.sagas.conftest import KEYS, Clock
from tests.hub.sagas.test_payments import Crash, DyingProcessStore
from tests.hub.test_clearing import FIXTURE
from tests.hub.test_core import Mainframe, mainframe
from tests.mainframe_sim.samples import ANNA, CLOSED
from tests.support import decode_context, fixed_vault, on_event_loop

UNKNOWN = "GB33BUKB20201555555555"


def transfers(*accounts: str) -> bytes:
    """One pacs.008 crediting 25.00 EUR to each of ``accounts``."""
    pacs008 = adapter("pacs.008")
    (template,) = pacs008.decode_batch(FIXTURE.read_bytes(), decode_context(fixed_vault()))
    batch = uuid.uuid4().hex[:8]
    messages = [
        dataclasses.replace(
            template,
            ids=Identifiers(
                f"m-{number}",
                end_to_end_id=f"E2E-{batch}-{number}",
                instruction_id=f"INSTR-{number}",
                uetr=str(uuid.uuid4()),
                source_message_id=f"MSG-IN-{batch}",
            ),
            amount=Money.of("25.00", "EUR"),
            creditor_account=Account(iban=account),
        )
        for number, account in enumerate(accounts, 1)
    ]
    return pacs008.encode_batch(messages, EncodeContext("bank-a"))


def _take_answers(queue: str) -> list[CanonicalMessage]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    found: list[CanonicalMessage] = []
    try:
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found += adapter("pacs.002").decode_batch(body, DecodeContext("t", fixed_vault()))
    finally:
        connection.close()


async def _answers(queue: str, count: int) -> list[CanonicalMessage]:
    found: list[CanonicalMessage] = []
    for _ in range(200):
        found += await asyncio.to_thread(_take_answers, queue)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(found)} answers, not {count}")


@dataclasses.dataclass
class Bank:
    mf: Mainframe
    inbound: InboundCreditTransfers
    answers_queue: str
    journal_url: str
    clock: Clock

    def runner(self, owner: str, store: SagaStore, actions: Mapping[str, Action]) -> SagaRunner:
        return SagaRunner(store, [self.inbound.definition], actions, owner=owner, lease=5.0)


@contextlib.asynccontextmanager
async def _bank(tmp_path: Path) -> AsyncIterator[Bank]:
    base = own_name("isobridge.test.inbound", 10)
    answers, unused = f"{base}.out", f"{base}.st"
    journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
    Journal.open(journal_url, KEYS, create=True).close()

    async def no_status(document: bytes) -> int:
        raise AssertionError("nothing comes back on this queue")

    async with mainframe(tmp_path) as mf:
        config = MainframeConfig(port=mf.port, connections=2, timeout=2.0)
        async with corebank_connector(config) as connector:
            await connector.wait_connected(config.connections)
            sender = ClearingOutgoing(
                AMQP_URL, asyncio.get_running_loop(), no_status, outgoing=answers, status=unused
            )
            await asyncio.to_thread(sender.start)
            try:
                inbound = InboundCreditTransfers(
                    MainframePostings(connector), sender, tenant="bank-a"
                )
                yield Bank(mf, inbound, answers, journal_url, Clock())
            finally:
                try:
                    await asyncio.to_thread(sender.stop)
                finally:
                    names = with_dead_letters(answers, unused)
                    await asyncio.to_thread(delete_queues, AMQP_URL, names)


async def _settle(runner: SagaRunner, clock: Clock) -> None:
    """Run until no saga is live; a failed attempt (a mainframe request timed out on a
    loaded machine) is made due by moving the clock past its back-off."""
    for _ in range(200):
        if not await runner.run_once():
            if not runner.store.sagas(phases=LIVE_PHASES):
                return
            clock.advance(2)
            await asyncio.sleep(0.05)
    raise AssertionError("sagas still live")


def test_credits_what_it_can_and_returns_the_rest_with_the_reason(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with _bank(tmp_path) as bank:
            gl = clearing_account("EUR")
            before = (bank.mf.balance(ANNA), bank.mf.balance(gl))
            store = SagaStore(Journal.open(bank.journal_url, KEYS), now=bank.clock)
            runner = bank.runner("hub-1", store, bank.inbound.actions)
            document = transfers(ANNA, CLOSED, UNKNOWN)
            receipt = await bank.inbound.receive(runner, document)
            assert (receipt.started, receipt.repeated, receipt.refusal) == (3, 0, None)
            await _settle(runner, bank.clock)
            answers = {a.ids.end_to_end_id or "": a for a in await _answers(bank.answers_queue, 3)}
            by_account = dict(zip((ANNA, CLOSED, UNKNOWN), sorted(answers), strict=True))
            credited, closed, unknown = (answers[by_account[a]] for a in (ANNA, CLOSED, UNKNOWN))
            assert credited.kind is MessageKind.FINANCIAL and credited.status is not None
            assert credited.status.code is TransactionStatus.ACSC
            assert (closed.kind, closed.status.reason) == (MessageKind.RETURN, "AC04")  # type: ignore[union-attr]
            assert (unknown.kind, unknown.status.reason) == (MessageKind.RETURN, "AC01")  # type: ignore[union-attr]
            assert {r.outcome for r in store.sagas()} == {"credited", "returned"}
            assert bank.mf.balance(ANNA) == before[0] + 2500
            assert bank.mf.balance(gl) == before[1] - 2500

            again = await bank.inbound.receive(runner, document)  # redelivered: nothing new
            assert (again.started, again.repeated) == (0, 3)
            await _settle(runner, bank.clock)
            assert bank.mf.balance(ANNA) == before[0] + 2500
            assert bank.mf.ledger.check().balanced

            refused = await bank.inbound.receive(runner, b"<Document/>")
            assert refused.refusal is not None and b"<GrpSts>RJCT</GrpSts>" in refused.refusal
            store.journal.close()

    scenario()


@pytest.mark.parametrize("step", ["credit", "confirm", "return"])
def test_a_hub_that_dies_in_a_step_is_taken_over_and_credits_once(
    tmp_path: Path, step: str
) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with _bank(tmp_path) as bank:
            before = bank.mf.balance(ANNA)
            dying_store = DyingProcessStore(Journal.open(bank.journal_url, KEYS), now=bank.clock)

            def wrap(action: Action) -> Action:
                async def run(context: StepContext) -> StepResult:
                    result = await action(context)
                    if context.step == step:
                        dying_store.dead = True
                        raise Crash
                    return result

                return run

            actions = {name: wrap(action) for name, action in bank.inbound.actions.items()}
            dying = bank.runner("hub-dying", dying_store, actions)
            account = CLOSED if step == "return" else ANNA
            document = transfers(account)
            await bank.inbound.receive(dying, document)
            with pytest.raises(Crash):
                await _settle(dying, bank.clock)
            bank.clock.advance(6)
            store = SagaStore(Journal.open(bank.journal_url, KEYS), now=bank.clock)
            fresh = bank.runner("hub-fresh", store, bank.inbound.actions)
            await _settle(fresh, bank.clock)
            (record,) = store.sagas()
            assert record.phase is Phase.DONE
            assert record.outcome == ("returned" if step == "return" else "credited")
            credited = 0 if step == "return" else 2500
            assert bank.mf.balance(ANNA) == before + credited
            answers = await _answers(bank.answers_queue, 1)
            assert {a.ids.end_to_end_id for a in answers} == {record.end_to_end_id}
            (transfer,) = adapter("pacs.008").decode_batch(
                document, decode_context(fixed_vault(), tenant="bank-a")
            )
            assert record.saga_id == inbound_saga_id(transfer)
            dying_store.journal.close()
            store.journal.close()

    scenario()
