"""A circuit breaker per destination: a dead core is answered at once, not piled up on.

Three states (Nygard, *Release It!*; the pattern of Hystrix and resilience4j):

- **closed**: calls pass. ``failure_threshold`` failures in a row open the breaker.
- **open**: calls are refused at once (the edge answers ISO 8583 ``91``, issuer or switch
  inoperative) for ``reset_after`` seconds.
- **half-open**: then up to ``half_open_probes`` calls pass as probes. A probe that succeeds
  closes the breaker; one that fails opens it again for another ``reset_after``.

A timeout counts as a failure; a decline (``51``) is a success: the core answered.
The breaker holds no lock: it lives on one asyncio event loop. The clock is injectable.
Listeners (:meth:`CircuitBreaker.add_listener`, metrics) are told of every change of state;
an open breaker turns half-open when it is next asked, once ``reset_after`` has passed.

>>> now = [0.0]
>>> breaker = CircuitBreaker("core", failure_threshold=2, reset_after=5.0, clock=lambda: now[0])
>>> breaker.allow(), breaker.state
(True, <BreakerState.CLOSED: 'closed'>)
>>> breaker.record_failure(); breaker.record_failure()
>>> breaker.state, breaker.allow()
(<BreakerState.OPEN: 'open'>, False)
>>> now[0] = 5.0
>>> breaker.allow(), breaker.state
(True, <BreakerState.HALF_OPEN: 'half_open'>)
>>> breaker.allow()  # one probe at a time by default
False
>>> breaker.record_success()
>>> breaker.state
<BreakerState.CLOSED: 'closed'>
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BreakerSnapshot", "BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state for metrics and status pages."""

    name: str
    state: BreakerState
    consecutive_failures: int
    times_opened: int
    refused: int


class CircuitBreaker:
    """See the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after: float = 10.0,
        half_open_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_probes < 1 or reset_after <= 0:
            raise ValueError("failure_threshold and half_open_probes must be >= 1, reset_after > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_out = 0
        self._times_opened = 0
        self._refused = 0
        self._listeners: list[Callable[[CircuitBreaker, BreakerState], None]] = []

    def add_listener(self, listener: Callable[[CircuitBreaker, BreakerState], None]) -> None:
        """Call ``listener(breaker, new_state)`` on every change of state from now on."""
        self._listeners.append(listener)

    def _become(self, state: BreakerState) -> None:
        self._state = state
        for listener in self._listeners:
            listener(self, state)

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose time is up reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            self._probes_out = 0
            self._become(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """Whether a call may go now; in half-open, a ``True`` is a probe that must be
        followed by :meth:`record_success` or :meth:`record_failure`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes_out < self.half_open_probes:
            self._probes_out += 1
            return True
        self._refused += 1
        return False

    def record_success(self) -> None:
        """The destination answered."""
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._probes_out = 0
            self._become(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """The destination failed or did not answer in time."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes_out = 0
        self._times_opened += 1
        self._become(BreakerState.OPEN)

    def snapshot(self) -> BreakerSnapshot:
        """Counters for metrics."""
        return BreakerSnapshot(
            self.name, self.state, self._failures, self._times_opened, self._refused
        )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self.state.value})"
