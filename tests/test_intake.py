"""Webhook → journal → drainer → rows, on both stores."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal, JournalEntry
from notion_queue.intake.processor import Applied
from notion_queue.models import Status
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.web.app import create_app
from tests.conftest import T0

SIGNUP = {"email": "sarah@example.com", "first_name": "Sarah"}


def client_for(
    journal: Journal, drainer: Drainer | None, clock: FakeClock, **settings: object
) -> TestClient:
    app = create_app(Settings(**settings), journal=journal, drainer=drainer, clock=clock)  # type: ignore[arg-type]
    return TestClient(app)


def test_signup_schedules_lead_nurture(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    client = client_for(journal, drainer, clock)

    response = client.post("/webhook/christmas-signup", json=SIGNUP)
    assert response.status_code == 202
    assert response.json()["event_id"].startswith("evt_")
    assert drainer.drain_once() == 1

    rows = store.rows_for_email("sarah@example.com")
    assert [r.template_id for r in rows] == [f"lead_nurture_email_{n}" for n in range(1, 6)]
    assert [r.scheduled_time for r in rows] == [T0 + timedelta(days=d) for d in (0, 2, 4, 6, 8)]
    assert [r.email_number for r in rows] == [1, 2, 3, 4, 5]
    assert {r.status for r in rows} == {Status.QUEUED}
    assert {r.first_name for r in rows} == {"Sarah"}
    contact = store.find_contact("sarah@example.com")
    assert contact is not None and {r.contact_id for r in rows} == {contact.id}
    assert contact.first_name == "Sarah" and contact.last_event == "christmas-signup"


def test_same_signup_twice_creates_rows_once(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    client = client_for(journal, drainer, clock)

    first = client.post("/webhook/christmas-signup", json=SIGNUP)
    clock.advance(60)
    second = client.post("/webhook/christmas-signup", json=SIGNUP)
    drainer.drain_once()

    assert first.status_code == second.status_code == 202
    assert second.json() == {**first.json(), "duplicate": True}
    assert len(store.rows_for_email("sarah@example.com")) == 5


def test_a_second_signup_does_not_start_a_second_sequence(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    client = client_for(journal, drainer, clock)
    client.post("/webhook/christmas-signup", json=SIGNUP)
    drainer.drain_once()
    clock.advance(hours=5)
    client.post("/webhook/christmas-signup", json={**SIGNUP, "business_name": "Salon"})
    drainer.drain_once()

    assert len(store.rows_for_email("sarah@example.com")) == 5


def test_testing_mode_uses_minutes(
    store: QueueStore, tmp_path: Path, clock: FakeClock, catalog: object
) -> None:
    from notion_queue.intake.processor import IntakeProcessor

    journal = Journal(tmp_path / "j.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock, testing_mode=True), clock)  # type: ignore[arg-type]
    client_for(journal, drainer, clock).post("/webhook/christmas-signup", json=SIGNUP)
    drainer.drain_once()

    rows = store.rows_for_email("sarah@example.com")
    assert [r.scheduled_time for r in rows] == [T0 + timedelta(minutes=m) for m in range(5)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"first_name": "Sarah"}, "email: Field required"),
        ({"email": "not-an-address"}, "email: 'not-an-address' is not a valid email address"),
        ({"email": ""}, "email: is required"),
        ({"email": 42}, "email: must be a string"),
    ],
)
def test_invalid_payload_is_422_naming_the_field_and_writes_nothing(
    body: dict[str, object], message: str, tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    response = client_for(journal, None, clock).post("/webhook/christmas-signup", json=body)

    assert response.status_code == 422
    assert response.json()["error"] == message
    assert journal.backlog() == 0


@pytest.mark.parametrize(
    ("sent_at", "message"),
    [
        ("0001-01-01T00:00:00+14:00", "is not a time between 2000 and 2100"),
        ("9999-12-31T23:00:00Z", "is not a time between 2000 and 2100"),
        ("2025-12-01T10:00:00", "has no timezone"),
    ],
)
def test_an_assessment_time_out_of_range_is_422_and_writes_nothing(
    sent_at: str, message: str, tmp_path: Path, clock: FakeClock
) -> None:
    """Found by the property test: year 1 at +14:00 passed the door, then crashed the drainer."""
    journal = Journal(tmp_path / "j.sqlite3")
    response = client_for(journal, None, clock).post(
        "/webhook/christmas-assessment", json={**SIGNUP, "email_1_sent_at": sent_at}
    )

    assert response.status_code == 422
    assert response.json()["error"].startswith("email_1_sent_at: ")
    assert message in response.json()["error"]
    assert journal.backlog() == 0


def test_non_json_is_400_and_huge_body_is_413(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    client = client_for(journal, None, clock)

    not_json = client.post(
        "/webhook/christmas-signup",
        content=b"email=sarah",
        headers={"Content-Type": "application/json"},  # text/plain is a 415: test_bad_input
    )
    a_list = client.post("/webhook/christmas-signup", json=[SIGNUP])
    huge = client.post("/webhook/christmas-signup", json={**SIGNUP, "notes": "x" * (65 * 1024)})

    assert not_json.status_code == 400 and not_json.json()["error"] == "body is not valid JSON"
    assert a_list.status_code == 400
    assert huge.status_code == 413
    assert journal.backlog() == 0


def test_website_signature_is_checked_when_a_secret_is_set(
    tmp_path: Path, clock: FakeClock
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    client = client_for(journal, None, clock, webhook_secret="website-secret")
    body = json.dumps(SIGNUP).encode()
    good = hmac.new(b"website-secret", body, hashlib.sha256).hexdigest()

    unsigned = client.post("/webhook/christmas-signup", content=body)
    forged = client.post(
        "/webhook/christmas-signup",
        content=body,
        headers={"X-Webhook-Signature": "sha256=" + "0" * 64},
    )
    assert unsigned.status_code == forged.status_code == 401
    assert journal.backlog() == 0
    signed = client.post(
        "/webhook/christmas-signup", content=body, headers={"X-Webhook-Signature": f"sha256={good}"}
    )
    assert signed.status_code == 202


def test_cors_preflight_is_answered_for_allowed_origins(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    client = client_for(journal, None, clock, cors_allow_origins="https://businessx.com")

    response = client.options(
        "/webhook/christmas-signup",
        headers={
            "Origin": "https://businessx.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://businessx.com"


def test_health_and_readiness(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    client = client_for(journal, None, clock)
    client.post("/webhook/christmas-signup", json=SIGNUP)

    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["journal_backlog"] == 1 and ready["store_ok"] is True


def test_an_event_that_hits_a_bug_is_kept_and_does_not_hold_up_the_others(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    journal.append("christmas-signup", "k1", {"email": "first@example.com"}, T0)
    journal.append("christmas-signup", "k2", {"email": "second@example.com"}, T0)
    real_apply = drainer.processor.apply

    def apply(entry: JournalEntry) -> Applied:
        if entry.event_key == "k1":
            raise OverflowError("date value out of range")
        return real_apply(entry)

    drainer.processor.apply = apply  # type: ignore[method-assign]

    assert drainer.drain_once() == 1

    assert len(store.rows_for_email("second@example.com")) == 5
    assert journal.backlog() == 1  # the first event waits, with its error, for a retry
    clock.advance(3600)
    drainer.processor.apply = real_apply  # type: ignore[method-assign]
    assert drainer.drain_once() == 1
    assert len(store.rows_for_email("first@example.com")) == 5
