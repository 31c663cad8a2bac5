"""``python -m mainframe_sim``: in process, and ``serve`` in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.fixedwidth import load_layout
from mainframe_sim.cli import main
from mainframe_sim.client import MainframeClient
from tests.certs import CertFiles, TestAuthority
from tests.hub.tls_support import client as tls_client
from tests.hub.tls_support import make_pki
from tests.mainframe_sim.samples import ANNA, CLOSED, request

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err, environ={})
    return status, out.getvalue(), err.getvalue()


def test_help_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mainframe_sim", "--help"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    for command in ("serve", "seed", "balance", "extract", "faults"):
        assert command in done.stdout


def test_seed_then_balance(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mf.db'}"
    assert run("--db", db, "seed") == (0, "seeded 20 accounts (20 in all)\n", "")
    assert run("--db", db, "seed")[1] == "seeded 0 accounts (20 in all)\n"
    status, out, _ = run("--db", db, "balance", ANNA)
    assert status == 0
    assert out.splitlines()[:3] == [
        f"{ANNA} Anna Schmidt (open)",
        "ledger balance:    1,123.45 EUR",
        "available balance: 1,123.45 EUR",
    ]
    assert run("--db", db, "balance", CLOSED)[1].startswith(f"{CLOSED} Closed Account (closed)")
    assert run("--db", db, "balance", "DE00NOPE") == (1, "", "mainframe_sim: no account DE00NOPE\n")


def test_extract_writes_the_statement_file(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mf.db'}"
    run("--db", db, "seed")
    out_file = tmp_path / "STMT.DAT"
    status, out, _ = run("--db", db, "extract", "--date", "2026-11-28", "--out", str(out_file))
    assert (status, out) == (0, f"{out_file}: 20 accounts, 0 entries on 2026-11-28\n")
    data = out_file.read_bytes()
    assert len(data) == 20 * 2 * 120
    book = load_layout("corebank_statement", codepage="cp037")
    assert book.decode(data[:120])[0] == "STMT-HEADER"
    status, _, err = run("--db", db, "extract", "--date", "28.11.2026", "--out", str(out_file))
    assert (status, err) == (2, "mainframe_sim: --date '28.11.2026' is not YYYY-MM-DD\n")


def test_faults_without_an_admin_port_is_a_clear_error() -> None:
    status, _, err = run("faults", "--admin", "127.0.0.1:1", "show")
    assert status == 1
    assert err.startswith("mainframe_sim: cannot reach the admin port 127.0.0.1:1")


def test_serve_answers_over_tcp_and_takes_faults_from_the_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mf.db'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mainframe_sim", "--db", db, "serve", "--port", "0",
         "--admin-port", "0", "--framing", "len4", "--faults", "latency=fixed:1ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first, second = server.stdout.readline(), server.stdout.readline()
        assert first.startswith("mainframe_sim: len4 on 127.0.0.1:"), first
        assert first.rstrip().endswith(
            "faults: latency=fixed:1ms drop=0 disconnect=0 garbage=0 down=off"
        )
        port = int(first.split(":")[2].split(",")[0])
        admin = second.split(" on ")[1].strip()

        async def enquire() -> str:
            client = await MainframeClient.connect("127.0.0.1", port, framing="len4")
            try:
                return (await client.request(request("BALQ", "Q1"))).result_code
            finally:
                await client.close()

        assert asyncio.run(enquire()) == "00"  # the empty database was seeded
        status, out, _ = run("faults", "--admin", admin, "set", "drop=0.5")
        assert (status, out) == (
            0,
            "ok latency=fixed:1ms drop=0.5 disconnect=0 garbage=0 down=off\n",
        )
        status, out, _ = run("faults", "--admin", admin, "status")
        assert status == 0
        assert "requests=1" in out
        status, out, _ = run("faults", "--admin", admin, "set", "drop=5")
        assert status == 1
        assert out.startswith("error drop must be a probability")
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr


@pytest.mark.parametrize("argv", [["serve", "--faults", "drop=2"], ["serve", "--faults", "x"]])
def test_serve_refuses_bad_faults(tmp_path: Path, argv: list[str]) -> None:
    status, _, err = run("--db", f"sqlite:///{tmp_path / 'mf.db'}", *argv)
    assert status == 2
    assert err.startswith("mainframe_sim: --faults: ")


def _peer_common_name(connection: MainframeClient) -> str:
    certificate = connection.peer_certificate
    assert certificate is not None
    return str(dict(item[0] for item in certificate["subject"])["commonName"])


def test_serve_with_mutual_tls_refuses_strangers_and_reloads_on_sighup(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    authority = TestAuthority(tmp_path / "served", "the mainframe's CA")
    authority.issue("mainframe", "mainframe-2026", server=True)
    served = tmp_path / "served"
    db = f"sqlite:///{tmp_path / 'mf.db'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mainframe_sim", "--db", db, "serve", "--port", "0",
         "--tls-cert", str(served / "mainframe.crt"), "--tls-key", str(served / "mainframe.key"),
         "--tls-client-ca", str(pki.ca.cert)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert ", TLS 1.3, client certificates required, faults:" in first, first
        port = int(first.split(":")[2].split(",")[0])

        async def enquire(files: CertFiles | None) -> tuple[str, str]:
            context = tls_client(authority.files.cert, files)
            connection = await MainframeClient.connect(
                "127.0.0.1", port, tls=context, server_hostname="localhost"
            )
            try:
                reply = await connection.request(request("BALQ", "Q1"))
                return reply.result_code, _peer_common_name(connection)
            finally:
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await connection.close()

        assert asyncio.run(enquire(pki.client)) == ("00", "mainframe-2026")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            asyncio.run(enquire(pki.expired_client))

        authority.issue("mainframe", "mainframe-2027", server=True)  # renewed in place
        server.send_signal(signal.SIGHUP)
        assert server.stdout.readline() == "mainframe_sim: TLS certificates reloaded\n"
        assert asyncio.run(enquire(pki.client)) == ("00", "mainframe-2027")
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "mainframe_sim: TLS handshake with 127.0.0.1:" in stderr
    assert "refused: client certificate refused: certificate has expired" in stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-cert", "x.crt"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.crt"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "missing.crt", "--tls-key", "missing.key"], "--tls-cert: no such file"),
    ],
)
def test_serve_refuses_bad_tls_options(tmp_path: Path, options: list[str], message: str) -> None:
    status, _, err = run("--db", f"sqlite:///{tmp_path / 'mf.db'}", "serve", *options)
    assert status == 2
    assert err.startswith(f"mainframe_sim: {message}")


def test_serve_refuses_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    status, _, err = run(
        "--db", f"sqlite:///{tmp_path / 'mf.db'}", "serve",
        "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.client.key),
    )  # fmt: skip
    assert status == 2
    assert err.startswith("mainframe_sim: --tls-cert / --tls-key / --tls-client-ca: cannot use")
