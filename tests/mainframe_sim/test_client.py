"""The client reassembles replies across TCP reads and reports a closed link."""

from __future__ import annotations

import asyncio

import pytest

from mainframe_sim.client import MainframeClient
from mainframe_sim.records import Records
from mainframe_sim.transactions import Reply

RECORDS = Records()


@pytest.mark.parametrize(
    ("framing", "prefix"), [("len2", b"\x00\xc8"), ("len4", b"\x00\x00\x00\xc8"), ("cics", b"")]
)
def test_a_reply_trickling_in_byte_by_byte_is_reassembled(framing: str, prefix: bytes) -> None:
    reply = Reply("BALQ", "Q1", "00", "DE89370400440532013000", 1, 1, "EUR")
    wire = prefix + RECORDS.encode_reply(reply)

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        for position in range(len(wire)):
            writer.write(wire[position : position + 1])
            await writer.drain()
        await reader.read()  # until the client closes
        writer.close()
        await writer.wait_closed()

    async def scenario() -> None:
        server = await asyncio.start_server(trickle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = await MainframeClient.connect("127.0.0.1", port, framing=framing, records=RECORDS)
        try:
            client.send_raw(b"\x00")
            await client.drain()
            assert RECORDS.decode_reply(await client.receive(10)) == reply
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_a_closed_link_is_a_connection_reset() -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await writer.wait_closed()

    async def scenario() -> None:
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = await MainframeClient.connect("127.0.0.1", port, records=RECORDS)
        try:
            with pytest.raises(ConnectionResetError, match="closed the connection"):
                await client.receive(10)
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())
