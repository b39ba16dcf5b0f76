"""The server wakes the worker on its host when it writes a row due before the worker's next poll.

The worker opens a FIFO, STATE_DIR/worker.wake, and waits on it between polls; the server writes
one byte into it after it queued such a row. It costs no request to the store: the woken cycle
is the worker's poll, brought forward (the next one is a full interval after it). With no worker
on this host (the FIFO is missing, or nobody has it open) the byte goes nowhere and the worker
elsewhere finds the row at its next poll.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from notion_queue.clock import Clock
from notion_queue.logs import get_logger
from notion_queue.models import (
    Contact,
    ContactData,
    NewRow,
    QueueRow,
    RowUpdate,
    Status,
)
from notion_queue.store.base import ContactBook, RowQueue, UpsertResult
from notion_queue.store.event_batches import event_batches

log = get_logger(__name__)

WAKE_FILE = "worker.wake"


def wake_path(state_dir: Path) -> Path:
    return Path(state_dir) / WAKE_FILE


class WakeListener:
    """The worker's end: `wait(seconds)` answers True as soon as the server (or stop()) pokes."""

    def __init__(self, state_dir: Path) -> None:
        self.path = wake_path(state_dir)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(self.path.stat().st_mode):
                self.path.unlink()  # a stray file where the FIFO belongs
        with contextlib.suppress(FileExistsError):
            os.mkfifo(self.path, 0o600)
        # Our own writer keeps the FIFO open, so a server that closes its end is no end of file.
        self._read = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._write = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        self._closed = False

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when poked (every poke so far is taken)."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, seconds))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass
        return True

    def poke(self) -> None:
        """Wake our own wait (stop()). A no-op once closed: a second stop signal can come after
        close(), and the descriptor's number may by then name another open file (the queue's)."""
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError):  # full: a wake is pending already
            os.write(self._write, b"!")

    def close(self) -> None:
        self._closed = True  # first: a signal handler that pokes from here on does nothing
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class Waker:
    """The server's end: pokes the worker when a row it queued is due before the next poll."""

    def __init__(self, state_dir: Path, clock: Clock, poll_interval: float) -> None:
        self.path = wake_path(state_dir)
        self.clock = clock
        self.poll_interval = poll_interval

    def due_before_next_poll(self, row: NewRow) -> bool:
        if row.status is not Status.QUEUED or row.scheduled_time is None:
            return False
        return row.scheduled_time <= self.clock.now() + timedelta(seconds=self.poll_interval)

    def wake(self) -> bool:
        """One byte into the worker's FIFO; False when no worker on this host listens."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # the FIFO is there, no worker has it open
                return False
            log.warning("worker_wake_failed", reason=str(exc))
            return False
        try:
            os.write(fd, b"!")
        except BlockingIOError:
            pass  # the FIFO is full: the worker has wakes waiting already
        finally:
            os.close(fd)
        return True


class IntakeRoles(RowQueue, ContactBook, Protocol):
    """What intake asks of the store (the roles of processor.IntakeStore)."""


class WakingStore:
    """The store intake writes through: a row due before the worker's next poll wakes it."""

    def __init__(self, store: IntakeRoles, waker: Waker) -> None:
        self.store = store
        self.waker = waker
        self._batches = event_batches(store)
        self._in_batch = False
        self._wake_after_batch = False

    @contextmanager
    def intake_batch(self) -> Iterator[None]:
        """The store's batch; a wake its rows call for waits for its commit, so the worker
        finds them when it looks."""
        with self._batches.intake_batch():
            self._in_batch, self._wake_after_batch = True, False
            try:
                yield
            finally:
                self._in_batch = False
        if self._wake_after_batch:
            self._wake_after_batch = False
            self.waker.wake()

    def intake_event(self) -> AbstractContextManager[None]:
        return self._batches.intake_event()

    def _rows_added(self, rows: Sequence[NewRow]) -> None:
        if not any(self.waker.due_before_next_poll(row) for row in rows):
            return
        if self._in_batch:
            self._wake_after_batch = True
        else:
            self.waker.wake()

    def add_row(self, row: NewRow) -> QueueRow:
        added = self.store.add_row(row)
        self._rows_added([row])
        return added

    def add_rows(self, rows: Sequence[NewRow]) -> list[QueueRow]:
        added = self.store.add_rows(rows)
        self._rows_added(rows)
        return added

    def due_rows(
        self, until: datetime, *, page_size: int = 100, after: QueueRow | None = None
    ) -> Iterator[QueueRow]:
        return self.store.due_rows(until, page_size=page_size, after=after)

    def find_by_message_id(self, message_id: str) -> QueueRow | None:
        return self.store.find_by_message_id(message_id)

    def get_row(self, row_id: str) -> QueueRow:
        return self.store.get_row(row_id)

    def update_row(self, row_id: str, update: RowUpdate) -> QueueRow:
        return self.store.update_row(row_id, update)

    def rows_for_email(
        self,
        email: str,
        *,
        sequence: str | None = None,
        statuses: Collection[Status] | None = None,
    ) -> list[QueueRow]:
        return self.store.rows_for_email(email, sequence=sequence, statuses=statuses)

    def all_rows(self) -> Iterator[QueueRow]:
        return self.store.all_rows()

    def rows_with_status(self, statuses: Collection[Status]) -> Iterator[QueueRow]:
        return self.store.rows_with_status(statuses)

    def status_counts(self) -> dict[tuple[str, str], int] | None:
        return self.store.status_counts()

    def upsert_contact(self, data: ContactData) -> tuple[Contact, UpsertResult]:
        return self.store.upsert_contact(data)

    def unsubscribed_emails(self) -> set[str]:
        return self.store.unsubscribed_emails()
