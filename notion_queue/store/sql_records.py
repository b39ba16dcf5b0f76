"""The SQL stores' columns ↔ the queue's nouns, written once for SQLite and PostgreSQL.

Both keep the same tables and column names; they differ only in how a time is stored (ISO text
in SQLite, `timestamptz` in PostgreSQL), so each passes its own time codec.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from notion_queue.models import Contact, NewRow, QueueRow, RowUpdate, Template
from notion_queue.store.base import OutcomeRecord


class Record(Protocol):
    """A result row read by column name (sqlite3.Row, a psycopg dict row)."""

    def __getitem__(self, key: str, /) -> Any: ...


ReadTime = Callable[[Any], datetime | None]
WriteTime = Callable[[datetime | None], Any]


def template_from(r: Record) -> Template:
    return Template(
        template_id=r["template_id"],
        subject=r["subject"],
        html=r["html_body"],
        text=r["text_body"],
        active=bool(r["active"]),
        blocks=r["blocks"],
    )


def row_from(r: Record, read_time: ReadTime) -> QueueRow:
    return QueueRow(
        id=r["id"],
        email=r["email_address"],
        first_name=r["first_name"],
        sequence=r["sequence"],
        email_number=r["email_number"],
        template_id=r["template_id"],
        scheduled_time=read_time(r["scheduled_time"]),
        status_text=r["status"],
        dedupe_key=r["dedupe_key"],
        variables_text=r["variables"],
        attempts=r["attempts"],
        expires_at=read_time(r["expires_at"]),
        sent_at=read_time(r["sent_at"]),
        resend_email_id=r["resend_email_id"],
        error_message=r["error_message"],
        contact_id=r["contact_id"],
        delivery=r["delivery"],
    )


def contact_from(r: Record, read_time: ReadTime) -> Contact:
    return Contact(
        id=r["id"],
        email=r["email"],
        first_name=r["first_name"],
        last_name=r["last_name"],
        business_name=r["business_name"],
        segment=r["segment"],
        assessment_score=r["assessment_score"],
        assessment_data=json.loads(r["assessment_data"] or "{}"),
        meeting_time=read_time(r["meeting_time"]),
        last_event=r["last_event"],
        unsubscribed=bool(r["unsubscribed"]),
        time_zone=r["time_zone"],
    )


def update_columns(update: RowUpdate, write_time: WriteTime) -> dict[str, Any]:
    """The columns a RowUpdate sets (None leaves a column as it is)."""
    columns = {
        "status": update.status.value if update.status else None,
        "sent_at": write_time(update.sent_at),
        "resend_email_id": update.resend_email_id,
        "error_message": update.error_message,
        "attempts": update.attempts,
        "scheduled_time": write_time(update.scheduled_time),
        "expires_at": write_time(update.expires_at),
        "delivery": update.delivery,
    }
    return {k: v for k, v in columns.items() if v is not None}


def row_values(row_id: str, row: NewRow, write_time: WriteTime) -> tuple[Any, ...]:
    """A new row's columns in the order both stores' INSERT INTO email_queue names them."""
    return (
        row_id,
        row.name,
        row.email,
        row.first_name,
        row.sequence,
        row.email_number,
        row.template_id,
        write_time(row.scheduled_time),
        row.status.value,
        write_time(row.sent_at),
        row.error_message,
        row.variables_json(),
        row.dedupe_key,
        write_time(row.expires_at),
        row.contact_id,
    )


def outcome_values(row: QueueRow, record: OutcomeRecord, write_time: WriteTime) -> tuple[Any, ...]:
    """An analytics row's columns: row_id, email_address, template_id, sequence, outcome, at,
    resend_email_id, error_message, lateness_seconds."""
    return (
        row.id,
        row.email,
        row.template_id,
        row.sequence,
        record.outcome,
        write_time(record.at),
        record.message_id,
        record.error,
        record.lateness_seconds,
    )
