"""The drainer applies a batch of events in one store transaction (issue 15): one commit, one
fsync, on the embedded queue file, instead of two or more for every event. (It runs in a
process of its own, so a batch's CPU never holds up the server's 202s: drainer_process.py.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import BATCH, Drainer
from notion_queue.intake.journal import EventState, Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.models import NewRow, QueueRow
from notion_queue.sequences import Catalog
from notion_queue.store.sqlite import SqliteStore
from notion_queue.wakeup import WakeListener, Waker, WakingStore
from tests.conftest import T0, new_row


def signup(journal: Journal, n: int) -> str:
    event_id, _ = journal.append(
        "christmas-signup", f"k{n}", {"email": f"lead{n}@example.com", "first_name": "A"}, T0
    )
    return event_id


def commits_on(store: SqliteStore) -> list[str]:
    """The COMMITs the store's connection runs from now on (each one an fsync of the WAL)."""
    seen: list[str] = []

    def note(statement: str) -> None:
        if statement.strip().upper().startswith(("COMMIT", "END")):
            seen.append(statement)

    store._db.set_trace_callback(note)
    return seen


def rows_committed(path: Path) -> int:
    """What another process (the worker) finds in the queue file now."""
    with sqlite3.connect(path) as other:
        return int(other.execute("SELECT COUNT(*) FROM email_queue").fetchone()[0])


class _FailsAfterWriting(SqliteStore):
    """A queue file whose row creation for one address writes the rows, then fails."""

    def __init__(self, path: Path, failing_email: str) -> None:
        super().__init__(path)
        self.failing_email = failing_email

    def add_rows(self, rows: Sequence[NewRow]) -> list[QueueRow]:
        added = super().add_rows(rows)
        if any(row.email == self.failing_email for row in rows):
            raise ValueError(f"rows for {self.failing_email} cannot be applied")
        return added


class _KilledBeforeMarkingDone(Journal):
    """A server killed after the store's commit, before the journal marked the batch done."""

    def __init__(self, path: Path, queue_file: Path) -> None:
        super().__init__(path)
        self.queue_file = queue_file
        self.rows_on_disk_when_killed = -1

    def mark_all_done(self, event_ids: list[str]) -> None:
        self.rows_on_disk_when_killed = rows_committed(self.queue_file)
        raise KeyboardInterrupt("killed")


def test_a_drained_batch_of_signups_is_one_commit_on_the_queue_file(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    for n in range(20):
        signup(journal, n)
    commits = commits_on(store)

    assert drainer.drain_once() == 20

    assert len(commits) == 1
    assert rows_committed(tmp_path / "queue.sqlite3") == 20 * 5
    assert journal.backlog() == 0


def test_a_backlog_longer_than_a_batch_is_applied_in_one_drain_a_commit_a_batch(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    """A drain used to take one batch and then wait for the next wake-up or tick: a backlog
    left by a burst or an outage drained at 50 events a second."""
    store = SqliteStore(tmp_path / "queue.sqlite3")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    for n in range(2 * BATCH + 20):
        signup(journal, n)
    commits = commits_on(store)

    assert drainer.drain_once() == 2 * BATCH + 20
    assert len(commits) == 3 and journal.backlog() == 0


def test_one_bad_event_in_a_batch_is_rejected_and_leaves_nothing_the_others_are_applied(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    store = _FailsAfterWriting(tmp_path / "queue.sqlite3", failing_email="lead2@example.com")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    ids = [signup(journal, n) for n in range(5)]

    with capture_logs() as logs:
        assert drainer.drain_once() == 4

    assert journal.status_of(ids[2]) is EventState.REJECTED
    assert [journal.status_of(i) for i in ids[:2] + ids[3:]] == [EventState.DONE] * 4
    # The bad event's contact and rows went with it; every other lead has its five rows.
    assert store.find_contact("lead2@example.com") is None
    assert store.rows_for_email("lead2@example.com") == []
    for n in (0, 1, 3, 4):
        assert len(store.rows_for_email(f"lead{n}@example.com")) == 5
    assert rows_committed(tmp_path / "queue.sqlite3") == 4 * 5
    (rejected,) = [e for e in logs if e["event"] == "event_rejected"]
    assert rejected["event_id"] == ids[2]


def test_a_server_killed_between_the_store_commit_and_the_journal_mark_reapplies_without_duplicates(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    queue_file = tmp_path / "queue.sqlite3"
    store = SqliteStore(queue_file)
    killed = _KilledBeforeMarkingDone(tmp_path / "intake.sqlite3", queue_file)
    for n in range(3):
        signup(killed, n)

    with pytest.raises(KeyboardInterrupt):
        Drainer(killed, IntakeProcessor(store, catalog, clock), clock).drain_once()
    assert killed.rows_on_disk_when_killed == 3 * 5  # the store had committed first
    assert killed.backlog() == 3
    killed.close()
    store.close()

    # After the restart the events are still pending and are applied again.
    store = SqliteStore(queue_file)
    journal = Journal(tmp_path / "intake.sqlite3")
    assert Drainer(journal, IntakeProcessor(store, catalog, clock), clock).drain_once() == 3

    assert journal.backlog() == 0
    for n in range(3):
        rows = store.rows_for_email(f"lead{n}@example.com")
        assert [r.email_number for r in rows] == [1, 2, 3, 4, 5]
    assert len(list(store.all_contacts())) == 3


def test_the_worker_finds_none_of_a_batchs_rows_before_it_commits_and_all_after(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    with store.intake_batch():
        with store.intake_event():
            store.add_rows([new_row(dedupe_key="d1"), new_row(dedupe_key="d2")])
        assert len(list(store.all_rows())) == 2  # the batch reads its own writes
        assert rows_committed(tmp_path / "queue.sqlite3") == 0
    assert rows_committed(tmp_path / "queue.sqlite3") == 2


def test_a_batch_that_raises_leaves_nothing_in_the_queue_file(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    with pytest.raises(KeyboardInterrupt), store.intake_batch():
        with store.intake_event():
            store.add_rows([new_row(dedupe_key="d1")])
        raise KeyboardInterrupt

    assert rows_committed(tmp_path / "queue.sqlite3") == 0
    store.add_row(new_row(dedupe_key="d2"))  # the store commits on its own again
    assert rows_committed(tmp_path / "queue.sqlite3") == 1


def test_a_row_due_now_wakes_the_worker_only_once_its_batch_is_committed(
    tmp_path: Path, clock: FakeClock
) -> None:
    listener = WakeListener(tmp_path)
    waking = WakingStore(SqliteStore(tmp_path / "queue.sqlite3"), Waker(tmp_path, clock, 60))
    try:
        with waking.intake_batch():
            with waking.intake_event():
                waking.add_rows([new_row(scheduled_time=T0)])
            assert not listener.wait(0)  # woken now, the worker would find nothing
        assert listener.wait(0)
    finally:
        listener.close()


def test_a_queue_file_that_fills_up_mid_batch_leaves_no_event_half_applied_and_recovers(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    ids = [signup(journal, n) for n in range(40)]
    with store._lock:  # the disk holds a few more pages, not the 40 events' rows
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages + 3}")

    applied = drainer.drain_once()

    # SQLite rolls back the statement or (as here) the whole transaction: either way an event
    # is done with all its rows, or pending with none, and /readyz says why.
    assert applied < 40
    assert drainer.store_problem == "queue file cannot be written"
    assert "full" in drainer.last_error
    for n, event_id in enumerate(ids):
        rows = len(store.rows_for_email(f"lead{n}@example.com"))
        has_contact = store.find_contact(f"lead{n}@example.com") is not None
        if journal.status_of(event_id) is EventState.DONE:
            assert rows == 5 and has_contact
        else:
            assert journal.status_of(event_id) is EventState.PENDING
            assert rows == 0 and not has_contact
    assert rows_committed(tmp_path / "queue.sqlite3") == applied * 5

    with store._lock:  # space again: every event is applied, none twice
        store._db.execute("PRAGMA max_page_count = 1073741823")
    clock.advance(600)
    while drainer.drain_once():
        pass
    assert journal.backlog() == 0 and drainer.store_problem == ""
    assert rows_committed(tmp_path / "queue.sqlite3") == 40 * 5
