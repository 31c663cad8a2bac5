"""A consumer process that kills itself (SIGKILL) mid-batch: after its effects of one batch
are committed, before the acks leave. Run by tests/routing/test_amqp.py::

    python -m tests.routing.crash_consumer URL PREFIX DB_PATH KILL_AT_BATCH [PAUSE [sac]]

PAUSE: seconds to spend on each batch (default 0); ``sac``: the ``core`` destination has a
single active consumer (tests/routing/test_cluster.py, order across instances).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from routing.transport import Delivery, Outcome
from tests.routing.conftest import make_topology_named
from tests.routing.effects import EffectStore

__all__ = ["main"]


def main(argv: Sequence[str]) -> None:
    url, prefix, db_path, kill_at, *rest = argv
    pause = float(rest[0]) if rest else 0.0
    options = {"single_active_consumer": True} if rest[1:] == ["sac"] else {}
    store = EffectStore(Path(db_path))
    batches = 0

    def handle(batch: Sequence[Delivery]) -> list[Outcome]:
        nonlocal batches
        time.sleep(pause)
        outcomes = store.handle(batch)
        batches += 1
        if batches == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        return outcomes

    from routing.amqp import AmqpTransport

    transport = AmqpTransport(url, make_topology_named(prefix, **options))
    transport.start(timeout=20)
    transport.consume("core", handle, prefetch=200, batch_size=50, batch_wait=0.5)
    signal.pause()


if __name__ == "__main__":
    main(sys.argv[1:])
