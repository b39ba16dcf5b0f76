"""Posting to the app as the website, Cal.com and Calendly do (signed with the test secrets),
then draining the journal, so a test sees the rows each webhook made."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.models import QueueRow
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore

CALCOM_SECRET = "calcom-test-secret"
CALENDLY_KEY = "calendly-signing-key"


def signed_settings() -> Settings:
    """Settings with both providers' secrets set to the ones these posts sign with."""
    return Settings(
        calcom_webhook_secret=CALCOM_SECRET,  # type: ignore[arg-type]
        calendly_webhook_signing_key=CALENDLY_KEY,  # type: ignore[arg-type]
    )


class SignedWebhooks:
    def __init__(
        self, client: TestClient, drainer: Drainer, clock: FakeClock, store: QueueStore
    ) -> None:
        self.client, self.drainer, self.clock, self.store = client, drainer, clock, store

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        response = self.client.post(
            path,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        self.drainer.drain_once()
        return response

    def calcom(self, trigger: str, payload: dict[str, Any]) -> Any:
        body = json.dumps(
            {"triggerEvent": trigger, "createdAt": self.clock.now().isoformat(), "payload": payload}
        ).encode()
        signature = hmac.new(CALCOM_SECRET.encode(), body, hashlib.sha256).hexdigest()
        response = self.client.post(
            "/webhook/calcom-booking",
            content=body,
            headers={"Content-Type": "application/json", "X-Cal-Signature-256": signature},
        )
        self.drainer.drain_once()
        return response

    def calendly(self, event: str, payload: dict[str, Any], t: int | None = None) -> Any:
        """`t`: the signature's timestamp (now by default; an old one tests the replay window)."""
        body = json.dumps(
            {"event": event, "created_at": self.clock.now().isoformat(), "payload": payload}
        ).encode()
        t = int(self.clock.now().timestamp()) if t is None else t
        v1 = hmac.new(CALENDLY_KEY.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        response = self.client.post(
            "/webhook/calendly",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Calendly-Webhook-Signature": f"t={t},v1={v1}",
            },
        )
        self.drainer.drain_once()
        return response

    def rows(self, email: str, sequence: str | None = None) -> list[QueueRow]:
        return self.store.rows_for_email(email, sequence=sequence)
