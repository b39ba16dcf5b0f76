"""Every sequence from its real trigger, with a fixed clock: the exact rows, exit rules,
reschedules and cancellations, on both stores."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from starlette.testclient import TestClient

from notion_queue.cli import cmd_resume
from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.models import QueueRow, RowUpdate, Status
from notion_queue.samples import ASSESSMENT, NOSHOW, ONBOARDING, POSTCALL_MAYBE, SIGNUP
from notion_queue.store.base import QueueStore
from notion_queue.web.app import create_app
from tests.conftest import T0
from tests.signed_webhooks import SignedWebhooks, signed_settings

MEETING = datetime(2025, 12, 10, 14, 30, tzinfo=UTC)


class Funnel(SignedWebhooks):
    def __init__(self, journal: Journal, drainer: Drainer, clock: FakeClock, store: QueueStore):
        app = create_app(signed_settings(), journal=journal, drainer=drainer, clock=clock)
        super().__init__(TestClient(app), drainer, clock, store)


@pytest.fixture
def funnel(store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock) -> Funnel:
    journal, drainer = intake
    return Funnel(journal, drainer, clock, store)


def table(rows: list[QueueRow]) -> list[tuple[str, datetime | None, str]]:
    return [(r.template_id, r.scheduled_time, r.status_text) for r in rows]


def calcom_booking(
    uid: str = "booking-1", start: datetime = MEETING, **extra: Any
) -> dict[str, Any]:
    return {
        "uid": uid,
        "bookingId": 101,
        "title": "Diagnostic call",
        "startTime": start.isoformat().replace("+00:00", "Z"),
        "endTime": (start + timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
        "organizer": {"name": "Sang", "email": "sang@businessx.com", "timeZone": "UTC"},
        "attendees": [
            {
                "email": "Guest@Example.com",
                "name": "Guest User",
                "firstName": "Guest",
                "lastName": "User",
                "timeZone": "UTC",
            }
        ],
        "responses": {"email": {"label": "email_address", "value": "guest@example.com"}},
        "status": "ACCEPTED",
        "metadata": {"videoCallUrl": "https://app.cal.com/video/abc"},
        **extra,
    }


def calendly_invitee(
    uri: str = "https://api.calendly.com/scheduled_events/EV/invitees/INV1",
    start: datetime = MEETING,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "uri": uri,
        "email": "john.doe@example.com",
        "name": "John Doe",
        "first_name": None,
        "last_name": None,
        "status": "active",
        "rescheduled": False,
        "old_invitee": None,
        "new_invitee": None,
        "cancellation": None,
        "scheduled_event": {
            "uri": "https://api.calendly.com/scheduled_events/EV",
            "name": "Diagnostic call",
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "end_time": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "location": {"type": "zoom", "join_url": "https://zoom.us/j/1"},
        },
        **extra,
    }


def test_signup_seed_payload_schedules_lead_nurture(funnel: Funnel) -> None:
    assert funnel.post("/webhook/christmas-signup", SIGNUP).status_code == 202

    rows = funnel.rows("sarah@sarahssalon.com")
    assert table(rows) == [
        (f"lead_nurture_email_{n}", T0 + timedelta(days=d), "queued")
        for n, d in zip(range(1, 6), (0, 2, 4, 6, 8), strict=True)
    ]
    assert rows[0].variables()["business_name"] == "Sarah's Salon"
    assert rows[0].variables()["TotalRevenueLeak_K"] == "14.7"
    assert rows[0].dedupe_key.endswith("/lead_nurture/1")
    contact = funnel.store.find_contact("sarah@sarahssalon.com")
    assert contact is not None and contact.segment == "CRITICAL"
    assert contact.business_name == "Sarah's Salon"
    assert contact.assessment_data["weakest_system_1"] == "GPS"


def test_assessment_records_email_1_and_anchors_on_it_and_ends_lead_nurture(funnel: Funnel) -> None:
    funnel.post("/webhook/christmas-signup", {**SIGNUP, "email": "customer@example.com"})
    funnel.clock.advance(hours=3)

    assert funnel.post("/webhook/christmas-assessment", ASSESSMENT).status_code == 202

    sent_at = datetime(2025, 12, 1, 10, 30, tzinfo=UTC)
    five_day = funnel.rows("customer@example.com", "five_day")
    assert table(five_day) == [
        ("christmas_email_1", sent_at, "sent"),
        ("christmas_email_2", sent_at + timedelta(hours=24), "queued"),
        ("christmas_email_3", sent_at + timedelta(hours=72), "queued"),
        ("christmas_email_4", sent_at + timedelta(hours=96), "queued"),
        ("christmas_email_5", sent_at + timedelta(hours=120), "queued"),
    ]
    assert five_day[0].sent_at == sent_at and five_day[0].error_message == "sent by the website"
    nurture = funnel.rows("customer@example.com", "lead_nurture")
    assert {r.status for r in nurture} == {Status.CANCELLED}
    assert nurture[0].error_message == "cancelled: assessment completed 2025-12-01 13:00 UTC"


def test_assessment_without_email_1_sent_at_anchors_on_the_event(funnel: Funnel) -> None:
    body = {k: v for k, v in ASSESSMENT.items() if k != "email_1_sent_at"}
    funnel.post("/webhook/christmas-assessment", body)

    rows = funnel.rows("customer@example.com", "five_day")
    assert rows[0].scheduled_time == T0 and rows[1].scheduled_time == T0 + timedelta(hours=24)


def test_noshow_postcall_and_onboarding_seed_payloads(funnel: Funnel) -> None:
    funnel.post("/webhook/calendly-noshow", NOSHOW)
    funnel.post("/webhook/postcall-maybe", {**POSTCALL_MAYBE, "email": "p@example.com"})
    funnel.post("/webhook/onboarding-start", {**ONBOARDING, "email": "o@example.com"})

    assert table(funnel.rows("sarah@sarahssalon.com", "noshow_recovery")) == [
        ("noshow_recovery_email_1", T0 + timedelta(minutes=5), "queued"),
        ("noshow_recovery_email_2", T0 + timedelta(hours=24), "queued"),
        ("noshow_recovery_email_3", T0 + timedelta(hours=48), "queued"),
    ]
    assert table(funnel.rows("p@example.com")) == [
        ("postcall_maybe_email_1", T0 + timedelta(hours=1), "queued"),
        ("postcall_maybe_email_2", T0 + timedelta(days=3), "queued"),
        ("postcall_maybe_email_3", T0 + timedelta(days=7), "queued"),
    ]
    assert table(funnel.rows("o@example.com")) == [
        ("onboarding_phase1_email_1", T0 + timedelta(hours=1), "queued"),
        ("onboarding_phase1_email_2", T0 + timedelta(days=1), "queued"),
        ("onboarding_phase1_email_3", T0 + timedelta(days=3), "queued"),
    ]
    assert funnel.rows("o@example.com")[0].variables()["portal_url"] == ONBOARDING["portal_url"]


def test_onboarding_cancels_postcall_maybe(funnel: Funnel) -> None:
    funnel.post("/webhook/postcall-maybe", POSTCALL_MAYBE)
    funnel.clock.advance(hours=2)
    funnel.post("/webhook/onboarding-start", ONBOARDING)

    maybe = funnel.rows("sarah@sarahssalon.com", "postcall_maybe")
    assert [r.status for r in maybe] == [Status.CANCELLED] * 3
    assert all(
        r.error_message == "cancelled: onboarding started 2025-12-01 12:00 UTC" for r in maybe
    )


def test_calcom_booking_schedules_precall_prep_and_ends_five_day_and_noshow(funnel: Funnel) -> None:
    funnel.post("/webhook/christmas-assessment", {**ASSESSMENT, "email": "guest@example.com"})
    funnel.post("/webhook/calendly-noshow", {**NOSHOW, "email": "guest@example.com"})

    response = funnel.calcom("BOOKING_CREATED", calcom_booking())

    assert response.status_code == 202
    precall = funnel.rows("guest@example.com", "precall_prep")
    assert table(precall) == [
        ("precall_prep_email_1", MEETING - timedelta(days=3), "queued"),
        ("precall_prep_email_2", MEETING - timedelta(days=1), "queued"),
        ("precall_prep_email_3", MEETING - timedelta(hours=2), "queued"),
    ]
    assert {r.expires_at for r in precall} == {MEETING}
    assert precall[0].first_name == "Guest"
    # Stored as a time; the worker tells it in the guest's zone (UTC: the booking names none).
    assert precall[0].variables()["meeting_time"] == "2025-12-10T14:30:00Z"
    assert precall[0].dedupe_key == "calcom-booking:BOOKING_CREATED:booking-1:/precall_prep/1"
    for sequence in ("five_day", "noshow_recovery"):
        open_rows = [
            r for r in funnel.rows("guest@example.com", sequence) if r.status is not Status.SENT
        ]
        assert {r.status for r in open_rows} == {Status.CANCELLED}
        assert {r.error_message for r in open_rows} == {
            "cancelled: call booked for 2025-12-10 14:30 UTC"
        }
    contact = funnel.store.find_contact("guest@example.com")
    assert contact is not None and contact.meeting_time == MEETING


def test_a_booking_time_with_an_offset_is_told_in_utc(funnel: Funnel) -> None:
    """Cal.com may send 15:30+01:00: the emails and the reasons must say 14:30 UTC."""
    funnel.post("/webhook/christmas-assessment", {**ASSESSMENT, "email": "guest@example.com"})
    booking = calcom_booking()
    booking["startTime"] = MEETING.astimezone(timezone(timedelta(hours=1))).isoformat()

    funnel.calcom("BOOKING_CREATED", booking)

    precall = funnel.rows("guest@example.com", "precall_prep")
    assert {r.variables()["meeting_time"] for r in precall} == {"2025-12-10T14:30:00Z"}
    assert {r.scheduled_time for r in precall} == {
        MEETING - timedelta(days=3),
        MEETING - timedelta(days=1),
        MEETING - timedelta(hours=2),
    }
    open_rows = [
        r for r in funnel.rows("guest@example.com", "five_day") if r.status is not Status.SENT
    ]
    assert {r.error_message for r in open_rows} == {
        "cancelled: call booked for 2025-12-10 14:30 UTC"
    }


def test_steps_already_past_when_the_booking_arrives_are_skipped(funnel: Funnel) -> None:
    soon = T0 + timedelta(hours=20)
    funnel.calcom("BOOKING_CREATED", calcom_booking(start=soon))

    rows = funnel.rows("guest@example.com")
    assert [r.status for r in rows] == [Status.SKIPPED, Status.SKIPPED, Status.QUEUED]
    assert rows[0].error_message.startswith("skipped: booked too late")


def test_calcom_reschedule_moves_reminders_and_their_expiry(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    later = MEETING + timedelta(days=2)

    funnel.calcom(
        "BOOKING_RESCHEDULED",
        calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1"),
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert table(rows) == [
        ("precall_prep_email_1", later - timedelta(days=3), "queued"),
        ("precall_prep_email_2", later - timedelta(days=1), "queued"),
        ("precall_prep_email_3", later - timedelta(hours=2), "queued"),
    ]
    assert {r.expires_at for r in rows} == {later}


def test_calcom_reschedule_sent_as_booking_requested_is_a_reschedule(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    later = MEETING + timedelta(days=1)

    funnel.calcom(
        "BOOKING_REQUESTED", calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1")
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert len(rows) == 3 and {r.expires_at for r in rows} == {later}


def test_calcom_cancellation_cancels_reminders_with_the_reason(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())

    funnel.calcom(
        "BOOKING_CANCELLED", calcom_booking(status="CANCELLED", cancellationReason="sick")
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert {r.status for r in rows} == {Status.CANCELLED}
    assert rows[0].error_message == "cancelled: call cancelled (sick)"


def test_host_asking_to_reschedule_holds_reminders_until_the_new_time(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    funnel.calcom("BOOKING_CANCELLED", calcom_booking(status="CANCELLED", requestReschedule=True))

    held = funnel.rows("guest@example.com", "precall_prep")
    assert {r.status for r in held} == {Status.WAITING}

    later = MEETING + timedelta(days=3)
    funnel.calcom(
        "BOOKING_CREATED", calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1")
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert table(rows) == [
        ("precall_prep_email_1", later - timedelta(days=3), "queued"),
        ("precall_prep_email_2", later - timedelta(days=1), "queued"),
        ("precall_prep_email_3", later - timedelta(hours=2), "queued"),
    ]


def resume(funnel: Funnel, email: str) -> list[str]:
    lines: list[str] = []
    cmd_resume(funnel.store, funnel.clock, lines.append, argparse.Namespace(email=email))
    return lines


def test_resume_leaves_reminders_the_system_holds_for_a_rebooking(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    funnel.calcom("BOOKING_CANCELLED", calcom_booking(status="CANCELLED", requestReschedule=True))

    assert resume(funnel, "guest@example.com") == ["No rows to resume for guest@example.com."]

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert {r.status for r in rows} == {Status.WAITING}


def test_editing_a_held_rows_error_message_changes_nothing(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    funnel.calcom("BOOKING_CANCELLED", calcom_booking(status="CANCELLED", requestReschedule=True))
    for row in funnel.rows("guest@example.com", "precall_prep"):
        funnel.store.update_row(row.id, RowUpdate(error_message="Anna: call the guest first"))

    assert resume(funnel, "guest@example.com") == ["No rows to resume for guest@example.com."]
    later = MEETING + timedelta(days=3)
    funnel.calcom(
        "BOOKING_CREATED", calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1")
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert {r.status for r in rows} == {Status.QUEUED}
    assert [r.scheduled_time for r in rows] == [
        later - timedelta(days=3),
        later - timedelta(days=1),
        later - timedelta(hours=2),
    ]


def test_a_cancellation_cancels_reminders_held_for_a_rebooking(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    funnel.calcom("BOOKING_CANCELLED", calcom_booking(status="CANCELLED", requestReschedule=True))

    # The guest never rebooks: the host cancels for good (a later delivery, a new event).
    funnel.calcom(
        "BOOKING_CANCELLED",
        calcom_booking(uid="booking-1-final", status="CANCELLED", cancellationReason="no reply"),
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert {r.status for r in rows} == {Status.CANCELLED}


def test_a_marketers_pause_survives_the_new_booking_time(funnel: Funnel) -> None:
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    first = funnel.rows("guest@example.com", "precall_prep")[0]
    funnel.store.update_row(first.id, RowUpdate(status=Status.PAUSED))

    later = MEETING + timedelta(days=3)
    funnel.calcom(
        "BOOKING_CREATED", calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1")
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert [r.status for r in rows] == [Status.PAUSED, Status.QUEUED, Status.QUEUED]
    assert rows[0].scheduled_time == later - timedelta(days=3)


def test_a_hold_left_by_an_older_version_is_requeued_by_the_new_booking_time(
    funnel: Funnel,
) -> None:
    """Before `waiting`, a hold was `paused` with an Error Message beginning "waiting: "; the
    reschedule rule still reads those as system holds."""
    funnel.calcom("BOOKING_CREATED", calcom_booking())
    for row in funnel.rows("guest@example.com", "precall_prep"):
        funnel.store.update_row(
            row.id,
            RowUpdate(
                status=Status.PAUSED,
                error_message="waiting: the host asked to reschedule the call",
            ),
        )

    later = MEETING + timedelta(days=3)
    funnel.calcom(
        "BOOKING_CREATED", calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1")
    )

    rows = funnel.rows("guest@example.com", "precall_prep")
    assert {r.status for r in rows} == {Status.QUEUED}


def test_calcom_same_delivery_twice_creates_rows_once(funnel: Funnel) -> None:
    first = funnel.calcom("BOOKING_CREATED", calcom_booking())
    second = funnel.calcom("BOOKING_CREATED", calcom_booking())

    assert (
        second.json()["duplicate"] is True and second.json()["event_id"] == first.json()["event_id"]
    )
    assert len(funnel.rows("guest@example.com")) == 3


def test_calcom_bad_signature_is_401_and_writes_nothing(funnel: Funnel) -> None:
    body = json.dumps({"triggerEvent": "BOOKING_CREATED", "payload": calcom_booking()}).encode()
    for headers in (
        {},
        {"X-Cal-Signature-256": "no-secret-provided"},
        {"X-Cal-Signature-256": "0" * 64},
    ):
        response = funnel.client.post("/webhook/calcom-booking", content=body, headers=headers)
        assert response.status_code == 401, headers
    funnel.drainer.drain_once()
    assert funnel.rows("guest@example.com") == []


def test_calcom_other_triggers_are_acknowledged_and_ignored(funnel: Funnel) -> None:
    response = funnel.calcom("MEETING_ENDED", calcom_booking())

    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert funnel.rows("guest@example.com") == []


def test_calendly_booking_reschedule_and_cancel(funnel: Funnel) -> None:
    funnel.post("/webhook/christmas-assessment", {**ASSESSMENT, "email": "john.doe@example.com"})
    assert funnel.calendly("invitee.created", calendly_invitee()).status_code == 202

    rows = funnel.rows("john.doe@example.com", "precall_prep")
    assert [r.scheduled_time for r in rows] == [
        MEETING - timedelta(days=3),
        MEETING - timedelta(days=1),
        MEETING - timedelta(hours=2),
    ]
    assert rows[0].first_name == "John"
    five_day = [
        r for r in funnel.rows("john.doe@example.com", "five_day") if r.status is not Status.SENT
    ]
    assert {r.status for r in five_day} == {Status.CANCELLED}

    later = MEETING + timedelta(days=1)
    old = calendly_invitee(
        rescheduled=True, new_invitee="https://api.calendly.com/scheduled_events/EV2/invitees/INV2"
    )
    new = calendly_invitee(
        uri="https://api.calendly.com/scheduled_events/EV2/invitees/INV2",
        start=later,
        old_invitee=old["uri"],
    )
    # Calendly sends both; their order is not guaranteed.
    funnel.calendly("invitee.created", new)
    ignored = funnel.calendly("invitee.canceled", old)
    assert ignored.json()["status"] == "ignored"
    rows = funnel.rows("john.doe@example.com", "precall_prep")
    assert len(rows) == 3 and {r.expires_at for r in rows} == {later}
    assert {r.status for r in rows} == {Status.QUEUED}

    funnel.calendly(
        "invitee.canceled",
        {
            **new,
            "status": "canceled",
            "cancellation": {"reason": "conflict", "canceler_type": "invitee"},
        },
    )
    rows = funnel.rows("john.doe@example.com", "precall_prep")
    assert {r.status for r in rows} == {Status.CANCELLED}
    assert rows[0].error_message == "cancelled: call cancelled (conflict)"


def test_calendly_no_show_starts_recovery(funnel: Funnel) -> None:
    payload = calendly_invitee(
        no_show={
            "uri": "https://api.calendly.com/invitee_no_shows/NS",
            "created_at": "2025-12-10T15:00:00Z",
        }
    )
    funnel.calendly("invitee_no_show.created", payload)

    rows = funnel.rows("john.doe@example.com", "noshow_recovery")
    assert table(rows) == [
        ("noshow_recovery_email_1", T0 + timedelta(minutes=5), "queued"),
        ("noshow_recovery_email_2", T0 + timedelta(hours=24), "queued"),
        ("noshow_recovery_email_3", T0 + timedelta(hours=48), "queued"),
    ]


def no_show(uuid: str, at: datetime) -> dict[str, str]:
    return {
        "uri": f"https://api.calendly.com/invitee_no_shows/{uuid}",
        "created_at": at.isoformat().replace("+00:00", "Z"),
    }


# Calendly publishes no invitee_no_show.deleted sample: it may carry the removed no-show or none.
@pytest.mark.parametrize("removal_names_the_no_show", [True, False])
def test_calendly_no_show_removed_and_marked_again_restarts_recovery(
    funnel: Funnel, removal_names_the_no_show: bool
) -> None:
    email = "john.doe@example.com"

    def removal(uuid: str) -> dict[str, Any]:
        return calendly_invitee(no_show=no_show(uuid, T0) if removal_names_the_no_show else None)

    funnel.calendly("invitee_no_show.created", calendly_invitee(no_show=no_show("NS1", T0)))
    funnel.clock.advance(60)
    # The mark was a mistake: removed...
    funnel.calendly("invitee_no_show.deleted", removal("NS1"))
    funnel.clock.advance(60)
    # ...and then set again: a new no-show with a URI of its own.
    again = funnel.calendly(
        "invitee_no_show.created", calendly_invitee(no_show=no_show("NS2", funnel.clock.now()))
    )

    assert again.status_code == 202 and again.json()["duplicate"] is False
    rows = funnel.rows(email, "noshow_recovery")
    queued = [r for r in rows if r.status is Status.QUEUED]
    assert len(rows) == 6 and len(queued) == 3
    restarted = T0 + timedelta(minutes=2)
    assert [r.scheduled_time for r in queued] == [
        restarted + timedelta(minutes=5),
        restarted + timedelta(hours=24),
        restarted + timedelta(hours=48),
    ]

    # Removed once more: the second run is cancelled too (not answered as a duplicate).
    funnel.clock.advance(60)
    removed = funnel.calendly("invitee_no_show.deleted", removal("NS2"))
    assert removed.json()["duplicate"] is False
    assert {r.status for r in funnel.rows(email, "noshow_recovery")} == {Status.CANCELLED}


def test_calendly_no_show_redelivered_starts_recovery_once(funnel: Funnel) -> None:
    marked = calendly_invitee(no_show=no_show("NS1", funnel.clock.now()))
    funnel.calendly("invitee_no_show.created", marked)
    funnel.clock.advance(600)
    again = funnel.calendly("invitee_no_show.created", marked)

    assert again.json()["duplicate"] is True
    assert len(funnel.rows("john.doe@example.com", "noshow_recovery")) == 3


def test_calendly_signature_is_checked_with_a_replay_window(funnel: Funnel) -> None:
    stale = int(funnel.clock.now().timestamp()) - 600
    assert funnel.calendly("invitee.created", calendly_invitee(), t=stale).status_code == 401
    body = json.dumps({"event": "invitee.created", "payload": calendly_invitee()}).encode()
    unsigned = funnel.client.post("/webhook/calendly", content=body)
    assert unsigned.status_code == 401
    assert funnel.rows("john.doe@example.com") == []


def test_calendly_same_event_twice_creates_rows_once(funnel: Funnel) -> None:
    funnel.calendly("invitee.created", calendly_invitee())
    funnel.calendly("invitee.created", calendly_invitee())
    assert len(funnel.rows("john.doe@example.com")) == 3


@pytest.mark.parametrize(
    "path", ["christmas-assessment", "calendly-noshow", "postcall-maybe", "onboarding-start"]
)
def test_website_endpoints_reject_a_bad_email_naming_the_field(funnel: Funnel, path: str) -> None:
    response = funnel.post(f"/webhook/{path}", {"email": "nope", "first_name": "X"})
    assert response.status_code == 422
    assert response.json()["error"] == "email: 'nope' is not a valid email address"


def test_calcom_without_an_attendee_email_is_422(funnel: Funnel) -> None:
    payload = calcom_booking(attendees=[], responses={})
    response = funnel.calcom("BOOKING_CREATED", payload)
    assert response.status_code == 422
    assert "attendee" in response.json()["error"]
