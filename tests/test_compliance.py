"""One-click unsubscribe (RFC 8058), bounces and complaints: a suppressed address gets nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path

from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import ContactData, Status
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.app import create_app
from tests.conftest import T0, WorkerFactory, new_row

RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-webhook-secret-32-bytes!!").decode()


def app_client(
    journal: Journal, drainer: Drainer, clock: FakeClock, tokens: UnsubscribeTokens
) -> TestClient:
    settings = Settings(resend_webhook_secret=RESEND_SECRET)  # type: ignore[arg-type]
    return TestClient(
        create_app(settings, journal=journal, drainer=drainer, clock=clock, unsubscribe=tokens)
    )


def test_every_email_carries_one_click_unsubscribe_headers(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, tokens: UnsubscribeTokens
) -> None:
    from email import message_from_bytes

    store.add_row(new_row())
    make_worker(store, outbox).run_once()

    [eml] = Path(outbox.folder).glob("*.eml")
    message = message_from_bytes(eml.read_bytes())
    header = message["List-Unsubscribe"]
    assert header.startswith("<https://") and header.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = header.split("token=", 1)[1].rstrip(">")
    assert tokens.email_for(token) == "sarah@example.com"


def test_forged_or_altered_tokens_are_refused_and_change_nothing(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock, tokens: UnsubscribeTokens
) -> None:
    journal, drainer = intake
    row = store.add_row(new_row())
    client = app_client(journal, drainer, clock, tokens)
    good = tokens.token("sarah@example.com")
    address, mac = good.split(".")
    forged_other = UnsubscribeTokens(b"someone-elses-secret-key").token("sarah@example.com")
    other_address = tokens.token("other@example.com").split(".")[0]

    for token in (forged_other, f"{other_address}.{mac}", f"{address}.{mac[:-2]}AA", "garbage", ""):
        assert client.get(f"/unsubscribe?token={token}").status_code == 400
        assert client.post(f"/unsubscribe?token={token}").status_code == 400
    drainer.drain_once()

    assert journal.backlog() == 0
    assert store.get_row(row.id).status is Status.QUEUED
    assert store.unsubscribed_emails() == set()


def test_get_shows_a_confirm_page_and_changes_nothing(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock, tokens: UnsubscribeTokens
) -> None:
    journal, drainer = intake
    row = store.add_row(new_row())
    client = app_client(journal, drainer, clock, tokens)

    response = client.get(f"/unsubscribe?token={tokens.token('sarah@example.com')}")
    drainer.drain_once()

    assert response.status_code == 200
    assert "sarah@example.com" in response.text and 'method="post"' in response.text
    assert store.get_row(row.id).status is Status.QUEUED


def test_one_click_post_unsubscribes_and_cancels_every_open_row(
    store: QueueStore,
    intake: tuple[Journal, Drainer],
    clock: FakeClock,
    tokens: UnsubscribeTokens,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
) -> None:
    journal, drainer = intake
    rows = [
        store.add_row(new_row(dedupe_key="a")),
        store.add_row(
            new_row(sequence="five_day", template_id="christmas_email_2", dedupe_key="b")
        ),
    ]
    client = app_client(journal, drainer, clock, tokens)

    response = client.post(
        f"/unsubscribe?token={tokens.token('sarah@example.com')}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    again = client.post(f"/unsubscribe?token={tokens.token('sarah@example.com')}")
    drainer.drain_once()

    assert response.status_code == again.status_code == 200
    assert {store.get_row(r.id).status for r in rows} == {Status.CANCELLED}
    assert store.get_row(rows[0].id).error_message == "cancelled: unsubscribed"
    assert store.unsubscribed_emails() == {"sarah@example.com"}
    assert make_worker(store, outbox).run_once().handled == 0


def test_an_address_a_marketer_ticks_unsubscribed_gets_nothing(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    row = store.add_row(new_row())
    store.upsert_contact(ContactData(email="sarah@example.com", unsubscribed=True))

    summary = make_worker(store, outbox).run_once()

    assert summary["cancelled"] == 1 and list(Path(outbox.folder).glob("*.eml")) == []
    assert store.get_row(row.id).status is Status.CANCELLED


def test_a_tick_made_while_the_worker_runs_is_honoured_within_a_minute(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    worker = make_worker(store, outbox)
    store.add_row(new_row(email="first@example.com"))
    assert worker.run_once()["sent"] == 1  # the worker has read the Unsubscribed boxes
    later = store.add_row(
        new_row(email="sarah@example.com", scheduled_time=T0 + timedelta(seconds=61))
    )
    store.upsert_contact(ContactData(email="sarah@example.com", unsubscribed=True))

    clock.advance(61)  # more than SUPPRESSED_MAX_AGE_SECONDS: the boxes are read again
    summary = worker.run_once()

    assert summary["cancelled"] == 1 and summary["sent"] == 0
    assert store.get_row(later.id).status is Status.CANCELLED


def svix_headers(body: bytes, msg_id: str = "msg_1", ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(ts),
        "svix-signature": f"v1,{base64.b64encode(mac).decode()}",
        "Content-Type": "application/json",
    }


def resend_event(kind: str, bounce_type: str | None = None) -> bytes:
    data: dict[str, object] = {"email_id": "em_1", "to": ["sarah@example.com"], "subject": "Hi"}
    if bounce_type:
        data["bounce"] = {"type": bounce_type, "subType": "General", "message": "550 user unknown"}
    return json.dumps({"type": kind, "created_at": "2025-12-01T10:00:00Z", "data": data}).encode()


def test_hard_bounce_and_complaint_suppress_the_address(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock, tokens: UnsubscribeTokens
) -> None:
    journal, drainer = intake
    client = app_client(journal, drainer, clock, tokens)
    row = store.add_row(new_row())
    other = store.add_row(new_row(email="other@example.com"))

    soft = resend_event("email.bounced", "Transient")
    soft_answer = client.post("/webhook/resend", content=soft, headers=svix_headers(soft, "msg_s"))
    drainer.drain_once()
    assert soft_answer.status_code == 202
    assert store.get_row(row.id).status is Status.QUEUED  # a transient bounce suppresses nothing
    hard = resend_event("email.bounced", "Permanent")
    first = client.post("/webhook/resend", content=hard, headers=svix_headers(hard, "msg_hard"))
    retry = client.post("/webhook/resend", content=hard, headers=svix_headers(hard, "msg_hard"))
    drainer.drain_once()

    assert first.status_code == retry.status_code == 202 and retry.json()["duplicate"] is True
    assert store.get_row(row.id).status is Status.CANCELLED
    assert store.get_row(row.id).error_message == "cancelled: hard bounce"
    assert store.get_row(other.id).status is Status.QUEUED
    assert store.unsubscribed_emails() == {"sarah@example.com"}

    complaint = resend_event("email.complained").replace(b"sarah@", b"other@")
    client.post("/webhook/resend", content=complaint, headers=svix_headers(complaint, "msg_c"))
    drainer.drain_once()
    assert store.get_row(other.id).error_message == "cancelled: spam complaint"


def test_resend_webhook_signature_is_verified(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock, tokens: UnsubscribeTokens
) -> None:
    journal, drainer = intake
    client = app_client(journal, drainer, clock, tokens)
    body = resend_event("email.complained")

    stale = client.post(
        "/webhook/resend", content=body, headers=svix_headers(body, ts=int(time.time()) - 600)
    )
    altered = client.post(
        "/webhook/resend", content=body.replace(b"sarah", b"sarai"), headers=svix_headers(body)
    )
    unsigned = client.post("/webhook/resend", content=body)

    assert stale.status_code == altered.status_code == unsigned.status_code == 401
    assert journal.backlog() == 0


def test_delivery_events_are_recorded_on_the_row_and_never_go_backwards(
    store: QueueStore,
    intake: tuple[Journal, Drainer],
    clock: FakeClock,
    tokens: UnsubscribeTokens,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
) -> None:
    journal, drainer = intake
    client = app_client(journal, drainer, clock, tokens)
    row = store.add_row(new_row())
    make_worker(store, outbox).run_once()
    message_id = store.get_row(row.id).resend_email_id

    def event(kind: str, msg: str) -> None:
        body = json.dumps(
            {"type": kind, "data": {"email_id": message_id, "to": ["sarah@example.com"]}}
        ).encode()
        response = client.post("/webhook/resend", content=body, headers=svix_headers(body, msg))
        assert response.status_code == 202
        drainer.drain_once()

    event("email.delivered", "msg_d")
    assert store.get_row(row.id).delivery == "delivered"
    event("email.opened", "msg_o")
    event("email.delivered", "msg_d2")  # arrives late, out of order
    assert store.get_row(row.id).delivery == "opened"
    assert store.get_row(row.id).status is Status.SENT
    assert store.unsubscribed_emails() == set()
