"""Fault plans, their draws, and the admin commands."""

from __future__ import annotations

import random
import statistics

import pytest

from mainframe_sim.faults import FaultPlan, Faults, Latency, admin_command, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("20ms", 0.02), ("1.5s", 1.5), ("250us", 0.00025), ("7", 0.007)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ms", "-5ms", "5 min", "fast"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["none", "fixed:20ms", "uniform:5ms-50ms", "exp:20ms", "fixed:2s"])
def test_latency_round_trips_through_its_text(text: str) -> None:
    assert str(Latency.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gauss:5ms", "unknown latency"),
        ("uniform:5ms", "LOW-HIGH"),
        ("uniform:50ms-5ms", "HIGH is below LOW"),
    ],
)
def test_bad_latency(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Latency.parse(text)


def test_latency_samples_follow_their_distribution() -> None:
    rng = random.Random(1)
    assert Latency.parse("fixed:20ms").sample(rng) == pytest.approx(0.02)
    uniform = [Latency.parse("uniform:10ms-30ms").sample(rng) for _ in range(2000)]
    assert min(uniform) >= 0.01
    assert max(uniform) <= 0.03
    exponential = [Latency.parse("exp:20ms").sample(rng) for _ in range(5000)]
    assert statistics.mean(exponential) == pytest.approx(0.02, rel=0.1)
    assert Latency().sample(rng) == 0


def test_plan_parsing_applies_on_top_of_a_base() -> None:
    plan = FaultPlan.parse("drop=0.25 down=on")
    assert (plan.drop, plan.down) == (0.25, True)
    later = FaultPlan.parse(["down=off", "garbage=0.5"], plan)
    assert (later.drop, later.garbage, later.down) == (0.25, 0.5, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drop", "expected NAME=VALUE"),
        ("slow=1", "unknown fault 'slow'"),
        ("drop=x", "drop must be a probability"),
        ("garbage=1.5", "garbage must be a probability"),
        ("down=maybe", "down is on or off"),
        ("drop=0.6 garbage=0.6", "more than 1"),
    ],
)
def test_bad_plans_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultPlan.parse(text)


def test_decisions_split_by_probability() -> None:
    faults = Faults(FaultPlan.parse("drop=0.2 disconnect=0.1 garbage=0.3"), seed=3)
    actions = [faults.decide().action for _ in range(10_000)]
    shares = {action: actions.count(action) / len(actions) for action in set(actions)}
    assert shares["drop"] == pytest.approx(0.2, abs=0.02)
    assert shares["disconnect"] == pytest.approx(0.1, abs=0.02)
    assert shares["garbage"] == pytest.approx(0.3, abs=0.02)
    assert shares["reply"] == pytest.approx(0.4, abs=0.02)
    assert Faults().decide().action == "reply"


def test_admin_commands_change_the_plan_and_notify() -> None:
    faults = Faults()
    seen: list[FaultPlan] = []
    faults.on_change.append(seen.append)
    answer = admin_command("faults set latency=exp:20ms drop=0.05", faults, lambda: "")
    assert answer == "ok latency=exp:20ms drop=0.05 disconnect=0 garbage=0 down=off"
    assert seen == [faults.plan]
    assert admin_command("faults", faults, lambda: "") == answer
    assert admin_command("status", faults, lambda: "requests=3").startswith("ok requests=3 ")
    assert admin_command("help", faults, lambda: "").startswith("ok commands:")
    assert admin_command("faults set", faults, lambda: "").startswith("error unknown command")
    assert admin_command("reboot", faults, lambda: "") == "error unknown command 'reboot'; try help"
    assert admin_command("faults clear", faults, lambda: "").endswith("down=off")
    assert faults.plan == FaultPlan()
