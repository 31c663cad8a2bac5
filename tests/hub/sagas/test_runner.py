"""The saga runner on SQLite and PostgreSQL: steps, signals, timeouts, compensation,
attempts, leases shared by two runners, and a runner abandoned mid-step."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from hub.sagas.definition import Compensate, Finish, Goto, SagaDefinition, Step
from hub.sagas.runner import Action, SagaRunner, StepContext, StepFailedError, StepResult
from hub.sagas.store import Phase, SagaRecord, SagaStore, SignalState
from journal import Event
from tests.hub.sagas.conftest import Clock, StoreFactory
from tests.support import on_event_loop

RESERVATION = SagaDefinition(
    "reservation",
    first="reserve",
    steps=(
        Step(
            "reserve",
            action="reserve",
            on={"ok": Goto("confirm"), "refused": Finish("refused", "RJCT")},
            compensation="unreserve",
            max_attempts=3,
            retry_after=2.0,
            status="RCVD",
        ),
        Step(
            "confirm",
            on={
                "yes": Goto("book"),
                "no": Compensate("cancelled", "RJCT"),
                "timeout": Compensate("timed out", "RJCT"),
            },
            timeout=60.0,
            status="ACSP",
        ),
        Step("book", action="book", on={"ok": Finish("booked", "ACSC")}),
        Step("unreserve", action="unreserve"),
    ),
)


class Seats:
    """The other side: applies each (saga, step) key once, however often it is asked."""

    def __init__(self) -> None:
        self.applied: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, int] = {}
        self.refuse = False
        self.block: asyncio.Event | None = None

    def actions(self) -> Mapping[str, Action]:
        def action(name: str) -> Action:
            async def run(context: StepContext) -> StepResult:
                self.calls[context.key] += 1
                if self.block is not None and name == "reserve":
                    await self.block.wait()
                if self.failures.get(name, 0) > 0:
                    self.failures[name] -= 1
                    raise StepFailedError(f"{name}: no answer")
                if name == "reserve" and self.refuse:
                    return StepResult("refused", {"reason_code": "AM04"})
                self.applied.setdefault(context.key, context.reference())
                personal = await context.personal()
                return StepResult(
                    "ok", {f"{name}_ref": context.reference(), "seat": personal["seat"]}
                )

            return run

        return {name: action(name) for name in ("reserve", "book", "unreserve")}


class DeadProcessStore(SagaStore):
    """The store of a process that died: it never gets to give its leases back."""

    def release(self, record: SagaRecord) -> None:
        return None


def runner(store: SagaStore, seats: Seats, owner: str, lease: float = 30.0) -> SagaRunner:
    return SagaRunner(store, [RESERVATION], seats.actions(), owner=owner, lease=lease)


async def start(run: SagaRunner, saga_id: str) -> bool:
    return await run.start_saga(
        "reservation", saga_id, "acme", {"amount": "10.00"}, personal={"seat": "12A"},
        end_to_end_id=f"E2E-{saga_id}", status="RCVD", summary={"amount": "10.00"},
    )  # fmt: skip


async def settle(run: SagaRunner) -> None:
    while await run.run_once():
        pass


def kinds(store: SagaStore, saga_id: str) -> list[str]:
    return [event.kind.value for event in store.history(saga_id)]


def test_a_saga_runs_waits_for_its_signal_and_finishes(make_store: StoreFactory) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        assert await start(run, "s-1")
        assert not await start(run, "s-1")  # a repeat changes nothing
        await settle(run)
        record = store.get("s-1")
        assert record is not None
        assert (record.step, record.phase, record.lease_owner) == ("confirm", Phase.WAITING, None)
        assert record.values["reserve_ref"] == seats.applied["s-1/reserve"]
        assert store.journal.status("s-1") is not None
        assert store.journal.status("s-1").status == "ACSP"  # type: ignore[union-attr]

        assert await run.signal("s-1", "yes", "answer-1", {"answer_id": "a-1"})
        assert not await run.signal("s-1", "yes", "answer-1", {"answer_id": "a-1"})
        await settle(run)
        record = store.get("s-1")
        assert record is not None and (record.phase, record.outcome) == (Phase.DONE, "booked")
        assert record.values["answer_id"] == "a-1" and record.values["seat"] == "12A"
        assert kinds(store, "s-1") == [
            "saga_started", "saga_step", "saga_signal", "saga_finished",
        ]  # fmt: skip
        view = store.journal.status("s-1")
        assert view is not None and view.status == "ACSC"
        assert [s.state.value for s in store.signals("s-1")] == ["consumed"]

    scenario()


def test_a_signal_that_comes_before_the_wait_is_kept_for_it(make_store: StoreFactory) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        await start(run, "s-2")
        assert await run.signal("s-2", "no", "early-1")  # still in "reserve"
        await settle(run)
        record = store.get("s-2")
        assert record is not None and (record.phase, record.outcome) == (Phase.DONE, "cancelled")
        assert "s-2/unreserve" in seats.applied  # the compensation ran
        view = store.journal.status("s-2")
        assert view is not None and view.status == "RJCT"

    scenario()


def test_a_timeout_compensates_and_a_late_answer_is_ignored(
    make_store: StoreFactory, clock: Clock
) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        await start(run, "s-3")
        await settle(run)
        clock.advance(59)
        await settle(run)
        assert store.get("s-3").phase is Phase.WAITING  # type: ignore[union-attr]
        clock.advance(2)
        await settle(run)
        record = store.get("s-3")
        assert record is not None and (record.phase, record.outcome) == (Phase.DONE, "timed out")
        assert seats.calls["s-3/unreserve"] == 1 and "s-3/book" not in seats.calls
        assert await run.signal("s-3", "yes", "late-1")
        await settle(run)
        assert store.get("s-3").outcome == "timed out"  # type: ignore[union-attr]
        assert [s.state.value for s in store.signals("s-3")] == ["pending"]

    scenario()


def test_a_step_that_keeps_failing_needs_attention_until_retried(
    make_store: StoreFactory, clock: Clock
) -> None:
    store, seats = make_store(), Seats()
    seats.failures["reserve"] = 4

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        await start(run, "s-4")
        await settle(run)
        record = store.get("s-4")
        assert record is not None and (record.attempts, record.phase) == (1, Phase.ACTIVE)
        assert record.last_error == "reserve: no answer"
        clock.advance(1.9)  # retry_after 2 s: not yet
        assert await run.run_once() == 0
        clock.advance(0.2)
        await settle(run)
        clock.advance(4.1)  # then 4 s
        await settle(run)
        record = store.get("s-4")
        assert record is not None and (record.phase, record.attempts) == (Phase.ATTENTION, 3)
        assert "failed 3 times" in (record.last_error or "")
        clock.advance(3600)
        assert await run.run_once() == 0  # never an endless loop
        assert seats.calls["s-4/reserve"] == 3

        retried = store.retry("s-4", by="cli:ops")
        assert (retried.phase, retried.attempts) == (Phase.ACTIVE, 0)
        await settle(run)  # the 4th failure, then attention again after 3 more
        assert store.get("s-4").attempts == 1  # type: ignore[union-attr]
        clock.advance(2.1)
        await settle(run)
        record = store.get("s-4")
        assert record is not None and (record.step, record.phase) == ("confirm", Phase.WAITING)
        assert kinds(store, "s-4").count("saga_attention") == 1
        assert "saga_retried" in kinds(store, "s-4")

    scenario()


def test_two_runners_on_one_database_run_each_step_once(make_store: StoreFactory) -> None:
    seats = Seats()

    @on_event_loop
    async def scenario() -> None:
        first = runner(make_store(), seats, "hub-1")
        second = runner(make_store(), seats, "hub-2")
        for number in range(12):
            await start(first, f"s-{number}")
        while sum(await asyncio.gather(first.run_once(), second.run_once())):
            pass
        assert all(seats.calls[f"s-{n}/reserve"] == 1 for n in range(12))
        assert first.transitions + second.transitions == 12
        for number in range(12):
            await second.signal(f"s-{number}", "yes", f"answer-{number}")
        while sum(await asyncio.gather(first.run_once(), second.run_once())):
            pass
        store = make_store()
        assert {r.outcome for r in store.sagas()} == {"booked"}
        assert all(seats.calls[f"s-{n}/book"] == 1 for n in range(12))

    scenario()


@pytest.mark.parametrize("abandoned_in", ["reserve", "after-reserve"])
def test_a_runner_abandoned_mid_step_is_taken_over_after_its_lease(
    make_store: StoreFactory, clock: Clock, abandoned_in: str
) -> None:
    seats = Seats()

    @on_event_loop
    async def scenario() -> None:
        live = make_store()
        crashed = runner(DeadProcessStore(live.journal, now=clock), seats, "hub-crashed", 10.0)
        await start(crashed, "s-9")
        task: asyncio.Task[int] | None = None
        if abandoned_in == "reserve":
            seats.block = asyncio.Event()  # the step never returns: the process hangs in it
            task = asyncio.create_task(crashed.run_once())
            while not seats.calls["s-9/reserve"]:
                await asyncio.sleep(0.01)
            seats.block = None
        else:  # it did the step and died before recording it
            store = make_store()
            claimed = store.claim("s-9", store.due()[0][1], "hub-crashed", 10.0)
            assert claimed is not None
            seats.applied["s-9/reserve"] = "done before the crash"
            seats.calls["s-9/reserve"] += 1
        fresh = runner(make_store(), seats, "hub-fresh", lease=10.0)
        assert await fresh.run_once() == 0  # the lease still holds
        clock.advance(11)
        await settle(fresh)
        record = fresh.store.get("s-9")
        assert record is not None and (record.step, record.phase) == ("confirm", Phase.WAITING)
        assert seats.calls["s-9/reserve"] == 2  # run again, applied once
        assert len([k for k in seats.applied if k == "s-9/reserve"]) == 1
        if task is not None:  # the hung process wakes up: its lease is gone, it changes nothing
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert fresh.store.get("s-9").step == "confirm"  # type: ignore[union-attr]

    scenario()


class Commits:
    """Counts the commits of a store's database (SQLAlchemy's ``commit`` event)."""

    def __init__(self, store: SagaStore) -> None:
        self.count = 0
        event.listen(store.engine, "commit", self.seen)

    def seen(self, _connection: object) -> None:
        self.count += 1


async def until(done: Callable[[], bool]) -> None:
    """Let the runner's task work until ``done()`` (bounded by on_event_loop, never timed)."""
    while not done():
        await asyncio.sleep(0.01)


def test_a_running_runner_goes_on_with_what_it_starts_and_signals_with_fewer_commits(
    make_store: StoreFactory,
) -> None:
    """While its loop runs, the runner leases a saga to itself in the transaction that
    starts it, and stores, matches and consumes an answer in one transaction: a saga with
    one action before and one after its wait commits 4 times (it was 7: start, claim, save,
    signal, claim, consume, save), and every transition is still an event."""
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = SagaRunner(store, [RESERVATION], seats.actions(), owner="hub-1", idle=3600)
        commits = Commits(store)
        stop = asyncio.Event()
        loop = asyncio.create_task(run.run(stop))
        await until(lambda: commits.count == 1)  # its first pass claimed what was due
        assert await start(run, "s-20")
        await until(lambda: store.get("s-20").phase is Phase.WAITING)  # type: ignore[union-attr]
        record = store.get("s-20")
        assert record is not None and record.lease_owner is None and record.step == "confirm"
        assert commits.count - 1 == 2  # started (and leased), reserved (and let go)

        found, new = await run.signal_found(
            "yes", lambda saga_id: f"answer:{saga_id}", {"answer_id": "a-20"}, uetr="nobody",
            end_to_end_id="E2E-s-20",
        )  # fmt: skip
        assert found is not None and found.saga_id == "s-20" and new
        await until(lambda: store.get("s-20").phase is Phase.DONE)  # type: ignore[union-attr]
        stop.set()
        await loop
        assert commits.count - 1 == 4  # + the answer stored and consumed, booked
        assert kinds(store, "s-20") == [
            "saga_started", "saga_step", "saga_signal", "saga_finished",
        ]  # fmt: skip
        record = store.get("s-20")
        assert record is not None and record.outcome == "booked"
        assert record.values["answer_id"] == "a-20" and record.lease_owner is None
        assert [s.state.value for s in store.signals("s-20")] == ["consumed"]
        assert seats.calls["s-20/reserve"] == seats.calls["s-20/book"] == 1
        again = await run.signal_found("yes", lambda saga_id: f"answer:{saga_id}", uetr="x",
                                       end_to_end_id="E2E-s-20")  # fmt: skip
        assert again[1] is False  # the same answer again: nothing
        assert await run.signal_found("yes", str, saga_id="nobody") == (None, False)

    scenario()


def test_an_answer_that_comes_during_the_step_before_the_wait_is_consumed_after_it(
    make_store: StoreFactory,
) -> None:
    """The runner holds the lease while the step runs: the answer stays pending, and the
    save of the step keeps the lease so that the runner consumes it at once."""
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = SagaRunner(store, [RESERVATION], seats.actions(), owner="hub-1", idle=3600)
        stop = asyncio.Event()
        loop = asyncio.create_task(run.run(stop))
        seats.block = asyncio.Event()
        blocked = seats.block
        await start(run, "s-21")
        await until(lambda: seats.calls["s-21/reserve"] == 1)
        assert await run.signal("s-21", "yes", "early-21")
        record = store.get("s-21")
        assert record is not None and record.lease_owner == "hub-1" and record.step == "reserve"
        seats.block = None
        blocked.set()
        await until(lambda: store.get("s-21").phase is Phase.DONE)  # type: ignore[union-attr]
        stop.set()
        await loop
        assert store.get("s-21").outcome == "booked"  # type: ignore[union-attr]
        assert kinds(store, "s-21") == [
            "saga_started", "saga_step", "saga_signal", "saga_finished",
        ]  # fmt: skip

    scenario()


def test_a_write_the_journal_refuses_fails_alone_in_its_group_commit(
    make_store: StoreFactory,
) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        commits = Commits(store)
        good, refused = await asyncio.gather(
            start(run, "s-22"),
            run.start_saga("reservation", "s-23", "acme", {}, summary={"pan": "4111111111111111"}),
            return_exceptions=True,
        )
        assert good is True and isinstance(refused, ValueError)
        assert commits.count == 1  # the batch of both failed; alone, the good one committed
        assert store.get("s-22") is not None and store.get("s-23") is None
        assert kinds(store, "s-22") == ["saga_started"]

    scenario()


def test_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a positive timeout"):
        SagaDefinition("w", first="w", steps=(Step("w", on={"x": Finish("x")}),))
    with pytest.raises(ValueError, match="is no action step"):
        SagaDefinition("c", first="a", steps=(Step("a", action="a", compensation="zz"),))
    with pytest.raises(ValueError, match="needs the action book"):
        SagaRunner(None, [RESERVATION], {"reserve": Seats().actions()["reserve"]})  # type: ignore[arg-type]


CARD_LIKE = "4111111111111111"  # Luhn-valid: the journal refuses it in any event


def test_a_transition_the_journal_refuses_needs_attention_at_once(
    make_store: StoreFactory, clock: Clock
) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        await start(run, "s-10")
        await settle(run)
        # the answer's reason code comes from outside and would go into the RJCT event
        assert await run.signal("s-10", "no", "answer-10", {"reason_code": CARD_LIKE})
        await settle(run)
        record = store.get("s-10")
        assert record is not None
        assert (record.step, record.phase, record.lease_owner) == (
            "confirm",
            Phase.ATTENTION,
            None,
        )
        assert "the journal refused its saga_signal event" in (record.last_error or "")
        assert "card number" in (record.last_error or "")
        assert CARD_LIKE not in (record.last_error or "")
        assert kinds(store, "s-10") == ["saga_started", "saga_step", "saga_attention"]
        attention = store.history("s-10")[-1]
        assert attention.body["step"] == "confirm" and attention.ids.end_to_end_id == "E2E-s-10"
        assert "s-10/unreserve" not in seats.calls  # nothing past the refused transition
        clock.advance(3600)
        assert await run.run_once() == 0  # stopped: not tried on every pass
        assert [s.state.value for s in store.signals("s-10")] == ["pending"]
        view = store.journal.status("s-10")
        assert view is not None and view.status == "ACSP"  # the refused RJCT never happened

    scenario()


def test_an_action_outcome_the_journal_refuses_needs_attention(make_store: StoreFactory) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = SagaRunner(
            store,
            [RESERVATION],
            {
                **seats.actions(),
                "reserve": _refusing_with(CARD_LIKE),
            },
            owner="hub-1",
        )
        await start(run, "s-11")
        await settle(run)
        record = store.get("s-11")
        assert record is not None and (record.step, record.phase) == ("reserve", Phase.ATTENTION)
        assert kinds(store, "s-11") == ["saga_started", "saga_attention"]
        assert store.retry("s-11", by="cli:ops").phase is Phase.ACTIVE
        await settle(run)  # the same answer: attention again, once, and no loop
        assert store.get("s-11").phase is Phase.ATTENTION  # type: ignore[union-attr]
        assert kinds(store, "s-11").count("saga_attention") == 2

    scenario()


def _refusing_with(reason_code: str) -> Action:
    async def reserve(context: StepContext) -> StepResult:
        return StepResult("refused", {"reason_code": reason_code})

    return reserve


class FailingSaveStore(SagaStore):
    """A store whose database fails every transition of one saga but its ``attention``."""

    def save_in(
        self,
        connection: Connection,
        before: SagaRecord,
        after: SagaRecord,
        events: Sequence[Event],
        *,
        lease: float,
        signals: Mapping[str, SignalState] | None = None,
        journal_later: list[Event] | None = None,
    ) -> SagaRecord | None:
        if before.saga_id == "s-12" and after.phase is not Phase.ATTENTION:
            raise RuntimeError("deadlock detected")
        return super().save_in(
            connection,
            before,
            after,
            events,
            lease=lease,
            signals=signals,
            journal_later=journal_later,
        )


def test_a_transition_that_cannot_be_saved_needs_attention_after_bounded_passes(
    make_store: StoreFactory, clock: Clock
) -> None:
    live = make_store()
    store, seats = FailingSaveStore(live.journal, now=clock), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = SagaRunner(store, [RESERVATION], seats.actions(), owner="hub-1", max_save_failures=3)
        await start(run, "s-12")
        await start(run, "s-13")
        passes = 0
        while store.get("s-12").phase is not Phase.ATTENTION:  # type: ignore[union-attr]
            with contextlib.suppress(RuntimeError):
                await run.run_once()
            passes += 1
            assert passes <= 3
        record = store.get("s-12")
        assert record is not None and "not saved 3 times: RuntimeError" in (record.last_error or "")
        assert seats.calls["s-12/reserve"] == 3  # the step ran again each pass (idempotent)
        assert store.get("s-13").phase is Phase.WAITING  # type: ignore[union-attr]

    scenario()


def test_a_runner_leaves_sagas_it_has_no_definition_for_to_the_others(
    make_store: StoreFactory,
) -> None:
    seats = Seats()
    other = SagaDefinition(
        "other", first="a", steps=(Step("a", action="a", on={"ok": Finish("done")}),)
    )

    async def never(context: StepContext) -> StepResult:
        raise AssertionError("a saga of another definition was run")

    @on_event_loop
    async def scenario() -> None:
        knowing = runner(make_store(), seats, "hub-1")
        stranger = SagaRunner(make_store(), [other], {"a": never}, owner="hub-2")
        await start(knowing, "s-20")
        assert await stranger.run_once() == 0
        record = knowing.store.get("s-20")
        assert record is not None and (record.lease_owner, record.version) == (None, 1)
        await settle(knowing)
        assert knowing.store.get("s-20").step == "confirm"  # type: ignore[union-attr]

    scenario()


def test_an_end_to_end_id_that_looks_like_a_card_number_is_not_kept(
    make_store: StoreFactory,
) -> None:
    store, seats = make_store(), Seats()

    @on_event_loop
    async def scenario() -> None:
        run = runner(store, seats, "hub-1")
        assert await run.start_saga(
            "reservation", "s-21", "acme", {}, personal={"seat": "1A"}, end_to_end_id=CARD_LIKE
        )
        await settle(run)
        record = store.get("s-21")
        assert record is not None and record.end_to_end_id is None
        assert (record.step, record.phase) == ("confirm", Phase.WAITING)  # it runs
        assert all(event.ids.end_to_end_id is None for event in store.history("s-21"))

    scenario()
