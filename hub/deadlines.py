"""Timeouts of one fixed length for many tasks, on one timer of the event loop.

The edge bounds every read of a connection (``idle_timeout``) and every request's handler
(``request_timeout``). An ``asyncio.timeout`` scope around each costs a timer of the loop
armed and cancelled, a ``Timeout`` object and two look-ups of the running loop (each a
``getpid()`` system call on Python 3.11): about 8-10 us per scope here, two scopes per card
payment. Because every deadline of a :class:`Deadlines` is the same length from the moment
it is armed, deadlines expire in the order they were armed: they wait in a queue, and one
timer, set for the oldest armed one, serves them all. Arming is an append, disarming a
store; the timer fires about once per timeout length.

Expiry is what ``asyncio.timeout`` does: the task is cancelled, and the code that armed the
deadline turns that cancellation into its timeout (:meth:`Deadlines.expired`, which
``uncancel()``\\ s the task, so a cancellation from elsewhere still propagates)::

    deadline = deadlines.arm()  # the current task
    try:
        data = await reader.read(65536)
    except asyncio.CancelledError:
        if not deadlines.expired(deadline):
            raise
        ...  # timed out
    finally:
        deadlines.disarm(deadline)
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Deadline", "Deadlines"]

_ARMED = 0
_DISARMED = 1
_EXPIRED = 2


class Deadline:
    """One armed deadline of a :class:`Deadlines` (see the module docstring)."""

    __slots__ = ("at", "cancelling", "state", "task")

    def __init__(self, at: float, task: asyncio.Task[object], cancelling: int) -> None:
        self.at = at
        self.task: asyncio.Task[object] | None = task
        self.cancelling = cancelling
        self.state = _ARMED


class Deadlines:
    """Deadlines ``seconds`` after each :meth:`arm`, on ``loop``'s clock, one timer for all
    (see the module docstring). Used on ``loop`` only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.seconds = seconds
        self._loop = loop
        self._queue: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Deadlines queued, armed or not yet dropped (a bounded number: see :meth:`arm`)."""
        return len(self._queue)

    def arm(self, task: asyncio.Task[object] | None = None) -> Deadline:
        """Cancel ``task`` (by default the current task of the loop) ``seconds`` from now
        unless the deadline is disarmed first."""
        if task is None:
            task = asyncio.current_task(self._loop)
            if task is None:
                raise RuntimeError("a deadline is armed from a task of its loop")
        queue = self._queue
        while queue and queue[0].state != _ARMED:
            queue.popleft()  # finished in order, as they mostly are: the queue stays short
        deadline = Deadline(self._loop.time() + self.seconds, task, task.cancelling())
        queue.append(deadline)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline.at, self._expire)
        return deadline

    @staticmethod
    def disarm(deadline: Deadline) -> None:
        """The work finished (or failed) in time, or was cancelled otherwise: no expiry."""
        if deadline.state == _ARMED:
            deadline.state = _DISARMED
        deadline.task = None

    @staticmethod
    def expired(deadline: Deadline) -> bool:
        """Whether a :class:`asyncio.CancelledError` caught in the armed code is this
        deadline's expiry (then the task's cancellation is withdrawn), rather than a
        cancellation from elsewhere, to let through."""
        task = deadline.task
        if deadline.state != _EXPIRED or task is None:
            return False
        return task.uncancel() <= deadline.cancelling

    def _expire(self) -> None:
        self._timer = None
        queue = self._queue
        now = self._loop.time()
        while queue:
            deadline = queue[0]
            if deadline.state == _ARMED:
                if deadline.at > now:
                    self._timer = self._loop.call_at(deadline.at, self._expire)
                    return
                deadline.state = _EXPIRED
                if deadline.task is not None:
                    deadline.task.cancel()
            queue.popleft()
