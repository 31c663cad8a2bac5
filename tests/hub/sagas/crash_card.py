"""A hub process serving one card purchase whose answer the mainframe drops, killed (SIGKILL,
no clean-up) at a step of the card reversal saga: ``python -m tests.hub.sagas.crash_card
JOURNAL_URL MAINFRAME_PORT POINT STAN``.

``stored``: killed right after the saga (the reversal) was stored, before the acquirer
heard its ``91``. ``reverse``: the saga stored, it prints ``stored`` and waits for a line on
stdin (the test lets the mainframe answer again), then runs the saga and is killed right
after the mainframe applied the reversal, before the step was recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from canonical_model.messages import CanonicalMessage
from hub.config_file import MainframeConfig
from hub.core import CoreBanking, corebank_connector
from hub.sagas.card import CardReversals
from hub.sagas.runner import SagaRunner
from hub.sagas.store import SagaStore
from journal.store import Journal
from tests.hub.sagas.conftest import KEYS
from tests.hub.sagas.crash_hub import killed_after
from tests.hub.test_core import purchase

LEASE = 1.0


class StoredThenKilled(CardReversals):
    """Dies as soon as the reversal is committed."""

    def store(self, reversal: CanonicalMessage) -> None:
        super().store(reversal)
        os.kill(os.getpid(), signal.SIGKILL)


async def main(journal_url: str, port: int, point: str, stan: int) -> None:
    journal = Journal.open(journal_url, KEYS)
    card = StoredThenKilled() if point == "stored" else CardReversals()
    config = MainframeConfig(port=port, connections=1, timeout=0.5)
    async with corebank_connector(config) as connector:
        await connector.wait_connected(1)
        core = CoreBanking(connector, reversals=card)
        runner = SagaRunner(
            SagaStore(journal),
            [card.definition],
            killed_after("reverse", card.actions),
            owner="hub-killed",
            lease=LEASE,
        )
        card.attach(runner, core)
        reply = await core.handle(purchase(stan, "9.00"))
        status = reply.status
        assert status is not None and status.original is not None
        print(f"stored {status.original.code}", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await runner.run(asyncio.Event())  # until the kill


if __name__ == "__main__":
    journal_url, port, point, stan = sys.argv[1:]
    asyncio.run(main(journal_url, int(port), point, int(stan)))
