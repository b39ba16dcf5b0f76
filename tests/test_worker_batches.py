"""The worker with Resend's batch API (SQLite + Resend): up to 100 rows a request, each email
with its own unsubscribe headers and tags; a batch started is sent again exactly as it was after
a crash, so nothing is sent twice; a batch Resend refuses as a whole goes one row at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notion_queue.batch_journal import KEY_WINDOW, FileBatchJournal
from notion_queue.clock import FakeClock
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.batch import Batch
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.models import QueueRow, RowUpdate, Status
from notion_queue.settings import Settings
from notion_queue.store.sqlite import SqliteStore
from notion_queue.testing.fake_resend import FakeResend
from notion_queue.transitions import change_status
from notion_queue.wiring import build_batch_journal, build_worker
from notion_queue.worker import Worker
from tests.conftest import T0, WorkerFactory, new_row


class Killed(BaseException):
    """The worker process dying (SIGKILL): nothing after this point runs."""


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    yield store
    store.close()


def batch_worker(
    make_worker: WorkerFactory, store: Any, mailer: ResendMailer, journal_dir: Path
) -> Worker:
    worker = make_worker(store, mailer, batch_size=100)
    worker.batches = FileBatchJournal(journal_dir)
    return worker


def add_rows(store: SqliteStore, count: int) -> list[str]:
    return [
        store.add_row(
            new_row(email=f"reader{n:03d}@example.com", scheduled_time=T0 - timedelta(seconds=n))
        ).id
        for n in range(count)
    ]


def test_due_rows_go_out_100_a_request_each_with_its_own_headers_and_tags(
    sqlite: SqliteStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    ids = add_rows(sqlite, 250)

    summary = batch_worker(make_worker, sqlite, mailer, tmp_path / "batches").run_once()

    assert summary["sent"] == 250
    assert fake_resend.count() == 3 and fake_resend.count(200) == 3
    assert len(fake_resend.sent) == 250
    by_address = {email.to[0]: email for email in fake_resend.sent}
    for row_id in ids:
        row = sqlite.get_row(row_id)
        sent = by_address[row.email]
        assert row.status is Status.SENT and row.resend_email_id == sent.id
        assert sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert sent.tags == {"sequence": "lead_nurture", "template": "lead_nurture_email_1"}
    assert list((tmp_path / "batches").glob("*.json")) == []


def test_a_worker_killed_between_sending_and_marking_a_batch_sends_nothing_twice(
    sqlite: SqliteStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = add_rows(sqlite, 30)
    real_update = sqlite.update_row_recorded  # a mark and its analytics row, in one commit
    marked = 0

    def killed_after_five_marks(row: QueueRow, update: RowUpdate, outcome: Any) -> Any:
        nonlocal marked
        if update.status is Status.SENT:
            marked += 1
            if marked > 5:
                raise Killed
        return real_update(row, update, outcome)

    monkeypatch.setattr(sqlite, "update_row_recorded", killed_after_five_marks)
    with pytest.raises(Killed):
        batch_worker(make_worker, sqlite, mailer, tmp_path / "batches").run_once()
    monkeypatch.undo()
    first_ids = {email.to[0]: email.id for email in fake_resend.sent}
    assert len(first_ids) == 30

    # Meanwhile a marketer pauses a row of the batch and new rows fall due: a regrouped batch
    # would carry another key, and Resend would send its emails again.
    unmarked = next(r for r in map(sqlite.get_row, ids) if r.status is Status.QUEUED)
    assert change_status(sqlite, unmarked, Status.PAUSED) is not None
    add_more = sqlite.add_row(new_row(email="late@example.com", scheduled_time=T0))
    clock.advance(seconds=60)

    summary = batch_worker(make_worker, sqlite, mailer, tmp_path / "batches").run_once()

    addresses = [email.to[0] for email in fake_resend.sent]
    assert len(addresses) == len(set(addresses)) == 31  # the late row; no one twice
    for row_id in ids:
        row = sqlite.get_row(row_id)
        if row.id != unmarked.id:
            assert row.status is Status.SENT
            assert row.resend_email_id == first_ids[row.email]  # Resend's answer to the replay
    assert sqlite.get_row(add_more.id).status is Status.SENT
    assert summary["sent"] == 24 + 1  # the 24 left unmarked (one paused meanwhile), the late one
    replays = [r for r in fake_resend.requests if r.replayed]
    assert len(replays) == 1


def test_a_batch_refused_as_a_whole_is_sent_one_row_at_a_time(
    sqlite: SqliteStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    ids = add_rows(sqlite, 3)
    fake_resend.fail_next(status=422, name="validation_error", message="emails[1]: bad")

    summary = batch_worker(make_worker, sqlite, mailer, tmp_path / "batches").run_once()

    assert summary["sent"] == 3
    assert all(sqlite.get_row(row_id).status is Status.SENT for row_id in ids)
    assert [r.path for r in fake_resend.requests] == ["/emails/batch"] + ["/emails"] * 3
    assert list((tmp_path / "batches").glob("*.json")) == []


def test_a_batch_that_failed_for_now_is_retried_as_the_same_batch(
    sqlite: SqliteStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    add_rows(sqlite, 4)
    fake_resend.fail_next(status=503, name="application_error")
    worker = batch_worker(make_worker, sqlite, mailer, tmp_path / "batches")
    assert worker.run_once()["retry"] == 4
    sqlite.add_row(new_row(email="newcomer@example.com", scheduled_time=T0))
    clock.advance(seconds=60)

    worker.run_once()

    keys = [r.idempotency_key for r in fake_resend.requests]
    assert keys[0] == keys[1] and keys[2] != keys[0]  # the same batch first, then the newcomer
    assert len(fake_resend.sent) == 5


def test_batches_are_used_with_resend_on_sqlite_but_not_on_notion_or_the_outbox(
    tmp_path: Path, clock: FakeClock, sqlite: SqliteStore
) -> None:
    def journal(**settings: Any) -> object:
        return build_batch_journal(Settings(state_dir=tmp_path, **settings), sqlite, clock, "w")

    resend_settings = {"mail_backend": "resend", "resend_api_key": "re_test_key"}
    assert isinstance(journal(**resend_settings), FileBatchJournal)
    assert journal() is None  # the outbox: no rate limit to save
    notion = {
        "queue_backend": "notion",
        "notion_token": "secret_x",
        "notion_email_queue_db_id": "a",
        "notion_templates_db_id": "b",
        "notion_contacts_db_id": "c",
        "notion_workers_db_id": "d",
    }
    assert journal(**resend_settings, **notion) is None
    # PostgreSQL keeps its pending batches in the database: tests/test_postgres_batches.py.


def test_a_batch_pending_past_resends_key_window_fails_its_rows_instead_of_going_again(
    sqlite: SqliteStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    ids = add_rows(sqlite, 2)
    emails = [
        (row_id, OutgoingEmail("a@businessx.com", f"x{n}@example.com", "Hi", "<p>Hi</p>", "", "k"))
        for n, row_id in enumerate(ids)
    ]
    FileBatchJournal(tmp_path / "batches", clock).record(Batch.of(emails))
    clock.advance(seconds=(KEY_WINDOW + timedelta(minutes=1)).total_seconds())

    summary = batch_worker(make_worker, sqlite, mailer, tmp_path / "batches").run_once()

    assert summary["failed"] == 2 and fake_resend.requests == []
    assert all(sqlite.get_row(i).status is Status.FAILED for i in ids)
    assert "might send it twice" in sqlite.get_row(ids[0]).error_message
    assert list((tmp_path / "batches").glob("*.json")) == []


def test_resend_batch_size_sets_the_emails_per_batch_request(
    sqlite: SqliteStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    add_rows(sqlite, 12)
    settings = Settings(
        state_dir=tmp_path,
        mail_backend="resend",
        resend_api_key="re_test_key",
        resend_batch_size=5,
        public_base_url="https://funnel.businessx.com",
        unsubscribe_secret="unsubscribe-secret-for-tests",
    )

    build_worker(settings, clock, sqlite, mailer).run_once()

    assert [r.path for r in fake_resend.requests] == ["/emails/batch"] * 3  # 5 + 5 + 2
    assert len(fake_resend.sent) == 12
