"""Resend batches on the PostgreSQL queue (real PostgreSQL, fake Resend at 2 requests/s): a
started batch lives in the database, its rows go no other way until it is done, and a batch
whose worker died is taken over by exactly one other worker and sent again as it was."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from notion_queue.batch_journal import KEY_WINDOW
from notion_queue.clock import FakeClock
from notion_queue.errors import RateLimited
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.batch import Batch
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.models import RowUpdate, Status
from notion_queue.settings import Settings
from notion_queue.store.postgres import PostgresStore
from notion_queue.store.postgres_batches import BatchNotStarted, PostgresBatchJournal
from notion_queue.testing.fake_resend import FakeResend
from notion_queue.transitions import change_status
from notion_queue.wiring import build_batch_journal
from notion_queue.worker import Worker
from tests.conftest import T0, WorkerFactory, new_row

TTL = 60.0


class Killed(BaseException):
    """The worker process dying (SIGKILL): nothing after this point runs."""


def add_due_rows(store: PostgresStore, count: int) -> list[str]:
    return [
        store.add_row(
            new_row(email=f"reader{n:03d}@example.com", scheduled_time=T0 - timedelta(seconds=n))
        ).id
        for n in range(count)
    ]


def email_to(address: str) -> OutgoingEmail:
    return OutgoingEmail(
        sender="BusinessX <hello@businessx.com>",
        to=address,
        subject="Hello",
        html="<p>Hello</p>",
        text="Hello",
        idempotency_key=f"key/{address}",
        headers={"List-Unsubscribe": "<https://x.example/u>", "A-Header": "first"},
    )


def claim_and_record(
    store: PostgresStore, clock: FakeClock, worker: str, count: int
) -> tuple[PostgresBatchJournal, Batch]:
    claimed = store.claim_due(worker, clock.now(), count, TTL)
    journal = PostgresBatchJournal(store, clock, worker, TTL)
    batch = Batch.of((row.id, email_to(row.email)) for row in claimed)
    journal.record(batch)
    return journal, batch


# the store


def test_a_recorded_batchs_rows_are_claimed_by_no_other_worker_even_when_their_claims_lapse(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    ids = add_due_rows(postgres_store, 5)
    _, batch = claim_and_record(postgres_store, clock, "worker A", 3)

    clock.advance(seconds=TTL * 10)  # the rows' own claims lapsed long ago

    claimed = postgres_store.claim_due("worker B", clock.now(), 10, TTL)
    assert {row.id for row in claimed} == set(ids) - set(batch.row_ids)
    assert len(batch.row_ids) == 3


def test_a_batch_is_not_started_with_a_row_that_is_no_longer_the_workers(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    add_due_rows(postgres_store, 3)
    claimed = postgres_store.claim_due("worker A", clock.now(), 3, TTL)
    paused = change_status(postgres_store, claimed[1], Status.PAUSED)  # a marketer, meanwhile
    assert paused is not None
    journal = PostgresBatchJournal(postgres_store, clock, "worker A", TTL)

    with pytest.raises(BatchNotStarted):
        journal.record(Batch.of((row.id, email_to(row.email)) for row in claimed))

    assert journal.pending() == []
    assert postgres_store._query("SELECT id FROM email_queue WHERE batch_key IS NOT NULL") == []


def test_a_held_batch_is_not_taken_over_while_its_worker_renews_its_hold(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    add_due_rows(postgres_store, 3)
    journal, batch = claim_and_record(postgres_store, clock, "worker A", 3)
    other = PostgresBatchJournal(postgres_store, clock, "worker B", TTL)

    for _ in range(3):
        clock.advance(seconds=TTL - 1)
        assert journal.hold(batch)  # before each send attempt
        assert other.pending() == []

    clock.advance(seconds=TTL)  # worker A died
    assert [p.batch for p in other.pending()] == [batch]
    assert not journal.hold(batch)  # A, had it only stalled, now leaves the batch to B


def test_a_lapsed_batch_is_taken_over_by_exactly_one_of_two_workers(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    add_due_rows(postgres_store, 4)
    _, batch = claim_and_record(postgres_store, clock, "killed worker", 4)
    clock.advance(seconds=TTL)
    survivors = [PostgresBatchJournal(postgres_store, clock, f"worker {n}", TTL) for n in range(2)]
    taken: dict[str, list[Batch]] = {}
    start = threading.Barrier(2)

    def take_over(journal: PostgresBatchJournal) -> None:
        start.wait()
        taken[journal.holder] = [p.batch for p in journal.pending()]

    threads = [threading.Thread(target=take_over, args=(j,)) for j in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(found) for found in taken.values()) == [0, 1]
    winner = next(holder for holder, found in taken.items() if found)
    assert taken[winner] == [batch]  # exactly that batch: its rows, its emails, its key
    loser = next(j for j in survivors if j.holder != winner)
    assert loser.pending() == []


def test_done_deletes_the_batch_and_releases_its_rows_at_once(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    add_due_rows(postgres_store, 3)
    journal, batch = claim_and_record(postgres_store, clock, "worker A", 3)
    sent, paused, left = (postgres_store.get_row(row_id) for row_id in batch.row_ids)
    change_status(postgres_store, sent, Status.SENT, sent_at=clock.now())
    assert change_status(postgres_store, paused, Status.PAUSED) is not None
    resumed = change_status(postgres_store, postgres_store.get_row(paused.id), Status.QUEUED)
    assert resumed is not None

    journal.done(batch)

    assert journal.pending() == []
    again = postgres_store.claim_due("worker B", clock.now(), 10, TTL)
    assert {row.id for row in again} == {paused.id}  # left is still claimed by worker A
    clock.advance(seconds=TTL)  # A's claim on the last one lapses (A died after done)
    back = postgres_store.claim_due("worker B", clock.now(), 10, TTL)
    assert {row.id for row in back} == {paused.id, left.id}


def test_the_next_wake_up_is_when_a_dead_workers_batch_may_be_taken_over(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    add_due_rows(postgres_store, 2)
    claim_and_record(postgres_store, clock, "killed worker", 2)

    assert postgres_store.next_due_time(clock.now()) == clock.now() + timedelta(seconds=TTL)


# workers


def batch_worker(
    make_worker: WorkerFactory, store: PostgresStore, mailer: ResendMailer, clock: FakeClock
) -> Worker:
    worker = make_worker(store, mailer, batch_size=100, claim_ttl=TTL)
    worker.batches = PostgresBatchJournal(store, clock, worker.worker_id, TTL)
    return worker


def kill_after_marks(store: PostgresStore, monkeypatch: pytest.MonkeyPatch, marks: int) -> None:
    real_update = store.update_row
    marked = 0

    def killed_after_some_marks(row_id: str, update: RowUpdate) -> Any:
        nonlocal marked
        if update.status is Status.SENT:
            marked += 1
            if marked > marks:
                raise Killed
        return real_update(row_id, update)

    monkeypatch.setattr(store, "update_row", killed_after_some_marks)


def test_a_worker_killed_after_resend_took_its_batch_is_taken_over_and_nothing_goes_twice(
    postgres_store: PostgresStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = add_due_rows(postgres_store, 150)
    dying = batch_worker(make_worker, postgres_store, mailer, clock)
    survivor = batch_worker(make_worker, postgres_store, mailer, clock)
    kill_after_marks(postgres_store, monkeypatch, 5)
    with pytest.raises(Killed):
        dying.run_once()
    monkeypatch.undo()
    first_ids = {email.to[0]: email.id for email in fake_resend.sent}
    assert len(first_ids) == 100

    survivor.run_once()  # the other 50; the dead worker's batch is held still
    assert len(fake_resend.sent) == 150
    assert sum(postgres_store.get_row(i).status is Status.SENT for i in ids) == 55
    clock.advance(seconds=TTL)

    summary = survivor.run_once()

    assert summary["sent"] == 95
    addresses = [email.to[0] for email in fake_resend.sent]
    assert len(addresses) == len(set(addresses)) == 150  # nobody twice, nobody lost
    replays = [r for r in fake_resend.requests if r.replayed]
    assert len(replays) == 1 and replays[0].path == "/emails/batch"
    for row_id in ids:
        row = postgres_store.get_row(row_id)
        assert row.status is Status.SENT
        if row.email in first_ids:
            assert row.resend_email_id == first_ids[row.email]  # Resend's answer to the replay
    assert survivor.batches is not None and survivor.batches.pending() == []


def test_a_batch_that_failed_for_now_is_sent_again_by_its_own_worker_as_it_was(
    postgres_store: PostgresStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    add_due_rows(postgres_store, 4)
    fake_resend.fail_next(status=503, name="application_error")
    worker = batch_worker(make_worker, postgres_store, mailer, clock)
    assert worker.run_once()["retry"] == 4
    postgres_store.add_row(new_row(email="newcomer@example.com", scheduled_time=T0))
    clock.advance(seconds=5)  # well within its hold

    worker.run_once()

    keys = [r.idempotency_key for r in fake_resend.requests]
    assert keys[0] == keys[1] and keys[2] != keys[0]  # the same batch first, then the newcomer
    assert len(fake_resend.sent) == 5


def test_a_batch_older_than_resends_key_window_fails_its_rows_instead_of_going_again(
    postgres_store: PostgresStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    ids = add_due_rows(postgres_store, 3)
    claim_and_record(postgres_store, clock, "worker down for a day", 3)
    clock.advance(seconds=(KEY_WINDOW + timedelta(minutes=1)).total_seconds())

    summary = batch_worker(make_worker, postgres_store, mailer, clock).run_once()

    assert summary["failed"] == 3 and fake_resend.requests == []
    for row_id in ids:
        row = postgres_store.get_row(row_id)
        assert row.status is Status.FAILED
        assert "Resend forgets a batch's key after 24 h" in row.error_message
        assert "set Status to queued" in row.error_message
    assert postgres_store._query("SELECT * FROM pending_batches") == []


def test_a_worker_whose_batch_was_taken_over_while_it_waited_out_a_429_leaves_it_alone(
    postgres_store: PostgresStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = add_due_rows(postgres_store, 3)
    stalled = batch_worker(make_worker, postgres_store, mailer, clock)
    other = batch_worker(make_worker, postgres_store, mailer, clock)
    attempts = 0

    def stalled_then_told_to_wait(emails: Any, key: str) -> Any:
        nonlocal attempts
        attempts += 1
        clock.advance(seconds=TTL)  # stalled past its hold: the other worker takes over
        assert other.batches is not None and len(other.batches.pending()) == 1
        raise RateLimited("429", retry_after=1.0)

    monkeypatch.setattr(mailer, "send_batch", stalled_then_told_to_wait)
    assert stalled.run_once().handled == 0
    monkeypatch.undo()

    assert attempts == 1  # no second attempt: the batch is no longer its own
    assert all(postgres_store.get_row(i).status is Status.QUEUED for i in ids)
    assert other.run_once()["sent"] == 3
    assert len(fake_resend.sent) == 3


def test_postgres_with_resend_keeps_its_pending_batches_in_the_database(
    postgres_store: PostgresStore, clock: FakeClock
) -> None:
    settings = Settings(
        mail_backend="resend",
        resend_api_key="re_test_key",
        queue_backend="postgres",
        database_url="postgresql://nq@/nq?host=/tmp",
    )

    journal = build_batch_journal(settings, postgres_store, clock, "this worker")

    assert isinstance(journal, PostgresBatchJournal) and journal.holder == "this worker"
    assert journal.hold_seconds == settings.claim_ttl_seconds
