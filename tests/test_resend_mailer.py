"""Sending through Resend (the fake, speaking Resend's HTTP API to the real SDK)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import resend
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.models import Status
from notion_queue.store.base import QueueStore
from notion_queue.testing.fake_resend import FakeResend
from notion_queue.worker import Worker
from tests.conftest import WorkerFactory, new_row


def test_send_carries_idempotency_key_unsubscribe_headers_and_tags(
    store: QueueStore, mailer: ResendMailer, fake_resend: FakeResend, make_worker: WorkerFactory
) -> None:
    row = store.add_row(new_row())

    make_worker(store, mailer).run_once()

    [sent] = fake_resend.sent
    assert sent.to == ("sarah@example.com",)
    assert sent.idempotency_key and row.id in sent.idempotency_key
    assert sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.tags == {"sequence": "lead_nurture", "template": "lead_nurture_email_1"}
    assert sent.html and sent.text and "Sarah" in sent.html
    assert store.get_row(row.id).resend_email_id == sent.id


def test_a_send_that_happened_but_timed_out_is_not_sent_twice(
    store: QueueStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    row = store.add_row(new_row())
    worker = make_worker(store, mailer)
    fake_resend.fail_next(commit=True, timeout=True)

    first = worker.run_once()
    after_first = store.get_row(row.id)
    clock.advance(hours=1)
    second = worker.run_once()

    assert first["retry"] == 1 and after_first.status is Status.QUEUED
    assert after_first.attempts == 1 and "may have sent" in after_first.error_message
    assert second["sent"] == 1
    assert len(fake_resend.sent) == 1
    done = store.get_row(row.id)
    assert done.status is Status.SENT and done.resend_email_id == fake_resend.sent[0].id


def test_rate_limit_is_honoured_and_every_row_is_sent(
    store: QueueStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    for i in range(6):
        store.add_row(new_row(email=f"lead{i}@example.com"))

    summary = make_worker(store, mailer).run_once()

    assert summary["sent"] == 6 and len(fake_resend.sent) == 6
    assert fake_resend.count(status=429) == 0  # paced under the limit, never hit it


def test_invalid_recipient_fails_the_row_at_once(
    store: QueueStore, mailer: ResendMailer, fake_resend: FakeResend, make_worker: WorkerFactory
) -> None:
    row = store.add_row(new_row())
    fake_resend.fail_next(status=422, name="validation_error", message="Invalid `to` field.")

    summary = make_worker(store, mailer).run_once()

    assert summary["failed"] == 1
    failed = store.get_row(row.id)
    assert failed.status is Status.FAILED and "Invalid `to` field." in failed.error_message


def test_a_bad_api_key_fails_no_row(
    store: QueueStore, clock: FakeClock, fake_resend: FakeResend, make_worker: WorkerFactory
) -> None:
    rows = [store.add_row(new_row(email=f"lead{i}@example.com")) for i in range(3)]
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    wrong = ResendMailer("re_wrong_key", clock, transport=fake_resend.transport())
    try:
        summary = make_worker(store, wrong).run_once()
    finally:
        wrong.close()
        resend.api_key, resend.api_url, resend.default_http_client = saved

    assert summary.account_error and "invalid_api_key" in summary.account_error
    assert "re_wrong_key" not in summary.account_error
    assert {store.get_row(r.id).status for r in rows} == {Status.QUEUED}
    assert {store.get_row(r.id).attempts for r in rows} == {0}


def first_wait_of_run_forever(worker: Worker) -> float:
    """Runs the worker's loop for one cycle and answers how long it then waits."""
    waits: list[float | None] = []

    def wait(timeout: float | None = None) -> bool:
        waits.append(timeout)
        worker.stop()
        return True

    worker.stop_event.wait = wait  # type: ignore[method-assign]
    worker.run_forever()
    [waited] = waits
    assert waited is not None
    return waited


def test_a_daily_quota_pauses_sending_until_the_next_utc_day(
    store: QueueStore, clock: FakeClock, make_worker: WorkerFactory
) -> None:
    first, second = (store.add_row(new_row(email=f"lead{i}@example.com")) for i in range(2))
    fake = FakeResend(clock, api_key="re_test_key", daily_quota=1)
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    mailer = ResendMailer("re_test_key", clock, transport=fake.transport())
    worker = make_worker(store, mailer, poll_interval=60)
    try:
        with capture_logs() as logs:
            waited = first_wait_of_run_forever(worker)
    finally:
        mailer.close()
        resend.api_key, resend.api_url, resend.default_http_client = saved

    midnight = datetime(2025, 12, 2, tzinfo=UTC)  # the clock starts on 1 December, 10:00 UTC
    next_try = clock.now() + timedelta(seconds=waited)
    assert midnight <= next_try < midnight + timedelta(minutes=1)  # not one probe a minute
    assert store.get_row(first.id).status is Status.SENT
    assert store.get_row(second.id).status is Status.QUEUED  # waits for tomorrow, not failed
    [paused] = [e for e in logs if e["event"] == "account_error"]
    assert "daily_quota_exceeded" in paused["reason"] and paused["retry_in"] >= 13 * 3600


def test_a_bad_api_key_is_probed_again_after_a_minute(
    store: QueueStore, clock: FakeClock, fake_resend: FakeResend, make_worker: WorkerFactory
) -> None:
    store.add_row(new_row())
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    wrong = ResendMailer("re_wrong_key", clock, transport=fake_resend.transport())
    worker = make_worker(store, wrong, poll_interval=5)
    try:
        waited = first_wait_of_run_forever(worker)
    finally:
        wrong.close()
        resend.api_key, resend.api_url, resend.default_http_client = saved

    assert waited == 60  # a fixed key works at the next probe; no hot loop meanwhile


def test_transient_errors_give_up_after_max_attempts(
    store: QueueStore,
    mailer: ResendMailer,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    clock: FakeClock,
) -> None:
    row = store.add_row(new_row())
    worker = make_worker(store, mailer, max_attempts=3)
    fake_resend.fail_next(status=500, name="application_error", times=3)

    for _ in range(3):
        worker.run_once()
        clock.advance(timedelta(hours=2).total_seconds())

    failed = store.get_row(row.id)
    assert failed.status is Status.FAILED and failed.attempts == 3
    assert failed.error_message.startswith("gave up after 3 attempts")
    assert fake_resend.sent == []


def test_sending_paused_by_the_account_shows_in_readyz_and_clears_when_it_works(
    store: QueueStore,
    clock: FakeClock,
    fake_resend: FakeResend,
    make_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    from starlette.testclient import TestClient

    from notion_queue.intake.journal import Journal
    from notion_queue.settings import Settings
    from notion_queue.web.app import create_app

    store.add_row(new_row())
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    wrong = ResendMailer("re_wrong_key", clock, transport=fake_resend.transport())
    worker = make_worker(store, wrong)
    worker.status.path = tmp_path / "worker-status.json"
    app = create_app(
        Settings(state_dir=tmp_path),
        journal=Journal(tmp_path / "j.sqlite3"),
        drainer=None,
        clock=clock,
    )
    client = TestClient(app)
    try:
        worker.write_status(worker.run_once())
        paused = client.get("/readyz")
        worker.mailer = ResendMailer("re_test_key", clock, transport=fake_resend.transport())
        worker.write_status(worker.run_once())
        resumed = client.get("/readyz")
    finally:
        wrong.close()
        resend.api_key, resend.api_url, resend.default_http_client = saved

    assert paused.status_code == 503
    assert paused.json()["worker"]["sending_paused"] is True
    assert "invalid_api_key" in paused.json()["worker"]["reason"]
    assert resumed.status_code == 200 and resumed.json()["worker"]["last_cycle"] == {"sent": 1}


def test_the_mailer_relies_on_no_header_resend_does_not_document(clock: FakeClock) -> None:
    """Resend's idempotency docs promise the same response for the same key, nothing more: a
    header claiming a replay (undocumented) is not taken for one."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"},
            headers={"Idempotent-Replayed": "true"},
        )

    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    mailer = ResendMailer("re_test_key", clock, transport=httpx.MockTransport(answer))
    try:
        result = mailer.send(
            OutgoingEmail(
                sender="Acme <hello@acme.com>",
                to="lead@example.com",
                subject="Hi",
                html="<p>Hi</p>",
                text="Hi",
                idempotency_key="row-1/abc",
            )
        )
    finally:
        mailer.close()
        resend.api_key, resend.api_url, resend.default_http_client = saved

    assert result.message_id == "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"
    assert result.replayed is False
