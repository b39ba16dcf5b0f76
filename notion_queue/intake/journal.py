"""The durable intake journal: an event is answered 202 only once it is here, on disk.

SQLite in WAL mode with synchronous=FULL, so a committed event survives a crash or power cut.
The drainer works through pending entries; an entry is kept (done) for duplicate detection.
A damaged file stops start-up with one line (CorruptFile); at run time every sqlite3 error is
noted in `corrupt` or `write_error` for /readyz, and raised to the caller.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from notion_queue.private_files import private_dir
from notion_queue.sqlite_faults import (
    cannot_open,
    check_file,
    connect,
    corrupt_file,
    describe,
    is_corrupt,
)


class EventState(StrEnum):
    """The status column of a journaled event."""

    PENDING = "pending"  # journaled (answered 202); the drainer applies it, retrying
    DONE = "done"  # applied to the store; kept so a duplicate delivery is recognised
    REJECTED = "rejected"  # can never be applied (last_error says why); kept, never retried


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    event_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '{EventState.PENDING.value}',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_pending ON events (status, next_attempt_at);
"""


@dataclass(frozen=True)
class JournalEntry:
    id: str
    event_key: str
    kind: str
    payload: dict[str, Any]
    received_at: datetime
    attempts: int = 0
    last_error: str = ""


RECOVER = "pending events"


@dataclass
class _Append:
    """One webhook's event, waiting for the group commit that puts it on disk."""

    id: str
    event_key: str
    kind: str
    payload: str
    received_at: str
    result: tuple[str, bool] | None = None
    error: sqlite3.Error | None = None


class Journal:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            private_dir(Path(path).parent)  # STATE_DIR
        self.path = path
        self.corrupt = ""  # SQLite found the file damaged: it stays so until it is replaced
        self.write_error = ""  # the last write failed (disk full, I/O error); cleared by a write
        self._db = connect(path, "STATE_DIR")
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()  # the connection: one transaction at a time
        self._queued_lock = threading.Lock()
        self._queued: list[_Append] = []  # appends waiting for the next group commit
        with self._lock:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                check_file(self._db, path, RECOVER)
                self._db.executescript(_SCHEMA)
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                self._db.close()
                if is_corrupt(exc):
                    raise corrupt_file(path, exc, RECOVER) from None
                raise cannot_open(path, exc, "STATE_DIR") from None

    @contextmanager
    def _noting(self, *, write: bool) -> Iterator[None]:
        """Note what an sqlite3 error says about the file (for /readyz), then let it go on up."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                self.corrupt = describe(exc)
            elif write:
                self.write_error = describe(exc)
            if write and self._db.in_transaction:
                with suppress(sqlite3.Error):
                    self._db.rollback()  # a failed statement must not ride on the next commit
            raise
        if write:
            self.write_error = ""

    def append(
        self, kind: str, event_key: str, payload: dict[str, Any], received_at: datetime
    ) -> tuple[str, bool]:
        """Commit the event; answers (event id, True), or the first one's id and False when an
        event with this key was journaled before.

        Group commit: events that arrive while a commit (its fsync) is under way queue up, and
        the next thread to get the file commits them all in one transaction, one fsync; each
        caller returns once its own event is on disk (or raises what the commit raised)."""
        item = _Append(
            f"evt_{secrets.token_hex(10)}",
            event_key,
            kind,
            json.dumps(payload),
            received_at.isoformat(),
        )
        with self._queued_lock:
            self._queued.append(item)
        with self._lock:
            if item.result is None and item.error is None:
                self._commit_queued()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _commit_queued(self) -> None:
        with self._queued_lock:
            batch, self._queued = self._queued, []
        results: list[tuple[str, bool]] = []
        try:
            with self._noting(write=True):
                for item in batch:
                    added = self._db.execute(
                        "INSERT INTO events (id, event_key, kind, payload, received_at)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING",
                        (item.id, item.event_key, item.kind, item.payload, item.received_at),
                    )
                    if added.rowcount == 1:
                        results.append((item.id, True))
                        continue
                    first = self._db.execute(
                        "SELECT id FROM events WHERE event_key = ?", (item.event_key,)
                    ).fetchone()
                    results.append((str(first["id"]), False))
                self._db.commit()
        except sqlite3.Error as exc:
            for item in batch:
                item.error = exc
            return
        for item, result in zip(batch, results, strict=True):
            item.result = result

    def pending(self, now: datetime, limit: int = 50) -> list[JournalEntry]:
        with self._lock, self._noting(write=False):
            rows = self._db.execute(
                "SELECT * FROM events WHERE status = ?"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
                " ORDER BY received_at, rowid LIMIT ?",
                (EventState.PENDING.value, now.isoformat(), limit),
            ).fetchall()
        return [
            JournalEntry(
                id=r["id"],
                event_key=r["event_key"],
                kind=r["kind"],
                payload=json.loads(r["payload"]),
                received_at=datetime.fromisoformat(r["received_at"]),
                attempts=r["attempts"],
                last_error=r["last_error"],
            )
            for r in rows
        ]

    def mark_done(self, event_id: str) -> None:
        with self._lock, self._noting(write=True):
            self._db.execute(
                "UPDATE events SET status = ?, last_error = '' WHERE id = ?",
                (EventState.DONE.value, event_id),
            )
            self._db.commit()

    def mark_all_done(self, event_ids: list[str]) -> None:
        """mark_done for a drained batch, in one transaction (one fsync)."""
        if not event_ids:
            return
        with self._lock, self._noting(write=True):
            self._db.executemany(
                "UPDATE events SET status = ?, last_error = '' WHERE id = ?",
                [(EventState.DONE.value, event_id) for event_id in event_ids],
            )
            self._db.commit()

    def prune(self, before: datetime) -> int:
        """Forget finished events (done or rejected) received before `before`; answers how
        many. A pending event is never pruned."""
        with self._lock, self._noting(write=True):
            cursor = self._db.execute(
                "DELETE FROM events WHERE status IN (?, ?) AND received_at < ?",
                (EventState.DONE.value, EventState.REJECTED.value, before.isoformat()),
            )
            self._db.commit()
        return cursor.rowcount

    def mark_rejected(self, event_id: str, reason: str) -> None:
        """An event that can never be applied (a bug, or a catalog that changed under it)."""
        with self._lock, self._noting(write=True):
            self._db.execute(
                "UPDATE events SET status = ?, last_error = ? WHERE id = ?",
                (EventState.REJECTED.value, reason, event_id),
            )
            self._db.commit()

    def retry_later(self, event_id: str, attempts: int, at: datetime, error: str) -> None:
        with self._lock, self._noting(write=True):
            self._db.execute(
                "UPDATE events SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                (attempts, at.isoformat(), error, event_id),
            )
            self._db.commit()

    def backlog(self) -> int:
        with self._lock, self._noting(write=False):
            row = self._db.execute(
                "SELECT COUNT(*) FROM events WHERE status = ?", (EventState.PENDING.value,)
            ).fetchone()
        return int(row[0])

    def status_of(self, event_id: str) -> EventState | None:
        with self._lock, self._noting(write=False):
            row = self._db.execute("SELECT status FROM events WHERE id = ?", (event_id,)).fetchone()
        return EventState(row[0]) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
