"""Each webhook: its payload model, how it is signed, its event key (idempotency) and its Plan;
and the registry of them all, built from the catalog (`build_handlers`).

A Plan says which sequences start, which are cancelled (exit rules) and which move (a
rescheduled meeting). The catalog decides all three (intake/exit_rules.py reads it); code here
only parses the providers' payloads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel

from notion_queue.intake.exit_rules import (
    EventTimes,
    anchors_for,
    meeting_held,
    meeting_moved,
    meeting_sequences,
    run_trigger,
)
from notion_queue.intake.payloads import (
    CalcomWebhook,
    CalendlyWebhook,
    ResendEvent,
    UnsubscribeRequest,
    WebsiteLead,
    first_name_from,
)
from notion_queue.intake.plans import ALL_SEQUENCES, CancelSequences, Plan, event_variables
from notion_queue.intake.website import plan_website
from notion_queue.logs import get_logger
from notion_queue.models import ContactData, Delivery, utc_text
from notion_queue.sequences import Catalog
from notion_queue.timezones import iso_utc, zone_named
from notion_queue.triggers import BOOKING, BOOKING_CANCELLED, NO_SHOW, NO_SHOW_REMOVED, Trigger

log = get_logger(__name__)

Signature = Literal["website", "calcom", "calendly", "resend", "none"]


@dataclass(frozen=True)
class Handler:
    kind: str
    model: type[BaseModel]
    plan: Callable[[Any, datetime, Catalog], Plan]
    signature: Signature = "website"
    key: Callable[[Any, Mapping[str, str]], str] | None = None
    ignore: Callable[[Any], str | None] | None = None
    route: bool = True  # False: journaled by another endpoint (the unsubscribe page)

    def event_key(self, payload: BaseModel, headers: Mapping[str, str] | None = None) -> str:
        """Same event twice → same key. Website bodies carry no id: the body itself is the key."""
        if self.key is not None:
            return f"{self.kind}:{self.key(payload, headers or {})}"
        canonical = json.dumps(payload.model_dump(mode="json"), sort_keys=True)
        digest = hashlib.sha256(f"{self.kind}\n{canonical}".encode()).hexdigest()[:20]
        return f"{self.kind}:{digest}"

    def ignored(self, payload: BaseModel) -> str | None:
        """Why this event needs nothing from us (answered 202, not journaled), or None."""
        return self.ignore(payload) if self.ignore is not None else None


# Cal.com and Calendly: their payloads and signatures are code; what their events start and
# cancel is the catalog's [triggers.booking], [triggers.booking_cancelled], [triggers.no_show]
# and [triggers.no_show_removed] (see intake/exit_rules.py).


def meeting_link(url: object, catalog: Catalog) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A provider's video link as `meeting_url`, if the catalog declares it and it fits.

    A link on another host is left out (the reminders read well without it), not refused:
    refusing would lose a signed booking and its reminders. Second: why it was left out.
    """
    if url in (None, ""):
        return {}, ()
    spec = catalog.fields.get("meeting_url")
    if spec is None or spec.type != "url":
        return {}, ("meeting_url is not declared as a url field in the catalog",)
    try:
        return {"meeting_url": spec.coerce(url)}, ()
    except ValueError as exc:
        return {}, (f"meeting_url {exc}",)


def _provider_plan(
    name: str,
    catalog: Catalog,
    email: str,
    contact: ContactData,
    times: EventTimes,
    variables: dict[str, Any],
    reason: str,
    dropped: tuple[str, ...] = (),
) -> Plan:
    """What the catalog's provider trigger `name` starts and cancels for this event."""
    trigger = catalog.trigger(name)
    first_name = str(variables.get("first_name", ""))
    starts, cancels = run_trigger(
        trigger,
        catalog,
        times,
        anchors_for(trigger, catalog, times),
        first_name=first_name,
        variables=event_variables(variables, catalog),
        reason=reason,
    )
    return Plan(email, contact, starts=starts, cancels=cancels, dropped_fields=dropped)


def _booking_plan(
    catalog: Catalog,
    email: str,
    contact: ContactData,
    received_at: datetime,
    start: datetime,
    first_name: str,
    link: dict[str, Any],
    dropped: tuple[str, ...],
    *,
    reschedule: bool,
) -> Plan:
    """A booking starts [triggers.booking]; a reschedule moves the meeting's own sequences
    (starting them afresh if it finds none of their rows) and ends nothing."""
    times = EventTimes(received_at, meeting_start=start)
    variables = {"first_name": first_name, "meeting_time": iso_utc(start), **link}
    if not reschedule:
        reason = f"call booked for {utc_text(start)}"
        return _provider_plan(BOOKING, catalog, email, contact, times, variables, reason, dropped)
    meeting = Trigger(BOOKING, starts=meeting_sequences(catalog))
    starts, _ = run_trigger(
        meeting,
        catalog,
        times,
        anchors_for(meeting, catalog, times),
        first_name=str(variables.get("first_name", "")),
        variables=event_variables(variables, catalog),
        reason="",
    )
    return Plan(
        email,
        contact,
        moves=meeting_moved(catalog, start),
        starts=starts,
        dropped_fields=dropped,
    )


def booker_zone(name: str | None, where: str, *, starts: bool) -> str | None:
    """The guest's IANA zone from a booking, or None. One that is not a zone refuses (422) an
    event that starts emails; a cancellation is never refused for it (the zone is dropped)."""
    if name in (None, ""):
        return None
    try:
        return zone_named(name).key
    except ValueError as exc:
        if not starts:
            return None
        raise ValueError(f"{where}: {exc}") from None


def _calcom_is_reschedule(hook: CalcomWebhook) -> bool:
    # Cal.com's API v2 reschedules send BOOKING_REQUESTED (or CREATED) with rescheduleUid.
    return hook.triggerEvent == "BOOKING_RESCHEDULED" or bool(hook.payload.rescheduleUid)


def calcom_ignore(hook: CalcomWebhook) -> str | None:
    trigger = hook.triggerEvent
    if trigger in ("BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED"):
        return None
    if trigger == "BOOKING_REQUESTED" and hook.payload.rescheduleUid:
        return None
    return f"{trigger} needs nothing from notion-queue"


def plan_calcom(hook: CalcomWebhook, received_at: datetime, catalog: Catalog) -> Plan:
    booking = hook.payload
    person = booking.booker()
    first = first_name_from(person.firstName, person.name) or ""
    contact = ContactData(
        email=person.email,
        first_name=first or None,
        last_name=person.lastName,
        meeting_time=booking.startTime if hook.triggerEvent != "BOOKING_CANCELLED" else None,
        last_event=f"calcom:{hook.triggerEvent}",
        time_zone=booker_zone(
            person.timeZone,
            "payload.attendees[0].timeZone",
            starts=hook.triggerEvent != "BOOKING_CANCELLED",
        ),
    )
    if hook.triggerEvent == "BOOKING_CANCELLED":
        if booking.requestReschedule:
            # The host asked to rebook: not final. The reminders wait (paused) for the new time.
            hold = meeting_held(catalog, "the host asked to reschedule the call")
            return Plan(person.email, contact, cancels=hold)
        reason = "call cancelled" + (
            f" ({booking.cancellationReason})" if booking.cancellationReason else ""
        )
        times = EventTimes(received_at)
        variables = {"first_name": first}
        return _provider_plan(
            BOOKING_CANCELLED, catalog, person.email, contact, times, variables, reason
        )
    if booking.startTime is None:
        raise ValueError("payload.startTime is required")
    link, dropped = meeting_link((booking.metadata or {}).get("videoCallUrl"), catalog)
    return _booking_plan(
        catalog,
        person.email,
        contact,
        received_at,
        booking.startTime,
        first,
        link,
        dropped,
        reschedule=_calcom_is_reschedule(hook),
    )


def calcom_key(hook: CalcomWebhook, headers: Mapping[str, str]) -> str:
    booking = hook.payload
    return f"{hook.triggerEvent}:{booking.uid or booking.bookingUid}:{booking.rescheduleUid or ''}"


# Calendly


def calendly_ignore(hook: CalendlyWebhook) -> str | None:
    if hook.event == "invitee.canceled" and hook.payload.rescheduled:
        return "a reschedule: the new booking's invitee.created moves the reminders"
    if hook.event in (
        "invitee.created",
        "invitee.canceled",
        "invitee_no_show.created",
        "invitee_no_show.deleted",
    ):
        return None
    return f"{hook.event} needs nothing from notion-queue"


def plan_calendly(hook: CalendlyWebhook, received_at: datetime, catalog: Catalog) -> Plan:
    invitee = hook.payload
    first = first_name_from(invitee.first_name, invitee.name) or ""
    event = invitee.scheduled_event
    contact = ContactData(
        email=invitee.email,
        first_name=first or None,
        last_name=invitee.last_name,
        meeting_time=event.start_time if event and hook.event == "invitee.created" else None,
        last_event=f"calendly:{hook.event}",
        time_zone=booker_zone(
            invitee.timezone,
            "payload.timezone",
            starts=hook.event in ("invitee.created", "invitee_no_show.created"),
        ),
    )
    times = EventTimes(received_at)
    variables: dict[str, Any] = {"first_name": first}
    if hook.event == "invitee.created":
        if event is None:
            raise ValueError("payload.scheduled_event is required")
        link, dropped = meeting_link((event.location or {}).get("join_url"), catalog)
        return _booking_plan(
            catalog,
            invitee.email,
            contact,
            received_at,
            event.start_time,
            first,
            link,
            dropped,
            reschedule=bool(invitee.old_invitee),
        )
    if hook.event == "invitee.canceled":
        reason = "call cancelled"
        why = (invitee.cancellation or {}).get("reason")
        if why:
            reason += f" ({why})"
        return _provider_plan(
            BOOKING_CANCELLED, catalog, invitee.email, contact, times, variables, reason
        )
    if hook.event == "invitee_no_show.created":
        if event is not None:
            variables["diagnostic_call_date"] = iso_utc(event.start_time)
        reason = "no-show marked in Calendly"
        return _provider_plan(NO_SHOW, catalog, invitee.email, contact, times, variables, reason)
    # invitee_no_show.deleted: the no-show mark was a mistake
    reason = "no-show mark removed in Calendly"
    return _provider_plan(
        NO_SHOW_REMOVED, catalog, invitee.email, contact, times, variables, reason
    )


def calendly_key(hook: CalendlyWebhook, headers: Mapping[str, str]) -> str:
    """A no-show event is keyed on the no-show mark itself: marked, removed and marked again is
    a new mark with a new URI, and must restart the recovery. Without one (Calendly documents no
    invitee_no_show.deleted sample) the event's own time tells a second removal from a retry."""
    if hook.event.startswith("invitee_no_show."):
        if hook.payload.no_show is not None:
            return f"{hook.event}:{hook.payload.no_show.uri}"
        when = hook.created_at.isoformat() if hook.created_at else ""
        return f"{hook.event}:{hook.payload.uri}:{when}"
    return f"{hook.event}:{hook.payload.uri}"


# Unsubscribes, hard bounces and spam complaints: the address is suppressed for good.

SUPPRESSION_REASONS = {
    "link": "unsubscribed",
    "bounce": "hard bounce",
    "complaint": "spam complaint",
}


def plan_unsubscribe(
    request: UnsubscribeRequest, received_at: datetime, catalog: Catalog | None = None
) -> Plan:
    reason = SUPPRESSION_REASONS[request.source]
    return Plan(
        email=request.email,
        contact=ContactData(
            email=request.email, unsubscribed=True, last_event=f"suppressed: {reason}"
        ),
        cancels=(CancelSequences((ALL_SEQUENCES,), reason),),
    )


def unsubscribe_key(request: UnsubscribeRequest, headers: Mapping[str, str]) -> str:
    return f"{request.source}:{request.email}"


RESEND_DELIVERY_STATES = {
    "email.delivered": Delivery.DELIVERED,
    "email.delivery_delayed": Delivery.DELAYED,
    "email.bounced": Delivery.BOUNCED,
    "email.complained": Delivery.COMPLAINED,
    "email.opened": Delivery.OPENED,
    "email.clicked": Delivery.CLICKED,
    "email.failed": Delivery.FAILED,
    "email.suppressed": Delivery.SUPPRESSED,
}


def resend_ignore(event: ResendEvent) -> str | None:
    if event.type not in RESEND_DELIVERY_STATES:
        return f"{event.type} needs nothing from notion-queue"
    if not event.data.to:
        return "the event names no recipient"
    return None


def plan_resend(event: ResendEvent, received_at: datetime, catalog: Catalog) -> Plan:
    """Record the delivery state on the row; a hard bounce or a complaint also suppresses."""
    state = RESEND_DELIVERY_STATES[event.type]
    deliveries = ((event.data.email_id, state),) if event.data.email_id else ()
    source = event.suppression_source()
    if source is None:
        return Plan(email=event.data.to[0], contact=None, deliveries=deliveries)
    suppress = plan_unsubscribe(
        UnsubscribeRequest(email=event.data.to[0], source=source), received_at
    )
    return Plan(
        email=suppress.email,
        contact=suppress.contact,
        cancels=suppress.cancels,
        deliveries=deliveries,
    )


def resend_key(event: ResendEvent, headers: Mapping[str, str]) -> str:
    # Resend (through Svix) retries with the same svix-id: that is the event's identity.
    return headers.get("svix-id") or f"{event.type}:{event.data.email_id}"


def provider_handlers() -> dict[str, Handler]:
    """The endpoints that are code: their payloads and signatures are the providers'."""
    return {
        "calcom-booking": Handler(
            "calcom-booking", CalcomWebhook, plan_calcom, "calcom", calcom_key, calcom_ignore
        ),
        "calendly": Handler(
            "calendly", CalendlyWebhook, plan_calendly, "calendly", calendly_key, calendly_ignore
        ),
        "resend": Handler("resend", ResendEvent, plan_resend, "resend", resend_key, resend_ignore),
        "unsubscribe": Handler(
            "unsubscribe",
            UnsubscribeRequest,
            plan_unsubscribe,
            "none",
            unsubscribe_key,
            route=False,
        ),
    }


def build_handlers(catalog: Catalog) -> dict[str, Handler]:
    """Every event kind the server takes and the drainer applies: one website endpoint per
    trigger of the catalog (the kind is the trigger's name), then the providers'."""
    handlers = {
        trigger.name: Handler(trigger.name, WebsiteLead, partial(plan_website, trigger))
        for trigger in catalog.website_triggers()
    }
    handlers.update(provider_handlers())
    return handlers
