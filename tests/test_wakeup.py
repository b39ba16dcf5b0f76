"""The server wakes the worker on its host for a row due before the next poll (issue 15)."""

from __future__ import annotations

import threading
from pathlib import Path

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.mail.base import OutgoingEmail, SendResult
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import Status
from notion_queue.sequences import Catalog
from notion_queue.store.sqlite import SqliteStore
from notion_queue.wakeup import WakeListener, Waker, WakingStore
from tests.conftest import T0, WorkerFactory, new_row

POLL = 60.0
# Only a guard against a hung test: without the wake-up the worker would wait POLL real seconds.
GUARD_SECONDS = 20.0


class _NotingMailer:
    def __init__(self, inner: OutboxMailer) -> None:
        self.inner = inner
        self.sent = threading.Event()

    def send(self, email: OutgoingEmail) -> SendResult:
        result = self.inner.send(email)
        self.sent.set()
        return result

    def close(self) -> None:
        pass


def test_a_row_due_now_is_sent_well_before_the_next_poll(
    tmp_path: Path, clock: FakeClock, catalog: Catalog, make_worker: WorkerFactory
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = SqliteStore(tmp_path / "queue.sqlite3")
    journal = Journal(state / "intake.sqlite3")
    waking = WakingStore(store, Waker(state, clock, POLL))
    drainer = Drainer(journal, IntakeProcessor(waking, catalog, clock), clock)
    mailer = _NotingMailer(OutboxMailer(tmp_path / "outbox", clock))
    worker = make_worker(store, mailer, poll_interval=POLL)
    worker.wake = WakeListener(state)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        # The worker polled an empty queue and waits for its next poll, 60 s away.
        journal.append(
            "christmas-signup", "k1", {"email": "sarah@example.com", "first_name": "Sarah"}, T0
        )
        assert drainer.drain_once() == 1

        assert mailer.sent.wait(GUARD_SECONDS), "the worker was not woken"
    finally:
        worker.stop()
        thread.join(GUARD_SECONDS)
        worker.wake.close()
    assert not thread.is_alive()
    (row,) = [r for r in store.all_rows() if r.status is Status.SENT]
    assert row.template_id == "lead_nurture_email_1"
    assert row.sent_at == T0  # the fake clock never moved: sent at once, not at T0 + 60 s
    journal.close()
    store.close()


def test_a_row_due_after_the_next_poll_wakes_nobody(tmp_path: Path, clock: FakeClock) -> None:
    listener = WakeListener(tmp_path)
    waker = Waker(tmp_path, clock, POLL)
    store = SqliteStore(tmp_path / "queue.sqlite3")
    waking = WakingStore(store, waker)

    waking.add_row(new_row(scheduled_time=clock.now().replace(hour=12)))  # in two hours
    assert not listener.wait(0)
    waking.add_row(new_row(email="ann@example.com", status=Status.PAUSED))
    assert not listener.wait(0)
    waking.add_row(new_row(email="bob@example.com"))  # due now
    assert listener.wait(0)
    assert not listener.wait(0)  # one wake-up, taken
    listener.close()
    store.close()


def test_with_no_worker_on_this_host_the_server_carries_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    waker = Waker(tmp_path, clock, POLL)
    assert waker.wake() is False  # no FIFO at all
    listener = WakeListener(tmp_path)
    listener.close()  # a worker that stopped: the FIFO stays, nobody reads it
    assert waker.wake() is False


def test_a_stop_signal_after_the_worker_closed_its_fifo_writes_nothing_anywhere(
    tmp_path: Path,
) -> None:
    """Ctrl-C under `make run`: the worker gets SIGINT from the terminal and then SIGTERM from
    run_local.py; the second handler's poke came after close(), raised EBADF (a traceback and
    exit 1), and once the number was reused it would have written into that file."""
    listener = WakeListener(tmp_path)
    listener.close()
    reused = tmp_path / "queue.sqlite3"
    with reused.open("wb") as other:  # takes the lowest free numbers: the FIFO's
        listener.poke()
        other.flush()
    assert reused.read_bytes() == b""
