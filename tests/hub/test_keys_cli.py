"""``isobridge keys status`` and ``isobridge keys rotate`` on the hub's own state directory,
and the running hub rotating a vault data key on its own."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from hub.cli import main
from hub.config_file import load_config
from hub.service import HubService
from journal import EventKind, StoredEvent
from tests.support import on_event_loop
from tests.vault.strategies import luhn_pans
from vault.sql import SqlVault

CARDS = luhn_pans(6, seed=21)


def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _hub_toml(tmp_path: Path, home: Path, keys: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nhome = "{home}"\ntenant = "bank-a"\n{keys}')
    return path


def test_status_lists_every_key_with_its_policy_and_rotate_rotates_now(
    tmp_path: Path, isolated_hub_home: Path
) -> None:
    config = _hub_toml(
        tmp_path,
        isolated_hub_home,
        '[keys]\n[[keys.policies]]\nfamily = "vault.data"\nmax_age = "30d"\nmax_uses = 100\n',
    )
    assert run("keys", "status", "--config", str(config))[1].splitlines()[-1] == "no keys yet"
    for tenant in ("acme", "globex"):
        assert run("vault", "tokenize", "--tenant", tenant, stdin="\n".join(CARDS).encode())[0] == 0
    status, out, _ = run("keys", "status", "--config", str(config))
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["FAMILY", "SCOPE", "KEY", "AGE", "USES", "POLICY", "NEXT", "DUE"]
    assert [row.split()[:3] for row in rows] == [
        ["vault.data", "acme", "1"],
        ["vault.data", "globex", "1"],
    ]
    assert all("age 30d 0h, 100 uses" in row and "after 94 more uses" in row for row in rows)
    status, out, err = run(
        "keys", "rotate", "vault.data", "--tenant", "globex", "--config", str(config)
    )
    assert (status, out) == (0, "vault.data globex: 1 -> 2\n"), err
    keys = [
        row.split()[:3]
        for row in run("keys", "status", "--config", str(config))[1].splitlines()[1:]
    ]
    assert keys == [["vault.data", "acme", "1"], ["vault.data", "globex", "2"]]
    status, out, err = run("vault", "detokenize", "--tenant", "globex", "--purpose", "check",
                           *run("vault", "tokenize", "--tenant", "globex",
                                stdin="\n".join(CARDS).encode())[1].split())  # fmt: skip
    assert (status, out.split()) == (0, CARDS), err


def test_bad_requests_get_a_clear_answer(tmp_path: Path, isolated_hub_home: Path) -> None:
    assert run("journal", "init")[0] == 0  # a journal, and no vault yet
    status, out, err = run("keys", "status")
    assert (status, out.splitlines()[-1]) == (0, "no keys yet")
    assert "vault.data not shown: the vault database has no vault schema" in err
    assert "run `isobridge vault init`" in err
    assert run("vault", "init")[0] == 0
    status, _, err = run("keys", "rotate", "authserver.signing")
    assert status == 1 and "name the gateway's configuration with --gateway" in err
    status, _, err = run("keys", "rotate", "vault.data", "--tenant", "nobody")
    assert status == 1 and "vault.data: no key of scope 'nobody'" in err
    bad = _hub_toml(tmp_path, isolated_hub_home, '[keys]\n[[keys.policies]]\nfamily = "x"\n')
    status, _, err = run("keys", "status", "--config", str(bad))
    assert status == 2 and "keys.policies[0].family: 'x' is not a key family" in err


def test_the_running_hub_rotates_a_data_key_on_its_own_and_audits_it(
    tmp_path: Path, isolated_hub_home: Path
) -> None:
    config = load_config(
        _hub_toml(
            tmp_path,
            isolated_hub_home,
            '[metrics]\nlisten = "127.0.0.1:0"\n[keys]\ncheck_interval = 0.05\n'
            '[[keys.policies]]\nfamily = "vault.data"\nmax_uses = 5\n',
        ),
        environ={},
    )

    @on_event_loop
    async def scenario() -> None:
        async with HubService(config) as service:
            vault = service.hub.vault
            assert isinstance(vault, SqlVault)
            tokens = await asyncio.to_thread(vault.tokenize_many, CARDS, tenant="bank-a")
            assert service.key_rotation is not None
            journal = service.journal
            assert journal is not None
            audited: list[StoredEvent] = []
            while not audited:  # the scheduler's next check rotates, then journals it
                await asyncio.sleep(0.02)
                audited = [e for e in journal.events() if e.kind is EventKind.KEY_ROTATION]
            (event,) = audited
            assert [k.version for k in await asyncio.to_thread(vault.data_keys)] == [2]
            assert service.metrics is not None
            rotated = {"family": "vault.data", "outcome": "rotated"}
            assert (
                service.metrics.registry.get_sample_value("isobridge_key_rotations_total", rotated)
                == 1
            )
            assert (event.tenant, event.body["reason"], event.body["new_key"]) == (
                "bank-a",
                "max_uses",
                "2",
            )
            assert len(tokens) == len(CARDS)

    scenario()
