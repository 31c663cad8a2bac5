"""Per-client rate limits: a token bucket for each OAuth client (tenant).

Each client may make ``burst`` requests at once and ``rate`` per second on average
(token bucket: ``burst`` tokens, refilled continuously at ``rate``). A request over the
limit is refused with 429 ``Too Many Requests`` and a ``Retry-After`` header (RFC 9110
section 10.2.3, whole seconds, at least 1) saying when one token will be there again. Idle
buckets are forgotten after ``idle`` seconds.

The buckets are per process, on purpose: a shared bucket would cost a database write on
every request, the balance read included. With ``N`` gateway processes behind one port
(``isobridge run --workers N --gateway``), the composition root (``hub.gateway``) gives
each ``rate / N`` and ``burst // N`` (at least 1), so a client never gets more than its
limit in total. The price: the kernel keeps a connection on one process, so a client that
sends everything over one keep-alive connection gets ``1/N`` of its rate; one that opens
several connections gets about all of it.

>>> now = [0.0]
>>> limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
>>> limiter.take("tpp-1"), limiter.take("tpp-1"), limiter.take("tpp-1")
(None, None, 1)
>>> limiter.take("tpp-2")
>>> now[0] = 1.0
>>> limiter.take("tpp-1")
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """See the module docstring."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        idle: float = 600.0,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.idle = idle
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> int | None:
        """Take one token for ``client``: None if allowed, else the seconds to wait."""
        now = self.clock()
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            self._sweep(now)
            return None
        self._buckets[client] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _sweep(self, now: float) -> None:
        if len(self._buckets) < 10_000:
            return
        for client, (_, at) in list(self._buckets.items()):
            if now - at > self.idle:
                del self._buckets[client]
