"""TLS 1.3 only, forward secrecy only, mutual authentication: real handshakes over real
sockets, with Python's ssl module and the openssl command line as the peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
from pathlib import Path

import pytest

from hub.tls import (
    CertificateFiles,
    TlsRefusedError,
    await_acceptance,
    client_context,
    refusal_reason,
    server_context,
)
from tests.hub.tls_support import Pki, RecordingServer, client, make_pki, mutual_server
from tests.support import on_event_loop

TLS13_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _refused_client(port: int, context: ssl.SSLContext) -> BaseException | None:
    """Connect with ``context``; what the client saw go wrong (None: nothing did)."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        line = await reader.readline()
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
        return None if line == b"ok\n" else EOFError("closed")
    except (ssl.SSLError, ConnectionError) as exc:
        return exc


def test_server_and_client_contexts(pki: Pki) -> None:
    required = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
    optional = server_context(pki.server.cert, pki.server.key, pki.ca.cert, client_auth="optional")
    plain = server_context(pki.server.cert, pki.server.key)
    outbound = client_context(pki.ca.cert, pki.client.cert, pki.client.key)
    assert {c.minimum_version for c in (required, optional, plain, outbound)} == {
        ssl.TLSVersion.TLSv1_3
    }
    assert (required.verify_mode, optional.verify_mode, plain.verify_mode) == (
        ssl.CERT_REQUIRED,
        ssl.CERT_OPTIONAL,
        ssl.CERT_NONE,
    )
    assert outbound.verify_mode == ssl.CERT_REQUIRED and outbound.check_hostname
    # Only the configured CA: the system's store is not trusted by the outbound context.
    assert [ca["subject"] for ca in outbound.get_ca_certs()] == [
        ((("commonName", "isobridge test CA"),),)
    ]


def test_a_tls_1_3_client_with_a_good_certificate_is_served(pki: Pki) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            assert await _refused_client(server.port, client(pki.ca.cert, pki.client)) is None
        (accepted,) = server.accepted
        version, suite = accepted.split()
        assert version == "TLSv1.3" and suite in TLS13_SUITES

    scenario()


@pytest.mark.parametrize(
    ("maximum", "ciphers"),
    [
        (ssl.TLSVersion.TLSv1_2, None),
        (ssl.TLSVersion.TLSv1_2, "AES128-SHA"),  # static RSA key exchange: no forward secrecy
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),  # even with ECDHE
    ],
)
def test_tls_1_2_clients_are_refused_never_downgraded(
    pki: Pki, maximum: ssl.TLSVersion, ciphers: str | None
) -> None:
    context = client(pki.ca.cert, pki.client, maximum=maximum)
    if ciphers is not None:
        context.set_ciphers(ciphers)

    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            assert await _refused_client(server.port, context) is not None
            reason = await server.wait_for_refusal()
        assert reason == "TLS 1.2 or older offered: only TLS 1.3 is accepted"
        assert server.accepted == []

    scenario()


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("none", "no client certificate presented (one from the configured CA is required)"),
        ("expired_client", "certificate refused: certificate has expired"),
        ("self_signed_client", "certificate refused: self-signed certificate"),
        ("wrong_ca_client", "certificate refused: unable to get local issuer certificate"),
    ],
)
def test_mutual_tls_refuses_bad_client_certificates(pki: Pki, which: str, reason: str) -> None:
    files = None if which == "none" else getattr(pki, which)

    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            # TLS 1.3: the client's side of the handshake completes, then the server refuses
            # before any application data, so the client never reads "ok".
            assert await _refused_client(server.port, client(pki.ca.cert, files)) is not None
            refusal = await server.wait_for_refusal()
        assert refusal.startswith(reason)
        assert server.accepted == []

    scenario()


@pytest.mark.parametrize(
    ("which", "trusted", "reason"),
    [
        ("expired_server", "ca", "certificate has expired"),
        ("wrong_ca_server", "ca", "unable to get local issuer certificate"),
        ("server", "other_ca", "unable to get local issuer certificate"),
    ],
)
def test_the_hub_refuses_a_server_it_cannot_trust(
    pki: Pki, which: str, trusted: str, reason: str
) -> None:
    files = getattr(pki, which)
    outbound = client_context(getattr(pki, trusted).cert, pki.client.cert, pki.client.key)

    @on_event_loop
    async def scenario() -> None:
        async with RecordingServer(server_context(files.cert, files.key)) as server:
            with pytest.raises(ssl.SSLCertVerificationError) as raised:
                await asyncio.open_connection(
                    "127.0.0.1", server.port, ssl=outbound, server_hostname="localhost"
                )
        assert refusal_reason(raised.value).startswith(f"certificate refused: {reason}")

    scenario()


def test_a_server_certificate_for_another_name_is_refused(pki: Pki) -> None:
    outbound = client_context(pki.ca.cert, pki.client.cert, pki.client.key)

    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            with pytest.raises(ssl.SSLCertVerificationError) as raised:
                await asyncio.open_connection(
                    "127.0.0.1", server.port, ssl=outbound, server_hostname="mainframe.bank.example"
                )
        assert "Hostname mismatch" in refusal_reason(raised.value)
        assert refusal_reason(raised.value).endswith("(check server_name)")

    scenario()


def test_await_acceptance_tells_accepted_from_refused(pki: Pki) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            good = client_context(pki.ca.cert, pki.client.cert, pki.client.key)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=good, server_hostname="localhost"
            )
            await await_acceptance(reader, writer, timeout=10)
            assert await reader.readline() == b"ok\n"
            writer.close()

            expired = client_context(pki.ca.cert, pki.expired_client.cert, pki.expired_client.key)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=expired, server_hostname="localhost"
            )
            with pytest.raises(TlsRefusedError, match="did not accept our client certificate"):
                await await_acceptance(reader, writer, timeout=10)
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()

    scenario()


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl command is missing (Debian package openssl)")
        pytest.skip("the openssl command is missing (Debian package openssl)")
    return found


async def _s_client(port: int, pki: Pki, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        _openssl(),
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-CAfile",
        str(pki.ca.cert),
        "-cert",
        str(pki.client.cert),
        "-key",
        str(pki.client.key),
        *options,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


def test_openssl_sees_tls_1_3_with_an_ephemeral_key_exchange(pki: Pki) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            status, output = await _s_client(server.port, pki, "-brief")
        assert status == 0, output
        assert "Protocol version: TLSv1.3" in output
        # (EC)DHE: the server's key share is a fresh ephemeral key, never its certificate's.
        assert "Server Temp Key: X25519" in output or "Peer Temp Key: X25519" in output

    scenario()


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (("-tls1_2",), "TLS 1.2 or older offered: only TLS 1.3 is accepted"),
        (("-tls1_1",), "TLS 1.2 or older offered: only TLS 1.3 is accepted"),
        (("-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"), "no TLS 1.3 cipher suite"),
        (("-tls1_2", "-cipher", "AES256-SHA256"), "TLS 1.2 or older offered"),
    ],
)
def test_openssl_clients_offering_what_is_refused(
    pki: Pki, options: tuple[str, ...], reason: str
) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mutual_server(pki) as server:
            status, output = await _s_client(server.port, pki, *options)
            refusal = await server.wait_for_refusal()
        assert status != 0, output
        assert refusal.startswith(reason)
        assert server.accepted == []

    scenario()


def test_certificate_files_notice_a_change(tmp_path: Path) -> None:
    cert, key = tmp_path / "a.crt", tmp_path / "a.key"
    cert.write_text("one")
    key.write_text("key")
    files = CertificateFiles([cert, key, cert])
    assert files.paths == (cert, key)
    assert not files.changed()
    cert.write_text("two, longer")
    assert files.changed()
    assert not files.changed()
    key.unlink()
    assert files.changed()


def test_certificate_files_watch_calls_reload(tmp_path: Path) -> None:
    cert = tmp_path / "a.crt"
    cert.write_text("one")
    reloads: list[int] = []

    def reload() -> None:
        reloads.append(1)
        if len(reloads) == 1:
            raise ssl.SSLError("a half-written key")  # logged; the watch carries on

    @on_event_loop
    async def scenario() -> None:
        watch = asyncio.create_task(CertificateFiles([cert]).watch(reload, 0.01))
        for content in ("two", "three, longer"):
            count = len(reloads)
            cert.write_text(content)
            async with asyncio.timeout(10):
                while len(reloads) == count:
                    await asyncio.sleep(0.01)
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    scenario()
    assert len(reloads) == 2
