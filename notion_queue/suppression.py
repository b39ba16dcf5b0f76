"""The addresses the worker never sends to: Contacts ticked Unsubscribed, read at most once a
minute.

Unsubscribe links and bounces cancel an address's rows themselves at once; this list is for the
boxes a marketer ticks by hand.
"""

from __future__ import annotations

import threading
from typing import Protocol

from notion_queue.clock import Clock

SUPPRESSED_MAX_AGE_SECONDS = 60.0


class UnsubscribedSource(Protocol):
    def unsubscribed_emails(self) -> set[str]: ...


class SuppressionList:
    """`email in suppressions` (any case). The list is read when a row is about to be sent and
    the last read is older than SUPPRESSED_MAX_AGE_SECONDS, so an idle poll costs no extra
    request. Safe to ask from several sending threads at once."""

    def __init__(self, store: UnsubscribedSource, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._emails: set[str] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def __contains__(self, email: object) -> bool:
        return isinstance(email, str) and email.lower() in self._current()

    def _current(self) -> set[str]:
        with self._lock:
            now = self.clock.monotonic()
            stale = now - self._read_at > SUPPRESSED_MAX_AGE_SECONDS
            if self._emails is None or stale:
                self._emails = {e.strip().lower() for e in self.store.unsubscribed_emails()}
                self._read_at = now
            return self._emails
