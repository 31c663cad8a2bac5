"""Live activity read from the journal: events per second and answer latency, per second.

For an operations view (the gateway's console, :mod:`gateway.console`): how many events
the hub records per second, how many requests it answers, and how long each took from its
``received`` event to the event that records the caller's answer: ``answered`` (the hub's
reply; a gateway payment's rejection), ``sent`` (a gateway payment handed to clearing: the
TPP's ``201 ACSP``) or ``timed_out`` (the hub's time-out answer). Figures are per second
of the events' own times, over the last :data:`WINDOW_SECONDS`.

Reading is incremental: each :meth:`JournalActivity.sample` reads only the events appended
since the previous one (by ``seq``, the primary key; a few columns, no decryption), so
polling costs what the traffic adds, whatever the size of the journal.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select

from journal.events import EventKind
from journal.reading import READ_ONLY
from journal.schema import EVENTS, HEAD
from journal.store import Journal

__all__ = ["ANSWERS", "JournalActivity", "WINDOW_SECONDS"]

WINDOW_SECONDS: Final = 60
"""The figures cover this many seconds, one point per second."""

ANSWERS: Final = frozenset({EventKind.ANSWERED, EventKind.SENT, EventKind.TIMED_OUT})
"""The event kinds that record the caller's answer (module docstring)."""

_RATE_SECONDS: Final = 10
_CHUNK: Final = 5000
_MOST_PER_SAMPLE: Final = 200_000
_FIRST_LOOK_BACK: Final = 20_000
_OPEN_TRANSACTIONS: Final = 100_000


@dataclass(slots=True)
class _Second:
    events: int = 0
    answered: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class JournalActivity:
    """Events, answers and received-to-answer latencies per second (module docstring).

    Each :meth:`sample` reads only the events appended since the previous one (by ``seq``;
    the first looks back at most 20,000 events), so polling costs what the traffic adds.
    Times are the events' own ``at``; a transaction whose ``received`` event was not seen
    (before the first look back) has no latency.
    """

    def __init__(self, journal: Journal, *, window: int = WINDOW_SECONDS) -> None:
        self.journal = journal
        self.window = window
        self._after: int | None = None
        self._seconds: dict[int, _Second] = {}
        self._received: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def _read(self, now: float) -> None:
        with self.journal.engine.connect().execution_options(**READ_ONLY) as connection:
            if self._after is None:
                head = connection.execute(select(HEAD.c.seq).where(HEAD.c.id == 1)).scalar()
                self._after = max(0, int(head or 0) - _FIRST_LOOK_BACK)
            oldest = now - self.window
            read = 0
            columns = (EVENTS.c.seq, EVENTS.c.at, EVENTS.c.kind, EVENTS.c.transaction_id)
            while read < _MOST_PER_SAMPLE:
                rows = connection.execute(
                    select(*columns)
                    .where(EVENTS.c.seq > self._after)
                    .order_by(EVENTS.c.seq)
                    .limit(_CHUNK)
                ).all()
                for seq, at, kind, transaction_id in rows:
                    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at
                    moment = at.timestamp()
                    self._after = seq
                    if kind == EventKind.RECEIVED:
                        self._received[transaction_id] = moment
                        if len(self._received) > _OPEN_TRANSACTIONS:
                            self._received.popitem(last=False)
                    if moment < oldest:
                        continue
                    second = self._seconds.setdefault(int(moment), _Second())
                    second.events += 1
                    if kind in ANSWERS:
                        second.answered += 1
                        started = self._received.pop(transaction_id, None)
                        if started is not None:
                            second.latencies_ms.append((moment - started) * 1000)
                read += len(rows)
                if len(rows) < _CHUNK:
                    break
        for key in [k for k in self._seconds if k < int(now) - self.window]:
            del self._seconds[key]

    def sample(self, now: float | None = None) -> dict[str, Any]:
        """The journal's figures over the last :attr:`window` seconds up to ``now``."""
        now = time.time() if now is None else now
        with self._lock:
            self._read(now)
            last = int(now)
            seconds = [self._seconds.get(s, _Second()) for s in range(last - self.window, last)]
        latencies = [ms for second in seconds for ms in second.latencies_ms]
        recent = seconds[-_RATE_SECONDS:]
        return {
            "EventsPerSecond": round(sum(s.events for s in recent) / _RATE_SECONDS, 2),
            "AnsweredPerSecond": round(sum(s.answered for s in recent) / _RATE_SECONDS, 2),
            "Answered": sum(s.answered for s in seconds),
            "LatencyMs": {
                "P50": _rounded(_percentile(latencies, 0.5)),
                "P95": _rounded(_percentile(latencies, 0.95)),
                "Max": _rounded(max(latencies)),
            }
            if latencies
            else None,
            "Series": {
                "EventsPerSecond": [s.events for s in seconds],
                "LatencyMs": [
                    _rounded(_percentile(s.latencies_ms, 0.5)) if s.latencies_ms else None
                    for s in seconds
                ],
            },
        }
