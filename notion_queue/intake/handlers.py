"""Each webhook: its payload model, how it is signed, its event key (idempotency) and its Plan.

A Plan says which sequences start, which are cancelled (exit rules) and which move (a
rescheduled meeting). The catalog says what each sequence's rows are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from notion_queue.event_fields import TakenFields, take_fields
from notion_queue.intake.payloads import (
    CalcomWebhook,
    CalendlyWebhook,
    ResendEvent,
    UnsubscribeRequest,
    WebsiteLead,
    first_name_from,
    parse_time,
)
from notion_queue.intake.plans import (
    ALL_SEQUENCES,
    CancelSequences,
    MoveSequence,
    Plan,
    StartSequence,
)
from notion_queue.logs import get_logger
from notion_queue.models import ContactData, Delivery, utc_text
from notion_queue.sequences import Catalog
from notion_queue.timezones import iso_utc, zone_named

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


# The website's endpoints

ASSESSMENT_FIELDS = (
    "assessment_score",
    "overall_score",
    "red_systems",
    "orange_systems",
    "yellow_systems",
    "green_systems",
    "gps_score",
    "money_score",
    "weakest_system_1",
    "weakest_system_2",
    "strongest_system",
    "revenue_leak_total",
)

TIPS = {
    "GPS": "Write down the three numbers that tell you if this week went well, and check them every Monday.",
    "MONEY": "Look at last month's bank statement and circle every charge you would not sign up for today.",
    "FUEL": "Ask your last ten happy clients where they heard of you, and do more of that.",
    "CABIN": "Write a one-page checklist for the task you redo most often, so anyone can do it.",
}


# What the website's payload model reads itself: neither template variables nor ignored.
LEAD_HANDLED = ("email", "name", "last_name", "email_1_sent_at")


def lead_fields(lead: WebsiteLead, catalog: Catalog) -> TakenFields:
    """The lead's declared fields, typed (ValueError naming a field that does not fit)."""
    data = lead.model_dump()
    data["first_name"] = first_name_from(lead.first_name, lead.name)
    return take_fields(data, catalog.fields, handled=LEAD_HANDLED)


def _lead_contact(lead: WebsiteLead, values: dict[str, Any], kind: str) -> ContactData:
    assessment = {k: values[k] for k in ASSESSMENT_FIELDS if k in values}
    score = values.get("assessment_score", values.get("overall_score"))
    return ContactData(
        email=lead.email,
        first_name=values.get("first_name"),
        last_name=lead.last_name,
        business_name=values.get("business_name"),
        assessment_score=float(score) if isinstance(score, int | float) else None,
        assessment_data=assessment or None,
        segment=_segment(values),
        last_event=kind,
        time_zone=values.get("timezone"),  # a declared timezone field, checked by take_fields
    )


def _segment(fields: dict[str, Any]) -> str | None:
    """The seeds' segments: CRITICAL (2+ red systems), URGENT (any red or orange), OPTIMIZE."""
    red, orange = fields.get("red_systems"), fields.get("orange_systems")
    if not isinstance(red, int) and not isinstance(orange, int):
        return None
    if isinstance(red, int) and red >= 2:
        return "CRITICAL"
    if (isinstance(red, int) and red >= 1) or (isinstance(orange, int) and orange >= 1):
        return "URGENT"
    return "OPTIMIZE"


def lead_variables(values: dict[str, Any]) -> dict[str, Any]:
    """Declared, validated fields plus the derived names the seed templates use."""
    variables = dict(values)
    weakest = variables.get("weakest_system_1")
    if isinstance(weakest, str) and weakest:
        variables.setdefault("WeakestSystem1", weakest)
        tip = TIPS.get(weakest.upper())
        if tip:
            variables.setdefault("personalized_tip_1", tip)
    leak = variables.get("revenue_leak_total")
    if isinstance(leak, int | float):
        variables.setdefault("TotalRevenueLeak_K", f"{leak / 1000:.1f}".rstrip("0").rstrip("."))
    if isinstance(variables.get("assessment_score"), int | float):
        variables.setdefault("overall_score", variables["assessment_score"])
    # Times stay ISO 8601 in the row: the worker tells them in the recipient's zone.
    if "scheduled_time" in variables:
        variables.setdefault("diagnostic_call_date", variables["scheduled_time"])
    return variables


def event_variables(variables: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """What a row stores: never a campaign variable (those are the business's, not the event's)."""
    return {
        k: v for k, v in variables.items() if k not in catalog.variables and v not in (None, "")
    }


def _lead_plan(
    lead: WebsiteLead,
    catalog: Catalog,
    kind: str,
    sequence: str,
    anchor: datetime,
    cancels: tuple[CancelSequences, ...] = (),
) -> Plan:
    taken = lead_fields(lead, catalog)
    variables = event_variables(lead_variables(taken.values), catalog)
    start = StartSequence(
        sequence=sequence,
        anchor=anchor,
        first_name=str(variables.get("first_name", "")),
        variables=variables,
    )
    return Plan(
        email=lead.email,
        contact=_lead_contact(lead, taken.values, kind),
        starts=(start,),
        cancels=cancels,
        ignored_fields=taken.ignored,
    )


def anchor_from(value: object, fallback: datetime, field: str) -> datetime:
    """A time from the payload, or when the event arrived (with a warning) when it is absent."""
    if value in (None, ""):
        log.warning("anchor_missing", field=field, fallback=fallback.isoformat())
        return fallback
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def plan_signup(lead: WebsiteLead, received_at: datetime, catalog: Catalog) -> Plan:
    return _lead_plan(lead, catalog, "christmas-signup", "lead_nurture", received_at)


def plan_assessment(lead: WebsiteLead, received_at: datetime, catalog: Catalog) -> Plan:
    sent_at = anchor_from(lead.extras().get("email_1_sent_at"), received_at, "email_1_sent_at")
    return _lead_plan(
        lead,
        catalog,
        "christmas-assessment",
        "five_day",
        sent_at,
        cancels=(
            CancelSequences(("lead_nurture",), f"assessment completed {utc_text(received_at)}"),
        ),
    )


def plan_noshow(lead: WebsiteLead, received_at: datetime, catalog: Catalog) -> Plan:
    return _lead_plan(lead, catalog, "calendly-noshow", "noshow_recovery", received_at)


def plan_postcall_maybe(lead: WebsiteLead, received_at: datetime, catalog: Catalog) -> Plan:
    return _lead_plan(lead, catalog, "postcall-maybe", "postcall_maybe", received_at)


def plan_onboarding(lead: WebsiteLead, received_at: datetime, catalog: Catalog) -> Plan:
    return _lead_plan(
        lead,
        catalog,
        "onboarding-start",
        "onboarding",
        received_at,
        cancels=(
            CancelSequences(("postcall_maybe",), f"onboarding started {utc_text(received_at)}"),
        ),
    )


# Cal.com

BOOKING_CANCELS = ("five_day", "noshow_recovery")


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


def _booking_start(
    catalog: Catalog, first_name: str, start: datetime, extra: dict[str, Any]
) -> tuple[StartSequence, CancelSequences]:
    variables = {"first_name": first_name, "meeting_time": iso_utc(start), **extra}
    variables = event_variables(variables, catalog)
    return (
        StartSequence("precall_prep", start, first_name=first_name, variables=variables),
        CancelSequences(BOOKING_CANCELS, f"call booked for {utc_text(start)}"),
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
            hold = CancelSequences(
                ("precall_prep",), "the host asked to reschedule the call", hold=True
            )
            return Plan(person.email, contact, cancels=(hold,))
        reason = "call cancelled" + (
            f" ({booking.cancellationReason})" if booking.cancellationReason else ""
        )
        return Plan(person.email, contact, cancels=(CancelSequences(("precall_prep",), reason),))
    if booking.startTime is None:
        raise ValueError("payload.startTime is required")
    link, dropped = meeting_link((booking.metadata or {}).get("videoCallUrl"), catalog)
    start, cancel = _booking_start(catalog, first, booking.startTime, link)
    if _calcom_is_reschedule(hook):
        return Plan(
            person.email,
            contact,
            moves=(
                MoveSequence(
                    "precall_prep",
                    booking.startTime,
                    f"call moved to {utc_text(booking.startTime)}",
                ),
            ),
            starts=(start,),
            dropped_fields=dropped,
        )
    return Plan(person.email, contact, starts=(start,), cancels=(cancel,), dropped_fields=dropped)


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
    if hook.event == "invitee.created":
        if event is None:
            raise ValueError("payload.scheduled_event is required")
        link, dropped = meeting_link((event.location or {}).get("join_url"), catalog)
        start, cancel = _booking_start(catalog, first, event.start_time, link)
        if invitee.old_invitee:
            move = MoveSequence(
                "precall_prep", event.start_time, f"call moved to {utc_text(event.start_time)}"
            )
            return Plan(
                invitee.email, contact, moves=(move,), starts=(start,), dropped_fields=dropped
            )
        return Plan(
            invitee.email, contact, starts=(start,), cancels=(cancel,), dropped_fields=dropped
        )
    if hook.event == "invitee.canceled":
        reason = "call cancelled"
        why = (invitee.cancellation or {}).get("reason")
        if why:
            reason += f" ({why})"
        return Plan(invitee.email, contact, cancels=(CancelSequences(("precall_prep",), reason),))
    if hook.event == "invitee_no_show.created":
        variables: dict[str, Any] = {"first_name": first}
        if event is not None:
            variables["diagnostic_call_date"] = iso_utc(event.start_time)
        start = StartSequence(
            "noshow_recovery",
            received_at,
            first_name=first,
            variables=event_variables(variables, catalog),
        )
        return Plan(invitee.email, contact, starts=(start,))
    # invitee_no_show.deleted: the no-show mark was a mistake
    return Plan(
        invitee.email,
        contact,
        cancels=(CancelSequences(("noshow_recovery",), "no-show mark removed in Calendly"),),
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


HANDLERS: dict[str, Handler] = {
    "christmas-signup": Handler("christmas-signup", WebsiteLead, plan_signup),
    "christmas-assessment": Handler("christmas-assessment", WebsiteLead, plan_assessment),
    "calendly-noshow": Handler("calendly-noshow", WebsiteLead, plan_noshow),
    "postcall-maybe": Handler("postcall-maybe", WebsiteLead, plan_postcall_maybe),
    "onboarding-start": Handler("onboarding-start", WebsiteLead, plan_onboarding),
    "calcom-booking": Handler(
        "calcom-booking", CalcomWebhook, plan_calcom, "calcom", calcom_key, calcom_ignore
    ),
    "calendly": Handler(
        "calendly", CalendlyWebhook, plan_calendly, "calendly", calendly_key, calendly_ignore
    ),
    "resend": Handler("resend", ResendEvent, plan_resend, "resend", resend_key, resend_ignore),
    "unsubscribe": Handler(
        "unsubscribe", UnsubscribeRequest, plan_unsubscribe, "none", unsubscribe_key, route=False
    ),
}
