"""Fault injection: how the simulated mainframe misbehaves, set at start or at run time.

A :class:`FaultPlan` is a set of ``name=value`` settings, written the same way on the command
line (``serve --faults "latency=exp:20ms drop=0.05"``) and on the admin port
(``faults set latency=exp:20ms drop=0.05``):

``latency``
    Added before each reply: ``none``, ``fixed:20ms``, ``uniform:5ms-50ms`` or ``exp:20ms``
    (exponential with that mean). Units ``us``, ``ms`` (the default) and ``s``. The delay
    counts from the request's arrival, so pipelined replies are delayed, not queued behind
    each other's delays.
``drop``
    Probability that a reply is not sent at all (the request is still applied: the client
    sees a timeout, and a repeat with the same posting reference gets the stored reply).
``disconnect``
    Probability that the connection is closed instead of replying (the request is applied).
``garbage``
    Probability that the reply is replaced by bytes of the same length that do not decode.
``down``
    ``on``: every connection is closed at once and new ones are closed when accepted; MQ
    requests stay in their queue. ``off`` brings the mainframe back.

The probabilities are exclusive outcomes of one draw per reply, so their sum is at most 1.

>>> plan = FaultPlan.parse("latency=uniform:5ms-15ms drop=0.1 garbage=0.05")
>>> str(plan)
'latency=uniform:5ms-15ms drop=0.1 disconnect=0 garbage=0.05 down=off'
>>> FaultPlan.parse("drop=0.7 disconnect=0.5")
Traceback (most recent call last):
...
ValueError: drop + disconnect + garbage is 1.2, more than 1
>>> faults = Faults(FaultPlan.parse("drop=1"), seed=7)
>>> faults.decide().action
'drop'

The admin port speaks lines (:func:`admin_command`): ``faults set NAME=VALUE ...``,
``faults clear``, ``faults`` (show), ``status``, ``help``. Each answer is one line that starts
with ``ok`` or ``error``.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = ["Decision", "FaultPlan", "Faults", "Latency", "admin_command", "parse_duration"]

_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s)?$")
_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1e-3}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``250us``, ``20ms``, ``1.5s``; a bare number is milliseconds).

    >>> parse_duration("20ms"), parse_duration("1.5s"), parse_duration("7")
    (0.02, 1.5, 0.007)
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 20ms, 1.5s, 250us)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _show(seconds: float) -> str:
    if seconds >= 1 and seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds * 1000:g}ms"


@dataclass(frozen=True, slots=True)
class Latency:
    """A delay distribution: ``none``, ``fixed`` (``low``), ``uniform`` (``low``..``high``),
    or ``exp`` (mean ``low``); seconds."""

    kind: Literal["none", "fixed", "uniform", "exp"] = "none"
    low: float = 0.0
    high: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Latency:
        """Read ``none``, ``fixed:20ms``, ``uniform:5ms-50ms`` or ``exp:20ms``."""
        kind, _, parameters = text.partition(":")
        if kind in {"none", "0"} and not parameters:
            return cls()
        if kind == "fixed":
            return cls("fixed", parse_duration(parameters))
        if kind == "exp":
            return cls("exp", parse_duration(parameters))
        if kind == "uniform":
            low, separator, high = parameters.partition("-")
            if not separator:
                raise ValueError("uniform latency takes LOW-HIGH, e.g. uniform:5ms-50ms")
            latency = cls("uniform", parse_duration(low), parse_duration(high))
            if latency.high < latency.low:
                raise ValueError("uniform latency: HIGH is below LOW")
            return latency
        raise ValueError(f"unknown latency {text!r} (none, fixed:D, uniform:D-D, exp:MEAN)")

    def sample(self, rng: random.Random) -> float:
        """One delay, in seconds."""
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "exp":
            return rng.expovariate(1 / self.low) if self.low > 0 else 0.0
        return 0.0

    def __str__(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "uniform":
            return f"uniform:{_show(self.low)}-{_show(self.high)}"
        return f"{self.kind}:{_show(self.low)}"


def _probability(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {text!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults in force (see the module documentation); the default is none."""

    latency: Latency = Latency()
    drop: float = 0.0
    disconnect: float = 0.0
    garbage: float = 0.0
    down: bool = False

    @classmethod
    def parse(cls, settings: str | Iterable[str], base: FaultPlan | None = None) -> FaultPlan:
        """``base`` (no faults by default) with the ``name=value`` settings applied."""
        words = settings.split() if isinstance(settings, str) else list(settings)
        plan = base or cls()
        for word in words:
            name, separator, value = word.partition("=")
            if not separator:
                raise ValueError(f"expected NAME=VALUE, got {word!r}")
            if name == "latency":
                plan = replace(plan, latency=Latency.parse(value))
            elif name == "drop":
                plan = replace(plan, drop=_probability(name, value))
            elif name == "disconnect":
                plan = replace(plan, disconnect=_probability(name, value))
            elif name == "garbage":
                plan = replace(plan, garbage=_probability(name, value))
            elif name == "down":
                if value not in {"on", "off", "1", "0", "true", "false"}:
                    raise ValueError(f"down is on or off, not {value!r}")
                plan = replace(plan, down=value in {"on", "1", "true"})
            else:
                raise ValueError(
                    f"unknown fault {name!r} (latency, drop, disconnect, garbage, down)"
                )
        total = plan.drop + plan.disconnect + plan.garbage
        if total > 1 + 1e-9:
            raise ValueError(f"drop + disconnect + garbage is {total:g}, more than 1")
        return plan

    def __str__(self) -> str:
        return (
            f"latency={self.latency} drop={self.drop:g} disconnect={self.disconnect:g}"
            f" garbage={self.garbage:g} down={'on' if self.down else 'off'}"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one reply: wait ``delay`` seconds, then ``action``."""

    delay: float
    action: Literal["reply", "drop", "disconnect", "garbage"]


class Faults:
    """The plan in force, shared by the servers and changed at run time (thread-safe).

    ``seed`` makes the draws repeatable; ``on_change`` is called with each new plan (the
    TCP server uses it to close connections when the plan goes down).
    """

    def __init__(self, plan: FaultPlan | None = None, *, seed: int | None = None) -> None:
        self._plan = plan or FaultPlan()
        # seeded for reproducible fault injection; nothing secret depends on it
        self._rng = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()
        self.on_change: list[Callable[[FaultPlan], None]] = []

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        return self._plan

    @property
    def down(self) -> bool:
        """True while the mainframe is down."""
        return self._plan.down

    def set(self, plan: FaultPlan) -> None:
        """Put ``plan`` in force."""
        with self._lock:
            self._plan = plan
        for callback in self.on_change:
            callback(plan)

    def decide(self) -> Decision:
        """Draw the fate of one reply."""
        with self._lock:
            plan = self._plan
            delay = plan.latency.sample(self._rng)
            draw = self._rng.random()
        if draw < plan.drop:
            return Decision(delay, "drop")
        if draw < plan.drop + plan.disconnect:
            return Decision(delay, "disconnect")
        if draw < plan.drop + plan.disconnect + plan.garbage:
            return Decision(delay, "garbage")
        return Decision(delay, "reply")

    def random_bytes(self, size: int) -> bytes:
        """``size`` bytes from the fault generator (for garbage replies)."""
        with self._lock:
            return self._rng.randbytes(size)


ADMIN_HELP: Final = (
    "ok commands: faults set NAME=VALUE... | faults clear | faults | status | help"
    " (NAME: latency drop disconnect garbage down)"
)


def admin_command(line: str, faults: Faults, status: Callable[[], str]) -> str:
    """The one-line answer to one admin ``line``; ``status`` describes the running server.

    >>> faults = Faults()
    >>> admin_command("faults set drop=0.5 latency=fixed:5ms", faults, lambda: "")
    'ok latency=fixed:5ms drop=0.5 disconnect=0 garbage=0 down=off'
    >>> admin_command("faults set drop=2", faults, lambda: "")
    "error drop must be a probability between 0 and 1, not '2'"
    >>> admin_command("faults clear", faults, lambda: "")
    'ok latency=none drop=0 disconnect=0 garbage=0 down=off'
    """
    words = line.split()
    try:
        if words[:2] == ["faults", "set"] and len(words) > 2:
            faults.set(FaultPlan.parse(words[2:], faults.plan))
            return f"ok {faults.plan}"
        if words == ["faults", "clear"]:
            faults.set(FaultPlan())
            return f"ok {faults.plan}"
        if words == ["faults"]:
            return f"ok {faults.plan}"
        if words == ["status"]:
            return f"ok {status()} faults: {faults.plan}"
        if words == ["help"]:
            return ADMIN_HELP
    except ValueError as exc:
        return f"error {exc}"
    return f"error unknown command {line.strip()[:40]!r}; try help"
