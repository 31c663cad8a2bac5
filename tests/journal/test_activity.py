"""Live activity from the journal: events and answers per second, received-to-answer
latency, read incrementally from a real SQLite journal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from journal import Event, EventKind, Journal, StaticMasterKeys
from journal.activity import WINDOW_SECONDS, JournalActivity
from tests.journal.factories import ids

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _at(kind: EventKind, number: int, seconds_ago: float) -> Event:
    return Event(kind, "acme", ids(number), NOW - dt.timedelta(seconds=seconds_ago))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(
        f"sqlite:///{tmp_path / 'j.db'}", StaticMasterKeys({1: bytes(range(32))}), create=True
    )
    yield opened
    opened.close()


def test_only_new_events_are_read_and_old_ones_leave_the_window(journal: Journal) -> None:
    journal.record(  # five minutes ago: outside the window
        [_at(EventKind.RECEIVED, 1, 300), _at(EventKind.ANSWERED, 1, 299.99)]
    )
    journal.record([_at(EventKind.RECEIVED, 2, 30)])
    activity = JournalActivity(journal)
    first = activity.sample(NOW.timestamp())
    assert len(first["Series"]["EventsPerSecond"]) == WINDOW_SECONDS
    assert sum(first["Series"]["EventsPerSecond"]) == 1 and first["Answered"] == 0
    assert first["LatencyMs"] is None

    journal.record([_at(EventKind.ROUTED, 2, 29.5), _at(EventKind.ANSWERED, 2, 1)])
    second = activity.sample(NOW.timestamp())
    assert sum(second["Series"]["EventsPerSecond"]) == 3 and second["Answered"] == 1
    assert second["LatencyMs"] == {"P50": 29000.0, "P95": 29000.0, "Max": 29000.0}
    assert second["Series"]["LatencyMs"][-1] == 29000.0  # in the second it was answered
    assert second["EventsPerSecond"] == 0.1 and second["AnsweredPerSecond"] == 0.1

    later = activity.sample(NOW.timestamp() + 45)  # received and routed have left it
    assert sum(later["Series"]["EventsPerSecond"]) == 1 and later["Answered"] == 1


def test_the_answer_is_the_reply_the_payment_sent_or_the_time_out(journal: Journal) -> None:
    journal.record(
        [
            _at(EventKind.RECEIVED, 1, 5), _at(EventKind.ANSWERED, 1, 4.99),
            _at(EventKind.RECEIVED, 2, 5), _at(EventKind.SENT, 2, 4.9),
            _at(EventKind.STATUS_CHANGED, 2, 3),  # the clearing's later status: no answer
            _at(EventKind.RECEIVED, 3, 5), _at(EventKind.TIMED_OUT, 3, 3),
        ]
    )  # fmt: skip
    figures = JournalActivity(journal).sample(NOW.timestamp())
    assert figures["Answered"] == 3
    assert figures["LatencyMs"] == {"P50": 100.0, "P95": 2000.0, "Max": 2000.0}


def test_an_answer_whose_request_was_not_seen_has_no_latency(journal: Journal) -> None:
    journal.record([_at(EventKind.RECEIVED, 1, 50)])
    activity = JournalActivity(journal)
    activity.sample(NOW.timestamp())
    journal.record([_at(EventKind.ANSWERED, 9, 2)])
    figures = activity.sample(NOW.timestamp())
    assert figures["Answered"] == 1 and figures["LatencyMs"] is None
