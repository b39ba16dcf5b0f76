"""The PostgreSQL QueueStore: the queue for more than one worker, on more than one host.

Same rows and columns as SQLite's, plus a claim per row (`claimed_by`, `claimed_until`): workers
take due rows with `SELECT … FOR UPDATE SKIP LOCKED`, so no two hold the same row, and a killed
worker's claims lapse and its rows come back. Marking a row (any Status change) releases its
claim. The schema is made on first start (`postgres_schema.migrate`).

Connections come from a psycopg-pool pool: the worker sends from several threads and the server
drains intake in one, each needing its own connection for the length of a query.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from notion_queue.errors import ConfigError, RetryableError
from notion_queue.models import (
    Contact,
    ContactData,
    NewRow,
    QueueRow,
    RowUpdate,
    Status,
    Template,
)
from notion_queue.store.base import OutcomeRecord, RowNotFound, UpsertResult
from notion_queue.store.postgres_schema import migrate
from notion_queue.store.sql_records import (
    contact_from,
    outcome_values,
    row_from,
    row_values,
    template_from,
    update_columns,
)

Record = dict[str, Any]
CONNECT_TIMEOUT_SECONDS = 10.0


def _ts(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime: every time in the queue must carry a timezone")
    return value


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


class PostgresStore:
    """Makes no connection when built (the server starts, and journals webhooks, while the
    database is down): the first query, or `connect()` (the drainer's connector), opens the pool
    and brings the schema up to date."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 8,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self._url = url
        self._max_connections = max_connections
        self._timeout = connect_timeout
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Record]] | None = None
        self._connecting = threading.Lock()

    def connect(self) -> None:
        """Open the pool and migrate the schema, once; RetryableError while the server cannot
        be reached (the caller waits and tries again)."""
        with self._connecting:
            if self._pool is not None:
                return
            pool: psycopg_pool.ConnectionPool[psycopg.Connection[Record]] = (
                psycopg_pool.ConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=self._max_connections,
                    kwargs={
                        "autocommit": True,
                        "row_factory": dict_row,
                        "options": "-c TimeZone=UTC",
                    },
                    timeout=self._timeout,
                    open=False,
                    name="notion-queue",
                )
            )
            try:
                pool.open(wait=True, timeout=self._timeout)
                with pool.connection() as conn:
                    migrate(conn)
            except psycopg_pool.PoolTimeout:
                pool.close()
                raise RetryableError(
                    "PostgreSQL cannot be reached (DATABASE_URL): is the server up?"
                ) from None
            except psycopg.OperationalError as exc:
                pool.close()
                raise RetryableError(f"PostgreSQL: {_reason(exc)}") from None
            except psycopg.Error as exc:
                pool.close()
                raise ConfigError(
                    f"PostgreSQL refused the queue (DATABASE_URL): {_reason(exc)}"
                ) from None
            self._pool = pool

    def _connected(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Record]]:
        if self._pool is None:
            self.connect()
        assert self._pool is not None
        return self._pool

    def close(self) -> None:
        with self._connecting:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Record]:
        pool = self._connected()
        try:
            with pool.connection() as conn:
                cursor = conn.execute(sql.encode(), params)
                return cursor.fetchall() if cursor.description else []
        except psycopg_pool.PoolTimeout:
            raise RetryableError("PostgreSQL cannot be reached (DATABASE_URL)") from None
        except psycopg.OperationalError as exc:
            raise RetryableError(f"PostgreSQL: {_reason(exc)}") from None

    # rows

    def add_row(self, row: NewRow) -> QueueRow:
        return self.add_rows([row])[0]

    def add_rows(self, rows: Sequence[NewRow]) -> list[QueueRow]:
        """The rows of one event, in order, in one transaction (one commit)."""
        if not rows:
            return []
        made: list[QueueRow] = []
        try:
            with self._connected().connection() as conn, conn.transaction():
                for row in rows:
                    found = conn.execute(
                        _INSERT_ROW.encode(), row_values(str(uuid.uuid4()), row, _ts)
                    ).fetchall()
                    made.append(_row(found[0]))
        except psycopg_pool.PoolTimeout:
            raise RetryableError("PostgreSQL cannot be reached (DATABASE_URL)") from None
        except psycopg.OperationalError as exc:
            raise RetryableError(f"PostgreSQL: {_reason(exc)}") from None
        return made

    def due_rows(
        self, until: datetime, *, page_size: int = 100, after: QueueRow | None = None
    ) -> Iterator[QueueRow]:
        """Keyset paging on (scheduled_time, seq), each page read when it is reached; `after`
        resumes exactly behind that row (ties in the order they were queued)."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        cursor: tuple[datetime, int] = (datetime.min.replace(tzinfo=UTC), 0)
        if after is not None and after.scheduled_time is not None:
            found_after = self._query("SELECT seq FROM email_queue WHERE id = %s", (after.id,))
            if found_after:
                cursor = (_ts(after.scheduled_time) or cursor[0], int(found_after[0]["seq"]))
        while True:
            found = self._query(
                "SELECT * FROM email_queue WHERE status = %s"
                " AND scheduled_time IS NOT NULL AND scheduled_time <= %s"
                " AND (scheduled_time, seq) > (%s, %s)"
                " ORDER BY scheduled_time, seq LIMIT %s",
                (Status.QUEUED.value, _ts(until), *cursor, page_size),
            )
            yield from (_row(r) for r in found)
            if len(found) < page_size:
                return
            cursor = (found[-1]["scheduled_time"], found[-1]["seq"])

    def claim_due(
        self,
        worker: str,
        now: datetime,
        limit: int,
        ttl_seconds: float,
        *,
        skip: Collection[str] = (),
    ) -> list[QueueRow]:
        """Claim up to `limit` due rows for `worker` until now + `ttl_seconds`, earliest first:
        rows nobody holds, whose claim lapsed, or that `worker` holds already (a cycle cut short
        by an account error); none of `skip`, and none in a pending batch (they go with it).
        Rows another worker is claiming at this instant are skipped, not waited for."""
        found = self._query(
            "WITH picked AS ("
            " SELECT seq FROM email_queue WHERE status = %(queued)s"
            " AND scheduled_time IS NOT NULL AND scheduled_time <= %(now)s"
            " AND (claimed_until IS NULL OR claimed_until <= %(now)s"
            " OR claimed_by = %(worker)s) AND NOT (id = ANY(%(skip)s))"
            " AND batch_key IS NULL"
            " ORDER BY scheduled_time, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " UPDATE email_queue AS q SET claimed_by = %(worker)s, claimed_until = %(until)s"
            " FROM picked WHERE q.seq = picked.seq RETURNING q.*",
            {
                "queued": Status.QUEUED.value,
                "now": _ts(now),
                "limit": limit,
                "worker": worker,
                "until": now + timedelta(seconds=ttl_seconds),
                "skip": list(skip),
            },
        )
        found.sort(key=lambda r: (r["scheduled_time"], r["seq"]))
        return [_row(r) for r in found]

    def next_due_time(self, after: datetime) -> datetime | None:
        """When the next queued row may be claimed (its Scheduled Time, or when its claim
        lapses), or a pending batch taken over (when its hold lapses), whichever comes first."""
        found = self._query(
            "SELECT LEAST("
            " (SELECT MIN(GREATEST(scheduled_time, COALESCE(claimed_until, scheduled_time)))"
            " FROM email_queue WHERE status = %(queued)s AND scheduled_time IS NOT NULL"
            " AND batch_key IS NULL"
            " AND GREATEST(scheduled_time, COALESCE(claimed_until, scheduled_time)) > %(after)s),"
            " (SELECT MIN(held_until) FROM pending_batches WHERE held_until > %(after)s)) AS t",
            {"queued": Status.QUEUED.value, "after": _ts(after)},
        )
        return _utc(found[0]["t"]) if found else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Record]]:
        """A connection inside one transaction (committed when the block ends without error);
        RetryableError while the server cannot be reached."""
        try:
            with self._connected().connection() as conn, conn.transaction():
                yield conn
        except psycopg_pool.PoolTimeout:
            raise RetryableError("PostgreSQL cannot be reached (DATABASE_URL)") from None
        except psycopg.OperationalError as exc:
            raise RetryableError(f"PostgreSQL: {_reason(exc)}") from None

    def find_by_message_id(self, message_id: str) -> QueueRow | None:
        found = self._query(
            "SELECT * FROM email_queue WHERE resend_email_id = %s ORDER BY seq LIMIT 1",
            (message_id,),
        )
        return _row(found[0]) if found else None

    def get_row(self, row_id: str) -> QueueRow:
        found = self._query("SELECT * FROM email_queue WHERE id = %s", (row_id,))
        if not found:
            raise RowNotFound(f"row {row_id} not found")
        return _row(found[0])

    def update_row(self, row_id: str, update: RowUpdate) -> QueueRow:
        changes = update_columns(update, _ts)
        assignments = [f"{column} = %s" for column in changes]
        if update.status is not None:
            assignments.append("claimed_by = NULL, claimed_until = NULL")  # marked: released
        sql = "SELECT * FROM email_queue WHERE id = %s"
        if assignments:
            sql = f"UPDATE email_queue SET {', '.join(assignments)} WHERE id = %s RETURNING *"  # noqa: S608
        found = self._query(sql, (*changes.values(), row_id))
        if not found:
            raise RowNotFound(f"row {row_id} not found")
        return _row(found[0])

    def rows_for_email(
        self,
        email: str,
        *,
        sequence: str | None = None,
        statuses: Collection[Status] | None = None,
    ) -> list[QueueRow]:
        sql = "SELECT * FROM email_queue WHERE email_address = %s"
        params: list[Any] = [email.strip().lower()]
        if sequence is not None:
            sql += " AND sequence = %s"
            params.append(sequence)
        if statuses is not None:
            sql += " AND status = ANY(%s)"
            params.append([s.value for s in statuses])
        sql += " ORDER BY scheduled_time, seq"
        return [_row(r) for r in self._query(sql, tuple(params))]

    def all_rows(self) -> Iterator[QueueRow]:
        return iter([_row(r) for r in self._query("SELECT * FROM email_queue ORDER BY seq")])

    def rows_with_status(self, statuses: Collection[Status]) -> Iterator[QueueRow]:
        found = self._query(
            "SELECT * FROM email_queue WHERE status = ANY(%s) ORDER BY seq",
            ([s.value for s in statuses],),
        )
        return iter([_row(r) for r in found])

    def status_counts(self) -> dict[tuple[str, str], int] | None:
        found = self._query(
            "SELECT sequence, status, COUNT(*) AS n FROM email_queue GROUP BY sequence, status"
        )
        return {(r["sequence"], r["status"]): int(r["n"]) for r in found}

    def sent_rows(self, since: datetime | None = None) -> Iterator[QueueRow]:
        """The report's read: sent rows only (Sent At on or after `since`), in Sent At order."""
        sql = "SELECT * FROM email_queue WHERE status = %s AND sent_at IS NOT NULL"
        params: list[Any] = [Status.SENT.value]
        if since is not None:
            sql += " AND sent_at >= %s"
            params.append(_ts(since))
        sql += " ORDER BY sent_at, seq"
        return iter([_row(r) for r in self._query(sql, tuple(params))])

    def rows_with_dedupe_key(self, dedupe_key: str) -> list[QueueRow]:
        found = self._query(
            "SELECT * FROM email_queue WHERE dedupe_key = %s ORDER BY seq", (dedupe_key,)
        )
        return [_row(r) for r in found]

    # contacts

    def find_contact(self, email: str) -> Contact | None:
        found = self._query("SELECT * FROM contacts WHERE email = %s", (email.strip().lower(),))
        return _contact(found[0]) if found else None

    def upsert_contact(self, data: ContactData) -> tuple[Contact, UpsertResult]:
        """One statement: the address is created or updated atomically, whoever else writes."""
        email = data.email.strip().lower()
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
            "unsubscribed": data.unsubscribed,
            "time_zone": data.time_zone,
        }
        changes = {k: v for k, v in values.items() if v is not None}
        before = self.find_contact(email)
        columns = ["id", "email", *changes]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in changes) or "email = EXCLUDED.email"
        found = self._query(
            f"INSERT INTO contacts ({', '.join(columns)})"  # noqa: S608
            f" VALUES ({', '.join('%s' for _ in columns)})"
            f" ON CONFLICT (email) DO UPDATE SET {updates}"
            " RETURNING *, (xmax = 0) AS inserted",
            (str(uuid.uuid4()), email, *changes.values()),
        )
        contact = _contact(found[0])
        if found[0]["inserted"]:
            return contact, "created"
        return contact, "unchanged" if contact == before else "updated"

    def unsubscribed_emails(self) -> set[str]:
        return {r["email"] for r in self._query("SELECT email FROM contacts WHERE unsubscribed")}

    def all_contacts(self) -> Iterator[Contact]:
        return iter([_contact(r) for r in self._query("SELECT * FROM contacts ORDER BY seq")])

    def import_row(self, source: str, source_id: str, row: QueueRow) -> bool:
        """`notion-queue migrate`: the row as it is, with its marker, in one transaction; False
        (nothing written) when `source_id` of `source` was imported already."""
        try:
            with self._connected().connection() as conn, conn.transaction():
                marked = conn.execute(
                    "INSERT INTO migrated_rows (source, source_id, target_id)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING target_id",
                    (source, source_id, row.id),
                ).fetchall()
                if not marked:
                    return False
                conn.execute(
                    "INSERT INTO email_queue (id, name, email_address, first_name, sequence,"
                    " email_number, template_id, scheduled_time, status, sent_at,"
                    " resend_email_id, error_message, attempts, variables, dedupe_key,"
                    " expires_at, contact_id, delivery)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    " %s, %s)",
                    (
                        row.id,
                        f"{row.template_id} → {row.email}",
                        row.email,
                        row.first_name,
                        row.sequence,
                        row.email_number,
                        row.template_id,
                        _ts(row.scheduled_time),
                        row.status_text,
                        _ts(row.sent_at),
                        row.resend_email_id,
                        row.error_message,
                        row.attempts,
                        row.variables_text,
                        row.dedupe_key,
                        _ts(row.expires_at),
                        row.contact_id,
                        row.delivery,
                    ),
                )
                return True
        except psycopg_pool.PoolTimeout:
            raise RetryableError("PostgreSQL cannot be reached (DATABASE_URL)") from None
        except psycopg.OperationalError as exc:
            raise RetryableError(f"PostgreSQL: {_reason(exc)}") from None

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
        self._query(
            "INSERT INTO email_analytics (row_id, email_address, template_id, sequence, outcome,"
            " at, resend_email_id, error_message, lateness_seconds)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            outcome_values(
                row, OutcomeRecord(outcome, at, message_id, error, lateness_seconds), _ts
            ),
        )

    def claim_lease(self, holder: str, now: datetime, ttl_seconds: float) -> str | None:
        """The single-worker lease (kept for the contract; workers on PostgreSQL claim rows
        instead and never ask for it)."""
        found = self._query(
            "INSERT INTO worker_lease (id, holder, expires_at) VALUES (1, %(holder)s, %(until)s)"
            " ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder,"
            " expires_at = EXCLUDED.expires_at"
            " WHERE worker_lease.holder = EXCLUDED.holder OR worker_lease.expires_at <= %(now)s"
            " RETURNING holder",
            {"holder": holder, "until": now + timedelta(seconds=ttl_seconds), "now": _ts(now)},
        )
        if found:
            return None
        current = self._query("SELECT holder, expires_at FROM worker_lease WHERE id = 1")
        if not current:  # released between the two statements
            return self.claim_lease(holder, now, ttl_seconds)
        until = current[0]["expires_at"].astimezone(UTC).isoformat(timespec="milliseconds")
        return f"{current[0]['holder']} (lease until {until})"

    def release_lease(self, holder: str) -> None:
        self._query("DELETE FROM worker_lease WHERE holder = %s", (holder,))

    # templates

    def all_templates(self) -> dict[str, Template]:
        return {
            r["template_id"]: _template(r)
            for r in self._query("SELECT * FROM templates ORDER BY seq")
        }

    def page_body(self, template_id: str) -> str:
        found = self._query("SELECT blocks FROM templates WHERE template_id = %s", (template_id,))
        return str(found[0]["blocks"]) if found else ""

    def upsert_template(self, template: Template, *, force: bool = False) -> UpsertResult:
        """No one edits a PostgreSQL template by hand (as SQLite): `force` changes nothing here."""
        existing = self._query(
            "SELECT * FROM templates WHERE template_id = %s", (template.template_id,)
        )
        if existing and _template(existing[0]) == template:
            return "unchanged"
        self._query(
            "INSERT INTO templates (template_id, subject, html_body, text_body, active, blocks)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (template_id) DO UPDATE SET"
            " subject = EXCLUDED.subject, html_body = EXCLUDED.html_body,"
            " text_body = EXCLUDED.text_body, active = EXCLUDED.active, blocks = EXCLUDED.blocks",
            (
                template.template_id,
                template.subject,
                template.html,
                template.text,
                template.active,
                template.blocks,
            ),
        )
        return "updated" if existing else "created"


def _reason(exc: psycopg.Error) -> str:
    """The server's message without the connection string (it may hold a password)."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or type(exc).__name__


_INSERT_ROW = (
    "INSERT INTO email_queue (id, name, email_address, first_name, sequence, email_number,"
    " template_id, scheduled_time, status, sent_at, error_message, variables, dedupe_key,"
    " expires_at, contact_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *"
)


def _template(r: Record) -> Template:
    return template_from(r)


def _row(r: Record) -> QueueRow:
    return row_from(r, _utc)


def _contact(r: Record) -> Contact:
    return contact_from(r, _utc)
