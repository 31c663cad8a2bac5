"""The ISO 8583 acquirer edge over real TCP, driven by py8583 (an independent ISO 8583
implementation), not by our adapter."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from py8583.py8583 import LT, Iso8583

from adapters.iso8583.adapter import Iso8583Adapter
from canonical_model.codes import status_from_iso8583
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import PanToken
from canonical_model.replies import reply_to
from hub.edge import EdgeSettings, Iso8583Edge
from hub.tls import server_context
from tests.adapters.iso8583.test_cross_check_py8583 import _py8583_ascii_spec
from tests.certs import TestAuthority
from tests.hub.tls_support import LOOPS, make_pki, run_on
from tests.hub.tls_support import client as tls_client
from tests.support import (
    NOW,
    TENANT,
    decode_context,
    encode_context,
    fixed_vault,
    on_event_loop,
    sequential_ids,
)
from vault.memory import InMemoryVault

PAN = "4111111111111111"
LIMIT = Decimal("100.00")

Handler = Callable[[CanonicalMessage], Awaitable[CanonicalMessage]]


def _build(mti: str, fields: dict[int, str]) -> bytes:
    """An ISO 8583 message built by py8583 (ascii, hex bitmap)."""
    spec = _py8583_ascii_spec()
    message = Iso8583(IsoSpec=spec)
    message.MTI(mti)
    for field, value in fields.items():
        fixed_numeric = spec.ContentType(field) == "n" and spec.LengthType(field) == LT.FIXED
        message.FieldData(field, int(value) if fixed_numeric else value)
        message.Field(field, 1)
    return bytes(message.BuildIso())


def _parse(raw: bytes) -> tuple[str, dict[int, str]]:
    spec = _py8583_ascii_spec()
    parsed = Iso8583(IsoMsg=raw, IsoSpec=spec)
    fields = {}
    for field, bit in parsed.Bitmap().items():
        if bit == 1 and field != 1:
            value = parsed.FieldData(field)
            if isinstance(value, int) and spec.LengthType(field) == LT.FIXED:
                value = f"{value:0{spec.MaxLength(field)}d}"
            fields[field] = str(value)
    return str(parsed.MTI()), fields


def _purchase(stan: int, minor_units: int, terminal: str = "TERM0001") -> bytes:
    return _build(
        "0200",
        {
            2: PAN,
            3: "000000",
            4: f"{minor_units:012d}",
            7: "1128161700",
            11: f"{stan:06d}",
            12: "161700",
            13: "1128",
            37: f"{stan:012d}",
            41: terminal,
            42: "MERCHANT0000001",
            49: "978",
        },
    )


async def _approve_small_amounts(request: CanonicalMessage) -> CanonicalMessage:
    assert request.amount is not None
    code = "00" if request.amount.amount <= LIMIT else "51"
    return reply_to(
        request,
        status_from_iso8583(code),
        message_id=f"reply-{request.ids.message_id}",
        transmitted_at=NOW,
        approval_code="A1B2C3" if code == "00" else None,
    )


class CountingVault(InMemoryVault):
    """The test vault, counting detokenizations (each one audited in a real vault)."""

    def __init__(self) -> None:
        super().__init__(fingerprint_key=b"f" * 32, token_key=b"t" * 32)
        self.detokenized = 0

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        self.detokenized += 1
        return super().detokenize(token, tenant=tenant, purpose=purpose)


def _edge(handler: Handler, vault: InMemoryVault | None = None, **overrides: Any) -> Iso8583Edge:
    adapter = Iso8583Adapter("ascii")
    vault = vault or fixed_vault()
    return Iso8583Edge(
        EdgeSettings(**overrides),
        adapter=adapter,
        decode_context=decode_context(vault),
        encode_context=encode_context(adapter, vault),
        handler=handler,
        now=lambda: NOW,
        new_message_id=sequential_ids("edge-"),
    )


class Client:
    """A len2-binary ISO 8583 client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, payload: bytes) -> None:
        self.writer.write(struct.pack(">H", len(payload)) + payload)
        await self.writer.drain()

    async def receive(self, timeout: float = 10.0) -> bytes:
        header = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        (length,) = struct.unpack(">H", header)
        return await asyncio.wait_for(self.reader.readexactly(length), timeout)

    async def exchange(self, payload: bytes) -> bytes:
        await self.send(payload)
        return await self.receive()

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        return await asyncio.wait_for(self.reader.read(1), timeout) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@on_event_loop
async def test_purchases_from_concurrent_connections_get_their_own_replies() -> None:
    async with _edge(_approve_small_amounts) as edge:

        async def terminal(number: int) -> list[tuple[str, dict[int, str]]]:
            client = await Client.connect(edge.port)
            replies = []
            for stan in range(1, 6):
                amount = 5_000 if stan % 2 else 50_000  # 50.00 approved, 500.00 declined
                await client.send(_purchase(number * 100 + stan, amount, f"TERM{number:04d}"))
                replies.append(_parse(await client.receive()))
            await client.close()
            return replies

        results = await asyncio.gather(*(terminal(n) for n in range(1, 9)))
        for number, replies in enumerate(results, start=1):
            for stan, (mti, fields) in enumerate(replies, start=1):
                assert mti == "0210"
                assert fields[11] == f"{number * 100 + stan:06d}"
                assert fields[37] == f"{number * 100 + stan:012d}"
                assert fields[41] == f"TERM{number:04d}"
                assert fields[39] == ("00" if stan % 2 else "51")
                assert (fields.get(38) == "A1B2C3") is (stan % 2 == 1)
        assert edge.stats.requests == edge.stats.replies == 40
        assert edge.stats.connections_total == 8


@on_event_loop
async def test_the_reply_echoes_the_request_pan_without_the_vault() -> None:
    vault = CountingVault()
    async with _edge(_approve_small_amounts, vault) as running:
        client = await Client.connect(running.port)
        await client.send(_purchase(1, 100))
        mti, fields = _parse(await client.receive())
        await client.close()
    assert (mti, fields[2], fields[39]) == ("0210", PAN, "00")
    assert vault.detokenized == 0


@on_event_loop
async def test_a_reply_with_another_token_is_detokenized_through_the_vault() -> None:
    vault = CountingVault()
    other = vault.tokenize("5500005555555559", tenant=TENANT)

    async def swap_card(request: CanonicalMessage) -> CanonicalMessage:
        reply = await _approve_small_amounts(request)
        assert reply.card is not None
        return dataclasses.replace(reply, card=dataclasses.replace(reply.card, token=other))

    async with _edge(swap_card, vault) as running:
        client = await Client.connect(running.port)
        await client.send(_purchase(1, 100))
        mti, fields = _parse(await client.receive())
        await client.close()
    assert (mti, fields[2]) == ("0210", "5500005555555559")
    assert vault.detokenized == 1


@on_event_loop
async def test_replies_go_out_as_they_complete_not_in_request_order() -> None:
    release_first = asyncio.Event()

    async def slow_first(request: CanonicalMessage) -> CanonicalMessage:
        if request.ids.instruction_id == "000001":
            await release_first.wait()
        return await _approve_small_amounts(request)

    async with _edge(slow_first) as running:
        client = await Client.connect(running.port)
        await client.send(_purchase(1, 100))
        await client.send(_purchase(2, 100))
        first_back = _parse(await client.receive())
        release_first.set()
        second_back = _parse(await client.receive())
        await client.close()
    assert [first_back[1][11], second_back[1][11]] == ["000002", "000001"]


@on_event_loop
async def test_echo_is_answered_at_the_edge() -> None:
    async with _edge(_approve_small_amounts) as edge:
        client = await Client.connect(edge.port)
        await client.send(_build("0800", {7: "1128161700", 11: "000777", 70: "301"}))
        mti, fields = _parse(await client.receive())
        await client.close()
        assert mti == "0810"
        assert fields[39] == "00"
        assert fields[11] == "000777"
        assert fields[70] == "301"
        assert edge.stats.answered_at_edge == 1


@on_event_loop
async def test_format_error_is_answered_and_the_connection_carries_on() -> None:
    async with _edge(_approve_small_amounts) as edge:
        client = await Client.connect(edge.port)
        # A readable MTI, then a field 4 that is not numeric.
        bad = _purchase(9, 100).replace(b"000000000100", b"00000000010X")
        await client.send(bad)
        mti, fields = _parse(await client.receive())
        assert (mti, fields[39]) == ("0210", "30")
        await client.send(_purchase(10, 100))
        mti, fields = _parse(await client.receive())
        await client.close()
        assert (mti, fields[39], fields[11]) == ("0210", "00", "000010")
        assert edge.stats.format_errors == 1


@on_event_loop
async def test_unreadable_input_closes_only_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _edge(_approve_small_amounts) as edge:
        other = await Client.connect(edge.port)
        garbage = await Client.connect(edge.port)
        await garbage.send(b"\xff\xfe" + PAN.encode() + b"garbage")
        assert await garbage.closed_by_peer()
        await other.send(_purchase(1, 100))
        assert _parse(await other.receive())[1][39] == "00"
        await other.close()
        await garbage.close()
        assert edge.stats.closed_on_bad_input == 1
        assert PAN not in caplog.text


@on_event_loop
async def test_oversize_frame_is_refused_before_it_is_read() -> None:
    async with _edge(_approve_small_amounts, max_message_size=512) as running:
        client = await Client.connect(running.port)
        client.writer.write(struct.pack(">H", 60_000))  # announces 60,000 bytes, sends none
        await client.writer.drain()
        assert await client.closed_by_peer()
        await client.close()
        assert running.stats.closed_on_bad_input == 1


@on_event_loop
async def test_keep_alive_is_echoed_and_idle_connections_are_closed() -> None:
    async with _edge(_approve_small_amounts, idle_timeout=0.3) as running:
        client = await Client.connect(running.port)
        await client.send(b"")
        assert await client.receive() == b""
        assert await client.closed_by_peer()
        await client.close()
        assert running.stats.closed_idle == 1


@on_event_loop
async def test_a_connection_that_keeps_talking_is_not_idle() -> None:
    """Each read has its own idle deadline: a client that sends more often than the idle
    timeout, for several times its length, keeps its connection."""
    async with _edge(_approve_small_amounts, idle_timeout=0.3) as running:
        client = await Client.connect(running.port)
        for number in range(12):
            await asyncio.sleep(0.1)
            await client.send(_purchase(number + 1, 100))
            assert _parse(await client.receive())[1][39] == "00"
        assert running.stats.closed_idle == 0
        assert await client.closed_by_peer()  # then quiet: closed
        await client.close()
        assert running.stats.closed_idle == 1


@on_event_loop
async def test_a_handler_that_does_not_answer_in_time_gets_91() -> None:
    never = asyncio.Event()

    async def stuck(request: CanonicalMessage) -> CanonicalMessage:
        await never.wait()
        raise AssertionError("unreachable")

    async with _edge(stuck, request_timeout=0.2) as running:
        client = await Client.connect(running.port)
        await client.send(_purchase(1, 100))
        mti, fields = _parse(await client.receive())
        await client.close()
    assert (mti, fields[39], fields[11]) == ("0210", "91", "000001")
    assert running.stats.timeouts == 1


@on_event_loop
async def test_a_failing_handler_gets_96() -> None:
    async def broken(request: CanonicalMessage) -> CanonicalMessage:
        raise RuntimeError("core unreachable")

    async with _edge(broken) as running:
        client = await Client.connect(running.port)
        await client.send(_purchase(1, 100))
        assert _parse(await client.receive())[1][39] == "96"
        await client.close()
    assert running.stats.handler_errors == 1


@on_event_loop
async def test_in_flight_limit_stops_reading_until_a_reply_is_out() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def gated(request: CanonicalMessage) -> CanonicalMessage:
        seen.append(request.ids.instruction_id or "")
        await gate.wait()
        return await _approve_small_amounts(request)

    async with _edge(gated, in_flight_per_connection=3) as running:
        client = await Client.connect(running.port)
        for stan in range(1, 8):
            await client.send(_purchase(stan, 100))
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the other four are on the socket, not in the handler
        assert len(seen) == 3
        gate.set()
        replies = [_parse(await client.receive())[1][11] for _ in range(7)]
        await client.close()
    assert sorted(replies) == [f"{stan:06d}" for stan in range(1, 8)]


@on_event_loop
async def test_connections_beyond_the_limit_are_closed() -> None:
    async with _edge(_approve_small_amounts, max_connections=2) as running:
        first = await Client.connect(running.port)
        second = await Client.connect(running.port)
        await first.send(b"")
        await first.receive()
        await second.send(b"")
        await second.receive()
        third = await Client.connect(running.port)
        assert await third.closed_by_peer()
        for client in (first, second, third):
            await client.close()
        assert running.stats.connections_refused == 1


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="in_flight_per_connection must be at least 1"):
        EdgeSettings(in_flight_per_connection=0)
    with pytest.raises(ValueError, match="idle_timeout must be positive"):
        EdgeSettings(idle_timeout=0)


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    """Server context requiring client certificates; a client with one; one without."""
    authority = TestAuthority(tmp_path)
    server_files = authority.issue("server", "edge.test", server=True)
    client_files = authority.issue("client", "acquirer-1", server=False)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(server_files.cert, server_files.key)
    server.load_verify_locations(authority.files.cert)
    server.verify_mode = ssl.CERT_REQUIRED
    with_cert = ssl.create_default_context(cafile=str(authority.files.cert))
    with_cert.load_cert_chain(client_files.cert, client_files.key)
    without_cert = ssl.create_default_context(cafile=str(authority.files.cert))
    return server, with_cert, without_cert


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    server, with_cert, without_cert = _tls_contexts(tmp_path)

    @on_event_loop
    async def scenario() -> None:
        async with _edge(_approve_small_amounts, tls=server) as running:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=with_cert, server_hostname="localhost"
            )
            client = Client(reader, writer)
            await client.send(_purchase(1, 100))
            mti, fields = _parse(await client.receive())
            assert (mti, fields[39]) == ("0210", "00")
            assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            await client.close()

            # Without a client certificate, TLS 1.3 completes the client's side of the
            # handshake, then the server's alert ends the connection before any reply.
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=without_cert, server_hostname="localhost"
            )
            refused = Client(reader, writer)
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await refused.exchange(_purchase(2, 100))
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
        assert running.stats.replies == 1

    scenario()


def _peer_name(writer: asyncio.StreamWriter) -> str:
    certificate = writer.get_extra_info("peercert")
    subject = dict(item[0] for item in certificate["subject"])
    return str(subject["commonName"])


def test_the_certificate_reloads_without_a_restart(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    first = authority.issue("edge", "edge-2026", server=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(first.cert, first.key)
    client = ssl.create_default_context(cafile=str(authority.files.cert))

    @on_event_loop
    async def scenario() -> None:
        async with _edge(_approve_small_amounts, tls=server) as running:
            reader, old_writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=client, server_hostname="localhost"
            )
            old = Client(reader, old_writer)
            assert _peer_name(old_writer) == "edge-2026"
            second = authority.issue("edge", "edge-2027", server=True)  # same files, new cert
            running.reload_certificate(second.cert, second.key)
            reader, new_writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=client, server_hostname="localhost"
            )
            new = Client(reader, new_writer)
            assert _peer_name(new_writer) == "edge-2027"
            for connection, stan in ((old, 1), (new, 2)):  # the open one carries on
                assert _parse(await connection.exchange(_purchase(stan, 100)))[1][39] == "00"
                await connection.close()

    scenario()


@pytest.mark.parametrize(
    ("which", "maximum", "reason"),
    [
        ("none", None, "no client certificate presented"),
        ("expired_client", None, "certificate refused: certificate has expired"),
        ("self_signed_client", None, "certificate refused: self-signed certificate"),
        ("wrong_ca_client", None, "certificate refused: unable to get local issuer certificate"),
        ("client", ssl.TLSVersion.TLSv1_2, "TLS 1.2 or older offered"),
    ],
)
def test_refused_handshakes_are_logged_with_the_peer_and_the_reason(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    which: str,
    maximum: ssl.TLSVersion | None,
    reason: str,
) -> None:
    pki = make_pki(tmp_path)
    files = None if which == "none" else getattr(pki, which)
    context = tls_client(pki.ca.cert, files, maximum=maximum)
    handled: list[CanonicalMessage] = []

    async def handler(request: CanonicalMessage) -> CanonicalMessage:
        handled.append(request)
        return await _approve_small_amounts(request)

    @on_event_loop
    async def scenario() -> None:
        server = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
        async with _edge(handler, tls=server) as running:
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", running.port, ssl=context, server_hostname="localhost"
                )
                local = writer.get_extra_info("sockname")
                refused = Client(reader, writer)
                with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                    await refused.exchange(_purchase(1, 100))
                writer.close()
            async with asyncio.timeout(10):
                while running.stats.tls_refused == 0:
                    await asyncio.sleep(0.01)
            (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
            assert f"ISO 8583 edge on port {running.port}: TLS handshake with 127.0.0.1:" in line
            assert reason in line
            if which != "client":  # the TLS 1.2 client never got a socket name printed
                assert f"127.0.0.1:{local[1]}" in line
        assert (running.stats.connections_total, running.stats.requests, handled) == (0, 0, [])

    with caplog.at_level(logging.WARNING, logger="isobridge.edge"):
        scenario()


def test_a_rebuilt_context_takes_over_for_new_connections(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    other = make_pki(tmp_path / "next")  # a new CA for clients from now on

    @on_event_loop
    async def scenario() -> None:
        server = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
        async with _edge(_approve_small_amounts, tls=server) as running:
            old_client = tls_client(pki.ca.cert, pki.client)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=old_client, server_hostname="localhost"
            )
            kept = Client(reader, writer)
            assert _parse(await kept.exchange(_purchase(1, 100)))[1][39] == "00"
            running.use_tls_context(
                server_context(other.server.cert, other.server.key, other.ca.cert)
            )
            # A client of the old CA is now refused; the open connection carries on.
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", running.port, ssl=old_client, server_hostname="localhost"
                )
                with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                    await Client(reader, writer).exchange(_purchase(2, 100))
            new_client = tls_client(other.ca.cert, other.client)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", running.port, ssl=new_client, server_hostname="localhost"
            )
            fresh = Client(reader, writer)
            assert _parse(await fresh.exchange(_purchase(3, 100)))[1][39] == "00"
            assert _parse(await kept.exchange(_purchase(4, 100)))[1][39] == "00"
            await fresh.close()
            await kept.close()
            assert running.stats.tls_refused == 1

    scenario()


@pytest.mark.parametrize("loop", LOOPS)
def test_tls_serves_and_refuses_on_each_event_loop(tmp_path: Path, loop: str) -> None:
    """uvloop reads the ClientHello before a handler could start TLS: the edge hands it over."""
    pki = make_pki(tmp_path)

    async def scenario() -> None:
        server = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
        async with _edge(_approve_small_amounts, tls=server) as running:
            for stan in (1, 2):  # each on a connection of its own
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1",
                    running.port,
                    ssl=tls_client(pki.ca.cert, pki.client),
                    server_hostname="localhost",
                )
                client = Client(reader, writer)
                assert _parse(await client.exchange(_purchase(stan, 100)))[1][39] == "00"
                await client.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1",
                    running.port,
                    ssl=tls_client(pki.ca.cert, pki.expired_client),
                    server_hostname="localhost",
                )
                with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                    await Client(reader, writer).exchange(_purchase(3, 100))
                writer.close()
            async with asyncio.timeout(10):
                while running.stats.tls_refused == 0:
                    await asyncio.sleep(0.01)
            assert (running.stats.replies, running.stats.tls_refused) == (2, 1)

    run_on(loop, scenario)
