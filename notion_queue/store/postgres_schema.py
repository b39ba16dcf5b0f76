"""The PostgreSQL queue's schema, as numbered migrations applied on first start.

`schema_version` holds one row per migration applied. `migrate()` applies the missing ones in
order inside one transaction under an advisory lock, so several workers and the server starting
at once apply each exactly once. A new release appends a migration; none is ever edited.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import tuple_row

# Any fixed number: the advisory lock that serialises schema changes between processes.
_MIGRATION_LOCK = 7_316_001

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE email_queue (
            seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            email_address TEXT NOT NULL,
            first_name TEXT NOT NULL DEFAULT '',
            sequence TEXT NOT NULL,
            email_number INTEGER,
            template_id TEXT NOT NULL,
            scheduled_time TIMESTAMPTZ,
            status TEXT NOT NULL,
            sent_at TIMESTAMPTZ,
            resend_email_id TEXT NOT NULL DEFAULT '',
            error_message TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            variables TEXT NOT NULL DEFAULT '',
            dedupe_key TEXT NOT NULL,
            expires_at TIMESTAMPTZ,
            contact_id TEXT,
            delivery TEXT NOT NULL DEFAULT '',
            claimed_by TEXT,
            claimed_until TIMESTAMPTZ
        );
        CREATE INDEX email_queue_due ON email_queue (status, scheduled_time, seq);
        CREATE INDEX email_queue_message ON email_queue (resend_email_id);
        CREATE INDEX email_queue_email ON email_queue (email_address);
        CREATE INDEX email_queue_dedupe ON email_queue (dedupe_key);
        CREATE TABLE contacts (
            seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            first_name TEXT NOT NULL DEFAULT '',
            last_name TEXT NOT NULL DEFAULT '',
            business_name TEXT NOT NULL DEFAULT '',
            segment TEXT NOT NULL DEFAULT '',
            assessment_score DOUBLE PRECISION,
            assessment_data TEXT NOT NULL DEFAULT '{}',
            meeting_time TIMESTAMPTZ,
            last_event TEXT NOT NULL DEFAULT '',
            unsubscribed BOOLEAN NOT NULL DEFAULT FALSE
        );
        CREATE TABLE email_analytics (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            row_id TEXT NOT NULL,
            email_address TEXT NOT NULL,
            template_id TEXT NOT NULL,
            sequence TEXT NOT NULL,
            outcome TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL,
            resend_email_id TEXT NOT NULL DEFAULT '',
            error_message TEXT NOT NULL DEFAULT '',
            lateness_seconds DOUBLE PRECISION
        );
        CREATE TABLE worker_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            holder TEXT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE templates (
            seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            template_id TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            html_body TEXT NOT NULL,
            text_body TEXT NOT NULL DEFAULT '',
            active BOOLEAN NOT NULL DEFAULT TRUE
        );
        """,
    ),
    (
        2,
        # `notion-queue migrate`: which source rows were copied already, so a re-run or a run
        # after an interruption copies each exactly once.
        """
        CREATE TABLE migrated_rows (
            source TEXT NOT NULL,
            source_id TEXT NOT NULL,
            target_id TEXT NOT NULL,
            PRIMARY KEY (source, source_id)
        );
        """,
    ),
    (
        3,
        # Page-body templates: the page body (JSON blocks) a template is sent from, as in Notion.
        "ALTER TABLE templates ADD COLUMN blocks TEXT NOT NULL DEFAULT '';",
    ),
    (
        4,
        # A contact's time zone (an IANA name as written; checked when used), as on SQLite.
        "ALTER TABLE contacts ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';",
    ),
    (
        5,
        # Resend batches started and not yet marked (store/postgres_batches.py): each held by one
        # worker until `held_until`; its rows carry its key, and no worker claims them meanwhile.
        """
        CREATE TABLE pending_batches (
            idempotency_key TEXT PRIMARY KEY,
            rows JSON NOT NULL,  -- JSON, not JSONB: the emails exactly as sent (header order)
            held_by TEXT NOT NULL,
            held_until TIMESTAMPTZ NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX pending_batches_held ON pending_batches (held_until);
        ALTER TABLE email_queue ADD COLUMN batch_key TEXT;
        CREATE INDEX email_queue_batch ON email_queue (batch_key) WHERE batch_key IS NOT NULL;
        """,
    ),
    (
        6,
        # One row per rate limit every worker shares (store/postgres_pacing.py): the theoretical
        # time of the next request; each worker's slot is taken with one atomic UPDATE.
        """
        CREATE TABLE rate_slots (
            name TEXT PRIMARY KEY,
            next_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
)


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations `conn`'s database lacks; answers the versions applied now."""
    applied: list[int] = []
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = _current(cur)
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            cur.execute(sql.encode())
            cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The newest migration applied to `conn`'s database."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return _current(cur)


def _current(cur: psycopg.Cursor[tuple[Any, ...]]) -> int:
    found = cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(found[0]) if found else 0
