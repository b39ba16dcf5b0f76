"""The drainer: turns journaled events into contacts and rows, retrying while the store errors.

It runs as a background task of the server (a thread, because the store is synchronous) and
picks up whatever a previous run left unfinished after a restart. A store that cannot be reached
or is set up wrong keeps every event pending, never rejects one: `store_problem` says why for
/readyz, and the events are applied once the store answers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta

from notion_queue.clock import Clock
from notion_queue.errors import AccountError, ConfigError, PermanentError, RetryableError
from notion_queue.intake.journal import Journal, JournalEntry
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.logs import get_logger
from notion_queue.pacing import Backoff
from notion_queue.retention import KEEP_HISTORY, PRUNE_EVERY_SECONDS, Every
from notion_queue.sqlite_faults import describe, is_corrupt

log = get_logger(__name__)

STORE_UNREACHABLE = "store unreachable"
STORE_MISCONFIGURED = "store configuration error"
QUEUE_FILE_CORRUPT = "queue file corrupt"
QUEUE_FILE_UNWRITABLE = "queue file cannot be written"


class Drainer:
    def __init__(
        self,
        journal: Journal,
        processor: IntakeProcessor,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        idle_seconds: float = 1.0,
        connect: Callable[[], None] | None = None,
    ) -> None:
        """`connect` reaches the store before any event is applied (NotionStore.connect: the
        data sources); until it succeeds the events wait and the store is "unreachable"."""
        self.journal = journal
        self.processor = processor
        self.clock = clock
        self.backoff = backoff or Backoff(base=1, cap=300)
        self.idle_seconds = idle_seconds
        self.store_problem = STORE_UNREACHABLE if connect is not None else ""
        self.last_error = "not reached yet" if connect is not None else ""
        self.journal_error = ""  # the journal itself failed the drainer (corrupt, unwritable)
        self.progress_at = clock.monotonic()  # last time the backlog was empty or went down
        self._connect = connect
        self._connect_attempts = 0
        self._connect_not_before = 0.0
        self._prune = Every(clock, PRUNE_EVERY_SECONDS)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def store_ok(self) -> bool:
        return not self.store_problem

    def drain_once(self) -> int:
        """Apply every pending event that is due; answers how many were finished. The batch's
        events are marked done together, in one commit, at its end: one killed before that is
        applied again after a restart, which intake's dedupe keys make harmless."""
        if not self._connected():
            return 0
        done: list[str] = []
        try:
            finished = self._drain(done)
        finally:
            self.journal.mark_all_done(done)
        if self._prune.due():
            pruned = self.journal.prune(self.clock.now() - KEEP_HISTORY)
            if pruned:
                log.info("journal_pruned", events=pruned, older_than_hours=48)
        return finished

    def _drain(self, done: list[str]) -> int:
        finished = 0
        entries = self.journal.pending(self.clock.now())
        if not entries and self.journal.backlog() == 0:
            self.progress_at = self.clock.monotonic()
        for entry in entries:
            if self._stop.is_set():
                break
            try:
                self.processor.apply(entry)
            except RetryableError as exc:
                self._store_failed(entry, STORE_UNREACHABLE, str(exc))
                break  # the store is struggling: stop hammering it until the back-off passed
            except (AccountError, ConfigError) as exc:
                self._store_failed(entry, STORE_MISCONFIGURED, str(exc))
                break
            except sqlite3.Error as exc:  # the SQLite queue file (the journal's errors go on up)
                problem = QUEUE_FILE_CORRUPT if is_corrupt(exc) else QUEUE_FILE_UNWRITABLE
                self._store_failed(entry, problem, describe(exc))
                break
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
            finished += 1
        return finished

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
            self._wake.wait(wait)
            self._wake.clear()
