"""``isobridge run`` with several workers: one port, the work shared, a dead worker replaced.

Real processes throughout: the supervisor and its workers are ``isobridge run`` processes,
the acquirers are TCP clients that build their messages with pyiso8583 (not our adapter),
the core is a real ``mainframe_sim`` server, and the shared-work test runs over RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

import pytest

from hub.cli import main
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from tests.hub.test_edge import Client, _parse
from tests.hub.test_service import _purchase
from tests.mainframe_sim.samples import ANNA, JONAS
from tests.routing.conftest import amqp_url, require_broker
from tests.support import on_event_loop

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = (ANNA, JONAS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(tmp_path: Path, port: int, mainframe_port: int, transport: str) -> Path:
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nhome = "{tmp_path / "home"}"\nworkers = 2\n'
        f'[routing]\ntransport = "{transport}"\n'
        f"[[listeners]]\nname = 'pos'\nport = {port}\nrequest_timeout = 10.0\n"
        f"[mainframe]\nport = {mainframe_port}\n"
    )
    return config


class Supervised:
    """``isobridge run`` with workers, as a process; its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, config: Path) -> Supervised:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        supervised = cls(process)
        await supervised.wait_for_lines(r"^isobridge\[worker \d\]: transport .* running$", 2)
        return supervised

    async def wait_for_lines(self, pattern: str, count: int = 1, timeout: float = 60) -> list[str]:
        """Read output until ``count`` lines (seen so far included) match ``pattern``."""
        compiled = re.compile(pattern)
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while len(found := [x for x in self.lines if compiled.search(x)]) < count:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"isobridge run ended; its output:\n{''.join(self.lines)}"
                self.lines.append(line.rstrip("\n"))
        return found

    def worker_pids(self) -> list[int]:
        started = next(x for x in self.lines if "workers started (pids" in x)
        return [int(pid) for pid in re.findall(r"\d+", started.split("pids")[1])]

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), 60)
        self.lines += rest.decode().splitlines()
        return await asyncio.wait_for(self.process.wait(), 30)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def test_two_workers_share_the_port_and_the_work_and_the_ledger_reconciles(
    tmp_path: Path,
) -> None:
    url = amqp_url()
    require_broker(url)

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        before = {number: ledger.balances(number) for number in ACCOUNTS}
        approved: Counter[str] = Counter()
        port = _free_port()
        hub = await Supervised.start(_config(tmp_path, port, mainframe_port, url))
        try:

            async def terminal(first: int) -> None:
                client = await Client.connect(port)
                for stan in range(first, first + 10):
                    account, amount = ACCOUNTS[stan % 2], 100 + stan % 37
                    await client.send(_purchase(stan, amount, account))
                    mti, fields = _parse(await client.receive(timeout=20))
                    assert (mti, fields[11]) == ("0210", f"{stan:06d}")
                    if fields[39] == "00":
                        approved[account] += amount
                await client.close()

            await asyncio.gather(*(terminal(1000 * n + 1) for n in range(1, 17)))
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
        served = [
            int(re.findall(r"after (\d+) requests", x)[0])
            for x in hub.lines
            if re.match(r"isobridge\[worker \d\]: stopping after", x)
        ]
        assert len(served) == 2 and sum(served) == 160
        assert min(served) > 0, f"one worker took every connection: {served}"
        for number in ACCOUNTS:
            start, end = before[number], ledger.balances(number)
            assert start is not None and end is not None
            assert start.ledger - end.ledger == approved[number], number
        assert sum(approved.values()) > 0
        assert ledger.check().balanced
        ledger.close()

    scenario()


def test_a_killed_worker_is_started_again_and_no_worker_outlives_the_supervisor(
    tmp_path: Path,
) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        port = _free_port()
        hub = await Supervised.start(_config(tmp_path, port, mainframe_port, "memory://"))
        try:
            first, second = hub.worker_pids()
            os.kill(first, signal.SIGKILL)
            await hub.wait_for_lines(r"worker 1 \(pid \d+\) exited with status -9 after")
            restarted = await hub.wait_for_lines(r"worker 1 started again \(pid \d+\)")
            replacement = int(re.findall(r"pid (\d+)", restarted[0])[0])
            await hub.wait_for_lines(r"^isobridge\[worker 1\]: transport .* running$", 2)
            for stan in range(1, 9):  # whichever worker a connection lands on, it is served
                client = await Client.connect(port)
                await client.send(_purchase(stan, 250, ANNA))
                assert _parse(await client.receive(timeout=20))[1][39] == "00"
                await client.close()
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
            ledger.close()
        assert not _alive(first)
        for pid in (second, replacement):
            assert not _alive(pid), f"worker {pid} outlived its supervisor"

    scenario()


def test_a_worker_that_cannot_start_stops_them_all_with_its_status(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        with socket.socket() as taken:  # no SO_REUSEPORT: the workers cannot bind
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = _config(tmp_path, port, 1, "memory://")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli", "run", "--config", str(config),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
            try:
                output, _ = await asyncio.wait_for(process.communicate(), 60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        assert process.returncode == 1
        text = output.decode()
        assert "address already in use" in text
        assert re.search(r"worker \d exited at start-up with status 1; stopping", text)

    scenario()


@pytest.mark.parametrize(
    ("table", "argv", "message"),
    [
        (
            "[hub]\nworkers = 2\n[[listeners]]\nname = 'pos'\nport = 0\n",
            [],
            "listeners[0].port: 0 (any free port) cannot be shared by 2 workers: name a port",
        ),
        ("[hub]\nworkers = 0\n", [], "hub.workers: 0 is outside 1..64"),
        (
            "[[listeners]]\nname = 'pos'\nport = 0\n",
            ["--workers", "3"],
            "--workers 3: listener 'pos' has port 0 (any free port), which workers cannot"
            " share: name a port",
        ),
        ("", ["--workers", "0"], "--workers: 0 is outside 1..64"),
    ],
)
def test_workers_that_cannot_share_a_port_are_refused_at_start(
    tmp_path: Path, table: str, argv: list[str], message: str
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(table)
    err = io.StringIO()
    status = main(["run", "--config", str(config), *argv], stdout=io.StringIO(), stderr=err)
    assert status == 2
    assert message in err.getvalue()


def test_the_supervisor_serves_the_metrics_of_every_worker_summed(tmp_path: Path) -> None:
    from tests.observability.test_metrics import scrape, value

    url = amqp_url()
    require_broker(url)

    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        port = _free_port()
        config = _config(tmp_path, port, mainframe_port, url)
        config.write_text(config.read_text() + '[metrics]\nlisten = "127.0.0.1:0"\n')
        hub = await Supervised.start(config)
        try:
            (line,) = await hub.wait_for_lines(r"^isobridge: metrics of every worker on http://")
            host, metrics_port = re.findall(r"http://([\d.]+):(\d+)/metrics", line)[0]
            address = (host, int(metrics_port))

            async def terminal(first: int) -> None:
                client = await Client.connect(port)
                for stan in range(first, first + 3):
                    await client.send(_purchase(stan, 100, ANNA))
                    assert _parse(await client.receive(timeout=20))[1][39] == "00"
                await client.close()

            await asyncio.gather(*(terminal(100 * n) for n in range(1, 9)))
            _, summed = await asyncio.to_thread(scrape, address)
            first, second = hub.worker_pids()
            files = {p.name for p in tmp_path.rglob("metrics/*.db")}
            os.kill(first, signal.SIGKILL)
            await hub.wait_for_lines(r"worker 1 started again \(pid \d+\)")
            _, after_kill = await asyncio.to_thread(scrape, address)
            assert await hub.stop() == 0
        finally:
            await hub.kill()
            await server.close()
            ledger.close()

        request = {"adapter": "iso8583:ascii", "message_type": "financial.request"}
        for samples in (summed, after_kill):  # a dead worker's counters stay in the sum
            assert value(samples, "isobridge_adapter_decode_total", **request) == 24
            assert value(samples, "isobridge_edge_request_seconds_count", listener="pos") == 24
            assert value(samples, "isobridge_edge_connections_accepted_total", listener="pos") == 8
            tokenized = value(
                samples, "isobridge_vault_operations_total", operation="tokenize", outcome="ok"
            )
            assert tokenized == 24
            assert value(samples, "isobridge_edge_in_flight", listener="pos") == 0
            assert value(samples, "isobridge_circuit_breaker_state", breaker="mainframe") == 0
            assert value(samples, "isobridge_transport_up") == 1
            assert ("isobridge_destination_queue_depth", frozenset({("destination", "core")})) in (
                samples
            )
        # both workers wrote their values (each set its breaker gauge at start)
        assert {f"gauge_livemax_{first}.db", f"gauge_livemax_{second}.db"} <= files

    scenario()


def test_each_worker_traces_on_a_provider_of_its_own(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed_ledger(ledger)
        server = MainframeServer(ledger)
        _, mainframe_port = await server.start("127.0.0.1", 0)
        port = _free_port()
        config = _config(tmp_path, port, mainframe_port, "memory://")
        config.write_text(config.read_text() + '[tracing]\nexporter = "console"\n')
        hub = await Supervised.start(config)
        assert hub.process.stdout is not None
        stdout = hub.process.stdout

        async def drain() -> None:  # the spans are many: a full pipe would hold the workers
            while line := await stdout.readline():
                hub.lines.append(line.decode().rstrip("\n"))

        reader = asyncio.create_task(drain())
        try:

            async def terminal(first: int) -> None:
                client = await Client.connect(port)
                for stan in range(first, first + 3):
                    await client.send(_purchase(stan, 100, ANNA))
                    assert _parse(await client.receive(timeout=20))[1][39] == "00"
                await client.close()

            await asyncio.gather(*(terminal(1000 * n + 1) for n in range(1, 17)))
            hub.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(reader, 60)
            assert await asyncio.wait_for(hub.process.wait(), 30) == 0
        finally:
            reader.cancel()
            await hub.kill()
            await server.close()
            ledger.close()
        output = "\n".join(hub.lines)
        instances = Counter(re.findall(r'"service\.instance\.id": "([^"]+)"', output))
        assert len(instances) == 2, instances  # one provider per worker process
        assert output.count('"name": "edge receive"') == 48
        assert output.count('"name": "mainframe posting"') == 48

    scenario()
