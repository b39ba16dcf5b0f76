"""Right time, right amount (issue 14): the recipient's time zone, send windows, the daily cap,
review before send. Fixed clock: T0 is Monday 1 December 2025, 10:00 UTC."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from notion_queue.cli import cmd_status
from notion_queue.clock import FakeClock
from notion_queue.errors import ConfigError
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import ContactData, Status, Template, can_transition
from notion_queue.needed_variables import NeededVariables, template_needs
from notion_queue.sequences import Catalog, load_catalog
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.templates import load_packaged_templates
from notion_queue.timezones import local_day
from notion_queue.transitions import change_status
from notion_queue.web.app import create_app
from notion_queue.windows import Window, parse_window
from tests.conftest import T0, WorkerFactory, new_row
from tests.signed_webhooks import SignedWebhooks, signed_settings

PACKAGED = (Path(__file__).parents[1] / "notion_queue" / "sequences.toml").read_text()
WEEKDAYS_9_TO_5 = 'window = { days = "mon-fri", start = "09:00", end = "17:00" }'
TOKYO, BERLIN = ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/Berlin")


def custom_catalog(tmp_path: Path, sequence: str, *lines: str) -> Catalog:
    """The packaged catalog with `lines` added to one sequence's table."""
    header = f"[sequences.{sequence}]\n"
    path = tmp_path / "catalog.toml"
    path.write_text(PACKAGED.replace(header, header + "".join(f"{x}\n" for x in lines)))
    return load_catalog(path, known_templates=load_packaged_templates())


class World(SignedWebhooks):
    """The app → journal → drainer → store, and a worker sending to an outbox."""

    def __init__(
        self,
        tmp_path: Path,
        store: QueueStore,
        clock: FakeClock,
        catalog: Catalog,
        make_worker: WorkerFactory,
        **processor: Any,
    ) -> None:
        self.journal = Journal(tmp_path / "intake.sqlite3")
        drainer = Drainer(self.journal, IntakeProcessor(store, catalog, clock, **processor), clock)
        self.outbox = OutboxMailer(tmp_path / "outbox", clock)
        zone = processor.get("default_zone", ZoneInfo("UTC"))
        windows = {} if processor.get("testing_mode") else catalog.windows()
        self.worker = make_worker(store, self.outbox, default_zone=zone, windows=windows)
        app = create_app(
            signed_settings(), journal=self.journal, drainer=drainer, clock=clock, catalog=catalog
        )
        super().__init__(TestClient(app), drainer, clock, store)

    def sent(self) -> list[Message]:
        return [
            message_from_bytes(p.read_bytes()) for p in sorted(self.outbox.folder.glob("*.eml"))
        ]

    def close(self) -> None:
        self.journal.close()


@pytest.fixture
def build(tmp_path: Path, store: QueueStore, clock: FakeClock, make_worker: WorkerFactory) -> Any:
    made: list[World] = []

    def make(catalog: Catalog | None = None, **processor: Any) -> World:
        world = World(tmp_path, store, clock, catalog or load_catalog(), make_worker, **processor)
        made.append(world)
        return world

    yield make
    for world in made:
        world.close()


def booking(start: datetime, time_zone: str | None, uid: str = "booking-1") -> dict[str, Any]:
    attendee: dict[str, Any] = {"email": "guest@example.com", "name": "Guest User"}
    if time_zone is not None:
        attendee["timeZone"] = time_zone
    return {
        "uid": uid,
        "title": "Diagnostic call",
        "startTime": start.isoformat().replace("+00:00", "Z"),
        "endTime": (start + timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
        "attendees": [attendee],
    }


def text_of(message: Message) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    return "\n".join(
        p.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for p in parts
        if p.get_content_type() == "text/plain"
    )


# 1. The recipient's time zone


def test_a_new_york_guest_reads_the_reminders_in_est(build: Any, clock: FakeClock) -> None:
    world = build()
    meeting = datetime(2025, 12, 10, 14, 0, tzinfo=UTC)  # winter: 09:00 in New York

    assert world.calcom("BOOKING_CREATED", booking(meeting, "America/New_York")).status_code == 202
    clock.set(meeting - timedelta(minutes=30))  # all three reminders are due
    world.worker.run_once()

    texts = [text_of(m) for m in world.sent()]
    assert len(texts) == 3
    assert all("Wednesday 10 December, 09:00 EST" in t for t in texts)
    assert not any("UTC" in t for t in texts)
    contact = world.store.find_contact("guest@example.com")
    assert contact is not None and contact.time_zone == "America/New_York"


def calendly_invitee(start: datetime, time_zone: str) -> dict[str, Any]:
    return {
        "uri": "https://api.calendly.com/scheduled_events/EV/invitees/INV1",
        "email": "john@example.com",
        "name": "John Doe",
        "timezone": time_zone,
        "scheduled_event": {
            "uri": "https://api.calendly.com/scheduled_events/EV",
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "end_time": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        },
    }


def test_a_calendly_invitee_reads_the_reminders_in_their_zone(build: Any, clock: FakeClock) -> None:
    world = build()
    meeting = datetime(2025, 12, 10, 14, 0, tzinfo=UTC)

    refused = world.calendly("invitee.created", calendly_invitee(meeting, "CET+1"))
    accepted = world.calendly("invitee.created", calendly_invitee(meeting, "Europe/Berlin"))
    clock.set(meeting - timedelta(minutes=30))
    world.worker.run_once()

    assert refused.status_code == 422 and "payload.timezone" in refused.text
    assert accepted.status_code == 202
    assert all("Wednesday 10 December, 15:00 CET" in text_of(m) for m in world.sent())
    contact = world.store.find_contact("john@example.com")
    assert contact is not None and contact.time_zone == "Europe/Berlin"


def test_an_invalid_attendee_time_zone_is_refused_with_422_naming_it(build: Any) -> None:
    world = build()
    start = datetime(2025, 12, 10, 14, 0, tzinfo=UTC)

    response = world.calcom("BOOKING_CREATED", booking(start, "Mars/Olympus_Mons"))

    assert response.status_code == 422
    assert "timeZone" in response.text
    assert world.rows("guest@example.com") == []
    # A cancellation is never refused for it: the zone is dropped, the cancellation applies.
    assert world.calcom("BOOKING_CREATED", booking(start, "UTC")).status_code == 202
    cancelled = world.calcom("BOOKING_CANCELLED", booking(start, "Mars/Olympus_Mons"))
    assert cancelled.status_code == 202
    assert {r.status for r in world.rows("guest@example.com")} == {Status.CANCELLED}


def test_a_website_timezone_field_sets_the_contact_and_its_rows(build: Any) -> None:
    world = build()

    good = world.post(
        "/webhook/christmas-signup", {"email": "a@example.com", "timezone": "Europe/Berlin"}
    )
    bad = world.post(
        "/webhook/christmas-signup", {"email": "b@example.com", "timezone": "Europe/Nowhere"}
    )

    assert good.status_code == 202
    contact = world.store.find_contact("a@example.com")
    assert contact is not None and contact.time_zone == "Europe/Berlin"
    assert {r.variables()["timezone"] for r in world.rows("a@example.com")} == {"Europe/Berlin"}
    assert bad.status_code == 422 and "timezone" in bad.text
    assert world.rows("b@example.com") == []


def test_a_zone_typed_on_the_contact_applies_when_the_event_names_none(
    build: Any, clock: FakeClock
) -> None:
    world = build()
    world.store.upsert_contact(ContactData(email="guest@example.com", time_zone="Asia/Tokyo"))
    meeting = datetime(2025, 12, 10, 14, 0, tzinfo=UTC)

    world.calcom("BOOKING_CREATED", booking(meeting, None))
    clock.set(meeting - timedelta(minutes=30))
    world.worker.run_once()

    assert any("Wednesday 10 December, 23:00 JST" in text_of(m) for m in world.sent())


def test_an_invalid_zone_typed_in_notion_is_ignored_with_a_warning_and_the_default_applies(
    build: Any, clock: FakeClock
) -> None:
    world = build(default_zone=BERLIN)  # DEFAULT_TIMEZONE=Europe/Berlin
    world.store.upsert_contact(ContactData(email="guest@example.com", time_zone="Berlin, DE"))
    meeting = datetime(2025, 12, 10, 14, 0, tzinfo=UTC)

    with capture_logs() as logs:
        world.calcom("BOOKING_CREATED", booking(meeting, None))
    clock.set(meeting - timedelta(minutes=30))
    world.worker.run_once()

    assert any(e["event"] == "contact_time_zone_invalid" for e in logs)
    assert any("Wednesday 10 December, 15:00 CET" in text_of(m) for m in world.sent())


def test_default_timezone_must_be_an_iana_name() -> None:
    with pytest.raises(ValueError, match="IANA"):
        Settings(default_timezone="Central European Time")
    assert Settings().default_timezone == "UTC"


# 2. Send windows


def test_a_tokyo_signup_outside_the_window_has_every_row_inside_it(
    build: Any, tmp_path: Path
) -> None:
    catalog = custom_catalog(tmp_path, "lead_nurture", WEEKDAYS_9_TO_5)
    world = build(catalog)
    window = catalog["lead_nurture"].timing.window
    assert window is not None
    assert not window.contains(T0, TOKYO)  # Monday 19:00 in Tokyo

    world.post("/webhook/christmas-signup", {"email": "a@example.com", "timezone": "Asia/Tokyo"})

    rows = world.rows("a@example.com")
    assert len(rows) == 5
    for row in rows:
        assert row.scheduled_time is not None and window.contains(row.scheduled_time, TOKYO)
    first = rows[0].scheduled_time
    assert first is not None and first.astimezone(TOKYO) == datetime(
        2025, 12, 2, 9, 0, tzinfo=TOKYO
    )
    assert (
        rows[0].error_message
        == "moved to the send window (mon,tue,wed,thu,fri 09:00-17:00 Asia/Tokyo)"
    )
    times = [r.scheduled_time for r in rows]
    assert times == sorted(times)  # type: ignore[type-var]


def test_testing_mode_ignores_windows(build: Any, tmp_path: Path) -> None:
    catalog = custom_catalog(tmp_path, "lead_nurture", WEEKDAYS_9_TO_5)
    world = build(catalog, testing_mode=True)

    world.post("/webhook/christmas-signup", {"email": "a@example.com", "timezone": "Asia/Tokyo"})

    rows = world.rows("a@example.com")
    assert [r.scheduled_time for r in rows] == [T0 + timedelta(minutes=m) for m in range(5)]


def test_the_packaged_catalog_declares_no_window_and_precall_prep_is_cap_exempt() -> None:
    catalog = load_catalog()
    assert catalog.windows() == {}
    assert catalog["precall_prep"].timing.cap_exempt
    assert not any(s.timing.review for s in catalog.sequences.values())


def test_a_window_opening_in_the_spring_forward_gap_is_read_after_the_jump() -> None:
    window = parse_window({"days": "sun", "start": "02:30", "end": "05:00"}, "test")
    saturday_night = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET; at 02:00 → 03:00 CEST

    opening = window.next_open(saturday_night, BERLIN)

    assert opening == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST: 02:30 never happens
    assert opening.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"


def test_a_step_landing_in_the_gap_night_moves_to_the_opening_in_summer_time() -> None:
    window = parse_window({"days": "mon-sun", "start": "09:00", "end": "17:00"}, "test")
    in_the_gap_night = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST, just after the jump

    assert window.next_open(in_the_gap_night, BERLIN) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_a_step_in_the_repeated_hour_is_judged_by_its_wall_time() -> None:
    window = parse_window({"days": "sun", "start": "02:30", "end": "03:00"}, "test")
    first = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    second = datetime(2026, 10, 25, 1, 40, tzinfo=UTC)  # 02:40 CET, the hour again

    assert window.contains(first, BERLIN) and window.contains(second, BERLIN)
    # Opening in the repeated hour: the first 02:30 is meant.
    before = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert window.next_open(before, BERLIN) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    nine_to_five = parse_window({"days": "sun", "start": "09:00", "end": "17:00"}, "test")
    assert nine_to_five.next_open(second, BERLIN) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_a_reminder_whose_window_opens_after_the_meeting_is_skipped_with_the_reason(
    build: Any, tmp_path: Path
) -> None:
    world = build(custom_catalog(tmp_path, "precall_prep", WEEKDAYS_9_TO_5))
    saturday = datetime(2025, 12, 6, 10, 0, tzinfo=UTC)  # -2h: Saturday 08:00, closed till Monday

    world.calcom("BOOKING_CREATED", booking(saturday, "UTC"))

    rows = world.rows("guest@example.com", "precall_prep")
    assert [r.status for r in rows] == [Status.QUEUED, Status.QUEUED, Status.SKIPPED]
    assert rows[2].error_message == (
        "skipped: moved to the send window (mon,tue,wed,thu,fri 09:00-17:00 UTC), "
        "after the meeting starts"
    )
    assert rows[1].scheduled_time == datetime(2025, 12, 5, 10, 0, tzinfo=UTC)  # Friday: open


def test_a_reschedule_moves_the_reminders_into_the_window(build: Any, tmp_path: Path) -> None:
    world = build(custom_catalog(tmp_path, "precall_prep", WEEKDAYS_9_TO_5))
    world.calcom("BOOKING_CREATED", booking(datetime(2025, 12, 10, 14, 0, tzinfo=UTC), "UTC"))
    moved = booking(datetime(2025, 12, 16, 8, 0, tzinfo=UTC), "UTC", uid="booking-2")
    moved["rescheduleUid"] = "booking-1"

    world.calcom("BOOKING_RESCHEDULED", moved)

    rows = world.rows("guest@example.com", "precall_prep")
    # -3d: Saturday 13th 08:00 → Monday 09:00; -1d: Monday 08:00 → 09:00; -2h: Tuesday 06:00 →
    # 09:00, after the 08:00 call: skipped.
    assert [(r.scheduled_time, r.status) for r in rows] == [
        (datetime(2025, 12, 15, 9, 0, tzinfo=UTC), Status.QUEUED),
        (datetime(2025, 12, 15, 9, 0, tzinfo=UTC), Status.QUEUED),
        (datetime(2025, 12, 16, 9, 0, tzinfo=UTC), Status.SKIPPED),
    ]


def test_the_worker_moves_a_row_a_marketer_moved_outside_its_window(
    store: QueueStore, make_worker: WorkerFactory, tmp_path: Path, clock: FakeClock
) -> None:
    window = Window(
        frozenset(range(5)), datetime(2000, 1, 1, 9).time(), datetime(2000, 1, 1, 17).time()
    )
    outbox = OutboxMailer(tmp_path / "outbox", clock)
    worker = make_worker(store, outbox, windows={"lead_nurture": window})
    # Monday 10:00 UTC is 19:00 in Tokyo: a marketer moved it there by hand.
    row = store.add_row(new_row(variables={"business_name": "A", "timezone": "Asia/Tokyo"}))

    worker.run_once()

    after = store.get_row(row.id)
    assert list(outbox.folder.glob("*.eml")) == []
    assert after.status is Status.QUEUED
    assert after.scheduled_time == datetime(2025, 12, 2, 0, 0, tzinfo=UTC)  # Tuesday 09:00 JST
    assert after.error_message.startswith("moved to the send window (mon,tue,wed,thu,fri")
    clock.set(datetime(2025, 12, 2, 0, 0, tzinfo=UTC))
    worker.run_once()
    assert store.get_row(row.id).status is Status.SENT


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        ('window = { days = "weekdays", start = "09:00", end = "17:00" }', "days"),
        ('window = { days = "mon-fri", start = "9am", end = "17:00" }', "24-hour"),
        ('window = { days = "mon-fri", start = "17:00", end = "09:00" }', "before its end"),
        ('window = "9 to 5"', "must be a table"),
        ("review = 1", "true or false"),
    ],
)
def test_a_timing_mistake_in_the_catalog_names_the_sequence(
    tmp_path: Path, window: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        custom_catalog(tmp_path, "lead_nurture", window)
    assert "lead_nurture" in str(raised.value)


# 3. The daily cap


def test_with_a_cap_of_one_no_address_gets_two_emails_on_one_local_day(
    build: Any, clock: FakeClock
) -> None:
    world = build(max_emails_per_day=1, default_zone=TOKYO)
    lead = {"email": "a@example.com", "first_name": "Ann"}

    world.post("/webhook/christmas-signup", lead)
    world.post("/webhook/calendly-noshow", lead)
    world.post("/webhook/postcall-maybe", lead)
    world.calcom(
        "BOOKING_CREATED",
        booking(T0 + timedelta(days=2), None)
        | {"attendees": [{"email": "a@example.com", "name": "Ann"}]},
    )

    rows = world.rows("a@example.com")
    capped = [r for r in rows if r.sequence != "precall_prep" and r.status is Status.QUEUED]
    # None dropped: lead_nurture's 5 and postcall_maybe's 3 (the booking ended noshow_recovery).
    assert len(capped) == 8
    days = [local_day(r.scheduled_time, TOKYO) for r in capped if r.scheduled_time]
    assert len(days) == len(set(days))
    moved = [r for r in capped if r.error_message.startswith("moved: MAX_EMAILS_PER_DAY (1)")]
    assert moved and all("(Asia/Tokyo)" in r.error_message for r in moved)
    # precall_prep is cap_exempt: its reminders keep their times before the call.
    precall = [r for r in rows if r.sequence == "precall_prep"]
    assert {r.error_message for r in precall if r.status is Status.QUEUED} == {""}


def test_the_cap_counts_what_was_already_sent_that_day(build: Any, clock: FakeClock) -> None:
    world = build(max_emails_per_day=1)
    world.post("/webhook/christmas-signup", {"email": "a@example.com", "first_name": "Ann"})
    world.worker.run_once()  # email 1 goes now, Monday

    clock.advance(3600)
    world.post("/webhook/calendly-noshow", {"email": "a@example.com", "first_name": "Ann"})

    first = world.rows("a@example.com", "noshow_recovery")[0]
    assert (
        first.scheduled_time is not None and first.scheduled_time.date().isoformat() == "2025-12-02"
    )
    assert (
        first.error_message == "moved: MAX_EMAILS_PER_DAY (1) already reached on 2025-12-01 (UTC)"
    )


# 4. Review before send


def test_a_review_sequence_waits_until_a_marketer_approves_it(
    build: Any, tmp_path: Path, clock: FakeClock
) -> None:
    world = build(custom_catalog(tmp_path, "lead_nurture", "review = true"))
    world.post("/webhook/christmas-signup", {"email": "a@example.com", "first_name": "Ann"})
    rows = world.rows("a@example.com")
    assert {r.status for r in rows} == {Status.REVIEW}

    clock.advance(3 * 86400)
    world.worker.run_once()
    assert world.sent() == []

    first, second = rows[0], rows[1]  # both past due now
    assert change_status(world.store, first, Status.QUEUED) is not None
    assert change_status(world.store, second, Status.CANCELLED, error_message="not for her")
    world.worker.run_once()  # approved past-due: sent at the next poll

    assert len(world.sent()) == 1
    assert world.store.get_row(first.id).status is Status.SENT
    assert {r.status for r in world.rows("a@example.com")[2:]} == {Status.REVIEW}


def test_status_counts_the_rows_that_need_review(
    build: Any, tmp_path: Path, clock: FakeClock
) -> None:
    world = build(custom_catalog(tmp_path, "lead_nurture", "review = true"))
    world.post("/webhook/christmas-signup", {"email": "a@example.com", "first_name": "Ann"})
    lines: list[str] = []

    cmd_status(world.store, clock, lines.append, argparse.Namespace())

    # SQLite counts every row; Notion reads (and counts) only the unfinished ones.
    assert lines[0] in ("5 rows: 5 review", "5 unfinished rows: 5 review")
    assert (
        "Needs review: 5 row(s); set Status to queued to approve one (cancelled to drop it)"
        in lines
    )


def test_review_goes_only_to_queued_or_cancelled_or_a_reschedules_skip() -> None:
    assert can_transition(Status.REVIEW, Status.QUEUED)
    assert can_transition(Status.REVIEW, Status.CANCELLED)
    assert not can_transition(Status.REVIEW, Status.SENT)
    assert not can_transition(Status.REVIEW, Status.FAILED)
    assert not can_transition(Status.QUEUED, Status.REVIEW)


# 5. Fallbacks instead of failures (a signup without first_name: tests/test_event_fields.py)

NO_FALLBACK = PACKAGED.replace('max_length = 100\nfallback = "there"\n', "max_length = 100\n")


def test_a_template_needs_only_the_names_it_does_not_guard() -> None:
    template = Template(
        "t",
        "{{ first_name }}, {{ offer | default('our offer') }}",
        "{% if city is defined %}{{ city }}{% endif %}{{ code }}{{ company_name }}",
    )

    assert template_needs(template) == {"first_name", "code", "company_name"}


def test_the_packaged_templates_need_nothing_an_event_may_leave_out() -> None:
    needed = NeededVariables.of(load_catalog(), load_packaged_templates())

    assert all(needs == {} for needs in needed.by_sequence.values())


def test_without_a_fallback_a_signup_missing_first_name_is_refused_naming_it(
    build: Any, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(NO_FALLBACK)
    world: World = build(load_catalog(path))

    refused = world.post("/webhook/christmas-signup", {"email": "a@example.com"})
    named = world.post("/webhook/christmas-signup", {"email": "b@example.com", "first_name": "B"})

    assert refused.status_code == 422
    assert refused.json()["error"].startswith("first_name: is required (template lead_nurture_")
    assert world.rows("a@example.com") == []
    assert named.status_code == 202 and len(world.rows("b@example.com")) == 5


def test_a_queue_file_from_before_time_zones_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    from notion_queue.store.sqlite import SqliteStore

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
        " first_name TEXT NOT NULL DEFAULT '', last_name TEXT NOT NULL DEFAULT '',"
        " business_name TEXT NOT NULL DEFAULT '', segment TEXT NOT NULL DEFAULT '',"
        " assessment_score REAL, assessment_data TEXT NOT NULL DEFAULT '{}', meeting_time TEXT,"
        " last_event TEXT NOT NULL DEFAULT '', unsubscribed INTEGER NOT NULL DEFAULT 0)"
    )
    old.execute("INSERT INTO contacts (id, email) VALUES ('c1', 'a@example.com')")
    old.commit()
    old.close()

    store = SqliteStore(path)
    contact, _ = store.upsert_contact(ContactData(email="a@example.com", time_zone="Asia/Tokyo"))
    store.close()

    assert contact.id == "c1" and contact.time_zone == "Asia/Tokyo"
