"""Sagas declared as data: steps, what each outcome leads to, compensations, timeouts, attempts.

A saga (Garcia-Molina and Salem, "Sagas", SIGMOD 1987) is a long-lived transaction split into
local steps, each with a compensating step that semantically undoes it; there is no
distributed commit, so a failure part way is repaired by running the compensations of the
steps already done, newest first. Here a saga is a small state machine written as data
(:class:`SagaDefinition`) that :class:`hub.sagas.runner.SagaRunner` interprets:

- an **action step** (``action`` names a function the runner is given) does one thing
  outside the hub (a hold on the mainframe, a pacs.008 on the clearing queue) and returns an
  outcome (``"ok"``, ``"refused"``...); ``on`` maps the outcome to what comes next. It is
  tried up to ``max_attempts`` times when it fails (an exception: no answer, a broker
  down), ``retry_after`` seconds apart, doubling (up to ``max_retry_after``, if given);
  then the saga stops in ``attention`` (an operator looks at it: ``isobridge sagas show``,
  ``retry``).
- a **wait step** (no ``action``) waits for a signal from outside (a pacs.002 ``ACSC``...)
  for ``timeout`` seconds; then its signal is ``"timeout"``. A signal its ``on`` does not
  name is noted and ignored (a late answer).
- what comes next: :class:`Goto` another step, :class:`Finish` the saga with an outcome, or
  :class:`Compensate`: run the ``compensation`` of every action step done so far, newest
  first, then finish with the outcome.

Every step runs with the saga id and its own name (:attr:`StepContext.key` in
:mod:`hub.sagas.runner`), which the other side uses to deduplicate: running a step twice
(after a crash between doing it and recording it) has the effect of running it once.

>>> saga = SagaDefinition(
...     "demo",
...     first="reserve",
...     steps=(
...         Step("reserve", action="reserve", on={"ok": Goto("wait"), "refused": Finish("no")},
...              compensation="unreserve"),
...         Step("wait", on={"yes": Finish("done"), "no": Compensate("undone"),
...                          "timeout": Compensate("undone")}, timeout=30.0),
...         Step("unreserve", action="unreserve"),
...     ),
... )
>>> saga.step("wait").is_wait, saga.step("reserve").compensation
(True, 'unreserve')
>>> SagaDefinition("bad", first="a", steps=(Step("a", action="x", on={"ok": Goto("b")}),))
Traceback (most recent call last):
...
ValueError: saga bad: step a: outcome ok goes to b, which is no step
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "MAX_NAME",
    "TIMEOUT",
    "Compensate",
    "Finish",
    "Goto",
    "SagaDefinition",
    "Step",
    "Target",
]

TIMEOUT: Final = "timeout"
"""The signal a wait step gets when its ``timeout`` has passed."""

MAX_NAME: Final = 32
"""Step names, outcomes and signals are at most this long (the saga table's columns)."""


@dataclass(frozen=True, slots=True)
class Goto:
    """Go on with the step ``step``."""

    step: str


@dataclass(frozen=True, slots=True)
class Finish:
    """End the saga with ``outcome``; ``status`` (ISO 20022) is what the journal's read model
    then says about the transaction (``None``: it keeps the status it has)."""

    outcome: str
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Compensate:
    """Undo what was done (the compensations of the action steps done, newest first), then
    end the saga as :class:`Finish` would."""

    outcome: str
    status: str | None = None


Target = Goto | Finish | Compensate


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a saga (see the module docstring).

    ``status``, when given, is the transaction's status once the saga is in this step (a
    payment is ``ACSP`` once its pacs.008 is out), recorded in the step's journal event.
    """

    name: str
    action: str | None = None
    on: Mapping[str, Target] = field(default_factory=dict)
    timeout: float | None = None
    max_attempts: int = 5
    retry_after: float = 1.0
    max_retry_after: float | None = None
    compensation: str | None = None
    status: str | None = None

    @property
    def is_wait(self) -> bool:
        """A wait step: it waits for a signal instead of doing something."""
        return self.action is None


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """A saga: its name, its first step and its steps (checked when built)."""

    name: str
    first: str
    steps: Sequence[Step]
    _by_name: Mapping[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {step.name: step for step in self.steps}
        object.__setattr__(self, "_by_name", by_name)
        where = f"saga {self.name}"
        if not self.name or len(self.name) > 64:
            raise ValueError(f"{where}: the name must be 1 to 64 characters")
        if len(by_name) != len(self.steps):
            raise ValueError(f"{where}: two steps have the same name")
        if self.first not in by_name:
            raise ValueError(f"{where}: the first step {self.first} is no step")
        for step in self.steps:
            self._check(step, by_name, f"{where}: step {step.name}")

    @staticmethod
    def _check(step: Step, by_name: Mapping[str, Step], where: str) -> None:
        if not 0 < len(step.name) <= MAX_NAME:
            raise ValueError(f"{where}: a step name must be 1 to {MAX_NAME} characters")
        if step.max_attempts < 1 or step.retry_after < 0:
            raise ValueError(f"{where}: max_attempts must be at least 1, retry_after >= 0")
        if step.max_retry_after is not None and step.max_retry_after < step.retry_after:
            raise ValueError(f"{where}: max_retry_after must be at least retry_after")
        if step.is_wait and (step.timeout is None or step.timeout <= 0):
            raise ValueError(f"{where}: a wait step needs a positive timeout")
        for outcome, target in step.on.items():
            if not 0 < len(outcome) <= MAX_NAME:
                raise ValueError(f"{where}: outcome {outcome!r} must be 1 to {MAX_NAME} chars")
            if isinstance(target, Goto) and target.step not in by_name:
                raise ValueError(
                    f"{where}: outcome {outcome} goes to {target.step}, which is no step"
                )
            if isinstance(target, Finish | Compensate) and not 0 < len(target.outcome) <= MAX_NAME:
                raise ValueError(f"{where}: outcome {outcome}: a saga outcome is 1 to 32 chars")
        if step.compensation is not None:
            compensation = by_name.get(step.compensation)
            if compensation is None or compensation.is_wait:
                raise ValueError(f"{where}: its compensation {step.compensation} is no action step")

    def step(self, name: str) -> Step:
        """The step ``name`` (``KeyError`` if there is none)."""
        return self._by_name[name]

    def has_step(self, name: str) -> bool:
        """Whether the saga has a step ``name``."""
        return name in self._by_name
