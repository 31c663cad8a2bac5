"""The TCP server over real sockets: framings, pipelining, concurrency, bad input, faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.fixedwidth import RecordDecodeError
from mainframe_sim.client import MainframeClient
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.records import Records
from mainframe_sim.seed import SEED_ACCOUNTS
from mainframe_sim.server import FRAMINGS, LedgerBatcher, MainframeServer
from mainframe_sim.transactions import Reply
from tests.mainframe_sim.samples import ANNA, JONAS, request

RECORDS = Records()


@contextlib.asynccontextmanager
async def serving(ledger: Ledger, **options: Any) -> AsyncIterator[tuple[MainframeServer, int]]:
    server = MainframeServer(ledger, **options)
    _, port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def connected(port: int, framing: str = "len2") -> AsyncIterator[MainframeClient]:
    client = await MainframeClient.connect("127.0.0.1", port, framing=framing, records=RECORDS)
    try:
        yield client
    finally:
        await client.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())  # type: ignore[arg-type]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_each_framing_answers_requests(ledger: Ledger, framing: str) -> None:
    async def scenario() -> None:
        async with serving(ledger, framing=framing) as (_, port), connected(port, framing) as c:
            enquiry = await c.request(request("BALQ", "Q1"))
            assert (enquiry.result_code, enquiry.ledger_balance, enquiry.currency) == (
                "00", 112345, "EUR",
            )  # fmt: skip
            debit = await c.request(request("DEBT", "D1", amount="12.34"))
            assert (debit.result_code, debit.posting_ref, debit.ledger_balance) == (
                "00", "D1", 111111,
            )  # fmt: skip

    run(scenario)
    assert ledger.balances(ANNA) == (111111, 111111, "EUR")


def test_length_header_framing_on_the_wire(ledger: Ledger) -> None:
    record = RECORDS.encode_request(request("BALQ", "Q1"))

    async def scenario() -> None:
        async with serving(ledger, framing="len4") as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x00\x00\x00\x00")  # a keep-alive: ignored
            writer.write(len(record).to_bytes(4, "big") + record)
            header = await reader.readexactly(4)
            reply = await reader.readexactly(200)
            writer.close()
            await writer.wait_closed()
        assert header == b"\x00\x00\x00\xc8"
        assert RECORDS.decode_reply(reply).result_code == "00"

    run(scenario)


def test_cics_framing_checks_the_transaction_id(ledger: Ledger) -> None:
    record = RECORDS.encode_request(request("BALQ", "Q1"))

    async def scenario() -> None:
        async with serving(ledger, framing="cics") as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write("XXXX".encode("cp037") + record + "CBRQ".encode("cp037") + record)
            first = RECORDS.decode_reply(await reader.readexactly(200))
            second = RECORDS.decode_reply(await reader.readexactly(200))
            writer.close()
            await writer.wait_closed()
        assert (first.result_code, first.reason_text) == ("30", "TRANID @0: 'XXXX' is not CBRQ")
        assert (first.posting_ref, second.result_code) == ("Q1", "00")

    run(scenario)


IN_LOOP_OR_THREAD = pytest.mark.parametrize("in_loop", [True, False], ids=["loop", "thread"])


def test_an_embedded_ledger_is_applied_on_the_loop(ledger: Ledger) -> None:
    assert ledger.embedded
    assert LedgerBatcher(ledger).in_loop


@IN_LOOP_OR_THREAD
def test_pipelined_requests_are_answered_in_order(ledger: Ledger, in_loop: bool) -> None:
    async def scenario() -> None:
        async with serving(ledger, in_loop=in_loop) as (_, port), connected(port) as client:
            for n in range(60):
                client.send(RECORDS.encode_request(request("CRDT", f"P{n}", amount="1")))
            await client.drain()
            replies = [RECORDS.decode_reply(await client.receive(10)) for _ in range(60)]
        assert [r.posting_ref for r in replies] == [f"P{n}" for n in range(60)]
        assert [r.ledger_balance for r in replies] == [112345 + 100 * n for n in range(1, 61)]

    run(scenario)


@IN_LOOP_OR_THREAD
def test_ledger_stays_balanced_under_concurrent_clients_and_repeats(
    ledger: Ledger, in_loop: bool
) -> None:
    accounts = [seed.number for seed in SEED_ACCOUNTS[:11]]
    clients, rounds = 16, 25

    async def client_session(port: int, worker: int) -> list[bytes]:
        seen: list[bytes] = []
        async with connected(port, "len2") as client:
            for i in range(rounds):
                source = (worker + i) % 11
                target = (source + 1 + i % 10) % 11
                ref = f"C{worker}-{i}"
                transfer = request("XFER", ref, accounts[source], "0.10", contra=accounts[target])
                batch = [transfer, request("DEBT", ref + "D", accounts[source], "0.05"), transfer]
                if i % 5 == 0:
                    batch += [request("REVS", ref + "R", "", orig=ref)] * 2
                for fields in batch:  # pipelined
                    client.send(RECORDS.encode_request(fields))
                await client.drain()
                answers = [await client.receive(30) for _ in batch]
                assert answers[0] == answers[2]  # the repeat: the stored reply, byte for byte
                assert {RECORDS.decode_reply(a).result_code for a in answers} == {"00"}
                seen.extend(answers)
        return seen

    async def scenario() -> None:
        async with serving(ledger, in_loop=in_loop) as (server, port):
            await asyncio.gather(*(client_session(port, n) for n in range(clients)))
            assert server.stats.requests == clients * (rounds * 3 + 5 * 2)
            assert server.batches < server.stats.requests  # batched commits

    run(scenario)
    check = ledger.check()
    assert check.balanced, check
    seeded = sum(1 for s in SEED_ACCOUNTS if s.opening)
    assert check.postings == seeded + clients * (rounds * 2 + 5)
    eur = sum(a.ledger_balance for a in ledger.accounts() if a.currency == "EUR")
    assert (
        eur == sum(s.opening for s in SEED_ACCOUNTS if s.currency == "EUR") - clients * rounds * 5
    )


def test_malformed_records_get_a_format_error_and_the_link_stays_up(ledger: Ledger) -> None:
    good = RECORDS.encode_request(request("DEBT", "D1", amount="1"))
    bad_amount = good[:120] + b"\xff" * 8 + good[128:]

    async def scenario() -> None:
        async with serving(ledger) as (server, port), connected(port) as client:
            client.send(good[:150])
            client.send(bad_amount)
            client.send(good)
            await client.drain()
            short, packed, fine = [RECORDS.decode_reply(await client.receive(10)) for _ in "abc"]
            assert server.stats.format_errors == 2
        assert (short.result_code, short.reason_text) == ("30", "record length 150, expected 200")
        assert (short.tran_code, short.posting_ref) == ("DEBT", "D1")
        assert packed.result_code == "30"
        assert packed.reason_text.startswith("CB-AMOUNT @120: ")
        assert fine.result_code == "00"

    run(scenario)


def test_an_oversized_length_is_answered_then_the_link_closed(ledger: Ledger) -> None:
    async def scenario() -> None:
        async with serving(ledger) as (_, port), connected(port) as client:
            client.send_raw(b"\xff\xff" + b"\x40" * 100)
            await client.drain()
            reply = RECORDS.decode_reply(await client.receive(10))
            assert reply.result_code == "30"
            assert reply.reason_text.startswith("framing @0: declared length 65535")
            with pytest.raises(ConnectionResetError):
                await client.receive(10)

    run(scenario)


def faulty(plan: str) -> Faults:
    return Faults(FaultPlan.parse(plan), seed=1)


def test_a_dropped_reply_times_out_but_the_posting_is_applied_once(ledger: Ledger) -> None:
    faults = faulty("drop=1")

    async def scenario() -> None:
        async with serving(ledger, faults=faults) as (server, port), connected(port) as client:
            with pytest.raises(TimeoutError):
                await client.request(request("DEBT", "D1", amount="10"), timeout=0.3)
            faults.set(FaultPlan())
            retry = await client.request(request("DEBT", "D1", amount="10"))
            assert retry.result_code == "00"
            assert server.stats.dropped == 1

    run(scenario)
    assert ledger.balances(ANNA) == (111345, 111345, "EUR")


def test_a_garbage_reply_does_not_decode(ledger: Ledger) -> None:
    async def scenario() -> None:
        async with serving(ledger, faults=faulty("garbage=1")) as (_, port), connected(port) as c:
            c.send(RECORDS.encode_request(request("BALQ", "Q1")))
            await c.drain()
            data = await c.receive(10)
        assert len(data) == 200
        with pytest.raises(RecordDecodeError, match="CB-RP-LEDGER-BALANCE"):
            RECORDS.decode_reply(data)

    run(scenario)


def test_a_disconnect_closes_the_link_after_applying(ledger: Ledger) -> None:
    async def scenario() -> None:
        faults = faulty("disconnect=1")
        async with serving(ledger, faults=faults) as (_, port), connected(port) as client:
            with pytest.raises(ConnectionResetError):
                await client.request(request("CRDT", "C1", amount="1"))

    run(scenario)
    assert ledger.balances(ANNA) == (112445, 112445, "EUR")


def test_down_closes_connections_and_refuses_new_ones(ledger: Ledger) -> None:
    faults = Faults()

    async def scenario() -> None:
        async with serving(ledger, faults=faults) as (server, port):
            async with connected(port) as client:
                assert (await client.request(request("BALQ", "Q1"))).result_code == "00"
                faults.set(FaultPlan.parse("down=on"))
                with pytest.raises(ConnectionResetError):
                    await client.receive(10)
            async with connected(port) as refused:
                with pytest.raises(ConnectionResetError):
                    await refused.request(request("BALQ", "Q2"))
            assert server.stats.refused == 1
            faults.set(FaultPlan())
            async with connected(port) as client:
                assert (await client.request(request("BALQ", "Q3"))).result_code == "00"

    run(scenario)


def test_the_admin_port_sets_faults_at_run_time(ledger: Ledger) -> None:
    async def scenario() -> None:
        async with serving(ledger) as (server, port):
            _, admin_port = await server.start_admin("127.0.0.1", 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", admin_port)

            async def say(line: str) -> str:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                return (await reader.readline()).decode().strip()

            assert await say("faults set garbage=1 latency=fixed:1ms") == (
                "ok latency=fixed:1ms drop=0 disconnect=0 garbage=1 down=off"
            )
            async with connected(port) as client:
                client.send(RECORDS.encode_request(request("XFER", "T1", JONAS, "1", contra=ANNA)))
                await client.drain()
                with pytest.raises(RecordDecodeError, match="CB-RP-LEDGER-BALANCE"):
                    RECORDS.decode_reply(await client.receive(10))
            status = await say("status")
            assert status.startswith("ok framing=len2 connections=1 ")
            assert " garbage=1 " in status
            assert "balanced=yes" in status
            assert (await say("faults set drop=9")).startswith("error drop must be")
            assert await say("faults clear") == (
                "ok latency=none drop=0 disconnect=0 garbage=0 down=off"
            )
            writer.write(b"quit\n")
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()

    run(scenario)


FIXTURES = Path(__file__).resolve().parents[1] / "adapters" / "fixedwidth" / "fixtures"


def test_the_hubs_request_fixtures_are_answered(ledger: Ledger) -> None:
    """The contract with the hub: the records its fixed-width adapter writes are applied."""
    names = ["debit-posting", "funds-transfer", "balance-enquiry", "reversal"]
    records = [(FIXTURES / f"request-{name}.bin").read_bytes() for name in names]

    async def scenario() -> list[Reply]:
        async with serving(ledger) as (_, port), connected(port) as client:
            for record in records:
                client.send(record)
            await client.drain()
            return [RECORDS.decode_reply(await client.receive(10)) for _ in records]

    replies = asyncio.run(scenario())
    assert [(r.tran_code, r.result_code) for r in replies] == [
        ("DEBT", "00"), ("XFER", "00"), ("BALQ", "00"), ("REVS", "00"),
    ]  # fmt: skip
    assert replies[0].posting_ref == "HUB-20261129-000001"
    assert replies[0].ledger_balance == 112345 - 12540
    assert replies[3].ledger_balance == 112345
    assert ledger.check().balanced


def test_random_latency_keeps_pipelined_replies_in_order(ledger: Ledger) -> None:
    async def scenario() -> list[str]:
        faults = faulty("latency=uniform:0ms-20ms")
        async with serving(ledger, faults=faults) as (_, port), connected(port) as client:
            for n in range(30):
                client.send(RECORDS.encode_request(request("BALQ", f"Q{n}")))
            await client.drain()
            return [RECORDS.decode_reply(await client.receive(10)).posting_ref for _ in range(30)]

    assert asyncio.run(scenario()) == [f"Q{n}" for n in range(30)]
