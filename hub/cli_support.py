"""What the command-line modules share: the error they report, exit statuses, a progress bar."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_USAGE", "CliError", "ProgressBar"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report on stderr with an exit status; never carries the payload."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


class ProgressBar:
    """``label [#####.....] done/total rate/s`` on one line of ``out``, redrawn in place.

    On a terminal it redraws at most ten times a second; elsewhere (a log, a pipe) it writes
    a line at each tenth of the way, so logs stay short.
    """

    WIDTH = 30

    def __init__(self, label: str, out: TextIO) -> None:
        self._label = label
        self._out = out
        self._tty = out.isatty()
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        fraction = 1.0 if total <= 0 else min(1.0, done / total)
        finished = done >= total
        if self._tty:
            if not finished and now - self._last_draw < 0.1:
                return
            end = "\n" if finished else ""
            self._out.write(f"\r{self._line(done, total, fraction, now)}{end}")
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth and not (finished and tenth != self._last_tenth):
                return
            self._last_tenth = tenth
            self._out.write(self._line(done, total, fraction, now) + "\n")
        self._last_draw = now
        self._out.flush()

    def _line(self, done: int, total: int, fraction: float, now: float) -> str:
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        rate = done / max(now - self._started, 1e-9)
        return f"{self._label} [{bar}] {done}/{total} {rate:,.0f}/s"
