"""How long history is kept, and how often it is pruned: memory and disk do not grow with it.

Finished journal entries and the outbox's legacy key records are kept 48 hours: longer than
Resend's 24-hour idempotency window, so a duplicate webhook or a retried send within it is still
recognised; after that the rows' dedupe keys (intake) and the outbox file names (mailer) still
are.
"""

from __future__ import annotations

from datetime import timedelta

from notion_queue.clock import Clock

KEEP_HISTORY = timedelta(hours=48)
PRUNE_EVERY_SECONDS = 3600.0
CONTACTS_CACHE_LIMIT = 10_000  # the Notion store's known contacts, the least recently used go


class Every:
    """Due on the first ask, then at most once every `seconds` of the injected clock."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self._last: float | None = None

    def due(self) -> bool:
        now = self.clock.monotonic()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True
