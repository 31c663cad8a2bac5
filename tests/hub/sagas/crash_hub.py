"""A hub process that is killed (SIGKILL, no clean-up of any kind) right after one step's
effect, before the step is recorded: ``python -m tests.hub.sagas.crash_hub JOURNAL_URL
MAINFRAME_PORT OUTGOING STATUS STEP PAYMENT_JSON`` submits the payment (canonical JSON) as
an outbound saga and runs it until the kill."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from canonical_model.json_form import from_json
from hub.clearing_outgoing import ClearingOutgoing
from hub.config_file import MainframeConfig
from hub.core import corebank_connector
from hub.sagas.runner import Action, StepContext, StepResult
from hub.sagas.service import PaymentSagas
from journal.store import Journal
from tests.hub.sagas.clearing_peer import AMQP_URL
from tests.hub.sagas.conftest import KEYS

LEASE = 1.0


def killed_after(step: str, actions: Mapping[str, Action]) -> dict[str, Action]:
    def wrap(action: Action) -> Action:
        async def run(context: StepContext) -> StepResult:
            result = await action(context)
            if context.step == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return run

    return {name: wrap(action) for name, action in actions.items()}


async def main(
    journal_url: str, port: int, outgoing: str, status: str, step: str, path: str
) -> None:
    message = from_json(Path(path).read_text())
    journal = Journal.open(journal_url, KEYS)
    holder: list[PaymentSagas] = []

    async def on_status(document: bytes) -> int:
        return await holder[0].receive_answer(document)

    config = MainframeConfig(port=port, connections=1, timeout=2.0)
    async with corebank_connector(config) as connector:
        await connector.wait_connected(1)
        clearing = ClearingOutgoing(
            AMQP_URL, asyncio.get_running_loop(), on_status, outgoing=outgoing, status=status
        )
        await asyncio.to_thread(clearing.start)
        sagas = PaymentSagas(
            journal, connector, clearing, tenant="bank-a", owner="hub-killed", lease=LEASE
        )
        holder.append(sagas)
        sagas.runner.actions = killed_after(step, sagas.runner.actions)
        await sagas.submit_payment(message)
        await sagas.run(asyncio.Event())  # until the kill


if __name__ == "__main__":
    journal_url, port, outgoing, status, step, path = sys.argv[1:]
    asyncio.run(main(journal_url, int(port), outgoing, status, step, path))
