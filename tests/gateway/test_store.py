"""The gateway's tables: migrations, insert-or-ignore, and a gateway that restarts on its
database (consents, payments, idempotent replays and tokens survive); on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, inspect, select, update
from sqlalchemy.engine import Engine

from gateway.idempotency import Claimed, IdempotencyStore
from gateway.store import (
    HEAD,
    RowReader,
    create_engine,
    current_revision,
    downgrade,
    insert_or_ignore,
    payments_table,
    signing_keys_table,
    transaction,
    upgrade,
)
from tests.gateway.harness import (
    AISP,
    ALICE_EUR,
    PISP,
    account_consent_body,
    payment_consent_body,
    running_gateway,
)
from tests.gateway.obie import check_error, check_response
from tests.support import on_event_loop

GATEWAY_TABLES = {
    "gateway_authorization_codes",
    "gateway_consents",
    "gateway_dpop_proofs",
    "gateway_idempotency",
    "gateway_payments",
    "gateway_sca_enrolments",
    "gateway_sca_failures",
    "gateway_signing_keys",
}


def _tables(engine: Engine) -> set[str]:
    return {t for t in inspect(engine).get_table_names() if t.startswith("gateway_")}


def test_migrations_up_and_down(gateway_engine: Engine) -> None:
    assert current_revision(gateway_engine) == HEAD
    assert _tables(gateway_engine) == {*GATEWAY_TABLES, "gateway_alembic_version"}
    downgrade(gateway_engine, "base")
    assert current_revision(gateway_engine) is None
    assert _tables(gateway_engine) <= {"gateway_alembic_version"}
    upgrade(gateway_engine)
    upgrade(gateway_engine)  # again: nothing to do
    assert current_revision(gateway_engine) == HEAD


def test_the_sca_migration_goes_down_to_the_first_schema_and_up_again(
    gateway_engine: Engine,
) -> None:
    downgrade(gateway_engine, "0001")
    assert current_revision(gateway_engine) == "0001"
    assert _tables(gateway_engine) == {*GATEWAY_TABLES, "gateway_alembic_version"} - {
        "gateway_sca_enrolments",
        "gateway_sca_failures",
    }
    upgrade(gateway_engine)
    assert current_revision(gateway_engine) == HEAD == "0003"
    assert {"gateway_sca_enrolments", "gateway_sca_failures"} <= _tables(gateway_engine)


def test_insert_or_ignore_says_whether_it_inserted(gateway_engine: Engine) -> None:
    row = {"kid": "k1", "alg": "ES256", "private_pem": "-", "created_at": 1.0}
    with gateway_engine.begin() as connection:
        assert insert_or_ignore(connection, signing_keys_table, row, ("kid",))
        assert not insert_or_ignore(
            connection, signing_keys_table, {**row, "alg": "PS256"}, ("kid",)
        )
        kept = connection.execute(select(signing_keys_table.c.alg)).scalars().all()
    assert kept == ["ES256"]


def test_a_restarted_gateway_keeps_its_state(gateway_engine: Engine, tmp_path: Path) -> None:
    consents = f"{PISP}/domestic-payment-consents"
    payments = f"{PISP}/domestic-payments"

    @on_event_loop
    async def scenario() -> None:
        consent_body = payment_consent_body("3.00")
        async with running_gateway(tmp_path, engine=gateway_engine) as h:
            tpps = h.tpps
            token = await h.client_token(scope="accounts payments")
            created = await h.http.post(
                consents, json=consent_body, headers=h.auth(token, **{"x-idempotency-key": "c1"})
            )
            consent_id = check_response(created)["Data"]["ConsentId"]
            payer = await h.authorise(consent_id, "payments")
            body = copy.deepcopy(consent_body)
            body["Data"]["ConsentId"] = consent_id
            first = await h.http.post(
                payments, json=body, headers=h.auth(payer, **{"x-idempotency-key": "p1"})
            )
            assert first.status_code == 201, first.text
            access = await h.http.post(
                f"{AISP}/account-access-consents",
                json=account_consent_body(),
                headers=h.auth(token),
            )
            reader = await h.authorise(check_response(access)["Data"]["ConsentId"], "accounts")
        # a new process on the same database: new application, stores and server objects
        async with running_gateway(tmp_path, engine=gateway_engine, tpps=tpps) as h:
            replay = await h.http.post(
                payments, json=body, headers=h.auth(payer, **{"x-idempotency-key": "p1"})
            )
            assert (replay.status_code, replay.content) == (201, first.content)
            changed = copy.deepcopy(body)
            changed["Risk"] = {"PaymentContextCode": "EcommerceGoods"}
            check_error(
                await h.http.post(
                    payments, json=changed, headers=h.auth(payer, **{"x-idempotency-key": "p1"})
                ),
                400,
            )
            again = await h.http.post(  # a new key: the consent was used before the restart
                payments, json=body, headers=h.auth(payer, **{"x-idempotency-key": "p2"})
            )
            check_error(again, 403)
            payment_id = check_response(first)["Data"]["DomesticPaymentId"]
            token = await h.client_token(scope="payments")
            got = await h.http.get(f"{payments}/{payment_id}", headers=h.auth(token))
            assert check_response(got)["Data"]["ConsentId"] == consent_id
            consent = await h.http.get(f"{consents}/{consent_id}", headers=h.auth(token))
            assert check_response(consent)["Data"]["Status"] == "AUTH"
            # the tokens issued before the restart verify (the signing keys are kept)
            balances = await h.http.get(
                f"{AISP}/accounts/{ALICE_EUR.account_id}/balances", headers=h.auth(reader)
            )
            assert balances.status_code == 200, balances.text
        with gateway_engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(payments_table))
            assert count.scalar_one() == 1

    scenario()


def test_two_gateways_on_one_database_share_their_state(
    gateway_engine: Engine, tmp_path: Path
) -> None:
    """Two gateways on one database at once, as two processes are: a consent made on one
    is authorised on the other, with a code issued by one and redeemed on the other, and
    read on both; revoked on one, the other refuses it at once (its cache checks the status)."""

    for name in ("one", "two"):
        (tmp_path / name).mkdir()

    @on_event_loop
    async def scenario() -> None:
        async with (
            running_gateway(tmp_path / "one", engine=gateway_engine) as one,
            running_gateway(tmp_path / "two", engine=gateway_engine, tpps=one.tpps) as two,
        ):
            for h in (one, two):
                h.built.services.consents.cache_ttl = 60  # long: revoked at once all the same
            token = await one.client_token(scope="accounts")
            created = await one.http.post(
                f"{AISP}/account-access-consents",
                json=account_consent_body(),
                headers=one.auth(token),
            )
            consent_id = check_response(created)["Data"]["ConsentId"]
            code = await two.authorisation_code(consent_id, "accounts")
            reader = await one.redeem(code)
            for h in (one, two):
                accounts = await h.http.get(f"{AISP}/accounts", headers=h.auth(reader))
                assert accounts.status_code == 200, accounts.text
            gone = await two.http.delete(
                f"{AISP}/account-access-consents/{consent_id}", headers=two.auth(token)
            )
            assert gone.status_code == 204, gone.text
            refused = await one.http.get(f"{AISP}/accounts", headers=one.auth(reader))
            check_error(refused, 403)

    scenario()


def test_one_key_sent_at_once_makes_one_payment(gateway_engine: Engine, tmp_path: Path) -> None:
    """Requests with one ``x-idempotency-key`` racing: one runs, the others wait for its
    answer and get it (the claim, not a lock in the process, decides)."""

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, engine=gateway_engine) as h:
            consent_body = payment_consent_body("1.25")
            token = await h.client_token(scope="payments")
            created = await h.http.post(
                f"{PISP}/domestic-payment-consents",
                json=consent_body,
                headers=h.auth(token, **{"x-idempotency-key": "c"}),
            )
            consent_id = check_response(created)["Data"]["ConsentId"]
            payer = await h.authorise(consent_id, "payments")
            body = copy.deepcopy(consent_body)
            body["Data"]["ConsentId"] = consent_id
            answers = await asyncio.gather(
                *(
                    h.http.post(
                        f"{PISP}/domestic-payments",
                        json=body,
                        headers=h.auth(payer, **{"x-idempotency-key": "same"}),
                    )
                    for _ in range(4)
                )
            )
            assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
            assert len({a.content for a in answers}) == 1
        with gateway_engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(payments_table))
            assert count.scalar_one() == 1

    scenario()


def test_a_key_another_process_holds_too_long_is_a_409(
    gateway_engine: Engine, tmp_path: Path
) -> None:
    """While another process runs the first request with a key, a repeat waits; past
    ``wait`` it is told to retry (409, ``Retry-After``), and once the first is answered the
    repeat gets that answer."""

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, engine=gateway_engine) as h:
            store = h.built.services.idempotency
            store.wait = 0.2
            token = await h.client_token(scope="payments")
            body = payment_consent_body("1.00")
            raw = json.dumps(body).encode()
            other = IdempotencyStore(gateway_engine)  # the other process's view
            claim = other.claim("tpp-one", "domestic-payment-consents", "held", other.digest(raw))
            assert isinstance(claim, Claimed)
            headers = h.auth(
                token, **{"x-idempotency-key": "held", "content-type": "application/json"}
            )
            url = f"{PISP}/domestic-payment-consents"
            busy = await h.http.post(url, content=raw, headers=headers)
            check_error(busy, 409)
            assert busy.headers["retry-after"] == "1"
            other.complete(
                "tpp-one", "domestic-payment-consents", "held", claim.holder,
                status=201, body=b'{"answered": "elsewhere"}', headers={},
            )  # fmt: skip
            answered = await h.http.post(url, content=raw, headers=headers)
            assert (answered.status_code, answered.json()) == (201, {"answered": "elsewhere"})

    scenario()


@pytest.mark.parametrize("memory", [False, True])
def test_a_row_reader_sees_each_commit_and_leaves_the_engine_whole(
    gateway_engine: Engine, memory: bool
) -> None:
    engine = create_engine("sqlite://") if memory else gateway_engine
    if memory:
        upgrade(engine)
    table = signing_keys_table
    reader = RowReader(engine, select(table.c.alg).where(table.c.kid == bindparam("kid")))
    assert reader.first(kid="k1") is None
    row = {"kid": "k1", "alg": "ES256", "private_pem": "-", "created_at": 0.0}
    with transaction(engine) as connection:
        insert_or_ignore(connection, table, row, ("kid",))
    assert reader.first(kid="k1") == ("ES256",)
    with transaction(engine) as connection:  # the engine's own connections still work
        connection.execute(update(table).values(alg="EdDSA"))
    assert reader.first(kid="k1") == ("EdDSA",)
    if not memory:  # (an in-memory database ends with its engine)
        engine.dispose()  # closes the reader's connection; the next read opens another
        assert reader.first(kid="k1") == ("EdDSA",)
    with transaction(engine) as connection:
        assert connection.execute(select(func.count()).select_from(table)).scalar_one() == 1
