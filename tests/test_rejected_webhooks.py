"""A webhook the server refuses leaves one `event_rejected` line an operator can grep for:
the endpoint, the status and the reason, never the body or a secret."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.intake.journal import Journal
from notion_queue.settings import Settings
from notion_queue.web.app import create_app

SECRET = "website-webhook-secret-for-tests"
SIGNUP = "/webhook/christmas-signup"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(tmp_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    journal = Journal(tmp_path / "intake.sqlite3")
    settings = Settings(webhook_secret=SECRET)  # type: ignore[arg-type]
    yield TestClient(create_app(settings, journal=journal, drainer=None, clock=clock))
    journal.close()


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {**JSON, "X-Webhook-Signature": f"sha256={digest}"}


def rejections(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "event_rejected"]


MARKER = "hostile-body-marker-7f3a"


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (
            json.dumps({"email": "sarah@example.com", "note": MARKER}).encode(),
            {**JSON, "X-Webhook-Signature": "sha256=" + "0" * 64},
            401,
            "X-Webhook-Signature does not match the body",
        ),
        (
            json.dumps({"email": "sarah@example.com", "note": MARKER}).encode(),
            JSON,
            401,
            "missing X-Webhook-Signature header",
        ),
        (b"{not json " + MARKER.encode(), None, 400, "body is not valid JSON"),
        (b'["' + MARKER.encode() + b'"]', None, 400, "body must be a JSON object"),
        (b'{"first_name": "' + MARKER.encode() + b'"}', None, 422, "email: Field required"),
        (
            b'{"email": "' + MARKER.encode() + b'@"}',
            None,
            422,
            "email: … is not a valid email address",
        ),
        (b'{"x": "' + MARKER.encode() * 3000 + b'"}', None, 413, "body is larger than 64 KiB"),
    ],
)
def test_a_rejected_webhook_logs_endpoint_status_and_reason_without_body_or_secret(
    client: TestClient,
    body: bytes,
    headers: dict[str, str] | None,
    status: int,
    reason: str,
) -> None:
    with capture_logs() as logs:
        response = client.post(SIGNUP, content=body, headers=headers or signed(body))

    assert response.status_code == status
    [line] = rejections(logs)
    assert line["endpoint"] == SIGNUP
    assert line["status"] == status
    assert line["stage"] == "request"
    assert reason in line["reason"]
    logged = repr(logs)
    assert MARKER not in logged and SECRET not in logged


def test_a_post_to_an_endpoint_that_does_not_exist_is_logged_as_rejected(
    client: TestClient,
) -> None:
    with capture_logs() as logs:
        response = client.post("/webhook/no-such-thing", content=b"{}", headers=JSON)

    assert response.status_code == 404
    [line] = rejections(logs)
    assert line["endpoint"] == "/webhook/no-such-thing" and line["status"] == 404
    assert line["reason"] == "no such endpoint (unknown, or off in these settings)"


def test_an_accepted_webhook_is_not_logged_as_rejected(client: TestClient) -> None:
    body = json.dumps({"email": "sarah@example.com", "first_name": "Sarah"}).encode()

    with capture_logs() as logs:
        response = client.post(SIGNUP, content=body, headers=signed(body))

    assert response.status_code == 202
    assert rejections(logs) == []
    assert [e["event"] for e in logs] == ["event_accepted"]
