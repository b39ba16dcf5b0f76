"""The production QueueStore: the Email Queue, Templates, Contacts and Workers databases in
Notion.

Database ids (what users copy from Notion URLs) are resolved to their data sources when Notion
first answers (Notion-Version 2025-09-03), not at construction. Every call goes through NotionGateway (pacing, retries).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from notion_client import Client

from notion_queue.clock import Clock
from notion_queue.errors import (
    ConfigError,
    MaybeWritten,
    NotionQueueError,
    PermanentError,
)
from notion_queue.html_blocks import body_hash
from notion_queue.logs import get_logger
from notion_queue.models import Contact, ContactData, NewRow, QueueRow, RowUpdate, Status, Template
from notion_queue.retention import CONTACTS_CACHE_LIMIT
from notion_queue.store import notion_schema as s
from notion_queue.store.base import RowNotFound, UpsertResult
from notion_queue.store.notion_gateway import NotFound, NotionGateway, unshared
from notion_queue.store.notion_lease import NotionLease
from notion_queue.store.notion_pages import PageBodies
from notion_queue.store.notion_template_desk import NotionTemplateDesk

PAGE_SIZE = 100
# A start-up look-up fails fast: its caller (the drainer, the worker's start) waits with its own
# back-off, and /readyz says "store unreachable" meanwhile.
RESOLVE_RETRIES = 1
log = get_logger(__name__)


class NotionStore:
    def __init__(
        self,
        gateway: NotionGateway,
        *,
        email_queue_db_id: str,
        templates_db_id: str,
        contacts_db_id: str,
        workers_db_id: str,
        analytics_db_id: str | None = None,
    ) -> None:
        """Makes no request: the data sources are resolved by connect(), or by the first call
        that needs one, so a process starts (and journals webhooks) while Notion is down."""
        self.gateway = gateway
        self.client: Client = gateway.client
        self._databases: dict[str, tuple[str, str]] = {
            "queue": (email_queue_db_id, "NOTION_EMAIL_QUEUE_DB_ID"),
            "templates": (templates_db_id, "NOTION_TEMPLATES_DB_ID"),
            "contacts": (contacts_db_id, "NOTION_CONTACTS_DB_ID"),
            "workers": (workers_db_id, "NOTION_WORKERS_DB_ID"),
        }
        if analytics_db_id:
            self._databases["analytics"] = (analytics_db_id, "NOTION_ANALYTICS_DB_ID")
        self._data_sources: dict[str, str] = {}
        self._resolving = threading.Lock()
        # What this process knows of contacts, the least recently used dropped past the limit.
        self._contacts: OrderedDict[str, Contact] = OrderedDict()
        self.contacts_cache_limit = CONTACTS_CACHE_LIMIT
        self._lease = NotionLease(gateway, lambda: self.workers_ds)
        self._bodies = PageBodies(gateway)
        self._template_pages: dict[str, dict[str, Any]] = {}  # Template ID → its last read page
        self.template_desk = NotionTemplateDesk(
            gateway,
            lambda: self.templates_ds,
            queue_ds=lambda: self.queue_ds,
            contacts_ds=lambda: self.contacts_ds,
        )

    @property
    def clock(self) -> Clock:
        return self.gateway.clock

    def connect(self) -> None:
        """Resolve every database to its data source (those not resolved yet). Raises
        RetryableError while Notion cannot be reached, ConfigError (a database not found or not
        shared) or AccountError (token refused) when the settings are wrong."""
        with self._resolving:
            for role, (database_id, variable) in self._databases.items():
                if role not in self._data_sources:
                    self._data_sources[role] = self.resolve_data_source(database_id, variable)

    def _data_source(self, role: str) -> str:
        if role not in self._data_sources:
            self.connect()
        return self._data_sources[role]

    @property
    def queue_ds(self) -> str:
        return self._data_source("queue")

    @property
    def templates_ds(self) -> str:
        return self._data_source("templates")

    @property
    def contacts_ds(self) -> str:
        return self._data_source("contacts")

    @property
    def workers_ds(self) -> str:
        return self._data_source("workers")

    @property
    def analytics_ds(self) -> str | None:
        return self._data_source("analytics") if "analytics" in self._databases else None

    def resolve_data_source(self, database_id: str, variable: str) -> str:
        try:
            db = self.gateway.retrieve_database(database_id, max_retries=RESOLVE_RETRIES)
        except NotFound:
            raise ConfigError(
                f"{variable}: database {database_id} not found; check the id and share the "
                "database with the integration"
            ) from None
        except PermanentError as exc:  # 400: not an id Notion accepts
            raise ConfigError(
                f"{variable}: Notion cannot look up database {database_id} ({exc}); use the id "
                "from the database's URL"
            ) from None
        sources = db.get("data_sources") or []
        if not sources:
            raise ConfigError(f"{variable}: database {database_id} has no data source")
        return str(sources[0]["id"])

    def close(self) -> None:
        self.client.close()

    # queries

    def _query(self, data_source_id: str, name: str, **body: Any) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            kwargs = dict(body, page_size=body.get("page_size", PAGE_SIZE))
            if cursor:
                kwargs["start_cursor"] = cursor
            try:
                response = self.gateway.query_data_source(data_source_id, call=name, **kwargs)
            except NotFound as exc:
                raise unshared(data_source_id, exc) from None
            yield from response.get("results", [])
            cursor = response.get("next_cursor")
            if not response.get("has_more") or not cursor:
                return

    def _query_rows(self, **body: Any) -> Iterator[QueueRow]:
        for page in self._query(self.queue_ds, "query", **body):
            yield s.page_to_row(page)

    # rows

    def add_row(self, row: NewRow) -> QueueRow:
        properties = s.new_row_properties(row)
        queue_ds = self.queue_ds
        try:
            page = self.gateway.create_page(queue_ds, properties)
        except NotFound as exc:
            raise unshared(queue_ds, exc) from None
        if "committed_resource_id" in page:
            return self.get_row(page["committed_resource_id"])
        return s.page_to_row(page)

    def add_rows(self, rows: Sequence[NewRow]) -> list[QueueRow]:
        return [self.add_row(row) for row in rows]  # Notion creates one page a request

    def due_rows(
        self, until: datetime, *, page_size: int = PAGE_SIZE, after: QueueRow | None = None
    ) -> Iterator[QueueRow]:
        """`after` resumes at its Scheduled Time (Notion has no keyset on a page id): the rows
        before it are not read; `after` itself is left out, the still queued rows tied with it
        come again (the worker skips those it handled; a row sent left the queue)."""
        conditions: list[dict[str, Any]] = [
            {"property": s.STATUS, "select": {"equals": Status.QUEUED.value}},
            {"property": s.SCHEDULED_TIME, "date": {"on_or_before": s.iso(until)}},
        ]
        if after is not None and after.scheduled_time is not None:
            conditions.append(
                {"property": s.SCHEDULED_TIME, "date": {"on_or_after": s.iso(after.scheduled_time)}}
            )
        rows = self._query_rows(
            filter={"and": conditions},
            # Oldest first within a second, so ties go out in the order they were queued.
            sorts=[
                {"property": s.SCHEDULED_TIME, "direction": "ascending"},
                {"timestamp": "created_time", "direction": "ascending"},
            ],
            page_size=page_size,
        )
        if after is None:
            return rows
        return (row for row in rows if row.id != after.id)

    def find_by_message_id(self, message_id: str) -> QueueRow | None:
        for row in self._query_rows(
            filter={"property": s.RESEND_EMAIL_ID, "rich_text": {"equals": message_id}},
            page_size=1,
        ):
            return row
        return None

    def get_row(self, row_id: str) -> QueueRow:
        try:
            page = self.gateway.retrieve_page(row_id)
        except NotFound:
            raise RowNotFound(f"row {row_id} not found") from None
        if page.get("in_trash") or page.get("archived"):
            raise RowNotFound(f"row {row_id} is in the trash")
        return s.page_to_row(page)

    def update_row(self, row_id: str, update: RowUpdate) -> QueueRow:
        properties = s.update_properties(update)
        try:
            page = self.gateway.update_page(row_id, properties)
        except NotFound:
            raise RowNotFound(f"row {row_id} not found") from None
        return s.page_to_row(page)

    def rows_for_email(
        self,
        email: str,
        *,
        sequence: str | None = None,
        statuses: Collection[Status] | None = None,
    ) -> list[QueueRow]:
        conditions: list[dict[str, Any]] = [
            {"property": s.EMAIL, "email": {"equals": email.strip().lower()}}
        ]
        if sequence is not None:
            conditions.append({"property": s.SEQUENCE, "select": {"equals": sequence}})
        if statuses is not None:
            conditions.append(
                {"or": [{"property": s.STATUS, "select": {"equals": st.value}} for st in statuses]}
            )
        return list(
            self._query_rows(
                filter={"and": conditions},
                sorts=[{"property": s.SCHEDULED_TIME, "direction": "ascending"}],
            )
        )

    def all_rows(self) -> Iterator[QueueRow]:
        return self._query_rows(sorts=[{"timestamp": "created_time", "direction": "ascending"}])

    def sent_rows(self, since: datetime | None = None) -> Iterator[QueueRow]:
        """The report's read: sent rows only (Sent At on or after `since`), 100 a request."""
        condition: dict[str, Any] = {"property": s.STATUS, "select": {"equals": Status.SENT.value}}
        if since is not None:
            condition = {
                "and": [condition, {"property": s.SENT_AT, "date": {"on_or_after": s.iso(since)}}]
            }
        return self._query_rows(
            filter=condition, sorts=[{"property": s.SENT_AT, "direction": "ascending"}]
        )

    def rows_with_status(self, statuses: Collection[Status]) -> Iterator[QueueRow]:
        if not statuses:
            return iter(())
        return self._query_rows(
            filter={
                "or": [{"property": s.STATUS, "select": {"equals": st.value}} for st in statuses]
            },
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
        )

    def status_counts(self) -> dict[tuple[str, str], int] | None:
        return None  # Notion counts nothing: it would mean reading every row, 100 a request

    # contacts

    def find_contact(self, email: str) -> Contact | None:
        """The contact, from what this process already knows or else one query. (A contact
        edited by hand meanwhile is only re-read after a restart; the worker reads the
        Unsubscribed boxes afresh at least once a minute while it sends.)"""
        email = email.strip().lower()
        if email in self._contacts:
            self._contacts.move_to_end(email)
            return self._contacts[email]
        for page in self._query(
            self.contacts_ds,
            "query_contacts",
            filter={"property": "Email", "email": {"equals": email}},
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
            page_size=1,
        ):
            contact = s.page_to_contact(page)
            self._remember(email, contact)
            return contact
        return None

    def all_contacts(self) -> Iterator[Contact]:
        """Every contact, oldest first: for `notion-queue migrate`, not the hot path."""
        for page in self._query(
            self.contacts_ds,
            "query_contacts",
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
        ):
            yield s.page_to_contact(page)

    def _remember(self, email: str, contact: Contact) -> None:
        self._contacts[email] = contact
        self._contacts.move_to_end(email)
        while len(self._contacts) > self.contacts_cache_limit:
            self._contacts.popitem(last=False)

    def upsert_contact(self, data: ContactData) -> tuple[Contact, UpsertResult]:
        email = data.email.strip().lower()
        known = self.find_contact(email)
        props = _contact_properties(data, known)
        if known is not None and not props:
            return known, "unchanged"
        if known is None:
            props.setdefault("Name", s.title(_display_name(data) or email))
            props["Email"] = {"email": email}
            try:
                page = self.gateway.create_page(self.contacts_ds, props, call="create_contact")
            except MaybeWritten:
                found = self.find_contact(email)
                if found is None:
                    raise
                return self.upsert_contact(data)
            if "committed_resource_id" in page:
                found = self.find_contact(email)
                if found is None:
                    raise MaybeWritten("Notion committed a contact that cannot be found yet")
                return found, "created"
        else:
            page = self.gateway.update_page(known.id, props, call="update_contact")
        contact = s.page_to_contact(page)
        self._remember(email, contact)
        return contact, "created" if known is None else "updated"

    def unsubscribed_emails(self) -> set[str]:
        return {
            s.page_to_contact(page).email
            for page in self._query(
                self.contacts_ds,
                "query_contacts",
                filter={"property": "Unsubscribed", "checkbox": {"equals": True}},
            )
        }

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
        analytics_ds = self.analytics_ds
        if analytics_ds is None:
            return
        props: dict[str, Any] = {
            "Name": s.title(f"{row.template_id} → {row.email}: {outcome}"),
            "Email Address": {"email": row.email or None},
            "Template ID": s.text(row.template_id),
            "Sequence": s.select(row.sequence or None),
            "Outcome": s.select(outcome),
            "At": s.date(at),
            "Resend Email ID": s.text(message_id),
            "Error Message": s.error_text(error),
        }
        if lateness_seconds is not None:
            props["Lateness Seconds"] = {"number": round(lateness_seconds, 3)}
        try:
            self.gateway.create_page(analytics_ds, props, call="create_analytics")
        except NotionQueueError as exc:  # analytics never stops a send
            log.warning("analytics_not_recorded", row_id=row.id, reason=str(exc))

    # The lease: a row in the Workers database (store/notion_lease.py).

    def claim_lease(self, holder: str, now: datetime, ttl_seconds: float) -> str | None:
        return self._lease.claim(holder, now, ttl_seconds)

    def release_lease(self, holder: str) -> None:
        self._lease.release(holder, self.clock.now())

    # templates

    def all_templates(self) -> dict[str, Template]:
        """One query for the whole Templates database (the worker's cache refresh). A page body
        is not read here but by page_body, for a template that is used. Where a Template ID is
        on two rows, the older row wins, as in upsert_template."""
        templates: dict[str, Template] = {}
        pages: dict[str, dict[str, Any]] = {}
        for page in self._query(
            self.templates_ds,
            "query_templates",
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
        ):
            template = s.page_to_template(page)
            if not template.template_id or template.template_id in templates:
                continue
            templates[template.template_id] = template
            pages[template.template_id] = page
        self._template_pages = pages
        return templates

    def page_body(self, template_id: str) -> str:
        """Read only when the page's last_edited_time (from the last all_templates) changed
        since it was last read (store/notion_pages.py)."""
        page = self._template_pages.get(template_id)
        return self._bodies.body(page) if page is not None else ""

    def _template_page(self, template_id: str) -> dict[str, Any] | None:
        for page in self._query(
            self.templates_ds,
            "query_templates",
            filter={"property": "Template ID", "title": {"equals": template_id}},
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
            page_size=1,
        ):
            return page
        return None

    def upsert_template(self, template: Template, *, force: bool = False) -> UpsertResult:
        """A template with a page body (`blocks`) is written as the page's content, with its
        Seeded Hash; a page whose content no longer matches the hash it was seeded with was
        edited by a marketer and is kept unless `force`."""
        page = self._template_page(template.template_id)
        blocks: list[dict[str, Any]] = json.loads(template.blocks) if template.blocks else []
        seeded = body_hash(template.subject, template.text, blocks) if blocks else None
        props = s.template_properties(replace(template, blocks=""), seeded)
        if page is None:
            created = self.gateway.create_page(
                self.templates_ds, props, call="create_template", children=blocks[:100]
            )
            if len(blocks) > 100:
                page_id = created.get("id") or created["committed_resource_id"]
                self._bodies.append(str(page_id), blocks[100:])
            return "created"
        current = s.page_to_template(page)
        if seeded is None:  # an HTML template, as before page bodies
            if current == template:
                return "unchanged"
            self.gateway.update_page(page["id"], props, call="update_template")
            return "updated"
        stored = s.read_text(page.get("properties", {}).get("Seeded Hash"))
        if stored == seeded and not force:
            return "unchanged"
        body = self._bodies.read(page["id"])
        now = body_hash(current.subject, current.text, body)
        if (current.html.strip() or now != stored) and not force:
            return "kept"
        if now == seeded and not current.html.strip() and current.active == template.active:
            if stored != seeded:
                self.gateway.update_page(page["id"], props, call="update_template")
            return "unchanged"
        self.gateway.update_page(page["id"], props, call="update_template")
        self._bodies.replace(page["id"], blocks)
        return "updated"


def _display_name(data: ContactData) -> str:
    return " ".join(part for part in (data.first_name, data.last_name) if part)


# Contacts property ← (ContactData / Contact field, how to write it)
_CONTACT_FIELDS: dict[str, tuple[str, Any]] = {
    "First Name": ("first_name", s.text),
    "Last Name": ("last_name", s.text),
    "Business Name": ("business_name", s.text),
    "Segment": ("segment", s.select),
    "Assessment Score": ("assessment_score", lambda v: {"number": v}),
    "Assessment Data": ("assessment_data", lambda v: s.text(json.dumps(v, sort_keys=True))),
    "Meeting Time": ("meeting_time", s.date),
    "Unsubscribed": ("unsubscribed", lambda v: {"checkbox": v}),
    "Last Event": ("last_event", s.text),
    "Time Zone": ("time_zone", s.text),
}


def _contact_properties(data: ContactData, known: Contact | None) -> dict[str, Any]:
    """Only what the event says and Notion does not already hold: a known contact costs no write
    when nothing changed."""
    props: dict[str, Any] = {}
    for name, (attr, write) in _CONTACT_FIELDS.items():
        new = getattr(data, attr)
        if new is not None and (known is None or new != getattr(known, attr)):
            props[name] = write(new)
    if known is None or ("First Name" in props or "Last Name" in props):
        name = _display_name(data)
        if name:
            props["Name"] = s.title(name)
    return s.checked(props)
