"""The embedded default QueueStore: one SQLite file, the same rows and columns as Notion's.

Server and worker are separate processes sharing the file; WAL mode and a busy timeout let them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notion_queue.models import (
    Contact,
    ContactData,
    NewRow,
    QueueRow,
    RowUpdate,
    Status,
    Template,
)
from notion_queue.sqlite_faults import cannot_open, check_file, connect, corrupt_file, is_corrupt
from notion_queue.store.base import OutcomeRecord, RowNotFound, UpsertResult
from notion_queue.store.sql_records import (
    contact_from,
    outcome_values,
    row_from,
    row_values,
    template_from,
    update_columns,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS email_queue (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email_address TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    sequence TEXT NOT NULL,
    email_number INTEGER,
    template_id TEXT NOT NULL,
    scheduled_time TEXT,
    status TEXT NOT NULL,
    sent_at TEXT,
    resend_email_id TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    variables TEXT NOT NULL DEFAULT '',
    dedupe_key TEXT NOT NULL,
    expires_at TEXT,
    contact_id TEXT,
    delivery TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS email_queue_message ON email_queue (resend_email_id);
CREATE INDEX IF NOT EXISTS email_queue_due ON email_queue (status, scheduled_time);
CREATE INDEX IF NOT EXISTS email_queue_email ON email_queue (email_address);
CREATE INDEX IF NOT EXISTS email_queue_dedupe ON email_queue (dedupe_key);
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    business_name TEXT NOT NULL DEFAULT '',
    segment TEXT NOT NULL DEFAULT '',
    assessment_score REAL,
    assessment_data TEXT NOT NULL DEFAULT '{}',
    meeting_time TEXT,
    last_event TEXT NOT NULL DEFAULT '',
    unsubscribed INTEGER NOT NULL DEFAULT 0,
    time_zone TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS email_analytics (
    row_id TEXT NOT NULL,
    email_address TEXT NOT NULL,
    template_id TEXT NOT NULL,
    sequence TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at TEXT NOT NULL,
    resend_email_id TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    lateness_seconds REAL
);
CREATE TABLE IF NOT EXISTS worker_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    template_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    html_body TEXT NOT NULL,
    text_body TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    blocks TEXT NOT NULL DEFAULT ''
);
"""


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime: every time in the queue must carry a timezone")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class SqliteStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = connect(path, "SQLITE_PATH")
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._marks_lock = threading.Lock()
        self._marks: list[_Mark] = []  # marks waiting for the next group commit
        self._batch: _Batch | None = None  # an intake batch's open transaction (intake_batch)
        with self._lock:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA busy_timeout=30000")
                check_file(self._db, path, "unsent rows")
                self._migrate()
                self._db.executescript(_SCHEMA)
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                self._db.close()
                if is_corrupt(exc):
                    raise corrupt_file(path, exc, "unsent rows") from None
                raise cannot_open(path, exc, "SQLITE_PATH") from None

    def _migrate(self) -> None:
        """Columns added since the first release, for queue files made by it."""
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(email_queue)")}
        if columns and "delivery" not in columns:
            self._db.execute("ALTER TABLE email_queue ADD COLUMN delivery TEXT NOT NULL DEFAULT ''")
        contact_columns = {r[1] for r in self._db.execute("PRAGMA table_info(contacts)")}
        if contact_columns and "time_zone" not in contact_columns:
            self._db.execute("ALTER TABLE contacts ADD COLUMN time_zone TEXT NOT NULL DEFAULT ''")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(templates)")}
        if columns and "blocks" not in columns:  # the page body (JSON blocks), as in Notion
            self._db.execute("ALTER TABLE templates ADD COLUMN blocks TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with self._lock:
            self._db.execute(sql, params)
            self._commit()

    def _commit(self) -> None:
        """Commit, unless an intake batch is open: then its end commits (intake_batch)."""
        if self._batch is None:
            self._db.commit()

    @contextmanager
    def intake_batch(self) -> Iterator[None]:
        """One transaction (BEGIN IMMEDIATE: the worker's writes wait, no stale read) for a
        drained batch of events, committed at the end: one fsync. It holds the store's lock
        throughout, so the server's other threads (queue page) wait for it and never see or
        commit its writes half-way; the drainer keeps batches short."""
        with self._lock:
            if self._batch is not None:
                raise RuntimeError("an intake batch is open already")
            self._db.execute("BEGIN IMMEDIATE")
            self._batch = _Batch()
            try:
                yield
                if self._batch.lost is not None:  # SQLite rolled the transaction back itself
                    raise self._batch.lost
                self._db.commit()
            except BaseException:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.rollback()
                raise
            finally:
                self._batch = None

    @contextmanager
    def intake_event(self) -> Iterator[None]:
        """A savepoint inside intake_batch: one event's writes go, or all of them stay."""
        with self._lock:
            batch = self._batch
            if batch is None:
                raise RuntimeError("intake_event() is only for inside intake_batch()")
            if batch.lost is not None:
                raise batch.lost
            batch.events += 1
            savepoint = f"intake_event_{batch.events}"
            self._db.execute(f"SAVEPOINT {savepoint}")
            try:
                yield
            except BaseException as exc:
                self._roll_back_event(batch, savepoint, exc)
                raise
            self._db.execute(f"RELEASE {savepoint}")

    def _roll_back_event(self, batch: _Batch, savepoint: str, cause: BaseException) -> None:
        if self._db.in_transaction:
            self._db.execute(f"ROLLBACK TO {savepoint}")
            self._db.execute(f"RELEASE {savepoint}")
            return
        # A full disk or an I/O error can make SQLite roll back the whole transaction: the
        # batch's earlier events are gone too, and its end must not pass for a commit.
        batch.lost = (
            cause
            if isinstance(cause, sqlite3.Error)
            else sqlite3.OperationalError(f"the batch was rolled back by {cause!r}")
        )

    # rows

    def add_row(self, row: NewRow) -> QueueRow:
        return self.add_rows([row])[0]

    def add_rows(self, rows: Sequence[NewRow]) -> list[QueueRow]:
        ids = [str(uuid.uuid4()) for _ in rows]
        with self._lock:
            try:
                for row_id, row in zip(ids, rows, strict=True):
                    self._db.execute(_INSERT_ROW, row_values(row_id, row, _ts))
                self._commit()
            except BaseException:
                if self._db.in_transaction and self._batch is None:  # a batch: its savepoint
                    self._db.rollback()
                raise
            # One read for the event's rows, not one each.
            marks = ", ".join("?" for _ in ids)
            sql = f"SELECT * FROM email_queue WHERE id IN ({marks})"  # noqa: S608
            by_id = {r["id"]: _row(r) for r in self._query(sql, tuple(ids))}
            return [by_id[row_id] for row_id in ids]

    def due_rows(
        self, until: datetime, *, page_size: int = 100, after: QueueRow | None = None
    ) -> Iterator[QueueRow]:
        """`page_size` rows a query, each page read when it is reached: keyset paging on
        (scheduled_time, rowid), so ties go out in the order they were queued, as on Notion."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        cursor: tuple[str, int] = ("", 0)
        if after is not None:
            found_after = self._query("SELECT rowid FROM email_queue WHERE id = ?", (after.id,))
            if found_after and after.scheduled_time is not None:
                cursor = (_ts(after.scheduled_time) or "", int(found_after[0][0]))
        while True:
            found = self._query(
                "SELECT rowid AS seq, * FROM email_queue WHERE status = ?"
                " AND scheduled_time IS NOT NULL AND scheduled_time <= ?"
                " AND (scheduled_time, rowid) > (?, ?)"
                " ORDER BY scheduled_time, rowid LIMIT ?",
                (Status.QUEUED.value, _ts(until), *cursor, page_size),
            )
            yield from (_row(r) for r in found)
            if len(found) < page_size:
                return
            cursor = (found[-1]["scheduled_time"], found[-1]["seq"])

    def find_by_message_id(self, message_id: str) -> QueueRow | None:
        found = self._query("SELECT * FROM email_queue WHERE resend_email_id = ?", (message_id,))
        return _row(found[0]) if found else None

    def get_row(self, row_id: str) -> QueueRow:
        found = self._query("SELECT * FROM email_queue WHERE id = ?", (row_id,))
        if not found:
            raise RowNotFound(f"row {row_id} not found")
        return _row(found[0])

    def update_row(self, row_id: str, update: RowUpdate) -> QueueRow:
        with self._lock:
            self._in_one_commit(lambda: self._update(row_id, update))
        return self.get_row(row_id)

    def update_row_recorded(
        self, row: QueueRow, update: RowUpdate, outcome: OutcomeRecord
    ) -> QueueRow:
        """The row's change and its analytics row in one commit (one fsync, not two).

        Group commit: marks that arrive while a commit (its fsync) is under way queue up, and
        the next thread to get the connection writes them all in one transaction, each in a
        savepoint of its own (a mark that fails, fails alone); each caller returns once its own
        mark is on disk, or raises what stopped it."""
        (error,) = self.update_rows_recorded([(row, update, outcome)])
        if error is not None:
            raise error
        return self.get_row(row.id)

    def update_rows_recorded(
        self, changes: Sequence[tuple[QueueRow, RowUpdate, OutcomeRecord]]
    ) -> list[BaseException | None]:
        """Many update_row_recorded at once, in one commit: for each, None when it was
        written, or what stopped it (RowNotFound: the row is gone)."""
        marks = [_Mark(row, update, outcome) for row, update, outcome in changes]
        with self._marks_lock:
            self._marks.extend(marks)
        with self._lock:
            if not all(mark.done for mark in marks):
                self._commit_marks()
        return [mark.error for mark in marks]

    def _commit_marks(self) -> None:
        with self._marks_lock:
            batch, self._marks = self._marks, []
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            for mark in batch:
                self._db.execute("SAVEPOINT mark")
                try:
                    self._update(mark.row.id, mark.update)
                    self._db.execute(_INSERT_OUTCOME, outcome_values(mark.row, mark.outcome, _ts))
                except (RowNotFound, sqlite3.Error) as exc:
                    self._db.execute("ROLLBACK TO mark")
                    mark.error = exc
                self._db.execute("RELEASE mark")
            self._commit()
        except BaseException as exc:
            if self._db.in_transaction and self._batch is None:
                self._db.rollback()
            for mark in batch:
                mark.error = mark.error or exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for mark in batch:
                mark.done = True

    def _update(self, row_id: str, update: RowUpdate) -> None:
        changes = update_columns(update, _ts)
        if not changes:
            if not self._db.execute("SELECT 1 FROM email_queue WHERE id = ?", (row_id,)).fetchone():
                raise RowNotFound(f"row {row_id} not found")
            return
        assignments = ", ".join(f"{column} = ?" for column in changes)
        cursor = self._db.execute(
            f"UPDATE email_queue SET {assignments} WHERE id = ?",  # noqa: S608
            (*changes.values(), row_id),
        )
        if cursor.rowcount == 0:
            raise RowNotFound(f"row {row_id} not found")

    def _in_one_commit(self, write: Callable[[], None]) -> None:
        """`write`'s statements committed together, or rolled back together when it raises."""
        try:
            write()
            self._commit()
        except BaseException:
            if self._db.in_transaction and self._batch is None:  # a batch: its savepoint
                self._db.rollback()
            raise

    def rows_for_email(
        self,
        email: str,
        *,
        sequence: str | None = None,
        statuses: Collection[Status] | None = None,
    ) -> list[QueueRow]:
        sql = "SELECT * FROM email_queue WHERE email_address = ?"
        params: list[Any] = [email.strip().lower()]
        if sequence is not None:
            sql += " AND sequence = ?"
            params.append(sequence)
        if statuses is not None:
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(s.value for s in statuses)
        sql += " ORDER BY scheduled_time, rowid"
        return [_row(r) for r in self._query(sql, tuple(params))]

    def all_rows(self) -> Iterator[QueueRow]:
        return iter([_row(r) for r in self._query("SELECT * FROM email_queue ORDER BY rowid")])

    def sent_rows(self, since: datetime | None = None) -> Iterator[QueueRow]:
        """The report's read: sent rows only (Sent At on or after `since`), in Sent At order."""
        found = self._query(
            "SELECT * FROM email_queue WHERE status = ? AND sent_at IS NOT NULL AND sent_at >= ?"
            " ORDER BY sent_at, rowid",
            (Status.SENT.value, _ts(since) or ""),
        )
        return iter([_row(r) for r in found])

    def rows_with_status(self, statuses: Collection[Status]) -> Iterator[QueueRow]:
        marks = ", ".join("?" for _ in statuses)
        found = self._query(
            f"SELECT * FROM email_queue WHERE status IN ({marks}) ORDER BY rowid",  # noqa: S608
            tuple(s.value for s in statuses),
        )
        return iter([_row(r) for r in found])

    def status_counts(self) -> dict[tuple[str, str], int] | None:
        found = self._query(
            "SELECT sequence, status, COUNT(*) AS n FROM email_queue GROUP BY sequence, status"
        )
        return {(r["sequence"], r["status"]): int(r["n"]) for r in found}

    # contacts

    def find_contact(self, email: str) -> Contact | None:
        found = self._query("SELECT * FROM contacts WHERE email = ?", (email.strip().lower(),))
        return _contact(found[0]) if found else None

    def upsert_contact(self, data: ContactData) -> tuple[Contact, UpsertResult]:
        email = data.email.strip().lower()
        with self._lock:
            existing = self.find_contact(email)
            if existing is None:
                self._db.execute(
                    "INSERT INTO contacts (id, email) VALUES (?, ?)", (str(uuid.uuid4()), email)
                )
            values = {
                "first_name": data.first_name,
                "last_name": data.last_name,
                "business_name": data.business_name,
                "segment": data.segment,
                "assessment_score": data.assessment_score,
                "assessment_data": (
                    json.dumps(data.assessment_data, sort_keys=True)
                    if data.assessment_data is not None
                    else None
                ),
                "meeting_time": _ts(data.meeting_time),
                "last_event": data.last_event,
                "unsubscribed": int(data.unsubscribed) if data.unsubscribed is not None else None,
                "time_zone": data.time_zone,
            }
            changes = {k: v for k, v in values.items() if v is not None}
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                self._db.execute(
                    f"UPDATE contacts SET {assignments} WHERE email = ?",  # noqa: S608
                    (*changes.values(), email),
                )
            self._commit()
            contact = self.find_contact(email)
        assert contact is not None
        if existing is None:
            return contact, "created"
        return contact, "unchanged" if contact == existing else "updated"

    def all_contacts(self) -> Iterator[Contact]:
        """Every contact, oldest first: for `notion-queue migrate`, not the hot path."""
        return iter([_contact(r) for r in self._query("SELECT * FROM contacts ORDER BY rowid")])

    def unsubscribed_emails(self) -> set[str]:
        return {r["email"] for r in self._query("SELECT email FROM contacts WHERE unsubscribed")}

    def record_outcome(
        self,
        row: QueueRow,
        outcome: str,
        at: datetime,
        *,
        message_id: str = "",
        error: str = "",
        lateness_seconds: float | None = None,
    ) -> None:
        record = OutcomeRecord(outcome, at, message_id, error, lateness_seconds)
        self._write(_INSERT_OUTCOME, outcome_values(row, record, _ts))

    def claim_lease(self, holder: str, now: datetime, ttl_seconds: float) -> str | None:
        expires = _ts(now + timedelta(seconds=ttl_seconds))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # no other process reads between check and set
            try:
                current = self._db.execute(
                    "SELECT holder, expires_at FROM worker_lease WHERE id = 1"
                ).fetchone()
                if current and current["holder"] != holder and current["expires_at"] > _ts(now):
                    return f"{current['holder']} (lease until {current['expires_at']})"
                self._db.execute(
                    "INSERT INTO worker_lease (id, holder, expires_at) VALUES (1, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET holder = excluded.holder,"
                    " expires_at = excluded.expires_at",
                    (holder, expires),
                )
                return None
            finally:
                self._db.commit()

    def release_lease(self, holder: str) -> None:
        self._write("DELETE FROM worker_lease WHERE holder = ?", (holder,))

    # templates

    def _stored_template(self, template_id: str) -> Template | None:
        found = self._query("SELECT * FROM templates WHERE template_id = ?", (template_id,))
        return _template(found[0]) if found else None

    def all_templates(self) -> dict[str, Template]:
        return {
            r["template_id"]: _template(r)
            for r in self._query("SELECT * FROM templates ORDER BY rowid")
        }

    def page_body(self, template_id: str) -> str:
        stored = self._stored_template(template_id)
        return stored.blocks if stored else ""

    def upsert_template(self, template: Template, *, force: bool = False) -> UpsertResult:
        """No one edits a SQLite template by hand: `force` changes nothing here."""
        existing = self._stored_template(template.template_id)
        if existing == template:
            return "unchanged"
        self._write(
            "INSERT INTO templates (template_id, subject, html_body, text_body, active, blocks)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (template_id) DO UPDATE SET"
            " subject = excluded.subject, html_body = excluded.html_body,"
            " text_body = excluded.text_body, active = excluded.active, blocks = excluded.blocks",
            (
                template.template_id,
                template.subject,
                template.html,
                template.text,
                int(template.active),
                template.blocks,
            ),
        )
        return "created" if existing is None else "updated"


class _Batch:
    """An open intake batch: its savepoints so far, and the error that lost it, if one did."""

    def __init__(self) -> None:
        self.events = 0
        self.lost: sqlite3.Error | None = None


_INSERT_ROW = (
    "INSERT INTO email_queue (id, name, email_address, first_name, sequence, email_number,"
    " template_id, scheduled_time, status, sent_at, error_message, variables, dedupe_key,"
    " expires_at, contact_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class _Mark:
    """One update_row_recorded call, waiting for its group commit."""

    row: QueueRow
    update: RowUpdate
    outcome: OutcomeRecord
    done: bool = False
    error: BaseException | None = None


_INSERT_OUTCOME = "INSERT INTO email_analytics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _template(r: sqlite3.Row) -> Template:
    return template_from(r)


def _row(r: sqlite3.Row) -> QueueRow:
    return row_from(r, _dt)


def _contact(r: sqlite3.Row) -> Contact:
    return contact_from(r, _dt)
