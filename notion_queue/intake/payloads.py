"""Webhook payload models. They accept the seed documents' example payloads as they are;
extra fields are kept here, and only those the catalog declares reach an email
(see notion_queue.event_fields)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from dateutil import parser as dateparser
from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from notion_queue.addresses import canonical_email


def normalise_email(value: object) -> str:
    """The address as stored and sent (see notion_queue.addresses); ValueError saying why not."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.strip():
        raise ValueError("is required")
    return canonical_email(value)


# Times a funnel can mean; anything else is a typo or an attack (and year 1 or 9999 would
# overflow when a sequence adds its offsets).
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def parse_time(value: object) -> datetime:
    """An ISO 8601 time with a timezone (Z, +00:00, .000Z, ... as the senders vary)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dateparser.isoparse(value.strip())
        except (ValueError, OverflowError):
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    else:
        raise ValueError("must be an ISO 8601 time string")
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; add Z or an offset like +00:00")
    try:
        year = parsed.astimezone(UTC).year
    except OverflowError:  # year 1 at +14:00 is before year 1 in UTC
        year = 0
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise ValueError(f"{value!r} is not a time between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return parsed


def _optional_time(value: object) -> datetime | None:
    return None if value in (None, "") else parse_time(value)


# Field types: every address is checked and lowercased, every time must carry a timezone.
Email = Annotated[str, BeforeValidator(normalise_email)]
Time = Annotated[datetime, BeforeValidator(parse_time)]
OptionalTime = Annotated[datetime | None, BeforeValidator(_optional_time)]


def first_name_from(first_name: str | None, name: str | None) -> str | None:
    if first_name and first_name.strip():
        return first_name.strip()
    if name and name.strip():
        return name.strip().split()[0]
    return None


class WebsiteLead(BaseModel):
    """The website's payloads: christmas-signup, christmas-assessment, postcall-maybe, ..."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    email: Email
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    business_name: str | None = None

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CalcomPerson(BaseModel):
    model_config = ConfigDict(extra="allow")

    email: Email
    name: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    timeZone: str | None = None


class CalcomBooking(BaseModel):
    model_config = ConfigDict(extra="allow")

    uid: str | None = None
    bookingUid: str | None = None
    startTime: OptionalTime = None
    endTime: OptionalTime = None
    attendees: list[CalcomPerson] = []
    responses: dict[str, Any] | None = None
    rescheduleUid: str | None = None
    requestReschedule: bool | None = None
    cancellationReason: str | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None

    def booker(self) -> CalcomPerson:
        """The person who booked: responses.email.value, else the first attendee."""
        answer = (self.responses or {}).get("email")
        given = answer.get("value") if isinstance(answer, dict) else None
        try:
            address = normalise_email(given) if given else None
        except ValueError as exc:
            if not self.attendees:
                raise ValueError(f"payload.responses.email.value: {exc}") from None
            address = None
        for person in self.attendees:
            if address and person.email == address:
                return person
        if self.attendees:
            return self.attendees[0]
        if address:
            return CalcomPerson(email=address)
        raise ValueError("payload.attendees: no attendee with an email")


class CalcomWebhook(BaseModel):
    """Cal.com's own webhook body: {triggerEvent, createdAt, payload}."""

    model_config = ConfigDict(extra="allow")

    triggerEvent: str
    createdAt: OptionalTime = None
    payload: CalcomBooking


class CalendlyScheduledEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    uri: str | None = None
    name: str | None = None
    start_time: Time
    location: dict[str, Any] | None = None


class CalendlyNoShow(BaseModel):
    """A no-show mark. Each mark has a URI of its own: one removed and set again is a new one."""

    model_config = ConfigDict(extra="allow")

    uri: str


class CalendlyInvitee(BaseModel):
    model_config = ConfigDict(extra="allow")

    uri: str
    email: Email
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    rescheduled: bool = False
    old_invitee: str | None = None
    new_invitee: str | None = None
    cancellation: dict[str, Any] | None = None
    no_show: CalendlyNoShow | None = None
    scheduled_event: CalendlyScheduledEvent | None = None
    timezone: str | None = None


class CalendlyWebhook(BaseModel):
    """Calendly's own v2 webhook body: {event, created_at, payload}."""

    model_config = ConfigDict(extra="allow")

    event: str
    created_at: OptionalTime = None
    payload: CalendlyInvitee


class UnsubscribeRequest(BaseModel):
    """An address to suppress: an unsubscribe link, a hard bounce or a spam complaint."""

    email: Email
    source: Literal["link", "bounce", "complaint"] = "link"


class ResendEventData(BaseModel):
    model_config = ConfigDict(extra="allow")

    email_id: str | None = None
    to: list[str] = []
    bounce: dict[str, Any] | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: object) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError("must be a list of addresses")
        return [normalise_email(item) for item in items]


class ResendEvent(BaseModel):
    """A Resend webhook event (delivered through Svix)."""

    model_config = ConfigDict(extra="allow")

    type: str
    created_at: str | None = None
    data: ResendEventData

    def suppression_source(self) -> Literal["bounce", "complaint"] | None:
        """Only a permanent bounce or a complaint suppresses; a transient bounce does not."""
        if self.type == "email.complained":
            return "complaint"
        if (
            self.type == "email.bounced"
            and str((self.data.bounce or {}).get("type")) == "Permanent"
        ):
            return "bounce"
        return None
