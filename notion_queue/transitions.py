"""The one door every Status change goes through.

Whoever changes a row's Status (the worker marking it sent, failed, skipped or cancelled; intake
cancelling, holding or moving rows; the CLI's pause, resume, cancel and retry-failed) calls
`change_status` with the row as it read it (the worker ending a row calls
`change_status_recorded`, which writes the outcome's analytics row with it). The change is
written only when the status table (`models.TRANSITIONS`) allows `current → new`; otherwise
nothing is written and `status_change_refused` is logged. tests/test_transitions.py checks that
no other module builds a RowUpdate that sets a Status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from notion_queue.logs import get_logger
from notion_queue.models import QueueRow, RowUpdate, Status, can_transition
from notion_queue.store.base import OutcomeLog, OutcomeRecord, RecordedUpdates

log = get_logger(__name__)


class RowWriter(Protocol):
    def update_row(self, row_id: str, update: RowUpdate) -> QueueRow: ...


class RecordingWriter(RowWriter, OutcomeLog, Protocol):
    """A store that writes rows and their outcomes (the worker's)."""


def change_status(
    store: RowWriter,
    row: QueueRow,
    new: Status,
    *,
    error_message: str | None = None,
    sent_at: datetime | None = None,
    resend_email_id: str | None = None,
    attempts: int | None = None,
    scheduled_time: datetime | None = None,
    expires_at: datetime | None = None,
) -> QueueRow | None:
    """Set `row`'s Status to `new` with the other changes, when the table allows it from the
    status `row` has. Returns the row as written, or None when the change was refused."""
    if not _allowed(row, new):
        return None
    return store.update_row(
        row.id,
        RowUpdate(
            status=new,
            error_message=error_message,
            sent_at=sent_at,
            resend_email_id=resend_email_id,
            attempts=attempts,
            scheduled_time=scheduled_time,
            expires_at=expires_at,
        ),
    )


def change_status_recorded(
    store: RecordingWriter,
    row: QueueRow,
    new: Status,
    outcome: OutcomeRecord,
    *,
    error_message: str | None = None,
    sent_at: datetime | None = None,
    resend_email_id: str | None = None,
    attempts: int | None = None,
) -> QueueRow | None:
    """change_status, and the outcome's analytics row when the change is written: in one
    transaction where the store has them (SQLite: one commit, one fsync), else as the two
    calls. The worker's way to end a row."""
    if not _allowed(row, new):
        return None
    update = RowUpdate(
        status=new,
        error_message=error_message,
        sent_at=sent_at,
        resend_email_id=resend_email_id,
        attempts=attempts,
    )
    if isinstance(store, RecordedUpdates):
        return store.update_row_recorded(row, update, outcome)
    written = store.update_row(row.id, update)
    store.record_outcome(
        row,
        outcome.outcome,
        outcome.at,
        message_id=outcome.message_id,
        error=outcome.error,
        lateness_seconds=outcome.lateness_seconds,
    )
    return written


@dataclass(frozen=True)
class RecordedChange:
    """One change_status_recorded, for change_statuses_recorded."""

    row: QueueRow
    new: Status
    outcome: OutcomeRecord
    sent_at: datetime | None = None
    resend_email_id: str | None = None
    error_message: str | None = None
    attempts: int | None = None


def change_statuses_recorded(
    store: RecordedUpdates, changes: Sequence[RecordedChange]
) -> list[bool | BaseException]:
    """change_status_recorded for each change, in one transaction (one commit, one fsync, for a
    whole batch of sent rows). For each: True when written, False when the table refused it,
    or what stopped it (RowNotFound: the row is gone); the others are written all the same."""
    allowed = [change for change in changes if _allowed(change.row, change.new)]
    errors = iter(
        store.update_rows_recorded(
            [
                (
                    change.row,
                    RowUpdate(
                        status=change.new,
                        error_message=change.error_message,
                        sent_at=change.sent_at,
                        resend_email_id=change.resend_email_id,
                        attempts=change.attempts,
                    ),
                    change.outcome,
                )
                for change in allowed
            ]
        )
    )
    allowed_ids = {id(change) for change in allowed}
    return [(next(errors) or True) if id(change) in allowed_ids else False for change in changes]


def _allowed(row: QueueRow, new: Status) -> bool:
    if can_transition(row.status, new):
        return True
    log.warning(
        "status_change_refused",
        row_id=row.id,
        sequence=row.sequence,
        current=row.status_text,
        new=new.value,
    )
    return False
