"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest

from hub.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, **settings: float) -> CircuitBreaker:
    return CircuitBreaker(
        "core",
        failure_threshold=int(settings.get("failure_threshold", 3)),
        reset_after=settings.get("reset_after", 10.0),
        half_open_probes=int(settings.get("half_open_probes", 1)),
        clock=clock,
    )


def _state(breaker: CircuitBreaker) -> str:
    """The state's name (a call, so that the type checker does not narrow across steps)."""
    return breaker.state.name


def test_failures_must_be_consecutive_to_open() -> None:
    breaker = _breaker(Clock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert _state(breaker) == "CLOSED"
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_failure()
    assert _state(breaker) == "OPEN"


def test_open_refuses_until_reset_then_a_failed_probe_reopens() -> None:
    clock = Clock()
    breaker = _breaker(clock, failure_threshold=1, reset_after=5.0)
    breaker.record_failure()
    assert [breaker.allow() for _ in range(3)] == [False, False, False]
    clock.now = 4.9
    assert not breaker.allow()
    clock.now = 5.0
    assert breaker.allow()  # the probe
    breaker.record_failure()
    assert _state(breaker) == "OPEN"
    clock.now = 9.9
    assert not breaker.allow()  # a new full reset period from the failed probe
    clock.now = 10.0
    assert breaker.allow()
    breaker.record_success()
    assert _state(breaker) == "CLOSED"
    snapshot = breaker.snapshot()
    assert (snapshot.times_opened, snapshot.refused, snapshot.consecutive_failures) == (2, 5, 0)


def test_half_open_lets_the_configured_number_of_probes_through() -> None:
    clock = Clock()
    breaker = _breaker(clock, failure_threshold=1, reset_after=1.0, half_open_probes=2)
    breaker.record_failure()
    clock.now = 1.0
    assert [breaker.allow() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    "settings",
    [{"failure_threshold": 0}, {"half_open_probes": 0}, {"reset_after": 0.0}],
)
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        _breaker(Clock(), **settings)


def test_listeners_hear_every_change_of_state() -> None:
    now = [0.0]
    breaker = CircuitBreaker("core", failure_threshold=2, reset_after=5.0, clock=lambda: now[0])
    heard: list[tuple[str, BreakerState]] = []
    breaker.add_listener(lambda b, state: heard.append((b.name, state)))
    breaker.record_failure()  # one failure: still closed, nothing to tell
    breaker.record_failure()
    now[0] = 5.0
    assert breaker.allow()
    breaker.record_failure()  # the probe failed: open again
    now[0] = 10.0
    assert breaker.allow()
    breaker.record_success()
    assert [state for _, state in heard] == [
        BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN,
        BreakerState.HALF_OPEN, BreakerState.CLOSED,
    ]  # fmt: skip
    assert {name for name, _ in heard} == {"core"}
