"""``isobridge run`` as a process: it serves, it stops on SIGTERM, a bad config fails at start."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from hub.cli import main
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import PAN, _purchase
from tests.mainframe_sim.samples import ANNA
from tests.support import on_event_loop

ROOT = Path(__file__).resolve().parents[2]


def test_a_bad_config_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text("[[listeners]]\nname = 'pos'\nport = 99999\n")
    import io

    err = io.StringIO()
    status = main(["run", "--config", str(config)], stdout=io.StringIO(), stderr=err)
    assert status == 2
    assert err.getvalue() == f"isobridge: {config}: listeners[0].port: 99999 is outside 0..65535\n"


def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        config = tmp_path / "hub.toml"
        config.write_text(
            f'[hub]\nhome = "{tmp_path / "home"}"\n'
            "[[listeners]]\nname = 'pos'\nport = 0\n"
            f"[mainframe]\nport = {mainframe_port}\n"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            edge_port = 0
            while not edge_port:
                line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
                assert line, "isobridge run exited before listening"
                if "ISO 8583 edge on" in line:
                    edge_port = int(line.split("127.0.0.1:")[1].split()[0])
            client = await Client.connect(edge_port)
            await client.send(_purchase(1, 2_500, ANNA))
            mti, fields = _parse(await client.receive())
            await client.close()
            assert (mti, fields[39]) == ("0210", "00")
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await server.close()
            ledger.close()

    scenario()


def test_the_command_exists_for_the_installed_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "--help"],
        capture_output=True, check=False, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert b"--config" in done.stdout


def test_a_running_hub_keeps_its_start_up_heap_out_of_full_collections(tmp_path: Path) -> None:
    """Once started, the hub freezes what start-up allocated (``hub.service.settle_heap``):
    full garbage collections no longer scan it (they paused the event loop ~100 ms)."""
    program = (
        "import asyncio, gc, os, signal, sys\n"
        "from hub.config_file import load_config\n"
        "from hub.service import run_forever\n"
        "def ready(_service):\n"
        "    print('frozen', gc.get_freeze_count(), *gc.get_threshold(), flush=True)\n"
        "    asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)\n"
        f"config = load_config(None, environ={{'ISOBRIDGE_HOME': {str(tmp_path)!r}}})\n"
        "sys.exit(run_forever(config, out=sys.stdout, ready=ready))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    frozen = [line for line in done.stdout.splitlines() if line.startswith("frozen ")]
    assert frozen, done.stdout + done.stderr
    count, *thresholds = map(int, frozen[0].split()[1:])
    assert count > 10_000
    assert thresholds == [10_000, 20, 20]


def test_run_logs_json_and_prints_spans_as_configured(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        config = tmp_path / "hub.toml"
        config.write_text(
            f'[hub]\nhome = "{tmp_path / "home"}"\n'
            "[[listeners]]\nname = 'pos'\nport = 0\n"
            f"[mainframe]\nport = {mainframe_port}\n"
            '[logging]\nformat = "json"\nlevel = "info"\n'
            '[tracing]\nexporter = "console"\n'
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            edge_port = 0
            while not edge_port:
                line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
                assert line, "isobridge run exited before listening"
                if "ISO 8583 edge on" in line:
                    edge_port = int(line.split("127.0.0.1:")[1].split()[0])
            client = await Client.connect(edge_port)
            await client.send(_purchase(1, 2_500, ANNA))
            assert _parse(await client.receive())[1][39] == "00"
            await client.close()
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await server.close()
            ledger.close()
        text = err.decode()
        logs = [json.loads(line) for line in text.splitlines() if line.startswith('{"time"')]
        listening = [line for line in logs if line["logger"] == "isobridge.edge"]
        assert listening and listening[0]["message"].startswith("ISO 8583 edge listening")
        assert listening[0]["level"] == "info"
        assert '"name": "edge receive"' in text
        assert '"name": "mainframe posting"' in text
        assert PAN not in text

    scenario()
