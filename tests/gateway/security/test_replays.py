"""DPoP proof replays: one behaviour suite over both ledgers (this process's memory, and
the gateway's database on SQLite and PostgreSQL, shared by two processes' ledgers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.security.jose import JoseError, SigningKey
from gateway.security.replays import SqlProofReplays
from gateway.security.tokens import DpopVerifier, MemoryProofReplays, ProofReplays
from gateway.store import create_engine, upgrade
from tests.gateway.harness import dpop_proof
from tests.support import migrated_database

Ledgers = Callable[[], ProofReplays]
"""Makes a ledger; each call is another process's view of the same one."""


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledgers]:
    if request.param == "memory":
        shared = MemoryProofReplays()
        yield lambda: shared
        return
    with migrated_database(request.param, tmp_path, "gateway", create_engine, upgrade) as db:
        url, options = db
        engine = create_engine(url, **options)
        yield lambda: SqlProofReplays(engine)
        engine.dispose()


def test_a_key_is_new_once_within_the_window(ledgers: Ledgers) -> None:
    one, two = ledgers(), ledgers()
    assert one.first_use("jkt:a", 1_000.0, 120.0)
    assert not one.first_use("jkt:a", 1_010.0, 120.0)
    assert not two.first_use("jkt:a", 1_119.0, 120.0)  # the other process refuses it too
    assert two.first_use("jkt:b", 1_119.0, 120.0)
    assert one.first_use("jkt:a", 1_121.0, 120.0)  # forgotten after the window


def test_racing_presentations_of_one_proof_pass_once(ledgers: Ledgers) -> None:
    views = [ledgers() for _ in range(2)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: views[n % 2].first_use("k", 5.0, 60.0), range(8)))
    assert results.count(True) == 1


def test_a_replayed_proof_is_refused_by_another_verifier(ledgers: Ledgers) -> None:
    now = [1_700_000_000.0]
    key = SigningKey.generate("ES256", kid="tpp")
    verifiers = [
        DpopVerifier(window=60.0, clock=lambda: now[0], replays=ledgers()) for _ in range(2)
    ]
    url = "https://api.bank.test/open-banking/v4.0/aisp/accounts"
    proof = dpop_proof(key, "GET", url, iat=int(now[0]))
    verifiers[0].verify(proof, method="GET", url=url)
    with pytest.raises(JoseError, match="used before"):
        verifiers[1].verify(proof, method="GET", url=url)
    verifiers[1].verify(dpop_proof(key, "GET", url, iat=int(now[0])), method="GET", url=url)
