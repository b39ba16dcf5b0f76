"""The store's roles: what the domain asks of the place where the queue lives, one Protocol per
concern, so each consumer names only the role(s) it uses.

- RowQueue: the Email Queue rows (intake adds them, the worker sends them, the CLI edits them)
- ContactBook: the Contacts (intake upserts them, the worker reads who unsubscribed)
- TemplateStore: the Templates (TemplateSource reads them, seeding writes them)
- OutcomeLog: one Email Analytics row per send outcome (the worker)
- QueueLease: one worker per queue, across hosts (the worker)
- RowClaims: several workers per queue, each claiming rows for a while (PostgreSQL only; a
  worker uses it instead of the lease when its store has it)

QueueStore is all five and close(): what wiring builds and hands out. Adapters implement every
role: `notion.NotionStore` (production) and `sqlite.SqliteStore` (embedded default). One contract
test suite (tests/test_store_contract.py) runs every role against both, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from notion_queue.models import (
    Contact,
    ContactData,
    NewRow,
    QueueRow,
    RowUpdate,
    Status,
    Template,
)

# "kept": a template page a marketer edited since it was seeded, left as it is (seeding)
UpsertResult = Literal["created", "updated", "unchanged", "kept"]


class RowNotFound(LookupError):
    pass


class RowQueue(Protocol):
    """The Email Queue: one row per email to send."""

    def add_row(self, row: NewRow) -> QueueRow:
        """Create one row. Not idempotent by itself: callers look at the address's rows first."""
        ...

    def add_rows(self, rows: Sequence[NewRow]) -> list[QueueRow]:
        """Create the rows of one event, in order: SQLite in one transaction (one fsync),
        Notion one create per row (its API creates one page a request)."""
        ...

    def due_rows(
        self, until: datetime, *, page_size: int = 100, after: QueueRow | None = None
    ) -> Iterator[QueueRow]:
        """Rows with Status queued and Scheduled Time on or before `until`, earliest first (ties
        in the order they were queued), fetched `page_size` at a time, each page fresh when it
        is reached. `after` resumes behind a row read before (keyset paging: rows the caller
        handled are not read again; a store that cannot order ties exactly may repeat the rows
        that share its Scheduled Time, never skip one)."""
        ...

    def find_by_message_id(self, message_id: str) -> QueueRow | None:
        """The row sent as this Resend Email ID (for Resend's delivery events)."""
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
        """Every row, oldest first: for ops commands (retry-failed), not the hot path."""
        ...

    def rows_with_status(self, statuses: Collection[Status]) -> Iterator[QueueRow]:
        """The rows with one of these statuses, oldest first: one query (Notion: a page per 100
        rows found), whatever the rest of the history holds."""
        ...

    def status_counts(self) -> dict[tuple[str, str], int] | None:
        """Rows by (sequence, status), when the store counts them without reading every row
        (SQLite: one query); None when it cannot (Notion has no count)."""
        ...


class ContactBook(Protocol):
    """The Contacts: one per address, with what the events told about it."""

    def upsert_contact(self, data: ContactData) -> tuple[Contact, UpsertResult]:
        """Create the contact, or update the fields the event tells (None leaves a field);
        answers the contact and whether it was created (the address was new), updated or
        left unchanged."""
        ...

    def unsubscribed_emails(self) -> set[str]:
        """Addresses ticked Unsubscribed (by a link, a bounce, a complaint or a marketer)."""
        ...


class TemplateStore(Protocol):
    """The Templates a marketer edits (the packaged ones are the fallback)."""

    def all_templates(self) -> dict[str, Template]:
        """Every template by Template ID, in one read (a Notion query returns 100 a page)."""
        ...

    def page_body(self, template_id: str) -> str:
        """The page body (JSON blocks) of a template all_templates answered without one: Notion
        reads a page only when it changed since it was last read. "" when there is none."""
        ...

    def upsert_template(self, template: Template, *, force: bool = False) -> UpsertResult:
        """By Template ID. A page body a marketer edited since it was seeded is "kept" unless
        `force`."""
        ...


class OutcomeLog(Protocol):
    """Send outcomes, for analytics."""

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
        is set, one request per email; SQLite: always, in its email_analytics table). Best
        effort: never stops a send."""
        ...


@dataclass(frozen=True)
class OutcomeRecord:
    """One Email Analytics row, as `OutcomeLog.record_outcome` takes it."""

    outcome: str
    at: datetime
    message_id: str = ""
    error: str = ""
    lateness_seconds: float | None = None


@runtime_checkable
class RecordedUpdates(Protocol):
    """A store that writes a row's change and its outcome in one transaction (SQLite: one commit,
    one fsync, where update_row and record_outcome took two). Stores without it get the two
    calls (transitions.change_status_recorded)."""

    def update_row_recorded(
        self, row: QueueRow, update: RowUpdate, outcome: OutcomeRecord
    ) -> QueueRow:
        """update_row(row.id, update) and record_outcome(row, ...) at once: both or neither
        (RowNotFound, as update_row, when the row is gone)."""
        ...

    def update_rows_recorded(
        self, changes: Sequence[tuple[QueueRow, RowUpdate, OutcomeRecord]]
    ) -> list[BaseException | None]:
        """Many update_row_recorded in one transaction, each still both or neither: for each,
        None when it was written, or what stopped it (RowNotFound: the row is gone)."""
        ...


class QueueLease(Protocol):
    """One worker per queue, across hosts."""

    def claim_lease(self, holder: str, now: datetime, ttl_seconds: float) -> str | None:
        """Take or renew the queue's lease for `holder`. Answers None when `holder` holds it
        now, else who does (the lease of a worker that stopped renewing lapses after
        `ttl_seconds`)."""
        ...

    def release_lease(self, holder: str) -> None:
        """Give the lease up now, if `holder` holds it; else change nothing."""
        ...


@runtime_checkable
class RowClaims(Protocol):
    """Several workers on one queue: each claims due rows for a while; no two hold a row."""

    def claim_due(
        self,
        worker: str,
        now: datetime,
        limit: int,
        ttl_seconds: float,
        *,
        skip: Collection[str] = (),
    ) -> list[QueueRow]:
        """Up to `limit` due queued rows, earliest first, none of `skip`, that no other worker
        holds (or whose claim lapsed), now held by `worker` until `now + ttl_seconds`. A Status
        change (the worker marking the row) releases the claim; a killed worker's lapse."""
        ...

    def next_due_time(self, after: datetime) -> datetime | None:
        """When the next queued row may be claimed after `after` (its Scheduled Time, or the
        end of its current claim), or None."""
        ...


class QueueStore(RowQueue, ContactBook, TemplateStore, OutcomeLog, QueueLease, Protocol):
    """Every role, and the connection's end: what wiring builds and closes."""

    def close(self) -> None: ...
