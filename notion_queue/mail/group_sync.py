"""Group fsync: threads that each need "an fsync of this folder that started after my change"
share one, instead of one fsync each.

A caller makes its change (the outbox links a message's name into its folder), then calls
`sync()`, which returns once an fsync that started after the call has finished. While one fsync
runs, the callers that arrive meanwhile wait; when it ends, one of them runs the next fsync for
all of them at once. One caller at a time costs one fsync, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from notion_queue.mail.base import OutgoingEmail, SendResult


@runtime_checkable
class SyncLater(Protocol):
    """A mailer whose sends can be made durable together: `send_unsynced` as `send`, except
    that what it wrote is durable only after the next `sync()`; the worker sends a batch so,
    syncs once, and only then marks the batch's rows (the outbox: one folder fsync a batch)."""

    def send_unsynced(self, email: OutgoingEmail) -> SendResult: ...

    def sync(self) -> None: ...


class GroupSync:
    def __init__(self, fsync: Callable[[], None]) -> None:
        self._fsync = fsync
        self._cond = threading.Condition(threading.Lock())
        self._requested = 0  # tickets handed out: one per sync() call
        self._done = 0  # every ticket up to this one is covered by a finished fsync
        self._running = False
        self.waiting = 0  # callers waiting behind an fsync under way (for tests)

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._done < ticket:
                if not self._running:
                    self._run_for(self._requested)
                    continue
                self.waiting += 1
                self._cond.wait()
                self.waiting -= 1

    def _run_for(self, upto: int) -> None:
        """One fsync, started now, covering every ticket up to `upto` (called with the lock
        held; released while the fsync runs). An fsync that fails covers nobody: each caller
        it was for tries again or raises."""
        self._running = True
        self._cond.release()
        try:
            self._fsync()
        finally:
            self._cond.acquire()
            self._running = False
            self._cond.notify_all()
        self._done = max(self._done, upto)
