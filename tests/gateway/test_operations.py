"""The operations API: liveness, readiness (journal, broker), metrics (admin scope), the
OpenAPI documents and the docs pages."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.operations import IMPLEMENTED
from gateway.spec import SpecName
from tests.gateway.harness import AISP, PUBLIC_URL, running_gateway
from tests.gateway.obie import check_error, shared_spec
from tests.support import on_event_loop


def test_liveness_and_readiness(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, with_clearing=True) as h:
            assert (await h.http.get("/healthz")).json() == {"status": "ok"}
            ready = await h.http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ok", "checked": ["journal", "broker"]}
            assert h.clearing is not None
            await asyncio.to_thread(h.clearing.stop)  # the broker connection is gone
            down = await h.http.get("/readyz")
            assert down.status_code == 503 and down.json()["failed"] == ["broker"]

    scenario()


def test_metrics_need_the_admin_scope(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            check_error(await h.http.get("/metrics"), 401)
            plain = await h.client_token("tpp-two")
            check_error(await h.http.get("/metrics", headers=h.auth(plain, "tpp-two")), 403)
            admin = await h.client_token(scope="admin accounts")
            await h.http.get(f"{AISP}/account-access-consents/aac-x", headers=h.auth(admin))
            response = await h.http.get("/metrics", headers=h.auth(admin))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = response.text
            assert (
                'isobridge_gateway_requests_total{method="GET",'
                'route="/open-banking/v4.0/aisp/account-access-consents/{consent_id}",'
                'status="404"} 1.0'
            ) in text
            assert "isobridge_gateway_consents 0.0" in text

    scenario()


def test_served_openapi_documents_and_docs(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            names: tuple[tuple[str, SpecName], ...] = (
                ("aisp", "account-info"),
                ("pisp", "payment-initiation"),
            )
            for prefix, name in names:
                document = (await h.http.get(f"/open-banking/v4.0/{prefix}/openapi.json")).json()
                assert document["servers"] == [{"url": f"{PUBLIC_URL}/open-banking/v4.0/{prefix}"}]
                served = {
                    p: sorted(k for k in item if k != "parameters")
                    for p, item in document["paths"].items()
                }
                assert served == {p: sorted(m) for p, m in IMPLEMENTED[name].items()}
                published = shared_spec(name)
                for path, methods in IMPLEMENTED[name].items():
                    for method in methods:
                        assert (
                            document["paths"][path][method]
                            == published.document["paths"][path][method]
                        )
                page = await h.http.get(f"/docs/{prefix}")
                assert f"/open-banking/v4.0/{prefix}/openapi.json" in page.text
            assert (await h.http.get("/docs")).headers["location"] == "/docs/pisp"

    scenario()


def test_dead_letters_listed_and_replayed(tmp_path: Path) -> None:
    from routing.transport import Outcome, as_batch_handler, open_transport
    from tests.routing.conftest import make_topology, message, wait_until

    topology = make_topology()
    transport = open_transport("memory://", topology)
    transport.start()
    consumer = transport.consume(
        "core", as_batch_handler(lambda d: Outcome.dead_letter("card 4111111111111111 refused"))
    )
    transport.publish(message(0))
    transport.publish(message(1))
    wait_until(lambda: len(transport.dead_letters("core")) == 2, what="two dead letters")
    consumer.stop()

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, dead_letters=transport) as h:
            admin = await h.client_token(scope="admin")
            url = "/ops/dead-letters/core"
            check_error(await h.http.get(url), 401)
            plain = await h.client_token("tpp-two")
            check_error(await h.http.get(url, headers=h.auth(plain, "tpp-two")), 403)
            listed = (await h.http.get(url, headers=h.auth(admin))).json()["Data"]["DeadLetter"]
            assert sorted(d["MessageId"] for d in listed) == ["m-0", "m-1"]
            assert all("4111111111111111" not in d["Reason"] for d in listed)
            check_error(await h.http.get("/ops/dead-letters/nowhere", headers=h.auth(admin)), 404)
            bad = await h.http.post(
                f"{url}/replay", json={"MessageIds": "m-0"}, headers=h.auth(admin)
            )
            check_error(bad, 400, "UK.OBIE.Field.Invalid")
            replayed = await h.http.post(
                f"{url}/replay", json={"MessageIds": ["m-0"]}, headers=h.auth(admin)
            )
            assert replayed.json()["Data"]["Replayed"] == ["m-0"]
            left = (await h.http.get(url, headers=h.auth(admin))).json()["Data"]["DeadLetter"]
            assert [d["MessageId"] for d in left] == ["m-1"]

    try:
        scenario()
    finally:
        transport.close()
