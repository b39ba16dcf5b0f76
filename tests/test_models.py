"""The status table: the transitions the product makes are the ones it allows."""

from __future__ import annotations

from pathlib import Path

from notion_queue.models import TRANSITIONS, Status, can_transition, parse_status


def test_only_queued_rows_move_to_sent() -> None:
    assert [s for s in Status if can_transition(s, Status.SENT) and s is not Status.SENT] == [
        Status.QUEUED
    ]


def test_a_sent_email_is_final() -> None:
    assert TRANSITIONS[Status.SENT] == frozenset()


def test_marketers_can_pause_resume_and_requeue_failed_rows() -> None:
    assert can_transition(Status.QUEUED, Status.PAUSED)
    assert can_transition(Status.PAUSED, Status.QUEUED)
    assert can_transition(Status.FAILED, Status.QUEUED)


def test_status_typed_by_hand_is_read_leniently_or_not_at_all() -> None:
    assert parse_status(" Queued ") is Status.QUEUED
    assert parse_status("qeued") is None
    assert parse_status(None) is None


def test_secrets_are_redacted_from_every_log_field() -> None:
    from notion_queue.logs import REDACTED, SecretRedactor

    redact = SecretRedactor(["ntn_supersecret", "re_key_123"])
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "reason": "Notion refused ntn_supersecret",
            "nested": {"k": ["re_key_123"]},
            "error": ValueError("token re_key_123 bad"),
        },
    )
    assert event["reason"] == f"Notion refused {REDACTED}"
    assert event["nested"] == {"k": [REDACTED]}
    assert event["error"] == f"ValueError: token {REDACTED} bad"


def test_a_delivery_state_never_goes_backwards_but_a_bounce_always_shows() -> None:
    from notion_queue.models import Delivery, delivery_advances

    assert not delivery_advances("opened", Delivery.DELIVERED)
    assert delivery_advances("clicked", Delivery.BOUNCED)
    assert delivery_advances("", Delivery.DELAYED)
    assert delivery_advances("seen by Anna", Delivery.DELIVERED)  # typed by hand: nothing yet


def test_delivery_states_are_spelled_once_for_resend_and_notion() -> None:
    from notion_queue.intake.handlers import RESEND_DELIVERY_STATES
    from notion_queue.models import Delivery
    from notion_queue.store import notion_schema

    assert set(RESEND_DELIVERY_STATES.values()) == set(Delivery)
    options = notion_schema.email_queue_schema(None)["Delivery"]["select"]["options"]
    assert [o["name"] for o in options] == [d.value for d in Delivery]


def test_a_journaled_event_is_pending_then_done_or_rejected(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from notion_queue.intake.journal import EventState, Journal

    journal = Journal(tmp_path / "intake.sqlite3")
    at = datetime(2025, 12, 1, tzinfo=UTC)
    done, _ = journal.append("christmas-signup", "k1", {}, at)
    rejected, _ = journal.append("christmas-signup", "k2", {}, at)
    assert journal.status_of(done) is EventState.PENDING and journal.backlog() == 2

    journal.mark_done(done)
    journal.mark_rejected(rejected, "no such sequence")

    assert journal.status_of(done) is EventState.DONE
    assert journal.status_of(rejected) is EventState.REJECTED
    assert journal.backlog() == 0 and journal.pending(at) == []
    journal.close()
