"""Sequences and triggers are data: the catalog's [triggers.*], `anchor` and `cancels` are what
run, campaign copy lives in the catalog, and a new sequence with its endpoint needs no code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.errors import ConfigError
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import QueueRow, Status, Template
from notion_queue.samples import ASSESSMENT, NOSHOW, POSTCALL_MAYBE, SIGNUP
from notion_queue.sequences import Catalog, load_catalog
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.web.app import create_app
from notion_queue.wiring import build_catalog, store_connector
from tests.conftest import T0, WorkerFactory, World, make_notion_world
from tests.signed_webhooks import CALCOM_SECRET, CALENDLY_KEY
from tests.test_funnel import MEETING, Funnel, calcom_booking
from tests.test_funnel import calendly_invitee as calendly_invitee_payload

PACKAGED = (Path(__file__).parents[1] / "notion_queue" / "sequences.toml").read_text()
JSON = {"Content-Type": "application/json"}


def custom_catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return path


def edited(old: str, new: str) -> str:
    """The packaged catalog with one passage replaced (which must be there)."""
    assert old in PACKAGED, old
    return PACKAGED.replace(old, new)


class Intake(Funnel):
    """The real app (TestClient) → journal → drainer → the store, with a given catalog."""

    def __init__(
        self,
        tmp_path: Path,
        store: QueueStore,
        clock: FakeClock,
        catalog: Catalog,
        *,
        testing_mode: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.journal = Journal(tmp_path / f"intake-{id(self)}.sqlite3")
        self.drainer = Drainer(
            self.journal,
            IntakeProcessor(store, catalog, clock, testing_mode=testing_mode),
            clock,
            connect=store_connector(store, catalog),
        )
        settings = Settings(
            calcom_webhook_secret=CALCOM_SECRET,  # type: ignore[arg-type]
            calendly_webhook_signing_key=CALENDLY_KEY,  # type: ignore[arg-type]
        )
        app = create_app(
            settings, journal=self.journal, drainer=self.drainer, clock=clock, catalog=catalog
        )
        self.client = TestClient(app)


@pytest.fixture
def make_intake(tmp_path: Path, store: QueueStore, clock: FakeClock) -> Any:
    built: list[Intake] = []

    def make(text: str | None = None, **options: Any) -> Intake:
        path = custom_catalog(tmp_path, text) if text is not None else None
        intake = Intake(
            tmp_path, store, clock, build_catalog(Settings(sequences_file=path)), **options
        )
        built.append(intake)
        return intake

    yield make
    for intake in built:
        intake.journal.close()


def schedule(rows: list[QueueRow]) -> list[tuple[str, datetime | None, str]]:
    return [(r.template_id, r.scheduled_time, r.status_text) for r in rows]


# -- the packaged catalog holds the seed endpoints and the providers' triggers


def test_the_packaged_catalog_names_what_each_trigger_starts_and_cancels(catalog: Catalog) -> None:
    starts = {name: trigger.starts for name, trigger in catalog.triggers.items()}
    cancels = {name: t.cancels for name, t in catalog.triggers.items() if t.cancels}

    assert starts == {
        "christmas-signup": ("lead_nurture",),
        "christmas-assessment": ("five_day",),
        "calendly-noshow": ("noshow_recovery",),
        "postcall-maybe": ("postcall_maybe",),
        "onboarding-start": ("onboarding",),
        "booking": ("precall_prep",),
        "booking_cancelled": (),
        "no_show": ("noshow_recovery",),
        "no_show_removed": (),
    }
    assert cancels == {
        "booking_cancelled": ("precall_prep",),
        "no_show_removed": ("noshow_recovery",),
    }
    assert [t.name for t in catalog.website_triggers()] == [
        "christmas-signup",
        "christmas-assessment",
        "calendly-noshow",
        "postcall-maybe",
        "onboarding-start",
    ]


def test_a_website_event_keeps_its_trigger_name_as_its_kind(make_intake: Any) -> None:
    intake = make_intake()
    intake.post("/webhook/christmas-signup", SIGNUP)

    rows = intake.rows(SIGNUP["email"])
    assert rows and all(r.dedupe_key.startswith("christmas-signup:") for r in rows)
    contact = intake.store.find_contact(SIGNUP["email"])
    assert contact is not None and contact.last_event == "christmas-signup"


def test_provider_trigger_names_create_no_endpoint(make_intake: Any) -> None:
    intake = make_intake()
    for name in ("booking", "booking_cancelled", "no_show", "no_show_removed"):
        response = intake.client.post(f"/webhook/{name}", json={"email": "a@example.com"})
        assert response.status_code == 404, name


# -- editing `cancels` or `anchor` in a custom catalog changes what happens


def test_without_cancels_on_five_day_an_assessment_leaves_lead_nurture_running(
    make_intake: Any,
) -> None:
    intake = make_intake(
        edited(
            'anchor = "email_1_sent_at"\ncancels = ["lead_nurture"]\n',
            'anchor = "email_1_sent_at"\n',
        )
    )
    intake.post("/webhook/christmas-signup", {**SIGNUP, "email": "customer@example.com"})
    intake.clock.advance(hours=3)
    intake.post("/webhook/christmas-assessment", ASSESSMENT)

    nurture = intake.rows("customer@example.com", "lead_nurture")
    assert len(nurture) == 5 and {r.status for r in nurture} == {Status.QUEUED}
    assert len(intake.rows("customer@example.com", "five_day")) == 5


def test_with_the_packaged_catalog_an_assessment_ends_lead_nurture(make_intake: Any) -> None:
    intake = make_intake()
    intake.post("/webhook/christmas-signup", {**SIGNUP, "email": "customer@example.com"})
    intake.clock.advance(hours=3)
    intake.post("/webhook/christmas-assessment", ASSESSMENT)

    nurture = intake.rows("customer@example.com", "lead_nurture")
    assert {r.status for r in nurture} == {Status.CANCELLED}


def test_cancels_added_to_postcall_maybe_make_a_post_call_event_end_five_day(
    make_intake: Any,
) -> None:
    intake = make_intake(
        edited(
            '[sequences.postcall_maybe]\ndescription = "Nurture leads who want to think about it '
            'after the call"\nanchor = "event"\n',
            '[sequences.postcall_maybe]\ndescription = "Nurture leads who want to think about it '
            'after the call"\nanchor = "event"\ncancels = ["five_day"]\n',
        )
    )
    email = POSTCALL_MAYBE["email"]
    intake.post("/webhook/christmas-assessment", {**ASSESSMENT, "email": email})
    intake.clock.advance(hours=1)
    intake.post("/webhook/postcall-maybe", POSTCALL_MAYBE)

    five_day = intake.rows(email, "five_day")
    assert [r.status for r in five_day] == [Status.SENT] + [Status.CANCELLED] * 4
    assert {r.error_message for r in five_day[1:]} == {
        "cancelled: postcall_maybe started 2025-12-01 11:00 UTC"
    }
    assert {r.status for r in intake.rows(email, "postcall_maybe")} == {Status.QUEUED}


def test_without_the_added_cancels_a_post_call_event_leaves_five_day_alone(
    make_intake: Any,
) -> None:
    intake = make_intake()
    email = POSTCALL_MAYBE["email"]
    intake.post("/webhook/christmas-assessment", {**ASSESSMENT, "email": email})
    intake.post("/webhook/postcall-maybe", POSTCALL_MAYBE)

    assert [r.status for r in intake.rows(email, "five_day")] == [Status.SENT] + [Status.QUEUED] * 4


def test_a_cancel_reason_in_the_catalog_is_the_rows_error_message(make_intake: Any) -> None:
    intake = make_intake(
        edited(
            'cancel_reason = "assessment completed {event_time}"',
            'cancel_reason = "scored {event_time}, sent {anchor_time}"',
        )
    )
    intake.post("/webhook/christmas-signup", {**SIGNUP, "email": "customer@example.com"})
    intake.post("/webhook/christmas-assessment", ASSESSMENT)

    nurture = intake.rows("customer@example.com", "lead_nurture")
    assert {r.error_message for r in nurture} == {
        "cancelled: scored 2025-12-01 10:00 UTC, sent 2025-12-01 10:30 UTC"
    }


def test_changing_five_days_anchor_to_the_event_changes_its_scheduled_times(
    make_intake: Any,
) -> None:
    intake = make_intake(edited('anchor = "email_1_sent_at"', 'anchor = "event"'))
    intake.clock.advance(hours=3)
    intake.post("/webhook/christmas-assessment", ASSESSMENT)

    received = T0 + timedelta(hours=3)  # not email_1_sent_at (10:30)
    assert [r.scheduled_time for r in intake.rows("customer@example.com", "five_day")] == [
        received,
        received + timedelta(hours=24),
        received + timedelta(hours=72),
        received + timedelta(hours=96),
        received + timedelta(hours=120),
    ]


def test_changing_an_event_anchor_to_email_1_sent_at_anchors_on_that_field(
    make_intake: Any,
) -> None:
    intake = make_intake(
        edited(
            '[sequences.lead_nurture]\ndescription = "Warm up new leads and drive them to the '
            'assessment"\nanchor = "event"',
            '[sequences.lead_nurture]\ndescription = "Warm up new leads and drive them to the '
            'assessment"\nanchor = "email_1_sent_at"',
        )
    )
    sent_at = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
    intake.post("/webhook/christmas-signup", {**SIGNUP, "email_1_sent_at": "2025-12-01T09:00:00Z"})

    rows = intake.rows(SIGNUP["email"], "lead_nurture")
    assert [r.scheduled_time for r in rows] == [
        sent_at + timedelta(days=d) for d in (0, 2, 4, 6, 8)
    ]


def test_a_trigger_that_only_cancels_ends_those_rows_naming_itself(make_intake: Any) -> None:
    intake = make_intake(PACKAGED + '\n[triggers.unregister]\ncancels = ["lead_nurture"]\n')
    intake.post("/webhook/christmas-signup", SIGNUP)
    intake.clock.advance(hours=1)

    response = intake.post("/webhook/unregister", {"email": SIGNUP["email"]})

    assert response.status_code == 202
    rows = intake.rows(SIGNUP["email"])
    assert [r.sequence for r in rows] == ["lead_nurture"] * 5
    assert {r.error_message for r in rows} == {
        "cancelled: unregister received 2025-12-01 11:00 UTC"
    }


# -- the providers' events: what they start and cancel is the catalog's


def test_a_booking_starts_what_the_booking_trigger_names(make_intake: Any) -> None:
    intake = make_intake(
        edited('[triggers.booking]\nstarts = ["precall_prep"]', "[triggers.booking]\nstarts = []")
    )
    intake.post("/webhook/christmas-assessment", {**ASSESSMENT, "email": "guest@example.com"})

    assert intake.calcom("BOOKING_CREATED", calcom_booking()).status_code == 202

    assert intake.rows("guest@example.com", "precall_prep") == []
    # precall_prep did not start, so its exit rules did not run either
    five_day = intake.rows("guest@example.com", "five_day")
    assert {r.status for r in five_day[1:]} == {Status.QUEUED}
    contact = intake.store.find_contact("guest@example.com")
    assert contact is not None and contact.meeting_time == MEETING


def test_a_reschedule_moves_only_the_meetings_own_sequences(make_intake: Any) -> None:
    intake = make_intake(
        edited(
            '[triggers.booking]\nstarts = ["precall_prep"]',
            '[triggers.booking]\nstarts = ["precall_prep", "postcall_maybe"]',
        )
    )
    intake.calcom("BOOKING_CREATED", calcom_booking())
    thanks = intake.rows("guest@example.com", "postcall_maybe")
    assert [r.scheduled_time for r in thanks] == [
        T0 + timedelta(hours=1),
        T0 + timedelta(days=3),
        T0 + timedelta(days=7),
    ]
    later = MEETING + timedelta(days=2)

    intake.clock.advance(hours=1)
    intake.calcom(
        "BOOKING_RESCHEDULED",
        calcom_booking(uid="booking-2", start=later, rescheduleUid="booking-1"),
    )

    precall = intake.rows("guest@example.com", "precall_prep")
    assert len(precall) == 3 and {r.expires_at for r in precall} == {later}
    # an event-anchored sequence the booking started is neither moved nor started again
    assert intake.rows("guest@example.com", "postcall_maybe") == thanks

    intake.calcom("BOOKING_CANCELLED", calcom_booking(status="CANCELLED", requestReschedule=True))
    assert {r.status for r in intake.rows("guest@example.com", "precall_prep")} == {Status.WAITING}
    assert {r.status for r in intake.rows("guest@example.com", "postcall_maybe")} == {Status.QUEUED}


def test_a_cancellation_cancels_what_the_booking_cancelled_trigger_names(
    make_intake: Any,
) -> None:
    intake = make_intake(
        edited(
            '[triggers.booking_cancelled]\ncancels = ["precall_prep"]',
            '[triggers.booking_cancelled]\ncancels = ["precall_prep", "lead_nurture"]',
        )
    )
    intake.post("/webhook/christmas-signup", {**SIGNUP, "email": "guest@example.com"})
    intake.calcom("BOOKING_CREATED", calcom_booking())

    intake.calcom(
        "BOOKING_CANCELLED", calcom_booking(status="CANCELLED", cancellationReason="sick")
    )

    for sequence in ("precall_prep", "lead_nurture"):
        rows = intake.rows("guest@example.com", sequence)
        assert {r.status for r in rows} == {Status.CANCELLED}, sequence
        assert {r.error_message for r in rows} == {"cancelled: call cancelled (sick)"}


def test_a_calendly_no_show_starts_what_the_no_show_trigger_names(make_intake: Any) -> None:
    intake = make_intake(
        edited(
            '[triggers.no_show]\nstarts = ["noshow_recovery"]',
            '[triggers.no_show]\nstarts = ["postcall_maybe"]',
        )
    )
    marked = calendly_invitee_payload(
        no_show={"uri": "https://api.calendly.com/invitee_no_shows/NS", "created_at": "x"}
    )
    intake.calendly("invitee_no_show.created", marked)

    assert intake.rows("john.doe@example.com", "noshow_recovery") == []
    assert len(intake.rows("john.doe@example.com", "postcall_maybe")) == 3


def test_without_a_no_show_removed_trigger_a_removal_cancels_nothing(make_intake: Any) -> None:
    intake = make_intake(edited('[triggers.no_show_removed]\ncancels = ["noshow_recovery"]\n', ""))
    mark = {"uri": "https://api.calendly.com/invitee_no_shows/NS", "created_at": "x"}
    intake.calendly("invitee_no_show.created", calendly_invitee_payload(no_show=mark))
    intake.calendly("invitee_no_show.deleted", calendly_invitee_payload(no_show=mark))

    rows = intake.rows("john.doe@example.com", "noshow_recovery")
    assert len(rows) == 3 and {r.status for r in rows} == {Status.QUEUED}


# -- campaign copy is the catalog's


def test_the_personalized_tip_comes_from_the_catalogs_tips(make_intake: Any) -> None:
    packaged = make_intake()
    packaged.post("/webhook/christmas-signup", SIGNUP)
    tip = packaged.rows(SIGNUP["email"])[0].variables()["personalized_tip_1"]
    assert tip.startswith("Write down the three numbers")

    custom = make_intake(edited("GPS = ", 'GPS = "Check your dashboard on Mondays."\nUNUSED = '))
    custom.post("/webhook/christmas-signup", {**SIGNUP, "email": "other@example.com"})

    variables = custom.rows("other@example.com")[0].variables()
    assert variables["personalized_tip_1"] == "Check your dashboard on Mondays."


def test_no_campaign_copy_is_left_in_the_intake_code() -> None:
    source = (Path(__file__).parents[1] / "notion_queue" / "intake").glob("*.py")
    text = "\n".join(path.read_text() for path in source)
    assert "TIPS" not in text and "Write down the three numbers" not in text


# -- checked at start-up, one line saying where


@pytest.mark.parametrize(
    ("addition", "message"),
    [
        (
            '[triggers.webinar-signup]\nstarts = ["webinar"]\n',
            "trigger 'webinar-signup' starts unknown sequence 'webinar'",
        ),
        (
            '[triggers.webinar-signup]\ncancels = ["nurture"]\n',
            "trigger 'webinar-signup' cancels unknown sequence 'nurture'",
        ),
        (
            '[triggers.calcom-booking]\nstarts = ["lead_nurture"]\n',
            "trigger 'calcom-booking' has the name of a built-in endpoint",
        ),
        (
            '[triggers.unsubscribe]\nstarts = ["lead_nurture"]\n',
            "trigger 'unsubscribe' has the name of a built-in endpoint",
        ),
        (
            '[triggers.no-show]\nstarts = ["lead_nurture"]\n',
            "trigger 'no-show' looks like the reserved trigger 'no_show'",
        ),
        (
            '[triggers."sign up"]\nstarts = ["lead_nurture"]\n',
            "trigger 'sign up' is not a URL path segment",
        ),
        (
            '[triggers."a/b"]\nstarts = ["lead_nurture"]\n',
            "trigger 'a/b' is not a URL path segment",
        ),
        (
            '[triggers.webinar-signup]\nstart = ["lead_nurture"]\n',
            "trigger 'webinar-signup': 'start' is not a trigger setting",
        ),
        (
            '[triggers.webinar-signup]\nstarts = ["lead_nurture", "lead_nurture"]\n',
            "trigger 'webinar-signup': starts names 'lead_nurture' twice",
        ),
        (
            '[triggers.webinar-signup]\nstarts = "lead_nurture"\n',
            "trigger 'webinar-signup': starts must be a list of sequence names",
        ),
        (
            '[triggers.webinar-signup]\nstarts = ["precall_prep"]\n',
            "trigger 'webinar-signup' starts 'precall_prep', anchored on meeting_start",
        ),
        (
            (
                '[triggers.no_show]\nstarts = ["noshow_recovery"]',
                '[triggers.no_show]\nstarts = ["five_day"]',
            ),
            "trigger 'no_show' starts 'five_day', anchored on email_1_sent_at",
        ),
        (
            '[sequences.webinar]\ncancels = ["gone"]\nsteps = [{ template = "lead_nurture_email_1" }]\n',
            "sequence 'webinar' cancels unknown 'gone'",
        ),
        (
            '[sequences.webinar]\ncancels = ["lead_nurture"]\ncancel_reason = "at {when}"\n'
            'steps = [{ template = "lead_nurture_email_1" }]\n',
            "sequence 'webinar': cancel_reason may use {event_time} and {anchor_time}, not {when}",
        ),
        (('GPS = "Write', 'GPS = 3\nOLD_GPS = "Write'), "[tips]: GPS must be text"),
    ],
)
def test_a_wrong_trigger_stops_the_start_with_one_line_saying_where(
    tmp_path: Path, addition: str | tuple[str, str], message: str
) -> None:
    text = edited(*addition) if isinstance(addition, tuple) else PACKAGED + "\n" + addition
    path = custom_catalog(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        build_catalog(Settings(sequences_file=path))

    line = str(raised.value)
    assert line.startswith(f"{path}: ") and message in line and "\n" not in line


def test_a_catalog_without_triggers_loads_and_says_no_event_starts_anything(
    tmp_path: Path,
) -> None:
    start = PACKAGED.index("\n[triggers.")
    end = PACKAGED.index("\n[tips]")
    path = custom_catalog(tmp_path, PACKAGED[:start] + PACKAGED[end:])

    with capture_logs() as logs:
        loaded = load_catalog(path)

    assert loaded.triggers == {}
    assert [e["catalog"] for e in logs if e["event"] == "catalog_declares_no_triggers"] == [
        str(path)
    ]


def test_a_misspelt_catalog_table_is_named_in_a_warning(tmp_path: Path) -> None:
    path = custom_catalog(tmp_path, PACKAGED + '\n[trigger.webinar-signup]\nstarts = ["x"]\n')

    with capture_logs() as logs:
        load_catalog(path)

    [warning] = [e for e in logs if e["event"] == "catalog_table_ignored"]
    assert warning["table"] == "trigger" and warning["log_level"] == "warning"
    assert "triggers" in warning["effect"]


def test_a_trigger_removed_since_its_event_was_journaled_rejects_that_event(
    tmp_path: Path, store: QueueStore, clock: FakeClock, catalog: Catalog
) -> None:
    journal = Journal(tmp_path / "old.sqlite3")
    journal.append("webinar-signup", "webinar-signup:abc", {"email": "a@example.com"}, T0)
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)

    with capture_logs() as logs:
        drainer.drain_once()

    [rejected] = [e for e in logs if e["event"] == "event_rejected"]
    assert "no trigger 'webinar-signup' in the catalog" in rejected["reason"]
    journal.close()


# -- a template the catalog names must exist: packaged, or Active in the Templates database


def readme_example() -> str:
    """The README's webinar example, as written there: it must work as it is."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    found = re.search(r"```toml\n(\[sequences\.webinar_followup\].*?)```", readme, re.S)
    assert found, "README shows the webinar example"
    return "\n" + found.group(1)


WEBINAR = readme_example()
WEBINAR_TEMPLATE = Template(
    "webinar_email_1",
    "Your webinar seat, {{ first_name }}",
    "<p>Hi {{ first_name }}, see you at the {{ company_name }} webinar.</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
    active=True,
)


def test_an_unknown_template_keeps_the_servers_events_pending_and_readyz_says_where(
    tmp_path: Path, store: QueueStore, clock: FakeClock
) -> None:
    path = custom_catalog(tmp_path, PACKAGED + WEBINAR)
    intake = Intake(tmp_path, store, clock, build_catalog(Settings(sequences_file=path)))
    inactive = Template(WEBINAR_TEMPLATE.template_id, "s", "<p>x</p>", active=False)
    store.upsert_template(inactive)

    response = intake.post("/webhook/webinar-signup", SIGNUP)
    ready = intake.client.get("/readyz")

    assert response.status_code == 202
    assert intake.journal.backlog() == 1 and intake.rows(SIGNUP["email"]) == []
    assert ready.status_code == 503 and ready.json()["reason"] == "store configuration error"
    detail = ready.json()["last_error"]
    assert detail.startswith(f"{path}: sequence 'webinar_followup' step 1: unknown template")
    assert "'webinar_email_1'" in detail and "Active" in detail and "\n" not in detail

    # The marketer ticks Active: the waiting event becomes its rows.
    store.upsert_template(WEBINAR_TEMPLATE)
    clock.advance(600)
    intake.drainer.drain_once()
    assert intake.journal.backlog() == 0 and len(intake.rows(SIGNUP["email"])) == 1
    intake.journal.close()


def test_the_worker_stops_with_one_line_on_a_template_nowhere_to_be_found(
    tmp_path: Path,
) -> None:
    path = custom_catalog(tmp_path, PACKAGED + WEBINAR)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(
        SQLITE_PATH=str(tmp_path / "q.sqlite3"),
        STATE_DIR=str(tmp_path / "state"),
        OUTBOX_DIR=str(tmp_path / "outbox"),
        SEQUENCES_FILE=str(path),
        QUEUE_BACKEND="sqlite",
        MAIL_BACKEND="outbox",
    )
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "worker.py"), "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"notion-queue: {path}: sequence 'webinar_followup' step 1")
    assert "unknown template 'webinar_email_1'" in lines[0]


# -- the example that must work with no code changed


@pytest.mark.parametrize("testing_mode", [False, True])
def test_a_new_sequence_and_its_trigger_need_no_code(
    tmp_path: Path,
    world: World,
    clock: FakeClock,
    make_worker: WorkerFactory,
    testing_mode: bool,
) -> None:
    store = world.store
    store.upsert_template(WEBINAR_TEMPLATE)  # only in the store's Templates (Notion: a row)
    path = custom_catalog(tmp_path, PACKAGED + WEBINAR)
    catalog = build_catalog(Settings(sequences_file=path))
    intake = Intake(tmp_path, store, clock, catalog, testing_mode=testing_mode)
    email = "webinar@example.com"
    intake.post("/webhook/christmas-signup", {"email": email, "first_name": "Wendy"})
    clock.advance(minutes=30)

    response = intake.post("/webhook/webinar-signup", {"email": email, "first_name": "Wendy"})

    assert response.status_code == 202 and response.json()["status"] == "accepted"
    received = T0 + timedelta(minutes=30)
    later = timedelta(minutes=1) if testing_mode else timedelta(hours=1)
    assert schedule(intake.rows(email, "webinar_followup")) == [
        ("webinar_email_1", received + later, "queued")
    ]
    nurture = intake.rows(email, "lead_nurture")
    open_nurture = [r for r in nurture if r.status is not Status.SENT]
    assert open_nurture and {r.status for r in open_nurture} == {Status.CANCELLED}
    assert {r.error_message for r in open_nurture} == {
        "cancelled: webinar_followup started 2025-12-01 10:30 UTC"
    }

    clock.set(received + later)
    outbox = OutboxMailer(tmp_path / "outbox", clock)
    worker = make_worker(store, outbox)
    worker.run_once()

    [row] = intake.rows(email, "webinar_followup")
    assert row.status is Status.SENT
    [message] = [
        message_from_bytes(p.read_bytes())
        for p in outbox.folder.glob("*.eml")
        if "webinar" in p.read_bytes().decode("utf-8", "replace").lower()
    ]
    assert message["Subject"] == "Your webinar seat, Wendy"
    intake.journal.close()


def test_the_webinar_example_on_notion_reads_the_template_from_the_templates_database(
    tmp_path: Path, clock: FakeClock, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    world.store.upsert_template(WEBINAR_TEMPLATE)
    path = custom_catalog(tmp_path, PACKAGED + WEBINAR)
    intake = Intake(tmp_path, world.store, clock, build_catalog(Settings(sequences_file=path)))

    assert intake.post("/webhook/webinar-signup", {"email": "w@example.com"}).status_code == 202

    [row] = intake.rows("w@example.com")
    assert row.template_id == "webinar_email_1" and row.scheduled_time == T0 + timedelta(hours=1)
    intake.journal.close()


def test_a_catalog_of_packaged_templates_costs_no_templates_read_at_start(
    clock: FakeClock, catalog: Catalog
) -> None:
    world = make_notion_world(clock)  # its databases are resolved already
    connect = store_connector(world.store, catalog)
    assert connect is not None  # Notion still resolves its databases when it answers

    connect()

    assert world.fake.requests == []


def test_sqlite_with_packaged_templates_needs_no_connect(tmp_path: Path, catalog: Catalog) -> None:
    from notion_queue.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "q.sqlite3")
    assert store_connector(store, catalog) is None
    store.close()


def test_noshow_website_trigger_unchanged(make_intake: Any) -> None:
    intake = make_intake()
    intake.post("/webhook/calendly-noshow", NOSHOW)
    assert len(intake.rows(NOSHOW["email"], "noshow_recovery")) == 3


# -- a catalog trigger is a website endpoint like the others: same signature, same production rules


def webinar_app(tmp_path: Path, clock: FakeClock, settings: Settings) -> tuple[TestClient, Journal]:
    catalog = build_catalog(Settings(sequences_file=custom_catalog(tmp_path, PACKAGED + WEBINAR)))
    journal = Journal(tmp_path / "door.sqlite3")
    app = create_app(settings, journal=journal, drainer=None, clock=clock, catalog=catalog)
    return TestClient(app), journal


def test_a_catalog_trigger_checks_the_website_signature(tmp_path: Path, clock: FakeClock) -> None:
    import hashlib
    import hmac

    client, journal = webinar_app(tmp_path, clock, Settings(webhook_secret="site-secret"))  # type: ignore[arg-type]
    body = b'{"email": "w@example.com"}'
    mac = hmac.new(b"site-secret", body, hashlib.sha256).hexdigest()

    unsigned = client.post("/webhook/webinar-signup", content=body, headers=JSON)
    signed = client.post(
        "/webhook/webinar-signup",
        content=body,
        headers={**JSON, "X-Webhook-Signature": f"sha256={mac}"},
    )

    assert unsigned.status_code == 401 and signed.status_code == 202
    assert journal.backlog() == 1
    journal.close()


def test_a_catalog_trigger_follows_the_production_rules(tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(
        mail_backend="resend",
        resend_api_key="re_live_key",  # type: ignore[arg-type]
        public_base_url="https://funnel.businessx.com",
        allow_unsigned_webhooks=True,
        unsigned_requests_per_hour_per_address=1,
    )
    with capture_logs() as logs:
        client, journal = webinar_app(tmp_path, clock, settings)
        with client:
            first = client.post("/webhook/webinar-signup", json={"email": "w@example.com"})
            again = client.post("/webhook/webinar-signup", json={"email": "w@example.com"})

    assert first.status_code == 202 and again.status_code == 429
    protection = {
        e["endpoint"]: e["protection"] for e in logs if e["event"] == "endpoint_protection"
    }
    assert protection["/webhook/webinar-signup"] == "unsigned_rate_limited"
    assert "/webhook/booking" not in protection
    journal.close()


# -- `notion-queue templates check` reads the templates as the worker would send them


def test_templates_check_renders_a_template_that_is_only_in_the_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FakeClock,
) -> None:
    from notion_queue.cli import main
    from notion_queue.store.sqlite import SqliteStore

    for name in list(os.environ):
        if name.startswith(("NOTION_", "RESEND_", "QUEUE_", "SQLITE_", "MAIL_", "STATE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQUENCES_FILE", str(custom_catalog(tmp_path, PACKAGED + WEBINAR)))
    (tmp_path / "var").mkdir()
    lines: list[str] = []

    missing = main(["templates", "check"], out=lines.append, clock=clock)
    assert missing == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL webinar_email_1              no such template"
    ]

    store = SqliteStore(tmp_path / "var" / "queue.sqlite3")
    store.upsert_template(WEBINAR_TEMPLATE)
    store.close()
    lines.clear()

    assert main(["templates", "check"], out=lines.append, clock=clock) == 0
    assert "ok   webinar_email_1              Your webinar seat, Guest" in lines
    assert lines[-1] == "23 of 23 templates render with the seeds' payloads."
    capsys.readouterr()


class FlakyTemplates:
    """A store whose Templates cannot be read the first `failures` times (Notion blips)."""

    def __init__(self, failures: int, templates: dict[str, Template]) -> None:
        self.failures = failures
        self.templates = templates

    def all_templates(self) -> dict[str, Template]:
        from notion_queue.errors import RetryableError

        if self.failures:
            self.failures -= 1
            raise RetryableError("Notion answered 502")
        return self.templates


def test_the_workers_template_check_waits_out_a_store_blip(tmp_path: Path) -> None:
    from notion_queue.catalog_templates import check_stored_templates_waiting
    from notion_queue.templates import load_packaged_templates

    catalog = load_catalog(custom_catalog(tmp_path, PACKAGED + WEBINAR))
    store = FlakyTemplates(2, {"webinar_email_1": WEBINAR_TEMPLATE})
    waited: list[float] = []

    with capture_logs() as logs:
        check_stored_templates_waiting(
            catalog, load_packaged_templates(), store, pause=lambda s: waited.append(s) or False
        )

    assert len(waited) == 2 and store.failures == 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["store_unreachable"] * 2


def test_the_workers_template_check_still_stops_on_a_missing_template(tmp_path: Path) -> None:
    from notion_queue.catalog_templates import check_stored_templates_waiting
    from notion_queue.templates import load_packaged_templates

    catalog = load_catalog(custom_catalog(tmp_path, PACKAGED + WEBINAR))

    with pytest.raises(ConfigError, match="unknown template 'webinar_email_1'"):
        check_stored_templates_waiting(
            catalog, load_packaged_templates(), FlakyTemplates(1, {}), pause=lambda s: False
        )
