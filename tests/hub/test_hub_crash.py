"""The hub process killed (SIGKILL) mid-load and started again, with acquirers that do what
ISO 8583 asks of them: a purchase left without an answer is reversed with a 0420 advice
(repeated until answered). The ledger is reconciled at the end: every approved purchase is
posted once, every other one not at all."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import Counter
from pathlib import Path

from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_chaos import ACCOUNTS
from tests.hub.test_edge import Client, _build, _parse
from tests.hub.test_service import PAN, _purchase
from tests.support import on_event_loop

ROOT = Path(__file__).resolve().parents[2]


def _reversal(stan: int, original_stan: int, minor_units: int, account: str) -> bytes:
    """The acquirer's 0420 for the purchase ``original_stan`` that got no answer."""
    return _build(
        "0420",
        {
            2: PAN,
            3: "000000",
            4: f"{minor_units:012d}",
            7: "1129101600",
            11: f"{stan:06d}",
            37: f"{original_stan:012d}",
            41: "TERM0001",
            42: "MERCHANT0000001",
            49: "978",
            90: f"0200{original_stan:06d}1129101500{0:011d}{0:011d}",
            102: account,
        },
    )


async def _start_hub(config: Path) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line, "isobridge run exited before listening"
        if "ISO 8583 edge on" in line:
            return process, int(line.split("127.0.0.1:")[1].split()[0])


def test_hub_killed_mid_load_then_restarted_reconciles(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        config = tmp_path / "hub.toml"
        config.write_text(
            f'[hub]\nhome = "{tmp_path / "home"}"\n'
            "[[listeners]]\nname = 'pos'\nport = 0\nrequest_timeout = 5.0\n"
            f"[mainframe]\nport = {mainframe_port}\ntimeout = 1.0\n"
        )
        before = {number: ledger.balances(number) for number in ACCOUNTS}
        approved: Counter[str] = Counter()
        unanswered: list[tuple[int, int, str]] = []
        answered = 0
        hub, port = await _start_hub(config)
        try:

            async def terminal(first: int) -> None:
                nonlocal answered
                client = await Client.connect(port)
                try:
                    for stan in range(first, first + 40):
                        account, amount = ACCOUNTS[stan % len(ACCOUNTS)], 100 + stan % 50
                        try:
                            await client.send(_purchase(stan, amount, account))
                            code = _parse(await client.receive(timeout=8))[1][39]
                        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                            unanswered.append((stan, amount, account))
                            return
                        answered += 1
                        if code == "00":
                            approved[account] += amount
                finally:
                    with contextlib.suppress(ConnectionError):
                        await client.close()

            async def killer() -> None:
                while answered < 40:
                    await asyncio.sleep(0.01)
                hub.send_signal(signal.SIGKILL)

            await asyncio.gather(killer(), *(terminal(1000 * n + 1) for n in range(1, 5)))
            await hub.wait()
            assert unanswered, "the kill hit no request in flight"

            hub, port = await _start_hub(config)
            client = await Client.connect(port)
            for number, (stan, amount, account) in enumerate(unanswered):
                await client.send(_reversal(9000 + number, stan, amount, account))
                mti, fields = _parse(await client.receive(timeout=10))
                assert mti == "0430"
                assert fields[39] in ("00", "25"), fields[39]  # reversed, or never posted
            for stan in range(8001, 8011):  # the restarted hub serves as before
                account, amount = ACCOUNTS[stan % len(ACCOUNTS)], 100 + stan % 50
                await client.send(_purchase(stan, amount, account))
                if _parse(await client.receive())[1][39] == "00":
                    approved[account] += amount
            await client.close()
            hub.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(hub.wait(), 30) == 0
        finally:
            if hub.returncode is None:
                hub.kill()
                await hub.wait()
            await server.close()
        for account_number in ACCOUNTS:
            start, end = before[account_number], ledger.balances(account_number)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == approved[account_number], account_number
        assert ledger.check().balanced
        ledger.close()

    scenario()
