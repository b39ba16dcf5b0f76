"""An event carries into emails only the fields the catalog declares, typed; the business's own
values (campaign variables, links) can never be changed by an event (issue 10 §1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
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
from notion_queue.link_guard import link_problems, link_targets
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import Status, Template
from notion_queue.samples import ONBOARDING
from notion_queue.sequences import Catalog, load_catalog
from notion_queue.settings import Settings
from notion_queue.store.sqlite import SqliteStore
from notion_queue.template_check import check_templates
from notion_queue.templates import TemplateSource, load_packaged_templates
from notion_queue.web.app import create_app
from notion_queue.wiring import build_catalog
from tests.conftest import T0, WorkerFactory, new_row

PHISHING = {
    "email": "victim@example.com",
    "first_name": "Vic",
    "company_name": "Your Bank",
    "assessment_link": "https://evil.example/login",
    "sender_name": "Security Team",
}


class Pipeline:
    """The real app (TestClient) → journal → drainer → SQLite; the worker sends to an outbox."""

    def __init__(
        self, tmp_path: Path, clock: FakeClock, catalog: Catalog, make_worker: WorkerFactory
    ) -> None:
        self.clock = clock
        self.store = SqliteStore(tmp_path / "queue.sqlite3")
        self.journal = Journal(tmp_path / "intake.sqlite3")
        self.drainer = Drainer(self.journal, IntakeProcessor(self.store, catalog, clock), clock)
        self.outbox = OutboxMailer(tmp_path / "outbox", clock)
        self.worker = make_worker(self.store, self.outbox)
        app = create_app(
            Settings(), journal=self.journal, drainer=self.drainer, clock=clock, catalog=catalog
        )
        self.client = TestClient(app)

    def post(self, path: str, body: dict[str, Any] | bytes) -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = self.client.post(
            path, content=content, headers={"Content-Type": "application/json"}
        )
        self.drainer.drain_once()
        return response

    def send_due(self) -> list[Message]:
        self.worker.run_once()
        return [
            message_from_bytes(p.read_bytes()) for p in sorted(self.outbox.folder.glob("*.eml"))
        ]

    def close(self) -> None:
        self.journal.close()
        self.store.close()


@pytest.fixture
def pipeline(
    tmp_path: Path, clock: FakeClock, catalog: Catalog, make_worker: WorkerFactory
) -> Iterator[Pipeline]:
    built = Pipeline(tmp_path, clock, catalog, make_worker)
    yield built
    built.close()


def body_of(message: Message) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    texts = []
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(texts)


# The phishing signup of the issue


def test_phishing_signup_sends_the_email_the_business_wrote(pipeline: Pipeline) -> None:
    assert pipeline.post("/webhook/christmas-signup", PHISHING).status_code == 202

    messages = pipeline.send_due()

    assert len(messages) == 1
    body = body_of(messages[0])
    assert "BusinessX" in body and "https://businessx.com/assessment" in body
    assert "Sang" in body and "Hi Vic," in body
    for injected in ("Your Bank", "evil.example", "Security Team"):
        assert injected not in body
        assert injected not in str(messages[0]["Subject"])


def test_undeclared_fields_are_dropped_and_logged_once_each_without_the_value(
    pipeline: Pipeline,
) -> None:
    with capture_logs() as logs:
        assert pipeline.post("/webhook/christmas-signup", PHISHING).status_code == 202

    ignored = [e for e in logs if e["event"] == "event_field_ignored"]
    assert sorted(e["field"] for e in ignored) == ["assessment_link", "company_name", "sender_name"]
    logged = json.dumps(logs, default=str)
    for value in ("Your Bank", "evil.example", "Security Team"):
        assert value not in logged
    rows = pipeline.store.rows_for_email("victim@example.com")
    assert rows and all(r.variables() == {"first_name": "Vic", "timezone": "UTC"} for r in rows)


def test_campaign_variables_in_an_old_row_do_not_win(
    pipeline: Pipeline, make_worker: WorkerFactory
) -> None:
    injected = {k: v for k, v in PHISHING.items() if k not in ("email", "first_name")}
    pipeline.store.add_row(new_row(email="victim@example.com", variables=injected))

    messages = pipeline.send_due()

    body = body_of(messages[0])
    assert "BusinessX" in body and "https://businessx.com/assessment" in body and "Sang" in body
    assert "Your Bank" not in body and "evil.example" not in body and "Security" not in body


# Link targets: only declared url fields on their allowed hosts


@pytest.mark.parametrize(
    "portal_url",
    [
        "https://evil.example/sarah",
        "http://portal.businessx.com/sarah",
        "https://portal.businessx.com@evil.example/",
        "https://evil.example\\@portal.businessx.com/",
        "https://portal.businessx.com.evil.example/",
        "javascript:alert(1)",
        ["https://portal.businessx.com/"],
    ],
)
def test_portal_url_off_its_allowed_host_is_refused_naming_it(
    pipeline: Pipeline, portal_url: Any
) -> None:
    response = pipeline.post("/webhook/onboarding-start", {**ONBOARDING, "portal_url": portal_url})

    assert response.status_code == 422
    assert response.json()["error"].startswith("portal_url: ")
    assert pipeline.journal.backlog() == 0
    assert pipeline.store.rows_for_email(ONBOARDING["email"]) == []


def test_portal_url_on_the_business_portal_is_the_link(pipeline: Pipeline) -> None:
    assert pipeline.post("/webhook/onboarding-start", ONBOARDING).status_code == 202
    pipeline.clock.advance(hours=1)

    body = body_of(pipeline.send_due()[0])

    assert 'href="https://portal.businessx.com/sarah"' in body


def test_onboarding_without_portal_url_links_to_the_fallback(pipeline: Pipeline) -> None:
    body = {k: v for k, v in ONBOARDING.items() if k != "portal_url"}
    assert pipeline.post("/webhook/onboarding-start", body).status_code == 202
    pipeline.clock.advance(hours=1)

    html = body_of(pipeline.send_due()[0])

    assert 'href="https://portal.businessx.com"' in html


def test_an_old_row_linking_a_foreign_portal_links_to_the_fallback(pipeline: Pipeline) -> None:
    pipeline.store.add_row(
        new_row(
            sequence="onboarding",
            template_id="onboarding_phase1_email_1",
            variables={"portal_url": "https://evil.example/login"},
        )
    )

    html = body_of(pipeline.send_due()[0])

    assert "evil.example" not in html and 'href="https://portal.businessx.com"' in html


# Values that do not fit their declared type: 422 naming the field, never a 500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"email": "a@example.com", "assessment_data": [1, 2]}', "assessment_data"),
        (b'{"email": "a@example.com", "assessment_score": 1e400}', "assessment_score"),
        (b'{"email": "a@example.com", "red_systems": "many"}', "red_systems"),
        (b'{"email": "a@example.com", "red_systems": 2.5}', "red_systems"),
        (b'{"email": "a@example.com", "red_systems": true}', "red_systems"),
        (b'{"email": "a@example.com", "weakest_system_1": ["GPS"]}', "weakest_system_1"),
        (b'{"email": "a@example.com", "revenue_leak_total": "lots"}', "revenue_leak_total"),
        (b'{"email": "a@example.com", "call_date": "next Tuesday"}', "call_date"),
        (b'{"email": "a@example.com", "business_name": "' + b"x" * 201 + b'"}', "business_name"),
        (b'{"email": "a@example.com", "objection": "a\\u0000b"}', "objection"),
        (
            b'{"email": "a@example.com", "assessment_data": {"red_systems": "lots"}}',
            "assessment_data.red_systems",
        ),
    ],
)
def test_a_value_that_does_not_fit_its_type_is_refused_naming_the_field(
    pipeline: Pipeline, body: bytes, field: str
) -> None:
    response = pipeline.post("/webhook/christmas-signup", body)

    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}: ")
    assert pipeline.journal.backlog() == 0


def test_assessment_data_keys_are_taken_as_their_declared_fields(pipeline: Pipeline) -> None:
    body = {
        "email": "sarah@example.com",
        "first_name": "Sarah",
        "assessment_score": 52,
        "assessment_data": {
            "red_systems": 2,
            "weakest_system_1": "GPS",
            "revenue_leak_total": 14700,
            "sender_name": "Security Team",
        },
    }
    with capture_logs() as logs:
        assert pipeline.post("/webhook/christmas-signup", body).status_code == 202

    variables = pipeline.store.rows_for_email("sarah@example.com")[0].variables()
    assert variables["red_systems"] == 2 and variables["WeakestSystem1"] == "GPS"
    assert variables["TotalRevenueLeak_K"] == "14.7" and variables["overall_score"] == 52
    assert "sender_name" not in variables and "assessment_data" not in variables
    assert [e["field"] for e in logs if e["event"] == "event_field_ignored"] == [
        "assessment_data.sender_name"
    ]
    contact = pipeline.store.find_contact("sarah@example.com")
    assert contact is not None and contact.segment == "CRITICAL"


def test_numbers_sent_as_text_are_taken_as_numbers(pipeline: Pipeline) -> None:
    body = {"email": "sarah@example.com", "red_systems": "2", "revenue_leak_total": "14700"}
    assert pipeline.post("/webhook/christmas-signup", body).status_code == 202

    variables = pipeline.store.rows_for_email("sarah@example.com")[0].variables()
    assert variables["red_systems"] == 2 and variables["TotalRevenueLeak_K"] == "14.7"


# Meeting links from Cal.com and Calendly


def calcom_booking(video_url: str) -> dict[str, Any]:
    start = T0 + timedelta(days=5)
    return {
        "triggerEvent": "BOOKING_CREATED",
        "createdAt": T0.isoformat(),
        "payload": {
            "uid": "booking-1",
            "startTime": start.isoformat(),
            "endTime": (start + timedelta(minutes=30)).isoformat(),
            "attendees": [{"email": "guest@example.com", "name": "Guest Person"}],
            "metadata": {"videoCallUrl": video_url},
        },
    }


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://us05web.zoom.us/j/123?pwd=abc", True),
        ("https://zoom.us/j/123", True),
        ("https://meet.google.com/abc-defg-hij", True),
        ("https://zoom.us.evil.example/j/123", False),
        ("https://evilzoom.us/j/123", False),
        ("http://meet.google.com/abc-defg-hij", False),
    ],
)
def test_a_calendly_join_url_is_kept_only_on_a_video_host(
    pipeline: Pipeline, url: str, kept: bool
) -> None:
    body = {
        "event": "invitee.created",
        "created_at": T0.isoformat(),
        "payload": {
            "uri": "https://api.calendly.com/scheduled_events/E1/invitees/I1",
            "email": "guest@example.com",
            "name": "Guest Person",
            "scheduled_event": {
                "start_time": (T0 + timedelta(days=5)).isoformat(),
                "location": {"type": "zoom", "join_url": url},
            },
        },
    }
    assert pipeline.post("/webhook/calendly", body).status_code == 202

    rows = pipeline.store.rows_for_email("guest@example.com")
    assert len(rows) == 3
    assert {r.variables().get("meeting_url") for r in rows} == ({url} if kept else {None})


def test_a_booking_video_link_on_a_known_host_is_kept(pipeline: Pipeline) -> None:
    url = "https://app.cal.com/video/abc123"
    assert pipeline.post("/webhook/calcom-booking", calcom_booking(url)).status_code == 202

    rows = pipeline.store.rows_for_email("guest@example.com")
    assert {r.variables().get("meeting_url") for r in rows} == {url}


def test_a_booking_video_link_on_another_host_is_left_out_and_the_booking_kept(
    pipeline: Pipeline,
) -> None:
    with capture_logs() as logs:
        response = pipeline.post(
            "/webhook/calcom-booking", calcom_booking("https://evil.example/join")
        )

    assert response.status_code == 202
    rows = pipeline.store.rows_for_email("guest@example.com")
    assert len(rows) == 3 and all("meeting_url" not in r.variables() for r in rows)
    dropped = [e for e in logs if e["event"] == "event_field_dropped"]
    assert len(dropped) == 1 and dropped[0]["log_level"] == "warning"
    assert "meeting_url" in dropped[0]["reason"] and "evil" not in dropped[0]["reason"]
    # The last reminder reads well without the link.
    pipeline.clock.advance(days=5, hours=-2)
    bodies = [body_of(m) for m in pipeline.send_due()]
    last = [b for b in bodies if "starts in about two hours" in b]
    assert len(last) == 1 and "joining link in your calendar invite" in last[0]
    assert not any("evil.example" in b for b in bodies)


# The catalog's declarations are checked at load

BASE_CATALOG = """
[variables]
company_name = "BusinessX"

[sequences.lead_nurture]
steps = [{ template = "lead_nurture_email_1" }]
"""


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ('[fields.score]\ntype = "decimal"', "field 'score': type 'decimal' is not one of"),
        ('[fields.portal]\ntype = "url"', "field 'portal': a url field needs allowed_hosts"),
        (
            '[fields.portal]\ntype = "url"\nallowed_hosts = []',
            "field 'portal': a url field needs allowed_hosts",
        ),
        (
            '[fields.portal]\ntype = "url"\nallowed_hosts = ["https://x.com/"]',
            "field 'portal': allowed host 'https://x.com/' is not a host name",
        ),
        (
            '[fields.company_name]\ntype = "text"\nmax_length = 50',
            "field 'company_name' has the name of a campaign variable",
        ),
        ('[fields.note]\ntype = "text"', "field 'note': a text field needs max_length"),
        (
            '[fields.note]\ntype = "text"\nmax_length = 5\nfallback = "too long"',
            "field 'note': fallback is longer than 5 characters",
        ),
        (
            '[fields.link]\ntype = "url"\nallowed_hosts = ["a.com"]\nfallback = "https://b.com"',
            "field 'link': fallback links to a host that is not allowed",
        ),
        (
            '[fields.score]\ntype = "integer"\nmax_length = 3',
            "field 'score': 'max_length' does not apply to a integer field",
        ),
        ('[fields.unsubscribe_url]\ntype = "text"\nmax_length = 9', "set by notion-queue"),
        ('[fields."first name"]\ntype = "text"\nmax_length = 9', "a name is letters"),
    ],
)
def test_a_wrong_field_declaration_stops_the_load_naming_where(
    tmp_path: Path, declaration: str, message: str
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(BASE_CATALOG + "\n" + declaration + "\n")

    with pytest.raises(ConfigError) as raised:
        load_catalog(path)

    text = str(raised.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_catalog_without_fields_loads_and_says_events_carry_nothing(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(BASE_CATALOG)

    with capture_logs() as logs:
        loaded = load_catalog(path)

    assert loaded.fields == {}
    assert [e["catalog"] for e in logs if e["event"] == "catalog_declares_no_fields"] == [str(path)]


def test_the_packaged_catalog_declares_the_seeds_fields(catalog: Catalog) -> None:
    seeds = {
        "first_name",
        "business_name",
        "assessment_score",
        "assessment_data",
        "red_systems",
        "orange_systems",
        "yellow_systems",
        "green_systems",
        "weakest_system_1",
        "weakest_system_2",
        "strongest_system",
        "revenue_leak_total",
        "call_date",
        "payment_date",
        "portal_url",
        "diagnostic_call_date",
        "objection",
        "scheduled_time",
        "meeting_url",
    }
    assert seeds <= set(catalog.fields)
    assert not set(catalog.fields) & set(catalog.variables)
    assert catalog.fields["portal_url"].allowed_hosts == ("portal.businessx.com",)


# No template may put an event's value in a link


def test_a_template_linking_an_event_value_is_named_with_the_variable(catalog: Catalog) -> None:
    template = Template(
        "sneaky_email", "Hi", '<p><a href="{{ first_name }}">x</a> <img src="{{ logo }}"></p>'
    )

    problems = link_problems(template, link_targets(catalog.variables, ["portal_url"]))

    assert len(problems) == 2
    assert "'sneaky_email'" in problems[0] and "{{ first_name }} in a href" in problems[0]
    assert "{{ logo }} in a src" in problems[1]


def test_the_packaged_templates_link_only_the_business_values(catalog: Catalog) -> None:
    results = check_templates(catalog, load_packaged_templates())

    assert [r.problem for r in results if r.problem] == []


def test_templates_check_reports_a_template_that_links_an_event_value(catalog: Catalog) -> None:
    edited = Template("lead_nurture_email_1", "Hi", '<a href="{{ business_name }}">Start</a>')

    results = check_templates(catalog, {**load_packaged_templates(), edited.template_id: edited})

    problems = [(r.template_id, r.problem) for r in results if r.problem]
    assert len(problems) == 1 and problems[0][0] == "lead_nurture_email_1"
    assert "{{ business_name }} in a href" in str(problems[0][1])


def test_a_template_that_turns_escaping_off_is_refused(catalog: Catalog) -> None:
    template = Template("tip_email", "Hi", "<p>{{ personalized_tip_1 | safe }}</p>")

    problems = link_problems(template, link_targets(catalog.variables, []))

    assert problems == [
        "template 'tip_email' turns HTML escaping off (| safe or autoescape); "
        "a value could then bring its own link"
    ]


def test_a_catalog_that_stops_declaring_a_linked_field_does_not_start(tmp_path: Path) -> None:
    packaged = (Path(__file__).parents[1] / "notion_queue" / "sequences.toml").read_text()
    start = packaged.index("[fields.portal_url]")
    end = packaged.index("[", start + 1)
    path = tmp_path / "catalog.toml"
    path.write_text(packaged[:start] + packaged[end:])

    with pytest.raises(ConfigError) as raised:
        build_catalog(Settings(sequences_file=path))

    assert "'onboarding_phase1_email_1' puts {{ portal_url }} in a href" in str(raised.value)


def test_the_worker_fails_a_row_whose_edited_template_links_an_event_value(
    pipeline: Pipeline, clock: FakeClock
) -> None:
    edited = Template(
        "lead_nurture_email_1", "Hi {{ first_name }}", '<a href="{{ first_name }}">Log in</a>'
    )
    pipeline.worker.templates = TemplateSource(
        pipeline.store, clock, packaged={"lead_nurture_email_1": edited}
    )
    row = pipeline.store.add_row(new_row(first_name="https://evil.example"))

    summary = pipeline.worker.run_once()

    assert summary.outcomes.get("failed") == 1 and pipeline.send_due() == []
    failed = pipeline.store.get_row(row.id)
    assert failed.status == Status.FAILED and "{{ first_name }} in a href" in failed.error_message


# Fallbacks


def test_a_signup_without_first_name_delivers_hi_there(
    tmp_path: Path, clock: FakeClock, make_worker: WorkerFactory
) -> None:
    catalog = load_catalog()  # the packaged catalog gives first_name the fallback "there"
    pipeline = Pipeline(tmp_path, clock, catalog, make_worker)
    try:
        response = pipeline.post(
            "/webhook/christmas-signup", {"email": "a@example.com", "business_name": "A's"}
        )
        assert response.status_code == 202
        messages = pipeline.send_due()
    finally:
        pipeline.close()

    assert catalog.fields["first_name"].fallback == "there"
    assert len(messages) == 1 and "Hi there," in body_of(messages[0])
