"""Issue 15: what one email costs the embedded default in commits and fsyncs (counted, not
timed: the figures come from `make bench`). Each email is durable in the outbox before its row is
marked sent. A batch's messages are fsynced each, then the folder once, then the batch's rows are
marked, each with its analytics row, in one commit; sends elsewhere share the folder's fsync, and
marks arriving during a commit share the next."""

from __future__ import annotations

import os
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from notion_queue.clock import FakeClock
from notion_queue.mail import outbox as outbox_module
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.models import QueueRow, Status
from notion_queue.store.base import OutcomeRecord, RowNotFound
from notion_queue.store.sqlite import SqliteStore
from notion_queue.transitions import change_status_recorded
from tests.conftest import T0, WorkerFactory, new_row

ROWS = 12
BATCH = 5
BATCHES = 3  # 5 + 5 + 2


@pytest.fixture(params=[1, 4])
def concurrency(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def _fill(store: SqliteStore) -> None:
    for i in range(ROWS):
        store.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(seconds=i))
        )


def test_a_batch_of_sent_emails_is_marked_in_one_queue_commit_with_its_analytics_rows(
    tmp_path: Path, clock: FakeClock, make_worker: WorkerFactory
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    _fill(store)
    outbox = OutboxMailer(tmp_path / "outbox", clock)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)

    summary = make_worker(store, outbox, batch_size=BATCH).run_once()

    assert summary["sent"] == ROWS
    assert _commits(statements) == BATCHES  # was two an email: the mark, then the analytics row
    analytics = store._query("SELECT outcome, resend_email_id FROM email_analytics")
    assert len(analytics) == ROWS and all(r["outcome"] == "sent" for r in analytics)
    assert all(row.status is Status.SENT for row in store.all_rows())
    store.close()


def test_a_failed_row_costs_one_queue_commit_too(
    tmp_path: Path, clock: FakeClock, make_worker: WorkerFactory
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    store.add_row(new_row(template_id="no_such_template"))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)

    summary = make_worker(store, OutboxMailer(tmp_path / "outbox", clock)).run_once()

    assert summary["failed"] == 1
    assert _commits(statements) == 1
    (analytics,) = store._query("SELECT outcome, error_message FROM email_analytics")
    assert analytics["outcome"] == "failed" and "no_such_template" in analytics["error_message"]
    store.close()


def test_a_mark_whose_analytics_row_cannot_be_written_is_not_written_either(
    tmp_path: Path,
) -> None:
    """Both or neither: the row stays queued (sent again later under the same key, which the
    outbox answers with the first message) rather than sent with no outcome recorded."""
    store = SqliteStore(tmp_path / "queue.sqlite3")
    row = store.add_row(new_row())
    store._write("DROP TABLE email_analytics")

    with pytest.raises(Exception, match="email_analytics"):
        change_status_recorded(store, row, Status.SENT, OutcomeRecord("sent", T0), sent_at=T0)

    assert store.get_row(row.id).status is Status.QUEUED
    store.close()


def test_a_batch_fsyncs_each_message_and_the_folder_once_before_any_row_is_marked(
    tmp_path: Path,
    clock: FakeClock,
    make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    _fill(store)
    outbox = OutboxMailer(tmp_path / "outbox", clock)
    events: list[str] = []  # what reached the disk, in order
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append("folder fsync" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file fsync")

    def link(src: str, dst: str) -> None:
        real_link(src, dst)
        events.append("link")

    monkeypatch.setattr(outbox_module.os, "fsync", fsync)
    monkeypatch.setattr(outbox_module.os, "link", link)
    store._db.set_trace_callback(
        lambda sql: events.append("commit") if sql.strip().upper() == "COMMIT" else None
    )

    worker = make_worker(store, outbox, batch_size=BATCH, concurrency=concurrency)
    assert worker.run_once()["sent"] == ROWS

    assert len(sent_messages(outbox.folder)) == ROWS
    assert events.count("file fsync") == ROWS
    assert events.count("folder fsync") == BATCHES  # was one an email
    assert events.count("commit") == BATCHES
    for i, event in enumerate(events):  # every name is durable before a row is marked
        if event == "commit":
            last_link = max(j for j in range(i) if events[j] == "link")
            assert "folder fsync" in events[last_link:i]
    store.close()


def test_sends_under_way_at_once_share_one_folder_fsync(tmp_path: Path) -> None:
    """A send whose file was linked before a folder fsync started relies on that fsync; one
    linked while it runs waits for the next, which covers every such send at once."""
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_fsync() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            started.set()
            assert release.wait(10)

    sync = outbox_module.GroupSync(slow_fsync)
    first = threading.Thread(target=sync.sync)
    first.start()
    assert started.wait(10)  # the first send's fsync is under way
    late = [threading.Thread(target=sync.sync) for _ in range(3)]
    for thread in late:
        thread.start()
    for _ in range(10_000):  # until all three wait behind it (a guard, not a timing)
        if sync.waiting == 3:
            break
        threading.Event().wait(0.001)
    assert sync.waiting == 3
    release.set()
    for thread in [first, *late]:
        thread.join(10)

    assert len(calls) == 2  # one for the first, one shared by the three that came during it


def test_marks_that_arrive_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    rows = [store.add_row(new_row(email=f"lead{i}@example.com")) for i in range(4)]
    gone = rows.pop()
    store._write("DELETE FROM email_queue WHERE id = ?", (gone.id,))  # deleted by a marketer
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    errors: list[Exception] = []

    def mark(row: QueueRow) -> None:
        try:
            change_status_recorded(store, row, Status.SENT, OutcomeRecord("sent", T0), sent_at=T0)
        except RowNotFound as exc:
            errors.append(exc)

    with store._lock:  # a commit (its fsync) is under way: the marks meanwhile queue up
        threads = [threading.Thread(target=mark, args=(row,)) for row in [*rows, gone]]
        for thread in threads:
            thread.start()
        for _ in range(10_000):  # until every one is queued behind the commit (a guard)
            if len(store._marks) == len(threads):
                break
            threading.Event().wait(0.001)
    for thread in threads:
        thread.join(10)

    assert _commits(statements) == 1
    assert len(errors) == 1  # the deleted row fails alone; the others are marked
    assert all(store.get_row(row.id).status is Status.SENT for row in rows)
    assert len(store._query("SELECT * FROM email_analytics")) == len(rows)
    store.close()


class _Killed(BaseException):
    """The worker process dying here (SIGKILL): nothing after it runs."""


def test_a_worker_killed_before_its_batch_is_marked_sends_nothing_twice(
    tmp_path: Path, clock: FakeClock, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    _fill(store)
    outbox = OutboxMailer(tmp_path / "outbox", clock)

    def killed(changes: object) -> None:
        raise _Killed

    monkeypatch.setattr(store, "update_rows_recorded", killed)
    with pytest.raises(_Killed):
        make_worker(store, outbox, batch_size=BATCH).run_once()
    monkeypatch.undo()
    first = {path.name: path.read_bytes() for path in sent_messages(outbox.folder)}
    assert len(first) == BATCH  # the first batch went out, and no row of it was marked
    assert all(row.status is Status.QUEUED for row in store.all_rows())

    restarted = OutboxMailer(tmp_path / "outbox", clock)
    summary = make_worker(store, restarted, batch_size=BATCH).run_once()

    assert summary["sent"] == ROWS
    again = {path.name: path.read_bytes() for path in sent_messages(outbox.folder)}
    assert len(again) == ROWS  # one message a row: the first batch's were answered, not rewritten
    assert all(again[name] == data for name, data in first.items())
    assert all(row.status is Status.SENT for row in store.all_rows())
    store.close()
