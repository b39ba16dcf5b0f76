"""The drainer: turns journaled events into contacts and rows, retrying while the store errors.

It runs in a thread (the store is synchronous): in the server's own drainer process
(`drainer_child.py`, started by `drainer_process.py`), or in the test's process. It picks up
whatever a previous run left unfinished after a restart. A store that cannot be reached or is
set up wrong keeps every event pending, never rejects one: `store_problem` says why for /readyz,
and the events are applied once the store answers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from notion_queue.clock import Clock
from notion_queue.errors import AccountError, ConfigError, PermanentError, RetryableError
from notion_queue.intake.journal import Journal, JournalEntry
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.logs import get_logger
from notion_queue.pacing import Backoff
from notion_queue.retention import KEEP_HISTORY, PRUNE_EVERY_SECONDS, Every
from notion_queue.sqlite_faults import describe, is_corrupt
from notion_queue.store.event_batches import EachCallCommits, event_batches

log = get_logger(__name__)

STORE_UNREACHABLE = "store unreachable"
STORE_MISCONFIGURED = "store configuration error"
QUEUE_FILE_CORRUPT = "queue file corrupt"
QUEUE_FILE_UNWRITABLE = "queue file cannot be written"
# Events applied in one store transaction (one fsync for them all), their done marks in one
# journal commit; short enough that the worker, waiting on the queue file meanwhile, hardly
# notices.
BATCH = 50


@dataclass(frozen=True)
class DrainerState:
    """What /readyz needs of a drainer: `idle_seconds` since the backlog last went down (or was
    empty), counted at `at`."""

    store_problem: str
    last_error: str
    journal_error: str
    idle_seconds: float
    at: datetime

    @property
    def store_ok(self) -> bool:
        return not self.store_problem


class IntakeDrainer(Protocol):
    """What the server asks of its drainer, in this process (Drainer) or its own
    (DrainerProcess)."""

    def notify(self) -> None: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10) -> None: ...

    def state(self) -> DrainerState: ...


class Drainer:
    def __init__(
        self,
        journal: Journal,
        processor: IntakeProcessor,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        idle_seconds: float = 1.0,
        gather_seconds: float = 0.0,
        connect: Callable[[], None] | None = None,
    ) -> None:
        """`connect` reaches the store before any event is applied (NotionStore.connect: the
        data sources); until it succeeds the events wait and the store is "unreachable".
        `gather_seconds`: once woken, wait this long for more events, so that a busy intake
        is applied in batches (one commit each) rather than one event at a time."""
        self.journal = journal
        self.processor = processor
        self.clock = clock
        self.backoff = backoff or Backoff(base=1, cap=300)
        self.idle_seconds = idle_seconds
        self.gather_seconds = gather_seconds
        self.store_problem = STORE_UNREACHABLE if connect is not None else ""
        self.last_error = "not reached yet" if connect is not None else ""
        self.journal_error = ""  # the journal itself failed the drainer (corrupt, unwritable)
        self.progress_at = clock.monotonic()  # last time the backlog was empty or went down
        self._connect = connect
        self._batches = event_batches(processor.store)
        self._connect_attempts = 0
        self._connect_not_before = 0.0
        self._prune = Every(clock, PRUNE_EVERY_SECONDS)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def store_ok(self) -> bool:
        return not self.store_problem

    def state(self) -> DrainerState:
        return DrainerState(
            store_problem=self.store_problem,
            last_error=self.last_error,
            journal_error=self.journal_error,
            idle_seconds=self.clock.monotonic() - self.progress_at,
            at=self.clock.now(),
        )

    def drain_once(self) -> int:
        """Apply every pending event that is due, BATCH at a time, until none is left or the
        store fails; answers how many were finished. A batch is one store transaction
        (store/event_batches.py), and its events are marked done together, in one journal
        commit, after the store's commit: an event killed between the two is applied again
        after a restart, which intake's dedupe keys make harmless."""
        if not self._connected():
            return 0
        finished = 0
        while not self._stop.is_set():
            entries = self.journal.pending(self.clock.now(), BATCH)
            if not entries:  # no transaction to open (it would take the queue file's write lock)
                if self.journal.backlog() == 0:
                    self.progress_at = self.clock.monotonic()
                break
            done: list[str] = []
            if not self._drain_batch(entries, done):
                break
            finished += len(done)
            if len(entries) < BATCH or len(done) < len(entries):
                break  # all due ones taken, or the store failed one: its back-off first
        if self._prune.due():
            pruned = self.journal.prune(self.clock.now() - KEEP_HISTORY)
            if pruned:
                log.info("journal_pruned", events=pruned, older_than_hours=48)
        return finished

    def _drain_batch(self, entries: list[JournalEntry], done: list[str]) -> bool:
        """Apply `entries` in one store transaction, adding the finished ones' ids to `done`
        (marked done in the journal once the store committed); False when the queue file
        could not commit the batch (nothing of it is in the store; its events stay pending)."""
        committed = journal_part = False
        try:
            with self._batches.intake_batch():
                journal_part = True  # _drain handles the store's errors: any left are the journal's
                self._drain(entries, done)
                journal_part = False
            committed = True
        except sqlite3.Error as exc:
            if journal_part:
                raise
            self._batch_not_committed(exc)  # the queue file's BEGIN or COMMIT
            return False
        finally:
            # Without batches every store call committed on its own: what was applied stays.
            if committed or isinstance(self._batches, EachCallCommits):
                self.journal.mark_all_done(done)
        return True

    def _drain(self, entries: list[JournalEntry], done: list[str]) -> None:
        for entry in entries:
            if self._stop.is_set():
                return
            try:
                with self._batches.intake_event():
                    self.processor.apply(entry)
            except RetryableError as exc:
                self._store_failed(entry, STORE_UNREACHABLE, str(exc))
                return  # the store is struggling: stop hammering it until the back-off passed
            except (AccountError, ConfigError) as exc:
                self._store_failed(entry, STORE_MISCONFIGURED, str(exc))
                return
            except sqlite3.Error as exc:  # the SQLite queue file (the journal's errors go on up)
                problem = QUEUE_FILE_CORRUPT if is_corrupt(exc) else QUEUE_FILE_UNWRITABLE
                self._store_failed(entry, problem, describe(exc))
                return
            except (PermanentError, ValueError, KeyError) as exc:
                self.journal.mark_rejected(entry.id, str(exc))
                log.error("event_rejected", event_id=entry.id, kind=entry.kind, reason=str(exc))
                self.progress_at = self.clock.monotonic()
                continue
            except Exception as exc:  # a bug: keep the event, and let the others through
                attempts = entry.attempts + 1
                delay = self.backoff.delay(attempts)
                self.journal.retry_later(
                    entry.id,
                    attempts,
                    self.clock.now() + timedelta(seconds=delay),
                    f"unexpected {type(exc).__name__}: {exc}",
                )
                log.exception("event_error", event_id=entry.id, kind=entry.kind, delay=delay)
                continue
            done.append(entry.id)
            self.store_problem = ""
            self.last_error = ""
            self.progress_at = self.clock.monotonic()

    def _batch_not_committed(self, exc: sqlite3.Error) -> None:
        """A batch the queue file could not commit: nothing of it is in the store, its events
        stay pending (applied again once the file takes writes)."""
        self.store_problem = QUEUE_FILE_CORRUPT if is_corrupt(exc) else QUEUE_FILE_UNWRITABLE
        self.last_error = describe(exc)
        log.error(
            "store_unusable",
            problem=self.store_problem,
            reason=self.last_error,
            action="the batch was not committed; its events are kept pending",
        )

    def _connected(self) -> bool:
        """Reach the store once (with back-off between tries); answers whether it is reached."""
        if self._connect is None:
            return True
        if self.clock.monotonic() < self._connect_not_before:
            return False
        try:
            self._connect()
        except (RetryableError, AccountError, ConfigError) as exc:
            self._connect_attempts += 1
            delay = self.backoff.delay(self._connect_attempts)
            self._connect_not_before = self.clock.monotonic() + delay
            self._note_store_problem(
                STORE_UNREACHABLE if isinstance(exc, RetryableError) else STORE_MISCONFIGURED,
                str(exc),
                attempts=self._connect_attempts,
                delay=delay,
            )
            return False
        self._connect = None
        self.store_problem = ""
        self.last_error = ""
        log.info("store_reached", after_attempts=self._connect_attempts)
        return True

    def _store_failed(self, entry: JournalEntry, problem: str, reason: str) -> None:
        attempts = entry.attempts + 1
        delay = self.backoff.delay(attempts)
        self.journal.retry_later(
            entry.id, attempts, self.clock.now() + timedelta(seconds=delay), reason
        )
        self._note_store_problem(problem, reason, attempts=attempts, delay=delay, event_id=entry.id)

    def _note_store_problem(self, problem: str, reason: str, **context: object) -> None:
        self.store_problem = problem
        self.last_error = reason
        if problem == STORE_UNREACHABLE:
            event = "event_retry" if "event_id" in context else "store_unreachable"
            log.warning(event, problem=problem, reason=reason, **context)
        else:
            # Not a blip: a person must act. Nothing is rejected; the events wait for the fix.
            log.error(
                "store_unusable",
                problem=problem,
                reason=reason,
                action="events kept pending; fix it and they are applied",
                **context,
            )

    def notify(self) -> None:
        """A new event was journaled: drain now rather than at the next tick."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="drainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()  # a notify from here on is for events this drain may miss
            wait = self.idle_seconds
            try:
                self.drain_once()
            except sqlite3.Error as exc:  # the journal: /readyz shows it, and we back off
                failures += 1
                wait = max(wait, min(60.0, self.backoff.delay(failures)))
                self.journal_error = describe(exc)
                log.error("journal_error", reason=self.journal_error, retry_in=round(wait, 1))
            except Exception as exc:  # never let the drainer die: it is what keeps leads
                log.exception("drainer_error", reason=str(exc))
            else:
                failures = 0
                self.journal_error = ""
            if self._wake.wait(wait) and self.gather_seconds:
                self._stop.wait(self.gather_seconds)
