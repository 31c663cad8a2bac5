"""The hub's journal writer: group commit off the event loop (on a thread, or in a writer
process of its own), retries, a bounded buffer."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from canonical_model.messages import (
    Acceptor,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    ProcessingCode,
)
from canonical_model.money import Money
from hub.journaling import JournalWriter
from journal import Event, EventKind, Journal, StaticMasterKeys, StoredEvent
from journal.migrate import upgrade
from tests.support import NOW, migrated_database, on_event_loop

TENANT = "bank-a"


def purchase(stan: int) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        TENANT,
        Identifiers(f"m-{stan}", end_to_end_id=f"{stan:012d}", instruction_id=f"{stan:06d}"),
        processing=ProcessingCode("00"),
        amount=Money.of(f"{stan}.25", "EUR"),
        acceptor=Acceptor(terminal_id="TERM0001"),
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(
        f"sqlite:///{tmp_path / 'journal.db'}", StaticMasterKeys({1: bytes(32)}), create=True
    )
    yield opened
    opened.close()


def emit_payment(writer: JournalWriter, stan: int) -> None:
    """What the hub emits for one card payment: received, routed, answered."""
    request = purchase(stan)
    writer.emit(EventKind.RECEIVED, request, {"amount": f"{stan}.25", "currency": "EUR"})
    writer.emit(EventKind.ROUTED, request, {"destination": "core", "rule": "cards"})
    writer.emit(
        EventKind.ANSWERED,
        request,
        {"status": "ACSC", "reason_code": None, "response_code": "00", "latency_ms": 4.5},
    )


def test_payments_are_group_committed_and_the_journal_verifies(journal: Journal) -> None:
    batches: list[int] = []
    record = journal.record

    def counted(events: Sequence[Event]) -> list[StoredEvent]:
        batches.append(len(events))
        return record(events)

    journal.record = counted  # type: ignore[method-assign]

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, batch=50, now=lambda: NOW)
        await writer.start()
        for stan in range(1, 41):
            emit_payment(writer, stan)
            if stan % 10 == 0:
                await asyncio.sleep(0.02)
        await writer.close()
        assert (writer.written, writer.lost) == (120, 0)

    run()
    assert sum(batches) == 120 and len(batches) < 40  # many events per commit
    events = list(journal.events())
    assert [e.kind for e in events[:3]] == [
        EventKind.RECEIVED,
        EventKind.ROUTED,
        EventKind.ANSWERED,
    ]
    assert "reason_code" not in events[2].body  # the writer leaves out what is None
    assert journal.verify().ok
    view = journal.status("m-7")
    assert view is not None
    assert (view.status, view.amount, view.destination, view.stan) == (
        "ACSC", "7.25", "core", "000007",
    )  # fmt: skip
    live = journal.transactions()
    assert journal.rebuild() == 40
    assert journal.transactions() == live


def test_a_failed_flush_keeps_its_events_for_the_next(journal: Journal) -> None:
    record = journal.record
    failures = [RuntimeError("database away")]

    def flaky(events: Sequence[Event]) -> list[StoredEvent]:
        if failures:
            raise failures.pop()
        return record(events)

    journal.record = flaky  # type: ignore[method-assign]

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: NOW)
        await writer.start()
        emit_payment(writer, 1)
        await asyncio.sleep(0.05)  # the first flush fails meanwhile
        emit_payment(writer, 2)
        await writer.close()
        assert writer.written == 6

    run()
    assert [e.ids.transaction_id for e in journal.events()] == ["m-1"] * 3 + ["m-2"] * 3
    assert journal.verify().ok


async def written_by(writer: JournalWriter, count: int, seconds: float = 10.0) -> None:
    """Wait until ``writer`` has written ``count`` events (fails after ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while writer.written < count:
        assert asyncio.get_running_loop().time() < deadline, f"{writer.written} written"
        await asyncio.sleep(0.01)


def test_a_batch_is_flushed_an_interval_after_its_first_event_even_after_a_quiet_spell(
    journal: Journal,
) -> None:
    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.02, now=lambda: NOW)
        await writer.start()
        emit_payment(writer, 1)
        await written_by(writer, 3)
        await asyncio.sleep(0.1)  # nothing to record: no flush, and nothing waits for one
        emit_payment(writer, 2)
        await written_by(writer, 6)  # before close(): the first event started the wait
        await writer.close()

    run()
    assert [e.ids.transaction_id for e in journal.events()] == ["m-1"] * 3 + ["m-2"] * 3


def test_a_full_batch_is_flushed_without_waiting_for_the_interval(journal: Journal) -> None:
    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=3600.0, batch=3, now=lambda: NOW)
        await writer.start()
        emit_payment(writer, 1)  # three events: a full batch
        await written_by(writer, 3)
        await writer.close()

    run()


def test_a_full_buffer_counts_what_it_loses(journal: Journal) -> None:
    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, limit=2, now=lambda: NOW)  # not started: nothing drains
        emit_payment(writer, 1)
        assert writer.lost == 1
        await writer.start()
        await writer.close()
        assert writer.written == 2

    run()
    assert [e.kind for e in journal.events()] == [EventKind.RECEIVED, EventKind.ROUTED]


def test_an_event_the_journal_refuses_is_left_out_and_the_rest_written(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    card_like = "4111111111111111"  # a Luhn-valid card number as an end-to-end id

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: NOW)
        await writer.start()
        emit_payment(writer, 1)
        refused = CanonicalMessage(
            MessageKind.FINANCIAL,
            MessageFunction.REQUEST,
            TENANT,
            Identifiers("m-bad", end_to_end_id=card_like),
        )
        writer.emit(EventKind.RECEIVED, refused, {"note": "refused"})
        emit_payment(writer, 2)
        await asyncio.wait_for(writer.close(), 10)  # before: retried forever, never closed
        assert (writer.written, writer.refused) == (6, 1)

    run()
    assert [e.ids.transaction_id for e in journal.events()] == ["m-1"] * 3 + ["m-2"] * 3
    assert journal.verify().ok
    assert "journal refused a received event of transaction m-bad" in caplog.text
    assert card_like not in caplog.text


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """A journal that another process can open from its URL alone, as a hub's is."""
    with migrated_database(request.param, tmp_path, "journal", Journal.create_engine, upgrade) as (
        url,
        options,
    ):
        search_path = options.get("connect_args", {}).get("options")
        if search_path is not None:  # the test's own PostgreSQL schema, named in the URL
            named = make_url(url).update_query_dict({"options": search_path})
            url = named.render_as_string(hide_password=False)
        opened = Journal.open(url, StaticMasterKeys({1: bytes(32)}))
        yield opened
        opened.close()


def writer_pid(writer: JournalWriter) -> int:
    pid = writer.process_id
    assert pid is not None
    return pid


def test_the_writer_process_appends_the_payments_and_the_journal_verifies(
    shared_journal: Journal,
) -> None:
    journal = shared_journal
    pids: list[int] = []

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, batch=50, now=lambda: NOW, process=True)
        await writer.start()
        pids.append(writer_pid(writer))
        for stan in range(1, 41):
            emit_payment(writer, stan)
            if stan % 10 == 0:
                await asyncio.sleep(0.02)
        await writer.close()
        assert (writer.written, writer.lost, writer.refused) == (120, 0, 0)

    run()
    assert pids[0] != os.getpid()
    with pytest.raises(ProcessLookupError):  # it exited once its input ended
        os.kill(pids[0], 0)
    events = list(journal.events())
    assert [(e.ids.transaction_id, e.kind) for e in events[:3]] == [
        ("m-1", EventKind.RECEIVED),
        ("m-1", EventKind.ROUTED),
        ("m-1", EventKind.ANSWERED),
    ]
    assert [e.seq for e in events] == list(range(1, 121))
    assert events[0].ids.terminal_id == "TERM0001" and events[0].at == NOW
    assert "reason_code" not in events[2].body
    assert journal.verify().ok
    view = journal.status("m-7")
    assert view is not None
    assert (view.status, view.amount, view.destination, view.stan) == (
        "ACSC", "7.25", "core", "000007",
    )  # fmt: skip
    live = journal.transactions()
    assert journal.rebuild() == 40
    assert journal.transactions() == live


def test_a_flush_committed_but_not_answered_is_not_appended_twice(journal: Journal) -> None:
    """The database committed the batch, but the connection went before it said so (a
    PostgreSQL restart): the writer hands the batch over again, and nothing is doubled."""
    record = journal.record
    lost_answers = [ConnectionError("server closed the connection unexpectedly")]

    def committed_then_cut_off(events: Sequence[Event]) -> list[StoredEvent]:
        stored = record(events)
        if lost_answers:
            raise lost_answers.pop()
        return stored

    journal.record = committed_then_cut_off  # type: ignore[method-assign]
    times = iter(NOW + dt.timedelta(microseconds=n) for n in range(1_000))

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: next(times))
        await writer.start()
        emit_payment(writer, 1)
        while lost_answers:  # the first flush commits and fails
            await asyncio.sleep(0.01)
        emit_payment(writer, 2)  # goes with the batch handed over again
        await writer.close()
        assert (writer.written, writer.lost) == (6, 0)

    run()
    assert [e.ids.transaction_id for e in journal.events()] == ["m-1"] * 3 + ["m-2"] * 3
    assert journal.verify().ok


def test_a_batch_handed_over_again_to_the_writer_process_is_appended_once(
    shared_journal: Journal,
) -> None:
    journal = shared_journal
    times = iter(NOW + dt.timedelta(microseconds=n) for n in range(1_000))

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: next(times), process=True)
        await writer.start()
        emit_payment(writer, 1)
        batch = list(writer._pending)
        emit_payment(writer, 2)
        while writer.written < 6:
            await asyncio.sleep(0.01)
        # as after a cut-off commit: the first payment's events again, then a new payment's
        emit_payment(writer, 3)
        writer._pending[:0] = batch
        writer._resent = len(batch)
        await writer.close()
        assert writer.written == 12  # the 3 found in the journal count as written

    run()
    assert [e.ids.transaction_id for e in journal.events()] == (
        ["m-1"] * 3 + ["m-2"] * 3 + ["m-3"] * 3
    )
    assert journal.verify().ok


def test_a_writer_process_that_dies_is_started_again_and_no_event_is_lost(
    shared_journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    journal = shared_journal
    pids: list[int] = []

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: NOW, process=True)
        await writer.start()
        emit_payment(writer, 1)
        while writer.written < 3:
            await asyncio.sleep(0.01)
        pids.append(writer_pid(writer))
        os.kill(pids[0], signal.SIGKILL)
        emit_payment(writer, 2)
        while writer.written < 6:  # the flush that finds it dead keeps its events
            await asyncio.sleep(0.01)
        pids.append(writer_pid(writer))
        emit_payment(writer, 3)
        await writer.close()
        assert (writer.written, writer.lost) == (9, 0)

    run()
    assert pids[0] != pids[1]
    assert "the journal writer process ended" in caplog.text
    assert [e.ids.transaction_id for e in journal.events()] == (
        ["m-1"] * 3 + ["m-2"] * 3 + ["m-3"] * 3
    )
    assert journal.verify().ok


def test_the_writer_process_leaves_out_what_the_journal_refuses_and_the_hub_logs_it(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    card_like = "4111111111111111"

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: NOW, process=True)
        await writer.start()
        assert writer.process
        emit_payment(writer, 1)
        refused = CanonicalMessage(
            MessageKind.FINANCIAL,
            MessageFunction.REQUEST,
            TENANT,
            Identifiers("m-bad", end_to_end_id=card_like),
        )
        writer.emit(EventKind.RECEIVED, refused, {"note": "refused"})
        emit_payment(writer, 2)
        await asyncio.wait_for(writer.close(), 30)
        assert (writer.written, writer.refused) == (6, 1)

    run()
    assert [e.ids.transaction_id for e in journal.events()] == ["m-1"] * 3 + ["m-2"] * 3
    assert journal.verify().ok
    assert "journal refused a received event of transaction m-bad" in caplog.text
    assert card_like not in caplog.text


def test_an_in_memory_journal_is_appended_on_a_thread() -> None:
    journal = Journal.open("sqlite://", StaticMasterKeys({1: bytes(32)}), create=True)

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: NOW, process=True)
        assert not writer.process  # another process could not see this database
        await writer.start()
        emit_payment(writer, 1)
        await writer.close()
        assert writer.written == 3

    try:
        run()
        assert [e.kind for e in journal.events()][-1] is EventKind.ANSWERED
    finally:
        journal.close()


def test_events_are_stamped_with_the_clock_to_the_microsecond(journal: Journal) -> None:
    zone = dt.timezone(dt.timedelta(hours=-3, minutes=-30))
    stamps = iter([NOW.astimezone(zone) + dt.timedelta(microseconds=999_999), NOW])

    @on_event_loop
    async def run() -> None:
        writer = JournalWriter(journal, interval=0.01, now=lambda: next(stamps), process=True)
        await writer.start()
        request = purchase(1)
        writer.emit(EventKind.RECEIVED, request, {"amount": "1.25"})
        writer.emit(EventKind.ANSWERED, request, {"status": "ACSC"})
        clocked = JournalWriter(journal, interval=0.01)  # the default clock
        await clocked.start()
        before = dt.datetime.now(dt.UTC)
        clocked.emit(EventKind.RECEIVED, purchase(2), {"amount": "2.25"})
        after = dt.datetime.now(dt.UTC)
        await clocked.close()
        await writer.close()
        events = {(e.ids.transaction_id, e.kind): e.at for e in journal.events()}
        assert events[("m-1", EventKind.RECEIVED)] == NOW + dt.timedelta(microseconds=999_999)
        assert events[("m-1", EventKind.RECEIVED)].tzinfo is dt.UTC
        assert events[("m-1", EventKind.ANSWERED)] == NOW
        assert before - dt.timedelta(microseconds=1) <= events[("m-2", EventKind.RECEIVED)]
        assert events[("m-2", EventKind.RECEIVED)] <= after

    run()
    assert journal.verify().ok
