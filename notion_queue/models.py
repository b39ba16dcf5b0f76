"""The queue's nouns: row statuses, rows as intake writes them and as the worker reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from notion_queue.addresses import address_problem


def utc_text(value: datetime) -> str:
    """A time as people read it in Error Messages: "2025-12-03 14:00 UTC" (in UTC, whatever
    offset the sender gave it)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def is_valid_email(address: str) -> bool:
    """One rule for webhooks and for addresses a marketer typed into a row (see addresses)."""
    return address_problem(address) is None


class Status(StrEnum):
    """The Status select of an Email Queue row. Names are what marketers see in Notion."""

    QUEUED = "queued"  # waiting for its Scheduled Time; the only status the worker sends
    # A review sequence's row waits for a marketer: setting it to queued approves it.
    REVIEW = "review"
    PAUSED = "paused"  # a marketer held it; flipping back to queued resumes it
    # The system holds it: a rebooking is pending (the host asked the guest to rebook); a
    # reschedule requeues it, a cancellation cancels it. `notion-queue resume` leaves it alone.
    WAITING = "waiting"
    SENT = "sent"  # delivered to the mailer; Sent At and Resend Email ID are set
    FAILED = "failed"  # will not be sent; Error Message says why and what to fix
    CANCELLED = "cancelled"  # an exit rule or unsubscribe ended it; Error Message says why
    SKIPPED = "skipped"  # its moment passed (Expires At) before it could be sent


ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.REVIEW, Status.PAUSED, Status.WAITING})

# Every Status change notion-queue writes passes this table (notion_queue.transitions).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset(
        {
            Status.PAUSED,
            Status.WAITING,
            Status.SENT,
            Status.FAILED,
            Status.CANCELLED,
            Status.SKIPPED,
        }
    ),
    # Approved (queued) or turned down (cancelled); a reschedule that comes too late skips it.
    Status.REVIEW: frozenset({Status.QUEUED, Status.CANCELLED, Status.SKIPPED}),
    Status.PAUSED: frozenset({Status.QUEUED, Status.CANCELLED}),
    # The new booking time requeues it (or skips it when that is already too late).
    Status.WAITING: frozenset({Status.QUEUED, Status.SKIPPED, Status.CANCELLED}),
    # A marketer may requeue a failed row once it is fixed.
    Status.FAILED: frozenset({Status.QUEUED, Status.CANCELLED}),
    Status.SENT: frozenset(),
    Status.CANCELLED: frozenset({Status.QUEUED}),
    # A rescheduled meeting brings a reminder that was too late back to life.
    Status.SKIPPED: frozenset({Status.QUEUED, Status.CANCELLED}),
}


def can_transition(current: Status | None, new: Status) -> bool:
    """Whether a row may go from `current` to `new`. A row whose Status is not a status (None:
    a marketer typed something else) may only be failed, with a message saying what to fix."""
    if current is None:
        return new is Status.FAILED
    return new == current or new in TRANSITIONS[current]


def parse_status(value: str | None) -> Status | None:
    """The Status of a row, or None when a marketer typed something that is not a status."""
    if value is None:
        return None
    try:
        return Status(value.strip().lower())
    except ValueError:
        return None


@dataclass(frozen=True)
class NewRow:
    """One scheduled email, as intake creates it."""

    email: str
    first_name: str
    sequence: str
    email_number: int
    template_id: str
    scheduled_time: datetime
    dedupe_key: str
    variables: dict[str, Any] = field(default_factory=dict)
    status: Status = Status.QUEUED
    expires_at: datetime | None = None
    contact_id: str | None = None
    sent_at: datetime | None = None
    error_message: str = ""

    @property
    def name(self) -> str:
        return f"{self.template_id} → {self.email}"

    def variables_json(self) -> str:
        return json.dumps(self.variables, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class QueueRow:
    """A row as read back from the store.

    Fields a marketer can edit keep what is really there (an empty email, an unknown status, a
    missing Scheduled Time) so the worker can fail such a row with a message that says what to fix.
    """

    id: str
    email: str
    first_name: str
    sequence: str
    email_number: int | None
    template_id: str
    scheduled_time: datetime | None
    status_text: str
    dedupe_key: str
    variables_text: str = ""
    attempts: int = 0
    expires_at: datetime | None = None
    sent_at: datetime | None = None
    resend_email_id: str = ""
    error_message: str = ""
    contact_id: str | None = None
    delivery: str = ""

    @property
    def status(self) -> Status | None:
        return parse_status(self.status_text)

    def variables(self) -> dict[str, Any]:
        """The captured template variables; raises ValueError when the JSON was broken by hand."""
        if not self.variables_text.strip():
            return {}
        value = json.loads(self.variables_text)
        if not isinstance(value, dict):
            raise ValueError("Variables must be a JSON object")
        return value


@dataclass(frozen=True)
class RowUpdate:
    """The properties to change on a row; None leaves a property as it is."""

    status: Status | None = None
    sent_at: datetime | None = None
    resend_email_id: str | None = None
    error_message: str | None = None
    attempts: int | None = None
    scheduled_time: datetime | None = None
    expires_at: datetime | None = None
    delivery: Delivery | None = None


class Delivery(StrEnum):
    """The Delivery select of a sent row: what Resend's webhooks said happened after sending."""

    DELAYED = "delayed"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    FAILED = "failed"
    SUPPRESSED = "suppressed"

    @property
    def rank(self) -> int:
        return DELIVERY_RANK[self]


# Most final last; a row's Delivery never goes backwards: a late "delivered" never hides an
# "opened", but a bounce or complaint always shows.
DELIVERY_RANK: dict[Delivery, int] = {
    Delivery.DELAYED: 1,
    Delivery.DELIVERED: 2,
    Delivery.OPENED: 3,
    Delivery.CLICKED: 4,
    Delivery.BOUNCED: 5,
    Delivery.COMPLAINED: 5,
    Delivery.FAILED: 5,
    Delivery.SUPPRESSED: 5,
}


def delivery_advances(current_text: str, new: Delivery) -> bool:
    """Whether `new` may replace the Delivery a row shows (empty, or anything a marketer typed
    that is not a state, counts as nothing yet)."""
    try:
        current = Delivery(current_text.strip().lower())
    except ValueError:
        return True
    return new.rank >= current.rank


@dataclass(frozen=True)
class ContactData:
    """What an event tells about a person; None means the event did not say."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    business_name: str | None = None
    segment: str | None = None
    assessment_score: float | None = None
    assessment_data: dict[str, Any] | None = None
    meeting_time: datetime | None = None
    last_event: str | None = None
    unsubscribed: bool | None = None
    time_zone: str | None = None  # an IANA name, checked before it gets here


@dataclass(frozen=True)
class Contact:
    id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    business_name: str = ""
    segment: str = ""
    assessment_score: float | None = None
    assessment_data: dict[str, Any] = field(default_factory=dict)
    meeting_time: datetime | None = None
    last_event: str = ""
    unsubscribed: bool = False
    time_zone: str = ""  # as typed in Notion: checked when used (timezones.contact_zone)


@dataclass(frozen=True)
class Template:
    template_id: str
    subject: str
    html: str
    text: str = ""
    active: bool = True
    # The page body as JSON blocks (blocks_email.py): the email when `html` is empty.
    blocks: str = ""
