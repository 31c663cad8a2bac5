"""The operations console's HTTP side: the page and its headers, ``/ops/summary``,
``/ops/trace`` and the dead-letter overview, against the real application (real journal,
real memory transport)."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

from gateway.console import CONSOLE_CSP
from journal import Event, EventKind, TransactionIds
from tests.gateway.harness import AISP, running_gateway
from tests.gateway.obie import check_error
from tests.support import on_event_loop


class _Markup(HTMLParser):
    """Every tag with its attributes, and whether any script has a body."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def _event(
    kind: EventKind, number: int, at: dt.datetime, body: dict[str, object] | None = None
) -> Event:
    ids = TransactionIds(
        f"hub-{number}", end_to_end_id=f"RRN{number:09d}", stan=f"{number:06d}",
        terminal_id="TERM0001", uetr=f"1b4e28ba-2fa1-41d2-883f-{number:012x}",
    )  # fmt: skip
    return Event(kind, "acme", ids, at, body or {})


def _transaction(number: int, received: dt.datetime, latency_ms: float) -> list[Event]:
    """A card transaction as the hub journals it: received, routed, answered."""
    answered = received + dt.timedelta(milliseconds=latency_ms)
    return [
        _event(EventKind.RECEIVED, number, received, {"edge": "pos", "kind": "financial"}),
        _event(EventKind.ROUTED, number, received + dt.timedelta(milliseconds=1),
               {"destination": "core"}),
        _event(EventKind.ANSWERED, number, answered, {"status": "ACSC", "code": "00"}),
    ]  # fmt: skip


def test_the_page_is_static_with_a_strict_policy(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            page = await h.http.get("/console", headers={"accept": "text/html,*/*;q=0.8"})
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["content-security-policy"] == CONSOLE_CSP
            assert "script-src 'self';" in CONSOLE_CSP and "unsafe" not in CONSOLE_CSP
            assert page.headers["x-content-type-options"] == "nosniff"
            markup = _Markup()
            markup.feed(page.text)
            assert not markup.inline_script
            for tag, attributes in markup.tags:
                assert "style" not in attributes and tag != "style", tag
                assert not any(name.startswith("on") for name in attributes), (tag, attributes)
            sources = [a["src"] for t, a in markup.tags if t == "script"]
            sheets = [a["href"] for t, a in markup.tags if t == "link"]
            assert sources == ["/console/console.js"] and sheets == ["/console/console.css"]
            script = await h.http.get("/console/console.js")
            assert script.headers["content-type"] == "text/javascript; charset=utf-8"
            assert script.headers["content-security-policy"] == CONSOLE_CSP
            code = script.text
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in code.replace("no innerHTML, no insertAdjacentHTML, no "
                                                "document.write", ""), sink  # fmt: skip
            style = await h.http.get("/console/console.css")
            assert style.headers["content-type"] == "text/css; charset=utf-8"
            check_error(await h.http.get("/console/other.js"), 404)

    scenario()


def test_the_summary_needs_admin_and_reads_the_journal_and_the_gateway(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            check_error(await h.http.get("/ops/summary"), 401)
            plain = await h.client_token("tpp-two")
            check_error(await h.http.get("/ops/summary", headers=h.auth(plain, "tpp-two")), 403)
            admin = await h.client_token(scope="admin accounts")
            first = (await h.http.get("/ops/summary", headers=h.auth(admin))).json()["Data"]
            assert first["Journal"]["Answered"] == 0 and first["Journal"]["LatencyMs"] is None
            now = dt.datetime.now(dt.UTC)
            h.journal.record(
                _transaction(1, now - dt.timedelta(seconds=3), 40.0)
                + _transaction(2, now - dt.timedelta(seconds=2), 80.0)
            )
            for _ in range(3):
                await h.http.get(f"{AISP}/account-access-consents/aac-x", headers=h.auth(admin))
            data = (await h.http.get("/ops/summary", headers=h.auth(admin))).json()["Data"]
            journal = data["Journal"]
            assert journal["Answered"] == 2
            assert journal["EventsPerSecond"] == 0.6  # six events in the last ten seconds
            assert journal["LatencyMs"] == {"P50": 40.0, "P95": 80.0, "Max": 80.0}
            assert sum(journal["Series"]["EventsPerSecond"]) == 6
            assert len(journal["Series"]["EventsPerSecond"]) == data["WindowSeconds"] == 60
            assert sorted(v for v in journal["Series"]["LatencyMs"] if v is not None) == [40, 80]
            gateway = data["Gateway"]
            # the three OBIE requests and the two token requests; not the console's own polls
            assert gateway["Requests"] == 3 + 2
            assert gateway["RequestsPerSecond"] > 0 and gateway["MeanLatencyMs"] > 0

    scenario()


def test_trace_by_any_id_and_unknown_ids(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            start = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
            h.journal.record(_transaction(7, start, 12.5))
            admin = await h.client_token(scope="admin")
            check_error(await h.http.get("/ops/trace?id=hub-7"), 401)
            for identifier in ("hub-7", "RRN000000007", "7@TERM0001", "000007@TERM0001"):
                found = await h.http.get("/ops/trace", params={"id": identifier},
                                         headers=h.auth(admin))  # fmt: skip
                assert found.status_code == 200, found.text
                data = found.json()["Data"]
                assert data["Id"] == identifier
                (transaction,) = data["Transaction"]
                assert transaction["TransactionId"] == "hub-7"
                assert (transaction["Status"], transaction["DurationMs"]) == ("ACSC", 12.5)
                events = transaction["Event"]
                assert [e["Kind"] for e in events] == ["received", "routed", "answered"]
                assert [e["SinceFirstMs"] for e in events] == [0.0, 1.0, 12.5]
                assert [e["StepMs"] for e in events] == [0.0, 1.0, 11.5]
                assert events[0]["At"] == "2026-11-29T09:00:00.000000Z"
                assert events[2]["Body"] == {"status": "ACSC", "code": "00"}
            unknown = await h.http.get("/ops/trace?id=nope-1", headers=h.auth(admin))
            check_error(unknown, 404, "UK.OBIE.Resource.NotFound")
            message = unknown.json()["Errors"][0]["Message"]
            assert message.startswith("no transaction with id 'nope-1' in the journal")
            card = await h.http.get("/ops/trace?id=4111111111111111", headers=h.auth(admin))
            check_error(card, 404)
            assert "4111111111111111" not in card.text
            check_error(await h.http.get("/ops/trace?id=%20", headers=h.auth(admin)), 400)

    scenario()


def test_the_dead_letter_overview(tmp_path: Path) -> None:
    from routing.transport import Outcome, as_batch_handler, open_transport
    from tests.routing.conftest import make_topology, message, wait_until

    transport = open_transport("memory://", make_topology())
    transport.start()
    consumer = transport.consume(
        "core", as_batch_handler(lambda d: Outcome.dead_letter("card 4111111111111111 closed"))
    )
    transport.publish(message(0))
    wait_until(lambda: len(transport.dead_letters("core")) == 1, what="a dead letter")
    consumer.stop()

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, dead_letters=transport) as h:
            check_error(await h.http.get("/ops/dead-letters"), 401)
            admin = await h.client_token(scope="admin")
            data = (await h.http.get("/ops/dead-letters", headers=h.auth(admin))).json()["Data"]
            counts = {d["Name"]: d["Count"] for d in data["Destination"]}
            names = [d.name for d in transport.topology.destinations]
            assert list(counts) == [*names, "unroutable"]
            assert counts["core"] == 1 and sum(counts.values()) == 1
            (core,) = [d for d in data["Destination"] if d["Name"] == "core"]
            (dead,) = core["DeadLetter"]
            assert dead["MessageId"] == "m-0" and "4111111111111111" not in dead["Reason"]

    try:
        scenario()
    finally:
        transport.close()


def test_without_a_transport_the_overview_is_empty(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            admin = await h.client_token(scope="admin")
            response = await h.http.get("/ops/dead-letters", headers=h.auth(admin))
            assert response.json() == {"Data": {"Destination": []}}

    scenario()


def test_another_source_of_figures_replaces_one_function(tmp_path: Path) -> None:
    import dataclasses

    import httpx

    from gateway.app import create_app

    calls: list[int] = []

    async def from_elsewhere() -> dict[str, object]:
        calls.append(1)
        return {"At": "2026-11-29T12:00:00.000000Z", "Source": "prometheus", "Calls": len(calls)}

    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            services = dataclasses.replace(h.built.services, console_summary=from_elsewhere)
            app = create_app(services)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=str(h.http.base_url)) as c:
                admin = await h.client_token(scope="admin")
                check_error(await c.get("/ops/summary"), 401)
                for expected in (1, 2):
                    data = (await c.get("/ops/summary", headers=h.auth(admin))).json()["Data"]
                    assert data["Source"] == "prometheus" and data["Calls"] == expected

    scenario()
