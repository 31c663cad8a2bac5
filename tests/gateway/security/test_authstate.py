"""The built-in authorization server's state in the database: codes redeemed once among
racing processes, by hash, and signing keys shared and rotated; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.security.authstate import AuthorizationCode, AuthorizationState
from gateway.security.jose import SigningKey
from gateway.store import authorization_codes_table

GRANT = AuthorizationCode(
    "tpp-1", "https://tpp.example/cb", "c" * 43, "accounts", "aac-1", "p", 60.0
)


def test_a_code_is_redeemed_once_by_racing_processes(gateway_engine: Engine) -> None:
    states = [AuthorizationState(gateway_engine, clock=lambda: 0.0) for _ in range(2)]
    states[0].save_code("the-code", GRANT)
    with gateway_engine.connect() as connection:
        kept = connection.execute(select(authorization_codes_table.c.code_sha256)).scalars().all()
    assert len(kept) == 1 and "the-code" not in kept[0]  # kept by its hash only
    start = threading.Barrier(8)

    def redeem(n: int) -> AuthorizationCode | None:
        start.wait()
        return states[n % 2].redeem("the-code")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(redeem, range(8)))
    assert [r for r in results if r is not None] == [GRANT]
    assert states[0].redeem("unknown") is None


def test_expired_codes_are_deleted_when_new_ones_are_saved(gateway_engine: Engine) -> None:
    now = [0.0]
    state = AuthorizationState(gateway_engine, clock=lambda: now[0])
    state.save_code("old", GRANT)
    now[0] = 61.0
    state.save_code("new", GRANT)
    assert state.redeem("old") is None


def test_signing_keys_are_shared_and_rotated(gateway_engine: Engine) -> None:
    now = [1.0]
    one = AuthorizationState(gateway_engine, clock=lambda: now[0])
    two = AuthorizationState(gateway_engine, clock=lambda: now[0])
    assert one.signing_keys() == []
    first = SigningKey.generate("ES256", kid="k1")
    one.add_key(first, retain=2)
    (loaded,) = two.signing_keys()
    assert loaded.kid == "k1" and loaded.public_jwk() == first.public_jwk()
    for n, alg in ((2, "PS256"), (3, "EdDSA")):
        now[0] = float(n)
        kept = two.add_key(SigningKey.generate(alg, kid=f"k{n}"), retain=2)
    assert [key.kid for key in kept] == ["k3", "k2"]  # newest first, k1 forgotten
    assert [key.kid for key in one.signing_keys()] == ["k3", "k2"]
