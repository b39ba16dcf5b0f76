"""Journal one event from a request handler: off the event loop (the write waits for fsync),
and an event that cannot be saved is told apart from one that was, never answered 202 or 500."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import anyio.to_thread

from notion_queue.intake.journal import Journal
from notion_queue.logs import get_logger
from notion_queue.sqlite_faults import describe

log = get_logger("notion_queue.server")

# What a caller is told to wait before sending the event again (a 503's Retry-After).
RETRY_AFTER_SECONDS = 30


async def journal_event(
    journal: Journal, kind: str, event_key: str, payload: dict[str, Any], received_at: datetime
) -> tuple[str, bool] | None:
    """(event id, is new) once the event is on disk; None when the journal could not take it
    (disk full, I/O error, locked too long, a corrupt file): the caller answers 503."""
    try:
        return await anyio.to_thread.run_sync(journal.append, kind, event_key, payload, received_at)
    except sqlite3.Error as exc:
        log.error(
            "event_not_journaled",
            kind=kind,
            reason=describe(exc),
            action=f"answered 503, Retry-After {RETRY_AFTER_SECONDS}",
        )
        return None
