"""The worker cycle, on both stores: what a marketer and a recipient would notice."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes
from email.message import Message

from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.mail.base import OutgoingEmail, SendResult
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.models import RowUpdate, Status, Template
from notion_queue.store.base import QueueStore
from notion_queue.worker import STALE_AFTER_SECONDS
from tests.conftest import T0, Marketer, WorkerFactory, needs_business_name, new_row


def outbox_messages(outbox: OutboxMailer) -> list[Message]:
    return [message_from_bytes(p.read_bytes()) for p in sent_messages(outbox.folder)]


def html_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no HTML part")


def test_due_row_is_sent_once_and_marked_sent(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    row = store.add_row(new_row())
    worker = make_worker(store, outbox)
    clock.advance(30)

    with capture_logs() as logs:
        first = worker.run_once()
    second = worker.run_once()

    assert first["sent"] == 1 and second.handled == 0
    messages = outbox_messages(outbox)
    assert len(messages) == 1
    assert messages[0]["To"] == "sarah@example.com"
    assert "Sarah" in html_part(messages[0])
    done = store.get_row(row.id)
    assert done.status is Status.SENT
    assert done.sent_at == clock.now()
    assert done.resend_email_id and done.attempts == 1
    assert [e["event"] for e in logs if e["event"].startswith("row_")] == ["row_sent"]
    assert logs[-1]["row_id"] == row.id and logs[-1]["sequence"] == "lead_nurture"


def test_the_message_is_a_real_email(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    store.add_row(new_row())
    make_worker(store, outbox).run_once()

    message = outbox_messages(outbox)[0]
    for header in ("From", "To", "Subject", "Message-ID", "Date", "List-Unsubscribe"):
        assert message[header], header
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://funnel.businessx.com/unsubscribe?")
    assert {p.get_content_type() for p in message.walk()} >= {"text/plain", "text/html"}


def test_row_with_missing_variable_fails_and_nothing_is_sent(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    row = store.add_row(needs_business_name(store))

    with capture_logs() as logs:
        summary = make_worker(store, outbox).run_once()

    assert summary["failed"] == 1
    assert outbox_messages(outbox) == []
    failed = store.get_row(row.id)
    assert failed.status is Status.FAILED
    assert failed.error_message == "missing template variable: business_name"
    assert any(e["event"] == "row_failed" and e["row_id"] == row.id for e in logs)


def test_paused_row_is_not_sent(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    row = store.add_row(new_row())
    store.update_row(row.id, RowUpdate(status=Status.PAUSED))

    summary = make_worker(store, outbox).run_once()

    assert summary.handled == 0
    assert outbox_messages(outbox) == []
    assert store.get_row(row.id).status is Status.PAUSED


def test_row_moved_into_the_future_waits_until_then(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    row = store.add_row(new_row())
    later = T0 + timedelta(hours=3)
    store.update_row(row.id, RowUpdate(scheduled_time=later))
    worker = make_worker(store, outbox)

    clock.set(later - timedelta(seconds=1))
    assert worker.run_once().handled == 0
    clock.set(later)
    assert worker.run_once()["sent"] == 1
    assert store.get_row(row.id).status is Status.SENT


def test_marketer_edit_of_first_name_shows_in_the_email(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, marketer: Marketer
) -> None:
    row = store.add_row(new_row(first_name="sarah"))
    marketer.set_first_name(row.id, "Sarah-Jane")

    make_worker(store, outbox).run_once()

    assert "Sarah-Jane" in html_part(outbox_messages(outbox)[0])


def test_a_pause_made_while_the_cycle_runs_wins(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    first = store.add_row(
        new_row(email="first@example.com", scheduled_time=T0 - timedelta(seconds=1))
    )
    second = store.add_row(new_row(email="second@example.com"))

    class SlowMailer:
        """Sending the first email takes a while; meanwhile a marketer pauses the second."""

        def send(self, email: OutgoingEmail) -> SendResult:
            if email.to == "first@example.com":
                clock.advance(STALE_AFTER_SECONDS + 1)
                store.update_row(second.id, RowUpdate(status=Status.PAUSED))
            return outbox.send(email)

        def close(self) -> None:
            pass

    summary = make_worker(store, SlowMailer()).run_once()

    assert summary["sent"] == 1
    assert [m["To"] for m in outbox_messages(outbox)] == ["first@example.com"]
    assert store.get_row(first.id).status is Status.SENT
    assert store.get_row(second.id).status is Status.PAUSED


def test_expired_reminder_is_skipped_not_sent_late(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    meeting = T0 + timedelta(hours=1)
    row = store.add_row(
        new_row(
            sequence="precall_prep",
            template_id="precall_prep_email_3",
            scheduled_time=T0 - timedelta(hours=1),
            expires_at=meeting,
        )
    )
    clock.set(meeting + timedelta(minutes=5))

    make_worker(store, outbox).run_once()

    assert outbox_messages(outbox) == []
    skipped = store.get_row(row.id)
    assert skipped.status is Status.SKIPPED
    assert skipped.error_message.startswith("expired:")


def test_rows_a_marketer_broke_fail_with_what_to_fix(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    typo = store.add_row(new_row(template_id="christmas_emial_2", email="a@example.com"))
    bad_address = store.add_row(new_row(email="not-an-address"))
    good = store.add_row(new_row(email="good@example.com"))

    summary = make_worker(store, outbox).run_once()

    assert summary["failed"] == 2 and summary["sent"] == 1
    assert "christmas_emial_2" in store.get_row(typo.id).error_message
    assert "set Status to queued" in store.get_row(typo.id).error_message
    assert "not a valid address" in store.get_row(bad_address.id).error_message
    assert store.get_row(good.id).status is Status.SENT


def test_template_edited_in_the_store_is_used_after_the_cache_expires(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    store.upsert_template(
        Template("lead_nurture_email_1", "Hello {{ first_name }}", "<p>Version one</p>")
    )
    worker = make_worker(store, outbox, cache_seconds=300)
    store.add_row(new_row(email="one@example.com"))
    worker.run_once()
    store.upsert_template(
        Template("lead_nurture_email_1", "Hello {{ first_name }}", "<p>Version two</p>")
    )
    store.add_row(new_row(email="two@example.com", scheduled_time=T0 + timedelta(minutes=10)))
    clock.advance(minutes=10)
    worker.run_once()

    bodies = [html_part(m) for m in outbox_messages(outbox)]
    assert "Version one" in bodies[0] and "Version two" in bodies[1]


def test_values_are_html_escaped(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    store.add_row(new_row(first_name="<script>alert(1)</script>"))

    make_worker(store, outbox).run_once()

    html = html_part(outbox_messages(outbox)[0])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_outcomes_and_lateness_reach_the_metrics(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    from notion_queue import metrics

    def sample(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    sent_before = sample("notion_queue_rows_total", outcome="sent", sequence="lead_nurture")
    failed_before = sample("notion_queue_rows_total", outcome="failed", sequence="lead_nurture")
    late_before = sample("notion_queue_lateness_seconds_count")
    store.add_row(new_row())
    broken = needs_business_name(store)
    store.add_row(replace(broken, email="x@example.com", dedupe_key="broken"))
    clock.advance(3)

    make_worker(store, outbox).run_once()

    assert (
        sample("notion_queue_rows_total", outcome="sent", sequence="lead_nurture")
        == sent_before + 1
    )
    assert (
        sample("notion_queue_rows_total", outcome="failed", sequence="lead_nurture")
        == failed_before + 1
    )
    assert sample("notion_queue_lateness_seconds_count") == late_before + 1
