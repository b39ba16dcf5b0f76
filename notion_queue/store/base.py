"""The QueueStore port: everything the domain asks of the place where the queue lives.

Adapters: `notion.NotionStore` (production) and `sqlite.SqliteStore` (embedded default). One
contract test suite (tests/test_store_contract.py) runs against both, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Literal, Protocol

from notion_queue.models import (
    Contact,
    ContactData,
    NewRow,
    QueueRow,
    RowUpdate,
    Status,
    Template,
)

UpsertResult = Literal["created", "updated", "unchanged"]


class RowNotFound(LookupError):
    pass


class QueueStore(Protocol):
    def add_row(self, row: NewRow) -> QueueRow:
        """Create one row. Not idempotent by itself: callers look the Dedupe Key up first."""
        ...

    def find_by_dedupe_key(self, dedupe_key: str) -> QueueRow | None: ...

    def due_rows(self, until: datetime, *, page_size: int = 100) -> Iterator[QueueRow]:
        """Rows with Status queued and Scheduled Time on or before `until`, earliest first,
        fetched `page_size` at a time (each page fresh when it is fetched)."""
        ...

    def find_by_message_id(self, message_id: str) -> QueueRow | None:
        """The row sent as this Resend Email ID (for Resend's delivery events)."""
        ...

    def next_scheduled_time(self) -> datetime | None:
        """The earliest Scheduled Time of any queued row, due or not."""
        ...

    def get_row(self, row_id: str) -> QueueRow:
        """The row as it is now; raises RowNotFound when it was deleted."""
        ...

    def update_row(self, row_id: str, update: RowUpdate) -> QueueRow: ...

    def rows_for_email(
        self,
        email: str,
        *,
        sequence: str | None = None,
        statuses: Collection[Status] | None = None,
    ) -> list[QueueRow]: ...

    def all_rows(self) -> Iterator[QueueRow]:
        """Every row, oldest first: for ops commands (status, retry-failed), not the hot path."""
        ...

    def find_contact(self, email: str) -> Contact | None: ...

    def upsert_contact(self, data: ContactData) -> tuple[Contact, UpsertResult]:
        """Create the contact, or update the fields the event tells (None leaves a field);
        answers the contact and whether it was created (the address was new), updated or
        left unchanged."""
        ...

    def unsubscribed_emails(self) -> set[str]:
        """Addresses ticked Unsubscribed (by a link, a bounce, a complaint or a marketer)."""
        ...

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
        """One Email Analytics row per send outcome (Notion: only when NOTION_ANALYTICS_DB_ID
        is set, one request per email). Best effort: never stops a send."""
        ...

    def claim_lease(self, holder: str, now: datetime, ttl_seconds: float) -> str | None:
        """One worker per queue, across hosts: take or renew the queue's lease for `holder`.
        Answers None when `holder` holds it now, else who does (the lease of a worker that
        stopped renewing lapses after `ttl_seconds`)."""
        ...

    def release_lease(self, holder: str) -> None: ...

    def get_template(self, template_id: str) -> Template | None: ...

    def all_templates(self) -> dict[str, Template]:
        """Every template by Template ID, in one read (a Notion query returns 100 a page)."""
        ...

    def upsert_template(self, template: Template) -> UpsertResult: ...

    def close(self) -> None: ...
