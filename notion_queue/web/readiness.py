"""What /readyz answers: ready only while events are becoming rows and email can go out.

Each reason names what is wrong; `last_error` and `journal_error` carry the detail. The server
is not ready when the journal is corrupt or cannot be written, when the store is unreachable or
set up wrong, when the drainer has made no progress for STALL_SECONDS while events wait, or when
the worker says sending is paused or it is waiting for the store.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from notion_queue.intake.drainer import IntakeDrainer
from notion_queue.intake.journal import Journal
from notion_queue.sqlite_faults import describe, is_corrupt
from notion_queue.worker_status import is_sending_paused, is_waiting_for_store

STALL_SECONDS = 60.0
JOURNAL_CORRUPT = "journal corrupt"
JOURNAL_UNWRITABLE = "journal cannot be written"
JOURNAL_UNREADABLE = "journal cannot be read"
DRAINER_STALLED = "no progress"
SENDING_PAUSED = "sending paused"
WORKER_WAITING = "worker waiting for the store"


def readiness(
    journal: Journal, drainer: IntakeDrainer | None, worker: dict[str, Any] | None
) -> tuple[bool, dict[str, Any]]:
    """(ready, the body of /readyz). Reads the journal (and the drainer process's status file):
    call it off the event loop. `worker` is the worker's status file as
    `worker_status.read_status` answers it."""
    state = drainer.state() if drainer is not None else None
    reasons: list[str] = []
    backlog: int | None = None
    read_error = ""
    try:
        backlog = journal.backlog()
    except sqlite3.Error as exc:  # a corrupt file is noted in journal.corrupt by the read
        read_error = "" if is_corrupt(exc) else describe(exc)
    if state is not None and not read_error:
        read_error = state.journal_error
    if journal.corrupt:
        reasons.append(JOURNAL_CORRUPT)
    if journal.write_error:
        reasons.append(JOURNAL_UNWRITABLE)
    if read_error and not reasons:
        reasons.append(JOURNAL_UNREADABLE)
    journal_error = journal.corrupt or journal.write_error or read_error
    if state is not None:
        if state.store_problem:
            reasons.append(state.store_problem)
        idle = state.idle_seconds
        if backlog and idle > STALL_SECONDS:
            reasons.append(f"{DRAINER_STALLED} for {idle:.0f} s with {backlog} events waiting")
    if is_waiting_for_store(worker):
        reasons.append(WORKER_WAITING)
    if is_sending_paused(worker):
        reasons.append(SENDING_PAUSED)
    ready = not reasons
    return ready, {
        "status": "ready" if ready else "degraded",
        "reason": reasons[0] if reasons else "",
        "reasons": reasons,
        "journal_backlog": backlog,
        "journal_error": journal_error,
        "store_ok": state.store_ok if state is not None else True,
        "last_error": state.last_error if state is not None else "",
        "worker": worker,
    }
