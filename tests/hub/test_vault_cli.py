"""``isobridge vault ...`` and translation across processes through the persistent vault."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.iso8583.samples import sample_bytes
from canonical_model import find_clear_pans
from hub.cli import main
from tests.vault.strategies import luhn_pans

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def isobridge(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The command in its own process, as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *argv],
        input=stdin, capture_output=True, check=False, cwd=ROOT, timeout=120,
        env={**os.environ},
    )  # fmt: skip


def test_init_creates_an_owner_only_key_file_and_the_schema(isolated_hub_home: Path) -> None:
    status, out, _ = run("vault", "init")
    assert status == 0
    key_file = isolated_hub_home / "master-keys.json"
    assert out.splitlines() == [
        f"vault ready: sqlite:///{isolated_hub_home / 'vault.db'}",
        f"master keys: {key_file} (new)",
        "token mode:  random",
    ]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert run("vault", "init")[1].splitlines()[1] == f"master keys: {key_file} (existing)"


def test_a_message_translated_in_one_process_is_encoded_in_another() -> None:
    assert isobridge("vault", "init").returncode == 0
    payload = sample_bytes("0200-balance-enquiry", "ebcdic-cp037")
    first = isobridge("translate", "--from", "iso8583:ebcdic-cp037", "--to", "canonical-json",
                      stdin=payload)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert find_clear_pans(first.stdout.decode()) == []
    second = isobridge("translate", "--from", "canonical-json", "--to", "iso8583:ebcdic-cp037",
                       stdin=first.stdout)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert second.stdout == payload


def test_tokenize_detokenize_stats_and_audit() -> None:
    pans = luhn_pans(3, seed=5)
    status, out, _ = run("vault", "tokenize", "--tenant", "acme", stdin="\n".join(pans).encode())
    assert status == 0
    tokens = out.split()
    assert [t[:6] + t[-4:] for t in tokens] == [p[:6] + p[-4:] for p in pans]
    status, out, _ = run(
        "vault", "detokenize", "--tenant", "acme", "--purpose", "dispute 9", "--caller", "ops-2",
        *tokens,
    )  # fmt: skip
    assert (status, out.split()) == (0, pans)
    status, out, _ = run("vault", "stats")
    assert status == 0
    assert out.splitlines() == [
        "acme",
        "  tokens:          3 (0 expired)",
        "  data keys:       v1 active (3 rows)",
        "  master versions: 1",
        "  detokenizations: 3 granted, 0 refused",
    ]


def test_detokenize_of_an_unknown_token_fails_clearly() -> None:
    run("vault", "init")
    status, out, err = run(
        "vault", "detokenize", "--tenant", "acme", "--purpose", "x", "4111110000001112"
    )
    assert (status, out) == (1, "")
    assert err == "isobridge: no token 411111******1112 in tenant 'acme'\n"


def test_detokenize_refuses_a_value_that_is_not_a_token() -> None:
    status, _, err = run(
        "vault", "detokenize", "--tenant", "acme", "--purpose", "x", "4111111111111111"
    )
    assert status == 1
    assert "TOKEN 1 is not a token" in err
    assert "4111111111111111" not in err


def test_rotate_with_progress_then_retire_then_verify() -> None:
    run("vault", "tokenize", "--tenant", "acme", stdin="\n".join(luhn_pans(1200, seed=3)).encode())
    status, out, err = run("vault", "rotate", "--retire", "--batch-size", "400")
    assert status == 0
    assert out.splitlines() == [
        "acme: data key version 2, 1200 row(s) re-encrypted",
        "acme: retired version(s) 1",
    ]
    progress = err.splitlines()
    assert progress[0].startswith("rotate acme [")
    assert " 0/1200 " in progress[0]
    assert " 1200/1200 " in progress[-1]
    status, out, _ = run("vault", "verify")
    assert (status, out.splitlines()[0]) == (0, "1200 rows checked, 0 failed")


def test_master_key_rotation_rewraps_and_old_key_file_versions_remain(
    isolated_hub_home: Path,
) -> None:
    pans = luhn_pans(2, seed=8)
    _, out, _ = run("vault", "tokenize", "--tenant", "acme", stdin="\n".join(pans).encode())
    status, text, _ = run("vault", "rotate", "--master")
    assert (status, text) == (0, "master key version 2: 2 tenant key(s) re-wrapped\n")
    keys = json.loads((isolated_hub_home / "master-keys.json").read_text())
    assert (keys["current"], sorted(keys["keys"])) == (2, ["1", "2"])
    status, clear, _ = run(
        "vault", "detokenize", "--tenant", "acme", "--purpose", "x", *out.split()
    )
    assert (status, clear.split()) == (0, pans)
    assert "master versions: 2" in run("vault", "stats")[1]


def test_shred_needs_confirmation() -> None:
    run("vault", "tokenize", "--tenant", "acme", stdin=luhn_pans(1, seed=1)[0].encode())
    status, _, err = run("vault", "shred", "--tenant", "acme")
    assert status == 2
    assert "add --yes to confirm" in err
    status, out, _ = run("vault", "shred", "--tenant", "acme", "--yes")
    assert (status, out) == (0, "tenant 'acme' shredded: 1 token(s)\n")
    assert run("vault", "stats")[1] == "no tenants yet\n"


def test_a_wrong_key_file_is_reported_without_a_traceback(isolated_hub_home: Path) -> None:
    run("vault", "tokenize", "--tenant", "acme", stdin=luhn_pans(1, seed=1)[0].encode())
    other = isolated_hub_home / "other-keys.json"
    assert run("--key-file", str(other), "vault", "init")[0] == 0
    status, _, err = run("--key-file", str(other), "vault", "tokenize", "--tenant", "acme",
                         stdin=luhn_pans(1, seed=1)[0].encode())  # fmt: skip
    assert status == 1
    assert err.startswith("isobridge: the index key of tenant 'acme' (version 1) does not unwrap")


@pytest.mark.parametrize("mode", ["ff1", "ff3-1"])
def test_fpe_token_modes_from_the_environment(
    mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ISOBRIDGE_HOME", str(tmp_path / mode))
    monkeypatch.setenv("ISOBRIDGE_TOKEN_MODE", mode)
    pans = luhn_pans(5, seed=4)
    status, out, err = run("vault", "tokenize", "--tenant", "acme", stdin="\n".join(pans).encode())
    assert status == 0, err
    status, clear, _ = run("vault", "detokenize", "--tenant", "acme", "--purpose", "x",
                           *out.split())  # fmt: skip
    assert (status, clear.split()) == (0, pans)


def test_an_unknown_token_mode_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOBRIDGE_TOKEN_MODE", "ff2")
    status, _, err = run("vault", "stats")
    assert status == 2
    assert "ISOBRIDGE_TOKEN_MODE='ff2' is not a token mode" in err
