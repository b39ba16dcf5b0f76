"""The drainer: turns journaled events into contacts and rows, retrying while the store errors.

It runs as a background task of the server (a thread, because the store is synchronous) and
picks up whatever a previous run left unfinished after a restart.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from notion_queue.clock import Clock
from notion_queue.errors import AccountError, ConfigError, PermanentError, RetryableError
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.logs import get_logger
from notion_queue.pacing import Backoff

log = get_logger(__name__)


class Drainer:
    def __init__(
        self,
        journal: Journal,
        processor: IntakeProcessor,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        idle_seconds: float = 1.0,
    ) -> None:
        self.journal = journal
        self.processor = processor
        self.clock = clock
        self.backoff = backoff or Backoff(base=1, cap=300)
        self.idle_seconds = idle_seconds
        self.store_ok = True
        self.last_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def drain_once(self) -> int:
        """Apply every pending event that is due; answers how many were finished."""
        finished = 0
        for entry in self.journal.pending(self.clock.now()):
            if self._stop.is_set():
                break
            try:
                self.processor.apply(entry)
            except (RetryableError, AccountError) as exc:
                attempts = entry.attempts + 1
                delay = self.backoff.delay(attempts)
                self.journal.retry_later(
                    entry.id, attempts, self.clock.now() + timedelta(seconds=delay), str(exc)
                )
                self.store_ok = False
                self.last_error = str(exc)
                log.warning(
                    "event_retry",
                    event_id=entry.id,
                    attempts=attempts,
                    delay=delay,
                    reason=str(exc),
                )
                # The store is struggling: stop hammering it until the back-off has passed.
                break
            except (PermanentError, ConfigError, ValueError, KeyError) as exc:
                self.journal.mark_rejected(entry.id, str(exc))
                log.error("event_rejected", event_id=entry.id, kind=entry.kind, reason=str(exc))
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
            self.journal.mark_done(entry.id)
            self.store_ok = True
            self.last_error = ""
            finished += 1
        return finished

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
        while not self._stop.is_set():
            try:
                self.drain_once()
            except Exception as exc:  # never let the drainer die: it is what keeps leads
                log.exception("drainer_error", reason=str(exc))
            self._wake.wait(self.idle_seconds)
            self._wake.clear()
