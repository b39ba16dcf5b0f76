"""The Notion databases' schema (what the setup script creates) and page ↔ row conversion.

Property names are what marketers see in Notion; DESIGN.md lists them and they do not change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from dateutil import parser as dateparser

from notion_queue.errors import PermanentError
from notion_queue.models import Contact, Delivery, NewRow, QueueRow, RowUpdate, Status, Template

# Email Queue
NAME = "Name"
EMAIL = "Email Address"
FIRST_NAME = "First Name"
SEQUENCE = "Sequence"
EMAIL_NUMBER = "Email Number"
TEMPLATE_ID = "Template ID"
SCHEDULED_TIME = "Scheduled Time"
STATUS = "Status"
SENT_AT = "Sent At"
RESEND_EMAIL_ID = "Resend Email ID"
ERROR_MESSAGE = "Error Message"
ATTEMPTS = "Attempts"
VARIABLES = "Variables"
DEDUPE_KEY = "Dedupe Key"
EXPIRES_AT = "Expires At"
CONTACT = "Contact"
DELIVERY = "Delivery"  # what Resend's webhooks said after sending (not in DESIGN.md's table)
DELIVERY_COLOURS = {
    Delivery.DELAYED: "yellow",
    Delivery.DELIVERED: "green",
    Delivery.OPENED: "blue",
    Delivery.CLICKED: "purple",
    Delivery.BOUNCED: "red",
    Delivery.COMPLAINED: "red",
    Delivery.FAILED: "red",
    Delivery.SUPPRESSED: "gray",
}

STATUS_COLOURS = {
    Status.QUEUED: "blue",
    Status.REVIEW: "pink",
    Status.PAUSED: "yellow",
    Status.WAITING: "orange",
    Status.SENT: "green",
    Status.FAILED: "red",
    Status.CANCELLED: "gray",
    Status.SKIPPED: "brown",
}
# The Sequence options are the catalog's sequences (packaged or SEQUENCES_FILE), coloured in
# catalog order; a row naming a sequence the select lacks still saves: Notion adds the option.
SEQUENCE_PALETTE = (
    "blue",
    "purple",
    "orange",
    "yellow",
    "green",
    "pink",
    "brown",
    "red",
    "gray",
    "default",
)


def sequence_colours(sequences: Iterable[str]) -> dict[str, str]:
    return {
        name: SEQUENCE_PALETTE[index % len(SEQUENCE_PALETTE)]
        for index, name in enumerate(sequences)
    }


# Notion's request limits, counted as JavaScript counts a string's length: in UTF-16 code units,
# so an emoji (or any character outside the Basic Multilingual Plane) counts two.
MAX_TEXT = 2000  # per rich-text item (text.content)
MAX_ITEMS = 100  # rich-text items in one property value
MAX_ERROR_TEXT = MAX_TEXT  # an Error Message longer than one item is cut, visibly


class TextTooLong(PermanentError):
    """A text value longer than one Notion property holds: refused, never cut silently."""


def _options(colours: dict[Any, str]) -> list[dict[str, str]]:
    return [{"name": str(name), "color": colour} for name, colour in colours.items()]


def email_queue_schema(
    contacts_data_source_id: str | None, sequences: Iterable[str] = ()
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        NAME: {"title": {}},
        EMAIL: {"email": {}},
        FIRST_NAME: {"rich_text": {}},
        SEQUENCE: {"select": {"options": _options(sequence_colours(sequences))}},
        EMAIL_NUMBER: {"number": {"format": "number"}},
        TEMPLATE_ID: {"rich_text": {}},
        SCHEDULED_TIME: {"date": {}},
        STATUS: {"select": {"options": _options(STATUS_COLOURS)}},
        SENT_AT: {"date": {}},
        RESEND_EMAIL_ID: {"rich_text": {}},
        ERROR_MESSAGE: {"rich_text": {}},
        ATTEMPTS: {"number": {"format": "number"}},
        VARIABLES: {"rich_text": {}},
        DEDUPE_KEY: {"rich_text": {}},
        EXPIRES_AT: {"date": {}},
        DELIVERY: {"select": {"options": _options(DELIVERY_COLOURS)}},
    }
    if contacts_data_source_id:
        schema[CONTACT] = {
            "relation": {
                "data_source_id": contacts_data_source_id,
                "type": "single_property",
                "single_property": {},
            }
        }
    return schema


# Templates: preview and test send (issue 13 §2; test_sends.py and store/notion_template_desk.py)
PREVIEW = "Preview"  # url: the signed GET /preview/<template id> link, kept filled by the worker
SEND_TEST_TO = "Send Test To"  # email: a marketer types an address; the worker sends, clears it
LAST_TEST = "Last Test"  # date: when the worker answered the last test request
TEST_RESULT = "Test Result"  # rich_text: "sent to … (id …)" or why not
# How the template performs (template_counts.py: the worker writes them, at most every 10 min)
COUNT_PROPERTIES = {
    "sent": "Sent",
    "delivered": "Delivered",
    "opened": "Opened",
    "clicked": "Clicked",
    "bounced": "Bounced",
    "complained": "Complained",
    "unsubscribed": "Unsubscribed",
}
COUNTS_UPDATED = "Counts Updated"  # date: when the worker last changed the counts

TEMPLATES_SCHEMA: dict[str, Any] = {
    "Template ID": {"title": {}},
    "Subject": {"rich_text": {}},
    "HTML Body": {"rich_text": {}},
    "Text Body": {"rich_text": {}},
    "Active": {"checkbox": {}},
    "Seeded Hash": {"rich_text": {}},  # what seed_templates.py wrote (html_blocks.body_hash)
    PREVIEW: {"url": {}},
    SEND_TEST_TO: {"email": {}},
    LAST_TEST: {"date": {}},
    TEST_RESULT: {"rich_text": {}},
    **{name: {"number": {"format": "number"}} for name in COUNT_PROPERTIES.values()},
    COUNTS_UPDATED: {"date": {}},
}

CONTACTS_SCHEMA: dict[str, Any] = {
    "Name": {"title": {}},
    "Email": {"email": {}},
    "First Name": {"rich_text": {}},
    "Last Name": {"rich_text": {}},
    "Business Name": {"rich_text": {}},
    "Assessment Score": {"number": {"format": "number"}},
    "Assessment Data": {"rich_text": {}},
    "Segment": {
        "select": {
            "options": [
                {"name": "CRITICAL", "color": "red"},
                {"name": "URGENT", "color": "orange"},
                {"name": "OPTIMIZE", "color": "green"},
            ]
        }
    },
    "Unsubscribed": {"checkbox": {}},
    "Last Event": {"rich_text": {}},
    "Meeting Time": {"date": {}},
    "Time Zone": {"rich_text": {}},  # an IANA name (Europe/Berlin): the times in their emails
}


def analytics_schema(sequences: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "Name": {"title": {}},
        "Email Address": {"email": {}},
        "Template ID": {"rich_text": {}},
        "Sequence": {"select": {"options": _options(sequence_colours(sequences))}},
        "Outcome": {"select": {"options": _options(STATUS_COLOURS)}},
        "At": {"date": {}},
        "Resend Email ID": {"rich_text": {}},
        "Error Message": {"rich_text": {}},
        "Lateness Seconds": {"number": {"format": "number"}},
    }


# Workers: the queue's lease, one row a marketer can read as "this worker sends this queue
# until ..." (store/notion_lease.py reads and writes it).
WORKER_QUEUE = "Queue"
WORKER_HOLDER = "Holder"
LEASE_UNTIL = "Lease Until"
RENEWED_AT = "Renewed At"
WORKERS_SCHEMA: dict[str, Any] = {
    WORKER_QUEUE: {"title": {}},
    WORKER_HOLDER: {"rich_text": {}},
    LEASE_UNTIL: {"date": {}},
    RENEWED_AT: {"date": {}},
}


# Writing values


def utf16_length(value: str) -> int:
    """The length Notion checks: UTF-16 code units."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def _width(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _pieces(value: str, size: int = MAX_TEXT) -> list[str]:
    """`value` in pieces of at most `size` UTF-16 units, never splitting a surrogate pair."""
    if utf16_length(value) == len(value):  # no character outside the BMP: plain slicing
        return [value[i : i + size] for i in range(0, len(value), size)]
    pieces: list[str] = []
    start = units = 0
    for i, char in enumerate(value):
        if units + _width(char) > size:
            pieces.append(value[start:i])
            start, units = i, 0
        units += _width(char)
    if start < len(value):
        pieces.append(value[start:])
    return pieces


def _cut(value: str, units: int, marker: str) -> str:
    """`value` if it fits in `units`, else its start and `marker`, within `units` in all."""
    if utf16_length(value) <= units:
        return value
    return _pieces(value, units - utf16_length(marker))[0] + marker


def text(value: str) -> dict[str, Any]:
    """A rich_text value: long text is split into items Notion takes (see MAX_TEXT). More than
    MAX_ITEMS items is refused by `checked`, which knows the property's name."""
    return {"rich_text": [{"text": {"content": piece}} for piece in _pieces(value)]}


def error_text(value: str) -> dict[str, Any]:
    """An Error Message: what went wrong must reach the row, so a huge one is cut, saying so."""
    marker = f" … (cut: the whole message is {len(value)} characters)"
    return text(_cut(value, MAX_ERROR_TEXT, marker))


def checked(props: dict[str, Any]) -> dict[str, Any]:
    """`props`, after refusing (naming the property) a text value Notion would not hold."""
    for name, value in props.items():
        items = value.get("rich_text") if isinstance(value, dict) else None
        if items is not None and len(items) > MAX_ITEMS:
            length = sum(utf16_length(item["text"]["content"]) for item in items)
            raise TextTooLong(
                f"{name} is too long for Notion: {length} characters (UTF-16 units) where a "
                f"property holds {MAX_ITEMS} rich-text items of {MAX_TEXT}; shorten it"
            )
    return props


def title(value: str) -> dict[str, Any]:
    """A title is a label made from other values: a long one is cut to one item, with "…"."""
    return {"title": [{"text": {"content": _cut(value, MAX_TEXT, "…")}}]}


def iso(value: datetime) -> str:
    """Notion's form of a time: UTC, to the millisecond, with Z."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def date(value: datetime | None) -> dict[str, Any]:
    if value is None:
        return {"date": None}
    if value.tzinfo is None:
        raise ValueError("naive datetime: every time in the queue must carry a timezone")
    return {"date": {"start": iso(value)}}


def select(value: str | None) -> dict[str, Any]:
    return {"select": {"name": value} if value else None}


def new_row_properties(row: NewRow) -> dict[str, Any]:
    props: dict[str, Any] = {
        NAME: title(row.name),
        EMAIL: {"email": row.email},
        FIRST_NAME: text(row.first_name),
        SEQUENCE: select(row.sequence),
        EMAIL_NUMBER: {"number": row.email_number},
        TEMPLATE_ID: text(row.template_id),
        SCHEDULED_TIME: date(row.scheduled_time),
        STATUS: select(row.status.value),
        ATTEMPTS: {"number": 0},
        VARIABLES: text(row.variables_json()),
        DEDUPE_KEY: text(row.dedupe_key),
    }
    if row.expires_at is not None:
        props[EXPIRES_AT] = date(row.expires_at)
    if row.sent_at is not None:
        props[SENT_AT] = date(row.sent_at)
    if row.error_message:
        props[ERROR_MESSAGE] = error_text(row.error_message)
    if row.contact_id:
        props[CONTACT] = {"relation": [{"id": row.contact_id}]}
    return checked(props)


def update_properties(update: RowUpdate) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if update.status is not None:
        props[STATUS] = select(update.status.value)
    if update.sent_at is not None:
        props[SENT_AT] = date(update.sent_at)
    if update.resend_email_id is not None:
        props[RESEND_EMAIL_ID] = text(update.resend_email_id)
    if update.error_message is not None:
        props[ERROR_MESSAGE] = error_text(update.error_message)
    if update.attempts is not None:
        props[ATTEMPTS] = {"number": update.attempts}
    if update.scheduled_time is not None:
        props[SCHEDULED_TIME] = date(update.scheduled_time)
    if update.expires_at is not None:
        props[EXPIRES_AT] = date(update.expires_at)
    if update.delivery is not None:
        props[DELIVERY] = select(update.delivery)
    return checked(props)


def template_properties(template: Template, seeded_hash: str | None = None) -> dict[str, Any]:
    props = {
        "Template ID": title(template.template_id),
        "Subject": text(template.subject),
        "HTML Body": text(template.html),
        "Text Body": text(template.text),
        "Active": {"checkbox": template.active},
    }
    if seeded_hash is not None:
        props["Seeded Hash"] = text(seeded_hash)
    return checked(props)


# Reading values


def read_text(prop: dict[str, Any] | None) -> str:
    if not prop:
        return ""
    items = prop.get(prop.get("type", ""), None)
    if items is None:
        items = prop.get("rich_text") or prop.get("title") or []
    return "".join(
        item.get("plain_text") or item.get("text", {}).get("content", "") for item in items
    )


def read_select(prop: dict[str, Any] | None) -> str:
    value = (prop or {}).get("select")
    return str(value.get("name", "")) if value else ""


def read_date(prop: dict[str, Any] | None) -> datetime | None:
    value = (prop or {}).get("date")
    if not value or not value.get("start"):
        return None
    parsed = dateparser.isoparse(value["start"])
    if parsed.tzinfo is None:
        # A date typed without a time, or a local time with time_zone: read it as UTC unless
        # Notion said which zone; a queue must never hold a naive time.
        from zoneinfo import ZoneInfo

        zone = value.get("time_zone")
        parsed = parsed.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    return parsed.astimezone(UTC)


def read_number(prop: dict[str, Any] | None) -> float | None:
    value = (prop or {}).get("number")
    return float(value) if isinstance(value, int | float) else None


def read_email(prop: dict[str, Any] | None) -> str:
    return str((prop or {}).get("email") or "")


def read_checkbox(prop: dict[str, Any] | None) -> bool:
    return bool((prop or {}).get("checkbox"))


def read_relation(prop: dict[str, Any] | None) -> str | None:
    items = (prop or {}).get("relation") or []
    return str(items[0]["id"]) if items else None


def page_to_row(page: dict[str, Any]) -> QueueRow:
    p = page.get("properties", {})
    number = read_number(p.get(EMAIL_NUMBER))
    return QueueRow(
        id=page["id"],
        email=read_email(p.get(EMAIL)).strip(),
        first_name=read_text(p.get(FIRST_NAME)).strip(),
        sequence=read_select(p.get(SEQUENCE)),
        email_number=int(number) if number is not None else None,
        template_id=read_text(p.get(TEMPLATE_ID)).strip(),
        scheduled_time=read_date(p.get(SCHEDULED_TIME)),
        status_text=read_select(p.get(STATUS)),
        dedupe_key=read_text(p.get(DEDUPE_KEY)),
        variables_text=read_text(p.get(VARIABLES)),
        attempts=int(read_number(p.get(ATTEMPTS)) or 0),
        expires_at=read_date(p.get(EXPIRES_AT)),
        sent_at=read_date(p.get(SENT_AT)),
        resend_email_id=read_text(p.get(RESEND_EMAIL_ID)),
        error_message=read_text(p.get(ERROR_MESSAGE)),
        contact_id=read_relation(p.get(CONTACT)),
        delivery=read_select(p.get(DELIVERY)),
    )


def page_to_template(page: dict[str, Any]) -> Template:
    p = page.get("properties", {})
    return Template(
        template_id=read_text(p.get("Template ID")).strip(),
        subject=read_text(p.get("Subject")),
        html=read_text(p.get("HTML Body")),
        text=read_text(p.get("Text Body")),
        active=read_checkbox(p.get("Active")),
    )


def page_to_contact(page: dict[str, Any]) -> Contact:
    p = page.get("properties", {})
    raw_data = read_text(p.get("Assessment Data"))
    try:
        assessment = json.loads(raw_data) if raw_data else {}
    except json.JSONDecodeError:
        assessment = {}
    return Contact(
        id=page["id"],
        email=read_email(p.get("Email")).strip().lower(),
        first_name=read_text(p.get("First Name")),
        last_name=read_text(p.get("Last Name")),
        business_name=read_text(p.get("Business Name")),
        segment=read_select(p.get("Segment")),
        assessment_score=read_number(p.get("Assessment Score")),
        assessment_data=assessment if isinstance(assessment, dict) else {},
        meeting_time=read_date(p.get("Meeting Time")),
        last_event=read_text(p.get("Last Event")),
        unsubscribed=read_checkbox(p.get("Unsubscribed")),
        time_zone=read_text(p.get("Time Zone")).strip(),
    )
