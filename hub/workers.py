"""Several hub processes behind the same listening ports (``[hub] workers = N``).

One Python process runs the hub on one core: the interpreter's lock lets one thread run
Python at a time. ``isobridge run`` with ``workers = N`` (or ``--workers N``) starts N
worker processes, each a whole hub (:class:`hub.service.HubService`: edges, route, core
worker, reversal forwarder, clearing consumer), and supervises them, as uvicorn and gunicorn
do for web servers:

- **Listeners** are bound by every worker with ``SO_REUSEPORT``: the kernel spreads the
  acquirers' connections over the workers. A port of 0 cannot be shared (a configuration
  error names the listener). With ``--gateway gateway.toml`` each worker also serves the
  open-banking gateway on ``[gateway] port``, the same way; the gateway's state is in its
  database (:mod:`gateway.store`), which every worker uses.
- **Work** is shared through the broker: each worker consumes the core destinations as a
  competing consumer and waits for its replies on a reply queue of its own; the vault, the
  journal, the reversal store and the ledger are databases that every worker uses (SQLite
  with WAL for one machine; PostgreSQL beyond, see the README).
- **Supervision**: a worker that fails (exits with an error status) before it first
  reported itself running (a port it cannot bind, a broker it cannot reach; it reports by
  creating the file named by ``$ISOBRIDGE_READY_FILE``, however long start-up takes on a
  loaded machine) stops them all, and ``isobridge run`` exits with that worker's status:
  a fault that every worker would meet is not retried forever. A worker that dies
  otherwise (killed, or later) is started again after a backoff (``restart_delays``,
  reset once a worker has run for a minute); meanwhile the others serve, the dead
  worker's unacknowledged deliveries go to them, and its acquirers reconnect (to a live
  worker).
- **Signals**: SIGTERM and SIGINT stop every worker (each closes its edges first, then
  finishes what it holds) and then the supervisor; SIGHUP is passed on (certificate
  reload). A worker whose supervisor disappears is sent SIGTERM by the kernel (Linux
  ``PR_SET_PDEATHSIG``), so no orphan keeps a port.
- **Metrics** (``[metrics]``, :class:`WorkerMetrics`): every worker writes its values to
  ``<home>/metrics`` (prometheus_client's multiprocess mode, emptied at start) and the
  supervisor serves their sum on ``[metrics] listen``, with the queue depths read from the
  broker; a dead worker's gauges are dropped, its counters kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from observability.metrics import (
    MULTIPROCESS_ENV,
    MetricsServer,
    QueueDepthCollector,
    QueueDepthSource,
    multiprocess_registry,
    prepare_multiprocess_directory,
    serve_metrics,
    worker_exited,
)

__all__ = [
    "READY_FILE_ENV",
    "SUPERVISOR_PID_ENV",
    "Supervisor",
    "WorkerMetrics",
    "die_with_parent",
    "report_ready",
    "supervise",
    "worker_command",
]

_PR_SET_PDEATHSIG = 1
_STABLE_AFTER = 60.0


SUPERVISOR_PID_ENV = "ISOBRIDGE_SUPERVISOR_PID"
"""The environment variable naming the supervisor of a worker (its parent process)."""

READY_FILE_ENV = "ISOBRIDGE_READY_FILE"
"""The environment variable naming the file a worker creates once it is running."""


def report_ready() -> None:
    """Tell the supervisor (if any) that this worker started: creates ``$ISOBRIDGE_READY_FILE``."""
    path = os.environ.get(READY_FILE_ENV)
    if path:
        Path(path).touch()


def worker_command(
    config_path: str | None, index: int, workers: int, gateway_path: str | None = None
) -> list[str]:
    """The command line of worker ``index`` of ``workers`` (``isobridge run`` of this
    interpreter; with the open-banking gateway too when ``gateway_path`` names its file)."""
    command = [
        sys.executable, "-m", "hub.cli", "run", "--worker", str(index), "--workers", str(workers)
    ]  # fmt: skip
    if config_path is not None:
        command += ["--config", config_path]
    if gateway_path is not None:
        command += ["--gateway", gateway_path]
    return command


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux; elsewhere,
    nothing). A supervisor that died before this call (while the worker was still starting)
    cannot be signalled any more: then the worker exits at once instead of living on as an
    orphan (``$ISOBRIDGE_SUPERVISOR_PID`` names the supervisor that started it)."""
    name = ctypes.util.find_library("c")
    if name is not None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if supervisor is not None and supervisor.isdigit() and os.getppid() != int(supervisor):
        raise SystemExit(f"isobridge: worker: its supervisor (pid {supervisor}) is gone; exiting")


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """The workers' metrics: their value files' ``directory``, the address the supervisor
    serves the sum on, and the transport whose queue depths it reads when scraped (None
    for ``memory://``, whose queues live inside each worker)."""

    directory: Path
    listen: str
    queues: QueueDepthSource | None = None

    def serve(self) -> MetricsServer:
        """Serve the sum over the workers' files (the directory must exist)."""
        extra = (QueueDepthCollector([self.queues]),) if self.queues is not None else ()
        return serve_metrics(self.listen, multiprocess_registry(self.directory, extra))


@dataclass(slots=True)
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    runs: int = 0
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Starts ``workers`` processes from ``command(index)`` and keeps them running; see the
    module docstring. :meth:`run` returns the exit status."""

    workers: int
    command: Callable[[int], Sequence[str]]
    out: TextIO
    restart_delays: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 30.0)
    poll_interval: float = 0.2
    env: dict[str, str] | None = None
    metrics: WorkerMetrics | None = None
    _slots: list[_Worker] = field(default_factory=list)
    _stopping: bool = False
    _status: int = 0
    _metrics_server: MetricsServer | None = None
    _ready_directory: Path | None = None

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            if self.metrics is not None:
                self._start_metrics(self.metrics)
            self._ready_directory = Path(tempfile.mkdtemp(prefix="isobridge-workers-"))
            self._slots = [_Worker(index) for index in range(1, self.workers + 1)]
            for worker in self._slots:
                self._start(worker)
            self._note(f"{self.workers} workers started (pids {', '.join(self.pids())})")
            while not self._stopping:
                self._watch()
                time.sleep(self.poll_interval)
        finally:
            self._stop_all()
            if self._metrics_server is not None:
                self._metrics_server.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._ready_directory is not None:
                shutil.rmtree(self._ready_directory, ignore_errors=True)
        return self._status

    def _start_metrics(self, metrics: WorkerMetrics) -> None:
        prepare_multiprocess_directory(metrics.directory)
        base = dict(os.environ) if self.env is None else dict(self.env)
        self.env = {**base, MULTIPROCESS_ENV: str(metrics.directory)}
        self._metrics_server = metrics.serve()
        host, port = self._metrics_server.address
        self._note(f"metrics of every worker on http://{host}:{port}/metrics")

    def pids(self) -> list[str]:
        """The process ids of the running workers."""
        return [
            str(w.process.pid)
            for w in self._slots
            if w.process is not None and w.process.poll() is None
        ]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for worker in self._slots:
                if worker.process is not None and worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGHUP)
            return
        self._stopping = True

    def _ready_file(self, worker: _Worker) -> Path:
        if self._ready_directory is None:
            raise RuntimeError("the supervisor is not running")
        return self._ready_directory / f"worker-{worker.index}.ready"

    def _start(self, worker: _Worker) -> int:
        env = dict(os.environ) if self.env is None else dict(self.env)
        env[READY_FILE_ENV] = str(self._ready_file(worker))
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        # this interpreter running isobridge: a command line built here
        worker.process = subprocess.Popen(self.command(worker.index), env=env)  # noqa: S603
        worker.started_at = time.monotonic()
        worker.runs += 1
        worker.restart_at = None
        return worker.process.pid

    def _watch(self) -> None:
        now = time.monotonic()
        for worker in self._slots:
            process = worker.process
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    pid = self._start(worker)
                    self._note(f"worker {worker.index} started again (pid {pid})")
                continue
            if process is None or process.poll() is None:
                if process is not None and now - worker.started_at > _STABLE_AFTER:
                    worker.failures = 0
                continue
            status = process.returncode
            lived = now - worker.started_at
            if self.metrics is not None:
                worker_exited(process.pid, self.metrics.directory)
            if worker.runs == 1 and not self._ready_file(worker).exists() and status > 0:
                self._note(
                    f"worker {worker.index} exited at start-up with status {status}; stopping"
                )
                self._status = status if status > 0 else 1
                self._stopping = True
                return
            delay = self.restart_delays[min(worker.failures, len(self.restart_delays) - 1)]
            worker.failures += 1
            worker.restart_at = now + delay
            self._note(
                f"worker {worker.index} (pid {process.pid}) exited with status {status}"
                f" after {lived:.0f} s; starting it again in {delay:g} s"
            )

    def _stop_all(self) -> None:
        running = [w.process for w in self._slots if w.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._note(f"worker pid {process.pid} did not stop in time; killed")
                process.kill()
                process.wait()

    def _note(self, text: str) -> None:
        self.out.write(f"isobridge: {text}\n")
        self.out.flush()


def supervise(
    config_path: str | None,
    workers: int,
    out: TextIO,
    metrics: WorkerMetrics | None = None,
    gateway_path: str | None = None,
) -> int:
    """Run ``workers`` hub processes from ``config_path`` (each with the gateway of
    ``gateway_path``, if given) until SIGTERM / SIGINT."""
    return Supervisor(
        workers,
        lambda index: worker_command(config_path, index, workers, gateway_path),
        out,
        metrics=metrics,
    ).run()
