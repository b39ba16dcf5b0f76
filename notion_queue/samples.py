"""The seed documents' example payloads, per sequence: `notion-queue templates check` renders
every template with them, so a template that needs a variable no event provides is caught
before a lead ever gets it."""

from __future__ import annotations

from typing import Any

SIGNUP = {
    "email": "sarah@sarahssalon.com",
    "first_name": "Sarah",
    "business_name": "Sarah's Salon",
    "red_systems": 2,
    "orange_systems": 1,
    "yellow_systems": 2,
    "green_systems": 3,
    "weakest_system_1": "GPS",
    "weakest_system_2": "FUEL",
    "strongest_system": "CABIN",
    "revenue_leak_total": 14700,
}

ASSESSMENT = {
    "email": "customer@example.com",
    "first_name": "Sarah",
    "business_name": "Sarah's Salon",
    "red_systems": 2,
    "orange_systems": 1,
    "weakest_system_1": "GPS",
    "revenue_leak_total": 14700,
    "email_1_sent_at": "2025-12-01T10:30:00Z",
    "email_1_status": "sent",
}

NOSHOW = {
    "email": "sarah@sarahssalon.com",
    "first_name": "Sarah",
    "calendly_event_id": "evt_123abc",
    "scheduled_time": "2025-12-10T14:00:00Z",
}

POSTCALL_MAYBE = {
    "email": "sarah@sarahssalon.com",
    "first_name": "Sarah",
    "business_name": "Sarah's Salon",
    "call_date": "2025-12-08T15:00:00Z",
    "objection": "need_to_think",
}

ONBOARDING = {
    "email": "sarah@sarahssalon.com",
    "first_name": "Sarah",
    "business_name": "Sarah's Salon",
    "payment_date": "2025-12-09T16:30:00Z",
    "portal_url": "https://portal.businessx.com/sarah",
    "diagnostic_call_date": "2025-12-12T10:00:00Z",
}

# The variables a Cal.com or Calendly booking gives precall_prep (see intake.handlers).
PRECALL = {
    "email": "guest@example.com",
    "first_name": "Guest",
    "meeting_time": "2025-12-10T14:30:00Z",  # stored ISO; told in the recipient's zone
}

WEBSITE_SAMPLES: dict[str, dict[str, Any]] = {
    "lead_nurture": SIGNUP,
    "five_day": ASSESSMENT,
    "noshow_recovery": NOSHOW,
    "postcall_maybe": POSTCALL_MAYBE,
    "onboarding": ONBOARDING,
}
